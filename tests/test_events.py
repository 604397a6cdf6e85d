"""Typed events: one class per event, delivered by class, refusing anything else."""

from __future__ import annotations

import dataclasses

import pytest

from graphs import Frame, Graph
from graphs import events as ev


def test_every_event_is_a_frozen_dataclass_listed_once():
    listed = ev.MODEL_EVENTS + ev.EXECUTOR_EVENTS
    assert len(set(listed)) == len(listed)
    defined = {v for v in vars(ev).values()
               if isinstance(v, type) and issubclass(v, ev.Event) and v is not ev.Event}
    assert defined == set(listed)
    event = ev.NodeStatus("n1", "compiling")
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.message = "x"
    with pytest.raises(AttributeError):
        event.text  # noqa: B018 - a misspelt field fails loudly


def test_on_and_dispatcher_route_by_class(kit):
    graph = Graph(kit.registry)
    added, moved, routed = [], [], []
    unsubscribe = graph.events.on(ev.NodeAdded, added.append)
    graph.events.on(ev.NodeMoved, moved.append)
    graph.events.subscribe(ev.Dispatcher({ev.FrameAdded: routed.append}))
    node = graph.add_node(graph.create_node("test.const"))
    graph.move_node(node.id, (5, 6))
    graph.add_frame(Frame("f", "Group", (0, 0, 10, 10)))
    assert added == [ev.NodeAdded(node)] and moved == [ev.NodeMoved(node)]
    assert [type(e) for e in routed] == [ev.FrameAdded]
    unsubscribe()
    graph.add_node(graph.create_node("test.const"))
    assert len(added) == 1


def test_only_event_classes_are_accepted():
    emitter = ev.Emitter()
    with pytest.raises(TypeError):
        emitter.emit("node_added")
    with pytest.raises(TypeError):
        emitter.on(str, print)
    with pytest.raises(TypeError):
        ev.Dispatcher({ev.Event: print})


def test_model_mutations_emit_only_model_events_and_executor_only_its_own(kit):
    from graphs import Executor
    graph = Graph(kit.registry)
    seen = []
    graph.events.subscribe(seen.append)
    a = graph.add_node(graph.create_node("test.const"))
    b = graph.add_node(graph.create_node("test.sink"))
    graph.connect(a.id, "value", b.id, "value")
    assert seen and all(type(e) in ev.MODEL_EVENTS for e in seen)
    executor = Executor()
    ran = []
    executor.events.subscribe(ran.append)
    executor.run(graph)
    assert ran and all(type(e) in ev.EXECUTOR_EVENTS for e in ran)
    assert isinstance(ran[0], ev.RunStarted) and isinstance(ran[-1], ev.RunFinished)
