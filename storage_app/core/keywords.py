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

# The reference definition: NFC, ’ read as ', runs of letters, marks and digits
# (an apostrophe between two letters stays inside), each word lower-cased on its
# own. Only the regex module has the Unicode properties this needs.
_UNICODE_WORD = regex.compile(r"[\p{L}\p{M}\p{N}]+(?:(?<=[\p{L}\p{M}])'(?=\p{L})[\p{L}\p{M}\p{N}]+)*")
# The same pattern for lower-case ASCII, where the stdlib engine on bytes is faster.
_ASCII_WORD = re.compile(rb"[a-z0-9]+(?:(?<=[a-z])'(?=[a-z])[a-z0-9]+)*")

# The fast path maps every byte at once: ASCII letters lower-cased; digits, the
# apostrophe and every byte of a multi-byte UTF-8 sequence kept; every other ASCII
# byte (white space, punctuation, controls) becomes a space. Splitting on spaces
# then gives pieces that are exactly the words, except pieces holding an
# apostrophe or a non-ASCII character, which the exact pattern splits again.
_FAST_TABLE = bytes(
    byte + 32
    if 65 <= byte <= 90
    else byte
    if (97 <= byte <= 122 or 48 <= byte <= 57 or byte == 39 or byte >= 128)
    else 32
    for byte in range(256)
)


def normalize_keyword(keyword: str) -> str:
    """The form of a keyword under the ``words`` tokenizer: NFC, lower-cased, ' for ’."""
    if keyword.isascii():
        return keyword.lower()
    return unicodedata.normalize("NFC", keyword).lower().replace("\u2019", "'")


def tokenize_words(text: str) -> list[str]:
    """Lower-cased runs of letters, marks and digits; an apostrophe between letters is kept.

    The reference definition, token by token; ``count_words`` gives the same
    counts faster.
    """
    if text.isascii():
        return [word.decode() for word in _ASCII_WORD.findall(text.lower().encode())]
    normal = unicodedata.normalize("NFC", text).replace("\u2019", "'")
    return [word.lower() for word in _UNICODE_WORD.findall(normal)]


def _split_piece(piece: bytes) -> list[bytes]:
    """The words of one fast-path piece (lower-case ASCII and UTF-8 bytes, no ASCII separator)."""
    if piece.isascii():
        return _ASCII_WORD.findall(piece)
    text = piece.decode("utf-8").replace("\u2019", "'")
    return [word.lower().encode("utf-8") for word in _UNICODE_WORD.findall(text)]


def _count_pieces(data: bytes) -> tuple[int, dict[str, int]]:
    """``count_words``, with each word's UTF-8 bytes as a latin-1 string (one character per byte).

    Strings, because Python counts and hashes them faster than bytes; latin-1,
    because it maps bytes to characters one to one and back without a check.
    """
    if not data.isascii():
        text = data.decode("utf-8")
        if not unicodedata.is_normalized("NFC", text):
            data = unicodedata.normalize("NFC", text).encode("utf-8")
    lowered = data.translate(_FAST_TABLE).decode("latin-1")
    # split(" "), not split(): str.split() would also cut at the latin-1 characters
    # 0x85 and 0xA0, which here are continuation bytes of UTF-8 sequences.
    pieces = lowered.split(" ")
    counts = Counter(pieces)
    tokens = len(pieces) - counts.pop("", 0)
    if not data.isascii():
        special = [piece for piece in counts if "'" in piece or not piece.isascii()]
    elif "'" in lowered:
        special = [piece for piece in counts if "'" in piece]
    else:
        special = []
    for piece in special:
        occurrences = counts.pop(piece)
        words = _split_piece(piece.encode("latin-1"))
        tokens += occurrences * (len(words) - 1)
        for word in words:
            counts[word.decode("latin-1")] += occurrences
    return tokens, counts


def count_words(data: bytes) -> tuple[int, dict[bytes, int]]:
    """``tokenize_words`` of UTF-8 ``data`` as (token count, occurrences per UTF-8 word).

    Raises ``UnicodeDecodeError`` for data that is not UTF-8. C-speed for the
    common case: one ``bytes.translate``, one ``split``, one ``Counter``; only
    distinct pieces with an apostrophe or a non-ASCII character take the exact
    pattern.
    """
    tokens, counts = _count_pieces(data)
    return tokens, {piece.encode("latin-1"): occurrences for piece, occurrences in counts.items()}


def _count_fields(data: bytes) -> tuple[int, dict[str, int]]:
    """``_count_pieces`` for the ``fields`` tokenizer."""
    tokens = tokenize_fields(data.decode("utf-8"))
    return len(tokens), Counter(token.encode("utf-8").decode("latin-1") for token in tokens)


class Keywords:
    """One tokenizer setting: turns text into keyword counts and queries into keys."""

    def __init__(self, tokenizer: str = "words") -> None:
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}")
        self.tokenizer = tokenizer
        self._tokenize = tokenize_words if tokenizer == "words" else tokenize_fields
        self._normalize = normalize_keyword if tokenizer == "words" else go_lower
        self._count = _count_pieces if tokenizer == "words" else _count_fields

    def tokenize(self, text: str) -> list[str]:
        """Every token of ``text`` in order, duplicates kept."""
        return self._tokenize(text)

    def count_keywords(self, data: bytes) -> tuple[int, dict[bytes, int]]:
        """Tokenize UTF-8 ``data``: the number of tokens and the occurrences of each keyword (UTF-8).

        Raises ``UnicodeDecodeError`` if ``data`` is not UTF-8.
        """
        tokens, counts = self._count(data)
        return tokens, {piece.encode("latin-1"): occurrences for piece, occurrences in counts.items()}

    def count(self, data: bytes) -> tuple[int, dict[int, int]]:
        """Tokenize UTF-8 ``data``: the number of tokens and ``{key: occurrences}``.

        Raises ``UnicodeDecodeError`` if ``data`` is not UTF-8.
        """
        tokens, occurrences = self._count(data)
        per_key: dict[int, int] = {}
        for keyword, times in occurrences.items():
            key = _crc64_go_iso(keyword.encode("latin-1"))
            # Two keywords with one CRC share a counter, exactly as in counter-app.
            per_key[key] = per_key.get(key, 0) + times
        return tokens, per_key

    def count_with_texts(self, data: bytes) -> tuple[int, dict[int, int], list[bytes]]:
        """``count``, and the UTF-8 text of each key, in the order of the dict's keys.

        Two keywords with one CRC-64 share a key, which keeps the first one's text.
        """
        tokens, occurrences = self._count(data)
        per_key: dict[int, int] = {}
        texts: list[bytes] = []
        for keyword, times in occurrences.items():
            text = keyword.encode("latin-1")
            key = _crc64_go_iso(text)
            if key in per_key:
                per_key[key] += times
            else:
                per_key[key] = times
                texts.append(text)
        return tokens, per_key, texts

    def normalize(self, keyword: str) -> str:
        """``keyword`` as this tokenizer writes its tokens (what a lookup or a prefix is matched as)."""
        return self._normalize(keyword)

    def key_of(self, keyword: str) -> int:
        """The key a lookup of ``keyword`` reads: normalised like a token, then hashed."""
        return keyword_key(self._normalize(keyword))

    def keys_of(self, keywords: Iterable[str]) -> list[int]:
        """``key_of`` for each keyword, in order."""
        normalize = self._normalize
        return [_crc64_go_iso(normalize(keyword).encode("utf-8")) for keyword in keywords]
