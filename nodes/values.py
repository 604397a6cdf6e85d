"""Values that flow along the diffusion sockets: MODEL, CLIP and VAE (loaded models with their family),
CONDITIONING, LATENT, NOISE, SCHEDULER and LATENT_TRACE."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .cuda_graphs import GraphedCallable
from .families.catalog import FAMILIES, Family, TextEncoderSpec
from .weight_patches import Patch, patched


def _tensor_bytes(*tensors: Any) -> int:
    return sum(t.element_size() * t.numel() for t in tensors if t is not None)


@dataclass(eq=False)
class Conditioning:
    """CONDITIONING: prompt embeddings ``[batch, tokens, dim]`` on the model's device, and what
    SDXL adds: the pooled embedding of its last text encoder and the size/crop conditioning."""

    embeds: Any
    text: str = ""
    pooled: Any = None  # [batch, dim] (SDXL's text_embeds); None for SD 1.x/2.x
    # A chunked prompt's (longer than one chunk, or weighted) empty-prompt chunk [1, 77, dim]: the
    # shorter of a positive and a negative is padded with it to the other's length.
    pad_chunk: Any = None
    # SDXL's micro-conditioning in pixels as (height, width) / (top, left). None: the size of
    # the image being made, as the pipelines default.
    original_size: tuple[int, int] | None = None
    crop_top_left: tuple[int, int] = (0, 0)
    target_size: tuple[int, int] | None = None
    aesthetic_score: float | None = None  # the refiner's; None: 6.0 positive, 2.5 negative
    # Apply ControlNet's hints (nodes/controlnet.py ControlHint), run inside UNet denoise each step
    controls: tuple = ()
    # Combine conditioning's other prompts: the UNet's predictions for this one and these are averaged
    combined: tuple = ()

    @property
    def empty_prompt(self) -> bool:
        return not self.text.strip()

    def cache_size_bytes(self) -> int:
        return _tensor_bytes(self.embeds, self.pooled, self.pad_chunk) + sum(c.cache_size_bytes() for c in self.combined)


@dataclass(eq=False)
class Latent:
    """LATENT: latents as the UNet sees them (already multiplied by the VAE scaling factor).

    ``empty`` marks an Empty latent (text-to-image starts from pure noise). A VAE-encoded
    image keeps its distribution (``mean``/``std``) so the sampler draws the sample from the
    run's generator exactly where diffusers' img2img pipeline does.
    """

    samples: Any
    empty: bool = False
    mean: Any = None
    std: Any = None
    scaling_factor: float = 1.0
    # Inpainting (nodes/inpaint.py): where to repaint, at latent size [batch or 1, 1, h, w] (1 repaints);
    # for 9-channel inpainting UNets, the distribution of the image with that area blanked out.
    noise_mask: Any = None
    masked_mean: Any = None
    masked_std: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape)

    def cache_size_bytes(self) -> int:
        return _tensor_bytes(self.samples, self.mean, self.std, self.noise_mask, self.masked_mean, self.masked_std)


@dataclass(frozen=True)
class NoiseSource:
    """NOISE: a seed, where its generator lives (CPU by default: same image on any device) and how
    the initial noise is drawn: "diffusers" through diffusers' randn_tensor from the run's
    generator, "comfyui" as ComfyUI's prepare_noise (always on the CPU)."""

    seed: int
    device: str = "cpu"
    method: str = "diffusers"

    def generator(self, device: str):
        import torch

        gen_device = "cpu" if self.device == "cpu" else device
        return torch.Generator(gen_device).manual_seed(self.seed)

    def initial_noise(self, shape: tuple, generator, device, dtype):
        """The run's initial noise: diffusers' draw from ``generator`` (already used for whatever
        the pipelines draw first), or ComfyUI's: a CPU generator seeded with the seed, one float32
        ``randn`` over the whole latent batch, then cast to the latents' dtype and device."""
        import torch

        if self.method == "comfyui":
            cpu = torch.Generator("cpu").manual_seed(self.seed)
            return torch.randn(tuple(shape), generator=cpu, dtype=torch.float32).to(device=device, dtype=dtype)
        from diffusers.utils.torch_utils import randn_tensor

        return randn_tensor(tuple(shape), generator=generator, device=torch.device(device), dtype=dtype)


@dataclass(frozen=True)
class SchedulerSpec:
    """SCHEDULER: a recipe (name, steps, options); built from the model's scheduler config."""

    name: str
    steps: int
    options: tuple[tuple[str, Any], ...] = ()
    # "model default": the diffusers scheduler's own sigmas; else one of ComfyUI's schedules
    # (nodes/comfy_sigmas.py), passed to it as custom sigmas, and UNet denoise samples as ComfyUI does
    schedule: str = "model default"


@dataclass(eq=False)
class LatentTrace:
    """LATENT_TRACE: the latent after every step and the model's x0 prediction per step.

    ``latents[0]`` is the starting latent; ``latents[i + 1]`` follows step ``i``;
    ``x0[i]`` is the prediction made at step ``i``. Kept on the CPU.
    """

    latents: list[Any] = field(default_factory=list)
    x0: list[Any] = field(default_factory=list)
    timesteps: list[float] = field(default_factory=list)
    model_key: tuple = ()
    latent_rgb: tuple = ()
    latent_rgb_bias: tuple = (0.0, 0.0, 0.0)
    scaling_factor: float = 1.0

    @property
    def num_steps(self) -> int:
        return len(self.x0)

    def cache_size_bytes(self) -> int:
        return _tensor_bytes(*self.latents, *self.x0)


@dataclass(eq=False)
class UNetModel:
    """MODEL socket value: the UNet, its family and the scheduler config it was trained with."""

    unet: Any
    scheduler_config: dict[str, Any]
    key: tuple
    device: str
    dtype: Any
    family: Family = FAMILIES["sd1"]
    vae_scale: int = 8  # pixels per latent cell: SDXL's size conditioning is in pixels
    # The pipeline's force_zeros_for_empty_prompt: an empty negative prompt becomes zeros.
    zero_empty_negative: bool = False
    # The UNet's fast path, if enabled: replayed from CUDA graphs (and, in the AOT mode, run from
    # AOT-compiled packages; on the CPU only that).
    graphed: GraphedCallable | None = None
    aot: Any = None  # the AotCompiled UNet in the AOT mode (its builds, loads and failure)
    # LoRAs merged into the shared UNet's weights for this value's calls only (Load LoRA)
    patches: tuple[Patch, ...] = ()

    @property
    def takes_added_conditioning(self) -> bool:
        """SDXL: pooled text embeddings and size/crop time ids go into the time embedding."""
        return self.unet.config.addition_embed_type == "text_time"

    def predict(self, sample, timestep, embeds, added: tuple = (), residuals: tuple | None = None):
        """The UNet's output for one step (``return_dict=False``'s first item); ``timestep`` is a
        tensor on the sample's device, as the scheduler's timesteps are; ``added`` is SDXL's
        ``(text_embeds, time_ids)``; ``residuals`` ControlNets' ``(down residuals, mid residual)``.
        The CUDA-graph and AOT paths were captured without residuals: a step with them runs eagerly
        (UNet denoise says so on the node)."""
        with patched(self.unet, self.patches):
            if residuals is not None:
                return unet_forward(self.unet, sample, timestep, embeds, *(added or (None, None)), residuals=residuals)
            if self.graphed is not None:
                return self.graphed(sample, timestep, embeds, *added)
            return unet_forward(self.unet, sample, timestep, embeds, *added)

    @property
    def default_size(self) -> int:
        """The pipelines' default image side: the UNet's trained sample size in pixels."""
        return int(self.unet.config.sample_size) * self.vae_scale

    def fast_path_problems(self) -> list[str]:
        """Why the chosen compile mode fell back to running the UNet eagerly, if it did."""
        return fallbacks("UNet", aot=self.aot, graphed=self.graphed)

    def cache_size_bytes(self) -> int:
        return 0  # owned by the model cache, not by the output cache


def unet_forward(unet, sample, timestep, embeds, text_embeds=None, time_ids=None, residuals=None):
    """One UNet call as the pipelines make it (SDXL's extras as ``added_cond_kwargs``, ControlNets'
    residuals as the ControlNet pipelines pass them)."""
    added = None if text_embeds is None else {"text_embeds": text_embeds, "time_ids": time_ids}
    if residuals is None:
        return unet(sample, timestep, encoder_hidden_states=embeds, added_cond_kwargs=added, return_dict=False)[0]
    down, mid = residuals
    return unet(sample, timestep, encoder_hidden_states=embeds, added_cond_kwargs=added,
                down_block_additional_residuals=down, mid_block_additional_residual=mid, return_dict=False)[0]


@dataclass(eq=False)
class TextEncoder:
    """One tokenizer + encoder of a CLIP value, and how the family uses its output."""

    tokenizer: Any
    encoder: Any
    spec: TextEncoderSpec
    graphed: GraphedCallable | None = None  # replayed from CUDA graphs, if enabled
    patches: tuple[Patch, ...] = ()  # LoRAs merged into the shared encoder for this value's calls

    def encode(self, input_ids, attention_mask=None, clip_skip: int = 0, vectors: dict | None = None):
        """``(hidden states, pooled or None)`` for token ids on the encoder's device: the last
        hidden state, or the penultimate one where the family says so (SDXL), ``clip_skip`` layers
        earlier; the pooled output where the encoder has a projection (SDXL's second encoder).
        ``vectors``: {position: embedding} that replace those tokens' embeddings (textual inversion)."""
        with patched(self.encoder, self.patches):  # the model's lock: the hook is seen by this call only
            if vectors:
                hook = self.encoder.get_input_embeddings().register_forward_hook(_replace_rows(vectors))
                try:
                    return encoder_forward(self.encoder, self.spec.penultimate, input_ids, attention_mask, clip_skip)
                finally:
                    hook.remove()
            if self.graphed is not None and attention_mask is None and not clip_skip:
                return self.graphed(input_ids)
            return encoder_forward(self.encoder, self.spec.penultimate, input_ids, attention_mask, clip_skip)


def _replace_rows(vectors: dict):
    def hook(module, args, output):
        output = output.clone()
        for position, vector in vectors.items():
            output[:, position] = vector.to(device=output.device, dtype=output.dtype)
        return output
    return hook


def encoder_forward(encoder, penultimate: bool, input_ids, attention_mask=None, clip_skip: int = 0):
    """As the pipelines' ``encode_prompt`` with ``clip_skip``: SD 1.x/2.x take the hidden state
    ``clip_skip`` layers before the last through the final layer norm; SDXL the one ``clip_skip``
    layers before the penultimate, as it is."""
    if not penultimate and not clip_skip:
        return encoder(input_ids, attention_mask=attention_mask)[0], None
    out = encoder(input_ids, attention_mask=attention_mask, output_hidden_states=True)
    pooled = out[0] if out[0].ndim == 2 else None  # CLIPTextModelWithProjection's text_embeds
    if penultimate:
        return out.hidden_states[-(clip_skip + 2)], pooled
    final_norm = getattr(encoder, "text_model", encoder).final_layer_norm  # transformers >= 5.6 flattened it
    return final_norm(out.hidden_states[-(clip_skip + 1)]), pooled


@dataclass(eq=False)
class ClipModel:
    """CLIP socket value: the family's text encoders, in the order their outputs concatenate."""

    encoders: tuple[TextEncoder, ...]
    key: tuple
    device: str
    dtype: Any
    family: Family = FAMILIES["sd1"]

    @property
    def tokenizer(self):
        return self.encoders[0].tokenizer

    @property
    def text_encoder(self):
        return self.encoders[0].encoder

    def fast_path_problems(self) -> list[str]:
        """Why a text encoder's CUDA graph fell back to running it eagerly, if one did."""
        return [p for e in self.encoders for p in fallbacks("text encoder", graphed=e.graphed)]

    def cache_size_bytes(self) -> int:
        return 0


@dataclass(eq=False)
class VaeModel:
    """VAE socket value, with the latent→RGB preview matrix for this model's latent space."""

    vae: Any
    key: tuple
    device: str
    dtype: Any
    latent_rgb: tuple[tuple[float, ...], ...] = FAMILIES["sd1"].latent.latent_rgb
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)
    # The image side of the model this VAE came with (Empty latent's "model default" size).
    default_size: int = 512

    def fast_path_problems(self) -> list[str]:
        """Why the AOT-compiled decoder fell back to running eagerly, if it did."""
        return fallbacks("VAE decoder", aot=getattr(self.vae.decoder, "runner", None))

    @property
    def scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def cache_size_bytes(self) -> int:
        return 0


def fallbacks(model: str, aot=None, graphed=None) -> list[str]:
    """The node warnings for a model whose AOT compile or CUDA graph capture failed (both keep
    the reason in ``disabled_reason`` and run the model eagerly)."""
    problems = []
    if aot is not None and aot.disabled_reason:
        problems.append(f"AOT compile of the {model} failed; it ran uncompiled "
                        f"({aot.disabled_reason})")
    if graphed is not None and graphed.disabled_reason:
        problems.append(f"CUDA graph capture of the {model} failed; it ran without "
                        f"({graphed.disabled_reason})")
    return problems
