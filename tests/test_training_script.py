"""scripts/train_bundled_model.py end to end at toy size: every phase runs, the exported folder
loads offline with diffusers' own pipeline, and the decoder fine-tune leaves the encoder (and so
the latents the UNet was trained on) untouched."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "train_bundled_model.py"
TOY = ["--threads", "1", "--vae-blocks", "8,16,16", "--vae-steps", "2", "--vae-batch", "2",
       "--dec-steps", "2", "--dataset-size", "40", "--unet-blocks", "16,16,32", "--unet-heads", "1",
       "--unet-steps", "2", "--unet-batch", "4"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work, out = tmp_path_factory.mktemp("work"), tmp_path_factory.mktemp("model")
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--work", str(work), "--out", str(out), *TOY],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work, out, proc.stdout


def test_all_phases_run_and_report_their_times(trained):
    _, _, log = trained
    times = json.loads(log.strip().splitlines()[-1].split("phase times:", 1)[1])
    assert set(times) == {"vae", "encode", "unet", "decoder", "export", "total"}
    contrast = [line for line in log.splitlines() if "word contrast" in line]
    assert contrast and all(kind in contrast[-1] for kind in ("colour", "background", "shape", "size", "position"))
    assert "word-margin loss" in log


def test_exported_folder_loads_offline_and_draws(trained):
    import torch
    from diffusers import StableDiffusionPipeline

    _, out, _ = trained
    pipe = StableDiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red star on a white background", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert pipe.unet.config.attention_head_dim == 1  # --unet-heads reaches the shipped config
    data = torch.load(trained[0] / "dataset.pt", weights_only=True)
    assert pipe.vae.config.scaling_factor == pytest.approx(1 / data["latents"].std().item())
    rgb = json.loads((out / "latent_rgb.json").read_text())
    assert len(rgb["matrix"]) == pipe.unet.config.in_channels and len(rgb["bias"]) == 3
    assert json.loads((out / "latentgraph.json").read_text())["default_prompt"]


def test_every_caption_word_is_one_token(trained):
    from transformers import CLIPTokenizer

    sys.path.insert(0, str(ROOT / "scripts"))
    from shapes_world import all_caption_words

    tok = CLIPTokenizer.from_pretrained(str(trained[1] / "tokenizer"))
    for word in all_caption_words():
        assert len(tok(word, add_special_tokens=False).input_ids) == 1, word


def test_decoder_fine_tune_keeps_the_encoder(trained):
    from safetensors.torch import load_file

    work = trained[0]
    before = load_file(work / "vae" / "diffusion_pytorch_model.safetensors")
    after = load_file(work / "vae_dec" / "diffusion_pytorch_model.safetensors")
    frozen = [k for k in before if k.startswith(("encoder.", "quant_conv."))]
    tuned = [k for k in before if k.startswith("decoder.")]
    assert frozen and all(before[k].equal(after[k]) for k in frozen)
    assert any(not before[k].equal(after[k]) for k in tuned)


def test_outline_mask_marks_the_cells_along_an_object_edge():
    """The UNet and decoder losses weight these cells; they must follow the object's outline."""
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    import shapes_world as W
    from train_bundled_model import outline_mask

    scene = W.Scene("single", "white", [W.Obj("square", "red", 32.0, 32.0, 12.0)], "a red square")
    x = torch.from_numpy(W.to_tensor_range(W.render_batch([scene])))
    cells = outline_mask(x, 4)[0, 0]  # 16x16 latent cells; the square spans pixels 20..44
    assert cells.shape == (16, 16)
    assert cells[5, 8] and cells[8, 5] and cells[10, 8] and cells[5, 5]  # edges and a corner
    assert not cells[8, 8] and not cells[7, 7]  # the inside, two cells from any edge
    assert not cells[0, 0] and not cells[15, 15] and not cells[2, 8]  # plain background
    assert cells.float().mean() < 0.5


def test_learning_rate_warms_up_peaks_and_decays_to_the_asked_floor():
    sys.path.insert(0, str(ROOT / "scripts"))
    from train_bundled_model import lr_at

    peak, total, warmup = 1e-3, 1000, 100
    rates = [lr_at(step, total, peak, warmup, floor=0.02) for step in range(total)]
    assert rates[0] == pytest.approx(peak / warmup) and rates[warmup] == pytest.approx(peak)
    assert all(a >= b for a, b in zip(rates[warmup:], rates[warmup + 1:]))  # cosine: only down
    assert rates[-1] == pytest.approx(0.02 * peak, rel=0.01)
    assert lr_at(total - 1, total, peak, warmup) == pytest.approx(0.1 * peak, rel=0.01)  # default


def test_timestep_sampling_puts_the_asked_share_below_the_split():
    import torch

    sys.path.insert(0, str(ROOT / "scripts"))
    from train_bundled_model import sample_timesteps

    t = sample_timesteps(20000, torch.Generator().manual_seed(0), 500, 0.65)
    assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    assert 0.63 < (t < 500).float().mean().item() < 0.67
    assert 0.3 < (t < 250).float().mean().item() < 0.35  # uniform within the low part
    # the uniform setting keeps the exact draws of the models trained before the option existed
    uniform = sample_timesteps(64, torch.Generator().manual_seed(1), 500, None)
    assert uniform.equal(torch.randint(0, 1000, (64,), generator=torch.Generator().manual_seed(1)))


def test_lognormal_timestep_share_follows_the_noise_levels():
    import torch
    from diffusers import DDPMScheduler

    sys.path.insert(0, str(ROOT / "scripts"))
    from train_bundled_model import SCHED_CONFIG, sample_timesteps

    acp = DDPMScheduler(**SCHED_CONFIG).alphas_cumprod
    sigmas = ((1 - acp) / acp).sqrt()
    t = sample_timesteps(40000, torch.Generator().manual_seed(0), 500, None, (1.0, -0.5, 1.2), sigmas)
    assert t.dtype == torch.long and int(t.min()) >= 0 and int(t.max()) <= 999
    # ln sigma ~ N(-0.5, 1.2^2): the median draw sits at sigma = exp(-0.5), i.e. t ~ 120
    median_sigma = sigmas[t].median().item()
    assert 0.55 < median_sigma < 0.67
    assert 0.05 < (t >= 500).float().mean().item() < 0.10  # uniform t puts half up there
    mixed = sample_timesteps(40000, torch.Generator().manual_seed(0), 500, None, (0.5, -0.5, 1.2), sigmas)
    assert 0.25 < (mixed >= 500).float().mean().item() < 0.32


def test_text_time_embedding_gives_every_block_the_caption():
    import argparse

    import torch
    from diffusers import UNet2DConditionModel

    sys.path.insert(0, str(ROOT / "scripts"))
    from train_bundled_model import TEXT_CONFIG, unet_config

    args = argparse.Namespace(unet_blocks=[16, 16, 32], unet_heads=2, vae_blocks=[8, 16, 16],
                              latent_channels=4, text_time_embed=True)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config(args)).eval()
    assert unet.config.addition_embed_type == "text"
    x = torch.randn(1, 4, 16, 16)
    text_a, text_b = torch.randn(2, 1, 24, TEXT_CONFIG["hidden_size"])
    with torch.no_grad():
        # the time embedding itself now depends on the caption
        emb_a = unet.add_embedding(text_a)
        emb_b = unet.add_embedding(text_b)
        out = unet(x, 500, text_a).sample
    assert emb_a.shape == (1, unet.time_embedding.linear_2.out_features)
    assert not torch.allclose(emb_a, emb_b)
    assert out.shape == x.shape and torch.isfinite(out).all()
    plain = argparse.Namespace(**{**vars(args), "text_time_embed": False})
    assert UNet2DConditionModel(**unet_config(plain)).config.addition_embed_type is None


def test_ema_weights_export_differs_from_the_raw_default(trained, tmp_path):
    import torch
    from safetensors.torch import load_file

    work, out, _ = trained
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--phase", "export", "--unet-weights", "ema",
                           "--work", str(work), "--out", str(tmp_path), *TOY],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    raw = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    ema = load_file(tmp_path / "unet" / "diffusion_pytorch_model.safetensors")
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema)
    trained_raw = load_file(work / "unet_raw" / "diffusion_pytorch_model.safetensors")
    assert all(torch.equal(raw[k], trained_raw[k]) for k in raw)  # the default export is the raw UNet


def test_two_timestep_distributions_at_once_are_refused(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--phase", "unet", "--work", str(tmp_path),
                           "--t-low-share", "0.6", "--t-lognormal", "0.5,-0.5,1.2"],
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
    assert proc.returncode == 2 and "give one" in proc.stderr
    assert not any(tmp_path.iterdir())  # refused before any work


def _export_without(work: Path, tmp_path: Path, missing: tuple[str, ...]):
    """Run --phase export on a copy of ``work`` (symlinks) that lacks ``missing``."""
    partial = tmp_path / "work"
    partial.mkdir()
    for item in work.iterdir():
        if item.name not in missing:
            (partial / item.name).symlink_to(item)
    return subprocess.run([sys.executable, str(SCRIPT), "--phase", "export", "--work", str(partial),
                           "--out", str(tmp_path / "out"), *TOY],
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))


def test_export_without_the_asked_weights_names_the_missing_folder(trained, tmp_path):
    # a work folder from before raw weights were saved: EMA only
    proc = _export_without(trained[0], tmp_path, ("unet_raw", "text_raw"))
    assert proc.returncode != 0
    assert "unet_raw is missing" in proc.stderr and "--unet-weights ema" in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_export_without_the_preview_fit_leaves_the_old_folder_untouched(trained, tmp_path):
    old_model = tmp_path / "out"
    old_model.mkdir()
    (old_model / "model_index.json").write_text("the previous model")
    proc = _export_without(trained[0], tmp_path, ("latent_rgb.json",))
    assert proc.returncode != 0
    assert "latent_rgb.json is missing: rerun --phase encode" in proc.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name != "work"] == ["out"]
    assert [p.name for p in old_model.iterdir()] == ["model_index.json"]
    assert (old_model / "model_index.json").read_text() == "the previous model"


def test_export_replaces_an_existing_folder_whole(trained, tmp_path):
    work, first, _ = trained
    out = tmp_path / "model"
    shutil.copytree(first, out)
    (out / "stale.txt").write_text("from an older export")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--phase", "export", "--work", str(work),
                           "--out", str(out), *TOY], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (out / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left behind
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (first / "unet" / "diffusion_pytorch_model.safetensors").read_bytes()
