"""ComfyUI workflows open as LatentGraph graphs: the public templates (tests/data/comfyui, MIT),
an API prompt, a PNG that ComfyUI wrote; what cannot be mapped stays visible as placeholders and
in the report; nothing a file holds crashes the importer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import nodes  # noqa: F401
from graphs import Executor, WorkflowError, default_registry
from nodes.comfyui import detect, import_data, load_any

DATA = Path(__file__).parent / "data" / "comfyui"
ROOT = Path(__file__).resolve().parent.parent


def template(name: str) -> dict:
    return json.loads((DATA / f"{name}.json").read_text())


def by_type(graph, type_id):
    return [n for n in graph.nodes.values() if n.type_id == type_id]


def feeds(graph, node_id, input_name):
    link = graph.inbound(node_id, input_name)
    return None if link is None else (graph.nodes[link.src_node], link.src_output)


def test_the_canonical_sd15_template_imports_node_for_node():
    graph, report = import_data(template("default"))
    assert report.clean and report.nodes == 11
    (load,) = by_type(graph, "sd.load_model")
    assert load.params["source"] == "v1-5-pruned-emaonly-fp16.safetensors"
    (unet,) = by_type(graph, "sd.unet_denoise")
    assert unet.params["cfg"] == 8.0 and unet.params["denoise"] == 1.0
    (noise,) = by_type(graph, "sd.noise")
    assert noise.params["seed"] == 685468484323813 and noise.params["control"] == "randomize"
    (scheduler,) = by_type(graph, "sd.scheduler")
    assert scheduler.params["name"] == "Euler" and scheduler.params["steps"] == 20
    (empty,) = by_type(graph, "sd.empty_latent")
    assert (empty.params["width"], empty.params["height"], empty.params["batch"]) == (512, 512, 1)
    positive, negative = feeds(graph, unet.id, "positive")[0], feeds(graph, unet.id, "negative")[0]
    assert positive.params["text"].startswith("beautiful scenery nature glass bottle")
    assert negative.params["text"] == "text, watermark" and negative.params["weighting"] == "comfy"
    assert feeds(graph, unet.id, "model") == (load, "model")
    assert feeds(graph, unet.id, "latent") == (empty, "latent")
    assert feeds(graph, unet.id, "noise") == (noise, "noise")
    (decode,) = by_type(graph, "sd.vae_decode")
    assert feeds(graph, decode.id, "vae") == (load, "vae") and feeds(graph, decode.id, "latent") == (unet, "latent")
    (save,) = by_type(graph, "image.save")
    assert save.params["prefix"] == "SD1.5" and feeds(graph, save.id, "image") == (decode, "image")
    assert sorted(n.title for n in by_type(graph, "note.text")) == [
        "Note: Image size", "Note: Model link", "Note: Output", "Note: Prompt"]
    frames = {f.title: f for f in graph.frames.values()}
    assert set(frames) == {"Step 1 - Load model", "Step 2 - Prompt", "Step 3 - Image size", "KSampler"}
    x, y, w, h = frames["KSampler"].rect
    for node in (unet, noise, scheduler):  # the sampler's three nodes sit in the frame named after it
        assert x <= node.pos[0] <= x + w and y <= node.pos[1] <= y + h
    assert positive.color == "#223322" and negative.color == "#222233"  # ComfyUI's "#232" / "#223"


def test_the_sdxl_template_keeps_its_sampler_schedule_and_titles():
    graph, report = import_data(template("image_sdxl_simple"))
    assert report.clean
    (scheduler,) = by_type(graph, "sd.scheduler")
    assert scheduler.params["name"] == "DPM++ 2M" and scheduler.params["steps"] == 25
    if "schedule" in scheduler.params:
        assert scheduler.params["schedule"] == "karras"
    titles = {n.title for n in by_type(graph, "sd.text_encode")}
    assert titles == {"Positive Prompt", "Negative Prompt"}
    assert by_type(graph, "sd.empty_latent")[0].params["width"] == 1024


def test_the_turbo_template_folds_its_sampler_nodes_into_one_scheduler():
    graph, report = import_data(template("sdxlturbo_example"))
    assert not report.placeholders and not report.dropped
    assert any("SDTurboScheduler" in line for line in report.samplers)
    (scheduler,) = by_type(graph, "sd.scheduler")
    assert scheduler.params["name"] == "Euler a" and scheduler.params["steps"] == 1
    (unet,) = by_type(graph, "sd.unet_denoise")
    assert unet.params["cfg"] == 1.0 and unet.params["add_noise"] is True
    assert feeds(graph, unet.id, "scheduler") == (scheduler, "scheduler")
    assert not [n for n in graph.nodes.values() if "KSamplerSelect" in n.type_id or "SDTurbo" in n.type_id]


def test_a_subgraph_is_flattened_framed_and_its_unknown_nodes_kept_as_placeholders():
    graph, report = import_data(template("image_lotus_depth_v1_1"))
    assert [f.title for f in graph.frames.values()] == ["Lotus depth"]
    placeholders = {n.type_id for n in graph.nodes.values() if graph.node_type(n).placeholder}
    assert {"comfyui.UNETLoader", "comfyui.SamplerCustomAdvanced", "comfyui.LotusConditioning"} <= placeholders
    assert len(report.placeholders) == len([n for n in graph.nodes.values() if graph.node_type(n).placeholder])
    (load,) = by_type(graph, "image.load")
    (encode,) = by_type(graph, "sd.vae_encode")
    assert feeds(graph, encode.id, "image") == (load, "image")  # through the subgraph's boundary
    (save,) = by_type(graph, "image.save")
    invert = feeds(graph, save.id, "image")[0]
    assert invert.type_id == "image.invert"  # from the subgraph's output back out
    unet_loader = next(n for n in graph.nodes.values() if n.type_id == "comfyui.UNETLoader")
    assert unet_loader.params["widgets_values"] == ["lotus-depth-d-v1-1.safetensors", "default"]
    result = Executor().run(graph, targets=[unet_loader.id])
    assert result.status == "failed" and "comfyui.UNETLoader" in result.error.message


API_DEFAULT = {
    "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 12, "cfg": 6.5, "sampler_name": "dpmpp_2m",
                                               "scheduler": "karras", "denoise": 1.0, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 640, "height": 448, "batch_size": 2}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a (red:1.2) fox", "clip": ["4", 1]},
          "_meta": {"title": "Positive"}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "api", "images": ["8", 0]}},
}


def test_an_api_prompt_imports_laid_out_left_to_right():
    assert detect(API_DEFAULT) == "api" and detect(template("default")) == "ui"
    graph, report = import_data(API_DEFAULT)
    assert report.source == "ComfyUI API prompt" and report.clean
    (unet,) = by_type(graph, "sd.unet_denoise")
    (scheduler,) = by_type(graph, "sd.scheduler")
    assert scheduler.params["steps"] == 12 and scheduler.params["name"] == "DPM++ 2M"
    assert by_type(graph, "sd.noise")[0].params["seed"] == 5
    assert by_type(graph, "sd.empty_latent")[0].params["batch"] == 2
    assert {n.title for n in by_type(graph, "sd.text_encode")} == {"Positive", "Text encode"}
    for link in graph.links.values():  # every link runs left to right
        assert graph.nodes[link.src_node].pos[0] < graph.nodes[link.dst_node].pos[0], link


def test_a_png_written_by_comfyui_opens_its_workflow(tmp_path):
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()  # the chunks ComfyUI's SaveImage writes
    info.add_text("prompt", json.dumps(API_DEFAULT))
    info.add_text("workflow", (DATA / "default.json").read_text())
    path = tmp_path / "ComfyUI_00001_.png"
    Image.new("RGB", (8, 8)).save(path, pnginfo=info)
    graph, report = load_any(path)
    assert report.source.startswith("ComfyUI workflow") and len(by_type(graph, "note.text")) == 4
    only_prompt = tmp_path / "prompt_only.png"
    info = PngInfo()
    info.add_text("prompt", json.dumps(API_DEFAULT))
    Image.new("RGB", (8, 8)).save(only_prompt, pnginfo=info)
    graph, report = load_any(only_prompt)
    assert report.source == "ComfyUI API prompt"
    plain = tmp_path / "plain.png"
    Image.new("RGB", (8, 8)).save(plain)
    with pytest.raises(WorkflowError, match="carries no LatentGraph or ComfyUI workflow"):
        load_any(plain)


def test_the_cli_imports_and_runs_the_template_on_the_bundled_model(tmp_path):
    out = tmp_path / "default_imported.json"
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", "import", str(DATA / "default.json"), "--to",
                           str(out)], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Everything mapped exactly." in proc.stdout and out.is_file()
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", "run", str(out), "--set", "Load model.source=bundled",
                           "--set", "Empty latent.width=64", "--set", "Empty latent.height=64",
                           "--set", "Scheduler.steps=3", "--output-dir", str(tmp_path / "out"), "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert [p.name for p in (tmp_path / "out").glob("*.png")] == ["SD1.5_00001.png"]
    proc = subprocess.run([sys.executable, "-m", "nodeeditor.cli", "validate", str(DATA / "image_lotus_depth_v1_1.json")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode != 0 and "UNETLoader has no LatentGraph node" in proc.stderr


@pytest.mark.parametrize("mutate", [
    (lambda d: d["links"].append([99, 4, 0, 3]) or f"links[{len(d['links']) - 1}]: a link array needs"),
    (lambda d: d["nodes"].append({"id": 4, "type": "VAEDecode"}) or f"nodes[{len(d['nodes']) - 1}]: node id 4"),
    (lambda d: d["nodes"][0].pop("type") and "nodes[0]: a node needs an id and a type"),
    (lambda d: d["links"][0].__setitem__(2, "zero") or "links[0]: link ids, node ids and slots must be integers"),
])
def test_a_malformed_file_is_refused_naming_where(mutate):
    data = template("default")
    expected = mutate(data)
    with pytest.raises(WorkflowError) as caught:
        import_data(data, file="broken.json")
    assert expected in str(caught.value) and "broken.json" in str(caught.value)


def test_a_custom_node_keeps_its_pack_name_and_refuses_to_run():
    prompt = {**API_DEFAULT, "10": {"class_type": "FancyUpscaler+", "inputs": {"factor": 2, "image": ["8", 0]}}}
    data = json.loads(json.dumps(prompt))
    graph, report = import_data(data)
    (fancy,) = [n for n in graph.nodes.values() if n.type_id == "comfyui.FancyUpscaler_"]
    assert fancy.params == {"factor": 2} and feeds(graph, fancy.id, "image")[0].type_id == "sd.vae_decode"
    assert report.placeholders == ["FancyUpscaler+ (#10): FancyUpscaler+ has no LatentGraph node"]
    assert default_registry().nodes.get("comfyui.FancyUpscaler_").placeholder
