"""The bundled tokenizer and family configs are the published models': token ids and parameter counts."""

import json

import pytest

from nodes.paths import resources_dir

CONFIGS = resources_dir() / "configs"


def _tokenizer(pad: str):
    from transformers import CLIPTokenizer

    folder = CONFIGS / "clip_tokenizer"
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                         pad_token=pad, model_max_length=77)


def test_clip_vocabulary_gives_the_published_token_ids():
    tok = _tokenizer("<|endoftext|>")
    assert len(tok) == 49408
    # ids of openai/clip-vit-large-patch14, as printed in the transformers and diffusers docs
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tok("a photograph of an astronaut riding a horse").input_ids == [
        49406, 320, 8853, 539, 550, 18376, 6765, 320, 4558, 49407]
    assert tok("cat", padding="max_length").input_ids[-1] == 49407


def test_open_clip_tokenizer_pads_with_exclamation_mark():
    tok = _tokenizer("!")
    ids = tok("cat", padding="max_length").input_ids
    assert len(ids) == 77 and ids[:3] == [49406, 2368, 49407] and set(ids[3:]) == {0}


# Published parameter counts of SD 1.5, SD 2.1, SDXL base 1.0 and SDXL refiner 1.0.
COUNTS = {
    "sd1": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sd2": {"unet": 865_910_724, "vae": 83_653_863, "text_encoder": 340_387_840},
    "sdxl_base": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480,
                  "text_encoder_2": 694_659_840},
    "sdxl_refiner": {"unet": 2_259_526_660, "vae": 83_653_863, "text_encoder_2": 694_659_840},
}


@pytest.mark.parametrize("family", sorted(COUNTS))
def test_family_configs_build_the_published_architectures(family):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = CONFIGS / "families" / family

    def build(component):
        config = json.loads((folder / component / "config.json").read_text())
        if component == "unet":
            return UNet2DConditionModel.from_config(config)
        if component == "vae":
            return AutoencoderKL.from_config(config)
        cls = CLIPTextModelWithProjection if config["architectures"] == ["CLIPTextModelWithProjection"] else CLIPTextModel
        return cls(CLIPTextConfig(**config))

    with init_empty_weights():
        counts = {c: sum(p.numel() for p in build(c).parameters()) for c in COUNTS[family]}
    assert counts == COUNTS[family]
    index = json.loads((folder / "model_index.json").read_text())
    assert {k for k, v in index.items() if isinstance(v, list) and v[0]} == set(COUNTS[family]) | {"scheduler"} | {
        k.replace("text_encoder", "tokenizer") for k in COUNTS[family] if k.startswith("text_encoder")}


@pytest.mark.parametrize("family_id", sorted(COUNTS))
def test_family_descriptions_match_their_bundled_configs(family_id):
    from nodes.families.catalog import FAMILIES, family_for_unet_config

    family = FAMILIES[family_id]
    unet = json.loads((family.configs / "unet" / "config.json").read_text())
    vae = json.loads((family.configs / "vae" / "config.json").read_text())
    assert family_for_unet_config(unet) is family
    assert vae["scaling_factor"] == family.latent.scaling_factor
    assert vae["latent_channels"] == family.latent.channels == len(family.latent.latent_rgb)
    assert 2 ** (len(vae["block_out_channels"]) - 1) == family.latent.downscale
    context = sum(json.loads((family.configs / e.subfolder / "config.json").read_text())["hidden_size"]
                  for e in family.text_encoders)
    assert context == unet["cross_attention_dim"]
    index = json.loads((family.configs / "model_index.json").read_text())
    assert index.get("force_zeros_for_empty_prompt", False) == family.force_zeros_for_empty_prompt
