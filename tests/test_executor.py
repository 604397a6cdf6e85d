"""The executor: planning, Merkle-keyed caching, bypass/mute, cancel, failures, OOM, events."""

from __future__ import annotations

import threading
import time

import networkx as nx
import pytest
from graph_fixtures import Blob, chain

from graphs import REROUTE, Executor, Link, NodeType, OutputCache, Socket, new_id
from graphs import events as ev


@pytest.fixture
def executor(kit):
    return Executor()


@pytest.fixture
def events(executor):
    seen: list[ev.Event] = []
    executor.events.subscribe(seen.append)
    return seen


def add(graph, type_id, **params):
    return graph.add_node(graph.create_node(type_id, params=params)).id


def link(graph, src, out, dst, inp):
    graph.add_link(Link(new_id(), src, out, dst, inp))


def descendants(graph, node_id):
    dag = nx.DiGraph((ln.src_node, ln.dst_node) for ln in graph.links.values())
    return {node_id} | nx.descendants(dag, node_id)


def test_runs_only_what_outputs_need(kit, graph, executor):
    c, m, s = chain(graph, kit, 2)
    c2 = add(graph, "test.const", value=4.0)
    m2 = add(graph, "test.multiply")
    link(graph, c2, "value", m2, "a")  # no output node downstream: not run
    result = executor.run(graph)
    assert result.status == "finished" and result.error is None
    assert result.executed == [c, m, s] == kit.ran()
    assert result.outputs[s] == {"seen": 2.0} and result.outputs[m] == {"product": 2.0}
    assert c2 not in result.outputs
    # an explicit target ("run to here") runs it and its ancestors only
    result = executor.run(graph, targets=[m2])
    assert result.executed == [c2, m2] and result.outputs[m2] == {"product": 8.0}
    assert Executor.output_nodes(graph) == [s]


def test_topological_order(kit, graph, executor):
    # a diamond with several levels, nodes added in reverse order
    sink = add(graph, "test.sink")
    top = add(graph, "test.add")
    left, right = add(graph, "test.multiply"), add(graph, "test.multiply", factor=3.0)
    src = add(graph, "test.const", value=2.0)
    link(graph, top, "sum", sink, "value")
    link(graph, left, "product", top, "a")
    link(graph, right, "product", top, "b")
    link(graph, src, "value", left, "a")
    link(graph, src, "value", right, "a")
    result = executor.run(graph)
    order = result.executed
    assert set(order) == {sink, top, left, right, src}
    for ln in graph.links.values():
        assert order.index(ln.src_node) < order.index(ln.dst_node)
    assert result.outputs[sink]["seen"] == 2.0 * 2 + 2.0 * 3


def test_unchanged_rerun_does_nothing(kit, graph, executor, events):
    ids = chain(graph, kit, 5)
    executor.run(graph)
    runs = len(kit.runs)
    events.clear()
    result = executor.run(graph)
    assert len(kit.runs) == runs and result.executed == []
    assert result.cached == ids
    assert [type(e) for e in events] == [ev.RunStarted] + [ev.NodeCached] * 6 + [ev.RunFinished]
    assert result.outputs[ids[-1]] == {"seen": 16.0}
    # a layout-only change (move, rename, collapse) is not a change
    graph.move_node(ids[2], (999, 999))
    graph.set_title(ids[2], "renamed")
    graph.set_flag(ids[2], "collapsed", True)
    assert executor.run(graph).executed == []


def test_param_change_reruns_node_and_descendants(kit, graph, executor):
    ids = chain(graph, kit, 6)
    side = add(graph, "test.sink")
    link(graph, ids[1], "product", side, "value")
    executor.run(graph)
    graph.set_param(ids[3], "factor", 5.0)
    result = executor.run(graph)
    assert set(result.executed) == descendants(graph, ids[3])
    assert set(result.cached) == set(graph.nodes) - descendants(graph, ids[3])
    assert result.outputs[ids[-1]] == {"seen": 2.0 ** 4 * 5.0}
    # changing it back is served from the cache (both versions are kept)
    graph.set_param(ids[3], "factor", 2.0)
    assert executor.run(graph).executed == []
    # rewiring is a change too
    graph.set_param(ids[4], "factor", 3.0)
    executor.run(graph)
    graph.connect(ids[0], "value", ids[4], "a")
    result = executor.run(graph)
    assert set(result.executed) == descendants(graph, ids[4])
    assert result.outputs[ids[-1]] == {"seen": 6.0}


def test_identical_subgraphs_share_cache_entries(kit, graph, executor):
    """Keys are Merkle keys of the content, not of node ids: an identical node fed by the
    same upstream is served from the cache."""
    ids = chain(graph, kit, 6)
    executor.run(graph)
    graph.connect(ids[0], "value", ids[4], "a")  # ids[4] now computes what ids[1] did
    result = executor.run(graph)
    assert result.executed == [ids[-1]]  # only the sink sees a new input
    assert result.outputs[ids[-1]] == {"seen": 4.0}


def test_fingerprint_reruns_when_file_changes(kit, graph, executor, tmp_path):
    path = tmp_path / "prompt.txt"
    path.write_text("a cat", encoding="utf-8")
    reader = add(graph, "test.read_file", path=str(path))
    sink = add(graph, "test.text_sink")
    link(graph, reader, "text", sink, "text")
    assert executor.run(graph).outputs[sink] == {"seen": "a cat"}
    assert executor.run(graph).executed == []
    path.write_text("a small dog", encoding="utf-8")
    result = executor.run(graph)
    assert result.executed == [reader, sink] and result.outputs[sink] == {"seen": "a small dog"}
    # a fingerprint that fails (file gone) fails the run naming the node
    path.unlink()
    result = executor.run(graph)
    assert result.status == "failed" and result.error.node_id == reader
    assert result.error.error_type == "FileNotFoundError"


def test_always_run(kit, graph, executor):
    rnd = add(graph, "test.random")
    sink = add(graph, "test.sink")
    link(graph, rnd, "value", sink, "value")
    first = executor.run(graph)
    second = executor.run(graph)
    assert rnd in first.executed and rnd in second.executed
    assert kit.ran("test.random") == [rnd, rnd]


def test_bypass_forwards_first_compatible_input(kit, graph, executor):
    text = add(graph, "test.text", text="words")
    const = add(graph, "test.const", value=5.0)
    mix = add(graph, "test.mix")
    sink, text_sink = add(graph, "test.sink"), add(graph, "test.text_sink")
    link(graph, text, "text", mix, "label")
    link(graph, const, "value", mix, "a")
    link(graph, mix, "result", sink, "value")
    link(graph, mix, "label", text_sink, "text")
    result = executor.run(graph)
    assert result.outputs[sink] == {"seen": -5.0} and result.outputs[text_sink] == {"seen": "words!"}
    graph.set_flag(mix, "bypass", True)
    result = executor.run(graph)
    assert mix not in kit.ran()[-3:] and set(result.executed) == {mix, sink, text_sink}
    assert result.outputs[mix] == {"result": 5.0, "label": "words"}
    assert result.outputs[sink] == {"seen": 5.0} and result.outputs[text_sink] == {"seen": "words"}
    # an output with no compatible connected input gets None
    graph.remove_link(graph.inbound(mix, "label").id)
    assert executor.run(graph).outputs[mix] == {"result": 5.0, "label": None}
    # un-bypassing restores the real result (from the cache)
    graph.set_flag(mix, "bypass", False)
    graph.connect(text, "text", mix, "label")
    result = executor.run(graph)
    assert result.outputs[sink] == {"seen": -5.0} and mix in result.cached


def test_mute_drops_node_and_what_needs_it(kit, graph, executor, events):
    c, m, s = chain(graph, kit, 2)
    other = chain(graph, kit, 1)
    graph.set_flag(m, "mute", True)
    result = executor.run(graph)
    assert result.status == "finished"
    assert result.skipped == {m: "muted", s: "input 'value' comes from a muted node"}
    # c is needed only by dropped nodes, so it does not run either
    assert result.executed == other and c not in kit.ran()
    assert ev.NodeSkipped(m, "muted") in events
    # a muted output node is not a target
    graph.set_flag(m, "mute", False)
    graph.set_flag(s, "mute", True)
    assert Executor.output_nodes(graph) == [other[-1]]
    assert executor.run(graph).executed == []


def test_mute_feeding_optional_input_and_linked_param(kit, graph, executor):
    const = add(graph, "test.const", value=3.0)
    sleep = add(graph, "test.sleep")
    sink = add(graph, "test.sink")
    link(graph, const, "value", sleep, "value")
    link(graph, sleep, "value", sink, "value")
    graph.set_flag(const, "mute", True)
    result = executor.run(graph)
    assert result.executed == [sleep, sink] and result.outputs[sink] == {"seen": None}
    # a muted node driving a param: the widget value is used instead
    i = add(graph, "test.int", value=50)
    steps = add(graph, "test.steps", steps=7)
    link(graph, i, "value", steps, "steps")
    graph.set_flag(i, "mute", True)
    result = executor.run(graph, targets=[steps])
    assert result.outputs[steps] == {"value": 7.0}
    graph.set_flag(i, "mute", False)
    assert executor.run(graph, targets=[steps]).outputs[steps] == {"value": 50.0}


def _run_in_thread(executor, graph, **kw):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", executor.run(graph, **kw)))
    thread.start()
    return thread, box


def _wait_for(predicate, timeout=5.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


def test_cancel_from_another_thread(kit, graph, executor, events):
    const = add(graph, "test.const")
    sleep = add(graph, "test.sleep", seconds=30.0)
    sink = add(graph, "test.sink")
    link(graph, const, "value", sleep, "value")
    link(graph, sleep, "value", sink, "value")
    t0 = time.monotonic()
    thread, box = _run_in_thread(executor, graph)
    _wait_for(lambda: kit.sleep_started)
    executor.cancel()
    thread.join(5)
    assert not thread.is_alive() and time.monotonic() - t0 < 5
    result = box["result"]
    assert result.status == "cancelled" and result.error is None
    assert sink not in kit.ran() and sleep not in result.outputs
    assert ev.RunCancelled(sleep) in events
    assert isinstance(events[-1], ev.RunFinished) and events[-1].result is result
    # the next run works (the cancel flag is cleared) and reuses what finished before
    graph.set_param(sleep, "seconds", 0.0)
    result = executor.run(graph)
    assert result.status == "finished" and result.executed == [sleep, sink]
    assert result.cached == [const]


def test_cancel_is_checked_between_nodes(kit, graph, executor):
    ids = chain(graph, kit, 3)
    executor.events.subscribe(
        lambda e: executor.cancel() if isinstance(e, ev.NodeFinished) else None)
    result = executor.run(graph)
    assert result.status == "cancelled" and result.executed == ids[:1]


def test_failing_node(kit, graph, executor, events):
    const = add(graph, "test.const")
    fail = add(graph, "test.fail", message="it broke")
    sink = add(graph, "test.sink")
    link(graph, const, "value", fail, "value")
    link(graph, fail, "value", sink, "value")
    graph.set_title(fail, "Breaker")
    result = executor.run(graph)
    assert result.status == "failed" and result.executed == [const]
    error = result.error
    assert (error.node_id, error.title, error.error_type, error.message) == (
        fail, "Breaker", "RuntimeError", "it broke")
    assert "RuntimeError: it broke" in error.traceback and "def fail" not in error.message
    assert "in fail" in error.traceback
    failed = [e for e in events if isinstance(e, ev.NodeFailed)]
    assert failed == [ev.NodeFailed(fail, "Breaker", "RuntimeError", "it broke", error.traceback)]
    assert [type(e) for e in events][-2:] == [ev.NodeFailed, ev.RunFinished]
    assert result.param_updates == {}
    # the process is fine; fixing the graph and running again works, reusing the const
    graph.remove_node(fail)
    link(graph, const, "value", sink, "value")
    result = executor.run(graph)
    assert result.status == "finished" and result.executed == [sink] and result.cached == [const]


def test_missing_required_input_names_the_socket(kit, graph, executor):
    const = add(graph, "test.const")
    adder = add(graph, "test.add")
    sink = add(graph, "test.sink")
    link(graph, const, "value", adder, "a")
    link(graph, adder, "sum", sink, "value")
    result = executor.run(graph)
    assert result.status == "failed" and result.error.node_id == adder
    assert "input 'b' (FLOAT) is not connected" in result.error.message


def test_missing_inputs_fail_the_run_before_anything_runs_naming_every_node(kit, graph, executor):
    from graphs import events as ev

    const = add(graph, "test.const")
    first, second = add(graph, "test.add"), add(graph, "test.add")
    sink = add(graph, "test.sink")
    link(graph, const, "value", first, "a")
    link(graph, first, "sum", second, "a")
    link(graph, second, "sum", sink, "value")
    failed = []
    executor.events.on(ev.NodeFailed, lambda e: failed.append(e.node_id))
    result = executor.run(graph)
    assert result.status == "failed" and result.executed == [] and result.cached == []
    assert failed == [first, second]  # each is marked, in the editor too
    assert "input 'b' (FLOAT) is not connected; also " in result.error.message
    graph.set_flag(second, "bypass", True)  # a bypassed node only forwards: it needs nothing
    assert executor.run(graph).error.node_id == first


def test_linked_param_overrides_widget_and_is_validated(kit, graph, executor):
    i = add(graph, "test.int", value=5)
    const = add(graph, "test.const", value=3.0)
    mul = add(graph, "test.multiply", factor=2.0)
    link(graph, const, "value", mul, "a")
    link(graph, i, "value", mul, "factor")  # INT drives a FLOAT param: converted
    result = executor.run(graph, targets=[mul])
    assert result.outputs[mul] == {"product": 15.0}
    assert isinstance(result.outputs[mul]["product"], float)
    steps = add(graph, "test.steps", steps=10)
    link(graph, i, "value", steps, "steps")
    assert executor.run(graph, targets=[steps]).outputs[steps] == {"value": 5.0}
    graph.set_param(i, "value", 0)  # below steps' min of 1
    result = executor.run(graph, targets=[steps])
    assert result.status == "failed" and result.error.node_id == steps
    assert result.error.message == "input 'steps': expected >= 1, got 0"
    # the widget value of a linked param is not part of the key: changing it changes nothing
    graph.set_param(i, "value", 5)
    executor.run(graph, targets=[steps])
    graph.set_param(steps, "steps", 99)
    assert executor.run(graph, targets=[steps]).executed == []


def test_reroute_passes_values(kit, graph, executor):
    const = add(graph, "test.const", value=6.0)
    r = add(graph, REROUTE)
    sink = add(graph, "test.sink")
    link(graph, const, "value", r, "in")
    link(graph, r, "out", sink, "value")
    graph.set_flag(r, "bypass", True)  # bypass means nothing to a reroute
    assert executor.run(graph).outputs[sink] == {"seen": 6.0}


def test_output_cache_evicts_least_recently_used():
    cache = OutputCache(budget_bytes=250)
    for key in "abc":
        cache.put(key, {"blob": Blob(100)})
    assert cache.total_bytes == 300 and len(cache) == 3
    cache.get("a")  # a is now the most recently used
    assert cache.evict() == 1
    assert "b" not in cache and "a" in cache and "c" in cache and cache.total_bytes == 200
    cache.put("d", {"x": [Blob(60), {"y": Blob(60)}]})  # nested containers are counted
    assert cache.total_bytes == 320
    assert cache.evict(keep=["a", "c"]) == 1 and "d" not in cache
    cache.put("a", {"blob": Blob(10)})  # replacing an entry re-counts it
    assert cache.total_bytes == 110
    cache.clear()
    assert len(cache) == 0 and cache.total_bytes == 0


def test_executor_evicts_by_memory_budget(kit, graph):
    executor = Executor(cache_budget_bytes=250)
    blobs = [add(graph, "test.blob", size=100, tag=i) for i in range(3)]
    for b in blobs:
        assert executor.run(graph, targets=[b]).executed == [b]
    assert executor.cache.total_bytes <= 250 and len(executor.cache) == 2
    assert executor.run(graph, targets=[blobs[0]]).executed == [blobs[0]]  # was evicted
    assert executor.run(graph, targets=[blobs[0]]).executed == []
    # one run's own outputs are kept even over budget, and trimmed by the next run
    everything = executor.run(graph, targets=blobs)
    assert everything.status == "finished"
    assert executor.cache.total_bytes == 300
    executor.run(graph, targets=[blobs[2]])
    assert executor.cache.total_bytes <= 250


def test_out_of_memory_frees_cache_and_calls_release_hooks(kit, graph, executor):
    ids = chain(graph, kit, 3)
    executor.run(graph)
    assert len(executor.cache) == 4
    released = []
    executor.release_hooks.append(lambda: released.append(True))
    oom = add(graph, "test.oom")
    sink = add(graph, "test.sink")
    link(graph, ids[1], "product", oom, "value")
    link(graph, oom, "value", sink, "value")
    result = executor.run(graph)
    assert result.status == "failed" and result.error.node_id == oom
    assert result.error.error_type == "OutOfMemoryError"
    assert "out of memory" in result.error.message and "20.00 GiB" in result.error.message
    assert released == [True] and len(executor.cache) == 0
    graph.remove_node(oom)
    graph.remove_node(sink)
    result = executor.run(graph)
    assert result.status == "finished" and len(result.executed) == 4


def test_param_updates_from_after_run(kit, graph, executor):
    seed = add(graph, "test.seed", seed=41)
    fixed = add(graph, "test.seed", seed=7, control="fixed")
    for source in (seed, fixed):
        link(graph, source, "seed", add(graph, "test.sink"), "value")
    result = executor.run(graph)
    assert result.param_updates == {seed: {"seed": 42}}
    assert graph.nodes[seed].params["seed"] == 41  # the app applies updates, not the executor
    # updates are offered on a cached run too
    assert executor.run(graph).param_updates == {seed: {"seed": 42}}


def test_event_order(kit, graph, executor, events):
    const = add(graph, "test.const")
    sleep = add(graph, "test.sleep", seconds=0.01)
    sink = add(graph, "test.sink")
    link(graph, const, "value", sleep, "value")
    link(graph, sleep, "value", sink, "value")
    result = executor.run(graph)
    names = [type(e) for e in events]
    assert names[0] is ev.RunStarted and events[0] == ev.RunStarted((const, sleep, sink))
    assert names[-1] is ev.RunFinished and events[-1].result is result
    body = [(type(e), e.node_id) for e in events[1:-1] if not isinstance(e, ev.Progress)]
    assert body == [(ev.NodeStarted, const), (ev.NodeFinished, const),
                    (ev.NodeStarted, sleep), (ev.NodeFinished, sleep),
                    (ev.NodeStarted, sink), (ev.NodeFinished, sink)]
    progress = [i for i, e in enumerate(events) if isinstance(e, ev.Progress)]
    assert progress and all(names.index(ev.NodeStarted) < i < names.index(ev.RunFinished)
                            for i in progress)
    assert all(events[i].node_id == sleep for i in progress)
    finished = {e.node_id: e for e in events if isinstance(e, ev.NodeFinished)}
    assert finished[sleep].seconds >= 0.01 and result.timings[sleep] >= 0.01
    assert finished[const].outputs == {"value": 1.0}


def test_snapshot_isolates_edits_during_a_run(kit, graph, executor):
    const = add(graph, "test.const", value=1.0)
    sleep = add(graph, "test.sleep", seconds=0.3)
    sink = add(graph, "test.sink")
    link(graph, const, "value", sleep, "value")
    link(graph, sleep, "value", sink, "value")
    thread, box = _run_in_thread(executor, graph)
    _wait_for(lambda: kit.sleep_started)
    graph.set_param(const, "value", 9.0)
    graph.remove_node(sink)
    graph.add_node(graph.create_node("test.sink"))
    thread.join(5)
    result = box["result"]
    assert result.status == "finished" and result.outputs[sink] == {"seen": 1.0}


def test_snapshot_is_independent(kit, graph):
    ids = chain(graph, kit, 3)
    copy = graph.copy()
    copy.set_param(ids[1], "factor", 9.0)
    copy.set_flag(ids[1], "mute", True)
    copy.remove_node(ids[0])
    assert graph.nodes[ids[1]].params["factor"] == 2.0 and not graph.nodes[ids[1]].flags["mute"]
    assert ids[0] in graph.nodes and len(graph.links) == 3 and len(copy.links) == 2
    assert graph.inbound(ids[1], "a") is not None


def test_cycle_and_bad_target_fail_cleanly(kit, graph, executor, events):
    a, b = add(graph, "test.multiply"), add(graph, "test.multiply")
    link(graph, a, "product", b, "a")
    graph.add_link(Link("back", b, "product", a, "a"), check=False)  # bypass the model's check
    result = executor.run(graph, targets=[b])
    assert result.status == "failed" and "cycle" in result.error.message
    assert [type(e) for e in events] == [ev.RunFinished]
    graph.remove_link("back")
    result = executor.run(graph, targets=["nope"])
    assert result.status == "failed" and result.error.node_id == ""


def test_run_context_warnings_progress_and_bad_return(kit, graph, executor, events):
    def run(ctx, **values):
        ctx.warn("careful")
        ctx.progress(1, 2)
        assert ctx.title == "Odd" and ctx.wants_previews is False and ctx.settings["x"] == 1
        assert ctx.workflow()["format"] == "latentgraph"
        return ["not", "a", "dict"]

    kit.registry.nodes.register(NodeType("test.odd", "Odd", "test", run,
                                         inputs=(Socket("value", "FLOAT", optional=True),),
                                         output_node=True))
    odd = add(graph, "test.odd")
    result = executor.run(graph, settings={"previews": False, "x": 1})
    assert result.status == "failed" and result.error.error_type == "TypeError"
    assert "expected a dict" in result.error.message
    assert ev.NodeWarning(odd, "careful") in events
    assert ev.Progress(odd, 1, 2) in events


def test_code_below_a_node_reaches_its_context_and_status_reaches_the_user(kit, graph, executor,
                                                                          events):
    """A model deep inside a node (compiling itself, say) tells the user through the running
    node's context, without every node passing it down; outside a run there is none."""
    from graphs import current_context

    def compile_something():
        current_context().status("compiling")

    def run(ctx, value=None):
        compile_something()
        assert current_context() is ctx
        return {"value": 1.0}

    kit.registry.nodes.register(NodeType("test.busy", "Busy", "test", run,
                                         inputs=(Socket("value", "FLOAT", optional=True),),
                                         outputs=(Socket("value", "FLOAT"),)))
    first = add(graph, "test.busy")
    second = add(graph, "test.busy")
    graph.connect(first, "value", second, "value")
    sink = add(graph, "test.sink")
    graph.connect(second, "value", sink, "value")
    assert executor.run(graph).status == "finished"
    statuses = [e for e in events if isinstance(e, ev.NodeStatus)]
    assert statuses == [ev.NodeStatus(first, "compiling"), ev.NodeStatus(second, "compiling")]
    assert current_context() is None


def test_per_run_cancel_event(kit, graph, executor):
    """A cancel sent before a queued run starts still stops it; it does not leak into the next."""
    import threading

    chain(graph, kit, 3)
    early = threading.Event()
    early.set()
    result = executor.run(graph, cancel_event=early)
    assert result.status == "cancelled" and result.executed == []
    assert executor.run(graph, cancel_event=threading.Event()).status == "finished"
    early.set()  # a late cancel of the old run changes nothing for the next one
    assert executor.run(graph).status == "finished"
