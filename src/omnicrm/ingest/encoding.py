"""Text encodings of import files: one pass that hashes, counts lines and samples; UTF-8 checks; transcoding.

DuckDB reads only UTF-8 here (its ``encodings`` extension is not available offline), so a file in
another encoding is either refused with a message that names the likely encoding and the option to
pass, or transcoded by us, streaming, to a temporary UTF-8 file.
"""

from __future__ import annotations

import codecs
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from omnicrm.errors import ImportFileError, InputError

__all__ = [
    "FileScan",
    "check_utf8",
    "guess_encoding",
    "normalise_encoding",
    "not_utf8_error",
    "read_sample",
    "scan_file",
    "transcode_to_utf8",
]

CHUNK = 4 * 1024 * 1024
SAMPLE = 1024 * 1024
_UTF8 = {"utf-8", "utf8", "utf_8", "utf-8-sig", "utf_8_sig"}

Advance = Callable[[int], None]


@dataclass(frozen=True)
class FileScan:
    """What one read of the file tells: content hash, size, physical line count, first bytes."""

    sha256: str
    size: int
    lines: int
    sample: bytes


def scan_file(path: Path, advance: Advance | None = None, stop: threading.Event | None = None) -> FileScan:
    """Hash the file, count its lines (a last line without newline counts) and keep a sample.

    ``stop`` (set from another thread) abandons the scan with ``InterruptedError``."""
    digest = hashlib.sha256()
    size = newlines = 0
    sample = b""
    last = b""
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            if stop is not None and stop.is_set():
                raise InterruptedError(f"scan of {path} stopped")
            digest.update(chunk)
            newlines += chunk.count(b"\n")
            if len(sample) < SAMPLE:
                sample += chunk[: SAMPLE - len(sample)]
            size += len(chunk)
            last = chunk[-1:]
            if advance:
                advance(len(chunk))
    lines = newlines + (1 if size and last != b"\n" else 0)
    return FileScan(sha256=digest.hexdigest(), size=size, lines=lines, sample=sample)


def read_sample(path: Path) -> bytes:
    """The file's first bytes: the ``sample`` a scan keeps."""
    with open(path, "rb") as fh:
        return fh.read(SAMPLE)


def _decodes(sample: bytes, encoding: str) -> str | None:
    """The decoded sample if it is valid in ``encoding`` (a cut-off last character is allowed)."""
    try:
        return codecs.getincrementaldecoder(encoding)("strict").decode(sample, final=False)
    except (UnicodeDecodeError, LookupError):
        return None


def guess_encoding(sample: bytes) -> str | None:
    """The most likely encoding of a non-UTF-8 sample; GB18030/GBK first, since Chinese exports use it."""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    text = _decodes(sample, "gb18030")
    if text is not None:
        wide = [c for c in text if ord(c) > 127]
        if wide and sum("\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" for c in wide) >= 0.8 * len(wide):
            return "gbk"
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    return best.encoding if best is not None else None


def _advice(name: str, guess: str | None) -> str:
    if guess in ("gbk", "gb18030", "gb2312"):
        return (
            f"{name} is not UTF-8 (looks like GBK/GB18030, common in Tmall/JD exports); run again with --encoding gbk"
        )
    if guess == "utf-16":
        return (
            f"{name} is not UTF-8 (looks like UTF-16, as Excel saves 'Unicode text'); run again with --encoding utf-16"
        )
    if guess:
        return f"{name} is not UTF-8 (looks like {guess}); run again with --encoding {guess}"
    return (
        f"{name} is not UTF-8 and its encoding could not be recognised; "
        "save it as UTF-8 or run again with --encoding ENCODING"
    )


def check_utf8(name: str, sample: bytes) -> None:
    """Raise a clear ImportFileError when the sample is not UTF-8 (a UTF-8 BOM is fine).

    A UTF-8 file with a stray line in another encoding (under 1% of the sample's lines, header intact)
    passes: DuckDB rejects those lines and they are quarantined like any other unreadable row.
    """
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFileError(_advice(name, "utf-16"))
    if _decodes(sample, "utf-8") is not None:
        return
    lines = sample.split(b"\n")[:-1] or [sample]  # the last piece may be cut mid-character
    bad = sum(_decodes(line, "utf-8") is None for line in lines)
    if _decodes(lines[0], "utf-8") is not None and bad * 100 <= len(lines):
        return
    raise ImportFileError(_advice(name, guess_encoding(sample)))


def not_utf8_error(name: str, sample: bytes, detail: str) -> ImportFileError:
    """The error for a file DuckDB found invalid UTF-8 in (beyond the checked sample)."""
    guess = guess_encoding(sample) if _decodes(sample, "utf-8") is None else None
    return ImportFileError(f"{_advice(name, guess)} ({detail})")


def normalise_encoding(encoding: str | None) -> str | None:
    """The codec name to transcode from, or None when the file is to be read as UTF-8."""
    if encoding is None or encoding.lower().replace("-", "_") in {e.replace("-", "_") for e in _UTF8}:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"unknown encoding '{encoding}'; use a Python codec name such as gbk, gb18030, big5, utf-16, latin-1"
        ) from None


def transcode_to_utf8(source: Path, encoding: str, target: Path, name: str, advance: Advance | None = None) -> int:
    """Stream ``source`` from ``encoding`` into UTF-8 at ``target``; return its physical line count."""
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    newlines = offset = 0
    last = ""
    first = True
    with open(source, "rb") as src, open(target, "w", encoding="utf-8", newline="") as dst:
        while True:
            chunk = src.read(CHUNK)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                where = offset + exc.start
                hint = "; try --encoding gb18030" if encoding in ("gbk", "gb2312", "cp936") else ""
                raise ImportFileError(
                    f"{name} is not valid {encoding}: undecodable bytes at byte offset {where:,}{hint}"
                ) from None
            if first and text.startswith("\ufeff"):
                text = text[1:]
            first = first and not text
            dst.write(text)
            newlines += text.count("\n")
            if text:
                last = text[-1]
            offset += len(chunk)
            if advance and chunk:
                advance(len(chunk))
            if not chunk:
                break
    return newlines + (1 if last and last != "\n" else 0)
