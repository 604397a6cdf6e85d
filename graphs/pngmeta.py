"""Read the text chunks of a PNG (pure Python), to restore a workflow from an output image.

Hostile files cost bounded time and memory: the file is read chunk by chunk (image data is
skipped, not read); each text chunk inflates to at most MAX_CHUNK_TEXT and all of them together
to at most MAX_TOTAL_TEXT (past that the file is refused with a ValueError); the first chunk
that is not well formed (a type that is not four letters, a length past the end of the file,
a bad CRC, the file's end) stops the read, keeping the text read before it; a text chunk whose
contents are malformed is refused with a ValueError.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

from . import limits, safe_io

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WORKFLOW_KEY = "latentgraph_workflow"
# The run's readable parameters as JSON; "parameters" holds A1111's infotext (nodes/infotext.py),
# which A1111, Civitai and other tools read.
PARAMETERS_KEY = "latentgraph_parameters"
INFOTEXT_KEY = "parameters"
# A workflow file is at most limits.MAX_FILE_BYTES; its text chunk can be no larger.
MAX_CHUNK_TEXT = limits.MAX_FILE_BYTES
MAX_TOTAL_TEXT = 64 * 1024 * 1024
_TEXT_KINDS = (b"tEXt", b"zTXt", b"iTXt")
_MAX_CHUNK_LENGTH = 2**31 - 1  # the PNG spec's limit


def read_text_chunks(path: str | os.PathLike) -> dict[str, str]:
    """All tEXt / zTXt / iTXt entries of a PNG file; raises ValueError if it is not a PNG file
    (or not a regular file), a text chunk is malformed, or the text is over the limits."""
    out: dict[str, str] = {}
    budget = [MAX_TOTAL_TEXT]
    with safe_io.open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if handle.read(len(PNG_SIGNATURE)) != PNG_SIGNATURE:
            raise ValueError(f"{path}: not a PNG file")
        pos = len(PNG_SIGNATURE)
        while True:
            header = handle.read(8)
            if len(header) < 8:
                break  # truncated: what was read so far stands
            length, kind = struct.unpack(">I4s", header)
            if not (kind.isalpha() and kind.isascii()) or length > _MAX_CHUNK_LENGTH \
                    or pos + 12 + length > size:
                break  # not a chunk (zeros, garbage, a length past the end): stop here
            if kind == b"IEND":
                break
            if kind in _TEXT_KINDS:
                body = handle.read(length)
                (crc,) = struct.unpack(">I", handle.read(4))
                if zlib.crc32(kind + body) != crc:
                    break
                try:
                    _read_text_chunk(kind, body, out, budget)
                except (IndexError, zlib.error, UnicodeDecodeError) as exc:
                    raise ValueError(f"{path}: malformed {kind.decode('ascii')} chunk: "
                                     f"{exc}") from None
                except ValueError as exc:
                    raise ValueError(f"{path}: {exc}") from None
            else:
                handle.seek(length + 4, os.SEEK_CUR)
            pos += 12 + length
    return out


def _read_text_chunk(kind: bytes, body: bytes, out: dict[str, str], budget: list[int]) -> None:
    if kind == b"tEXt":
        key, _, value = body.partition(b"\0")
        _spend(budget, len(value))
        out[key.decode("latin-1")] = value.decode("latin-1")
    elif kind == b"zTXt":
        key, _, rest = body.partition(b"\0")
        out[key.decode("latin-1")] = _inflate(rest[1:], budget).decode("latin-1")
    elif kind == b"iTXt":
        key, _, rest = body.partition(b"\0")
        compressed, _method = rest[0], rest[1]
        _lang, _, rest = rest[2:].partition(b"\0")
        _tkey, _, text = rest.partition(b"\0")
        if not compressed:
            _spend(budget, len(text))
        out[key.decode("latin-1")] = (_inflate(text, budget) if compressed else text).decode("utf-8")


def _spend(budget: list[int], size: int) -> None:
    if size > MAX_CHUNK_TEXT:
        raise ValueError(f"a text chunk holds more than {MAX_CHUNK_TEXT:,} bytes")
    budget[0] -= size
    if budget[0] < 0:
        raise ValueError(f"the text chunks hold more than {MAX_TOTAL_TEXT:,} bytes in all")


def _inflate(data: bytes, budget: list[int]) -> bytes:
    """Inflate at most what the per-chunk and total limits leave, never more."""
    limit = min(MAX_CHUNK_TEXT, budget[0]) + 1
    decompressor = zlib.decompressobj()
    result = decompressor.decompress(data, limit)
    _spend(budget, len(result))
    return result


def workflow_text(path: str | Path) -> str | None:
    """The workflow JSON embedded in an output PNG, or None."""
    return read_text_chunks(path).get(WORKFLOW_KEY)
