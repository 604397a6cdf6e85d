"""Looking inside a run: render any step of a LATENT_TRACE (or a LATENT) as an image."""

from __future__ import annotations

from typing import Any

from graphs.registry import NodeType, Param, Socket

from .families.catalog import SD1_LATENT_RGB
from .models import MODEL_CACHE
from .previews import channel_to_pil, images_to_pil, latent_to_pil, pil_to_images
from .values import Latent, LatentTrace, VaeModel

VIEWS = ("latent2rgb", "channel", "decoded")
WHICH = ("latent", "x0")


def trace_latent(trace: LatentTrace, step: int, which: str = "latent"):
    """The ``[B,C,h,w]`` latent at ``step`` (negative counts from the end).

    ``which="latent"``: step 0 is the starting noise, step i the latent after step i.
    ``which="x0"``: the model's prediction of the clean latent at step i (1-based).
    """
    frames = trace.latents if which == "latent" else [trace.latents[0]] + trace.x0
    if not frames:
        raise ValueError("the trace is empty")
    if step < 0:
        step = len(frames) + step
    if not 0 <= step < len(frames):
        raise ValueError(f"step {step} out of range 0..{len(frames) - 1}")
    return frames[step]


def render_latent(latent, view: str = "latent2rgb", channel: int = 0,
                  vae: VaeModel | None = None, matrix=None, bias=(0.0, 0.0, 0.0), index: int = 0):
    """One latent ``[B,C,h,w]`` as a PIL image in the requested view."""
    if view == "decoded":
        if vae is None:
            raise ValueError("the decoded view needs a VAE (connect one, or load the model again)")
        from .diffusion import decode_latent

        return images_to_pil(decode_latent(vae, Latent(latent[index:index + 1])))[0]
    sample = latent[index]
    upscale = max(1, 256 // max(sample.shape[-1], sample.shape[-2]))
    if view == "channel":
        if not 0 <= channel < sample.shape[0]:
            raise ValueError(f"channel {channel} out of range 0..{sample.shape[0] - 1}")
        return channel_to_pil(sample, channel, upscale)
    return latent_to_pil(sample, matrix or SD1_LATENT_RGB, bias, upscale)


def render_trace(trace: LatentTrace, step: int, which: str = "latent", view: str = "latent2rgb",
                 channel: int = 0, vae: VaeModel | None = None, index: int = 0):
    """A frame of a run for the latent inspector."""
    latent = trace_latent(trace, step, which)
    if view == "decoded" and vae is None:
        vae = MODEL_CACHE.vae_for(trace.model_key)
    return render_latent(latent, view, channel, vae, trace.latent_rgb or None,
                         trace.latent_rgb_bias, index)


def run_latent_inspect(ctx, step: int, which: str, view: str, channel: int,
                       trace: LatentTrace | None = None, latent: Latent | None = None,
                       vae: VaeModel | None = None) -> dict[str, Any]:
    if trace is not None:
        if not trace.latents:
            raise ValueError("the trace is empty (the sampler ran no steps)")
        frames = [render_trace(trace, step, which, view, channel, vae, i)
                  for i in range(trace.latents[0].shape[0])]
    elif latent is not None:
        matrix, bias = (vae.latent_rgb, vae.latent_rgb_bias) if vae else (SD1_LATENT_RGB, (0, 0, 0))
        samples = latent.samples
        frames = [render_latent(samples, view, channel, vae, matrix, bias, i)
                  for i in range(samples.shape[0])]
    else:
        raise ValueError("connect a LATENT_TRACE or a LATENT")
    ctx.show_images(frames)
    return {"image": pil_to_images(frames)}  # one batch: every frame has the same size


LATENT_INSPECT = NodeType(
    "sd.latent_inspect", "Latent inspect", "latent", run_latent_inspect,
    inputs=(Socket("trace", "LATENT_TRACE", optional=True),
            Socket("latent", "LATENT", optional=True), Socket("vae", "VAE", optional=True)),
    outputs=(Socket("image", "IMAGE"),),
    params=(
        Param("step", "int", -1, min=-1000, max=1000, tooltip="step of the trace (-1: last)"),
        Param("which", "choice", "x0", choices=WHICH,
              tooltip="latent: the noisy latent after the step; x0: the model's clean guess"),
        Param("view", "choice", "latent2rgb", choices=VIEWS),
        Param("channel", "int", 0, min=0, max=63),
    ),
    output_node=True,
    aliases=("preview latent", "trace"),
    description="Shows a step of the denoising run: latent2rgb, one channel, or VAE-decoded.",
)

NODE_TYPES = (LATENT_INSPECT,)
