"""One set of limits: whatever the model API (and so every command and the editor) accepts saves
into a file that opens again, identically; what it cannot save is refused before any file is
touched (issues 24 and 25)."""

from __future__ import annotations

import math
import os

import pytest
from graph_fixtures import make_kit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graphs import Frame, Graph, GraphError, WorkflowError
from graphs import workflow as wf

KIT = make_kit()
FUZZ_SCALE = int(os.environ.get("LATENTGRAPH_FUZZ_SCALE", "1"))
TYPES = ("test.const", "test.multiply", "test.sink", "test.text", "graph.reroute")

wild_float = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e9, -1e9, 1e300, 0.0, -0.0])
wild_text = st.text(max_size=40) | st.text(min_size=501, max_size=700)
wild_id = st.sampled_from(["../../x y", "", "a" * 65, "ok_id", "n:1.2-3", "é"]) | st.text(max_size=70)
json_leaf = st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=8)
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=3)
                          | st.dictionaries(st.text(max_size=4), inner, max_size=3), max_leaves=12)


def _call(fn, *args, **kwargs):
    """Call a model method; a refusal (GraphError, KeyError for a vanished id) is an answer."""
    try:
        fn(*args, **kwargs)
    except (GraphError, KeyError):
        pass


def _apply(data, graph: Graph) -> None:
    kind = data.draw(st.sampled_from(["add", "title", "move", "size", "color", "param", "frame", "view", "meta",
                                      "connect", "remove"]))
    ids = sorted(graph.nodes)
    node = data.draw(st.sampled_from(ids)) if ids else None
    if kind == "add" or node is None:
        # ids drawn, not uuid4, so hypothesis sees the same choices when it replays a case
        created = graph.create_node(data.draw(st.sampled_from(TYPES)),
                                    node_id=f"n{data.draw(st.integers(0, 999))}")
        created.title = data.draw(wild_text)
        created.pos = (data.draw(wild_float), data.draw(wild_float))
        created.size = data.draw(st.none() | st.tuples(wild_float, wild_float))
        if data.draw(st.booleans()):
            created.id = data.draw(wild_id)
        _call(graph.add_node, created)
    elif kind == "title":
        title = data.draw(wild_text)
        _call(graph.set_title, node, title)
        for frame in graph.frames:
            _call(graph.set_frame, frame, title=title)
    elif kind == "move":
        _call(graph.move_node, node, (data.draw(wild_float), data.draw(wild_float)))
    elif kind == "size":
        _call(graph.set_size, node, data.draw(st.none() | st.tuples(wild_float, wild_float)))
    elif kind == "color":
        _call(graph.set_color, node, data.draw(st.none() | st.sampled_from(["#abc", "#A0B1C2", "red"])))
    elif kind == "param":
        params = graph.node_type(node).params
        if params:
            value = data.draw(wild_float | st.integers() | st.text(max_size=20) | st.booleans())
            _call(graph.set_param, node, data.draw(st.sampled_from(params)).name, value)
    elif kind == "frame":
        rect = tuple(data.draw(wild_float) for _ in range(4))
        if graph.frames and data.draw(st.booleans()):
            frame = data.draw(st.sampled_from(sorted(graph.frames)))
            _call(graph.set_frame, frame, title=data.draw(st.none() | wild_text), rect=rect)
        else:
            frame_id = data.draw(st.sampled_from(["f1", "f2"]) | wild_id)
            _call(graph.add_frame, Frame(frame_id, data.draw(wild_text), rect))
    elif kind == "view":
        _call(graph.set_view, data.draw(wild_float), (data.draw(wild_float), data.draw(wild_float)))
    elif kind == "meta":
        graph.metadata[data.draw(st.text(max_size=6))] = data.draw(json_value)
    elif kind == "connect" and len(ids) > 1:
        src, dst = data.draw(st.sampled_from(ids)), data.draw(st.sampled_from(ids))
        outputs, inputs = graph.node_type(src).outputs, graph.node_type(dst).inputs
        if outputs and inputs:
            _call(graph.connect, src, outputs[0].name, dst, data.draw(st.sampled_from(inputs)).name)
    elif kind == "remove":
        _call(graph.remove_node, node)


@settings(max_examples=150 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_whatever_the_model_accepts_saves_and_opens_identically(data):
    graph = Graph(KIT.registry)
    for _ in range(data.draw(st.integers(1, 20), label="calls")):
        _apply(data, graph)
    try:
        text = wf.dumps(graph)
    except WorkflowError as exc:
        # The model cannot police a plain dict it hands out; every other value is kept inside
        # the limits when it is set, so nothing else may make a save fail.
        assert exc.path.startswith("metadata"), exc
        return
    reopened = wf.loads(text, KIT.registry)
    assert wf.dumps(reopened) == text
    assert set(reopened.nodes) == set(graph.nodes) and set(reopened.links) == set(graph.links)


def test_the_issue_examples_clamp_or_refuse(tmp_path):
    graph = Graph(KIT.registry)
    node = graph.add_node(graph.create_node("test.const", title="t" * 600))
    assert len(node.title) == 500
    graph.move_node(node.id, (1e9, -1e9))
    graph.set_size(node.id, (1e9, 1e9))
    assert node.pos == (1e7, -1e7) and node.size == (1e5, 1e5)
    frame = graph.add_frame(Frame("f1", "x" * 600, (1e9, 0, 1e9, -5)))
    graph.set_frame(frame.id, title="y" * 600)
    assert len(frame.title) == 500 and frame.rect == (1e7, 0, 1e7, 0)
    with pytest.raises(GraphError, match="invalid id"):
        graph.add_node(graph.create_node("test.const", node_id="../../x y"))
    with pytest.raises(GraphError, match="invalid id"):
        graph.add_frame(Frame("a b", "t", (0, 0, 1, 1)))
    path = tmp_path / "good.json"
    wf.save(graph, path)
    good = path.read_bytes()
    assert wf.dumps(wf.load(path, KIT.registry)) == wf.dumps(graph)

    for bad, where in ((["x" * 1000] * 1100, "larger than"), ([[[[["deep"]]]]], "nested more than 4")):
        graph.metadata["bad"] = bad
        with pytest.raises(WorkflowError, match=where) as caught:
            wf.save(graph, path)
        assert caught.value.path.startswith("metadata") and "cannot be saved" in str(caught.value)
        assert path.read_bytes() == good  # the old file is untouched
        assert [p.name for p in tmp_path.iterdir()] == ["good.json"]  # and no temp file is left
    del graph.metadata["bad"]
    text = "z" * 900_000  # each param within its own limit, 40 of them over the file's
    for _ in range(40):
        graph.add_node(graph.create_node("test.text", params={"text": text}))
    with pytest.raises(WorkflowError, match="over 33,554,432 bytes"):
        wf.save(graph, path)
    assert path.read_bytes() == good


def test_a_float_the_model_clamps_is_the_one_the_file_keeps():
    graph = Graph(KIT.registry)
    node = graph.add_node(graph.create_node("test.const"))
    with pytest.raises(GraphError, match="finite"):
        graph.move_node(node.id, (math.inf, 0))
    graph.set_view(1e6, (5e8, -5e8))
    assert graph.view.zoom == 100.0 and graph.view.center == (1e7, -1e7)
    reopened = wf.loads(wf.dumps(graph), KIT.registry)
    assert reopened.view == graph.view and reopened.nodes[node.id].pos == node.pos
