"""ControlNets inside the sampling loop, step for step as diffusers' ControlNet pipelines run them.

Each hint's image is resized to the image being made and batched once per run; at step ``i`` of
``n`` a hint counts with ``strength`` while ``start <= i/n`` and ``(i+1)/n <= end`` (the pipelines'
``controlnet_keep``), and the residuals of several hints add up (``MultiControlNetModel``). When
both halves of classifier-free guidance carry the same hints (Apply ControlNet gives both prompts
the same one), the ControlNets run once on the doubled batch, as the pipelines do; when they
differ, each half runs its own, and a half without hints gets none."""

from __future__ import annotations

from typing import Any

from .values import Conditioning, UNetModel


class ControlSteps:
    """The residuals for each step of one run, or ``None`` where no ControlNet is active."""

    def __init__(self, model: UNetModel, positive: Conditioning, negative: Conditioning | None, do_cfg: bool,
                 latent_shape: tuple, warn=lambda message: None) -> None:
        self.model, self.do_cfg = model, do_cfg
        cond = tuple(positive.controls)
        uncond = tuple(negative.controls) if do_cfg and negative is not None else ()
        for hint in {id(h): h for h in (*cond, *uncond)}.values():
            if (reason := hint.control.misfit(model)) is not None:
                raise ValueError(f"ControlNet: {reason}")
        self.shared = do_cfg and len(cond) == len(uncond) and all(a is b for a, b in zip(cond, uncond))
        batch = latent_shape[0]
        size = (latent_shape[-2] * model.vae_scale, latent_shape[-1] * model.vae_scale)
        prepared = {id(h): _hint_image(h, batch, size, warn) for h in (*cond, *uncond)}
        self.halves = [(cond, prepared)] if not do_cfg else [(uncond, prepared), (cond, prepared)]
        self.active = bool(cond or uncond)

    def residuals(self, step: int, total: int, model_input, timestep, embeds, added: tuple):
        """``(down residuals, mid residual)`` for this step's UNet call, or None."""
        if not self.active:
            return None
        if self.shared or not self.do_cfg:
            hints, images = self.halves[-1]
            doubled = 2 if self.shared else 1
            return _sum(hints, images, step, total, model_input, timestep, embeds, added, doubled)
        halves = []
        for index, (hints, images) in enumerate(self.halves):
            part = slice(index * len(model_input) // 2, (index + 1) * len(model_input) // 2)
            half_added = tuple(a[part] for a in added)
            halves.append(_sum(hints, images, step, total, model_input[part], timestep, embeds[part], half_added, 1))
        if all(h is None for h in halves):
            return None
        present = next(h for h in halves if h is not None)
        halves = [h if h is not None else ([d.new_zeros(d.shape) for d in present[0]], present[1].new_zeros(
            present[1].shape)) for h in halves]
        import torch

        down = [torch.cat([a, b]) for a, b in zip(halves[0][0], halves[1][0])]
        return down, torch.cat([halves[0][1], halves[1][1]])


def _keep(hint, step: int, total: int) -> float:
    return 1.0 - float(step / total < hint.start or (step + 1) / total > hint.end)


def _sum(hints, images, step: int, total: int, sample, timestep, embeds, added: tuple, doubled: int):
    """The summed residuals of ``hints`` for one batch (``doubled``: the CFG batch, images twice)."""
    import torch

    down, mid = None, None
    for hint in hints:
        scale = hint.strength * _keep(hint, step, total)
        if scale == 0:  # adds exact zeros in the pipelines: skipping it changes nothing
            continue
        net = hint.control.net
        image = images[id(hint)]
        if doubled == 2:
            image = torch.cat([image] * 2)
        extra = {"added_cond_kwargs": {"text_embeds": added[0], "time_ids": added[1]}} if added else {}
        d, m = net(sample.to(net.dtype), timestep, encoder_hidden_states=embeds.to(net.dtype), controlnet_cond=image,
                   conditioning_scale=scale, guess_mode=False, return_dict=False, **extra)
        if down is None:
            down, mid = list(d), m
        else:
            down, mid = [a + b for a, b in zip(down, d)], mid + m
    if down is None:
        return None
    dtype = sample.dtype
    return [d.to(dtype) for d in down], mid.to(dtype)


def _hint_image(hint, batch: int, size: tuple[int, int], warn) -> Any:
    """The hint as the pipelines' ``prepare_image`` makes it: 0..1 RGB at the image's size, one per
    latent in the batch, on the ControlNet's device and in its dtype."""
    image = hint.image
    if tuple(image.shape[-2:]) != tuple(size):
        from .upscale import resize_image

        warn(f"ControlNet hint {image.shape[-1]}x{image.shape[-2]} resized to the image's {size[1]}x{size[0]}")
        image = resize_image(image.clamp(0, 1), size, "lanczos")
    if image.shape[0] == 1:
        image = image.repeat_interleave(batch, dim=0)
    elif image.shape[0] != batch:
        raise ValueError(f"ControlNet hint: {image.shape[0]} images for a batch of {batch}; give one, or one per image")
    return image.to(device=hint.control.device, dtype=hint.control.dtype)
