"""Random LoRA files for a model folder, in diffusers/peft form or converted to kohya (A1111) form
with diffusers' own converter: for tests and benchmarks that need LoRA files nobody trained."""

from __future__ import annotations

from pathlib import Path

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0", "proj_in", "conv1"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj", "fc1"]


def make_random_lora(folder: Path, out: Path, seed: int, form: str = "diffusers", sdxl: bool = False,
                     alpha: float | None = None, dora: bool = False, scale: float = 0.3) -> Path:
    """A random LoRA for the model in ``folder``: peft adapters on its UNet and text encoders,
    saved with the pipeline's ``save_lora_weights`` (diffusers form) or converted with diffusers'
    ``convert_state_dict_to_kohya`` (kohya form, ``alpha`` per layer)."""
    import torch
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
    from diffusers.utils import convert_state_dict_to_kohya
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict
    from safetensors.torch import save_file

    cls = StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline
    options = {"add_watermarker": False} if sdxl else {"safety_checker": None, "requires_safety_checker": False}
    pipe = cls.from_pretrained(str(folder), local_files_only=True, **options)
    torch.manual_seed(seed)
    layers = {}
    for name, targets in (("unet", UNET_TARGETS), ("text_encoder", TEXT_TARGETS), ("text_encoder_2", TEXT_TARGETS)):
        module = getattr(pipe, name, None)
        if module is None:
            continue
        config = LoraConfig(r=4, lora_alpha=4, target_modules=targets, init_lora_weights=False, use_dora=dora)
        inject_adapter_in_model(config, module)
        state = get_peft_model_state_dict(module, adapter_name="default")
        # peft's random init is far from a trained LoRA's size: scale the up projections down
        layers[name] = {k: (v * scale if "lora_B" in k else v).contiguous() for k, v in state.items()}
    if form == "diffusers":
        kwargs = {f"{name}_lora_layers": state for name, state in layers.items()}
        cls.save_lora_weights(str(out.parent), weight_name=out.name, safe_serialization=True, **kwargs)
        return out
    prefixed = {f"{name}.{key}": value for name, state in layers.items() for key, value in state.items()}
    kohya = convert_state_dict_to_kohya(prefixed)
    if alpha is not None:
        kohya = {k: (torch.tensor(alpha) if k.endswith(".alpha") else v) for k, v in kohya.items()}
    save_file({k: v.contiguous() for k, v in kohya.items()}, str(out))
    return out
