"""The process-wide model cache: each model loaded once and shared by every node and run.

An entry is keyed by (source, device, dtype, config, compile mode, offload) and remembers the
fingerprint of the files it was loaded from; when those files change on disk (retrained, copied
over) the next request drops the old entry and loads again, so a cache never serves stale weights.

The cache keeps models within a memory budget (bytes of their weights, wherever they live), never a
count: after a load, the least recently used entries go until the rest fit. The budget is
``LATENTGRAPH_MODEL_CACHE_GB`` (set by the CLI's ``--model-cache-gb`` and by the editor from its
settings), else half the machine's RAM. The newest model always stays, even alone over budget.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
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
BUDGET_ENV = "LATENTGRAPH_MODEL_CACHE_GB"
GIB = 1024**3


def default_budget_bytes() -> int:
    """Half the machine's RAM (4 GiB when it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * GIB


def parse_budget_gb(value: str) -> float:
    """A budget in GiB (> 0); ValueError naming the value otherwise."""
    try:
        gib = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"model cache budget {value!r}: expected a number of GiB") from None
    if not gib > 0 or gib == float("inf"):
        raise ValueError(f"model cache budget {value!r}: expected a number of GiB above 0")
    return gib


def budget_bytes() -> int:
    """The budget: the environment's (GiB) when set and valid, else the default."""
    value = os.environ.get(BUDGET_ENV, "").strip()
    if value:
        try:
            return int(parse_budget_gb(value) * GIB)
        except ValueError:
            pass
    return default_budget_bytes()


def set_budget_gb(value: float | str) -> None:
    """Set the budget for this process and the processes it starts."""
    os.environ[BUDGET_ENV] = repr(parse_budget_gb(str(value)))


def model_bytes(loaded: Any) -> int:
    """Bytes of the weights (parameters and buffers) of a loaded model's torch modules, each
    tensor counted once; ``nbytes`` when the value says it itself (tests' stand-ins)."""
    if hasattr(loaded, "nbytes"):
        return int(loaded.nbytes)
    unet, vae = getattr(loaded, "unet", None), getattr(loaded, "vae", None)
    modules = [getattr(unet, "unet", None), getattr(vae, "vae", None)]
    modules += [e.encoder for e in getattr(getattr(loaded, "clip", None), "encoders", ())]
    seen, total = set(), 0
    for module in modules:
        if not hasattr(module, "parameters"):
            continue
        for tensor in (*module.parameters(), *module.buffers()):
            if tensor.data_ptr() not in seen:
                seen.add(tensor.data_ptr())
                total += tensor.numel() * tensor.element_size()
    return total


_FLOATING = {"F16", "BF16", "F32", "F64"}


def estimated_bytes(path: Path, dtype: Any) -> int:
    """Bytes a model's weights will take in ``dtype``, from its safetensors headers alone (a
    single file, or a diffusers folder's component files); 0 when it cannot tell."""
    from .families.detect import CheckpointError, read_header
    from .model_sources import model_files

    try:
        files = [path] if path.is_file() else model_files(path, (".safetensors",))
        itemsize = getattr(dtype, "itemsize", 4)
        total = 0
        for file in files:
            if file.suffix.lower() != ".safetensors":
                return 0
            for kind, shape in read_header(file).values():
                count = 1
                for size in shape:
                    count *= size
                total += count * (itemsize if kind in _FLOATING else _ITEMSIZE.get(kind, 4))
        return total
    except (OSError, CheckpointError, ModelLoadError):
        return 0


_ITEMSIZE = {"I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1}


class ModelCache:
    """Loaded models by key, each valid while its files' fingerprint is unchanged."""

    def __init__(self, load: Loader, budget: Callable[[], int] = budget_bytes,
                 size: Callable[[Any], int] = model_bytes,
                 estimate: Callable[[Path, Any], int] = estimated_bytes) -> None:
        self._load = load
        self._budget = budget
        self._size = size
        self._estimate = estimate
        # key -> (fingerprint, models, bytes), least recently used first
        self._models: OrderedDict[tuple, tuple[str, Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0  # how many times weights were actually read (for tests and logs)
        self.evictions = 0

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
                    self._models.move_to_end(key)
                    return cached[1]
                del self._models[key]  # the files changed: the old weights must not be served
                self._empty_device_cache()
            self._make_room(self._estimate(path, torch_dtype))
            loaded = self._load(path, key, device_name, torch_dtype, config, compile, offload)
            self._models[key] = (fingerprint, loaded, self._size(loaded))
            self.loads += 1
            self._evict()
            return loaded

    def _make_room(self, incoming: int) -> None:
        """Before a load: drop the least recently used models the new one will not fit beside, so
        it is not read while memory still holds what it replaces (a load under that pressure
        took twice as long)."""
        budget = self._budget()
        evicted = False
        while self._models and incoming and self.bytes + incoming > budget:
            self._models.popitem(last=False)
            self.evictions += 1
            evicted = True
        if evicted:
            import gc

            gc.collect()  # the evicted modules' reference cycles hold their weights otherwise
            self._empty_device_cache()

    def _evict(self) -> None:
        """Drop the least recently used models until the rest fit the budget (the newest stays)."""
        budget = self._budget()
        evicted = False
        while len(self._models) > 1 and self.bytes > budget:
            self._models.popitem(last=False)
            self.evictions += 1
            evicted = True
        if evicted:
            self._empty_device_cache()

    @property
    def bytes(self) -> int:
        """Bytes of the cached models' weights."""
        return sum(entry[2] for entry in self._models.values())

    def keys(self) -> list[tuple]:
        """The cached keys, least recently used first."""
        return list(self._models)

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
