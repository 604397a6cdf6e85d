"""Load model's speed paths under stable ids: what files store, how older files are read, what the
editor and the CLI show. The paths' images are checked in test_cuda_paths.py and test_aot.py."""

from __future__ import annotations

import json

import pytest

import nodes  # noqa: F401  (registers the node types)
from graphs import Graph, WorkflowError, default_registry
from graphs import workflow as wf
from nodes.accelerators import ACCELERATORS, accelerator
from nodes.paths import resources_dir

V1_LABELS = {"off": "off", "CUDA graphs": "cuda_graphs", "compile": "compile",
             "compile + CUDA graphs": "compile_cuda_graphs",
             "regional compile + CUDA graphs": "regional_cuda_graphs",
             "AOT compile + CUDA graphs": "aot_cuda_graphs"}


def version_1_file(compile_label: str) -> dict:
    """The bundled txt2img workflow as version 1 wrote it: no type_version, the label stored."""
    data = json.loads((resources_dir() / "workflows" / "txt2img.json").read_text())
    data["version"] = 1
    for node in data["nodes"]:
        node.pop("type_version", None)
        if node["type"] == "sd.load_model":
            node["params"]["compile"] = compile_label
    return data


@pytest.mark.parametrize("label", sorted(V1_LABELS))
def test_a_version_1_file_reads_its_label_as_the_id_and_saves_the_id(label):
    graph = wf.from_dict(version_1_file(label))
    load = next(n for n in graph.nodes.values() if n.type_id == "sd.load_model")
    assert load.params["compile"] == V1_LABELS[label]
    assert load.type_version == 2
    saved = json.loads(wf.dumps(graph))
    assert saved["version"] == wf.VERSION == 2
    node = next(n for n in saved["nodes"] if n["type"] == "sd.load_model")
    assert node["params"]["compile"] == V1_LABELS[label] and node["type_version"] == 2
    assert wf.dumps(wf.loads(wf.dumps(graph))) == wf.dumps(graph)


def test_bundled_workflows_store_ids():
    for path in (resources_dir() / "workflows").glob("*.json"):
        data = json.loads(path.read_text())
        assert data["version"] == 2, path.name
        for node in data["nodes"]:
            if node["type"] == "sd.load_model":
                assert node["params"]["compile"] in ACCELERATORS, path.name


def test_an_unknown_mode_is_refused_naming_the_node_and_the_choices():
    data = version_1_file("warp drive")
    with pytest.raises(WorkflowError, match=r"nodes\[\d+\]\.params\.compile: expected one of off, cuda_graphs"):
        wf.from_dict(data)


def test_a_label_set_through_the_model_is_stored_as_the_id():
    graph = Graph(default_registry())
    node = graph.add_node(graph.create_node("sd.load_model", (0, 0)))
    assert node.params["compile"] == "cuda_graphs"
    graph.set_param(node.id, "compile", "AOT compile + CUDA graphs")
    assert node.params["compile"] == "aot_cuda_graphs"
    graph.set_param(node.id, "compile", "Regional_CUDA_Graphs")
    assert node.params["compile"] == "regional_cuda_graphs"


def test_the_catalogue_lists_ids_with_their_labels():
    from test_cli import cli

    catalogue = json.loads(cli("nodes", "--json").stdout)
    assert {(f["id"], f["default_size"]) for f in catalogue["families"]} == {
        ("sd1", 512), ("sd2", 768), ("sdxl_base", 1024), ("sdxl_refiner", 1024)}
    described = {t["type_id"]: t for t in catalogue["nodes"]}["sd.load_model"]
    assert described["version"] == 2
    param = next(p for p in described["params"] if p["name"] == "compile")
    assert param["choices"] == list(ACCELERATORS)
    assert param["choice_labels"] == [a.label for a in ACCELERATORS.values()]


def test_accelerator_lookup_takes_ids_and_old_labels_and_refuses_others():
    assert accelerator("aot_cuda_graphs") is accelerator("AOT compile + CUDA graphs")
    from nodes.model_sources import ModelLoadError

    with pytest.raises(ModelLoadError, match="unknown compile mode 'fast'"):
        accelerator("fast")


def test_a_label_and_its_id_share_one_cached_model(tiny_sd):
    from nodes.models import MODEL_CACHE

    by_id = MODEL_CACHE.get(str(tiny_sd), "cpu", "fp32", compile="cuda_graphs")
    assert MODEL_CACHE.get(str(tiny_sd), "cpu", "fp32", compile="CUDA graphs") is by_id


def test_the_editor_shows_labels_and_stores_ids(qtbot):
    from nodeeditor.widgets import display_value, make_editor

    param = default_registry().nodes.get("sd.load_model").param("compile")
    changes = []
    editor = make_editor(param, "regional_cuda_graphs", changes.append)
    combo = editor.widget
    qtbot.addWidget(combo)
    assert combo.currentText() == "regional compile + CUDA graphs"
    assert [combo.itemText(i) for i in range(combo.count())] == [a.label for a in ACCELERATORS.values()]
    combo.setCurrentIndex(combo.findText("AOT compile + CUDA graphs"))
    assert changes == ["aot_cuda_graphs"]
    editor.set_value("off")
    assert combo.currentText() == "off"
    assert display_value(param, "compile_cuda_graphs") == "compile + CUDA graphs"
