"""The run-state file: how a node last stopped, so that its next start knows what its disk proves.

``node-<id>.run-state`` holds JSON: the kernel's boot id, whether the last stop
was clean (written after the final dump, once the log is closed), and whether
the node was still pending (it had not learned its own slot from every seed).
It is replaced atomically and fsynced, like every file the node writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .files import write_file_atomically

_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """This boot of the machine ("" where the kernel does not say)."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class RunState:
    boot_id: str
    clean: bool
    pending: bool

    @classmethod
    def read(cls, path: Path) -> RunState | None:
        """The recorded state, or None if there is no readable record."""
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict):
            return None
        # "held" is what nodes that held writes instead of keeping them pending recorded.
        pending = bool(data.get("pending") or data.get("held"))
        return cls(boot_id=str(data.get("boot_id", "")), clean=bool(data.get("clean")), pending=pending)

    def write(self, path: Path) -> None:
        record = {"boot_id": self.boot_id, "clean": self.clean, "pending": self.pending}
        write_file_atomically(path, json.dumps(record).encode())
