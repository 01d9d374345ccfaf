"""Domain errors raised by the core; the web layer maps them to HTTP in one place."""

from __future__ import annotations


class CounterError(Exception):
    """Base class of every error the core raises on bad input or bad files."""

    code = "counter_error"


class SnapshotCorrupt(CounterError):
    """A snapshot file is torn, damaged, or not a snapshot at all."""

    code = "snapshot_corrupt"


class SnapshotForeign(CounterError):
    """A valid snapshot that belongs to another node or another format version."""

    code = "snapshot_foreign"


class LegacyFileCorrupt(CounterError):
    """A counter-app data file that cannot be parsed."""

    code = "legacy_file_corrupt"


class BadSyncPayload(CounterError):
    """A sync request body that does not have the documented shape."""

    code = "bad_sync_payload"


class TooManySlots(CounterError):
    """A merge would need more replica slots than the store allows."""

    code = "too_many_slots"
