"""Write a diffusers SD 1.x or SDXL pipeline as one original-layout checkpoint (LDM/CompVis for
SD 1.x, SGM for SDXL), the single-file form users download.

The inverse of diffusers' ``convert_ldm_unet_checkpoint``, ``convert_ldm_vae_checkpoint``,
``convert_ldm_clip_checkpoint`` and ``convert_open_clip_checkpoint``
(diffusers/loaders/single_file_utils.py), so tests and benchmarks can build a
``v1-5-pruned-emaonly.safetensors``- or ``sd_xl_base_1.0.safetensors``-style file without
downloading one.

LDM key layout, for ``L = layers_per_block`` (every UNet level has L resnets going down, L + 1
going up; diffusers' converter indexes blocks with ``L + 1`` per level):

* ``model.diffusion_model.input_blocks.0.0``: conv_in; then per level ``b`` and resnet ``j``,
  ``input_blocks.{1 + b*(L+1) + j}.0`` (resnet) and ``.1`` (spatial transformer, if any);
  the level's downsampler is ``input_blocks.{1 + b*(L+1) + L}.0.op``.
* ``middle_block.0`` / ``.1`` / ``.2``: resnet, transformer, resnet.
* ``output_blocks.{b*(L+1) + j}.0`` (resnet), ``.1`` (transformer, if any); the upsampler is
  the next index (``.1`` or ``.2``) of the level's last output block, with a ``.conv``.
* ``first_stage_model.{encoder,decoder}``: ``down.{i}.block.{j}``, ``up.{n-1-i}.block.{j}``
  (decoder levels are stored in reverse), ``mid.block_1/attn_1/block_2``; the mid attention's
  q/k/v/proj_out are 1x1 convs ``[C, C, 1, 1]`` where diffusers has Linear ``[C, C]``.
* ``cond_stage_model.transformer.text_model.*``: the transformers CLIPTextModel keys.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_PREFIX = "cond_stage_model.transformer.text_model."
# SGM (SDXL): CLIP ViT-L in transformers' layout, OpenCLIP ViT-bigG in its own; the refiner has
# only the latter, as embedder 0.
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer.text_model."
SDXL_OPEN_CLIP_PREFIX = "conditioner.embedders.1.model."
REFINER_OPEN_CLIP_PREFIX = "conditioner.embedders.0.model."
_OPEN_CLIP_LAYER = (("self_attn.out_proj", "attn.out_proj"), ("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"),
                    ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"))

_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0",  # SDXL's size/crop and pooled-text embedding
    "add_embedding.linear_2": "label_emb.0.2",
}
_UNET_RESNET = {
    "norm1": "in_layers.0", "conv1": "in_layers.2", "norm2": "out_layers.0",
    "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1", "conv_shortcut": "skip_connection",
}
_VAE_FIXED = {
    "encoder.conv_norm_out": "encoder.norm_out",
    "decoder.conv_norm_out": "decoder.norm_out",
}
_VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _split(key: str) -> tuple[str, str]:
    """``'a.b.norm1.weight'`` -> ``('a.b.norm1', 'weight')``."""
    module, _, param = key.rpartition(".")
    return module, param


def _unet_resnet(rest: str) -> str:
    layer, _, param = rest.partition(".")
    return f"{_UNET_RESNET[layer]}.{param}"


def unet_to_ldm(state_dict: dict, layers_per_block: int) -> dict:
    """diffusers UNet2DConditionModel keys -> ``model.diffusion_model.*`` keys."""
    per_level = layers_per_block + 1
    up_levels_with_attention = {int(m.group(1)) for k in state_dict
                                if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))}
    out = {}
    for key, value in state_dict.items():
        module, param = _split(key)
        if module in _UNET_FIXED:
            new = f"{_UNET_FIXED[module]}.{param}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            level, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + level * per_level + j}.0.{_unet_resnet(rest)}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            level, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"input_blocks.{1 + level * per_level + j}.1.{rest}"
        elif m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            level, param = int(m[1]), m[2]
            new = f"input_blocks.{1 + level * per_level + layers_per_block}.0.op.{param}"
        elif m := re.fullmatch(r"mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"middle_block.{2 * int(m[1])}.{_unet_resnet(m[2])}"
        elif m := re.fullmatch(r"mid_block\.attentions\.0\.(.+)", key):
            new = f"middle_block.1.{m[1]}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            level, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"output_blocks.{level * per_level + j}.0.{_unet_resnet(rest)}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", key):
            level, j, rest = int(m[1]), int(m[2]), m[3]
            new = f"output_blocks.{level * per_level + j}.1.{rest}"
        elif m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            level, param = int(m[1]), m[2]
            slot = 2 if level in up_levels_with_attention else 1
            new = f"output_blocks.{level * per_level + layers_per_block}.{slot}.conv.{param}"
        else:
            raise KeyError(f"no LDM name for UNet key {key!r}")
        out[UNET_PREFIX + new] = value
    return out


def _vae_attention(rest: str, value):
    module, param = _split(rest)
    if module != "group_norm" and param == "weight":
        value = value.reshape(*value.shape, 1, 1)  # Linear [C, C] -> 1x1 conv [C, C, 1, 1]
    return f"{_VAE_ATTENTION[module]}.{param}", value


def vae_to_ldm(state_dict: dict, num_levels: int) -> dict:
    """diffusers AutoencoderKL keys -> ``first_stage_model.*`` keys."""
    out = {}
    for key, value in state_dict.items():
        module, param = _split(key)
        if module in _VAE_FIXED:
            new = f"{_VAE_FIXED[module]}.{param}"
        elif module in ("encoder.conv_in", "encoder.conv_out", "decoder.conv_in",
                        "decoder.conv_out", "quant_conv", "post_quant_conv"):
            new = key
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"encoder.down.{m[1]}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(\w+)", key):
            new = f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)", key):
            new = f"decoder.up.{num_levels - 1 - int(m[1])}.block.{m[2]}.{m[3]}"
        elif m := re.fullmatch(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(\w+)", key):
            new = f"decoder.up.{num_levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.+)", key):
            new = f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.+)", key):
            name, value = _vae_attention(m[2], value)
            new = f"{m[1]}.mid.attn_1.{name}"
        else:
            raise KeyError(f"no LDM name for VAE key {key!r}")
        out[VAE_PREFIX + new.replace("conv_shortcut", "nin_shortcut")] = value
    return out


def clip_to_ldm(state_dict: dict, prefix: str = CLIP_PREFIX) -> dict:
    """transformers CLIPTextModel keys (with or without ``text_model.``) -> LDM keys."""
    return {prefix + key.removeprefix("text_model."): value
            for key, value in state_dict.items()}


def open_clip_to_sgm(state_dict: dict, prefix: str = SDXL_OPEN_CLIP_PREFIX) -> dict:
    """transformers CLIPTextModelWithProjection keys -> OpenCLIP keys: q/k/v joined into one
    ``in_proj``, the projection stored transposed, layers renamed."""
    import torch

    out, qkv = {}, {}
    for key, value in state_dict.items():
        if key == "text_projection.weight":
            out[prefix + "text_projection"] = value.T.contiguous()
        elif key == "text_model.embeddings.position_embedding.weight":
            out[prefix + "positional_embedding"] = value
        elif key == "text_model.embeddings.token_embedding.weight":
            out[prefix + "token_embedding.weight"] = value
        elif key.startswith("text_model.final_layer_norm."):
            out[prefix + "ln_final." + key.rpartition(".")[2]] = value
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)", key):
            qkv.setdefault((m[1], m[3]), {})[m[2]] = value
        elif m := re.fullmatch(r"text_model\.encoder\.layers\.(\d+)\.(.+)", key):
            rest = m[2]
            for ours, theirs in _OPEN_CLIP_LAYER:
                rest = rest.replace(ours, theirs)
            out[f"{prefix}transformer.resblocks.{m[1]}.{rest}"] = value
        elif not key.endswith("position_ids"):
            raise KeyError(f"no OpenCLIP name for text encoder key {key!r}")
    for (layer, param), parts in qkv.items():
        out[f"{prefix}transformer.resblocks.{layer}.attn.in_proj_{param}"] = torch.cat([parts[p] for p in "qkv"])
    return out


def folder_to_ldm(folder: Path) -> dict:
    """One LDM-layout state dict from a saved diffusers SD folder (safetensors weights)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    unet = load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    vae = load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors"))
    text = load_file(str(folder / "text_encoder" / "model.safetensors"))
    checkpoint = {
        **unet_to_ldm(unet, unet_config["layers_per_block"]),
        **vae_to_ldm(vae, len(vae_config["block_out_channels"])),
        **clip_to_ldm(text),
    }
    return {key: value.contiguous().clone() for key, value in checkpoint.items()}


def sdxl_folder_to_sgm(folder: Path) -> dict:
    """One SGM-layout state dict from a saved diffusers SDXL base or refiner folder."""
    from safetensors.torch import load_file

    folder = Path(folder)
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    vae_config = json.loads((folder / "vae" / "config.json").read_text())
    checkpoint = {
        **unet_to_ldm(load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors")),
                      unet_config["layers_per_block"]),
        **vae_to_ldm(load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors")),
                     len(vae_config["block_out_channels"])),
    }
    open_clip = load_file(str(folder / "text_encoder_2" / "model.safetensors"))
    if (folder / "text_encoder" / "model.safetensors").is_file():
        checkpoint.update(clip_to_ldm(load_file(str(folder / "text_encoder" / "model.safetensors")),
                                      SDXL_CLIP_L_PREFIX))
        checkpoint.update(open_clip_to_sgm(open_clip, SDXL_OPEN_CLIP_PREFIX))
    else:
        checkpoint.update(open_clip_to_sgm(open_clip, REFINER_OPEN_CLIP_PREFIX))
    return {key: value.contiguous().clone() for key, value in checkpoint.items()}


def make_tiny_single_file(out_file: Path, config_folder: Path) -> Path:
    """Save a tiny random SD model into ``config_folder`` (diffusers layout, serves as
    ``config=``) and the same weights as one LDM-layout ``out_file`` (.safetensors)."""
    from safetensors.torch import save_file

    from nodes.tiny_models import make_tiny_sd

    make_tiny_sd(Path(config_folder))
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    save_file(folder_to_ldm(config_folder), str(out_file))
    return out_file


def controlnet_to_ldm(state_dict: dict, layers_per_block: int, prefix: str = "control_model.") -> dict:
    """diffusers ControlNetModel keys -> the original ControlNet layout (the UNet encoder's LDM names
    plus ``input_hint_block``, ``zero_convs`` and ``middle_block_out``), the inverse of diffusers'
    ``convert_controlnet_checkpoint``."""
    hint_blocks = {int(m.group(1)) for k in state_dict if (m := re.match(r"controlnet_cond_embedding\.blocks\.(\d+)\.", k))}
    extra, encoder = {}, {}
    for key, value in state_dict.items():
        module, param = _split(key)
        if module == "controlnet_cond_embedding.conv_in":
            extra[f"input_hint_block.0.{param}"] = value
        elif m := re.fullmatch(r"controlnet_cond_embedding\.blocks\.(\d+)", module):
            extra[f"input_hint_block.{2 * (int(m[1]) + 1)}.{param}"] = value
        elif module == "controlnet_cond_embedding.conv_out":
            extra[f"input_hint_block.{2 * (len(hint_blocks) + 1)}.{param}"] = value
        elif m := re.fullmatch(r"controlnet_down_blocks\.(\d+)", module):
            extra[f"zero_convs.{m[1]}.0.{param}"] = value
        elif module == "controlnet_mid_block":
            extra[f"middle_block_out.0.{param}"] = value
        else:
            encoder[key] = value
    out = {prefix + k.removeprefix(UNET_PREFIX): v for k, v in unet_to_ldm(encoder, layers_per_block).items()}
    return {**out, **{prefix + k: v for k, v in extra.items()}}
