"""The answer of a top-N query, shared by ``GET /top`` and ``manage.py topkeywords``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from storage_app.core.errors import BadTopQuery
from storage_app.core.store import TopRow

DEFAULT_TOP = 10


def top_entries(rows: list[TopRow]) -> list[dict[str, object]]:
    """``{"key": text, "count": c}`` per row; a key whose text is not known: ``{"key": None, "hash": "0x…"}``."""
    entries: list[dict[str, object]] = []
    for row in rows:
        if row.text is None:
            entries.append({"key": None, "hash": f"0x{row.key:016x}", "count": row.count})
        else:
            # A text came from a UTF-8 body or a peer; never fail on a peer's bad bytes.
            entries.append({"key": row.text.decode("utf-8", errors="replace"), "count": row.count})
    return entries


def parse_top_query(values: Mapping[str, Sequence[str]]) -> tuple[int, str | None]:
    """``n`` (default 10) and ``prefix`` (None if absent) from query values; ``BadTopQuery`` if malformed."""
    n_values, prefixes = values.get("n", []), values.get("prefix", [])
    if len(n_values) > 1 or len(prefixes) > 1:
        raise BadTopQuery("Give n and prefix at most once each, e.g. /top?n=10&prefix=ab.")
    n = DEFAULT_TOP
    if n_values:
        text = n_values[0].strip()
        if not text.isascii() or not text.isdigit():
            raise BadTopQuery(f"n={n_values[0][:20]!r} is not a whole number: ask for e.g. /top?n=10.")
        # Python refuses to read an int of thousands of digits; any such n is out of range anyway.
        n = int(text) if len(text) <= 18 else 10**18
    return n, (prefixes[0] if prefixes else None)
