"""Device → host copies that never stall the denoising loop.

On CUDA each copy goes into pinned memory on a side stream and completes in the
background; the loop polls for finished copies instead of synchronising. On the CPU
a copy is just a clone.
"""

from __future__ import annotations

from collections import deque
from typing import Any


class HostCopier:
    def __init__(self, device: str) -> None:
        import torch

        self.cuda = str(device).startswith("cuda") and torch.cuda.is_available()
        self.stream = torch.cuda.Stream(device=device) if self.cuda else None
        self._pending: deque[tuple[Any, Any, Any]] = deque()  # (host tensor, event, tag)

    def empty(self, shape, dtype):
        """A host buffer to copy into (pinned on CUDA, so copies into it are asynchronous)."""
        import torch

        return torch.empty(tuple(shape), dtype=dtype, pin_memory=self.cuda)

    def copy(self, tensor, tag: Any = None, out=None):
        """Start copying ``tensor`` to the host, into ``out`` when given (a slice of a buffer
        from ``empty``: one pinned allocation per run instead of one per copy); returns the
        host tensor (valid once ``ready`` or ``drain`` has handed it back)."""
        import torch

        if out is None:
            out = self.empty(tensor.shape, tensor.dtype)
        if not self.cuda:
            out.copy_(tensor.detach())
            self._pending.append((out, None, tag))
            return out
        self.stream.wait_stream(torch.cuda.current_stream(tensor.device))
        with torch.cuda.stream(self.stream):
            out.copy_(tensor.detach(), non_blocking=True)
            tensor.record_stream(self.stream)
            event = torch.cuda.Event()
            event.record(self.stream)
        self._pending.append((out, event, tag))
        return out

    def ready(self) -> list[tuple[Any, Any]]:
        """Copies that have finished, oldest first, as (host tensor, tag); never blocks."""
        done = []
        while self._pending and (self._pending[0][1] is None or self._pending[0][1].query()):
            host, _, tag = self._pending.popleft()
            done.append((host, tag))
        return done

    def drain(self):
        """Every copy not yet collected, oldest first, each as soon as it has landed: host work
        on one (drawing a preview) overlaps the copies and GPU work still running."""
        while self._pending:
            host, event, tag = self._pending.popleft()
            if event is not None:
                event.synchronize()
            yield host, tag
