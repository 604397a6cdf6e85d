"""Textual-inversion embeddings: files read into vectors per text encoder, and prompts split into
text and embedding references.

Formats: A1111 ``.pt``/``.safetensors`` (``string_to_param``, ``emb_params``), diffusers'
``learned_embeds`` (one key: the token), and SDXL's (``clip_l`` for the first text encoder,
``clip_g`` for the second). A prompt names one as ``embedding:name`` (ComfyUI) or by its bare file
name (A1111), found in the embeddings folders (nodes/model_folders.py). The vectors take the
place of placeholder tokens' embeddings as the encoder runs (``TextEncoder.encode``), exactly what
diffusers' ``load_textual_inversion`` achieves by adding tokens, without changing the shared
tokenizer or encoder.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model_folders import find, listing
from .model_sources import ModelLoadError, path_fingerprint

_EXPLICIT = re.compile(r"embedding:([^\s,()\[\]:]+)", re.IGNORECASE)


@dataclass(frozen=True)
class Embedding:
    name: str
    path: Path
    vectors: dict[str, Any]  # "*" (any single-encoder model), or "clip_l" / "clip_g" (SDXL): [n, width]

    @property
    def count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]

    def for_encoder(self, subfolder: str, width: int):
        """This embedding's vectors for one text encoder (``text_encoder``/``text_encoder_2``)."""
        key = "clip_g" if subfolder == "text_encoder_2" else "clip_l"
        vectors = self.vectors.get(key, self.vectors.get("*"))
        if vectors is None:
            raise ValueError(f"embedding {self.name!r} has no vectors for this model's {subfolder} "
                             f"(it has {', '.join(self.vectors)})")
        if vectors.shape[-1] != width:
            raise ValueError(f"embedding {self.name!r} is {vectors.shape[-1]} wide, this model's text encoder "
                             f"takes {width}: it was made for another model family")
        return vectors


@dataclass(frozen=True, eq=False)
class EmbeddingToken:
    """One vector of an embedding, standing in a token list where a token id would."""

    embedding: Embedding
    index: int


def read_embedding(path: Path) -> dict[str, Any]:
    """The vectors of an embedding file, ``[n, width]`` each, without unpickling code."""
    import pickle

    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path))
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise ModelLoadError(f"embedding {path.name}: not readable as plain weights ({type(exc).__name__}); "
                             "convert it to .safetensors") from None
    except Exception as exc:  # safetensors' own error for a bad header
        raise ModelLoadError(f"embedding {path.name}: not a readable file ({exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"embedding {path.name}: not an embedding (no dictionary of tensors)")
    if "clip_l" in data or "clip_g" in data:
        vectors = {k: data[k] for k in ("clip_l", "clip_g") if isinstance(data.get(k), torch.Tensor)}
    elif isinstance(data.get("string_to_param"), dict):
        vectors = {"*": next(iter(data["string_to_param"].values()))}
    elif isinstance(data.get("emb_params"), torch.Tensor):
        vectors = {"*": data["emb_params"]}
    elif len(data) == 1 and isinstance(next(iter(data.values())), torch.Tensor):
        vectors = {"*": next(iter(data.values()))}  # diffusers: {token: vector}
    else:
        raise ModelLoadError(f"embedding {path.name}: not an embedding we know (keys: {', '.join(list(data)[:5])})")
    out = {}
    for key, value in vectors.items():
        value = value.detach().float()
        out[key] = value.reshape(1, -1) if value.ndim == 1 else value.reshape(-1, value.shape[-1])
    return out


class EmbeddingLibrary:
    """Embeddings by name, read once per file version."""

    def __init__(self) -> None:
        self._read: dict[tuple, Embedding] = {}
        self._lock = threading.Lock()

    def get(self, name: str, settings: dict[str, Any]) -> Embedding:
        path = find("embeddings", name, settings)
        key = (str(path), path_fingerprint(path))
        with self._lock:
            if key not in self._read:
                self._read[key] = Embedding(name, path, read_embedding(path))
            return self._read[key]


EMBEDDINGS = EmbeddingLibrary()


def split_references(text: str, settings: dict[str, Any]) -> list[str | Embedding]:
    """``text`` as plain strings and the embeddings it names: ``embedding:name`` always, and a
    bare word equal to an embedding file's name in the embeddings folders (A1111)."""
    bare = {Path(name).stem.lower(): name for name in listing("embeddings", settings)}
    pattern = _EXPLICIT if not bare else re.compile(
        _EXPLICIT.pattern + "|(?<![\\w-])(" + "|".join(re.escape(n) for n in sorted(bare, key=len, reverse=True))
        + ")(?![\\w-])", re.IGNORECASE)
    parts: list[str | Embedding] = []
    position = 0
    for match in pattern.finditer(text):
        name = match.group(1) or bare[match.group(2).lower()]
        parts.append(text[position:match.start()])
        parts.append(EMBEDDINGS.get(name, settings))
        position = match.end()
    parts.append(text[position:])
    return [p for p in parts if not isinstance(p, str) or p]


def library_fingerprint(settings: dict[str, Any]) -> str:
    """Changes when an embedding file is added, removed or changed: part of Text encode's cache key."""
    import hashlib

    files = listing("embeddings", settings)
    if not files:
        return ""
    parts = []
    for name, path in sorted(files.items()):
        try:
            parts.append(f"{name}:{path_fingerprint(path)}")
        except OSError:
            parts.append(f"{name}:unreadable")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()
