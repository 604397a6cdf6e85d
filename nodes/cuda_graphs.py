"""Replaying a model's forward pass as a CUDA graph, without torch.compile.

An eager diffusers UNet at batch 2 spends most of a step launching ~1,500 small kernels from
Python (about 30 ms on an H100 host for 7 ms of GPU work). Capturing the same eager kernels
once per input shape and replaying them costs one launch per step. Nothing is compiled, so
there is no compile wait and no on-disk cache; a new shape (another size or batch) is simply
captured again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class GraphedCallable:
    """``fn(*tensors) -> tensor`` (or a tuple of tensors and Nones) replayed from a CUDA graph
    captured per input signature.

    - Inputs are copied into static buffers; the output is cloned, so callers may keep it
      (the text-encoder output lives on in the executor's cache).
    - On CPU tensors, or after a capture failed, it simply calls ``fn``.
    - All graphs of one instance share a memory pool: they replay on one stream, one at a time.
    - A graph reads the weights' memory as captured: weights may change in place only; a model
      whose parameters are replaced needs a new instance (the model cache loads a new one).
    """

    def __init__(self, fn: Callable[..., Any], name: str, warmup: int = 2) -> None:
        self.fn = fn
        self.name = name
        self.warmup = warmup
        self.disabled_reason: str | None = None
        self._graphs: dict[tuple, tuple[Any, list, Any]] = {}  # key -> (graph, inputs, output)
        self._pool = None
        self.captures = 0  # how many graphs were captured (for tests and logs)

    def __call__(self, *tensors):
        import torch

        first = tensors[0]
        if self.disabled_reason is not None or first.device.type != "cuda":
            return self.fn(*tensors)
        with torch.inference_mode():
            return self._replay(tensors)

    def _replay(self, tensors):
        import torch

        key = tuple((tuple(t.shape), t.dtype, t.device, t.stride()) for t in tensors)
        entry = self._graphs.get(key)
        if entry is None:
            try:
                entry = self._capture(tensors)
            except torch.cuda.OutOfMemoryError:
                raise  # the executor frees cached models and says so; the next run captures again
            except Exception as exc:  # an op that syncs or allocates on the host, say
                self.disabled_reason = f"{type(exc).__name__}: {exc}"
                log.warning("CUDA graph capture of %s failed; running it eagerly (%s)", self.name,
                            self.disabled_reason)
                self._graphs.clear()
                return self.fn(*tensors)
            self._graphs[key] = entry
        graph, inputs, output = entry
        for static, tensor in zip(inputs, tensors):
            static.copy_(tensor)
        graph.replay()
        return _clone(output)

    def _capture(self, tensors) -> tuple[Any, list, Any]:
        import torch

        inputs = [t.detach().clone() for t in tensors]
        # Warm-up on a side stream, as PyTorch's docs ask: lazy initialisation, cuDNN's
        # algorithm search and cuBLAS workspaces must happen outside the capture.
        side = torch.cuda.Stream(device=inputs[0].device)
        side.wait_stream(torch.cuda.current_stream(inputs[0].device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*inputs)
        torch.cuda.current_stream(inputs[0].device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        # cuBLAS caches one workspace per (handle, stream). One made during the capture lives in
        # this graph's pool; left in the cache it would dangle once the pool is freed, and the
        # next capture on the same capture stream would write through it (seen on an H100 as an
        # illegal memory access). Clearing before and after keeps each workspace in its graph.
        _clear_cublas_workspaces()
        try:
            with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
                output = self.fn(*inputs)
        finally:
            _clear_cublas_workspaces()
        self.captures += 1
        return graph, inputs, output


def _clone(output):
    """A copy the caller may keep: the graph's own output buffers are overwritten next replay."""
    if isinstance(output, tuple):  # e.g. a text encoder's (hidden states, pooled or None)
        return tuple(None if item is None else item.clone() for item in output)
    return output.clone()


def _clear_cublas_workspaces() -> None:
    import torch

    clear = getattr(torch._C, "_cuda_clearCublasWorkspaces", None)
    if clear is not None:
        clear()
