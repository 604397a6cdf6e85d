"""A real-size SDXL single file, loaded with nothing else present (issue 27).

Builds an SDXL base checkpoint with random fp16 weights from our bundled configs, in the SGM layout
users download (``sd_xl_base_1.0.safetensors``: ~6.9 GB), in a temp folder. Then, in a fresh
process, points Load model at that file alone (no 'config': the family comes from its header, the
configs and tokenizers are ours), runs one Euler step at 128x128 and reports load time, step time
and peak RAM. Offline throughout (HF_HUB_OFFLINE=1, and the Hub's download function is replaced by
one that fails, so a fetch would show as an error).

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/sdxl_single_file.py [--keep DIR]

Prints JSON last. Needs ~25 GB of free disk and ~16 GB of RAM.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def random_fp16(factory, seed: int):
    """A model built on the meta device and materialised in fp16 with N(0, 0.02) weights: no fp32
    copy, no slow default initialisation of 2.6 B parameters."""
    import torch

    with torch.device("meta"):
        model = factory()
    model = model.to(dtype=torch.float16).to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.normal_(0.0, 0.02, generator=generator)
    return model


def random_family_folder(folder: Path, family_id: str, seed: int = 0) -> Path:
    """A diffusers folder of ``family_id``: our bundled configs and tokenizers, random fp16 weights
    (kept when already built)."""
    if (folder / "unet" / "diffusion_pytorch_model.safetensors").is_file():
        return folder
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from nodes.families.catalog import FAMILIES
    from nodes.models import bundled_tokenizer

    family = FAMILIES[family_id]
    shutil.copytree(family.configs, folder, dirs_exist_ok=True)
    parts = {
        "unet": lambda: UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet")),
        "vae": lambda: AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae")),
    }
    for spec in family.text_encoders:
        cls = CLIPTextModelWithProjection if spec.pooled else CLIPTextModel
        parts[spec.subfolder] = (lambda c=cls, s=spec.subfolder:
                                 c(CLIPTextConfig.from_pretrained(folder / s)))
    for index, (name, factory) in enumerate(parts.items()):
        model = random_fp16(factory, seed * 10 + index)
        model.save_pretrained(folder / name, safe_serialization=True, max_shard_size="20GB")
        del model
    for spec in family.text_encoders:
        bundled_tokenizer(spec.pad_token).save_pretrained(str(folder / spec.tokenizer))
    return folder


def random_sdxl_folder(folder: Path) -> Path:
    """An SDXL base folder with random fp16 weights (bench/gpu_sdxl.py loads it as it is; build()
    below writes it as one file)."""
    return random_family_folder(folder, "sdxl_base")


def build(folder: Path) -> Path:
    """The random SDXL folder, written as one SGM-layout file (the folder is then removed)."""
    from safetensors.torch import save_file

    from nodes.ldm_export import sdxl_folder_to_sgm

    file = folder / "sdxl_random_base.safetensors"
    save_file(sdxl_folder_to_sgm(random_sdxl_folder(folder / "diffusers")), str(file))
    shutil.rmtree(folder / "diffusers")
    return file


def measure(file: str) -> dict:
    """In this (fresh) process: Load model on the file alone, then one step at 128x128."""
    import huggingface_hub

    def no_download(*args, **kwargs):
        raise RuntimeError("tried to download from the Hugging Face Hub")

    huggingface_hub.snapshot_download = no_download
    huggingface_hub.hf_hub_download = no_download
    import nodes  # noqa: F401
    from graphs import Executor
    from nodes.recipes import txt2img_graph

    graph, ids = txt2img_graph(file, prompt="a lighthouse at dusk", negative="", steps=1, cfg=5.0, size=128)
    start = time.perf_counter()
    result = Executor().run(graph)
    run_s = time.perf_counter() - start
    if result.status != "finished":
        raise SystemExit(f"run failed: {result.error}")
    model = result.outputs[ids["load"]]["model"]
    image = result.outputs[ids["preview"]]["images"][0]
    peak_gib = next(int(line.split()[1]) for line in open("/proc/self/status")
                    if line.startswith("VmHWM")) / 1024**2
    return {"family": model.family.id, "load_s": round(result.timings[ids["load"]], 2),
            "text_encode_s": round(result.timings[ids["positive"]] + result.timings[ids["negative"]], 2),
            "one_step_128_s": round(result.timings[ids["unet"]], 2), "decode_s": round(result.timings[ids["decode"]], 2),
            "whole_run_s": round(run_s, 2), "image_size": list(image.size), "peak_rss_gib": round(peak_gib, 2),
            "unet_params_b": round(sum(p.numel() for p in model.unet.parameters()) / 1e9, 3)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="build (or reuse) the file in this folder and keep it")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure)))
        return 0
    folder = args.keep or Path(tempfile.mkdtemp(prefix="latentgraph_sdxl_"))
    folder.mkdir(parents=True, exist_ok=True)
    try:
        file = folder / "sdxl_random_base.safetensors"
        start = time.perf_counter()
        if not file.exists():
            file = build(folder)
        build_s = time.perf_counter() - start
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        child = subprocess.run([sys.executable, __file__, "--measure", str(file)], capture_output=True, text=True,
                               env=env, cwd=ROOT)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return 1
        out = json.loads(child.stdout.strip().splitlines()[-1])
        out.update(file_gib=round(file.stat().st_size / 1024**3, 2), build_s=round(build_s, 1))
        print(json.dumps(out))
        return 0
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
