"""The limits of a top-N query, checked the same way by the node and by ``manage.py topkeywords``."""

from __future__ import annotations

from .config import NodeConfig
from .errors import BadTopQuery
from .keywords import Keywords


def check_top_query(config: NodeConfig, keywords: Keywords, n: int, prefix: str | None) -> bytes | None:
    """The prefix as the UTF-8 of a normalised keyword (None: no prefix); ``BadTopQuery`` past the limits."""
    if not 1 <= n <= config.max_top:
        raise BadTopQuery(f"n={n} is out of range: ask for 1 to {config.max_top} keywords (COUNTER_MAX_TOP).")
    if prefix is None:
        return None
    if len(prefix) > config.max_keyword_length:
        raise BadTopQuery(
            f"A prefix of {len(prefix)} characters; at most {config.max_keyword_length} (COUNTER_MAX_KEYWORD_LENGTH)."
        )
    return keywords.normalize(prefix).encode("utf-8")
