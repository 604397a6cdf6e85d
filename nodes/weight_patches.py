"""LoRA patches merged into a shared model's weights in place while it runs, restored exactly when
the next caller wants another set.

The models are shared by every node and run (nodes/model_cache.py), so a patch must never leak:
every UNet and text-encoder call goes through :func:`patched`, which holds the model's lock, and
makes the live weights equal to the base weights plus exactly the patches that call asks for. The
originals of the weights a patch touches are kept aside and copied back, so the base model after
a LoRA is bit-identical to the base model that never had one. A set that stays the same across
calls (every step of a sampling run, a re-run with a new seed) is merged once.

Merging into the weights, rather than adding adapter layers, keeps the speed paths valid: a CUDA
graph, a compiled UNet and an AOT package all read the same weight tensors, updated in place, so
nothing is re-captured or recompiled when a LoRA or its strength changes. Where the attention
projections were fused (``fuse_qkv``), the fused weight's slice is patched as well.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Patch:
    """One LoRA file's layers for one model (a UNet or one text encoder), at a strength."""

    layers: Any  # nodes.lora.LoraLayers: module path -> peft LoRA layer (no base weights)
    strength: float

    @property
    def key(self) -> tuple:
        return (self.layers.identity, self.strength)


class _PatchState:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.applied: tuple = ()  # the keys of the patches merged now
        self.originals: dict[int, tuple[Any, Any]] = {}  # id(tensor) -> (tensor, its base values)


_STATES_LOCK = threading.Lock()


def _state(module) -> _PatchState:
    with _STATES_LOCK:
        state = module.__dict__.get("_latentgraph_patches")
        if state is None:
            state = _PatchState()
            module.__dict__["_latentgraph_patches"] = state
        return state


def base_module(module):
    """The module whose weights a compiled wrapper (torch.compile's OptimizedModule) runs."""
    return getattr(module, "_orig_mod", module)


@contextmanager
def patched(module, patches: tuple[Patch, ...] = ()) -> Iterator[None]:
    """Run the body with ``module``'s weights equal to its base weights plus ``patches``."""
    module = base_module(module)
    state = _state(module)
    with state.lock:
        wanted = tuple(p.key for p in patches)
        if wanted != state.applied:
            _restore(state)
            try:
                for patch in patches:
                    _merge(module, patch, state)
            except BaseException:
                _restore(state)
                raise
            state.applied = wanted
        yield


def patched_set(module) -> tuple:
    """The keys of the patches merged into ``module`` now (empty: its base weights)."""
    return _state(base_module(module)).applied


def _restore(state: _PatchState) -> None:
    import torch

    with torch.no_grad():
        for tensor, original in state.originals.values():
            tensor.copy_(original)
    state.originals.clear()
    state.applied = ()


def _keep(state: _PatchState, tensor) -> None:
    if id(tensor) not in state.originals:
        state.originals[id(tensor)] = (tensor, tensor.detach().clone())


def _merge(module, patch: Patch, state: _PatchState) -> None:
    import torch

    with torch.no_grad():
        for path, layer in patch.layers.items():
            target = module.get_submodule(path)
            views = []
            for tensor, rows in [(target.weight, None), *_fused_slices(module, path)]:
                _keep(state, tensor)
                views.append(tensor if rows is None else tensor[rows[0]:rows[1]])
            patch.layers.merge(path, layer, target.weight, patch.strength, views)
            bias = patch.layers.bias_delta(layer, patch.strength)
            if bias is not None and target.bias is not None:
                for tensor, rows in [(target.bias, None), *_fused_slices(module, path, "bias")]:
                    _keep(state, tensor)
                    view = tensor if rows is None else tensor[rows[0]:rows[1]]
                    view.add_(bias.to(device=tensor.device, dtype=tensor.dtype))


def _fused_slices(module, path: str, name: str = "weight") -> list[tuple[Any, tuple[int, int]]]:
    """Where ``fuse_qkv`` copied this projection's weight: (fused tensor, its rows), or nothing."""
    parent_path, _, leaf = path.rpartition(".")
    if leaf not in ("to_q", "to_k", "to_v"):
        return []
    parent = module.get_submodule(parent_path) if parent_path else module
    if not getattr(parent, "fused_projections", False):
        return []
    order = ("to_k", "to_v") if getattr(parent, "is_cross_attention", False) else ("to_q", "to_k", "to_v")
    fused = getattr(parent, "to_kv" if len(order) == 2 else "to_qkv", None)
    if leaf not in order or fused is None:
        return []
    start = sum(getattr(parent, n).weight.shape[0] for n in order[:order.index(leaf)])
    rows = (start, start + getattr(parent, leaf).weight.shape[0])
    tensor = getattr(fused, name, None)
    return [] if tensor is None else [(tensor, rows)]
