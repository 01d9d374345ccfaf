from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_app.core.keywords import (
    Keywords,
    count_words,
    crc_extension_in_use,
    go_lower,
    keyword_key,
    normalize_keyword,
    tokenize_fields,
    tokenize_words,
)


def test_the_key_is_crc64_go_iso_with_its_check_value() -> None:
    assert keyword_key("123456789") == 0xB90956C775A41001


@pytest.mark.parametrize(
    ("keyword", "key"),
    [
        # Keys counter-app itself wrote (tests/data/counter-app/README.md).
        ("the", 0x32D8385000000000),
        ("fox", 0x232C303000000000),
        ("dog.", 0x5181BC3350000000),
        ("sleeps;", 0x4DEC6EA2D2DEFC40),
        ("straße", 0x3245D9740DD87C40),
        ("ünïcödé", 0xC6BECF93E977C8D9),
    ],
)
def test_keys_match_counter_app(keyword: str, key: int) -> None:
    assert keyword_key(keyword) == key


def test_crcmod_uses_its_c_extension() -> None:
    assert crc_extension_in_use()


def test_fields_splits_like_go_strings_fields_and_keeps_punctuation() -> None:
    text = "The quick brown fox jumps over the lazy dog. The dog sleeps; the FOX runs! Ünïcödé straße"
    assert tokenize_fields(text) == [
        "the", "quick", "brown", "fox", "jumps", "over", "the", "lazy", "dog.",
        "the", "dog", "sleeps;", "the", "fox", "runs!", "ünïcödé", "straße",
    ]  # fmt: skip


def test_fields_splits_on_unicode_spaces_go_knows_but_not_on_file_separators() -> None:
    # U+00A0, U+2003, U+3000 and U+0085 are spaces for Go; U+001F is not (Python would split on it).
    assert tokenize_fields("a\u00a0b\u2003c\u3000d\u0085e f\x1fg") == ["a", "b", "c", "d", "e", "f\x1fg"]


def test_fields_lowers_like_go_not_like_python() -> None:
    # Python lowers a final capital sigma to ς and İ to "i̇"; Go uses the simple mapping.
    assert go_lower("ΟΔΟΣ") == "οδοσ"
    assert go_lower("İSTANBUL") == "istanbul"
    assert tokenize_fields("ΟΔΟΣ") == ["οδοσ"]


def test_words_keeps_letters_digits_and_inner_apostrophes() -> None:
    assert tokenize_words("Hello, world! Don't") == ["hello", "world", "don't"]
    assert tokenize_words("rock'n'roll 'quoted' 42nd x_y 1'2") == ["rock'n'roll", "quoted", "42nd", "x", "y", "1", "2"]


def test_words_understands_unicode_text() -> None:
    assert tokenize_words("Ünïcödé STRASSE straße, naïve—café 日本語 हिन्दी") == [
        "ünïcödé", "strasse", "straße", "naïve", "café", "日本語", "हिन्दी",
    ]  # fmt: skip


def test_words_normalises_composed_forms_and_typographic_apostrophes() -> None:
    decomposed = "cafe\u0301"
    assert tokenize_words(decomposed) == ["café"]
    assert tokenize_words("Don’t") == ["don't"]
    assert Keywords("words").key_of("CAFE\u0301") == keyword_key("café")


@given(st.text())
def test_ascii_fast_path_agrees_with_the_unicode_path(text: str) -> None:
    ascii_text = text.encode("ascii", "ignore").decode()
    # The Unicode path is taken as soon as one non-ASCII character is present.
    assert tokenize_words(ascii_text + " é")[:-1] == tokenize_words(ascii_text)


@given(st.text())
def test_counting_agrees_with_the_reference_tokenizer(text: str) -> None:
    tokens, occurrences = count_words(text.encode("utf-8"))
    expected = Counter(word.encode("utf-8") for word in tokenize_words(text))
    assert (tokens, occurrences) == (sum(expected.values()), expected)


@pytest.mark.parametrize(
    "text",
    [
        "Don't 'quoted' o''clock rock'n'roll 1'2 a'1",
        "naïve—café CAFÉ ΟΔΟΣ. ΟΔΟΣ'S İstanbul Don’t x\u00a0y z\u2003w",
        "cafe\u0301 e\u0301\u0301 \u0301x a<\u0338b",
        "tab\tnew\nline\x1fcontrol\x00nul",
    ],
)
def test_counting_agrees_on_tricky_text(text: str) -> None:
    tokens, occurrences = count_words(text.encode("utf-8"))
    assert tokens == len(tokenize_words(text))
    assert occurrences == Counter(word.encode("utf-8") for word in tokenize_words(text))


def test_counting_refuses_text_that_is_not_utf8() -> None:
    with pytest.raises(UnicodeDecodeError):
        Keywords("words").count(b"caf\xe9")
    with pytest.raises(UnicodeDecodeError):
        Keywords("fields").count(b"caf\xe9")


@given(st.text())
def test_tokens_are_non_empty_and_already_normalised(text: str) -> None:
    words = tokenize_words(text)
    assert all(word and normalize_keyword(word) == word for word in words)
    fields = tokenize_fields(text)
    assert all(field and go_lower(field) == field for field in fields)


def test_count_returns_tokens_and_occurrences_per_key() -> None:
    tokens, per_key = Keywords("words").count(b"the cat and THE dog")
    assert tokens == 5
    assert per_key[keyword_key("the")] == 2
    assert sum(per_key.values()) == 5


def test_unknown_tokenizer_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown tokenizer"):
        Keywords("letters")
