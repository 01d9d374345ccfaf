"""Stop signals are taken by a thread of their own: a stop always stops, whatever the main thread is waiting on."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[2]

# runsync's loop at its busiest: waits on two events that the stop sets.
# A Python signal handler setting them would, now and then, run while the main
# thread holds one of their locks inside Event.wait, and hang the process.
LOOP = """
import threading
from storage_app.core.stop_signals import stop_on_signals

stopping, wake = threading.Event(), threading.Event()

def stop():
    stopping.set()
    wake.set()

stop_on_signals(stop)
print("ready", flush=True)
while not stopping.wait(0):
    wake.wait(0)
    wake.clear()
print("stopped", flush=True)
"""


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_loop_of_event_waits_always_stops_on_a_signal(stop_signal: signal.Signals) -> None:
    chance = random.Random(7)
    for attempt in range(25):
        process = subprocess.Popen([sys.executable, "-c", LOOP], cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            assert process.stdout.readline() == "ready\n"
            time.sleep(chance.uniform(0, 0.02))
            process.send_signal(stop_signal)
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"attempt {attempt}: the process did not stop within 10 s of {stop_signal.name}")
        finally:
            process.kill()
            process.wait()
        assert (process.returncode, out) == (0, "stopped\n"), f"attempt {attempt}"
