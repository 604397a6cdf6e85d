"""Values that flow along the diffusion sockets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _tensor_bytes(*tensors: Any) -> int:
    return sum(t.element_size() * t.numel() for t in tensors if t is not None)


@dataclass(eq=False)
class Conditioning:
    """CONDITIONING: prompt embeddings ``[batch, tokens, dim]`` on the model's device."""

    embeds: Any
    text: str = ""
    truncated_text: str = ""

    def cache_size_bytes(self) -> int:
        return _tensor_bytes(self.embeds)


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

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.samples.shape)

    def cache_size_bytes(self) -> int:
        return _tensor_bytes(self.samples, self.mean, self.std)


@dataclass(frozen=True)
class NoiseSource:
    """NOISE: a seed and where its generator lives (CPU by default: same image on any device)."""

    seed: int
    device: str = "cpu"

    def generator(self, device: str):
        import torch

        gen_device = "cpu" if self.device == "cpu" else device
        return torch.Generator(gen_device).manual_seed(self.seed)


@dataclass(frozen=True)
class SchedulerSpec:
    """SCHEDULER: a recipe (name, steps, options); built from the model's scheduler config."""

    name: str
    steps: int
    options: tuple[tuple[str, Any], ...] = ()


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
