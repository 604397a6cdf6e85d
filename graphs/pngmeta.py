"""Read the text chunks of a PNG (pure Python), to restore a workflow from an output image."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WORKFLOW_KEY = "latentgraph_workflow"
PARAMETERS_KEY = "parameters"
_MAX_TEXT = 64 * 1024 * 1024


def read_text_chunks(path: str | Path) -> dict[str, str]:
    """All tEXt / zTXt / iTXt entries of a PNG file; raises ValueError if it is not a PNG
    or a text chunk is malformed."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError(f"{path}: not a PNG file")
    out: dict[str, str] = {}
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IEND":
            break
        try:
            _read_text_chunk(kind, body, out)
        except (IndexError, zlib.error, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: malformed {kind.decode('latin-1')} chunk: {exc}") from None
    return out


def _read_text_chunk(kind: bytes, body: bytes, out: dict[str, str]) -> None:
    if kind == b"tEXt":
        key, _, value = body.partition(b"\0")
        out[key.decode("latin-1")] = value.decode("latin-1")
    elif kind == b"zTXt":
        key, _, rest = body.partition(b"\0")
        out[key.decode("latin-1")] = _inflate(rest[1:]).decode("latin-1")
    elif kind == b"iTXt":
        key, _, rest = body.partition(b"\0")
        compressed, _method = rest[0], rest[1]
        _lang, _, rest = rest[2:].partition(b"\0")
        _tkey, _, text = rest.partition(b"\0")
        out[key.decode("latin-1")] = (_inflate(text) if compressed else text).decode("utf-8")


def _inflate(data: bytes) -> bytes:
    decompressor = zlib.decompressobj()
    result = decompressor.decompress(data, _MAX_TEXT)
    if decompressor.unconsumed_tail:
        raise ValueError("PNG text chunk too large")
    return result


def workflow_text(path: str | Path) -> str | None:
    """The workflow JSON embedded in an output PNG, or None."""
    return read_text_chunks(path).get(WORKFLOW_KEY)
