#!/usr/bin/env python
"""Where do generated shapes lose their corners? Re-noise the true latents of the benchmark scenes
to the sampler's step ``steps - k``, run the last k steps (the model's default sampler, CFG and
caption) with diffusers' img2img pipeline, decode and score the shapes like bench/bundled_model.py.
k = 0 is plain encode -> decode, the decoder's ceiling; k = steps is close to full generation.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/probe_sampler_endings.py --ks 0,1,3,6,10
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import shapes_world as W  # noqa: E402

from bench.bundled_model import load_defaults, load_pipeline  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "resources/models/latentgraph-shapes"))
    ap.add_argument("--ks", default="0,1,3,6,10", help="comma-separated numbers of final steps to run")
    ap.add_argument("--per-template", type=int, default=50)
    ap.add_argument("--prompt-seed", type=int, default=2024)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    import torch
    from diffusers import StableDiffusionImg2ImgPipeline

    torch.set_num_threads(args.threads)
    pipe = load_pipeline(Path(args.model), StableDiffusionImg2ImgPipeline)
    d = load_defaults(Path(args.model))
    scenes = W.eval_scenes(random.Random(args.prompt_seed), args.per_template)
    results = {}
    for k in [int(v) for v in args.ks.split(",")]:
        per_shape: dict[str, list[bool]] = {}
        for i, sc in enumerate(scenes):
            img = W.render(sc)
            if k == 0:  # the pipeline's own image conversions, without any denoising step
                with torch.no_grad():
                    x = pipe.image_processor.preprocess(img)
                    rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mean).sample
                out = pipe.image_processor.postprocess(rec, output_type="pil")[0]
            else:  # img2img runs int(steps * strength) final steps; the epsilon guards the rounding
                out = pipe(sc.caption, image=img, strength=min(1.0, k / d["steps"] + 1e-6),
                           num_inference_steps=d["steps"], guidance_scale=d["cfg"],
                           generator=torch.Generator().manual_seed(i)).images[0]
            for obj, right in zip(sc.objects, W.score_image(sc, out)["shape"]):
                per_shape.setdefault(obj.shape, []).append(right)
        every = [v for vs in per_shape.values() for v in vs]
        results[k] = {"shape": round(float(np.mean(every)), 4),
                      **{s: round(float(np.mean(v)), 4) for s, v in per_shape.items()}}
        print(f"k={k}: {results[k]}", file=sys.stderr, flush=True)
    print(json.dumps({"model": args.model, "cfg": d["cfg"], "steps": d["steps"], "shape_after_last_k_steps": results}))


if __name__ == "__main__":
    main()
