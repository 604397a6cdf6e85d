"""Recognise what a single-file checkpoint holds from its safetensors header alone.

Reading the header costs one small read, whatever the file's size, so the Load model node can
refuse a LoRA given as a checkpoint, or say which family it found, before any weight is loaded.
The signals are the ones ComfyUI and InvokeAI use (facts about the published architectures):

| family | cross-attention context dim | other signals |
|---|---|---|
| SD 1.x | 768 | |
| SD 2.x | 1024 | linear ``proj_in`` |
| SDXL base | 2048 | label-embedding input 2816 |
| SDXL refiner | 1280 | label-embedding input 2560 |

UNet input channels 4 / 9 mean a normal / an inpainting UNet.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

UNET = "model.diffusion_model."
# safetensors puts its JSON header first; real checkpoints' headers are well under 1 MB.
MAX_HEADER_BYTES = 100 * 1024 * 1024
# ComfyUI's published heuristic for SD 2.x checkpoints that do not say their prediction type.
V_PRED_PROBE = UNET + "output_blocks.11.1.transformer_blocks.0.norm1.bias"
V_PRED_STD = 0.09

FAMILY_TITLES = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl_base": "SDXL base", "sdxl_refiner": "SDXL refiner"}


class CheckpointError(ValueError):
    """A file that is not a checkpoint we can load; the message names the file and what was found."""


@dataclass(frozen=True)
class Detected:
    """What a checkpoint is: its family, whether its UNet inpaints, and what gave it away."""

    family: str
    inpainting: bool
    evidence: str
    v_pred_key: bool = False  # the file says it predicts v (a ``v_pred`` key)

    @property
    def title(self) -> str:
        return FAMILY_TITLES[self.family] + (" inpainting" if self.inpainting else "")


def read_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{tensor name: (dtype, shape)}`` from a safetensors file, reading nothing but its header."""
    path = Path(path)
    try:
        info = os.stat(path)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot open ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode):
        what = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise CheckpointError(f"{path}: {what}, not a .safetensors checkpoint")
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: {info.st_size} bytes, too short for a safetensors file")
        length = int.from_bytes(head, "little")
        if length > min(MAX_HEADER_BYTES, info.st_size - 8) or length < 2:
            raise CheckpointError(f"{path}: not a safetensors file (header length {length}, file size {info.st_size})")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(f"{path}: not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (its header is not a JSON object)")
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and all(isinstance(n, int) and n >= 0 for n in entry["shape"])):
            raise CheckpointError(f"{path}: malformed safetensors header at tensor {name!r}")
        offsets = entry.get("data_offsets")
        data_size = info.st_size - 8 - length
        if not (isinstance(offsets, list) and len(offsets) == 2 and 0 <= offsets[0] <= offsets[1] <= data_size):
            raise CheckpointError(f"{path}: truncated or corrupt: tensor {name!r} lies beyond the end of the file")
        tensors[name] = (str(entry.get("dtype")), tuple(entry["shape"]))
    return tensors


def _kind_of_other_file(names: set[str]) -> str | None:
    """What a file that holds no LDM UNet is, for the refusal message (None: nothing we know)."""
    if any(n.startswith(("lora_unet_", "lora_te")) or ".lora_down." in n or ".lora_A." in n
           or ".lora.down." in n or n.startswith("lycoris_") for n in names):
        return "a LoRA (load it with a Load LoRA node)"
    if names & {"emb_params", "clip_l", "clip_g"} or any(n.startswith("string_to_param") for n in names):
        return "a textual-inversion embedding"
    if any(n.startswith(("control_model.", "input_hint_block.", "controlnet_cond_embedding.")) for n in names):
        return "a ControlNet (load it with a Load ControlNet node)"
    if {"encoder.conv_in.weight", "decoder.conv_out.weight"} <= names or "first_stage_model.encoder.conv_in.weight" in names:
        return "a VAE on its own (load it with a Load VAE node)"
    if "conv_in.weight" in names and any(n.startswith("down_blocks.") for n in names):
        return "a diffusers UNet's weights on their own (load the whole diffusers folder instead)"
    return None


def detect(tensors: dict[str, tuple[str, tuple[int, ...]]], where: str = "checkpoint") -> Detected:
    """The family of an LDM/SGM-layout checkpoint from its tensor names and shapes."""
    names = set(tensors)
    if not any(n.startswith(UNET) for n in names):
        other = _kind_of_other_file(names)
        if other:
            raise CheckpointError(f"{where}: this looks like {other}, not a Stable Diffusion checkpoint")
        sample = ", ".join(sorted(names)[:3]) or "no tensors"
        raise CheckpointError(f"{where}: no Stable Diffusion UNet in this file (found {len(names)} tensors: {sample}...)")
    contexts = {shape[1] for name, (_, shape) in tensors.items()
                if re.fullmatch(re.escape(UNET) + r".*\.attn2\.to_k\.weight", name) and len(shape) == 2}
    if len(contexts) != 1:
        raise CheckpointError(f"{where}: UNet has {'no' if not contexts else 'mixed'} cross-attention "
                              f"({sorted(contexts)}): not an SD 1.x/2.x/SDXL UNet")
    context = contexts.pop()
    conv_in = tensors.get(UNET + "input_blocks.0.0.weight", ("", ()))[1]
    if len(conv_in) != 4:
        raise CheckpointError(f"{where}: UNet has no input convolution: not an SD 1.x/2.x/SDXL UNet")
    channels = conv_in[1]
    if channels not in (4, 9):
        raise CheckpointError(f"{where}: UNet takes {channels} input channels: "
                              "only 4 (normal) and 9 (inpainting) are supported")
    label = tensors.get(UNET + "label_emb.0.0.weight", ("", ()))[1]
    label_in = label[1] if len(label) == 2 else None
    proj_in = next((shape for name, (_, shape) in tensors.items()
                    if name.startswith(UNET) and name.endswith(".proj_in.weight")), ())
    linear_proj = len(proj_in) == 2
    evidence = f"context dim {context}, {channels} input channels"
    if context == 768 and label_in is None and not linear_proj:
        family = "sd1"
    elif context == 1024 and label_in is None and linear_proj:
        family = "sd2"
    elif context == 2048 and label_in == 2816:
        family = "sdxl_base"
    elif context == 1280 and label_in == 2560:
        family = "sdxl_refiner"
    else:
        extra = f", label-embedding input {label_in}" if label_in else ""
        raise CheckpointError(f"{where}: {evidence}{extra}, {'linear' if linear_proj else 'conv'} proj_in: "
                              "not an SD 1.x/2.x/SDXL UNet")
    if label_in:
        evidence += f", label-embedding input {label_in}"
    return Detected(family, channels == 9, evidence, v_pred_key="v_pred" in names)


def predicts_v(path: str | os.PathLike, detected: Detected) -> bool:
    """Whether an SD 2.x checkpoint predicts v: its ``v_pred`` key if it has one, else ComfyUI's heuristic on
    one norm bias (the only tensor this reads). Other families are epsilon models."""
    if detected.family != "sd2":
        return False
    if detected.v_pred_key:
        return True
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        if V_PRED_PROBE not in handle.keys():
            return False
        return float(handle.get_tensor(V_PRED_PROBE).float().std()) > V_PRED_STD
