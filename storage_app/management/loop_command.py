"""The shape shared by the commands that loop beside gunicorn (runsync, dumpstate).

``--once`` runs one step and exits; otherwise ``run_once`` (a step) and
``wait_between_steps`` (by default ``--interval`` seconds) alternate until
SIGTERM or SIGINT, which only set an event (so the wait wakes at once; the
signals are taken by a thread of their own, see ``stop_signals``), and then
the step runs one last time (final push, final dump) before the command
exits 0. A step that cannot reach the node is logged once, and retried.
"""

from __future__ import annotations

import logging
import threading
from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from storage_app.core.node_client import NodeError
from storage_app.core.stop_signals import stop_on_signals

logger = logging.getLogger(__name__)


def positive_seconds(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(value)
    return seconds


class LoopCommand(BaseCommand):
    default_interval_setting = ""  # name of the NodeConfig field with the default interval
    final_step_name = "final step"

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one step, then exit.")
        parser.add_argument(
            "--interval",
            type=positive_seconds,
            default=None,
            help="Seconds between steps (default: from the environment).",
        )

    def setup(self) -> None:
        """Prepare for ``run_once``; called once before the first step."""

    def run_once(self) -> str:
        """One step; returns a one-line summary. Raises a ``NodeError`` if the node cannot be reached."""
        raise NotImplementedError

    def teardown(self) -> None:
        """Release what ``setup`` took."""

    def stop_requested(self) -> None:
        """Called (from the stop-signal thread) after ``stopping`` is set: cut a wait short."""

    def handle(self, *args: Any, **options: Any) -> None:
        from django.conf import settings

        interval = options["interval"] or getattr(settings.COUNTER, self.default_interval_setting)
        self.stopping = threading.Event()
        self.once: bool = options["once"]
        if not self.once:
            # Before setup, which may start threads. runnode starts us with these signals
            # blocked already, so that a stop during start-up waits until they are taken.
            stop_on_signals(self._request_stop)
        self.setup()
        try:
            if options["once"]:
                try:
                    self.stdout.write(self.run_once())
                except NodeError as error:
                    raise CommandError(str(error)) from None
                return
            self.loop(interval)
        finally:
            self.teardown()
        if self.final_step_failed:
            raise CommandError(f"{self.final_step_name} failed (see above)")

    final_step_failed = False

    def _request_stop(self) -> None:
        self.stopping.set()
        self.stop_requested()

    def loop(self, interval: float) -> None:
        node_was_down = False
        while True:
            stopping = self.stopping.is_set()
            try:
                summary = self.run_once()
                if node_was_down:
                    logger.info("node is answering again")
                node_was_down = False
                logger.debug("%s", summary)
                if stopping:
                    logger.info("%s: %s", self.final_step_name, summary)
            except NodeError as error:
                if not node_was_down or stopping:
                    logger.warning("%s", error)
                node_was_down = True
                self.final_step_failed = stopping
            except Exception:  # a failed step is logged and retried, never fatal
                logger.exception("step failed; retrying in %s s", interval)
                self.final_step_failed = stopping
            if stopping:
                return
            self.wait_between_steps(interval)

    def wait_between_steps(self, interval: float) -> None:
        """Until the next step: ``interval`` seconds, or less when a stop is asked for."""
        self.stopping.wait(interval)
