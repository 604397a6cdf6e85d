"""Fuzzing the ComfyUI importer: random mutations of the public templates never crash it; each
gives either a graph or a WorkflowError naming the problem (and the file)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nodes  # noqa: F401
from graphs import WorkflowError
from nodes.comfyui import import_data

DATA = Path(__file__).parent / "data" / "comfyui"
TEMPLATES = {name: json.loads((DATA / f"{name}.json").read_text())
             for name in ("default", "image_sdxl_simple", "sdxlturbo_example", "image_lotus_depth_v1_1")}

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


PATHS = {name: [p for p in _paths(data) if p] for name, data in TEMPLATES.items()}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(TEMPLATES)), picks=st.lists(st.tuples(st.integers(0, 10**6), JSON_VALUES,
                                                                            st.booleans()), min_size=1, max_size=4))
def test_mutated_templates_import_or_are_refused_by_name(name, picks):
    data = copy.deepcopy(TEMPLATES[name])
    for index, value, delete in picks:
        paths = [p for p in _paths(data) if p]
        path = paths[index % len(paths)]
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        if delete and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    try:
        graph, report = import_data(data, file="fuzzed.json")
    except WorkflowError as exc:
        assert "fuzzed.json" in str(exc) and exc.message
        return
    assert report.nodes >= 0 and all(graph.node_type(n) is not None for n in graph.nodes.values())
