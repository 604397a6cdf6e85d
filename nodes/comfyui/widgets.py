"""The order of each core ComfyUI node's widgets in a UI file's ``widgets_values`` (ComfyUI's
published node definitions; ``control_after_generate`` is the frontend's extra widget after a
seed), and the defaults a shorter, older file leaves out. API prompts name their values."""

from __future__ import annotations

from typing import Any

CONTROL = "control_after_generate"
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")

# class -> ((widget name, ComfyUI's default), ...) in widgets_values order
WIDGETS: dict[str, tuple[tuple[str, Any], ...]] = {
    "CheckpointLoaderSimple": (("ckpt_name", ""),),
    "VAELoader": (("vae_name", ""),),
    "LoraLoader": (("lora_name", ""), ("strength_model", 1.0), ("strength_clip", 1.0)),
    "LoraLoaderModelOnly": (("lora_name", ""), ("strength_model", 1.0)),
    "ControlNetLoader": (("control_net_name", ""),),
    "UpscaleModelLoader": (("model_name", ""),),
    "CLIPTextEncode": (("text", ""),),
    "CLIPSetLastLayer": (("stop_at_clip_layer", -1),),
    "EmptyLatentImage": (("width", 512), ("height", 512), ("batch_size", 1)),
    "VAEEncodeForInpaint": (("grow_mask_by", 6),),
    "LoadImage": (("image", ""), ("upload", "image")),
    "LoadImageMask": (("image", ""), ("channel", "alpha"), ("upload", "image")),
    "SaveImage": (("filename_prefix", "ComfyUI"),),
    "ImageScale": (("upscale_method", "nearest-exact"), ("width", 512), ("height", 512), ("crop", "disabled")),
    "ImageScaleBy": (("upscale_method", "nearest-exact"), ("scale_by", 1.0)),
    "ImageScaleToTotalPixels": (("upscale_method", "nearest-exact"), ("megapixels", 1.0), ("resolution_steps", 1)),
    "ImagePadForOutpaint": (("left", 0), ("top", 0), ("right", 0), ("bottom", 0), ("feathering", 40)),
    "LatentUpscale": (("upscale_method", "nearest-exact"), ("width", 512), ("height", 512), ("crop", "disabled")),
    "LatentUpscaleBy": (("upscale_method", "nearest-exact"), ("scale_by", 1.5)),
    "Canny": (("low_threshold", 0.4), ("high_threshold", 0.8)),
    "ControlNetApply": (("strength", 1.0),),
    "ControlNetApplyAdvanced": (("strength", 1.0), ("start_percent", 0.0), ("end_percent", 1.0)),
    "KSampler": (("seed", 0), (CONTROL, "fixed"), ("steps", 20), ("cfg", 8.0), ("sampler_name", "euler"),
                 ("scheduler", "normal"), ("denoise", 1.0)),
    "KSamplerAdvanced": (("add_noise", "enable"), ("noise_seed", 0), (CONTROL, "fixed"), ("steps", 20), ("cfg", 8.0),
                         ("sampler_name", "euler"), ("scheduler", "normal"), ("start_at_step", 0),
                         ("end_at_step", 10000), ("return_with_leftover_noise", "disable")),
    "SamplerCustom": (("add_noise", True), ("noise_seed", 0), (CONTROL, "fixed"), ("cfg", 8.0)),
    "KSamplerSelect": (("sampler_name", "euler"),),
    "BasicScheduler": (("scheduler", "normal"), ("steps", 20), ("denoise", 1.0)),
    "KarrasScheduler": (("steps", 20), ("sigma_max", 14.614642), ("sigma_min", 0.0291675), ("rho", 7.0)),
    "SDTurboScheduler": (("steps", 1), ("denoise", 1.0)),
    "GrowMask": (("expand", 0), ("tapered_corners", True)),
    "ThresholdMask": (("value", 0.5),),
    "ImageToMask": (("channel", "red"),),
    "PrimitiveInt": (("value", 0), (CONTROL, "fixed")),
    "PrimitiveFloat": (("value", 0.0),),
    "PrimitiveString": (("value", ""),),
    "PrimitiveStringMultiline": (("value", ""),),
    "PrimitiveBoolean": (("value", False),),
    "Note": (("text", ""),),
    "MarkdownNote": (("text", ""),),
}


def name_widgets(class_type: str, values: list[Any] | None, named: dict[str, Any],
                 guessed: list[str], linked: set[str] | frozenset = frozenset()) -> dict[str, Any]:
    """``{widget: value}`` for a node of ``class_type`` from its positional ``values`` (a UI file)
    or ``named`` (an API prompt; a UI file's dict form). Values a file leaves out take ComfyUI's
    defaults; each such guess is appended to ``guessed``."""
    order = WIDGETS.get(class_type, ())
    out = dict(named)
    if values is not None:
        values = list(values)
        names = [name for name, _ in order]
        if CONTROL in names:  # some writers leave the frontend's control widget out
            at = names.index(CONTROL)
            if at < len(values) and values[at] not in CONTROL_VALUES:
                values.insert(at, "fixed")
                guessed.append(f"no '{CONTROL}' value: 'fixed' assumed")
        for (name, _), value in zip(order, values):
            out.setdefault(name, value)
        if len(values) > len(order) and order:
            guessed.append(f"{len(values) - len(order)} extra widget value(s) ignored ({values[len(order):]!r:.80})")
    for name, default in order:
        if name not in out and name not in ("upload", CONTROL) and name not in linked:
            out[name] = default
            if values is not None or named:
                guessed.append(f"'{name}' not in the file: ComfyUI's default {default!r} used")
    return out
