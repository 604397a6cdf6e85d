"""A tiny synchronous publish/subscribe hub used by the model and the executor."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Listener = Callable[[str, dict[str, Any]], None]


class Emitter:
    """Calls every subscriber with ``(event_name, payload)`` in subscription order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self.unsubscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, name: str, /, **payload: Any) -> None:
        for listener in list(self._listeners):
            listener(name, payload)
