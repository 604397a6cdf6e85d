"""Where compiled code is kept between launches (torch.compile's and inductor's caches, our AOT
packages), so a second launch skips the compile."""

from __future__ import annotations

import os
from pathlib import Path


def compile_cache_dir() -> Path:
    """Where torch.compile keeps its artefacts, so a second launch skips the compile."""
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "latentgraph" / "torch_compile"


def use_compile_cache_dir() -> None:
    """Keep inductor's own caches (kernels, graphs) beside ours, unless the user chose a place."""
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(compile_cache_dir()))
