"""Inpainting inside UNet denoise: what it does with a masked latent (nodes/inpaint_nodes.py makes
them), step for step as diffusers' inpaint pipelines (SD and SDXL) do:

- a 9-channel inpainting UNet sees the latents, the mask and the masked image's latents side by
  side at every step;
- a normal 4-channel UNet repaints only under the mask: after each step the unmasked part is put
  back as the original image's latents, noised to the next step's level.

The generator is drawn in the pipelines' order (the image's sample, the noise, the masked image's
sample), so a seed gives the pipelines' image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .values import Latent, UNetModel


def inpainting_unet(model: UNetModel, latent_channels: int) -> bool:
    """A UNet that takes latents + mask + masked-image latents (SD 1.5/2/SDXL inpainting: 9 channels)."""
    return model.unet.config.in_channels == 2 * latent_channels + 1


@dataclass
class InpaintSteps:
    """Per run: the mask at latent size and what the UNet or the blend needs each step."""

    mask: Any  # [batch, 1, h, w]
    masked_latents: Any = None  # drawn for both UNet kinds (as the pipelines do), used by 9-channel ones
    concat: bool = False  # a 9-channel UNet: latents + mask + masked-image latents
    image_latents: Any = None  # 4-channel UNets: the original to put back outside the mask
    noise: Any = None

    def unet_input(self, model_input, do_cfg: bool):
        import torch

        if not self.concat:
            return model_input
        copies = 2 if do_cfg else 1
        return torch.cat([model_input, torch.cat([self.mask] * copies), torch.cat([self.masked_latents] * copies)],
                         dim=1)

    def after_step(self, scheduler, latents, step: int, timesteps):
        if self.image_latents is None:
            return latents
        original = self.image_latents
        if step < len(timesteps) - 1:
            original = scheduler.add_noise(original, self.noise, timesteps[step + 1:step + 2])
        return (1 - self.mask) * original + self.mask * latents


def begin(model: UNetModel, latent: Latent, scheduler, generator, timesteps, strength_max: bool,
          device, dtype) -> tuple[Any, InpaintSteps]:
    """The first latents of an inpainting run and its per-step helper, drawing from ``generator``
    as the inpaint pipelines' ``prepare_latents`` and ``prepare_mask_latents`` do."""
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    samples = latent.samples.to(device=device, dtype=dtype)
    batch, channels = samples.shape[0], samples.shape[1]
    nine = inpainting_unet(model, channels)
    if nine and latent.masked_mean is None:
        raise ValueError("input 'latent': this is an inpainting model (9 input channels): it needs the masked "
                         "image, so encode the image with 'VAE encode (for inpaint)', not Set latent noise mask")

    def draw(mean, std):
        sample = mean + std * randn_tensor(mean.shape, generator=generator, device=torch.device(device),
                                           dtype=mean.dtype)
        return (sample * latent.scaling_factor).to(device=device, dtype=dtype)

    image_latents = samples
    if latent.mean is not None and (not nine or not strength_max):
        image_latents = draw(latent.mean, latent.std)
    noise = randn_tensor(tuple(samples.shape), generator=generator, device=torch.device(device), dtype=dtype)
    if strength_max:
        latents = noise * scheduler.init_noise_sigma
    else:
        latents = scheduler.add_noise(image_latents, noise, timesteps[:1].repeat(batch))
    steps = InpaintSteps(_batched(latent.noise_mask.to(device=device, dtype=dtype), batch), concat=nine)
    if latent.masked_mean is not None:  # the pipelines encode the masked image for both UNet kinds
        steps.masked_latents = _batched(draw(latent.masked_mean, latent.masked_std), batch)
    if not nine:
        steps.image_latents, steps.noise = image_latents, noise
    return latents, steps


def _batched(tensor, batch: int):
    if tensor.shape[0] == batch:
        return tensor
    if batch % tensor.shape[0]:
        raise ValueError(f"a mask batch of {tensor.shape[0]} does not divide the latent batch of {batch}")
    return tensor.repeat(batch // tensor.shape[0], 1, 1, 1)
