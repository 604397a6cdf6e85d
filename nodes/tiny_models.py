"""Tiny random Stable Diffusion models built from configs, nothing downloaded (as diffusers' own tests
build theirs): for tests, benchmarks and plugin authors who need a real model in milliseconds."""

from __future__ import annotations

import json
import string
from pathlib import Path


def write_char_tokenizer(folder: Path) -> None:
    """A CLIP BPE tokenizer whose vocabulary is single characters (no merges)."""
    from transformers import CLIPTokenizer

    chars = [c for c in string.printable if not c.isspace()]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2}
    for c in chars:
        for token in (c, c + "</w>"):
            vocab.setdefault(token, len(vocab))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"),
                              model_max_length=24)
    tokenizer.save_pretrained(str(folder))


def make_tiny_sd(folder: Path, seed: int = 0, prediction_type: str = "epsilon", inpainting: bool = False) -> Path:
    """Save a tiny random SD-layout model (UNet, VAE, CLIP, PNDM scheduler) into ``folder``;
    ``inpainting``: a 9-channel inpainting UNet (latents + mask + masked image), as SD 1.5-inpainting."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionInpaintPipeline,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    folder = Path(folder)
    write_char_tokenizer(folder / "_tok")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "_tok"))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=9 if inpainting else 4,
        out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
        norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4,
                        norm_num_groups=4, layers_per_block=1)
    encoder = CLIPTextModel(CLIPTextConfig(
        bos_token_id=0, eos_token_id=1, hidden_size=16, intermediate_size=32, layer_norm_eps=1e-5,
        num_attention_heads=2, num_hidden_layers=2, pad_token_id=1, vocab_size=len(tokenizer),
        max_position_embeddings=24))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1, prediction_type=prediction_type)
    pipeline = StableDiffusionInpaintPipeline if inpainting else StableDiffusionPipeline
    pipe = pipeline(vae=vae, text_encoder=encoder, tokenizer=tokenizer, unet=unet,
                    scheduler=scheduler, safety_checker=None, feature_extractor=None,
                    requires_safety_checker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def make_tiny_sdxl(folder: Path, seed: int = 0, refiner: bool = False, inpainting: bool = False) -> Path:
    """Save a tiny random SDXL-layout model into ``folder``: the base (two text encoders, the second
    with a projection for the pooled embedding; size/crop time ids) or the refiner (the second
    encoder only; an aesthetic score instead of the target size). The structure of diffusers' own
    SDXL pipeline tests, with our character tokenizer ("!" pads the OpenCLIP-style encoder)."""
    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLImg2ImgPipeline,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    folder = Path(folder)
    write_char_tokenizer(folder / "_tok")
    tokenizer = CLIPTokenizer.from_pretrained(str(folder / "_tok"))
    tokenizer_2 = CLIPTokenizer.from_pretrained(str(folder / "_tok"), pad_token="!")
    torch.manual_seed(seed)
    # The two encoders differ in width, as ViT-L (768) and ViT-bigG (1280) do: diffusers' single-file
    # loader tells their weights apart by it.
    hidden, hidden_2, time_dim = 16, 24, 8
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=8, in_channels=9 if inpainting else 4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=hidden_2 if refiner else hidden + hidden_2, norm_num_groups=4, attention_head_dim=2,
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=(5 if refiner else 6) * time_dim + hidden_2)
    vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=4, layers_per_block=1, scaling_factor=0.13025,
                        force_upcast=True)
    config = dict(bos_token_id=0, eos_token_id=1, intermediate_size=32, layer_norm_eps=1e-5, num_attention_heads=2,
                  num_hidden_layers=3, pad_token_id=1, vocab_size=len(tokenizer), max_position_embeddings=24,
                  hidden_act="gelu")
    encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**config, hidden_size=hidden_2, projection_dim=hidden_2))
    scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                       steps_offset=1, timestep_spacing="leading")
    if refiner:
        pipe = StableDiffusionXLImg2ImgPipeline(
            vae=vae, text_encoder=None, text_encoder_2=encoder_2, tokenizer=None, tokenizer_2=tokenizer_2,
            unet=unet, scheduler=scheduler, requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
            add_watermarker=False)
    else:
        encoder = CLIPTextModel(CLIPTextConfig(**config, hidden_size=hidden))
        pipe = StableDiffusionXLPipeline(
            vae=vae, text_encoder=encoder, text_encoder_2=encoder_2, tokenizer=tokenizer, tokenizer_2=tokenizer_2,
            unet=unet, scheduler=scheduler, force_zeros_for_empty_prompt=True, add_watermarker=False)
    pipe.save_pretrained(str(folder), safe_serialization=True)
    return folder


def make_tiny_controlnet(folder: Path, model_folder: Path, seed: int = 0) -> Path:
    """Save a tiny random ControlNet for the tiny model in ``model_folder`` into ``folder``: the
    shape ``ControlNetModel.from_unet`` gives (hint encoder down to the latent size), with every
    weight random, so its zero-initialised output layers steer (a fresh ControlNet adds nothing)."""
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(str(model_folder), subfolder="unet")
    vae_scale = 2 ** (len(json.loads((Path(model_folder) / "vae" / "config.json").read_text())["block_out_channels"]) - 1)
    embedding = tuple(16 * 2 ** i for i in range(vae_scale.bit_length()))  # one halving per doubling
    net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=embedding)
    if unet.config.in_channels != 4:  # an inpainting UNet's ControlNet still sees 4 latent channels
        raise ValueError("make the ControlNet from a normal (4-channel) model")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    net.save_pretrained(str(folder), safe_serialization=True)
    return Path(folder)
