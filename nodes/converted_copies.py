"""Converted copies: a single-file checkpoint loaded in another dtype than it is stored in (an fp16
file loaded in fp32, as on the CPU) is converted once and kept on disk as a diffusers folder in
that dtype; later loads map that folder instead of converting again.

Converting is most of a load: each weight is read, widened and written into memory the process
allocates (SDXL: 6.5 GB read, 13 GB written). A copy in the target dtype is mapped instead: its
weights are the page cache's pages, shared, copy-on-write (LoRA patches write into private
copies), and the kernel can drop and re-read them rather than swap.

The copy is written on a thread after the first load, from a second, zero-copy load of the file in
its own dtype, widened one tensor at a time: it never reads the models in use (LoRA patches merge
into those while they run), and its memory is one tensor.

Where: ``LATENTGRAPH_CONVERTED_DIR``, else ``$XDG_CACHE_HOME/latentgraph/converted`` (so
``~/.cache/latentgraph/converted``). How much: ``LATENTGRAPH_CONVERTED_CACHE_GB`` (default 32;
0 turns copies off), least recently used copies removed first; a copy is not written when it would
leave less than a tenth of the disk free. Never stale: a copy is named by the file's path, inode,
size, mtime and ctime (any write to the file changes its ctime), the dtype, the config folder and
the versions of diffusers and transformers that converted it.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import struct
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .model_sources import path_fingerprint

DIR_ENV = "LATENTGRAPH_CONVERTED_DIR"
BUDGET_ENV = "LATENTGRAPH_CONVERTED_CACHE_GB"
DEFAULT_BUDGET_GB = 32.0
MARKER = "latentgraph_copy.json"
FORMAT = 1  # bump when what a copy holds changes: older copies are then never matched
GIB = 1024**3

_writers: dict[str, threading.Thread] = {}
_writers_lock = threading.Lock()
_stopping = threading.Event()
hits = 0  # loads served from a copy in this process (for tests and logs)


def copies_root() -> Path:
    configured = os.environ.get(DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "").strip() or str(Path.home() / ".cache")
    return Path(cache) / "latentgraph" / "converted"


def budget_bytes() -> int:
    value = os.environ.get(BUDGET_ENV, "").strip()
    try:
        gib = float(value) if value else DEFAULT_BUDGET_GB
    except ValueError:
        gib = DEFAULT_BUDGET_GB
    return int(max(gib, 0.0) * GIB) if gib == gib else 0  # NaN: off


def copy_key(file: Path, dtype: Any, config: str) -> str:
    """The name of ``file``'s copy in ``dtype``: changes whenever the file (or config folder) does."""
    import diffusers
    import transformers

    file = file.resolve()
    parts = {"file": str(file), "device": file.stat().st_dev, "state": path_fingerprint(file),
             "dtype": str(dtype), "config": "", "format": FORMAT,
             "diffusers": diffusers.__version__, "transformers": transformers.__version__}
    if config:
        folder = Path(config).expanduser().resolve()
        parts["config"] = f"{folder}:{path_fingerprint(folder)}"
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def find_copy(file: Path, dtype: Any, config: str) -> Path | None:
    """The finished copy of ``file`` in ``dtype``, marked as just used; None if there is none."""
    if budget_bytes() <= 0:
        return None
    try:
        folder = copies_root() / copy_key(file, dtype, config)
        marker = folder / MARKER
        if folder.is_symlink() or not marker.is_file():
            return None
        if json.loads(marker.read_text(encoding="utf-8")).get("source") != str(file.resolve()):
            return None
        os.utime(marker)  # least recently used goes first
    except (OSError, ValueError):
        return None
    return folder


def used_copy() -> None:
    global hits
    hits += 1


def schedule_copy(file: Path, dtype: Any, config: str, load_in_file_dtype: Callable[[], Any]) -> str:
    """Write ``file``'s copy in ``dtype`` on a thread (one per copy at a time) from the pipeline
    ``load_in_file_dtype`` returns. That load runs here, on the caller's thread: building models
    patches torch globally (accelerate's empty-weights context), so two threads must never build
    at once. Failures only mean no copy: the load itself has succeeded. Returns what happened, for
    the Load model node to say."""
    from .model_cache import estimated_bytes

    budget = budget_bytes()
    if budget <= 0:
        return f"converted copies are off ({BUDGET_ENV}=0)"
    try:
        key = copy_key(file, dtype, config)
        size = estimated_bytes(file, dtype)
        root = copies_root()
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        usage = shutil.disk_usage(root)
    except OSError as exc:
        return f"no converted copy kept ({exc})"
    if size > budget:
        return (f"no converted copy kept: {size / GIB:.1f} GiB is over their budget of {budget / GIB:.1f} GiB "
                f"(Settings, or {BUDGET_ENV})")
    if usage.free - size < usage.total // 10:
        return f"no converted copy kept: {size / GIB:.1f} GiB would leave under a tenth of the disk free ({root})"
    with _writers_lock:
        if key in _writers and _writers[key].is_alive():
            return "its converted copy is being written"
    try:
        pipe = load_in_file_dtype()  # zero-copy: the file's own pages, mapped
    except Exception as exc:  # noqa: BLE001 - no copy; the load itself has succeeded
        return f"no converted copy kept ({type(exc).__name__}: {exc})"
    with _writers_lock:
        thread = threading.Thread(target=_write_copy, args=(file, dtype, key, pipe),
                                  name="latentgraph-converted-copy", daemon=True)
        _writers[key] = thread
        thread.start()
    return f"a converted copy is being kept in {root} for faster loads"


def writing() -> bool:
    """Whether a copy is being written now."""
    with _writers_lock:
        return any(thread.is_alive() for thread in _writers.values())


def wait_for_copies(timeout: float | None = None) -> None:
    """Let copies being written finish (the CLI does before it leaves)."""
    with _writers_lock:
        threads = list(_writers.values())
    for thread in threads:
        thread.join(timeout)


class _Stopped(Exception):
    pass


@atexit.register
def _stop_writers() -> None:
    """At exit, a copy being written stops after its current tensor and removes what it wrote: a
    thread still inside torch while the interpreter finalizes aborts the process."""
    _stopping.set()
    with _writers_lock:
        threads = list(_writers.values())
    for thread in threads:
        thread.join(10)


def _write_copy(file: Path, dtype: Any, key: str, pipe: Any) -> None:
    root = copies_root()
    part = None
    try:
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        if root.is_symlink():
            return
        _remove_abandoned_parts(root)
        size = sum(_output_bytes(tensor, dtype) for _, module in _modules(pipe)  # exact, for the marker
                   for tensor in module.state_dict().values())
        part = root / f"{key}.part-{os.getpid()}-{threading.get_ident()}"
        part.mkdir(mode=0o700)
        _write_pipeline(pipe, part, dtype)
        marker = {"source": str(file.resolve()), "dtype": str(dtype), "bytes": size, "format": FORMAT,
                  "written": time.strftime("%Y-%m-%dT%H:%M:%S")}
        _write_new(part / MARKER, json.dumps(marker, indent=1).encode())
        try:
            os.rename(part, root / key)
            part = None
        except OSError:  # another process finished the same copy first
            return
        _evict(root, keep=key)
    except Exception:  # noqa: BLE001 - a copy is an optimisation; the next load converts again
        return
    finally:
        if part is not None:
            shutil.rmtree(part, ignore_errors=True)


def _modules(pipe) -> list[tuple[str, Any]]:
    import torch

    return [(name, value) for name, value in pipe.components.items() if isinstance(value, torch.nn.Module)]


def _write_pipeline(pipe, folder: Path, dtype) -> None:
    """The pipeline as a diffusers folder: model_index.json, each model's config and weights (floating
    tensors in ``dtype``), the scheduler's config and the tokenizers."""
    pipe.save_config(str(folder))
    for name, value in pipe.components.items():
        if value is None:
            continue
        sub = folder / name
        sub.mkdir(mode=0o700)
        if name in dict(_modules(pipe)):
            if hasattr(value, "save_config"):  # diffusers models
                value.save_config(str(sub))
                weights = sub / "diffusion_pytorch_model.safetensors"
            else:  # transformers models
                value.config.save_pretrained(str(sub))
                weights = sub / "model.safetensors"
            write_safetensors(weights, value.state_dict().items(), dtype)
        else:  # schedulers and tokenizers save themselves
            value.save_pretrained(str(sub))


_SAFETENSORS_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64",
                       "int64": "I64", "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8",
                       "bool": "BOOL"}


def _output_dtype(tensor, dtype):
    return dtype if tensor.is_floating_point() else tensor.dtype


def _output_bytes(tensor, dtype) -> int:
    return tensor.numel() * _output_dtype(tensor, dtype).itemsize


def write_safetensors(path: Path, tensors: Iterable[tuple[str, Any]], dtype) -> None:
    """A safetensors file written one tensor at a time (floating tensors converted to ``dtype`` as
    they go), so writing takes the memory of one tensor rather than of the whole model."""
    import torch

    tensors = list(tensors)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, tensor in tensors:
        size = _output_bytes(tensor, dtype)
        header[name] = {"dtype": _SAFETENSORS_DTYPES[str(_output_dtype(tensor, dtype)).removeprefix("torch.")],
                        "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned, as safetensors writes it
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        for _, tensor in tensors:
            if _stopping.is_set():
                raise _Stopped
            data = _widened(tensor, dtype)
            if data.numel():
                handle.write(memoryview(data.reshape(-1).view(torch.uint8).numpy()))


def _widened(tensor, dtype):
    return tensor.detach().to(device="cpu", dtype=_output_dtype(tensor, dtype)).contiguous()


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _remove_abandoned_parts(root: Path) -> None:
    """Unfinished copies of processes that ended mid-write (the app closed, a kill)."""
    for part in root.glob("*.part-*-*"):
        try:
            pid = int(part.name.split(".part-")[1].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(part, ignore_errors=True)
        except (ValueError, IndexError, PermissionError, OSError):
            continue


def copies() -> list[tuple[Path, int, float]]:
    """(folder, bytes, last used) of each finished copy, least recently used first."""
    found = []
    root = copies_root()
    for marker in root.glob(f"*/{MARKER}"):
        try:
            size = int(json.loads(marker.read_text(encoding="utf-8")).get("bytes", 0))
            found.append((marker.parent, size, marker.stat().st_mtime))
        except (OSError, ValueError, TypeError):
            continue
    return sorted(found, key=lambda entry: entry[2])


def discard(folder: Path) -> None:
    """Remove a copy that failed to load, so the next load writes a sound one in its place."""
    if folder.parent == copies_root() and (folder / MARKER).is_file():
        shutil.rmtree(folder, ignore_errors=True)


def remove_all() -> int:
    """Remove every finished copy (copies being written are left to finish); the bytes freed."""
    freed = 0
    for folder, size, _ in copies():
        shutil.rmtree(folder, ignore_errors=True)
        freed += size
    return freed


def _evict(root: Path, keep: str) -> None:
    found = copies()
    total = sum(size for _, size, _ in found)
    for folder, size, _ in found:
        if total <= budget_bytes():
            break
        if folder.name != keep:
            shutil.rmtree(folder, ignore_errors=True)
            total -= size
