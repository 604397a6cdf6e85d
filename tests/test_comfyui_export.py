"""A graph as a ComfyUI API prompt: import, export and import again gives the same graph; a node
with no ComfyUI equivalent is refused by name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nodes  # noqa: F401
from graphs import workflow
from graphs.registry import REROUTE
from nodes.comfyui import import_data
from nodes.comfyui.export import ExportError, export_api

DATA = Path(__file__).parent / "data" / "comfyui"
ROOT = Path(__file__).resolve().parent.parent


def shape(graph):
    """The graph without its layout and ids: node types with params, and typed links (reroutes
    and viewers that exports leave out are looked through)."""
    def key(node_id):
        node = graph.nodes[node_id]
        return node.type_id, json.dumps(node.params, sort_keys=True)

    def source(link):
        while graph.nodes[link.src_node].type_id == REROUTE:
            link = graph.inbound(link.src_node, "in")
        return link

    kept = [n for n in graph.nodes.values() if n.type_id not in (REROUTE, "note.text", "sd.latent_inspect")]
    links = sorted((key(source(ln).src_node), source(ln).src_output, key(ln.dst_node), ln.dst_input)
                   for ln in graph.links.values() if graph.nodes[ln.dst_node].type_id not in
                   (REROUTE, "sd.latent_inspect"))
    return sorted(key(n.id) for n in kept), links


@pytest.mark.parametrize("name", ["default", "image_sdxl_simple"])
def test_import_export_import_gives_the_same_graph(name):
    first, _ = import_data(json.loads((DATA / f"{name}.json").read_text()))
    prompt = export_api(first)
    assert {entry["class_type"] for entry in prompt.values()} >= {"KSampler", "CheckpointLoaderSimple", "SaveImage"}
    second, report = import_data(json.loads(json.dumps(prompt)))
    assert report.clean
    assert shape(second) == shape(first)


def test_cut_steps_and_clip_skip_export_as_ksampler_advanced_and_clip_set_last_layer():
    graph, _ = import_data(json.loads((DATA / "default.json").read_text()))
    unet = next(n for n in graph.nodes.values() if n.type_id == "sd.unet_denoise")
    graph.set_param(unet.id, "end_step", 12)
    graph.set_param(unet.id, "leftover_noise", False)
    encode = next(n for n in graph.nodes.values() if n.type_id == "sd.text_encode")
    graph.set_param(encode.id, "clip_skip", 1)
    prompt = export_api(graph)
    (advanced,) = [e for e in prompt.values() if e["class_type"] == "KSamplerAdvanced"]
    assert advanced["inputs"]["end_at_step"] == 12 and advanced["inputs"]["return_with_leftover_noise"] == "disable"
    (skip,) = [e for e in prompt.values() if e["class_type"] == "CLIPSetLastLayer"]
    assert skip["inputs"]["stop_at_clip_layer"] == -2
    again, _ = import_data(prompt)
    assert shape(again) == shape(graph)


def test_a_node_with_no_comfyui_equivalent_is_refused_by_name(tmp_path):
    graph = workflow.load(ROOT / "resources" / "workflows" / "hires_fix.json")
    graph.add_node(graph.create_node("mask.feather", title="Soft edge"))
    with pytest.raises(ExportError, match=r"Soft edge \(mask.feather\) has no ComfyUI equivalent"):
        export_api(graph)
    out = tmp_path / "api.json"
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", "export", str(ROOT / "resources" / "workflows" /
                           "txt2img.json"), "--comfy-api", str(out)], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    prompt = json.loads(out.read_text())
    assert sorted(e["class_type"] for e in prompt.values()) == sorted([
        "CheckpointLoaderSimple", "CLIPTextEncode", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode",
        "SaveImage", "PreviewImage"])
