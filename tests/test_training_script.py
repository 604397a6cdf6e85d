"""scripts/train_bundled_model.py end to end at toy size: every phase runs, the exported folder
loads offline with diffusers' own pipeline, and the decoder fine-tune leaves the encoder (and so
the latents the UNet was trained on) untouched."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "train_bundled_model.py"
TOY = ["--threads", "1", "--vae-blocks", "8,16,16", "--vae-steps", "2", "--vae-batch", "2",
       "--dec-steps", "2", "--dataset-size", "40", "--unet-blocks", "16,16,32", "--unet-steps", "2",
       "--unet-batch", "4"]


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


def test_exported_folder_loads_offline_and_draws(trained):
    import torch
    from diffusers import StableDiffusionPipeline

    _, out, _ = trained
    pipe = StableDiffusionPipeline.from_pretrained(str(out), local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    image = pipe("a red star on a white background", num_inference_steps=2, height=64, width=64,
                 generator=torch.Generator("cpu").manual_seed(0)).images[0]
    assert image.size == (64, 64)
    assert pipe.vae.config.scaling_factor != 0.18215  # measured from the latents, not SD's
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
