"""The cost of switching or re-weighting a LoRA: time to the next image, against a re-run that
changes only the seed (the LoRA stays merged), on the bundled model and on a tiny SDXL model.

    OMP_NUM_THREADS=1 python bench/lora_switch.py [--repeats 5] [--device cpu|cuda] [--model bundled|PATH]
                                                  [--real-size sd1 sdxl_base]

Each LoRA is a random rank-4 one on every attention, proj_in and resnet conv1 layer of the UNet
and on the text encoders (nodes/tiny_loras.py). Last line: JSON, seconds per image (medians).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import median_time  # noqa: E402

import nodes  # noqa: E402,F401
from graphs import Executor  # noqa: E402
from nodes.models import MODEL_CACHE, model_settings, resolve_source  # noqa: E402
from nodes.recipes import add_lora, txt2img_graph  # noqa: E402
from nodes.tiny_loras import make_random_lora  # noqa: E402
from nodes.tiny_models import make_tiny_sdxl  # noqa: E402


def measure(folder: Path, sdxl: bool, device: str, repeats: int, work: Path) -> dict:
    settings = model_settings(folder)
    size, steps = int(settings.get("width", 32)), int(settings.get("steps", 8))
    loras = [make_random_lora(folder, work / f"{folder.name}_{i}.safetensors", i, sdxl=sdxl) for i in range(2)]
    graph, ids = txt2img_graph(str(folder), steps=steps, size=size)
    graph.set_param(ids["load"], "device", device)
    lora = add_lora(graph, ids, str(loras[0]))["lora"]
    executor = Executor()

    def run() -> None:
        result = executor.run(graph)
        assert result.status == "finished", result.error and result.error.message

    run()  # load the model, read the first LoRA
    seeds = iter(range(1, 10**6))
    strengths = iter([0.5, 1.0] * 10**5)
    files = iter(loras[::-1] * 10**5)

    def timed(change) -> float:
        """Each run also takes a new seed: nothing it makes was made before (the output cache
        would answer otherwise); the seed-only run is the baseline."""
        def step() -> None:
            change()
            graph.set_param(ids["noise"], "seed", next(seeds))
            run()
        return median_time(step, repeats)

    out = {
        "seed_only_s": timed(lambda: None),
        "strength_s": timed(lambda: graph.set_param(lora, "strength_model", next(strengths))),
        "switch_file_s": timed(lambda: graph.set_param(lora, "file", str(next(files)))),
        # with and without the LoRA, alternately
        "add_or_remove_s": timed(lambda: graph.set_flag(lora, "bypass", not graph.nodes[lora].flags["bypass"])),
    }
    # The merge itself: the UNet's weights switched between bare and patched, nothing run.
    from nodes.weight_patches import patched

    graph.set_flag(lora, "bypass", False)
    patched_unet = executor.run(graph).outputs[lora]["model"]
    assert patched_unet.patches
    sets = iter([patched_unet.patches, ()] * 10**5)

    def switch() -> None:
        with patched(patched_unet.unet, next(sets)):
            pass
    out["unet_merge_or_restore_ms"] = round(median_time(switch, repeats * 4) * 1000, 2)
    out.update(size=size, steps=steps)
    return out


def real_size_merge(family_id: str, rank: int, device: str, repeats: int, work: Path) -> dict:
    """Merging and restoring a rank-``rank`` LoRA on every attention and feed-forward layer of a
    real-size UNet (random weights, fp16 on CUDA, fp32 on the CPU)."""
    import torch
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from nodes.families.catalog import FAMILIES
    from nodes.lora import hollow_copy, read_lora
    from nodes.weight_patches import Patch, patched

    family = FAMILIES[family_id]
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(family.configs / "unet")))
    unet = unet.to(device=device, dtype=dtype).eval().requires_grad_(False)
    hollow = hollow_copy(unet)
    targets = ["to_q", "to_k", "to_v", "to_out.0", "ff.net.0.proj", "ff.net.2"]
    inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets, init_lora_weights=False),
                            hollow)
    file = work / f"{family_id}_rank{rank}.safetensors"
    StableDiffusionPipeline.save_lora_weights(str(work), weight_name=file.name, safe_serialization=True,
                                              unet_lora_layers=get_peft_model_state_dict(hollow, adapter_name="default"))
    start = time.perf_counter()
    lora = read_lora(file, unet, {}, family)
    read_s = time.perf_counter() - start
    lora.unet.to(device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    sets = iter([(Patch(lora.unet, 1.0),), ()] * 10**5)

    def switch() -> None:
        with patched(unet, next(sets)):
            pass
    return {"layers": len(lora.unet), "file_mib": round(file.stat().st_size / 2**20, 1), "read_s": round(read_s, 3),
            "merge_or_restore_ms": round(median_time(switch, repeats * 2, sync) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="bundled")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--real-size", nargs="*", default=[], metavar="FAMILY",
                        help="also merge a rank-32 LoRA into a real-size UNet of these families (sd1, sdxl_base)")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for family_id in args.real_size:
            results[f"real_size_{family_id}"] = real_size_merge(family_id, 32, args.device, args.repeats, work)
        results["bundled"] = measure(resolve_source(args.model), False, args.device, args.repeats, work)
        MODEL_CACHE.clear()
        results["tiny_sdxl"] = measure(make_tiny_sdxl(work / "tiny_sdxl"), True, args.device, args.repeats, work)
    for name, numbers in results.items():
        if "seed_only_s" not in numbers:
            print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))
            continue
        base = numbers["seed_only_s"]
        numbers.update({f"{key[:-2]}_extra_ms": round((numbers[key] - base) * 1000, 1)
                        for key in ("strength_s", "switch_file_s", "add_or_remove_s")})
        print(f"{name}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
