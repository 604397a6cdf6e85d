"""The graph model: mutations emit events, link rules, can_connect reasons, reroutes."""

from __future__ import annotations

import pytest

import graphs
from graphs import REROUTE, Frame, Graph, GraphError, Link, new_id
from graphs import events as ev


@pytest.fixture
def events(graph):
    seen: list[ev.Event] = []
    graph.events.subscribe(seen.append)
    return seen


def names(events):
    return [type(e) for e in events]


def add(graph, type_id, **kw):
    return graph.add_node(graph.create_node(type_id, **kw))


def test_ids_are_stable_hex_strings(graph):
    node = add(graph, "test.const")
    assert isinstance(node.id, str) and len(node.id) == 32
    int(node.id, 16)
    assert new_id() != new_id()


def test_create_node_uses_defaults_and_checks_params(graph):
    node = graph.create_node("test.multiply", pos=(3, 4), params={"factor": 5.0})
    assert node.params == {"factor": 5.0}
    assert node.pos == (3.0, 4.0) and node.title == "Multiply" and node.type_version == 1
    assert node.flags == {"bypass": False, "mute": False, "collapsed": False}
    assert node.id not in graph.nodes  # created, not added
    with pytest.raises(GraphError, match="no param named 'nope'"):
        graph.create_node("test.multiply", params={"nope": 1})
    with pytest.raises(GraphError, match=r"factor: expected <= 100"):
        graph.create_node("test.multiply", params={"factor": 1000.0})
    with pytest.raises(KeyError):
        graph.create_node("test.unknown")


def test_add_remove_node_emit_events(graph, events):
    a = add(graph, "test.const")
    b = add(graph, "test.sink")
    link = graph.connect(a.id, "value", b.id, "value")
    assert names(events) == [ev.NodeAdded, ev.NodeAdded, ev.LinkAdded]
    assert events[0].node is a and events[2].link is link
    events.clear()
    removed = graph.remove_node(a.id)
    assert removed is a
    # Removing a node first removes its links, each with an event.
    assert names(events) == [ev.LinkRemoved, ev.NodeRemoved]
    assert events[0].link == link
    assert graph.links == {} and graph.inbound(b.id, "value") is None
    with pytest.raises(GraphError, match="duplicate node id"):
        graph.add_node(b)


def test_add_node_of_unknown_type_is_refused(graph):
    node = graphs.Node("x", "test.nope", 1, "x")
    with pytest.raises(KeyError, match="unknown node type"):
        graph.add_node(node)
    assert graph.nodes == {}


def test_every_mutation_emits(graph, events):
    node = add(graph, "test.multiply")
    events.clear()
    graph.move_node(node.id, (10, 20))
    graph.set_param(node.id, "factor", 3.5)
    graph.set_flag(node.id, "bypass", True)
    graph.set_title(node.id, "Times")
    graph.set_size(node.id, (100, 50))
    graph.set_color(node.id, "#112233")
    frame = graph.add_frame(Frame("f1", "Group", (0, 0, 100, 100)))
    graph.set_frame("f1", title="G2", rect=(1, 2, 3, 4))
    graph.remove_frame("f1")
    graph.set_view(2.0, (5, 6))
    graph.clear()
    assert names(events) == [ev.NodeMoved] + [ev.NodeChanged] * 5 + [
        ev.FrameAdded, ev.FrameChanged, ev.FrameRemoved, ev.ViewChanged, ev.Cleared]
    whats = [e.what for e in events if isinstance(e, ev.NodeChanged)]
    assert whats == ["params", "flags", "title", "size", "color"]
    assert node.pos == (10.0, 20.0) and node.params["factor"] == 3.5
    assert node.flags["bypass"] and node.title == "Times" and node.size == (100.0, 50.0)
    assert frame.rect == (1.0, 2.0, 3.0, 4.0) and frame.title == "G2"
    assert graph.nodes == {} and graph.view.zoom == 1.0


def test_set_param_and_flag_validate(graph, events):
    node = add(graph, "test.multiply")
    events.clear()
    with pytest.raises(GraphError, match="expected number, got str"):
        graph.set_param(node.id, "factor", "x")
    with pytest.raises(GraphError, match="no param named"):
        graph.set_param(node.id, "zzz", 1.0)
    with pytest.raises(GraphError, match="unknown flag"):
        graph.set_flag(node.id, "hidden", True)
    assert events == [] and node.params["factor"] == 2.0


def test_input_takes_one_link_output_fans_out(graph):
    a = add(graph, "test.const")
    b = add(graph, "test.const")
    sinks = [add(graph, "test.sink") for _ in range(3)]
    for sink in sinks:
        graph.connect(a.id, "value", sink.id, "value")
    assert len(graph.outbound(a.id, "value")) == 3
    # connect() replaces the existing link into an input
    graph.connect(b.id, "value", sinks[0].id, "value")
    assert graph.inbound(sinks[0].id, "value").src_node == b.id
    assert len(graph.outbound(a.id)) == 2 and len(graph.links) == 3
    # add_link() refuses a second link into a connected input
    with pytest.raises(GraphError, match="already connected"):
        graph.add_link(Link(new_id(), a.id, "value", sinks[0].id, "value"))
    first = next(iter(graph.links))
    with pytest.raises(GraphError, match="duplicate link id"):
        graph.add_link(Link(first, b.id, "value", sinks[1].id, "label"), check=False)


def test_can_connect_refusals_say_why(graph):
    const = add(graph, "test.const")
    text = add(graph, "test.text")
    mul = add(graph, "test.multiply")
    mul2 = add(graph, "test.multiply")
    ok, why = graph.can_connect(const.id, "value", mul.id, "a")
    assert ok and why == ""
    ok, why = graph.can_connect(text.id, "text", mul.id, "a")
    assert not ok and "type mismatch" in why and "STRING" in why and "FLOAT" in why
    ok, why = graph.can_connect(mul.id, "product", mul.id, "a")
    assert not ok and "cannot feed itself" in why
    ok, why = graph.can_connect(const.id, "nope", mul.id, "a")
    assert not ok and "no output 'nope'" in why
    ok, why = graph.can_connect(const.id, "value", mul.id, "nope")
    assert not ok and "no input 'nope'" in why
    ok, why = graph.can_connect("missing", "value", mul.id, "a")
    assert not ok and "no such node" in why
    graph.connect(mul.id, "product", mul2.id, "a")
    ok, why = graph.can_connect(mul2.id, "product", mul.id, "a")
    assert not ok and "cycle" in why
    with pytest.raises(GraphError, match="cycle"):
        graph.connect(mul2.id, "product", mul.id, "a")
    with pytest.raises(GraphError, match="type mismatch"):
        graph.add_link(Link(new_id(), text.id, "text", mul.id, "a"))
    # a longer cycle is refused too
    mul3 = add(graph, "test.multiply")
    graph.connect(mul2.id, "product", mul3.id, "a")
    assert not graph.can_connect(mul3.id, "product", mul.id, "a")[0]


def test_int_feeds_float_but_not_the_reverse(graph):
    i = add(graph, "test.int")
    f = add(graph, "test.const")
    mul = add(graph, "test.multiply")
    steps = add(graph, "test.steps")
    assert graph.can_connect(i.id, "value", mul.id, "a")[0]
    ok, why = graph.can_connect(f.id, "value", steps.id, "steps")
    assert not ok and "FLOAT" in why and "INT" in why


def test_param_with_linkable_is_an_input_of_the_same_name(kit, graph):
    node_type = kit.registry.nodes.get("test.steps")
    socket = node_type.input("steps")
    assert socket is not None and socket.type == "INT" and socket.optional
    assert node_type.input("fixed") is None  # linkable=False
    assert [s.name for s in node_type.all_inputs()] == ["steps"]
    i = add(graph, "test.int")
    steps = add(graph, "test.steps")
    link = graph.connect(i.id, "value", steps.id, "steps")
    assert graph.inbound(steps.id, "steps") is link
    ok, why = graph.can_connect(i.id, "value", steps.id, "fixed")
    assert not ok and "no input 'fixed'" in why


def test_reroute_takes_its_source_type(graph):
    text = add(graph, "test.text")
    const = add(graph, "test.const")
    r1 = add(graph, REROUTE)
    r2 = add(graph, REROUTE)
    mul = add(graph, "test.multiply")
    sink = add(graph, "test.text_sink")
    assert graph.output_type(r1.id, "out") == graphs.ANY
    graph.connect(text.id, "text", r1.id, "in")
    graph.connect(r1.id, "out", r2.id, "in")
    assert graph.output_type(r2.id, "out") == "STRING"
    ok, why = graph.can_connect(r2.id, "out", mul.id, "a")
    assert not ok and "STRING" in why
    graph.connect(r2.id, "out", sink.id, "text")
    # the reroute chain now feeds a STRING input, so a FLOAT cannot replace its source
    ok, why = graph.can_connect(const.id, "value", r1.id, "in")
    assert not ok and "type mismatch" in why
    # an unfed reroute accepts anything, and fans out
    r3 = add(graph, REROUTE)
    assert graph.can_connect(const.id, "value", r3.id, "in")[0]
    graph.connect(r3.id, "out", mul.id, "a")
    graph.connect(r3.id, "out", add(graph, "test.sink").id, "value")
    assert graph.input_type(r3.id, "in") == "FLOAT"
    assert not graph.can_connect(text.id, "text", r3.id, "in")[0]


def test_find_node_by_id_and_title(graph):
    a = add(graph, "test.const", title="Alpha")
    b = add(graph, "test.const", title="Twin")
    c = add(graph, "test.const", title="Twin")
    assert graph.find_node(a.id) is a
    assert graph.find_node("Alpha") is a
    with pytest.raises(GraphError, match="2 nodes are titled 'Twin'"):
        graph.find_node("Twin")
    assert graph.find_node(b.id) is b and graph.find_node(c.id) is c
    with pytest.raises(GraphError, match="no node"):
        graph.find_node("Gamma")


def test_nodes_in_frame_and_links_of(graph):
    a = add(graph, "test.const", pos=(10, 10))
    b = add(graph, "test.sink", pos=(500, 500))
    graph.add_frame(Frame("f", "F", (0, 0, 100, 100)))
    assert graph.nodes_in_frame("f") == [a]
    link = graph.connect(a.id, "value", b.id, "value")
    assert graph.links_of(a.id) == [link] == graph.links_of(b.id)
    with pytest.raises(GraphError, match="duplicate frame id"):
        graph.add_frame(Frame("f", "F", (0, 0, 1, 1)))


def test_replace_with_keeps_listeners(graph, events, kit):
    other = Graph(kit.registry)
    a = other.add_node(other.create_node("test.const"))
    b = other.add_node(other.create_node("test.sink"))
    other.connect(a.id, "value", b.id, "value")
    other.set_view(3.0, (1, 2))
    graph.replace_with(other)
    assert names(events)[0] is ev.Cleared and names(events)[-1] is ev.ViewChanged
    assert set(graph.nodes) == {a.id, b.id} and graph.inbound(b.id, "value") is not None
    assert graph.nodes[a.id] is not a  # cloned
    assert graph.view.zoom == 3.0


def test_unsubscribe(graph):
    seen = []
    unsubscribe = graph.events.subscribe(lambda e: seen.append(type(e)))
    add(graph, "test.const")
    unsubscribe()
    add(graph, "test.const")
    assert seen == [ev.NodeAdded]


def test_cycle_check_follows_link_changes(graph):
    a, b, c = (add(graph, "test.multiply").id for _ in range(3))
    graph.connect(a, "product", b, "a")
    bc = graph.connect(b, "product", c, "a")
    graph.connect(b, "product", c, "factor")  # two links between the same pair
    assert not graph.can_connect(c, "product", a, "a")[0]
    graph.remove_link(bc.id)
    assert not graph.can_connect(c, "product", a, "a")[0]  # still linked via factor
    graph.remove_link(graph.inbound(c, "factor").id)
    assert graph.can_connect(c, "product", a, "a")[0]
    graph.connect(b, "product", c, "a")
    assert not graph.can_connect(c, "product", a, "a")[0]
    graph.remove_node(b)
    assert graph.can_connect(c, "product", a, "a")[0]
    # a copy keeps its own index: links added to it close no cycle in the original
    b2 = add(graph, "test.multiply").id
    copy = graph.copy()
    for link in (Link("x1", a, "product", b2, "a"), Link("x2", b2, "product", c, "a")):
        copy.add_link(link)
    assert not copy.can_connect(c, "product", a, "a")[0]
    assert graph.can_connect(c, "product", a, "a")[0] and graph.inbound(c, "a") is None
    copy.clear()
    assert copy.links == {} and copy.inbound(b2, "a") is None and len(graph.nodes) == 3


def test_param_overridden_by_its_socket_or_a_declared_input():
    from graphs import Graph, NodeType, Param, Socket, base_registry

    registry = base_registry()
    registry.nodes.register(NodeType("t.src", "Src", "t", lambda ctx: {"v": 1},
                                     outputs=(Socket("v", "INT"),)))
    registry.nodes.register(NodeType(
        "t.dst", "Dst", "t", lambda ctx, **v: {}, inputs=(Socket("shape", "INT", optional=True),),
        params=(Param("size", "int", 1), Param("channels", "int", 4, linkable=False,
                                                overridden_by="shape"))))
    graph = Graph(registry)
    src = graph.add_node(graph.create_node("t.src"))
    dst = graph.add_node(graph.create_node("t.dst"))
    assert not graph.param_overridden(dst.id, "size")
    assert not graph.param_overridden(dst.id, "channels")
    graph.connect(src.id, "v", dst.id, "size")
    assert graph.param_overridden(dst.id, "size") and not graph.param_overridden(dst.id, "channels")
    graph.connect(src.id, "v", dst.id, "shape")
    assert graph.param_overridden(dst.id, "channels")
