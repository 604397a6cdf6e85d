"""Node plugins (entry-point group ``latentgraph.nodes``), run-signature checks, and
placeholder nodes for types nobody provides.

The example plugin under tests/plugins/latentgraph_example is installed for real
(``pip install -e tests/plugins/latentgraph_example``, done by .ci/run); broken plugins are
real distributions too: a dist-info with an entry_points.txt in a folder put on sys.path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import nodes
from graphs import Executor, Graph, NodeType, Param, Socket, WorkflowError, base_registry
from graphs import workflow as wf
from graphs.placeholders import add_placeholder, make_placeholder, missing_types
from graphs.plugins import GROUP, load_plugins

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = "latentgraph_example.invert"


def fresh_registry():
    """LatentGraph's own node types, no plugins."""
    return nodes.register(base_registry())


@pytest.fixture(scope="module", autouse=True)
def example_installed():
    names = {ep.name for ep in metadata.entry_points(group=GROUP)}
    assert "example" in names, ("the example plugin is not installed: "
                                "pip install -e tests/plugins/latentgraph_example")


def cli(*args, env_path: Path | None = None, cwd=None):
    import os
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if env_path is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(env_path), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "nodeeditor.cli", *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=300, env=env)


# ----- broken plugins: a real distribution on sys.path -----------------------------------
BROKEN_MODULES = {
    "lgbroken_import": "import no_such_module_anywhere\n",
    "lgbroken_first": (
        "from graphs import NodeType, Socket\n"
        "NODE_TYPES = (NodeType('lgbroken.same', 'Same', 'test', lambda ctx: {'out': 1},\n"
        "                       outputs=(Socket('out', 'INT'),)),)\n"),
    "lgbroken_dup": (
        "from graphs import NodeType, Socket\n"
        "NODE_TYPES = (NodeType('lgbroken.same', 'Again', 'test', lambda ctx: {'out': 2},\n"
        "                       outputs=(Socket('out', 'INT'),)),)\n"),
    "lgbroken_sig": (
        "from graphs import NodeType, Param, Socket\n"
        "def run(ctx, a, stepz):\n"
        "    return {'out': a}\n"
        "NODE_TYPES = (NodeType('lgbroken.sig', 'Sig', 'test', run, inputs=(Socket('a', 'INT'),),\n"
        "                       outputs=(Socket('out', 'INT'),), params=(Param('steps', 'int', 1),)),)\n"),
    "lgbroken_flat": (
        "from graphs import NodeType\n"
        "NODE_TYPES = (NodeType('flat', 'Flat', 'test', lambda ctx: {}),)\n"),
    "lgbroken_good": (
        "from graphs import NodeType, Param, Socket\n"
        "def provide():\n"
        "    return [NodeType('lgbroken.double', 'Double', 'test', lambda ctx, a: {'out': 2 * a},\n"
        "                     inputs=(Socket('a', 'INT'),), outputs=(Socket('out', 'INT'),))]\n"),
}
ENTRY_POINTS = {"a_import": "lgbroken_import", "b_first": "lgbroken_first", "c_dup": "lgbroken_dup",
                "d_sig": "lgbroken_sig", "e_flat": "lgbroken_flat", "f_good": "lgbroken_good:provide"}


@pytest.fixture
def broken_dist(tmp_path_factory):
    root = tmp_path_factory.mktemp("broken_plugins")
    for name, source in BROKEN_MODULES.items():
        (root / f"{name}.py").write_text(source)
    info = root / "lgbroken-1.2.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lgbroken\nVersion: 1.2\n")
    (info / "entry_points.txt").write_text(
        f"[{GROUP}]\n" + "".join(f"{k} = {v}\n" for k, v in ENTRY_POINTS.items()))
    return root


def test_example_plugin_loads_with_its_package():
    registry = fresh_registry()
    reports = load_plugins(registry)
    report = next(r for r in reports if r.name == "example")
    assert report.loaded and report.type_ids == (EXAMPLE,)
    assert report.package == "latentgraph-example" and report.version == "0.1.0"
    node_type = registry.nodes.get(EXAMPLE)
    assert node_type.package == "latentgraph-example" and node_type in list(registry.nodes)
    assert load_plugins(registry) == []  # once per registry


def test_broken_plugins_are_skipped_and_say_why(broken_dist, monkeypatch):
    monkeypatch.syspath_prepend(str(broken_dist))
    registry = fresh_registry()
    reports = {r.name: r for r in load_plugins(registry)}
    assert reports["example"].loaded  # a broken plugin never stops the others
    why = {name: r.reason for name, r in reports.items() if not r.loaded}
    assert set(why) == {"a_import", "c_dup", "d_sig", "e_flat"}
    assert why["a_import"].startswith("import failed: ModuleNotFoundError") and \
        "no_such_module_anywhere" in why["a_import"]
    assert why["c_dup"] == "duplicate type id 'lgbroken.same' (already provided by plugin 'b_first' (lgbroken))"
    assert "lgbroken.sig" in why["d_sig"] and "'steps'" in why["d_sig"] and "'stepz'" in why["d_sig"]
    assert "not namespaced" in why["e_flat"]
    assert reports["b_first"].loaded and reports["f_good"].loaded
    assert reports["f_good"].package == "lgbroken" and reports["f_good"].version == "1.2"
    assert registry.nodes.get("lgbroken.same").title == "Same"
    assert "lgbroken.sig" not in registry.nodes and "flat" not in registry.nodes


def test_cli_nodes_lists_plugins_and_why_one_was_skipped(broken_dist):
    proc = cli("nodes", env_path=broken_dist)
    assert proc.returncode == 0, proc.stderr
    assert EXAMPLE in proc.stdout and "(latentgraph-example)" in proc.stdout
    assert "a_import (lgbroken 1.2): skipped: import failed: ModuleNotFoundError" in proc.stdout
    assert "example (latentgraph-example 0.1.0): loaded: latentgraph_example.invert" in proc.stdout
    data = json.loads(cli("nodes", "--json", env_path=broken_dist).stdout)
    plugins = {p["name"]: p for p in data["plugins"]}
    assert plugins["d_sig"]["status"] == "skipped" and "'stepz'" in plugins["d_sig"]["reason"]
    assert any(t["type_id"] == EXAMPLE and t["package"] == "latentgraph-example" for t in data["nodes"])


# ----- run signatures checked at registration -----------------------------------------
def test_registry_refuses_a_run_that_does_not_match_its_declaration():
    registry = base_registry()

    def run(ctx, image, strenght, extra):
        return {}
    bad = NodeType("x.bad", "Bad", "test", run, inputs=(Socket("image", "INT"),),
                   params=(Param("strength", "float", 1.0),))
    with pytest.raises(ValueError) as info:
        registry.nodes.register(bad)
    message = str(info.value)
    assert message.startswith("node type 'x.bad': run ")
    assert "does not accept 'strength'" in message and "'strenght', 'extra'" in message
    optional = NodeType("x.opt", "Opt", "test", lambda ctx, image: {},
                        inputs=(Socket("image", "INT", optional=True),))
    with pytest.raises(ValueError, match="needs a default for optional input 'image'"):
        registry.nodes.register(optional)
    registry.nodes.register(NodeType("x.ok", "Ok", "test", lambda ctx, **values: {},
                                     inputs=(Socket("image", "INT"),), params=(Param("s", "int", 1),)))


# ----- the plugin's node from the CLI -----------------------------------------------------
def plugin_workflow(tmp_path) -> Path:
    registry = fresh_registry()
    load_plugins(registry)
    pixels = np.random.default_rng(1).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    g = Graph(registry)
    load = g.add_node(g.create_node("image.load", (0, 0), params={"path": "in.png"}, node_id="load"))
    inv = g.add_node(g.create_node(EXAMPLE, (300, 0), node_id="inv"))
    save = g.add_node(g.create_node("image.save", (600, 0), params={"prefix": "inv"}, node_id="save"))
    g.connect(load.id, "image", inv.id, "image")
    g.connect(inv.id, "image", save.id, "image")
    path = tmp_path / "invert.json"
    wf.save(g, path)
    return path


def test_cli_runs_a_workflow_with_the_plugin_node(tmp_path):
    from graphs import pngmeta

    path = plugin_workflow(tmp_path)
    proc = cli("run", path, "--output-dir", tmp_path / "out", "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = Path(proc.stdout.split()[0])
    source = np.asarray(Image.open(tmp_path / "in.png")).astype(int)
    assert np.abs(np.asarray(Image.open(out)).astype(int) - (255 - source)).max() <= 1
    with Image.open(out) as image:  # the plugin's declared report reaches the PNG
        parameters = json.loads(image.text[pngmeta.PARAMETERS_KEY])
    assert parameters["invert_strength"] == 1.0


# ----- placeholders ---------------------------------------------------------------------
def test_missing_plugin_round_trip_is_identical(tmp_path):
    path = plugin_workflow(tmp_path)
    data = json.loads(path.read_text())
    inv = next(n for n in data["nodes"] if n["id"] == "inv")
    inv["type_version"] = 3  # a newer version of the plugin's node
    inv["params"] = {"curve": [[0, 0.5], {"gamma": 2.2}], **inv["params"]}  # keys kept sorted
    original = json.dumps(data, indent=1, ensure_ascii=False) + "\n"  # as the app writes it
    path.write_text(original)
    registry = fresh_registry()  # the plugin is not loaded here
    graph = wf.load(path, registry)
    node = graph.nodes["inv"]
    assert graph.node_type(node).placeholder and node.type_version == 3
    assert node.params == {"strength": 1.0, "curve": [[0, 0.5], {"gamma": 2.2}]}
    assert missing_types(graph) == {EXAMPLE: ["inv"]}
    assert wf.dumps(graph) + "\n" == original
    wf.save(graph, tmp_path / "again.json", touch=False)
    assert (tmp_path / "again.json").read_bytes() == path.read_bytes()
    assert wf.dumps(wf.load(tmp_path / "again.json", registry)) + "\n" == original
    # it refuses to run, naming the type, before anything runs
    result = Executor().run(graph, settings={"output_dir": str(tmp_path / "out")})
    assert result.status == "failed" and result.executed == [] and result.error.node_id == "inv"
    assert result.error.error_type == "MissingNodeType"
    assert f"node type '{EXAMPLE}' is not installed" in result.error.message
    # strict loading still refuses
    with pytest.raises(WorkflowError, match="nodes\\[0\\].type: unknown node type"):
        wf.load(path, fresh_registry(), missing="error")


def test_cli_validate_reports_missing_types(tmp_path):
    path = plugin_workflow(tmp_path)
    data = json.loads(path.read_text())
    next(n for n in data["nodes"] if n["id"] == "inv")["type"] = "nobody.invert"
    path.write_text(json.dumps(data))
    proc = cli("validate", path)
    assert proc.returncode == 2
    assert "node types not installed: nobody.invert (1 node: 'Invert image')" in proc.stderr
    proc = cli("validate", path, "--allow-missing")
    assert proc.returncode == 0 and "missing node types: nobody.invert" in proc.stdout
    proc = cli("run", path, "--output-dir", tmp_path / "out", "--quiet")
    assert proc.returncode == 1 and "node type 'nobody.invert' is not installed" in proc.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_make_placeholder_for_an_importer():
    registry = fresh_registry()
    sampler = make_placeholder("comfy.KSamplerFancy", inputs={"model": "MODEL", "seed": "INT"},
                               outputs={"LATENT": "LATENT"},
                               params={"seed": 5, "sampler_name": "euler", "extra": [1, 2]},
                               package="comfyui-fancy")
    add_placeholder(registry, sampler)
    assert "comfy.KSamplerFancy" not in registry.nodes  # nobody provides it
    assert all(t.type_id != "comfy.KSamplerFancy" for t in registry.nodes)  # not offered
    g = Graph(registry)
    model = g.add_node(g.create_node("sd.load_model", node_id="m"))
    seed = g.add_node(g.create_node("value.seed", node_id="s"))
    ks = g.add_node(g.create_node("comfy.KSamplerFancy", node_id="k"))
    decode = g.add_node(g.create_node("sd.vae_decode", node_id="d"))
    g.connect(model.id, "model", ks.id, "model")
    g.connect(seed.id, "seed", ks.id, "seed")  # a link drives the "seed" param
    ok, why = g.can_connect(model.id, "clip", ks.id, "model")
    assert not ok and "type mismatch" in why  # the importer's socket types are kept
    g.connect(model.id, "vae", decode.id, "vae")
    g.connect(ks.id, "LATENT", decode.id, "latent")
    again = wf.loads(wf.dumps(g), registry)
    assert wf.dumps(again) == wf.dumps(g)
    assert again.nodes["k"].params == {"seed": 5, "sampler_name": "euler", "extra": [1, 2]}
    assert registry.nodes.get("comfy.KSamplerFancy").package == "comfyui-fancy"
    result = Executor().run(g, [decode.id])
    assert result.status == "failed" and "(from package 'comfyui-fancy')" in result.error.message


def test_placeholders_merge_sockets_across_files():
    registry = fresh_registry()

    def file_with(node_params, links):
        return {"format": "latentgraph", "version": 1,
                "nodes": [{"id": "a", "type": "gone.node", "pos": [0, 0], "params": node_params},
                          {"id": "n", "type": "sd.noise", "pos": [0, 0]}],
                "links": links}
    first = wf.from_dict(file_with({"x": 1}, [{"from": ["n", "noise"], "to": ["a", "in1"]}]), registry)
    second = wf.from_dict(file_with({"y": "z"}, [{"from": ["a", "out2"], "to": ["n", "seed"]}]), registry)
    assert first.nodes["a"].params == {"x": 1} and second.nodes["a"].params == {"y": "z"}
    merged = registry.nodes.get("gone.node")
    assert {s.name for s in merged.all_inputs()} >= {"in1"} and merged.output("out2") is not None
    # a type id that is not an id is refused, not turned into a node
    with pytest.raises(WorkflowError, match="unknown node type"):
        wf.from_dict(file_with({}, []) | {"nodes": [{"id": "a", "type": "../x y", "pos": [0, 0]}]}, registry)


def test_a_link_into_a_name_another_file_saved_as_a_param_still_opens():
    registry = fresh_registry()
    base = {"format": "latentgraph", "version": 1, "links": []}
    linked = base | {"nodes": [{"id": "a", "type": "gone.other", "pos": [0, 0]},
                               {"id": "s", "type": "value.seed", "pos": [0, 0]}],
                     "links": [{"from": ["s", "seed"], "to": ["a", "seed"]}]}
    saved = base | {"nodes": [{"id": "a", "type": "gone.other", "pos": [0, 0], "params": {"seed": 4}}]}
    for data in (linked, saved, linked):
        graph = wf.from_dict(data, registry)
        assert wf.dumps(wf.loads(wf.dumps(graph), registry)) == wf.dumps(graph)
    assert len(graph.links) == 1
