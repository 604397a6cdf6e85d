"""Single-file (original LDM layout) checkpoints load offline, through diffusers and the graph."""

import numpy as np
import pytest
import torch

import nodes  # noqa: F401
from graphs import Executor
from nodes.ldm_export import make_tiny_single_file, unet_to_ldm, vae_to_ldm
from nodes.recipes import txt2img_graph


@pytest.fixture(scope="module")
def single_file(tmp_path_factory):
    """(LDM .safetensors, diffusers folder with the same weights used as ``config``)."""
    base = tmp_path_factory.mktemp("single_file")
    folder = base / "diffusers"
    file = make_tiny_single_file(base / "tiny-v1-5.safetensors", folder)
    return file, folder


def load_pipes(file, folder):
    from diffusers import StableDiffusionPipeline

    common = dict(local_files_only=True, safety_checker=None, requires_safety_checker=False)
    return (StableDiffusionPipeline.from_single_file(str(file), config=str(folder), **common),
            StableDiffusionPipeline.from_pretrained(str(folder), **common))


def test_round_trip_through_from_single_file(single_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    file, folder = single_file
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as weights:
        keys = set(weights.keys())
        assert weights.get_tensor("first_stage_model.encoder.mid.attn_1.q.weight").shape == (16, 16, 1, 1)
    for key in ("model.diffusion_model.input_blocks.0.0.weight",
                "model.diffusion_model.middle_block.1.proj_in.weight",
                "first_stage_model.decoder.up.1.upsample.conv.weight",
                "cond_stage_model.transformer.text_model.embeddings.position_embedding.weight"):
        assert key in keys
    from_file, from_folder = load_pipes(file, folder)
    for name in ("unet", "vae", "text_encoder"):
        ours, theirs = getattr(from_file, name).state_dict(), getattr(from_folder, name).state_dict()
        assert ours.keys() == theirs.keys(), name
        for key, value in theirs.items():
            assert torch.equal(ours[key], value), f"{name}.{key}"


def test_converter_matches_diffusers_for_sd_block_layout():
    """SD 1.x block order (attention on the first levels), 2 resnets per level: our export is
    the exact inverse of diffusers' LDM converters, and uses SD 1.5's key names."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16, 16), layers_per_block=2, sample_size=8, cross_attention_dim=8,
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=4, attention_head_dim=2)
    vae = AutoencoderKL(block_out_channels=(8, 16, 16), down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, layers_per_block=2,
                        norm_num_groups=4, latent_channels=4)
    for model, ldm, convert in (
            (unet, unet_to_ldm(unet.state_dict(), 2), convert_ldm_unet_checkpoint),
            (vae, vae_to_ldm(vae.state_dict(), 3), convert_ldm_vae_checkpoint)):
        back = convert(ldm, dict(model.config))
        expected = model.state_dict()
        assert back.keys() == expected.keys()
        assert all(torch.equal(back[k], v) for k, v in expected.items())
    ldm_unet = unet_to_ldm(unet.state_dict(), 2)
    for key in ("input_blocks.1.1.proj_in.weight", "input_blocks.3.0.op.weight",
                "input_blocks.7.0.in_layers.0.weight", "middle_block.2.out_layers.3.weight",
                "output_blocks.2.1.conv.weight", "output_blocks.5.2.conv.weight",
                "output_blocks.8.1.transformer_blocks.0.attn2.to_k.weight", "out.2.bias"):
        assert "model.diffusion_model." + key in ldm_unet


def test_single_file_through_the_graph_matches_the_folder(single_file, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    file, folder = single_file
    images = []
    for source, config in ((file, str(folder)), (folder, "")):
        graph, ids = txt2img_graph(str(source), prompt="a green square", seed=5, steps=3)
        graph.set_param(ids["load"], "config", config)
        result = Executor().run(graph)
        assert result.status == "finished", result.error and result.error.traceback
        images.append(np.asarray(result.outputs[ids["preview"]]["images"][0]).astype(int))
    assert images[0].shape == (32, 32, 3)
    assert np.abs(images[0] - images[1]).max() <= 1


def load_error(source, config=""):
    graph, ids = txt2img_graph(str(source), steps=2)
    graph.set_param(ids["load"], "config", config)
    result = Executor().run(graph)
    assert result.status != "finished"
    assert result.error.node_id == ids["load"]
    return result.error.message


def test_single_file_of_no_known_family_is_refused_up_front_offline(single_file, monkeypatch):
    """Without 'config' the family comes from the file's header; a tiny model matches none, and
    that is said (with what was found) before anything is read or fetched."""
    import diffusers.loaders.single_file as single_file_loader

    def no_network(*args, **kwargs):
        raise AssertionError("tried to fetch configs from the Hugging Face Hub")

    monkeypatch.setattr(single_file_loader, "snapshot_download", no_network)
    file, _ = single_file
    message = load_error(file)
    assert file.name in message and "context dim 16" in message and "not an SD 1.x/2.x/SDXL UNet" in message
    assert "set 'config' to a local diffusers folder" in message


def test_config_that_is_not_a_diffusers_folder(single_file, tmp_path):
    file, _ = single_file
    assert "config folder not found" in load_error(file, str(tmp_path / "nowhere"))
    assert "no model_index.json" in load_error(file, str(tmp_path))


@pytest.mark.parametrize("with_config", [False, True])
def test_garbage_safetensors_names_the_file(single_file, tmp_path, with_config):
    _, folder = single_file
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\x01 this is not a checkpoint" * 10)
    message = load_error(garbage, str(folder) if with_config else "")
    assert str(garbage) in message and "not a readable .safetensors file" in message


def test_an_inpainting_single_file_loads_with_a_normal_config(tmp_path, monkeypatch):
    """Inpainting checkpoints are their family's architecture with 9 UNet input channels: the file's
    first convolution says so, and the family's normal config is widened to it (the same as for
    the bundled configs of a recognised SD 1.5/2/SDXL inpainting file)."""
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    from nodes.ldm_export import folder_to_ldm
    from nodes.models import MODEL_CACHE
    from nodes.tiny_models import make_tiny_sd

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    normal, inpainting = make_tiny_sd(tmp_path / "normal"), make_tiny_sd(tmp_path / "inpainting", inpainting=True)
    file = tmp_path / "tiny-inpainting.safetensors"
    save_file(folder_to_ldm(inpainting), str(file))
    loaded = MODEL_CACHE.get(str(file), "cpu", "fp32", config=str(normal))
    assert loaded.unet.unet.config.in_channels == 9
    expected = UNet2DConditionModel.from_pretrained(str(inpainting), subfolder="unet").state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in loaded.unet.unet.state_dict().items())
