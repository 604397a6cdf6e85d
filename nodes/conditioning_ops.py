"""Operations on a CONDITIONING: Zero conditioning (ComfyUI's ConditioningZeroOut), the negative
SDXL-turbo and SD3-style workflows use instead of an encoded empty prompt; Combine conditioning
(ComfyUI's ConditioningCombine): UNet denoise averages the predictions for both prompts
(nodes/combined_prompts.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from graphs.registry import NodeType, Socket

from .values import Conditioning


def run_zero_conditioning(ctx, conditioning: Conditioning) -> dict[str, Any]:
    import torch

    def zeros(tensor):
        return None if tensor is None else torch.zeros_like(tensor)

    return {"conditioning": dataclasses.replace(conditioning, embeds=zeros(conditioning.embeds),
                                                pooled=zeros(conditioning.pooled), pad_chunk=zeros(conditioning.pad_chunk),
                                                controls=())}


ZERO_CONDITIONING = NodeType(
    "sd.zero_conditioning", "Zero conditioning", "conditioning", run_zero_conditioning,
    inputs=(Socket("conditioning", "CONDITIONING"),), outputs=(Socket("conditioning", "CONDITIONING"),),
    aliases=("ConditioningZeroOut", "zero out", "empty negative"),
    description="The same conditioning with every embedding zero (ComfyUI's ConditioningZeroOut).",
)

def run_combine_conditioning(ctx, conditioning_1: Conditioning, conditioning_2: Conditioning) -> dict[str, Any]:
    if conditioning_2.controls:
        ctx.warn("conditioning_2's ControlNet hints are not used: apply ControlNet after combining")
    extra = (dataclasses.replace(conditioning_2, combined=(), controls=()), *conditioning_2.combined)
    return {"conditioning": dataclasses.replace(conditioning_1, combined=(*conditioning_1.combined, *extra))}


COMBINE_CONDITIONING = NodeType(
    "sd.combine_conditioning", "Combine conditioning", "conditioning", run_combine_conditioning,
    inputs=(Socket("conditioning_1", "CONDITIONING"), Socket("conditioning_2", "CONDITIONING")),
    outputs=(Socket("conditioning", "CONDITIONING"),),
    aliases=("ConditioningCombine", "combine", "mix prompts", "blend prompts"),
    description="Both prompts at once: UNet denoise runs the UNet for each and averages the predictions "
                "(one more UNet call per step for each prompt added).",
)

NODE_TYPES = (ZERO_CONDITIONING, COMBINE_CONDITIONING)
