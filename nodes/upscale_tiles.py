"""Running an upscale model over an image in overlapping tiles (Upscale with model).

Each tile is run on the model's device and its result added, weighted, into one float32 output
buffer on the CPU, allocated once. Where tiles overlap, each one's weight falls linearly across
the middle half of the overlap and is zero over the outer quarter: a tile's edge pixels, which the
network saw with zero padding beside them instead of their neighbours, do not count, and the
change from one tile to the next is gradual, so no seam shows. For a network whose receptive field
reaches no further than a quarter of the overlap the result is the untiled one exactly.

The weights of a tile are a product of one ramp per axis, and every tile of a column shares its
horizontal ramp (every tile of a row its vertical one), so normalising each axis's ramps to sum to
one makes the 2-D weights sum to one everywhere: no weight map the size of the output is needed.
"""

from __future__ import annotations

import math
from typing import Any

# On the CPU: tiles of at most 512 input px and 2048 output px a side. Speed there is close to
# linear in pixels, so larger tiles would save only the overlap (under 13% at 512 px with 32 of
# overlap), while the network's activations grow with the tile: an x4 ESRGAN's 64 feature maps
# at a 512 px tile's 2048² output take 1 GiB each. Bounded tiles keep a run within a few GB, and
# let Cancel and the progress bar act between tiles every few seconds.
CPU_TILE, CPU_TILE_OUTPUT = 512, 2048
# On CUDA: half the free memory, at an estimated (generous) cost per input pixel: activations at
# the output resolution (ESRGAN keeps about 3 maps of 64 channels there) and at the input one
# (window attention of SwinIR/HAT: channels plus heads x window² per pixel). Too large a guess is
# mended by the halving on out-of-memory.
_OUT_PX_VALUES, _IN_PX_VALUES, _FREE_FRACTION = 384, 4096, 0.5
MIN_TILE = 32  # the halving on out-of-memory stops here
ALIGN = 16  # tiles start on multiples of this many input px


def tile_starts(length: int, tile: int, overlap: int) -> tuple[list[int], int]:
    """Where tiles start along an axis of ``length`` px, and the overlap they end up with: every
    ``tile - overlap`` px, rounded down to a multiple of 16 (more overlap, never less), so that
    window-attention networks (SwinIR, HAT: windows of 8 or 16 px) see the windows they would see
    untiled; the last tile is cut off at the edge (it still overlaps its neighbour fully)."""
    if length <= tile:
        return [0], 0
    stride = tile - overlap
    if stride >= 2 * ALIGN:
        stride = stride // ALIGN * ALIGN
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + stride)
    return starts, tile - stride


def axis_weights(length: int, tile: int, overlap: int, scale: int, starts: list[int]) -> list[Any]:
    """Per tile along one axis, the weight of each of its output pixels; they sum to 1 everywhere."""
    import torch

    margin = overlap // 4 * scale
    ramp = max(1, overlap - 2 * (overlap // 4)) * scale
    raw = []
    for start in starts:
        span = (min(start + tile, length) - start) * scale
        rise = ((torch.arange(span, dtype=torch.float32) + 0.5 - margin) / ramp).clamp(0, 1)
        weight = torch.ones(span)
        if overlap and start > 0:
            weight *= rise
        if overlap and start + tile < length:
            weight *= rise.flip(0)
        raw.append(weight)
    total = torch.zeros(length * scale)
    for start, weight in zip(starts, raw):
        total[start * scale:start * scale + weight.numel()] += weight
    return [weight / total[start * scale:start * scale + weight.numel()] for start, weight in zip(starts, raw)]


def auto_tile(model, width: int, height: int) -> int:
    """The tile side when none is set: from the free GPU memory on CUDA, a fixed budget on the CPU;
    the whole image for a model that tiles internally."""
    import torch

    from .spandrel_import import import_spandrel

    largest, scale = max(width, height), model.scale
    if model.descriptor.tiling == import_spandrel().ModelTiling.INTERNAL:
        return largest
    if model.device.startswith("cuda"):
        free, _ = torch.cuda.mem_get_info(torch.device(model.device))
        per_pixel = torch.finfo(model.dtype).bits // 8 * (_OUT_PX_VALUES * scale * scale + _IN_PX_VALUES)
        side = int(math.sqrt(free * _FREE_FRACTION / per_pixel)) // 64 * 64
    else:
        side = min(CPU_TILE, CPU_TILE_OUTPUT // scale) // 16 * 16
    return min(largest, max(2 * MIN_TILE, side))


def _is_oom(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, Python's MemoryError, torch's CPU allocator failure."""
    return (isinstance(exc, MemoryError) or type(exc).__name__.endswith("OutOfMemoryError")
            or (isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)))


def upscale(ctx, model, image, tile: int, overlap: int):
    """IMAGE [batch, 3, h, w] in 0..1 upscaled by ``model`` in tiles of ``tile`` px (0: automatic),
    halving the tile and starting again whenever memory runs out."""
    import torch

    image = image.detach().to("cpu", torch.float32)
    batch, _, height, width = image.shape
    scale = model.scale
    out = torch.zeros(batch, 3, height * scale, width * scale)  # the one output buffer
    side = min(tile, max(width, height)) if tile else auto_tile(model, width, height)
    while True:
        try:
            _upscale_into(ctx, model, image, out, side, overlap)
            return out
        except Exception as exc:
            if not _is_oom(exc) or side // 2 < MIN_TILE:
                raise
        # out of the except block, so the failed tile's tensors are freed before retrying
        if model.device.startswith("cuda"):
            torch.cuda.empty_cache()
        ctx.warn(f"out of memory with {side}px tiles; retrying with {side // 2}px")
        side //= 2
        out.zero_()


def _upscale_into(ctx, model, image, out, side: int, overlap: int) -> None:
    import torch

    batch, _, height, width = image.shape
    scale = model.scale
    overlap = min(overlap, side // 2)
    (xs, x_overlap), (ys, y_overlap) = tile_starts(width, side, overlap), tile_starts(height, side, overlap)
    wx, wy = axis_weights(width, side, x_overlap, scale, xs), axis_weights(height, side, y_overlap, scale, ys)
    total, done = batch * len(xs) * len(ys), 0
    ctx.status(f"{model.architecture} x{scale}, {total} tile{'s' if total != 1 else ''} of {side}px")
    ctx.progress(0, total)
    device = torch.device(model.device)
    for b in range(batch):
        for j, y in enumerate(ys):
            for i, x in enumerate(xs):
                ctx.check_cancel()
                piece = image[b:b + 1, :, y:y + side, x:x + side].to(device, model.dtype)
                result = model.descriptor(piece)[0].float().cpu()
                target = out[b, :, y * scale:y * scale + result.shape[-2], x * scale:x * scale + result.shape[-1]]
                target.addcmul_(result, torch.outer(wy[j], wx[i]))
                done += 1
                ctx.progress(done, total)
