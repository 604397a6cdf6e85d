"""Every event the model and the executor emit, one small frozen dataclass each, and the
synchronous hub that delivers them.

Subscribers get the event object itself. Handlers are registered by class, either on the
hub (``graph.events.on(NodeAdded, handler)``) or in a table (:class:`Dispatcher`), so a
handler can be found with grep and a renamed field fails loudly (``AttributeError``)
instead of silently. Events are snapshots of *what happened*; the objects they carry
(``Node``, ``Link``, ``Frame``) are the model's own, read them, never change them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from .elements import Frame, Link, Node, View


@dataclass(frozen=True)
class Event:
    """Base class of every event."""


# ----- the model (graphs.Graph.events), emitted on the thread that edits the graph -------
@dataclass(frozen=True)
class NodeAdded(Event):
    node: Node


@dataclass(frozen=True)
class NodeRemoved(Event):
    node: Node


@dataclass(frozen=True)
class NodeMoved(Event):
    node: Node


@dataclass(frozen=True)
class NodeChanged(Event):
    """``what`` is "params" (``name`` = the param), "flags" (``name`` = the flag), "title",
    "size" or "color"."""

    node: Node
    what: str
    name: str


@dataclass(frozen=True)
class LinkAdded(Event):
    link: Link


@dataclass(frozen=True)
class LinkRemoved(Event):
    link: Link


@dataclass(frozen=True)
class FrameAdded(Event):
    frame: Frame


@dataclass(frozen=True)
class FrameRemoved(Event):
    frame: Frame


@dataclass(frozen=True)
class FrameChanged(Event):
    frame: Frame


@dataclass(frozen=True)
class ViewChanged(Event):
    view: View


@dataclass(frozen=True)
class Cleared(Event):
    """Everything was removed at once (``Graph.clear``)."""


# ----- the executor (graphs.Executor.events), emitted on the thread that runs ------------
@dataclass(frozen=True)
class RunStarted(Event):
    node_ids: tuple[str, ...]  # what will run, in order


@dataclass(frozen=True)
class NodeSkipped(Event):
    node_id: str
    reason: str


@dataclass(frozen=True)
class NodeCached(Event):
    node_id: str


@dataclass(frozen=True)
class NodeStarted(Event):
    node_id: str


@dataclass(frozen=True)
class Progress(Event):
    node_id: str
    step: int
    total: int


@dataclass(frozen=True)
class NodeStatus(Event):
    """What a long-running node is busy with (compiling, say)."""

    node_id: str
    message: str


@dataclass(frozen=True)
class Preview(Event):
    node_id: str
    image: Any  # a PIL image
    step: int | None = None


@dataclass(frozen=True)
class NodeImages(Event):
    """A node's final images (PIL), for the editor to show."""

    node_id: str
    images: tuple[Any, ...]


@dataclass(frozen=True)
class NodeWarning(Event):
    node_id: str
    message: str


@dataclass(frozen=True)
class NodeFinished(Event):
    node_id: str
    seconds: float
    outputs: dict[str, Any]


@dataclass(frozen=True)
class NodeFailed(Event):
    node_id: str
    title: str
    error_type: str
    message: str
    traceback: str


@dataclass(frozen=True)
class RunCancelled(Event):
    node_id: str | None  # the node that was running, if any


@dataclass(frozen=True)
class RunFinished(Event):
    """The last event of every run, whatever its status (``result.status``)."""

    result: Any  # graphs.executor.RunResult


MODEL_EVENTS: tuple[type[Event], ...] = (
    NodeAdded, NodeRemoved, NodeMoved, NodeChanged, LinkAdded, LinkRemoved,
    FrameAdded, FrameRemoved, FrameChanged, ViewChanged, Cleared)
EXECUTOR_EVENTS: tuple[type[Event], ...] = (
    RunStarted, NodeSkipped, NodeCached, NodeStarted, Progress, NodeStatus, Preview,
    NodeImages, NodeWarning, NodeFinished, NodeFailed, RunCancelled, RunFinished)

E = TypeVar("E", bound=Event)
Listener = Callable[[Event], None]


def _check_event_type(event_type: type) -> None:
    if not (isinstance(event_type, type) and issubclass(event_type, Event)) or event_type is Event:
        raise TypeError(f"{event_type!r} is not an event class from graphs.events")


class Dispatcher:
    """Calls the handler registered for an event's exact class; other events are ignored.

    ``Dispatcher({NodeAdded: on_added, LinkAdded: on_link})`` is itself a listener."""

    def __init__(self, handlers: Mapping[type[Event], Callable[[Any], None]] | None = None) -> None:
        self._handlers: dict[type[Event], Callable[[Any], None]] = {}
        for event_type, handler in (handlers or {}).items():
            self.on(event_type, handler)

    def on(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        _check_event_type(event_type)
        self._handlers[event_type] = handler

    def handles(self, event_type: type[Event]) -> bool:
        return event_type in self._handlers

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)


class Emitter:
    """Calls every subscriber with the event object, in subscription order."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """``listener(event)`` for every event; returns the function that unsubscribes."""
        self._listeners.append(listener)
        return lambda: self.unsubscribe(listener)

    def on(self, event_type: type[E], handler: Callable[[E], None]) -> Callable[[], None]:
        """``handler(event)`` for events of ``event_type`` only; returns the unsubscriber."""
        _check_event_type(event_type)

        def listener(event: Event) -> None:
            if type(event) is event_type:
                handler(event)

        return self.subscribe(listener)

    def unsubscribe(self, listener: Listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def emit(self, event: Event) -> None:
        if not isinstance(event, Event):
            raise TypeError(f"emit() takes an event from graphs.events, not {event!r}")
        for listener in list(self._listeners):
            listener(event)
