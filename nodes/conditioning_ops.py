"""Operations on a CONDITIONING: Zero conditioning (ComfyUI's ConditioningZeroOut), the negative
SDXL-turbo and SD3-style workflows use instead of an encoded empty prompt."""

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

NODE_TYPES = (ZERO_CONDITIONING,)
