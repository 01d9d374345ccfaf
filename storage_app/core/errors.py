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


class StillRecovering(CounterError):
    """The node is still loading its snapshot and log; it serves nothing of its state yet."""

    code = "not_ready"

    def __init__(self, message: str = "") -> None:
        super().__init__(
            message or "The node is still loading its snapshot and log; retry in a moment (GET /readyz says when)."
        )


class ShuttingDown(CounterError):
    """The node is stopping and takes no more client writes."""

    code = "unavailable"

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "The node is shutting down and takes no more writes; retry on another node.")


class NodeIdClash(CounterError):
    """Another live process runs with this node's id and started first: this one takes no client writes."""

    code = "duplicate_node_id"


class BodyTooLarge(CounterError):
    """A request body over its limit; nothing of it was used."""

    code = "payload_too_large"


class BodyIncomplete(CounterError):
    """A request body shorter than its Content-Length said (the client went away)."""

    code = "incomplete_body"


class TextNotUtf8(CounterError):
    """A text to count that is not UTF-8; nothing of it was counted."""

    code = "invalid_utf8"


class LookupTooLarge(CounterError):
    """A lookup names more keywords than COUNTER_MAX_LOOKUP_KEYWORDS."""

    code = "too_many_keywords"


class BadTopQuery(CounterError):
    """A top-N query whose ``n`` or ``prefix`` is not acceptable."""

    code = "invalid_top_query"


class KeywordTooLong(CounterError):
    """A looked-up keyword is longer than COUNTER_MAX_KEYWORD_LENGTH characters."""

    code = "keyword_too_long"
