"""Family detection from a checkpoint's header: real-size key/shape tables (meta-device models in the
original LDM/SGM layout, no weights), and the refusals a user meets with the wrong file."""

import json
import struct

import pytest

from nodes.families.detect import CheckpointError, detect, predicts_v, read_header
from nodes.ldm_export import unet_to_ldm, vae_to_ldm
from nodes.paths import resources_dir

FAMILIES = resources_dir() / "configs" / "families"


def _unet_table(family: str, **override) -> dict:
    from accelerate import init_empty_weights
    from diffusers import UNet2DConditionModel

    config = {**json.loads((FAMILIES / family / "unet" / "config.json").read_text()), **override}
    with init_empty_weights():
        unet = UNet2DConditionModel.from_config(config)
    ldm = unet_to_ldm(unet.state_dict(), config["layers_per_block"])
    return {name: ("F16", tuple(value.shape)) for name, value in ldm.items()}


@pytest.mark.parametrize(("family", "context", "title"), [
    ("sd1", 768, "SD 1.x"), ("sd2", 1024, "SD 2.x"), ("sdxl_base", 2048, "SDXL base"),
    ("sdxl_refiner", 1280, "SDXL refiner")])
def test_each_real_size_family_is_recognised(family, context, title):
    found = detect(_unet_table(family))
    assert (found.family, found.inpainting, found.title) == (family, False, title)
    assert f"context dim {context}" in found.evidence


@pytest.mark.parametrize("family", ["sd1", "sd2", "sdxl_base"])
def test_nine_input_channels_mean_an_inpainting_unet(family):
    found = detect(_unet_table(family, in_channels=9))
    assert found.family == family and found.inpainting and found.title.endswith("inpainting")


def test_unknown_layouts_are_refused_naming_what_was_found():
    with pytest.raises(CheckpointError, match="context dim 4096.*not an SD 1.x/2.x/SDXL UNet"):
        detect(_unet_table("sd1", cross_attention_dim=4096), "big.safetensors")
    with pytest.raises(CheckpointError, match="8 input channels"):
        detect(_unet_table("sd1", in_channels=8))


def test_lora_vae_and_controlnet_files_are_named_for_what_they_are():
    lora = {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": ("F16", (4, 320)),
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": ("F16", ())}
    with pytest.raises(CheckpointError, match="looks like a LoRA"):
        detect(lora, "style.safetensors")
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL

    with init_empty_weights():
        vae = AutoencoderKL.from_config(json.loads((FAMILIES / "sdxl_base" / "vae" / "config.json").read_text()))
    diffusers_vae = {name: ("F16", tuple(v.shape)) for name, v in vae.state_dict().items()}
    ldm_vae = {name: ("F16", tuple(v.shape)) for name, v in vae_to_ldm(vae.state_dict(), 4).items()}
    for table in (diffusers_vae, ldm_vae):
        with pytest.raises(CheckpointError, match="looks like a VAE"):
            detect(table, "sdxl_vae.safetensors")
    with pytest.raises(CheckpointError, match="looks like a ControlNet"):
        detect({"control_model.input_hint_block.0.weight": ("F16", (16, 3, 3, 3))})


def _write_safetensors(path, tensors):
    from safetensors.torch import save_file

    save_file(tensors, str(path))
    return path


def test_read_header_reads_names_and_shapes_only(tmp_path):
    import torch

    path = _write_safetensors(tmp_path / "m.safetensors", {"a": torch.zeros(2, 3), "b": torch.zeros(5, dtype=torch.float16)})
    assert read_header(path) == {"a": ("F32", (2, 3)), "b": ("F16", (5,))}


def test_truncated_garbage_and_special_files_are_refused(tmp_path):
    import torch

    good = _write_safetensors(tmp_path / "m.safetensors", {"a": torch.zeros(64, 64)})
    data = good.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        read_header(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 4096)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        read_header(tmp_path / "junk.safetensors")
    (tmp_path / "nonjson.safetensors").write_bytes(struct.pack("<Q", 4) + b"zzzz" + b"\0" * 16)
    with pytest.raises(CheckpointError, match="not JSON"):
        read_header(tmp_path / "nonjson.safetensors")
    (tmp_path / "tiny.safetensors").write_bytes(b"abc")
    with pytest.raises(CheckpointError, match="too short"):
        read_header(tmp_path / "tiny.safetensors")
    with pytest.raises(CheckpointError, match="a folder"):
        read_header(tmp_path)
    import os

    os.mkfifo(tmp_path / "pipe.safetensors")
    with pytest.raises(CheckpointError, match="not a regular file"):
        read_header(tmp_path / "pipe.safetensors")


def test_sd2_prediction_from_the_v_pred_key_or_the_norm_bias_heuristic(tmp_path):
    import torch

    table = _unet_table("sd2")
    probe = "model.diffusion_model.output_blocks.11.1.transformer_blocks.0.norm1.bias"
    found = detect(table)
    torch.manual_seed(0)
    v_file = _write_safetensors(tmp_path / "v.safetensors", {probe: torch.randn(320) * 0.2})
    eps_file = _write_safetensors(tmp_path / "eps.safetensors", {probe: torch.randn(320) * 0.02})
    assert predicts_v(v_file, found) and not predicts_v(eps_file, found)
    keyed = detect({**table, "v_pred": ("F32", ())})
    assert keyed.v_pred_key and predicts_v(eps_file, keyed)
    assert not predicts_v(v_file, detect(_unet_table("sd1")))


def _sparse_checkpoint(path, table: dict) -> None:
    """A real-size checkpoint's header over zero (sparse) data: the file a user has, minus weights."""
    sizes = {"F16": 2, "F32": 4}
    header, offset = {}, 0
    for name, (dtype, shape) in table.items():
        count = 1
        for n in shape:
            count *= n
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + count * sizes[dtype]]}
        offset += count * sizes[dtype]
    raw = json.dumps(header).encode()
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(raw)) + raw)
        handle.truncate(8 + len(raw) + offset)


@pytest.mark.parametrize(("family", "expected"), [
    ("sdxl_base", "SDXL base, epsilon prediction, 1024px default"),
    ("sd2", "SD 2.x, epsilon prediction, 512px default"),  # the norm-bias heuristic reads zeros: SD 2.x base
    ("sd1", "SD 1.x, epsilon prediction, 512px default")])
def test_the_cli_names_a_checkpoints_family_without_loading_it(tmp_path, family, expected):
    from test_cli import cli

    file = tmp_path / f"{family}.safetensors"
    _sparse_checkpoint(file, _unet_table(family))
    proc = cli("model", file)
    assert proc.returncode == 0 and proc.stdout.startswith(expected), proc.stdout + proc.stderr
    described = json.loads(cli("model", file, "--json").stdout)
    assert described["family"] == family and described["format"] == "single file"
    lora = tmp_path / "lora.safetensors"
    _sparse_checkpoint(lora, {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": ("F16", (4, 320))})
    proc = cli("model", lora)
    assert proc.returncode == 2 and "looks like a LoRA" in proc.stderr
