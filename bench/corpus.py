"""A real-text benchmark corpus built from Debian packages, and a way to cut it into chunks.

    .venv/bin/python -m bench.corpus --dest .bench/corpus --min-mb 50

``build_corpus`` downloads the packages with ``apt-get download`` (from the
machine's configured Debian mirror), unpacks them with ``dpkg -x`` and
concatenates the text they ship into ``DEST/corpus.txt``, with a manifest in
``DEST/corpus.json``. A second call with the same packages reuses both without
touching the network. ``iter_chunks`` splits the text at whitespace so that no
word straddles two chunks; ``sample_corpus`` is a tiny, offline stand-in made of
this repository's own Markdown for smoke tests.

Django-free on purpose: the benchmarks import it before any settings exist.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

PROJECT_DIR = Path(__file__).resolve().parents[1]

# Measured on Debian 12 (bookworm): about 92 MB of text, so comfortably above the
# 50 MB default even if a future version of one package shrinks. gcide (40 MB) and
# WordNet (31 MB) are most of it; the rest adds prose of other registers (reST
# documentation, quotations, glossaries) so the word distribution is not only
# dictionary entries. Left out on purpose: fortunes-min (a subset of fortunes),
# jargon-text (the same lexicon as dict-jargon), fortunes-off (not in bookworm),
# dict-elements (54 kB of tabular data in latin-1).
DEFAULT_PACKAGES: tuple[str, ...] = (
    "dict-gcide",
    "dict-wn",
    "python3.11-doc",
    "dict-foldoc",
    "fortunes",
    "dict-jargon",
    "dict-vera",
    "dict-devil",
)

MIB = 1024 * 1024
CORPUS_NAME = "corpus.txt"
MANIFEST_NAME = "corpus.json"
# Bump when the file-selection rules below change: an old corpus would otherwise be reused.
MANIFEST_FORMAT = 1

# Debian policy's package-name syntax; anything else (e.g. "-o...") must never reach apt-get's argv.
_PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")

# The bytes Python's bytes.isspace() accepts. Both of the service's tokenizers
# (str.split and the Go-compatible one) split on every one of them, so a cut here
# can never join or split a word.
_ASCII_WHITESPACE = b" \t\n\r\x0b\x0c"

# A file whose invalid UTF-8 sequences exceed this share of its bytes is taken to be
# in a legacy 8-bit encoding and skipped: guessing latin-1 vs cp1252 would invent
# text, while a handful of stray bytes in a UTF-8 file (gcide has 3 in 40 MB) is
# better replaced with U+FFFD and counted in the manifest.
_MAX_INVALID_SHARE = 0.001

# Suffixes that are never prose: markup, scripts, dictd's headword/offset indexes.
_SKIP_SUFFIXES = (".html", ".htm", ".html.gz", ".js", ".css", ".index", ".inv", ".svg", ".png")
# Debian packaging boilerplate and duplicated formats of the same text: the Python
# docs ship an info manual with the same content as the reST sources we take.
_SKIP_DIRS = ("usr/share/info/", "usr/share/lintian/", "usr/share/doc-base/", "usr/share/bug/", "usr/share/man/")
_SKIP_NAMES = re.compile(r"copyright|.*changelog.*|NEWS\.Debian.*|README\.Debian.*")

_APT_STALE_LISTS = (
    "Unable to locate package",
    "has no installation candidate",
    "Can't select",
    "404",
    "Failed to fetch",
)


class CorpusError(RuntimeError):
    """The corpus cannot be built as asked (missing tool, unknown package, too little text)."""


@dataclass
class PackageStats:
    """What one package contributed to the corpus, as recorded in the manifest."""

    name: str
    version: str
    files: int = 0
    bytes: int = 0
    skipped_files: int = 0
    invalid_utf8_sequences: int = 0


def build_corpus(
    dest: Path,
    min_bytes: int = 50 * MIB,
    packages: Sequence[str] = DEFAULT_PACKAGES,
    progress: bool = True,
) -> Path:
    """Return ``dest/corpus.txt``: UTF-8 text from ``packages``, at least ``min_bytes`` long.

    The corpus is all the text the packages ship (not cut at ``min_bytes``), so
    its content depends only on the packages and their versions. An existing
    corpus is reused when its manifest lists the same packages, records at least
    ``min_bytes`` and its size and sha256 still match. Raises ``CorpusError`` when
    a tool or package is missing or the packages yield fewer than ``min_bytes``.
    """
    dest = Path(dest)
    packages = list(packages)
    for name in packages:
        if not _PACKAGE_NAME.fullmatch(name):
            raise CorpusError(f"not a Debian package name: {name!r}")
    if not packages:
        raise CorpusError("no packages given")
    corpus_path = dest / CORPUS_NAME
    manifest_path = dest / MANIFEST_NAME
    if _reusable(corpus_path, manifest_path, packages, min_bytes):
        return corpus_path

    for tool in ("apt-get", "dpkg", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise CorpusError(f"{tool} not found: the corpus is built from Debian packages")
    dest.mkdir(parents=True, exist_ok=True)
    report = _Progress(len(packages), enabled=progress)
    stats: list[PackageStats] = []
    digest = hashlib.sha256()
    total = 0
    # The corpus is written next to its final place and renamed, so a reader never
    # sees a half-written file and an interrupted build leaves the old one intact.
    fd, tmp_name = tempfile.mkstemp(prefix=".corpus-", suffix=".tmp", dir=dest)
    tmp_path = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryDirectory(prefix="corpus-build-") as work:
            apt = _Apt()
            for index, name in enumerate(packages, 1):
                report.update(index, name, total, force=True)
                deb = apt.download(name, Path(work) / f"{index}-dl")
                package = PackageStats(name=name, version=_deb_version(deb))
                tree = Path(work) / f"{index}-tree"
                _run(["dpkg", "-x", str(deb), str(tree)], f"dpkg -x {deb.name}")
                for data, invalid in _texts(tree, package):
                    out.write(data)
                    digest.update(data)
                    package.files += 1
                    package.bytes += len(data)
                    package.invalid_utf8_sequences += invalid
                    total += len(data)
                    report.update(index, name, total)
                # An unpacked package can be 70 MB (python3.11-doc): free it before the next one.
                shutil.rmtree(tree)
                deb.unlink()
                stats.append(package)
                report.package_done(index, package, total)
            report.finish()
        if total < min_bytes:
            raise CorpusError(
                f"the packages {', '.join(packages)} yielded {total:,} bytes of text, "
                f"fewer than the {min_bytes:,} asked for: add packages or lower min_bytes"
            )
        # mkstemp creates the file private (0600); the corpus is ordinary shared data.
        tmp_path.chmod(0o644)
        os.replace(tmp_path, corpus_path)
    finally:
        tmp_path.unlink(missing_ok=True)

    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "min_bytes": min_bytes,
        "packages": [asdict(package) for package in stats],
        "files": sum(package.files for package in stats),
        "bytes": total,
        "sha256": digest.hexdigest(),
    }
    _write_atomically(manifest_path, json.dumps(manifest, indent=2).encode() + b"\n")
    return corpus_path


def iter_chunks(text: bytes, chunk_bytes: int) -> Iterator[bytes]:
    """Yield consecutive pieces of ``text`` of at most about ``chunk_bytes`` bytes each.

    Every byte of ``text`` is in exactly one chunk, in order, so
    ``b"".join(iter_chunks(text, n)) == text``. A cut is made only next to ASCII
    whitespace (a chunk ends with whitespace, or the next one starts with it), so
    no whitespace-separated word is split. A window of ``chunk_bytes`` with no
    whitespace at all is cut at ``chunk_bytes``, moved back to the start of a
    UTF-8 character; only if ``chunk_bytes`` is smaller than one character does a
    chunk grow past it (by at most 3 bytes) to hold that whole character.
    """
    if chunk_bytes < 1:
        raise ValueError("chunk_bytes must be at least 1")
    start, size = 0, len(text)
    while size - start > chunk_bytes:
        end = start + chunk_bytes
        if text[end] in _ASCII_WHITESPACE:
            cut = end
        else:
            # The chunk ends just after the last whitespace in the window. rfind
            # scans from the end, and each later kind of whitespace is only looked
            # for after the best cut so far, so real text costs a few bytes per chunk.
            last = start - 1
            for space in _ASCII_WHITESPACE:
                last = max(last, text.rfind(space, last + 1, end))
            cut = last + 1 if last >= start else _utf8_boundary(text, start, end)
        yield text[start:cut]
        start = cut
    if start < size:
        yield text[start:]


def sample_corpus(min_bytes: int) -> bytes:
    """Return at least ``min_bytes`` of real text without network: this repository's Markdown.

    ``README.md`` and ``docs/*.md`` (sorted) are concatenated, each ending in a
    newline, and the whole is repeated until it reaches ``min_bytes``; at least one
    full copy is returned, so the result is never empty.
    """
    paths = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    parts = [path.read_bytes() for path in paths if path.is_file()]
    one_copy = b"".join(part if part.endswith(b"\n") else part + b"\n" for part in parts)
    if not one_copy.strip():
        raise CorpusError(f"no Markdown text found under {PROJECT_DIR}")
    copies = max(1, -(-min_bytes // len(one_copy)))
    return one_copy * copies


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build (or reuse) the corpus, print its path and size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=PROJECT_DIR / ".bench" / "corpus", help="output directory")
    parser.add_argument("--min-mb", type=float, default=50.0, help="fail unless the corpus has this many MiB")
    parser.add_argument(
        "--packages",
        default=",".join(DEFAULT_PACKAGES),
        help="comma-separated Debian packages (default: %(default)s)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    packages = [name.strip() for name in args.packages.split(",") if name.strip()]
    started = time.monotonic()
    try:
        path = build_corpus(args.dest, int(args.min_mb * MIB), packages, progress=not args.quiet)
    except CorpusError as error:
        print(f"bench.corpus: {error}", file=sys.stderr)
        return 1
    size = path.stat().st_size
    print(f"{path}\t{size} bytes ({size / MIB:.1f} MiB, {time.monotonic() - started:.1f} s)")
    return 0


def _reusable(corpus_path: Path, manifest_path: Path, packages: list[str], min_bytes: int) -> bool:
    """Whether an earlier build can stand: same packages, enough bytes, file unchanged since."""
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        recorded = [package["name"] for package in manifest["packages"]]
        if manifest.get("format") != MANIFEST_FORMAT or recorded != packages or manifest["bytes"] < min_bytes:
            return False
        if corpus_path.stat().st_size != manifest["bytes"]:
            return False
    except (OSError, ValueError, KeyError, TypeError):
        return False
    # Hashing ~90 MB costs a fraction of a second and catches a truncated or edited corpus.
    digest = hashlib.sha256()
    with corpus_path.open("rb") as corpus:
        while block := corpus.read(1 << 20):
            digest.update(block)
    return bool(digest.hexdigest() == manifest["sha256"])


def _texts(tree: Path, package: PackageStats) -> Iterator[tuple[bytes, int]]:
    """Yield (UTF-8 bytes ending in a newline, invalid sequences replaced) per text file of ``tree``.

    Files come in sorted path order so that a corpus is reproducible byte for byte.
    """
    paths = sorted(path for path in tree.rglob("*") if path.is_file() and not path.is_symlink())
    # Sphinx ships each page both as HTML and as its reST source under _sources;
    # the source is the text without markup, so it is the only part of such a tree we take.
    sphinx_roots = {path.parent for path in tree.rglob("_sources") if path.is_dir()}
    for path in paths:
        relative = path.relative_to(tree).as_posix()
        if _skipped(path, relative, sphinx_roots):
            package.skipped_files += 1
            continue
        data = _read(path)
        text = _decode(data)
        if text is None:
            package.skipped_files += 1
            continue
        decoded, invalid = text
        if not decoded.strip():
            continue
        if invalid:
            data = decoded.encode("utf-8")
        # A newline between files keeps the last word of one from fusing with the first of the next.
        yield (data if data.endswith(b"\n") else data + b"\n"), invalid


def _skipped(path: Path, relative: str, sphinx_roots: set[Path]) -> bool:
    """Whether a file is markup, packaging boilerplate or a duplicate format (see the _SKIP_* rules)."""
    for root in sphinx_roots:
        if path.is_relative_to(root):
            return not (path.is_relative_to(root / "_sources") and path.suffix == ".txt")
    return (
        relative.lower().endswith(_SKIP_SUFFIXES)
        or relative.startswith(_SKIP_DIRS)
        or (relative.startswith("usr/share/doc/") and _SKIP_NAMES.fullmatch(path.name) is not None)
    )


def _read(path: Path) -> bytes:
    """The file's bytes, gunzipped for ``.gz`` and dictzip ``.dz`` (a gzip with random-access extras)."""
    if path.suffix in (".gz", ".dz"):
        try:
            with gzip.open(path, "rb") as compressed:
                return compressed.read()
        except (OSError, EOFError, zlib.error):
            return b"\0"  # not really gzip: let the binary check reject it
    return path.read_bytes()


def _decode(data: bytes) -> tuple[str, int] | None:
    """Return (text, invalid UTF-8 sequences replaced), or None for binary or legacy-encoded data."""
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8"), 0
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    invalid = text.count("\ufffd") - data.count("\ufffd".encode())
    if invalid > len(data) * _MAX_INVALID_SHARE:
        return None
    return text, invalid


def _utf8_boundary(text: bytes, start: int, end: int) -> int:
    """The cut nearest ``end`` that is after ``start`` and not inside a UTF-8 character."""
    cut = end
    while cut > start and 0x80 <= text[cut] <= 0xBF:  # a continuation byte: back off
        cut -= 1
    if cut == start:
        # The window holds less than one character: take the whole character instead.
        cut = end
        while cut < len(text) and 0x80 <= text[cut] <= 0xBF:
            cut += 1
    return cut


def _deb_version(deb: Path) -> str:
    """The exact Debian version recorded in a .deb's control file."""
    return _run(["dpkg-deb", "-f", str(deb), "Version"], f"dpkg-deb -f {deb.name}").strip()


def _run(command: list[str], what: str) -> str:
    """Run a command; return its stdout, or raise CorpusError with its stderr."""
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise CorpusError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


class _Apt:
    """``apt-get download`` with at most one ``apt-get update``, only when the lists look stale."""

    def __init__(self) -> None:
        self.updated = False

    def download(self, name: str, directory: Path) -> Path:
        """Download package ``name`` into ``directory``; return the .deb."""
        directory.mkdir()
        while True:
            # Output is captured: as root apt warns that its _apt sandbox user cannot
            # write to a private temporary directory, which is harmless here.
            result = subprocess.run(
                ["apt-get", "download", "-q", name],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            debs = list(directory.glob("*.deb"))
            if result.returncode == 0 and len(debs) == 1:
                return debs[0]
            error = (result.stderr or result.stdout).strip()
            if self.updated or not any(sign in error for sign in _APT_STALE_LISTS):
                raise CorpusError(f"apt-get download {name} failed: {error[-2000:]}")
            if os.geteuid() != 0:
                raise CorpusError(
                    f"apt-get download {name} failed, probably because the package lists are missing "
                    f"or outdated: run 'sudo apt-get update' and try again ({error[-500:]})"
                )
            _run(["apt-get", "update", "-qq"], "apt-get update")
            self.updated = True


class _Progress:
    """A live line on a terminal; otherwise one line per package; nothing when disabled."""

    def __init__(self, count: int, enabled: bool, stream: TextIO = sys.stderr) -> None:
        self.count = count
        self.enabled = enabled
        self.stream = stream
        self.live = enabled and stream.isatty()
        self.shown = 0.0

    def update(self, index: int, name: str, total: int, force: bool = False) -> None:
        """Refresh the live line, at most ten times a second unless ``force``."""
        now = time.monotonic()
        if self.live and (force or now - self.shown >= 0.1):
            self.shown = now
            self.stream.write(f"\rcorpus: package {index}/{self.count} {name}: {total / MIB:.1f} MiB collected\x1b[K")
            self.stream.flush()

    def package_done(self, index: int, package: PackageStats, total: int) -> None:
        """Report one finished package."""
        if self.live:
            self.update(index, package.name, total, force=True)
        elif self.enabled:
            print(
                f"corpus: package {index}/{self.count} {package.name} {package.version}: {package.files} files, "
                f"{package.bytes / MIB:.1f} MiB (total {total / MIB:.1f} MiB)",
                file=self.stream,
                flush=True,
            )

    def finish(self) -> None:
        """End the live line."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


if __name__ == "__main__":
    raise SystemExit(main())
