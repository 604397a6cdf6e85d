"""A1111 infotext: the ``parameters`` PNG chunk that A1111, Civitai and other tools read.

The format (as A1111 writes it)::

    <prompt, with <lora:name:strength> for each LoRA>
    Negative prompt: <negative prompt>
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 1a2b3c4d5e,
    Model: name, Lora hashes: "name: 1a2b3c4d5e, other: ...", TI hashes: "name: ...", Version: ...

(the last line is one line). Hashes are A1111's AutoV2: the first 10 hex digits of the file's
SHA-256, kept in a small cache on disk keyed by path, size, modification time and inode, so a big
checkpoint is hashed once.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from graphs import safe_io
from graphs.executor import resolve_path

VERSION = "LatentGraph 0.1.0"
_HASH_LOCK = threading.Lock()
_HASHES: dict[str, str] = {}
_LOADED: list[bool] = [False]


def _cache_file() -> Path:
    from .compile_cache import compile_cache_dir

    return compile_cache_dir().parent / "file_hashes.json"


def autov2(path: Path) -> str:
    """A1111's short model hash of a file (the first 10 hex digits of its SHA-256)."""
    info = path.stat()
    key = f"{path.resolve()}|{info.st_size}|{info.st_mtime_ns}|{info.st_ino}"
    with _HASH_LOCK:
        if not _LOADED[0]:
            _LOADED[0] = True
            try:
                stored = json.loads(_cache_file().read_text(encoding="utf-8"))
                _HASHES.update({k: v for k, v in stored.items() if isinstance(v, str)})
            except (OSError, ValueError):
                pass
        if key in _HASHES:
            return _HASHES[key][:10]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    full = digest.hexdigest()
    with _HASH_LOCK:
        _HASHES[key] = full
        try:
            _cache_file().parent.mkdir(parents=True, exist_ok=True)
            data = json.dumps(_HASHES).encode()
            safe_io.write_atomic(_cache_file(), lambda handle: handle.write(data))
        except (OSError, ValueError):
            pass  # a cache that cannot be written costs only time
    return full[:10]


def _quote(text: str) -> str:
    """A value with commas or quotes goes in double quotes, as A1111 writes it."""
    if any(c in text for c in ',:"\n'):
        return json.dumps(text, ensure_ascii=False)
    return text


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def upstream(graph, node_id: str) -> list[str]:
    """Every node ``node_id`` depends on, nearest first."""
    inbound: dict[str, list[str]] = {}
    for link in graph.links.values():
        inbound.setdefault(link.dst_node, []).append(link.src_node)
    seen, order, queue = {node_id}, [], [node_id]
    while queue:
        current = queue.pop(0)
        for source in sorted(inbound.get(current, ())):
            if source not in seen:
                seen.add(source)
                order.append(source)
                queue.append(source)
    return order


def _loras(graph, node_id: str, settings: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(name, UNet strength, hash) of the Load LoRA nodes the image depends on that change it."""
    from .lora import lora_path

    found = []
    for upstream_id in reversed(upstream(graph, node_id)):  # in chain order: nearest the model first
        node = graph.nodes[upstream_id]
        if node.type_id != "sd.load_lora" or node.flags.get("bypass") or node.flags.get("mute"):
            continue
        strength = node.params.get("strength_model", 1.0)
        if not strength and not node.params.get("strength_clip", 1.0):
            continue
        try:
            path = lora_path(node.params.get("file", ""), settings)
            found.append((path.stem, strength, autov2(path)))
        except (OSError, ValueError):
            continue
    return found


def _embeddings(prompts: list[str], settings: dict[str, Any]) -> list[tuple[str, str]]:
    from .embeddings import Embedding, split_references

    found: dict[str, str] = {}
    for prompt in prompts:
        try:
            parts = split_references(prompt, settings)
        except (OSError, ValueError):
            continue
        for part in parts:
            if isinstance(part, Embedding) and part.path.stem not in found:
                found[part.path.stem] = autov2(part.path)
    return list(found.items())


def infotext(graph, node_id: str, parameters: dict[str, Any], settings: dict[str, Any]) -> str:
    """The A1111 ``parameters`` text for an image the node ``node_id`` saves."""
    prompt = str(parameters.get("positive_prompt", parameters.get("prompt", "")))
    negative = str(parameters.get("negative_prompt", ""))
    loras = _loras(graph, node_id, settings)
    tags = "".join(f" <lora:{name}:{_number(strength)}>" for name, strength, _ in loras)
    lines = [prompt + tags]
    if negative:
        lines.append(f"Negative prompt: {negative}")
    fields: list[tuple[str, Any]] = [
        ("Steps", parameters.get("steps")), ("Sampler", parameters.get("scheduler")),
        ("CFG scale", parameters.get("cfg")), ("Seed", parameters.get("seed")),
        ("Size", f"{parameters['width']}x{parameters['height']}" if "width" in parameters else None)]
    model = str(parameters.get("model", "") or "")
    model_path = Path(resolve_path(model, settings)).expanduser() if model and model.lower() != "bundled" else None
    if model_path is not None and model_path.is_file():
        fields.append(("Model hash", autov2(model_path)))
    if model:
        fields.append(("Model", (model_path.stem if model_path is not None else model) or model))
    vae = str(parameters.get("vae", "") or "")
    vae_path = Path(resolve_path(vae, settings)).expanduser() if vae else None
    if vae_path is not None and vae_path.is_file():
        fields += [("VAE hash", autov2(vae_path)), ("VAE", vae_path.name)]
    denoise = parameters.get("denoise")
    if isinstance(denoise, (int, float)) and denoise < 1:
        fields.append(("Denoising strength", denoise))
    if loras:
        fields.append(("Lora hashes", json.dumps(", ".join(f"{n}: {h}" for n, _, h in loras))))
    embeddings = _embeddings([prompt, negative], settings)
    if embeddings:
        fields.append(("TI hashes", json.dumps(", ".join(f"{n}: {h}" for n, h in embeddings))))
    fields.append(("Version", VERSION))
    rendered = []
    for key, value in fields:
        if value is None or value == "":
            continue
        text = value if key in ("Lora hashes", "TI hashes") else _quote(_number(value))
        rendered.append(f"{key}: {text}")
    lines.append(", ".join(rendered))
    return "\n".join(lines)
