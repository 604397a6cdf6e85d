"""Each core ComfyUI node type as LatentGraph nodes. A mapping reads the node's named widget values
(``build.values``), adds our nodes and says where the ComfyUI inputs and output slots went; it
returns False to keep the node as a placeholder instead. Model file names stay as the params' values:
the loaders look them up in the model folders (ComfyUI's layout) when they run, and a file that is
not there fails on its node, naming it and where it was looked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .build import NodeBuild
from .samplers import map_absorbed, map_ksampler, map_ksampler_advanced, map_sampler_custom

LATENT_METHODS = {"nearest-exact": "nearest-exact", "bilinear": "bilinear", "area": "area", "bicubic": "bicubic",
                  "nearest": "nearest"}
IMAGE_METHODS = {**LATENT_METHODS, "lanczos": "lanczos"}


def direct(type_id: str, params: dict[str, str | tuple[str, Callable[[Any], Any]]] | None = None,
           inputs: dict[str, str] | None = None, outputs: tuple[str, ...] = (), fixed: dict[str, Any] | None = None):
    """A one-to-one mapping: ComfyUI widget -> our param (optionally converted), input -> our input,
    output slots -> our outputs in order."""
    def mapping(build: NodeBuild) -> None:
        ours = dict(fixed or {})
        for theirs, target in (params or {}).items():
            name, convert = (target, None) if isinstance(target, str) else target
            if theirs in build.values:
                value = build.values[theirs]
                ours[name] = convert(value) if convert else value
        node = build.add(type_id, ours)
        for theirs, target in (params or {}).items():  # a widget converted to an input drives our param
            build.inputs[theirs] = (node, target if isinstance(target, str) else target[0])
        build.inputs.update({theirs: (node, name) for theirs, name in (inputs or {}).items()})
        build.outputs.update(dict(enumerate((node, name) for name in outputs)))
    return mapping


def _method(table: dict[str, str], fallback: str):
    def convert_for(build_values_method: Any) -> str:
        return table.get(str(build_values_method), fallback)
    return convert_for


def _with_guess(mapping, check: Callable[[NodeBuild], str | None]):
    def wrapped(build: NodeBuild):
        message = check(build)
        if message:
            build.guess(message)
        return mapping(build)
    return wrapped


def _method_guess(table: dict[str, str]) -> Callable[[NodeBuild], str | None]:
    def check(build: NodeBuild) -> str | None:
        method = str(build.values.get("upscale_method"))
        return None if method in table else f"upscale method {method!r} is not available here: bilinear instead"
    return check


def _crop_guess(build: NodeBuild) -> str | None:
    crop = build.values.get("crop", "disabled")
    return None if crop == "disabled" else f"crop {crop!r} is not supported: the image is stretched to the size"


def map_clip_set_last_layer(build: NodeBuild) -> None:
    """ComfyUI sets where CLIP stops on the CLIP; ours is Text encode's clip_skip: the encoders fed
    by this node get it (-2, the penultimate layer, is clip_skip 1)."""
    node = build.add("graph.reroute", title=build.node.title or "CLIP Set Last Layer")
    build.inputs["clip"] = (node, "in")
    build.outputs[0] = (node, "out")
    build.builder.clip_skips[build.node.id] = max(0, -int(build.values["stop_at_clip_layer"]) - 1)


def map_vae_loader(build: NodeBuild) -> bool | None:
    """Our Load VAE takes the model it is for (its family); ComfyUI's stands alone: it gets the
    graph's checkpoint's model."""
    checkpoint = next((n for n in build.builder.graph.nodes.values() if n.class_type == "CheckpointLoaderSimple"), None)
    if checkpoint is None:
        build.why_not = "Load VAE here takes the model it is for, and this workflow loads no checkpoint"
        return False
    node = build.add("sd.load_vae", {"source": str(build.values["vae_name"])})
    build.builder.extra_links.append(((checkpoint.id, 0), (node, "model")))
    build.outputs[0] = (node, "vae")
    return None


def map_lora_model_only(build: NodeBuild) -> bool | None:
    """Our Load LoRA takes the CLIP too: the one of the checkpoint whose model this LoRA gets,
    left untouched (strength_clip 0)."""
    source = build.source("model")
    while source is not None and source.class_type in ("LoraLoader", "LoraLoaderModelOnly"):
        source = build.builder.upstream(source, "model")
    if source is None or source.class_type != "CheckpointLoaderSimple":
        build.why_not = "Load LoRA here takes a CLIP too, and this LoRA's model comes from no checkpoint"
        return False
    node = build.add("sd.load_lora", {"file": str(build.values["lora_name"]),
                                      "strength_model": float(build.values["strength_model"]), "strength_clip": 0.0})
    build.inputs["model"] = (node, "model")
    build.builder.extra_links.append(((source.id, 1), (node, "clip")))
    build.outputs[0] = (node, "model")
    return None


def map_controlnet_apply(build: NodeBuild) -> None:
    """The old Apply ControlNet steers one conditioning; ours takes positive and negative, and
    gives the hint to this one only (UNet denoise runs it for that half of CFG alone)."""
    node = build.add("sd.apply_controlnet", {"strength": float(build.values["strength"])})
    build.inputs.update({"conditioning": (node, "positive"), "control_net": (node, "control_net"),
                         "image": (node, "image")})
    build.builder.extra_links.append(((build.node.links.get("conditioning", ("", 0))), (node, "negative")))
    build.outputs[0] = (node, "positive")


def map_note(build: NodeBuild) -> None:
    build.add("note.text", {"text": str(build.values.get("text", ""))}, title=build.node.title or "Note")


def _canny_threshold(value: Any) -> int:
    return max(0, min(255, round(float(value) * 255)))  # ComfyUI's 0.01..0.99 -> our 0..255


MAPPINGS: dict[str, Callable[[NodeBuild], Any]] = {
    "CheckpointLoaderSimple": direct("sd.load_model", {"ckpt_name": "source"}, outputs=("model", "clip", "vae")),
    "VAELoader": map_vae_loader,
    "LoraLoader": direct("sd.load_lora", {"lora_name": "file", "strength_model": "strength_model",
                                          "strength_clip": "strength_clip"},
                         {"model": "model", "clip": "clip"}, ("model", "clip")),
    "LoraLoaderModelOnly": map_lora_model_only,
    "ControlNetLoader": direct("sd.load_controlnet", {"control_net_name": "source"}, outputs=("control_net",)),
    "UpscaleModelLoader": direct("image.load_upscale_model", {"model_name": "model"}, outputs=("upscale_model",)),
    "CLIPTextEncode": direct("sd.text_encode", {"text": "text"}, {"clip": "clip"}, ("conditioning",),
                             fixed={"weighting": "comfy"}),
    "CLIPSetLastLayer": map_clip_set_last_layer,
    "ConditioningCombine": direct("sd.combine_conditioning", inputs={"conditioning_1": "conditioning_1",
                                                                     "conditioning_2": "conditioning_2"},
                                  outputs=("conditioning",)),
    "ConditioningZeroOut": direct("sd.zero_conditioning", inputs={"conditioning": "conditioning"},
                                  outputs=("conditioning",)),
    "EmptyLatentImage": direct("sd.empty_latent", {"width": "width", "height": "height", "batch_size": "batch"},
                               outputs=("latent",)),
    "VAEDecode": direct("sd.vae_decode", inputs={"samples": "latent", "vae": "vae"}, outputs=("image",)),
    "VAEEncode": direct("sd.vae_encode", inputs={"pixels": "image", "vae": "vae"}, outputs=("latent",)),
    "VAEEncodeForInpaint": direct("sd.vae_encode_inpaint", {"grow_mask_by": "grow_mask_by"},
                                  {"pixels": "image", "vae": "vae", "mask": "mask"}, ("latent",)),
    "SetLatentNoiseMask": direct("sd.set_noise_mask", inputs={"samples": "latent", "mask": "mask"}, outputs=("latent",)),
    "LoadImage": direct("image.load", {"image": "path"}, outputs=("image", "mask")),
    "LoadImageMask": direct("mask.load", {"image": "path", "channel": ("channel", lambda c: str(c))},
                            outputs=("mask",)),
    "SaveImage": direct("image.save", {"filename_prefix": "prefix"}, {"images": "image"}),
    "PreviewImage": direct("image.preview", inputs={"images": "image"}),
    "ImageScale": _with_guess(_with_guess(direct(
        "image.scale", {"upscale_method": ("method", _method(IMAGE_METHODS, "bilinear")), "width": "width",
                        "height": "height"}, {"image": "image"}, ("image",), fixed={"scale_by": 0.0}),
        _method_guess(IMAGE_METHODS)), _crop_guess),
    "ImageScaleBy": _with_guess(direct(
        "image.scale", {"upscale_method": ("method", _method(IMAGE_METHODS, "bilinear")), "scale_by": "scale_by"},
        {"image": "image"}, ("image",)), _method_guess(IMAGE_METHODS)),
    "ImageScaleToTotalPixels": _with_guess(direct(
        "image.scale_to_megapixels", {"upscale_method": ("method", _method(IMAGE_METHODS, "bilinear")),
                                      "megapixels": "megapixels"}, {"image": "image"}, ("image",)),
        _method_guess(IMAGE_METHODS)),
    "ImagePadForOutpaint": direct("image.pad_for_outpaint", {k: k for k in ("left", "top", "right", "bottom",
                                                                            "feathering")},
                                  {"image": "image"}, ("image", "mask")),
    "LatentUpscale": _with_guess(_with_guess(direct(
        "sd.upscale_latent", {"upscale_method": ("method", _method(LATENT_METHODS, "bilinear")), "width": "width",
                              "height": "height"}, {"samples": "latent"}, ("latent",), fixed={"scale_by": 0.0}),
        _method_guess(LATENT_METHODS)), _crop_guess),
    "LatentUpscaleBy": _with_guess(direct(
        "sd.upscale_latent", {"upscale_method": ("method", _method(LATENT_METHODS, "bilinear")), "scale_by": "scale_by"},
        {"samples": "latent"}, ("latent",)), _method_guess(LATENT_METHODS)),
    "ImageUpscaleWithModel": direct("image.upscale_with_model", inputs={"upscale_model": "upscale_model",
                                                                        "image": "image"}, outputs=("image",)),
    "Canny": direct("image.canny", {"low_threshold": ("low_threshold", _canny_threshold),
                                    "high_threshold": ("high_threshold", _canny_threshold)},
                    {"image": "image"}, ("image",)),
    "ControlNetApply": map_controlnet_apply,
    "ControlNetApplyAdvanced": direct("sd.apply_controlnet", {"strength": "strength", "start_percent": "start_percent",
                                                              "end_percent": "end_percent"},
                                      {"positive": "positive", "negative": "negative", "control_net": "control_net",
                                       "image": "image"}, ("positive", "negative")),
    "KSampler": map_ksampler,
    "KSamplerAdvanced": map_ksampler_advanced,
    "SamplerCustom": map_sampler_custom,
    "KSamplerSelect": map_absorbed,
    "BasicScheduler": map_absorbed,
    "KarrasScheduler": map_absorbed,
    "SDTurboScheduler": map_absorbed,
    "GrowMask": direct("mask.grow", {"expand": "pixels", "tapered_corners": "tapered_corners"}, {"mask": "mask"},
                       ("mask",)),
    "InvertMask": direct("mask.invert", inputs={"mask": "mask"}, outputs=("mask",)),
    "ThresholdMask": direct("mask.threshold", {"value": "value"}, {"mask": "mask"}, ("mask",)),
    "ImageToMask": direct("mask.from_image", {"channel": "channel"}, {"image": "image"}, ("mask",)),
    "MaskToImage": direct("mask.to_image", inputs={"mask": "mask"}, outputs=("image",)),
    "ImageInvert": direct("image.invert", inputs={"image": "image"}, outputs=("image",)),
    "PrimitiveInt": direct("value.int", {"value": "value"}, outputs=("value",)),
    "PrimitiveFloat": direct("value.float", {"value": "value"}, outputs=("value",)),
    "PrimitiveString": direct("value.string", {"value": "value"}, outputs=("value",)),
    "PrimitiveStringMultiline": direct("value.string", {"value": "value"}, outputs=("value",)),
    "Reroute": direct("graph.reroute", inputs={"": "in", "*": "in"}, outputs=("out",)),
    "Note": map_note,
    "MarkdownNote": map_note,
}
