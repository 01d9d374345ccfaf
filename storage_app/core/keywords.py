"""Keywords: the two tokenizers and the 64-bit key of a keyword.

The key is CRC-64/GO-ISO of the keyword's UTF-8 bytes, the same number
counter-app computes, so the keys of a mixed cluster agree.

Two tokenizers:

* ``fields`` is counter-app's: Go's ``strings.Fields(strings.ToLower(text))``.
  Splits on Unicode white space, lower-cases, keeps punctuation
  (``Hello,`` and ``hello`` are different keywords).
* ``words`` (the default) is what a user of a keyword counter expects:
  lower-cased runs of Unicode letters, marks and digits; an apostrophe between
  two letters stays inside the word (``Don't`` gives ``don't``). Text is
  NFC-normalised first and a typographic apostrophe (U+2019) is written as
  ``'``, so ``café`` typed either way and ``don’t`` are the keywords users mean.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable

import crcmod
import regex

TOKENIZERS = ("words", "fields")

# Go's crc64.ISO table with Checksum: reflected polynomial 0x1B, the register
# starts at all ones and the result is inverted (crcmod folds the initial
# inversion into xorOut, hence initCrc=0).
_crc64_go_iso: Callable[[bytes], int] = crcmod.mkCrcFun(
    0x1000000000000001B, initCrc=0, rev=True, xorOut=0xFFFFFFFFFFFFFFFF
)


def crc_extension_in_use() -> bool:
    """True when crcmod computes with its C extension (the pure-Python one is ~50x slower)."""
    return bool(sys.modules["crcmod.crcmod"]._usingExtension)


def keyword_key(keyword: str) -> int:
    """The 64-bit key of an already normalised keyword: CRC-64/GO-ISO of its UTF-8."""
    return _crc64_go_iso(keyword.encode("utf-8"))


# --- fields: counter-app's tokenizer -------------------------------------------------

# Python's str.split() also splits on U+001C..U+001F, which Go's unicode.IsSpace
# does not; every other white-space character is the same in both.
_PYTHON_ONLY_SPACE = re.compile("[\x1c-\x1f]")
_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
# Python's lower() uses full case mapping; Go's ToLower the simple one. The two
# differ only for U+0130 (İ -> "i̇" vs "i") and for the word-final sigma, which
# Python writes as ς and Go as σ.
_GO_SIMPLE_LOWER = {0x130: "i", 0x3A3: "σ"}


def go_lower(text: str) -> str:
    """Lower-case exactly like Go's strings.ToLower."""
    if text.isascii():
        return text.lower()
    return text.translate(_GO_SIMPLE_LOWER).lower()


def tokenize_fields(text: str) -> list[str]:
    """Split like Go's strings.Fields(strings.ToLower(text))."""
    lowered = go_lower(text)
    if _PYTHON_ONLY_SPACE.search(lowered) is None:
        return lowered.split()
    return [token for token in _GO_SPACE.split(lowered) if token]


# --- words: the default ----------------------------------------------------------------

# Plain ASCII text (the common case) takes the stdlib engine, which is faster;
# everything else needs Unicode properties (letters, combining marks, digits),
# which only the regex module offers. Both give the same tokens for ASCII text.
_ASCII_WORD = re.compile(r"[a-z0-9]+(?:(?<=[a-z])'(?=[a-z])[a-z0-9]+)*")
_UNICODE_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:(?<=[\p{L}\p{M}])'(?=\p{L})[\p{L}\p{M}\p{N}]+)*")


def normalize_keyword(keyword: str) -> str:
    """The form of a keyword under the ``words`` tokenizer: NFC, lower-cased, ' for ’."""
    if keyword.isascii():
        return keyword.lower()
    return unicodedata.normalize("NFC", keyword).lower().replace("\u2019", "'")


def tokenize_words(text: str) -> list[str]:
    """Lower-cased runs of letters, marks and digits; an apostrophe between letters is kept."""
    if text.isascii():
        return _ASCII_WORD.findall(text.lower())
    words: list[str] = _UNICODE_WORD.findall(normalize_keyword(text))
    return words


class Keywords:
    """One tokenizer setting: turns text into keyword counts and queries into keys."""

    def __init__(self, tokenizer: str = "words") -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}")
        self.tokenizer = tokenizer
        self._tokenize = tokenize_words if tokenizer == "words" else tokenize_fields
        self._normalize = normalize_keyword if tokenizer == "words" else go_lower

    def tokenize(self, text: str) -> list[str]:
        """Every token of ``text`` in order, duplicates kept."""
        return self._tokenize(text)

    def count(self, text: str) -> tuple[int, dict[int, int]]:
        """Tokenize ``text``; return the number of tokens and ``{key: occurrences}``."""
        tokens = self._tokenize(text)
        per_key: dict[int, int] = {}
        for keyword, occurrences in Counter(tokens).items():
            key = keyword_key(keyword)
            # Two keywords with one CRC share a counter, exactly as in counter-app.
            per_key[key] = per_key.get(key, 0) + occurrences
        return len(tokens), per_key

    def key_of(self, keyword: str) -> int:
        """The key a lookup of ``keyword`` reads: normalised like a token, then hashed."""
        return keyword_key(self._normalize(keyword))

    def keys_of(self, keywords: Iterable[str]) -> list[int]:
        """``key_of`` for each keyword, in order."""
        return [self.key_of(keyword) for keyword in keywords]
