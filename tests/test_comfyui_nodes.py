"""Each mapped ComfyUI node type, one by one (the expected LatentGraph node and params written out
here), and the UI file's own features: modes, reroutes, PrimitiveNode, widgets turned into inputs,
link objects, WebP images."""

from __future__ import annotations

import json

import pytest

import nodes  # noqa: F401
from nodes.comfyui import import_data, load_any

LOADER = {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "model.safetensors"}}
IMAGE = {"class_type": "LoadImage", "inputs": {"image": "photo.png", "upload": "image"}}
ENCODE = {"class_type": "CLIPTextEncode", "inputs": {"text": "a cat", "clip": ["ckpt", 1]}}
LATENT = {"class_type": "EmptyLatentImage", "inputs": {"width": 512, "height": 512, "batch_size": 1}}
MASK = {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}}

# class: (its inputs beside the feeding nodes, the node(s) expected: {type id: {param: value}})
CASES = {
    "CheckpointLoaderSimple": ({"ckpt_name": "a.safetensors"}, {"sd.load_model": {"source": "a.safetensors"}}),
    "VAELoader": ({"vae_name": "vae.safetensors"}, {"sd.load_vae": {"source": "vae.safetensors"}}),
    "LoraLoader": ({"lora_name": "style.safetensors", "strength_model": 0.7, "strength_clip": 0.4,
                    "model": ["ckpt", 0], "clip": ["ckpt", 1]},
                   {"sd.load_lora": {"file": "style.safetensors", "strength_model": 0.7, "strength_clip": 0.4}}),
    "LoraLoaderModelOnly": ({"lora_name": "s.safetensors", "strength_model": 0.5, "model": ["ckpt", 0]},
                            {"sd.load_lora": {"file": "s.safetensors", "strength_model": 0.5, "strength_clip": 0.0}}),
    "ControlNetLoader": ({"control_net_name": "canny.safetensors"}, {"sd.load_controlnet": {"source": "canny.safetensors"}}),
    "UpscaleModelLoader": ({"model_name": "4x.pth"}, {"image.load_upscale_model": {"model": "4x.pth"}}),
    "CLIPTextEncode": ({"text": "a (cat:1.2)", "clip": ["ckpt", 1]},
                       {"sd.text_encode": {"text": "a (cat:1.2)", "weighting": "comfy"}}),
    "CLIPSetLastLayer": ({"stop_at_clip_layer": -2, "clip": ["ckpt", 1]}, {"graph.reroute": {}}),
    "ConditioningZeroOut": ({"conditioning": ["enc", 0]}, {"sd.zero_conditioning": {}}),
    "ConditioningCombine": ({"conditioning_1": ["enc", 0], "conditioning_2": ["enc", 0]},
                            {"sd.combine_conditioning": {}}),
    "EmptyLatentImage": ({"width": 768, "height": 512, "batch_size": 4},
                         {"sd.empty_latent": {"width": 768, "height": 512, "batch": 4}}),
    "VAEDecode": ({"samples": ["lat", 0], "vae": ["ckpt", 2]}, {"sd.vae_decode": {}}),
    "VAEEncode": ({"pixels": ["img", 0], "vae": ["ckpt", 2]}, {"sd.vae_encode": {}}),
    "VAEEncodeForInpaint": ({"grow_mask_by": 8, "pixels": ["img", 0], "vae": ["ckpt", 2], "mask": ["img", 1]},
                            {"sd.vae_encode_inpaint": {"grow_mask_by": 8}}),
    "SetLatentNoiseMask": ({"samples": ["lat", 0], "mask": ["img", 1]}, {"sd.set_noise_mask": {}}),
    "LoadImage": ({"image": "in.png", "upload": "image"}, {"image.load": {"path": "in.png"}}),
    "LoadImageMask": ({"image": "m.png", "channel": "red"}, {"mask.load": {"path": "m.png", "channel": "red"}}),
    "SaveImage": ({"filename_prefix": "out", "images": ["img", 0]}, {"image.save": {"prefix": "out"}}),
    "PreviewImage": ({"images": ["img", 0]}, {"image.preview": {}}),
    "ImageScale": ({"upscale_method": "lanczos", "width": 640, "height": 480, "crop": "disabled", "image": ["img", 0]},
                   {"image.scale": {"method": "lanczos", "width": 640, "height": 480, "scale_by": 0.0}}),
    "ImageScaleBy": ({"upscale_method": "bicubic", "scale_by": 1.5, "image": ["img", 0]},
                     {"image.scale": {"method": "bicubic", "scale_by": 1.5}}),
    "ImageScaleToTotalPixels": ({"upscale_method": "area", "megapixels": 2.0, "image": ["img", 0]},
                                {"image.scale_to_megapixels": {"method": "area", "megapixels": 2.0}}),
    "ImagePadForOutpaint": ({"left": 64, "top": 0, "right": 128, "bottom": 8, "feathering": 24, "image": ["img", 0]},
                            {"image.pad_for_outpaint": {"left": 64, "top": 0, "right": 128, "bottom": 8,
                                                        "feathering": 24}}),
    "LatentUpscale": ({"upscale_method": "bilinear", "width": 1024, "height": 768, "crop": "disabled",
                       "samples": ["lat", 0]},
                      {"sd.upscale_latent": {"method": "bilinear", "width": 1024, "height": 768, "scale_by": 0.0}}),
    "LatentUpscaleBy": ({"upscale_method": "nearest-exact", "scale_by": 2.0, "samples": ["lat", 0]},
                        {"sd.upscale_latent": {"method": "nearest-exact", "scale_by": 2.0}}),
    "ImageUpscaleWithModel": ({"upscale_model": ["up", 0], "image": ["img", 0]}, {"image.upscale_with_model": {}}),
    "Canny": ({"low_threshold": 0.4, "high_threshold": 0.8, "image": ["img", 0]},
              {"image.canny": {"low_threshold": 102, "high_threshold": 204}}),
    "ControlNetApply": ({"strength": 0.8, "conditioning": ["enc", 0], "control_net": ["cn", 0], "image": ["img", 0]},
                        {"sd.apply_controlnet": {"strength": 0.8}}),
    "ControlNetApplyAdvanced": ({"strength": 0.6, "start_percent": 0.1, "end_percent": 0.9, "positive": ["enc", 0],
                                 "negative": ["enc", 0], "control_net": ["cn", 0], "image": ["img", 0]},
                                {"sd.apply_controlnet": {"strength": 0.6, "start_percent": 0.1, "end_percent": 0.9}}),
    "KSampler": ({"seed": 9, "steps": 15, "cfg": 5.5, "sampler_name": "euler_ancestral", "scheduler": "karras",
                  "denoise": 0.75, "model": ["ckpt", 0], "positive": ["enc", 0], "negative": ["enc", 0],
                  "latent_image": ["lat", 0]},
                 {"sd.noise": {"seed": 9}, "sd.scheduler": {"name": "Euler a", "steps": 15},
                  "sd.unet_denoise": {"cfg": 5.5, "denoise": 0.75}}),
    "KSamplerAdvanced": ({"add_noise": "disable", "noise_seed": 3, "steps": 30, "cfg": 7.0, "sampler_name": "dpmpp_2m",
                          "scheduler": "normal", "start_at_step": 20, "end_at_step": 10000,
                          "return_with_leftover_noise": "disable", "model": ["ckpt", 0], "positive": ["enc", 0],
                          "negative": ["enc", 0], "latent_image": ["lat", 0]},
                         {"sd.noise": {"seed": 3}, "sd.scheduler": {"name": "DPM++ 2M", "steps": 30},
                          "sd.unet_denoise": {"cfg": 7.0, "start_step": 20, "end_step": -1, "add_noise": False}}),
    "GrowMask": ({"expand": -4, "tapered_corners": False, "mask": ["msk", 0]},
                 {"mask.grow": {"pixels": -4, "tapered_corners": False}}),
    "InvertMask": ({"mask": ["msk", 0]}, {"mask.invert": {}}),
    "ThresholdMask": ({"value": 0.3, "mask": ["msk", 0]}, {"mask.threshold": {"value": 0.3}}),
    "ImageToMask": ({"channel": "green", "image": ["img", 0]}, {"mask.from_image": {"channel": "green"}}),
    "MaskToImage": ({"mask": ["msk", 0]}, {"mask.to_image": {}}),
    "ImageInvert": ({"image": ["img", 0]}, {"image.invert": {}}),
    "PrimitiveInt": ({"value": 42}, {"value.int": {"value": 42}}),
    "PrimitiveFloat": ({"value": 0.25}, {"value.float": {"value": 0.25}}),
    "PrimitiveString": ({"value": "hi"}, {"value.string": {"value": "hi"}}),
    "Note": ({"text": "read me"}, {"note.text": {"text": "read me"}}),
}


@pytest.mark.parametrize("class_type", sorted(CASES))
def test_each_core_node_type_maps_to_its_node(class_type):
    inputs, expected = CASES[class_type]
    prompt = {"ckpt": LOADER, "img": IMAGE, "enc": ENCODE, "lat": LATENT, "msk": MASK,
              "cn": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "c.safetensors"}},
              "up": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": "u.pth"}},
              "x": {"class_type": class_type, "inputs": inputs}}
    graph, report = import_data(json.loads(json.dumps(prompt)))
    made = {n.type_id: n for n in graph.nodes.values() if n.id == "cx" or n.id.startswith("cx.")}
    assert set(made) == set(expected), report.text()
    for type_id, params in expected.items():
        for name, value in params.items():
            assert made[type_id].params.get(name) == value, (type_id, name)
    for name, value in inputs.items():  # every link the node had arrives somewhere
        if isinstance(value, list):
            assert any(ln.dst_node in {n.id for n in made.values()} for ln in graph.links.values()), name
    assert not report.placeholders and not report.dropped, report.text()


def test_clip_set_last_layer_sets_clip_skip_on_the_encoders_it_feeds():
    prompt = {"ckpt": LOADER, "skip": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2,
                                                                                     "clip": ["ckpt", 1]}},
              "enc": {"class_type": "CLIPTextEncode", "inputs": {"text": "x", "clip": ["skip", 0]}},
              "plain": {"class_type": "CLIPTextEncode", "inputs": {"text": "y", "clip": ["ckpt", 1]}}}
    graph, _ = import_data(prompt)
    assert graph.nodes["cenc"].params["clip_skip"] == 1 and graph.nodes["cplain"].params.get("clip_skip", 0) == 0


def _ui(nodes_, links, **extra):
    return {"last_node_id": 9, "last_link_id": 9, "nodes": nodes_, "links": links, "groups": [], "version": 0.4,
            **extra}


def test_ui_modes_reroutes_primitives_and_converted_widgets():
    ckpt = {"id": 1, "type": "CheckpointLoaderSimple", "pos": [0, 0], "mode": 4, "widgets_values": ["m.safetensors"],
            "outputs": [{"name": "MODEL", "type": "MODEL"}, {"name": "CLIP", "type": "CLIP"}, {"name": "VAE", "type": "VAE"}]}
    reroute = {"id": 2, "type": "Reroute", "pos": [300, 0], "inputs": [{"name": "", "type": "*", "link": 1}],
               "outputs": [{"name": "", "type": "CLIP", "links": [2]}]}
    encode = {"id": 3, "type": "CLIPTextEncode", "pos": [500, 0], "mode": 2, "widgets_values": ["hello"],
              "inputs": [{"name": "clip", "type": "CLIP", "link": 2}]}
    primitive = {"id": 4, "type": "PrimitiveNode", "pos": [0, 300], "widgets_values": [77, "fixed"],
                 "outputs": [{"name": "INT", "type": "INT", "links": [3], "widget": {"name": "seed"}}]}
    seed = {"id": 5, "type": "PrimitiveInt", "pos": [0, 500], "widgets_values": [5, "fixed"],
            "outputs": [{"name": "INT", "type": "INT", "links": [4]}]}
    sampler = {"id": 6, "type": "KSampler", "pos": [800, 0], "widgets_values": [77, "fixed", 9, 6, "euler", "simple", 1],
               "inputs": [{"name": "seed", "type": "INT", "link": 3, "widget": {"name": "seed"}},
                          {"name": "steps", "type": "INT", "link": 4, "widget": {"name": "steps"}}]}
    links = [[1, 1, 1, 2, 0, "CLIP"], {"id": 2, "origin_id": 2, "origin_slot": 0, "target_id": 3, "target_slot": 0,
                                        "type": "CLIP"}, [3, 4, 0, 6, 0, "INT"], [4, 5, 0, 6, 1, "INT"]]
    graph, report = import_data(_ui([ckpt, reroute, encode, primitive, seed, sampler], links))
    assert graph.nodes["c1"].flags["bypass"] and graph.nodes["c3"].flags["mute"]
    assert graph.nodes["c2"].type_id == "graph.reroute"
    assert graph.inbound("c3", "clip").src_node == "c2" and graph.inbound("c2", "in").src_node == "c1"
    assert "c4" not in graph.nodes  # the frontend's PrimitiveNode: its value is the widget's
    assert graph.nodes["c6.noise"].params["seed"] == 77 and graph.inbound("c6.noise", "seed") is None
    assert graph.inbound("c6.scheduler", "steps").src_node == "c5"  # a real node drives the converted widget
    assert not report.dropped, report.text()


def test_an_older_file_without_the_control_widget_is_read_with_a_note():
    sampler = {"id": 1, "type": "KSampler", "pos": [0, 0], "widgets_values": [12, 20, 7, "euler", "normal", 1]}
    graph, report = import_data(_ui([sampler], []))
    assert graph.nodes["c1.noise"].params["seed"] == 12 and graph.nodes["c1.scheduler"].params["steps"] == 20
    assert any("control_after_generate" in line for line in report.guessed)


def test_a_webp_written_by_comfyui_opens(tmp_path):
    from PIL import Image

    exif = Image.Exif()
    exif[0x010F] = "workflow:" + json.dumps(_ui([{"id": 1, "type": "Note", "pos": [0, 0], "widgets_values": ["hi"]}], []))
    exif[0x0110] = "prompt:" + json.dumps({"1": LOADER})
    path = tmp_path / "ComfyUI_00001_.webp"
    Image.new("RGB", (8, 8)).save(path, exif=exif)
    graph, report = load_any(path)
    assert [n.params["text"] for n in graph.nodes.values()] == ["hi"]


def test_a_custom_node_from_a_node_pack_refuses_to_run_naming_the_pack():
    from graphs import Executor

    custom = {"id": 1, "type": "IPAdapterAdvanced", "pos": [0, 0], "widgets_values": [0.8, "linear"],
              "properties": {"cnr_id": "comfyui_ipadapter_plus", "ver": "2.0.0"},
              "outputs": [{"name": "MODEL", "type": "MODEL", "links": []}]}
    graph, report = import_data(_ui([custom], []))
    node = graph.nodes["c1"]
    assert node.params["widgets_values"] == [0.8, "linear"] and graph.node_type(node).package == "comfyui_ipadapter_plus"
    assert report.placeholders == ["IPAdapterAdvanced (#1): IPAdapterAdvanced from the 'comfyui_ipadapter_plus' node "
                                   "pack has no LatentGraph node"]
    result = Executor().run(graph, targets=["c1"])
    assert result.status == "failed" and "comfyui_ipadapter_plus" in result.error.message


def test_an_imported_inpaint_workflow_runs_on_the_bundled_model(tmp_path):
    """ComfyUI's inpainting KSampler: our inpaint steps follow diffusers', so it runs in diffusers'
    mode, said in the report, and makes an image."""
    from PIL import Image

    from graphs import Executor

    Image.new("RGBA", (64, 64), (200, 30, 30, 255)).save(tmp_path / "in.png")
    prompt = {"ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "bundled"}},
              "img": {"class_type": "LoadImage", "inputs": {"image": str(tmp_path / "in.png")}},
              "mask": {"class_type": "LoadImageMask", "inputs": {"image": str(tmp_path / "in.png"), "channel": "red"}},
              "enc": {"class_type": "VAEEncodeForInpaint", "inputs": {"grow_mask_by": 2, "pixels": ["img", 0],
                                                                       "vae": ["ckpt", 2], "mask": ["mask", 0]}},
              "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": "a blue square", "clip": ["ckpt", 1]}},
              "ks": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 3, "cfg": 2.5, "sampler_name": "euler",
                                                          "scheduler": "normal", "denoise": 1.0, "model": ["ckpt", 0],
                                                          "positive": ["pos", 0], "negative": ["pos", 0],
                                                          "latent_image": ["enc", 0]}},
              "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["ckpt", 2]}},
              "out": {"class_type": "PreviewImage", "inputs": {"images": ["dec", 0]}}}
    graph, report = import_data(prompt)
    assert graph.nodes["cks.scheduler"].params.get("schedule", "model default") == "model default"
    assert any("inpainting latent" in line for line in report.samplers)
    result = Executor().run(graph)
    assert result.status == "finished", result.error and result.error.message
