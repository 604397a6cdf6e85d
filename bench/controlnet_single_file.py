"""A real-size ControlNet single file, read as users download them: an SD 1.x (or SDXL) ControlNet
with random weights written in the original layout (``control_model.input_hint_block...``, as
``control_v11p_sd15_canny`` converted to .safetensors), then loaded by Load ControlNet's reader
(family from the header, configuration counted from the file, diffusers' converter). Checks that
every weight arrives where diffusers' own model has it, and times the load.

    OMP_NUM_THREADS=1 python bench/controlnet_single_file.py [--family sd1|sdxl_base]

Last line: JSON (seconds, file size, whether every weight matched).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import nodes  # noqa: E402,F401


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--family", default="sd1", choices=("sd1", "sdxl_base"))
    args = parser.parse_args()
    import inspect

    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file

    from nodes.controlnet import load_controlnet
    from nodes.families.catalog import FAMILIES
    from nodes.ldm_export import controlnet_to_ldm

    family = FAMILIES[args.family]
    unet_config = dict(UNet2DConditionModel.load_config(family.configs / "unet"))
    accepted = set(inspect.signature(ControlNetModel.__init__).parameters)
    torch.manual_seed(0)
    reference = ControlNetModel.from_config({k: v for k, v in unet_config.items() if k in accepted}).to(torch.float16)
    with torch.no_grad():  # the zero convolutions too: every weight must land somewhere visible
        for parameter in reference.parameters():
            parameter.normal_(0, 0.02)
    with tempfile.TemporaryDirectory() as work:
        file = Path(work) / f"control_{args.family}_canny.safetensors"
        save_file(controlnet_to_ldm(reference.state_dict(), unet_config["layers_per_block"]), str(file))
        start = time.perf_counter()
        net, title = load_controlnet(file, "cpu", torch.float16)
        seconds = time.perf_counter() - start
        ours, theirs = net.state_dict(), reference.state_dict()
        matched = ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in theirs)
        result = {"family": args.family, "title": title, "file_gb": round(file.stat().st_size / 1e9, 3),
                  "load_s": round(seconds, 2), "weights": len(theirs), "all_weights_match": matched}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
