"""Upscale with model: seconds per image through the graph (tiled, blended) against the network
run directly on the whole image, for an ESRGAN of random weights (by default the real size:
RRDBNet, 64 filters, 23 blocks, x4) on a 256² image; and with --x8-1024, the peak memory of an
8x upscale of a 1024² image (an 8192² result) with a tiny Real-ESRGAN compact x8.

    OMP_NUM_THREADS=1 python bench/upscale_model.py [--repeats 2] [--size 256] [--tile 0] [--overlap 32]
                                                    [--filters 64] [--blocks 23] [--scale 4] [--device cpu|cuda]
                                                    [--x8-1024]

Last line: JSON (seconds are medians; peak_rss_gib is the process's peak resident memory).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from common import median_time  # noqa: E402

import nodes  # noqa: E402
from graphs import Executor, Graph, NodeType, Socket  # noqa: E402
from graphs.registry import base_registry  # noqa: E402


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # kB on Linux


def build_graph(model_file: Path, image, device: str, tile: int, overlap: int) -> tuple[Graph, str, str]:
    registry = nodes.register(base_registry())
    registry.nodes.register(NodeType("bench.image", "Image", "bench", lambda ctx: {"image": image},
                                     outputs=(Socket("image", "IMAGE"),)))
    graph = Graph(registry)
    source = graph.add_node(graph.create_node("bench.image"))
    loader = graph.add_node(graph.create_node("image.load_upscale_model",
                                              params={"model": str(model_file), "device": device}))
    node = graph.add_node(graph.create_node("image.upscale_with_model", params={"tile": tile, "overlap": overlap}))
    graph.connect(source.id, "image", node.id, "image")
    graph.connect(loader.id, "upscale_model", node.id, "upscale_model")
    return graph, loader.id, node.id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--tile", type=int, default=0, help="0: automatic")
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=23)
    parser.add_argument("--scale", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--x8-1024", action="store_true", help="an 8x upscale of 1024² with a tiny model: memory")
    args = parser.parse_args()

    import torch
    from safetensors.torch import save_file

    from nodes.spandrel_import import import_spandrel
    import_spandrel()
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    if args.x8_1024:
        network, size, label = Compact(num_feat=8, num_conv=2, upscale=8), 1024, "RealESRGAN Compact x8 (8 feat, 2 conv)"
    else:
        network, size = ESRGAN(num_filters=args.filters, num_blocks=args.blocks, scale=args.scale), args.size
        label = f"ESRGAN x{args.scale} ({args.filters} filters, {args.blocks} blocks)"
    image = torch.rand(1, 3, size, size)
    with tempfile.TemporaryDirectory() as work:
        model_file = Path(work) / "model.safetensors"
        save_file({k: v.contiguous() for k, v in network.state_dict().items()}, str(model_file))
        del network
        graph, loader, node = build_graph(model_file, image, args.device, args.tile, args.overlap)
        executor, statuses = Executor(), []
        executor.events.subscribe(lambda e: statuses.append(e.message) if type(e).__name__ == "NodeStatus" else None)
        rss_before = peak_rss_gib()

        def run():
            executor.clear_cache()  # the upscale runs again; the model stays loaded (UPSCALE_MODELS)
            result = executor.run(graph, targets=[node])
            assert result.status == "finished", result.error and result.error.message
            return result

        start = time.perf_counter()
        model = run().outputs[loader]["upscale_model"]
        first = time.perf_counter() - start
        report = {"model": label, "device": args.device, "image": f"{size}x{size}", "tile": args.tile,
                  "overlap": args.overlap, "status": statuses[-1], "first_run_s": round(first, 3),
                  "peak_rss_gib_before": round(rss_before, 3)}
        if args.x8_1024:
            report["peak_rss_gib"] = round(peak_rss_gib(), 3)
        else:
            report["node_s"] = round(median_time(run, args.repeats), 3)
            direct = image.to(model.device, model.dtype)
            report["direct_untiled_s"] = round(median_time(lambda: model.descriptor(direct), args.repeats), 3)
            report["peak_rss_gib"] = round(peak_rss_gib(), 3)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
