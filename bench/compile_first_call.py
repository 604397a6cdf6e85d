"""First-call time of a compiled SD1.5-structured UNet in a fresh process: torch.compile of the
whole model or regional (only the repeated blocks), or an AOTInductor package (``--what aot``,
the AOT compile mode), with the caches cold or warm.

Run it twice per mode (the first run fills the cache, the second is what a relaunch sees):

    python bench/compile_first_call.py --what transformer --cache-dir /tmp/cc   # cold
    python bench/compile_first_call.py --what transformer --cache-dir /tmp/cc   # warm

``--narrow`` (the default on the CPU) keeps SD1.5's blocks and layers with 1/10 of the channels,
so the CPU can compile it; Dynamo's tracing time depends on the blocks, not their width.
Prints a JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

WHAT = {"whole": None, "transformer": ("BasicTransformerBlock",),
        "transformer+resnet": ("BasicTransformerBlock", "ResnetBlock2D"), "aot": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--what", choices=sorted(WHAT), default="transformer")
    parser.add_argument("--cache-dir", required=True, help="inductor cache (TORCHINDUCTOR_CACHE_DIR)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--narrow", action=argparse.BooleanOptionalAction, default=None)
    args = parser.parse_args()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = args.cache_dir
    start = time.perf_counter()
    import torch
    import torch._inductor.config as inductor_config
    from diffusers import UNet2DConditionModel
    from gpu_txt2img import SD15

    from nodes.accelerators import compile_blocks
    from nodes.aot import AotCompiled, unet_forward_module

    imported = time.perf_counter() - start
    inductor_config.fx_graph_cache = True
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    narrow = device == "cpu" if args.narrow is None else args.narrow
    config = dict(SD15["unet"])
    if narrow:
        config.update(block_out_channels=(32, 64, 128, 128), cross_attention_dim=32, norm_num_groups=8)
    dtype = torch.float16 if device == "cuda" else torch.float32
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config).eval().requires_grad_(False).to(device, dtype)
    blocks = WHAT[args.what]
    if args.what == "aot":
        unet.fuse_qkv_projections()  # as the AOT mode does
        runner = AotCompiled(unet_forward_module(unet), "unet", Path(args.cache_dir) / "aot")
        compiled = 1
    elif blocks is None:
        runner = unet_forward_module(torch.compile(unet, fullgraph=True))
        compiled = 1
    else:
        compiled = compile_blocks(unet, blocks)
        runner = unet_forward_module(unet)
    size = 16 if narrow else 64
    sample = torch.randn(2, 4, size, size, device=device, dtype=dtype)
    embeds = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    timestep = torch.tensor(500.0, device=device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.inference_mode():
        t0 = time.perf_counter()
        runner(sample, timestep, embeds)
        sync()
        first = time.perf_counter() - t0
        t1 = time.perf_counter()
        for _ in range(5):
            runner(sample, timestep, embeds)
        sync()
        per_call = (time.perf_counter() - t1) / 5
    print(json.dumps({"what": args.what, "device": device, "narrow": narrow, "compiled_modules": compiled,
                      "import_s": round(imported, 2),
                      "first_call_s": round(first, 2), "per_call_ms": round(per_call * 1e3, 2)}))


if __name__ == "__main__":
    main()
