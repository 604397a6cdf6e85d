"""Cheap latent → RGB previews with a per-model linear map."""

from __future__ import annotations

from typing import Any


def latent_to_rgb_array(latent: Any, matrix, bias=(0.0, 0.0, 0.0)):
    """``[C, h, w]`` float latent (numpy, or a CPU tensor) → ``[h, w, 3]`` uint8 numpy image.

    Plain numpy: the sampler calls it on the host for every preview, where a few small torch
    ops would cost more in dispatch than in arithmetic."""
    import numpy as np

    latent = np.asarray(latent, dtype=np.float32)
    weights = np.asarray(matrix, dtype=np.float32)
    channels = min(latent.shape[0], weights.shape[0])
    rgb = np.tensordot(latent[:channels], weights[:channels], axes=(0, 0)) + np.asarray(
        bias, dtype=np.float32)
    return ((np.clip(rgb, -1, 1) + 1) * 127.5).round().astype(np.uint8)


def latent_to_pil(latent: Any, matrix, bias=(0.0, 0.0, 0.0), upscale: int = 1):
    from PIL import Image

    array = latent_to_rgb_array(latent.detach().float().cpu(), matrix, bias)
    image = Image.fromarray(array, "RGB")
    if upscale > 1:
        image = image.resize((image.width * upscale, image.height * upscale), Image.NEAREST)
    return image


def channel_to_pil(latent: Any, channel: int, upscale: int = 1):
    """One latent channel as a grey image, normalised to its own range."""
    from PIL import Image

    plane = latent[channel].float()
    lo, hi = plane.min(), plane.max()
    scaled = ((plane - lo) / (hi - lo).clamp_min(1e-8) * 255).round().to("cpu").byte().numpy()
    image = Image.fromarray(scaled, "L").convert("RGB")
    if upscale > 1:
        image = image.resize((image.width * upscale, image.height * upscale), Image.NEAREST)
    return image


def images_to_pil(images: Any) -> list:
    """IMAGE tensor ``[B, 3, H, W]`` in 0..1 → PIL images, rounding like diffusers."""
    import torch
    from PIL import Image

    # torch's threaded kernels: about half the time of the same arithmetic in numpy at 512².
    pixels = images.detach().float().cpu().mul(255).round_().to(torch.uint8)
    array = pixels.permute(0, 2, 3, 1).contiguous().numpy()
    return [Image.fromarray(a, "RGB") for a in array]


def pil_to_images(pils: list) -> Any:
    import numpy as np
    import torch

    arrays = [np.asarray(p.convert("RGB"), dtype=np.float32) / 255.0 for p in pils]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
