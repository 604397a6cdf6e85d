"""One description per Stable Diffusion family: the facts the loader, Text encode, Empty latent, the sampler,
previews and the inspector ask for, so no other code branches on SD versions.

The latent→RGB matrices are ComfyUI's published fits (rows: latent channels; columns: R, G, B).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..paths import resources_dir

SD1_LATENT_RGB = ((0.3512, 0.2297, 0.3227), (0.3250, 0.4974, 0.2350),
                  (-0.2829, 0.1762, 0.2721), (-0.2120, -0.2616, -0.7177))
SDXL_LATENT_RGB = ((0.3651, 0.4232, 0.4341), (-0.2533, -0.0042, 0.1068),
                   (0.1076, 0.1111, -0.0362), (-0.3165, -0.2492, -0.2188))
SDXL_LATENT_RGB_BIAS = (0.1084, -0.0175, -0.0011)


@dataclass(frozen=True)
class TextEncoderSpec:
    """One text encoder of a family and how its output is used."""

    subfolder: str  # text_encoder / text_encoder_2 in the diffusers layout
    tokenizer: str  # tokenizer / tokenizer_2
    model_class: str  # transformers class name
    pad_token: str  # SD 1.x pads with <|endoftext|>; OpenCLIP-trained encoders with "!" (id 0)
    penultimate: bool  # take hidden_states[-2] (SDXL) instead of the last hidden state
    pooled: bool = False  # its projected pooled output conditions the UNet (SDXL's encoder 2)


@dataclass(frozen=True)
class LatentFormat:
    channels: int
    downscale: int
    scaling_factor: float
    latent_rgb: tuple[tuple[float, float, float], ...]
    latent_rgb_bias: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Family:
    id: str
    title: str
    pipeline: str  # the diffusers pipeline its results must equal
    img2img_pipeline: str
    inpaint_pipeline: str
    text_encoders: tuple[TextEncoderSpec, ...]
    latent: LatentFormat
    default_size: int
    cfg: float  # the pipeline's default guidance scale
    cfg_range: tuple[float, float]  # outside this, results are rarely what the user wants
    prediction: str  # epsilon / v_prediction (SD 2.x 768 models are v; the file or the user says which)
    size_conditioning: bool = False  # SDXL: original size, crop and target size go into the time embedding
    aesthetic_score: bool = False  # the refiner conditions on an aesthetic score instead of a target size
    force_zeros_for_empty_prompt: bool = False
    # The pipeline decodes in fp32 when the VAE's config says force_upcast (SDXL's overflows in
    # fp16); SD 1.x/2.x pipelines never do, whatever the config says.
    upcast_vae: bool = False

    @property
    def configs(self):
        """The bundled diffusers configs (no weights) for a single file of this family."""
        return resources_dir() / "configs" / "families" / self.id


_CLIP_L = TextEncoderSpec("text_encoder", "tokenizer", "CLIPTextModel", "<|endoftext|>", penultimate=False)
_OPEN_CLIP_H = TextEncoderSpec("text_encoder", "tokenizer", "CLIPTextModel", "!", penultimate=False)
_XL_CLIP_L = TextEncoderSpec("text_encoder", "tokenizer", "CLIPTextModel", "<|endoftext|>", penultimate=True)
_XL_CLIP_G = TextEncoderSpec("text_encoder_2", "tokenizer_2", "CLIPTextModelWithProjection", "!",
                             penultimate=True, pooled=True)
_SD_LATENT = LatentFormat(4, 8, 0.18215, SD1_LATENT_RGB)
_XL_LATENT = LatentFormat(4, 8, 0.13025, SDXL_LATENT_RGB, SDXL_LATENT_RGB_BIAS)

FAMILIES: dict[str, Family] = {f.id: f for f in (
    Family("sd1", "SD 1.x", "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
           (_CLIP_L,), _SD_LATENT, 512, 7.5, (1.0, 15.0), "epsilon"),
    Family("sd2", "SD 2.x", "StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline",
           (_OPEN_CLIP_H,), _SD_LATENT, 768, 7.5, (1.0, 15.0), "v_prediction"),
    Family("sdxl_base", "SDXL base", "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline",
           "StableDiffusionXLInpaintPipeline", (_XL_CLIP_L, _XL_CLIP_G), _XL_LATENT, 1024, 5.0, (1.0, 12.0), "epsilon",
           size_conditioning=True, force_zeros_for_empty_prompt=True, upcast_vae=True),
    Family("sdxl_refiner", "SDXL refiner", "StableDiffusionXLImg2ImgPipeline", "StableDiffusionXLImg2ImgPipeline",
           "StableDiffusionXLInpaintPipeline", (_XL_CLIP_G,), _XL_LATENT, 1024, 5.0, (1.0, 12.0), "epsilon",
           size_conditioning=True, aesthetic_score=True, upcast_vae=True),
)}


def family_for_unet_config(config: dict) -> Family | None:
    """The family of a diffusers UNet config (a diffusers folder), or None for an architecture we do not know."""
    context = config.get("cross_attention_dim")
    added = config.get("projection_class_embeddings_input_dim") if config.get("addition_embed_type") == "text_time" else None
    if added is None and context == 768:
        return FAMILIES["sd1"]
    if added is None and context == 1024:
        return FAMILIES["sd2"]
    if added == 2816 and context == 2048:
        return FAMILIES["sdxl_base"]
    if added == 2560 and context == 1280:
        return FAMILIES["sdxl_refiner"]
    return None


def family_for_folder(model_index: dict, unet_config: dict) -> Family:
    """The family of a diffusers folder: by its UNet's published dimensions where they match one,
    else by structure (tiny or unusual models): a time-text added embedding is SDXL (the refiner
    when its pipeline asks for an aesthetic score), a 1024-wide context SD 2.x, anything else SD 1.x."""
    known = family_for_unet_config(unet_config)
    if known is not None:
        return known
    if unet_config.get("addition_embed_type") == "text_time":
        refiner = model_index.get("requires_aesthetics_score") or not model_index.get("text_encoder", [None])[0]
        return FAMILIES["sdxl_refiner" if refiner else "sdxl_base"]
    return FAMILIES["sd2" if unet_config.get("cross_attention_dim") == 1024 else "sd1"]
