"""Load ControlNet and Apply ControlNet: a ControlNet (diffusers folder, or one ``.safetensors`` file
in diffusers' or the original layout) and the hints it adds to a conditioning. UNet denoise runs the
hints each step (nodes/control_steps.py), as diffusers' ControlNet pipelines do.

A single file says nothing of its configuration: it is read into the bundled UNet configuration of
the family its cross-attention width names (the ControlNet is a copy of that UNet's encoder), with
the number of transformer layers per block counted from the file (SDXL's small/mid ControlNets
have fewer)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graphs.registry import NodeType, Param, Socket

from .model_folders import resolve_named
from .model_sources import ModelLoadError, checked_source, files_fingerprint
from .values import Conditioning, UNetModel

# Cross-attention context width → the family a ControlNet was trained for (as for checkpoints:
# nodes/families/detect.py).
FAMILY_BY_CONTEXT = {768: "sd1", 1024: "sd2", 2048: "sdxl_base"}
CONTEXT_KEY = re.compile(r"attn2\.to_k\.weight$")


@dataclass(eq=False)
class ControlNet:
    """CONTROL_NET socket value: the network and what it was made for."""

    net: Any
    title: str  # "SD 1.x ControlNet", or its context width for an unknown family
    key: tuple
    device: str
    dtype: Any

    def misfit(self, model: UNetModel) -> str | None:
        """Why this ControlNet cannot steer ``model``'s UNet, or None when it can."""
        mine, theirs = self.net.config, model.unet.config
        for field in ("cross_attention_dim", "block_out_channels", "addition_embed_type"):
            a, b = mine.get(field), theirs.get(field)
            if (list(a) if isinstance(a, (list, tuple)) else a) != (list(b) if isinstance(b, (list, tuple)) else b):
                return (f"this is an {self.title}, the model is {model.family.title} "
                        f"({field} {a} vs {b}): use a ControlNet made for {model.family.title}")
        return None

    def cache_size_bytes(self) -> int:
        return 0


@dataclass(eq=False, frozen=True)
class ControlHint:
    """One Apply ControlNet: the hint image (IMAGE, 0..1, on the CPU), how strongly, and over which
    fraction of the steps (diffusers' ``control_guidance_start``/``end``)."""

    control: ControlNet
    image: Any
    strength: float
    start: float
    end: float


# ----- loading ---------------------------------------------------------------------------
def resolve_controlnet_source(source: str) -> Path:
    path = checked_source(source, "ControlNet", "config.json", "point source at a ControlNet folder or file")
    if path.is_file() and path.suffix.lower() != ".safetensors":
        raise ModelLoadError(f"{path.name}: a ControlNet file must be .safetensors (convert .pth files: they "
                             "would need unpickling)")
    return path


def _shapes(path: Path) -> dict[str, tuple[int, ...]]:
    from .families.detect import UNET, CheckpointError, read_header

    try:
        header = read_header(path)
    except CheckpointError as exc:
        raise ModelLoadError(str(exc)) from None
    if any(name.startswith(UNET) for name in header):
        raise ModelLoadError(f"{path.name}: this is a whole checkpoint, not a ControlNet; load it with Load model")
    if not any("controlnet_cond_embedding" in name or "input_hint_block" in name for name in header):
        hint = " (it looks like a LoRA)" if any("lora" in name for name in header) else ""
        raise ModelLoadError(f"{path.name}: not a ControlNet: it has no hint encoder{hint}")
    return {name: shape for name, (_, shape) in header.items()}


def _layers_per_block(shapes: dict[str, tuple[int, ...]], blocks: int, layers: int, original: bool) -> list[int]:
    """Transformer layers in each down block's first attention, counted from the tensor names."""
    counts = []
    for block in range(blocks):
        prefix = (f"input_blocks.{block * (layers + 1) + 1}.1.transformer_blocks." if original
                  else f"down_blocks.{block}.attentions.0.transformer_blocks.")
        found = {int(m.group(1)) for name in shapes
                 for m in [re.search(re.escape(prefix) + r"(\d+)\.", name)] if m}
        counts.append(max(found) + 1 if found else 1)
    return counts


def controlnet_config(path: Path, shapes: dict[str, tuple[int, ...]]) -> tuple[dict[str, Any], str]:
    """The ControlNetModel config for a single file, and the family title it was made for."""
    import inspect

    from diffusers import ControlNetModel, UNet2DConditionModel

    from .families.catalog import FAMILIES

    widths = {shape[1] for name, shape in shapes.items() if CONTEXT_KEY.search(name) and len(shape) == 2}
    family_id = FAMILY_BY_CONTEXT.get(next(iter(widths), 0))
    if family_id is None:
        raise ModelLoadError(f"{path.name}: a ControlNet of cross-attention width {sorted(widths)}; only SD 1.x "
                             "(768), SD 2.x (1024) and SDXL (2048) ControlNets can be read from a single file")
    family = FAMILIES[family_id]
    unet = dict(UNet2DConditionModel.load_config(family.configs / "unet"))
    accepted = set(inspect.signature(ControlNetModel.__init__).parameters)
    config = {k: v for k, v in unet.items() if k in accepted}
    original = not any(name.startswith("controlnet_cond_embedding") for name in shapes)
    config["transformer_layers_per_block"] = _layers_per_block(
        shapes, len(config["block_out_channels"]), config["layers_per_block"], original)
    return config, f"{family.title} ControlNet"


def _read_file(path: Path) -> tuple[Any, str]:
    from diffusers import ControlNetModel
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint
    from safetensors.torch import load_file

    shapes = _shapes(path)
    config, title = controlnet_config(path, shapes)
    state = load_file(str(path))
    if not any(name.startswith("controlnet_cond_embedding") for name in state):  # the original layout
        original = {name.removeprefix("control_model."): value for name, value in state.items()}
        state = convert_controlnet_checkpoint(state, config)
        for ldm, ours in (("label_emb.0.0", "add_embedding.linear_1"), ("label_emb.0.2", "add_embedding.linear_2")):
            for param in ("weight", "bias"):  # SDXL's size/pooled-text embedding, which that converter skips
                if f"{ldm}.{param}" in original:
                    state.setdefault(f"{ours}.{param}", original[f"{ldm}.{param}"])
    net = ControlNetModel.from_config(config)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1:2] or [str(exc)]
        raise ModelLoadError(f"{path.name}: not a ControlNet layout this app knows ({first[0].strip()})") from None
    return net, title


def _folder_title(net) -> str:
    from .families.catalog import FAMILIES

    family = FAMILY_BY_CONTEXT.get(net.config.cross_attention_dim)
    return f"{FAMILIES[family].title} ControlNet" if family else \
        f"ControlNet of cross-attention width {net.config.cross_attention_dim}"


def load_controlnet(path: Path, device: str, dtype) -> tuple[Any, str]:
    from diffusers import ControlNetModel

    try:
        if path.is_dir():
            safetensors = any(path.glob("*.safetensors"))
            if not safetensors and not any(path.glob("*.bin")):
                raise ModelLoadError(f"{path}: no weights found (expected diffusion_pytorch_model.safetensors)")
            # a .bin is read by diffusers with torch.load(weights_only=True)
            net = ControlNetModel.from_pretrained(str(path), torch_dtype=dtype, local_files_only=True,
                                                  use_safetensors=safetensors)
            title = _folder_title(net)
        else:
            net, title = _read_file(path)
    except ModelLoadError:
        raise
    except Exception as exc:  # truncated files, configs of another architecture
        raise ModelLoadError(f"cannot load the ControlNet {path}: {type(exc).__name__}: {exc}") from exc
    net.eval()
    net.requires_grad_(False)
    return net.to(device=device, dtype=dtype), title


def run_load_controlnet(ctx, source: str, model: UNetModel | None = None) -> dict[str, Any]:
    from .models import resolve_device, resolve_dtype

    if not source.strip():
        raise ValueError("no ControlNet chosen (param 'source' is empty): pick a file from your models "
                         "folder's controlnet/ or a diffusers ControlNet folder")
    path = resolve_controlnet_source(resolve_named("controlnet", source, ctx.settings))
    device = model.device if model is not None else resolve_device("auto")
    dtype = model.dtype if model is not None else resolve_dtype("auto", device)
    net, title = load_controlnet(path, device, dtype)
    control = ControlNet(net, title, ("controlnet", str(path), device, str(dtype)), device, dtype)
    if model is not None and (reason := control.misfit(model)):
        raise ValueError(f"{path.name}: {reason}")
    ctx.status(title)
    return {"control_net": control}


LOAD_CONTROLNET = NodeType(
    "sd.load_controlnet", "Load ControlNet", "loaders", run_load_controlnet,
    inputs=(Socket("model", "MODEL", optional=True),),
    outputs=(Socket("control_net", "CONTROL_NET"),),
    params=(Param("source", "path", "", linkable=False, report="controlnet", file_kind="controlnet",
                  tooltip="a ControlNet .safetensors file (its name in your models folder's controlnet/, or a path) "
                          "or a diffusers ControlNet folder; SD 1.x, SD 2.x and SDXL ControlNets are recognised"),),
    fingerprint=files_fingerprint("source", lambda value, settings: resolve_controlnet_source(
        resolve_named("controlnet", value, settings))),
    settings_in_key=("models_dir", "extra_model_paths"),
    aliases=("ControlNetLoader", "DiffControlNetLoader", "controlnet", "canny", "depth", "pose"),
    description="Loads a ControlNet. Connect the model to place it with the model and check that it fits; "
                "unconnected, UNet denoise checks.",
)


# ----- Apply ControlNet -------------------------------------------------------------------
def run_apply_controlnet(ctx, positive: Conditioning, negative: Conditioning, control_net: ControlNet, image,
                         strength: float, start_percent: float, end_percent: float) -> dict[str, Any]:
    import dataclasses

    if start_percent > end_percent:
        raise ValueError(f"start_percent {start_percent:g} is after end_percent {end_percent:g}")
    if image.ndim != 4 or image.shape[1] != 3:
        raise ValueError(f"input 'image': expected an RGB image, got a tensor of shape {tuple(image.shape)}")
    hint = ControlHint(control_net, image.detach().float().cpu(), strength, start_percent, end_percent)
    if strength == 0:
        ctx.warn("strength 0: this ControlNet does nothing")
    return {"positive": dataclasses.replace(positive, controls=(*positive.controls, hint)),
            "negative": dataclasses.replace(negative, controls=(*negative.controls, hint))}


APPLY_CONTROLNET = NodeType(
    "sd.apply_controlnet", "Apply ControlNet", "conditioning", run_apply_controlnet,
    inputs=(Socket("positive", "CONDITIONING"), Socket("negative", "CONDITIONING"),
            Socket("control_net", "CONTROL_NET"), Socket("image", "IMAGE")),
    outputs=(Socket("positive", "CONDITIONING"), Socket("negative", "CONDITIONING")),
    params=(Param("strength", "float", 1.0, min=0.0, max=10.0, step=0.05, slider=True,
                  tooltip="how strongly the hint steers (diffusers' controlnet_conditioning_scale)"),
            Param("start_percent", "float", 0.0, min=0.0, max=1.0, step=0.05,
                  tooltip="the fraction of the steps before the ControlNet starts (control_guidance_start)"),
            Param("end_percent", "float", 1.0, min=0.0, max=1.0, step=0.05,
                  tooltip="the fraction of the steps after which it stops (control_guidance_end)")),
    aliases=("ControlNetApplyAdvanced", "ControlNetApply", "Apply ControlNet", "controlnet", "hint"),
    description="Adds a ControlNet hint image to both prompts; UNet denoise runs it each step. Chain several "
                "for multi-ControlNet. The hint is resized to the image being made (Lanczos) when its size "
                "differs. Edge maps: the Canny node; depth or pose maps need their own estimator: bring the "
                "preprocessed image.",
)

NODE_TYPES = (LOAD_CONTROLNET, APPLY_CONTROLNET)
