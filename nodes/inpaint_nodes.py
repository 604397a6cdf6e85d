"""VAE encode (for inpaint) and Set latent noise mask: latents that carry where to repaint (and, for
inpainting UNets, the masked image); UNet denoise repaints them (nodes/inpaint.py)."""

from __future__ import annotations

from typing import Any

from graphs.registry import NodeType, Param, Socket

from .values import Latent, VaeModel


def latent_mask(mask, size: tuple[int, int], binarize: bool):
    """MASK [B, H, W] as [B, 1, h, w] at latent size: binarised at 0.5 and resized nearest, as the
    pipelines' mask processor and ``prepare_mask_latents`` do; or, for a soft mask, area-averaged."""
    import torch.nn.functional as F

    mask = mask.float().unsqueeze(1)
    if binarize:
        mask = (mask >= 0.5).float()
        return F.interpolate(mask, size=size)
    return F.interpolate(mask, size=size, mode="area").clamp(0, 1)


def run_vae_encode_inpaint(ctx, vae: VaeModel, image, mask, grow_mask_by: int) -> dict[str, Any]:
    import torch

    from .diffusion import run_vae_encode
    from .images import fit_mask
    from .masks import check_mask, grow

    mask = fit_mask(ctx, check_mask(mask).cpu(), image.shape[-2:])
    if mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"input 'mask': {mask.shape[0]} masks for {image.shape[0]} images")
    mask = grow(mask, grow_mask_by, tapered_corners=False)  # ComfyUI's grow_mask_by is a square
    full = run_vae_encode(ctx, vae, image)["latent"]
    height, width = full.samples.shape[-2] * vae.scale_factor, full.samples.shape[-1] * vae.scale_factor
    if (height, width) != tuple(image.shape[-2:]):  # VAE encode cropped to a multiple of its factor
        image, mask = image[..., :height, :width], mask[..., :height, :width]
    keep = (mask < 0.5).to(image.dtype).unsqueeze(1)
    # The pipelines blank the area in [-1, 1] (0 there is grey 0.5 here); ComfyUI fills with grey too.
    masked_image = image * keep + 0.5 * (1 - keep)
    with torch.inference_mode():
        pixels = (masked_image * 2 - 1).to(device=vae.device, dtype=vae.vae.dtype)
        masked = vae.vae.encode(pixels).latent_dist
    if mask.max() == 0:
        ctx.warn("the mask is empty: nothing will be repainted")
    return {"latent": Latent(full.samples, mean=full.mean, std=full.std, scaling_factor=full.scaling_factor,
                             noise_mask=latent_mask(mask, tuple(full.samples.shape[-2:]), binarize=True),
                             masked_mean=masked.mean, masked_std=masked.std)}


def run_set_noise_mask(ctx, latent: Latent, mask) -> dict[str, Any]:
    import dataclasses

    from .masks import check_mask

    return {"latent": dataclasses.replace(
        latent, noise_mask=latent_mask(check_mask(mask).cpu(), tuple(latent.samples.shape[-2:]), binarize=False),
        masked_mean=None, masked_std=None)}


VAE_ENCODE_INPAINT = NodeType(
    "sd.vae_encode_inpaint", "VAE encode (for inpaint)", "latent", run_vae_encode_inpaint,
    inputs=(Socket("vae", "VAE"), Socket("image", "IMAGE"), Socket("mask", "MASK")),
    outputs=(Socket("latent", "LATENT"),),
    params=(Param("grow_mask_by", "int", 6, min=0, max=64,
                  tooltip="grow the mask by this many pixels first, so the repainted area blends in "
                          "(0: exactly the mask, as diffusers' pipelines)"),),
    aliases=("VAEEncodeForInpaint", "inpaint", "inpainting"),
    description="Encodes an image and its mask for inpainting: UNet denoise repaints the white part. Works with "
                "inpainting models (9 channels) and normal ones; denoise below 1 keeps more of the original.",
)
SET_NOISE_MASK = NodeType(
    "sd.set_noise_mask", "Set latent noise mask", "latent", run_set_noise_mask,
    inputs=(Socket("latent", "LATENT"), Socket("mask", "MASK")),
    outputs=(Socket("latent", "LATENT"),),
    aliases=("SetLatentNoiseMask", "inpaint", "mask latent"),
    description="Limits UNet denoise to the mask's area of this latent (a soft mask blends). For normal "
                "models; inpainting models need VAE encode (for inpaint).",
)

NODE_TYPES = (VAE_ENCODE_INPAINT, SET_NOISE_MASK)
