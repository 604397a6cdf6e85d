"""A LatentGraph graph as a ComfyUI API prompt (``latentgraph export WORKFLOW --comfy-api OUT.json``),
to queue it on a ComfyUI server: each Noise + Scheduler + UNet denoise becomes one KSampler (or
KSamplerAdvanced where steps are cut or noise is not added), the other core nodes their ComfyUI
class. Viewers (Latent inspect, notes) are left out; any other node with no ComfyUI equivalent
is refused by name. Importing the prompt gives the same graph back."""

from __future__ import annotations

from typing import Any

from graphs import Graph
from graphs.registry import REROUTE

from .samplers import SAMPLERS

VIEWERS = ("sd.latent_inspect", "note.text")
# our node type -> (ComfyUI class, {our param: ComfyUI widget}, {our input: ComfyUI input}, our outputs by slot)
SIMPLE: dict[str, tuple[str, dict[str, str], dict[str, str], tuple[str, ...]]] = {
    "sd.load_model": ("CheckpointLoaderSimple", {"source": "ckpt_name"}, {}, ("model", "clip", "vae")),
    "sd.load_lora": ("LoraLoader", {"file": "lora_name", "strength_model": "strength_model",
                                    "strength_clip": "strength_clip"}, {"model": "model", "clip": "clip"},
                     ("model", "clip")),
    "sd.load_controlnet": ("ControlNetLoader", {"source": "control_net_name"}, {}, ("control_net",)),
    "sd.apply_controlnet": ("ControlNetApplyAdvanced", {"strength": "strength", "start_percent": "start_percent",
                                                        "end_percent": "end_percent"},
                            {"positive": "positive", "negative": "negative", "control_net": "control_net",
                             "image": "image"}, ("positive", "negative")),
    "sd.zero_conditioning": ("ConditioningZeroOut", {}, {"conditioning": "conditioning"}, ("conditioning",)),
    "sd.combine_conditioning": ("ConditioningCombine", {}, {"conditioning_1": "conditioning_1",
                                                            "conditioning_2": "conditioning_2"}, ("conditioning",)),
    "sd.empty_latent": ("EmptyLatentImage", {"width": "width", "height": "height", "batch": "batch_size"}, {},
                        ("latent",)),
    "sd.vae_decode": ("VAEDecode", {}, {"latent": "samples", "vae": "vae"}, ("image",)),
    "sd.vae_encode": ("VAEEncode", {}, {"image": "pixels", "vae": "vae"}, ("latent",)),
    "sd.vae_encode_inpaint": ("VAEEncodeForInpaint", {"grow_mask_by": "grow_mask_by"},
                              {"image": "pixels", "vae": "vae", "mask": "mask"}, ("latent",)),
    "sd.set_noise_mask": ("SetLatentNoiseMask", {}, {"latent": "samples", "mask": "mask"}, ("latent",)),
    "image.load": ("LoadImage", {"path": "image"}, {}, ("image", "mask")),
    "image.save": ("SaveImage", {"prefix": "filename_prefix"}, {"image": "images"}, ()),
    "image.preview": ("PreviewImage", {}, {"image": "images"}, ()),
    "image.pad_for_outpaint": ("ImagePadForOutpaint", {k: k for k in ("left", "top", "right", "bottom", "feathering")},
                               {"image": "image"}, ("image", "mask")),
    "image.load_upscale_model": ("UpscaleModelLoader", {"model": "model_name"}, {}, ("upscale_model",)),
    "image.upscale_with_model": ("ImageUpscaleWithModel", {}, {"upscale_model": "upscale_model", "image": "image"},
                                 ("image",)),
    "image.invert": ("ImageInvert", {}, {"image": "image"}, ("image",)),
    "mask.invert": ("InvertMask", {}, {"mask": "mask"}, ("mask",)),
    "mask.threshold": ("ThresholdMask", {"value": "value"}, {"mask": "mask"}, ("mask",)),
    "mask.grow": ("GrowMask", {"pixels": "expand", "tapered_corners": "tapered_corners"}, {"mask": "mask"}, ("mask",)),
    "mask.to_image": ("MaskToImage", {}, {"mask": "mask"}, ("image",)),
    "mask.from_image": ("ImageToMask", {"channel": "channel"}, {"image": "image"}, ("mask",)),
    "value.int": ("PrimitiveInt", {"value": "value"}, {}, ("value",)),
    "value.float": ("PrimitiveFloat", {"value": "value"}, {}, ("value",)),
    "value.string": ("PrimitiveString", {"value": "value"}, {}, ("value",)),
}
def _resize(by_class: str, to_class: str):
    def entry(values: dict[str, Any]) -> dict[str, Any]:
        if values["scale_by"]:
            return {"class_type": by_class, "inputs": {"upscale_method": values["method"], "scale_by": values["scale_by"]}}
        if not (values["width"] and values["height"]):
            raise ExportError("a resize to one side with the other kept in proportion has no ComfyUI equivalent")
        return {"class_type": to_class, "inputs": {"upscale_method": values["method"], "width": values["width"],
                                                   "height": values["height"], "crop": "disabled"}}
    return entry


RESIZES = {
    "sd.upscale_latent": _resize("LatentUpscaleBy", "LatentUpscale"),
    "image.scale": _resize("ImageScaleBy", "ImageScale"),
    "image.scale_to_megapixels": lambda v: {"class_type": "ImageScaleToTotalPixels", "inputs": {
        "upscale_method": v["method"], "megapixels": v["megapixels"]}},
    "image.canny": lambda v: {"class_type": "Canny", "inputs": {  # ComfyUI's thresholds are fractions of 1
        "low_threshold": round(v["low_threshold"] / 255, 3), "high_threshold": round(v["high_threshold"] / 255, 3)}},
}
OUR_SAMPLER_NAMES = {ours: theirs for theirs, (ours, difference) in reversed(list(SAMPLERS.items())) if not difference}


class ExportError(ValueError):
    """A graph that has no ComfyUI API equivalent; the message names the node."""


def export_api(graph: Graph) -> dict[str, dict[str, Any]]:
    prompt: dict[str, dict[str, Any]] = {}
    outputs: dict[tuple[str, str], list] = {}  # (our node, our output) -> [ComfyUI id, slot]
    ids = {node_id: str(i + 1) for i, node_id in enumerate(sorted(graph.nodes))}
    pending: list[tuple[dict, str, str, str]] = []  # (ComfyUI inputs, ComfyUI name, our node, our input)

    def wire(entry: dict, theirs: str, node_id: str, ours: str) -> None:
        pending.append((entry["inputs"], theirs, node_id, ours))

    for node in sorted(graph.nodes.values(), key=lambda n: n.id):
        type_id, params = node.type_id, graph.node_type(node).params
        values = {p.name: node.params.get(p.name, p.default) for p in params}
        if node.flags.get("mute") or type_id in VIEWERS or type_id in ("sd.noise", "sd.scheduler"):
            continue
        meta = {"title": node.title}
        if type_id == REROUTE:
            continue
        if type_id == "sd.unet_denoise":
            entry = _sampler(graph, node, values, meta)
            outputs[(node.id, "latent")] = [ids[node.id], 0]
            for ours, theirs in (("model", "model"), ("positive", "positive"), ("negative", "negative"),
                                 ("latent", "latent_image")):
                wire(entry, theirs, node.id, ours)
        elif type_id == "sd.text_encode":
            entry = {"class_type": "CLIPTextEncode", "inputs": {"text": values["text"]}}
            outputs[(node.id, "conditioning")] = [ids[node.id], 0]
            if values["clip_skip"]:  # ours is on the encoder; ComfyUI's on the CLIP before it
                skip_id = f"{ids[node.id]}.clip"
                prompt[skip_id] = {"class_type": "CLIPSetLastLayer", "inputs": {
                    "stop_at_clip_layer": -int(values["clip_skip"]) - 1}, "_meta": {"title": "CLIP Set Last Layer"}}
                wire(prompt[skip_id], "clip", node.id, "clip")
                entry["inputs"]["clip"] = [skip_id, 0]
            else:
                wire(entry, "clip", node.id, "clip")
        elif type_id in RESIZES:
            entry = RESIZES[type_id](values)
            wire(entry, "samples" if type_id == "sd.upscale_latent" else "image", node.id,
                 "latent" if type_id == "sd.upscale_latent" else "image")
            outputs[(node.id, "latent" if type_id == "sd.upscale_latent" else "image")] = [ids[node.id], 0]
        elif type_id in SIMPLE:
            cls, widget_map, input_map, outs = SIMPLE[type_id]
            entry = {"class_type": cls, "inputs": {theirs: values[ours] for ours, theirs in widget_map.items()}}
            for ours, theirs in input_map.items():
                wire(entry, theirs, node.id, ours)
            for slot, name in enumerate(outs):
                outputs[(node.id, name)] = [ids[node.id], slot]
            if type_id == "sd.empty_latent" and not (values["width"] and values["height"]):
                raise ExportError(f"{node.title}: width/height 'model default' has no ComfyUI equivalent; set a size")
        else:
            raise ExportError(f"{node.title} ({type_id}) has no ComfyUI equivalent")
        entry["_meta"] = meta
        prompt[ids[node.id]] = entry
    for inputs, theirs, node_id, ours in pending:
        source = _source(graph, node_id, ours, outputs)
        if source is not None:
            inputs[theirs] = source
    return prompt


def _source(graph: Graph, node_id: str, input_name: str, outputs: dict) -> list | None:
    """Where our input's link comes from, in ComfyUI terms (through reroutes)."""
    link = graph.inbound(node_id, input_name)
    hops = 0
    while link is not None and graph.nodes[link.src_node].type_id == REROUTE and hops < 64:
        link, hops = graph.inbound(link.src_node, "in"), hops + 1
    if link is None:
        return None
    return outputs.get((link.src_node, link.src_output))


def _sampler(graph: Graph, node, values: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    noise_link, scheduler_link = graph.inbound(node.id, "noise"), graph.inbound(node.id, "scheduler")
    if noise_link is None or scheduler_link is None:
        raise ExportError(f"{node.title}: connect its noise and scheduler first")
    noise, scheduler = graph.nodes[noise_link.src_node], graph.nodes[scheduler_link.src_node]
    if noise.type_id != "sd.noise" or scheduler.type_id != "sd.scheduler":
        raise ExportError(f"{node.title}: its noise and scheduler must come from Noise and Scheduler nodes")
    n = {p.name: noise.params.get(p.name, p.default) for p in graph.node_type(noise).params}
    s = {p.name: scheduler.params.get(p.name, p.default) for p in graph.node_type(scheduler).params}
    sampler = OUR_SAMPLER_NAMES.get(s["name"])
    if sampler is None:
        raise ExportError(f"{scheduler.title}: {s['name']} has no ComfyUI sampler of the same algorithm")
    if n["control"] != "fixed":  # the frontend's widget: not an input, so it travels with the title
        meta["control_after_generate"] = n["control"]
    schedule = s.get("schedule", "model default")
    common = {"steps": int(s["steps"]), "cfg": float(values["cfg"]), "sampler_name": sampler,
              "scheduler": schedule if schedule != "model default" else "karras" if s["karras"] else "normal"}
    advanced = values["start_step"] or values["end_step"] != -1 or not values["add_noise"]
    if not advanced:
        return {"class_type": "KSampler", "inputs": {"seed": int(n["seed"]), **common, "denoise": float(values["denoise"])}}
    end = int(values["end_step"])
    return {"class_type": "KSamplerAdvanced", "inputs": {
        "add_noise": "enable" if values["add_noise"] else "disable", "noise_seed": int(n["seed"]), **common,
        "start_at_step": int(values["start_step"]), "end_at_step": 10000 if end < 0 else end,
        "return_with_leftover_noise": "enable" if values.get("leftover_noise", True) and end >= 0 else "disable"}}
