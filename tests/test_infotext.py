"""A1111 infotext in the PNG 'parameters' chunk: written by Save image and sweeps, read back with
A1111's own field pattern; hashes are AutoV2 (the file's SHA-256, first 10 hex digits)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import pytest
import torch

import nodes  # noqa: F401
from graphs import Executor, pngmeta
from nodes.infotext import autov2
from nodes.recipes import txt2img_graph
from nodes.tiny_loras import make_random_lora

# A1111's modules/infotext_utils.py: one "Key: value" field, the value quoted when it holds commas
A1111_FIELD = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


def read_back(text: str) -> tuple[list[str], dict[str, str]]:
    *lines, last = text.split("\n")
    return lines, {k: (json.loads(v) if v.startswith('"') else v) for k, v in A1111_FIELD.findall(last)}


def sha10(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:10]


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_save_image_writes_a1111_infotext_with_loras_and_embeddings(tiny_sd, tmp_path, cache_home):
    from transformers import CLIPTextConfig

    models = tmp_path / "models"
    (models / "loras").mkdir(parents=True)
    (models / "embeddings").mkdir()
    style = make_random_lora(tiny_sd, models / "loras" / "style.safetensors", 1)
    detail = make_random_lora(tiny_sd, models / "loras" / "detail.safetensors", 2)
    width = CLIPTextConfig.from_pretrained(str(tiny_sd / "text_encoder")).hidden_size
    torch.save({"string_to_param": {"*": torch.randn(1, width)}}, models / "embeddings" / "mood.pt")

    graph, ids = txt2img_graph(str(tiny_sd), prompt="a red star, embedding:mood", negative="blurry", seed=9,
                               steps=3, cfg=6.5, scheduler="Euler a")
    previous = (ids["load"], "model"), (ids["load"], "clip")
    for name, strength, bypass in (("style", 0.8, False), ("detail", 0.5, True)):
        node = graph.add_node(graph.create_node("sd.load_lora", params={
            "file": name, "strength_model": strength, "strength_clip": 1.0})).id
        graph.set_flag(node, "bypass", bypass)
        graph.connect(*previous[0], node, "model")
        graph.connect(*previous[1], node, "clip")
        previous = (node, "model"), (node, "clip")
    graph.connect(*previous[0], ids["unet"], "model")
    for encode in ("positive", "negative"):
        graph.connect(*previous[1], ids[encode], "clip")
    save = graph.add_node(graph.create_node("image.save", params={"prefix": "info"})).id
    graph.connect(ids["decode"], "image", save, "image")
    result = Executor(settings={"models_dir": str(models), "output_dir": str(tmp_path / "out")}).run(graph)
    assert result.status == "finished", result.error and result.error.message
    (path,) = result.outputs[save]["paths"]
    lines, fields = read_back(pngmeta.read_text_chunks(path)["parameters"])
    assert lines == ["a red star, embedding:mood <lora:style:0.8>", "Negative prompt: blurry"]
    assert fields["Steps"] == "3" and fields["Sampler"] == "Euler a" and fields["CFG scale"] == "6.5"
    assert fields["Seed"] == "9" and fields["Size"] == "32x32"
    assert fields["Lora hashes"] == f"style: {sha10(style)}"  # the bypassed LoRA changed nothing
    assert fields["TI hashes"] == f"mood: {sha10(models / 'embeddings' / 'mood.pt')}"
    assert fields["Model"] == tiny_sd.name and "Model hash" not in fields  # a folder has no file hash
    assert fields["Version"].startswith("LatentGraph")
    assert detail.exists()


def test_a_checkpoint_file_gets_its_model_hash(tiny_sd, tmp_path, cache_home):
    from safetensors.torch import save_file

    from nodes.ldm_export import folder_to_ldm

    file = tmp_path / "tiny-v1.safetensors"
    save_file(folder_to_ldm(tiny_sd), str(file))
    graph, ids = txt2img_graph(str(file), seed=1, steps=2)
    graph.set_param(ids["load"], "config", str(tiny_sd))
    save = graph.add_node(graph.create_node("image.save", params={"prefix": "ckpt"})).id
    graph.connect(ids["decode"], "image", save, "image")
    result = Executor(settings={"output_dir": str(tmp_path / "out")}).run(graph)
    assert result.status == "finished", result.error and result.error.message
    _, fields = read_back(pngmeta.read_text_chunks(result.outputs[save]["paths"][0])["parameters"])
    assert fields["Model hash"] == sha10(file) and fields["Model"] == "tiny-v1"


def test_file_hashes_are_kept_on_disk_and_follow_changes(tmp_path, cache_home):
    import nodes.infotext as info

    file = tmp_path / "model.safetensors"
    file.write_bytes(b"a" * 5000)
    assert autov2(file) == sha10(file)
    stored = json.loads((tmp_path / "cache" / "latentgraph" / "file_hashes.json").read_text())
    assert hashlib.sha256(file.read_bytes()).hexdigest() in stored.values()
    info._HASHES.clear()
    info._LOADED[0] = False  # a new process: read from the disk cache
    assert autov2(file) == sha10(file)
    shutil.copy(file, tmp_path / "copy")
    file.write_bytes(b"b" * 5000)
    assert autov2(file) == sha10(file) != sha10(tmp_path / "copy")
