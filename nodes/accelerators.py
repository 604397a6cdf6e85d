"""The speed paths a loaded model can run on (Load model's ``compile`` param), one runner
interface for all of them.

Each accelerator has a stable id (what workflow files store) and a label (what the editor
shows). Loading asks the chosen one to ``check`` its settings before any weight is read,
``prepare`` the pipeline (compile, AOT packages) before the socket values are built, and
``attach`` its CUDA graphs to the socket values afterwards. Every family goes through the same
three steps; the UNet's call signature (``values.unet_forward``) carries SDXL's added
conditioning, so the graphed and AOT paths serve SDXL as they serve SD 1.x/2.x.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .compile_cache import use_compile_cache_dir
from .cuda_graphs import GraphedCallable
from .model_sources import ModelLoadError
from .values import encoder_forward, unet_forward

# The blocks that repeat, with few distinct shapes, in SD UNets (diffusers' `_repeated_blocks`);
# everything between them, and the VAE decoder, stays eager. ResnetBlock2D comes in many more
# shapes, each traced on its own, which made the warm start slower (docs/benchmarks.md).
REGIONAL_BLOCKS = ("BasicTransformerBlock",)


@dataclass(frozen=True)
class Accelerator:
    id: str  # stored in workflow files: never rename
    label: str  # shown in the editor: free to change
    graph_encoders: bool = False  # replay the text encoders from CUDA graphs
    graph_unet: bool = False  # replay the UNet from our own CUDA graph
    compile: str = ""  # "", "whole" (UNet + VAE decoder), "regional" (the UNet's repeated blocks)
    reduce_overhead: bool = False  # torch.compile's own CUDA graphs ("reduce-overhead")
    aot: bool = False  # AOTInductor packages kept on disk (nodes/aot.py)

    def check(self, device: str, offload: str) -> None:
        """Refuse settings this path cannot run with, before any weight is read."""
        if self.aot and offload != "none":
            raise ModelLoadError(f"'{self.label}' reads the weights where they were loaded and "
                                 "cannot follow CPU offload; set offload to 'none' or pick "
                                 "another compile mode")

    def prepare(self, pipe) -> Any:
        """Compile or AOT-wrap the pipeline's modules in place; returns the AOT UNet, if any."""
        unet_aot = None
        if self.aot:
            from .aot import AotCompiled, aot_decoder, unet_forward_module

            use_compile_cache_dir()
            fuse_qkv(pipe)
            unet_aot = AotCompiled(unet_forward_module(pipe.unet), "unet", title="UNet")
            pipe.vae.decoder = aot_decoder(pipe.vae.decoder)
        if self.compile:
            compile_pipeline(pipe, self.reduce_overhead, regional=self.compile == "regional")
        return unet_aot

    def attach(self, unet, clip, device: str, offload: str, unet_aot: Any) -> None:
        """Give the socket values their fast calls. Offloading moves weights between devices,
        which a captured graph cannot follow, so CUDA graphs need the weights to stay put."""
        if self.graph_encoders and device.startswith("cuda") and offload == "none":
            for encoder in clip.encoders:
                encoder.graphed = graph_text_encoder(encoder.encoder, encoder.spec.penultimate)
            if self.graph_unet and not self.aot:
                unet.graphed = graph_unet(unet.unet)
        if unet_aot is not None:
            # One package for every timestep dtype (schedulers give float or int timesteps; the
            # UNet embeds both the same way). GraphedCallable passes through on the CPU.
            unet.graphed = GraphedCallable(
                lambda sample, timestep, *rest: unet_aot(sample, timestep.float(), *rest), "UNet")
            unet.aot = unet_aot


OFF = Accelerator("off", "off")
CUDA_GRAPHS = Accelerator("cuda_graphs", "CUDA graphs", graph_encoders=True, graph_unet=True)
COMPILE = Accelerator("compile", "compile", graph_encoders=True, compile="whole")
COMPILE_GRAPHS = Accelerator("compile_cuda_graphs", "compile + CUDA graphs", graph_encoders=True,
                             compile="whole", reduce_overhead=True)
REGIONAL = Accelerator("regional_cuda_graphs", "regional compile + CUDA graphs", graph_encoders=True,
                       graph_unet=True, compile="regional")
AOT = Accelerator("aot_cuda_graphs", "AOT compile + CUDA graphs", graph_encoders=True, graph_unet=True,
                  aot=True)
ACCELERATORS = {a.id: a for a in (OFF, CUDA_GRAPHS, COMPILE, COMPILE_GRAPHS, REGIONAL, AOT)}
COMPILE_MODES = tuple(ACCELERATORS)
COMPILE_LABELS = tuple(a.label for a in ACCELERATORS.values())
# A label names its mode too where code passes one (scripts, benches); old files are read by Load
# model's own frozen table (nodes/diffusion.py), which a renamed label cannot break.
ID_FOR_LABEL = {a.label: a.id for a in ACCELERATORS.values()}


def accelerator(name: str) -> Accelerator:
    """The accelerator with this id (or, for callers from before the ids, this label)."""
    found = ACCELERATORS.get(name) or ACCELERATORS.get(ID_FOR_LABEL.get(name, ""))
    if found is None:
        raise ModelLoadError(f"unknown compile mode {name!r}; expected one of {', '.join(COMPILE_MODES)}")
    return found


def fuse_qkv(pipe) -> None:
    """Fuse the attention QKV projections once (changes rounding only, not the result)."""
    if getattr(pipe, "_latentgraph_qkv_fused", False):
        return
    try:
        pipe.fuse_qkv_projections()
    except Exception:  # older/odd attention processors: stay unfused
        return
    pipe._latentgraph_qkv_fused = True


def compile_pipeline(pipe, reduce_overhead: bool = False, regional: bool = False) -> None:
    """torch.compile the UNet and the VAE decoder (fused QKV, full graphs, on-disk cache).

    ``regional``: compile each of the UNet's repeated blocks (``REGIONAL_BLOCKS``) instead,
    with static shapes; the VAE decoder stays eager."""
    import torch

    use_compile_cache_dir()
    import torch._inductor.config as inductor_config

    inductor_config.fx_graph_cache = True
    fuse_qkv(pipe)
    if regional:
        compile_blocks(pipe.unet)
        return
    mode = "reduce-overhead" if reduce_overhead else None
    pipe.unet = torch.compile(pipe.unet, mode=mode, fullgraph=True)
    pipe.vae.decoder = torch.compile(pipe.vae.decoder, mode=mode, fullgraph=True)


def compile_blocks(model, names: tuple[str, ...] = REGIONAL_BLOCKS) -> int:
    """Regional compilation: torch.compile every submodule whose class is in ``names`` (static
    shapes, full graphs); returns how many were compiled."""
    import torch._dynamo.config as dynamo_config

    # One compiled variant per block shape (SD1.5 transformer blocks: 4 per image size); past
    # the default limit of 8 (a third size) Dynamo would quietly run the blocks eagerly.
    dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
    count = 0
    for module in model.modules():
        if type(module).__name__ in names:
            module.compile(fullgraph=True, dynamic=False)
            count += 1
    return count


def graph_unet(unet) -> GraphedCallable:
    return GraphedCallable(lambda *tensors: unet_forward(unet, *tensors), "UNet")


def graph_text_encoder(encoder, penultimate: bool = False) -> GraphedCallable:
    return GraphedCallable(lambda input_ids: encoder_forward(encoder, penultimate, input_ids), "text encoder")
