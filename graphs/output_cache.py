"""The executor's output cache: node outputs by Merkle key, least recently used evicted past
a byte budget (so loaded models and large latents do not pile up across runs)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any


def estimate_size(value: Any, _depth: int = 0) -> int:
    """Rough bytes held by a node output (tensors, arrays, images, containers)."""
    if _depth > 4 or value is None or isinstance(value, (bool, int, float)):
        return 0
    sizer = getattr(value, "cache_size_bytes", None)
    if callable(sizer):
        return int(sizer())
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    if isinstance(value, (str, bytes)):
        return len(value)
    if isinstance(value, dict):
        return sum(estimate_size(v, _depth + 1) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(estimate_size(v, _depth + 1) for v in value)
    size = getattr(value, "size", None)  # PIL images
    mode = getattr(value, "mode", None)
    if isinstance(size, tuple) and len(size) == 2 and isinstance(mode, str):
        return size[0] * size[1] * 4
    return 0


class OutputCache:
    """Node outputs by cache key, least recently used evicted past a byte budget."""

    def __init__(self, budget_bytes: int = 4 * 1024**3, max_entries: int = 100_000) -> None:
        self.budget_bytes, self.max_entries = budget_bytes, max_entries
        self._entries: OrderedDict[str, tuple[dict[str, Any], int]] = OrderedDict()
        self.total_bytes = 0

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry[0]

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        if key in self._entries:
            self.total_bytes -= self._entries.pop(key)[1]
        size = estimate_size(outputs)
        self._entries[key] = (outputs, size)
        self.total_bytes += size

    def evict(self, keep: Iterable[str] = ()) -> int:
        """Drop least-recently-used entries until under budget; returns how many went."""
        if self.total_bytes <= self.budget_bytes and len(self._entries) <= self.max_entries:
            return 0
        keep = set(keep)
        dropped = 0
        for key in list(self._entries):
            if self.total_bytes <= self.budget_bytes and len(self._entries) <= self.max_entries:
                break
            if key in keep:
                continue
            self.total_bytes -= self._entries.pop(key)[1]
            dropped += 1
        return dropped

    def clear(self) -> None:
        self._entries.clear()
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries
