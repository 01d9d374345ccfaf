"""bench.corpus without network: chunking, the offline sample, file selection, reuse."""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench import corpus
from bench.corpus import build_corpus, iter_chunks, sample_corpus

ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"


def assert_no_word_split(chunks: list[bytes]) -> None:
    """Every cut between two chunks has ASCII whitespace on one side."""
    for left, right in itertools.pairwise(chunks):
        assert left[-1] in ASCII_WHITESPACE or right[0] in ASCII_WHITESPACE, (left[-20:], right[:20])


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 7, 64, 1000, 10**6])
def test_chunks_join_back_to_the_text(chunk_bytes: int) -> None:
    text = sample_corpus(50_000)
    chunks = list(iter_chunks(text, chunk_bytes))
    assert b"".join(chunks) == text
    assert all(chunks)


def test_no_word_is_split_and_chunks_stay_within_size() -> None:
    text = sample_corpus(200_000)
    chunks = list(iter_chunks(text, 4096))
    assert b"".join(chunks) == text
    assert_no_word_split(chunks)
    # Markdown has no 4 kB run without whitespace, so no chunk needs to exceed the size.
    assert max(len(chunk) for chunk in chunks) <= 4096
    assert [word for chunk in chunks for word in chunk.split()] == text.split()


def test_every_kind_of_ascii_whitespace_is_a_cut_point() -> None:
    text = b"alpha\x0bbeta\x0cgamma\rdelta\teps\nzeta omega"
    chunks = list(iter_chunks(text, 8))
    assert b"".join(chunks) == text
    assert_no_word_split(chunks)
    assert all(len(chunk) <= 8 for chunk in chunks)


def test_a_run_without_whitespace_is_cut_at_the_size() -> None:
    text = b"x" * 25
    assert list(iter_chunks(text, 10)) == [b"x" * 10, b"x" * 10, b"x" * 5]


@pytest.mark.parametrize("chunk_bytes", [1, 2, 3, 4, 5, 10, 11])
def test_multibyte_characters_are_never_cut(chunk_bytes: int) -> None:
    text = ("é€𝄞ß" * 50).encode()  # 2-, 3-, 4- and 2-byte characters, no whitespace
    chunks = list(iter_chunks(text, chunk_bytes))
    assert b"".join(chunks) == text
    for chunk in chunks:
        chunk.decode("utf-8")  # raises if a character was cut
        # Only when the size is smaller than one character may a chunk exceed it, to hold that character.
        assert len(chunk) <= max(chunk_bytes, 4)


def test_chunks_of_empty_text_and_bad_sizes() -> None:
    assert list(iter_chunks(b"", 10)) == []
    assert list(iter_chunks(b"short", 10)) == [b"short"]
    with pytest.raises(ValueError):
        list(iter_chunks(b"text", 0))


@given(
    st.text(alphabet=st.sampled_from(list("ab é€𝄞\n\t")), max_size=300).map(str.encode),
    st.integers(min_value=1, max_value=40),
)
def test_chunking_properties(text: bytes, chunk_bytes: int) -> None:
    chunks = list(iter_chunks(text, chunk_bytes))
    assert b"".join(chunks) == text
    assert all(chunks)
    for chunk in chunks:
        chunk.decode("utf-8")
    for left, right in itertools.pairwise(chunks):
        # A cut away from whitespace is allowed only where the window had none.
        if any(space in left for space in ASCII_WHITESPACE):
            assert left[-1] in ASCII_WHITESPACE or right[0] in ASCII_WHITESPACE, (left, right)


def test_sample_corpus_is_the_repository_markdown_repeated() -> None:
    readme = (corpus.PROJECT_DIR / "README.md").read_bytes()
    one = sample_corpus(0)
    assert readme in one
    text = sample_corpus(len(one) * 3 + 1)
    assert len(text) >= len(one) * 3 + 1
    assert text == one * 4
    text.decode("utf-8")


def test_text_selection_prefers_reST_sources_and_skips_binary(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    html = tree / "usr/share/doc/pkg/html"
    (html / "_sources").mkdir(parents=True)
    (html / "_sources/page.rst.txt").write_text("The reST source.\n")
    (html / "page.html").write_text("<p>The reST source.</p>")
    (html / "notes.txt").write_text("Sphinx output other than _sources is left out.")
    dictd = tree / "usr/share/dictd"
    dictd.mkdir(parents=True)
    with gzip.open(dictd / "words.dict.dz", "wb") as out:
        out.write(b"A dictzip entry")  # no final newline: one is added
    (dictd / "words.index").write_text("entry\tA\tB\n")
    (dictd / "strings.dat").write_bytes(b"\0\0\0\x02binary")
    (dictd / "stray.txt").write_bytes(b"mostly UTF-8 with one stray latin-1 byte: caf\xe9" + b" text" * 400 + b"\n")
    (dictd / "legacy.txt").write_bytes("Müller Straße".encode("latin-1") * 10)
    (tree / "usr/share/doc/pkg/copyright").write_text("Licence boilerplate.\n")

    stats = corpus.PackageStats(name="pkg", version="1")
    texts = list(corpus._texts(tree, stats))
    joined = b"".join(data for data, _ in texts).decode("utf-8")
    assert "The reST source.\n" in joined
    assert "A dictzip entry\n" in joined
    assert "caf\ufffd text" in joined
    for left_out in ("<p>", "Sphinx output", "entry\tA", "binary", "Müller", "Licence"):
        assert left_out not in joined
    assert sum(invalid for _, invalid in texts) == 1


def test_an_existing_corpus_is_reused_without_network(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = sample_corpus(10_000)
    (tmp_path / "corpus.txt").write_bytes(text)
    manifest = {
        "format": corpus.MANIFEST_FORMAT,
        "min_bytes": 10_000,
        "packages": [{"name": "dict-devil", "version": "1.0-13.1"}],
        "files": 1,
        "bytes": len(text),
        "sha256": hashlib.sha256(text).hexdigest(),
    }
    (tmp_path / "corpus.json").write_text(json.dumps(manifest))

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the corpus was rebuilt")

    monkeypatch.setattr(corpus.subprocess, "run", no_network)
    assert build_corpus(tmp_path, 5_000, ["dict-devil"], progress=False) == tmp_path / "corpus.txt"
    # A corpus whose bytes no longer match its manifest is not reused.
    (tmp_path / "corpus.txt").write_bytes(text[:-1] + b"!")
    with pytest.raises(AssertionError, match="rebuilt"):
        build_corpus(tmp_path, 5_000, ["dict-devil"], progress=False)


def test_package_names_are_checked_before_apt_sees_them(tmp_path: Path) -> None:
    with pytest.raises(corpus.CorpusError, match="not a Debian package name"):
        build_corpus(tmp_path, 1, ["-oDebug::pkgAcquire=1"], progress=False)
