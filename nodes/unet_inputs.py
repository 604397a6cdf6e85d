"""What the UNet is given besides the latents: prompt embeddings repeated to the latent batch, and
SDXL's added conditioning (pooled text embedding, size/crop time ids) built as the SDXL pipelines do."""

from __future__ import annotations

from .values import Conditioning, UNetModel


def expand_batch(embeds, batch: int):
    if embeds.shape[0] == batch:
        return embeds
    if batch % embeds.shape[0]:
        raise ValueError(f"conditioning batch {embeds.shape[0]} does not divide latent batch {batch}")
    repeat = batch // embeds.shape[0]
    return embeds.repeat_interleave(repeat, dim=0)


def added_conditioning(model: UNetModel, positive: Conditioning, negative: Conditioning | None,
                       zero_negative: bool, shape: tuple, device, dtype) -> tuple:
    """SDXL's ``(text_embeds, time_ids)`` for the batch, as the SDXL pipelines build them: the
    pooled embeddings, and per prompt original size + crop top-left + target size (the refiner:
    + aesthetic score instead of the target size), in pixels of the image being made unless the
    conditioning says otherwise. A negative without sizes of its own takes the positive's."""
    import torch

    if positive.pooled is None:
        raise ValueError(f"input 'positive': a {model.family.title} model needs the pooled text embedding; "
                         "encode the prompt with this model's CLIP")
    batch = shape[0]
    size = (shape[-2] * model.vae_scale, shape[-1] * model.vae_scale)

    def time_ids(sizes: Conditioning, aesthetic: float | None, default_aesthetic: float) -> list:
        ids = list(sizes.original_size or size) + list(sizes.crop_top_left)
        if model.family.aesthetic_score:
            return ids + [aesthetic if aesthetic is not None else default_aesthetic]
        return ids + list(sizes.target_size or size)

    pooled = expand_batch(positive.pooled.to(device=device, dtype=dtype), batch)
    ids = torch.tensor([time_ids(positive, positive.aesthetic_score, 6.0)], dtype=dtype, device=device)
    ids = ids.expand(batch, -1)
    if negative is None:
        return pooled, ids
    if zero_negative:
        negative_pooled = torch.zeros_like(pooled)
    elif negative.pooled is None:
        raise ValueError(f"input 'negative': a {model.family.title} model needs the pooled text embedding; "
                         "encode the prompt with this model's CLIP")
    else:
        negative_pooled = expand_batch(negative.pooled.to(device=device, dtype=dtype), batch)
    own_sizes = negative.original_size is not None or negative.target_size is not None
    negative_ids = torch.tensor([time_ids(negative if own_sizes else positive, negative.aesthetic_score, 2.5)],
                                dtype=dtype, device=device).expand(batch, -1)
    return torch.cat([negative_pooled, pooled]), torch.cat([negative_ids, ids])
