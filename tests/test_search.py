"""The add-node search: ComfyUI's names and common words find our nodes, misspellings too, an
empty result says so, frequent choices rank higher — through the popup with real key events."""

from __future__ import annotations

import pytest
from conftest_editor import open_window
from PySide6.QtCore import Qt

import nodes  # noqa: F401
from graphs import REROUTE, default_registry
from nodeeditor.search import addable_types, rank

TYPES = addable_types(default_registry())
# what users type -> the node they mean (issue 26 lists the first nine as finding nothing before)
EXPECTED = {
    "checkpoint": "sd.load_model", "KSampler": "sd.unet_denoise", "CLIP Text Encode": "sd.text_encode",
    "sampler": "sd.unet_denoise", "clip": "sd.text_encode", "prompt": "sd.text_encode", "ckpt": "sd.load_model",
    "latent image": "sd.empty_latent", "encode": "sd.text_encode",
    "CheckpointLoaderSimple": "sd.load_model", "CLIPTextEncode": "sd.text_encode",
    "EmptyLatentImage": "sd.empty_latent", "VAEDecode": "sd.vae_decode", "VAEEncode": "sd.vae_encode",
    "SaveImage": "image.save", "LoadImage": "image.load", "PreviewImage": "image.preview",
    "LoraLoader": "sd.load_lora", "VAELoader": "sd.load_vae", "LatentUpscale": "sd.upscale_latent",
    "ImageScale": "image.scale", "CLIPTextEncodeSDXL": "sd.sdxl_conditioning", "Reroute": REROUTE,
    # misspelt
    "ksmapler": "sd.unet_denoise", "chekpoint": "sd.load_model", "lora loder": "sd.load_lora",
}


@pytest.mark.parametrize(("query", "type_id"), sorted(EXPECTED.items()))
def test_users_words_find_the_node_first(query, type_id):
    found = rank(query, TYPES)
    assert found and found[0].type_id == type_id, [t.type_id for t in found[:3]]


def test_txt_finds_something_and_frequent_choices_rank_first():
    assert rank("txt", TYPES)
    assert rank("", TYPES, {"sd.vae_decode": 5})[0].type_id == "sd.vae_decode"
    plain = [t.type_id for t in rank("image", TYPES)]
    used = [t.type_id for t in rank("image", TYPES, {"image.preview": 20})]
    assert used[0] == "image.preview" != plain[0]


@pytest.fixture
def sd_window(qtbot, tmp_path):
    win = open_window(qtbot, tmp_path, default_registry())
    yield win
    win.worker.shutdown()


def test_typing_a_comfyui_name_and_enter_adds_the_node(sd_window, qtbot):
    win = sd_window
    win.document.new_file()
    before = len(win.graph.nodes)
    popup = win.view.open_search()
    qtbot.keyClicks(popup.query, "KSampler")
    assert popup.results()[0] == "sd.unet_denoise"
    qtbot.keyClick(popup.query, Qt.Key.Key_Return)
    added = [n for n in win.graph.nodes.values() if n.type_id == "sd.unet_denoise"]
    assert len(win.graph.nodes) == before + 1 and added
    assert win.view.search_usage["sd.unet_denoise"] == 1
    popup = win.view.open_search()
    qtbot.keyClicks(popup.query, "zzqqxx")
    assert popup.results() == []
    message = popup.list.item(0).text()
    assert message.startswith("No node matches “zzqqxx”.")
    qtbot.keyClick(popup.query, Qt.Key.Key_Return)  # the message is not a node to add
    assert len(win.graph.nodes) == before + 1
    popup.close()
    assert REROUTE in [t.type_id for t in popup.node_types]
