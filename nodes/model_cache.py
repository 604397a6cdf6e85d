"""The process-wide model cache: each model loaded once and shared by every node and run.

An entry is keyed by (source, device, dtype, config, compile mode, offload) and remembers the
fingerprint of the files it was loaded from; when those files change on disk (retrained, copied
over) the next request drops the old entry and loads again, so a cache never serves stale weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .accelerators import accelerator
from .model_sources import ModelLoadError, path_fingerprint, preferred_dtype, resolve_source


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was asked for but no CUDA GPU is available")
    return device


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.float16
        return torch.float32
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]


# load(path, key, device, torch dtype, config, compile, offload) -> the loaded models
Loader = Callable[[Path, tuple, str, Any, str, str, str], Any]


class ModelCache:
    """Loaded models by key, each valid while its files' fingerprint is unchanged."""

    def __init__(self, load: Loader) -> None:
        self._load = load
        self._models: dict[tuple, tuple[str, Any]] = {}
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were actually read (for tests and logs)

    def get(self, source: str, device: str = "auto", dtype: str = "auto",
            config: str = "", compile: str = "off", offload: str = "none") -> Any:
        device_name = resolve_device(device)
        path = resolve_source(source)
        if dtype == "auto":
            dtype = preferred_dtype(path) or "auto"
        torch_dtype = resolve_dtype(dtype, device_name)
        compile = accelerator(compile).id  # a label (as files before its ids said) shares the entry
        key = (str(path), device_name, str(torch_dtype), config, compile, offload)
        with self._lock:
            fingerprint = self._fingerprint(path, config)
            cached = self._models.get(key)
            if cached is not None:
                if cached[0] == fingerprint:
                    return cached[1]
                del self._models[key]  # the files changed: the old weights must not be served
                self._empty_device_cache()
            loaded = self._load(path, key, device_name, torch_dtype, config, compile, offload)
            self._models[key] = (fingerprint, loaded)
            self.loads += 1
            return loaded

    @staticmethod
    def _fingerprint(path: Path, config: str) -> str:
        try:
            parts = [path_fingerprint(path)]
            if config and (Path(config).expanduser() / "model_index.json").is_file():
                parts.append(path_fingerprint(Path(config).expanduser()))
        except OSError as exc:
            raise ModelLoadError(f"cannot read the model files of {path}: {exc}") from None
        return "||".join(parts)

    def vae_for(self, key: tuple) -> Any:
        entry = self._models.get(key)
        return entry[1].vae if entry else None

    def clear(self) -> None:
        """Forget every loaded model (used when memory runs out)."""
        with self._lock:
            self._models.clear()
        self._empty_device_cache()

    @staticmethod
    def _empty_device_cache() -> None:
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    def __len__(self) -> int:
        return len(self._models)
