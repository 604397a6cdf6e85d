"""Combined prompts inside UNet denoise (Combine conditioning, ComfyUI's ConditioningCombine): the
UNet is called once more for each extra prompt of a side and that side's predictions are averaged,
as ComfyUI averages the predictions of full-image conditionings of equal strength."""

from __future__ import annotations

from typing import Any

from .unet_inputs import added_conditioning, expand_batch
from .values import Conditioning, UNetModel


class CombinedPrompts:
    """The extra prompts of one run, encoded for the UNet once; ``average`` folds their
    predictions into the loop's own."""

    def __init__(self, model: UNetModel, positive: Conditioning, negative: Conditioning | None, do_cfg: bool,
                 latent_shape: tuple, device, dtype, batch: int) -> None:
        def encoded(part: Conditioning, side: Conditioning):
            embeds = expand_batch(part.embeds.to(device=device, dtype=dtype), batch)
            added = added_conditioning(model, part if part.pooled is not None else side, None, False, latent_shape,
                                       device, dtype) if model.takes_added_conditioning else ()
            return embeds, added

        self.sides: list[list[tuple[Any, tuple]]] = []
        for side in ((negative, positive) if do_cfg else (positive,)):
            self.sides.append([encoded(part, side) for part in (side.combined if side is not None else ())])
        self.active = any(self.sides)
        self.model = model

    def average(self, prediction, model_input, timestep):
        """``prediction`` (both CFG halves, or one) with each half averaged over its side's prompts."""
        import torch

        halves = list(prediction.chunk(len(self.sides)))
        inputs = list(model_input.chunk(len(self.sides)))
        for index, parts in enumerate(self.sides):
            if not parts:
                continue
            total = halves[index].float()
            for embeds, added in parts:
                total = total + self.model.predict(inputs[index], timestep, embeds, added).float()
            halves[index] = (total / (len(parts) + 1)).to(prediction.dtype)
        return torch.cat(halves) if len(halves) > 1 else halves[0]
