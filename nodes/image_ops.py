"""Image operations: Pad image (for outpainting), Canny, Invert image and Grayscale.

IMAGE is float32 ``[batch, 3, height, width]`` in 0..1, MASK float32 ``[batch, height, width]``
with 1 the area to repaint (nodes/sockets.py). Canny uses OpenCV's ``cv2.Canny`` (the package
``opencv-python-headless``, imported when the node runs): the standard implementation, the one
the ControlNet authors' canny annotator calls, so a canny map here is the one the canny ControlNet
models were trained on; headless, because OpenCV's GUI build brings Qt libraries of its own that
clash with PySide6.
"""

from __future__ import annotations

from typing import Any

from graphs.registry import NodeType, Param, Socket

from .images import MAX_IMAGE_SIDE
from .masks import check_image, luminance

MAX_PAD = 4096
PAD_GREY = 0.5  # what the padded area is filled with before it is repainted (ComfyUI's too)


def outpaint_mask(height: int, width: int, left: int, top: int, right: int, bottom: int,
                  feathering: int):
    """The mask of a ``height`` x ``width`` image padded by left/top/right/bottom: 1 over the
    padding; inside, 0 except within ``feathering`` px of a padded side, where it ramps up to the
    edge as ((feathering - d) / feathering)² for a distance d to the nearest padded side.

    The values are ComfyUI's ImagePadForOutpaint's, so a workflow makes the same mask in both:
    d counts rows from 0 at the top (and columns from 0 at the left) but from 1 at the bottom
    (right), so the outermost row by a top pad is 1 and by a bottom pad ((f - 1) / f)²; and
    there is no ramp at all unless the image is more than twice ``feathering`` on both sides.
    """
    import torch

    mask = torch.ones((height + top + bottom, width + left + right), dtype=torch.float32)
    inside = torch.zeros((height, width), dtype=torch.float32)
    if feathering > 0 and 2 * feathering < height and 2 * feathering < width:
        far_rows, far_cols = torch.full((height,), float(height)), torch.full((width,), float(width))
        rows, cols = torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32)
        row_d = torch.minimum(rows if top else far_rows, height - rows if bottom else far_rows)
        col_d = torch.minimum(cols if left else far_cols, width - cols if right else far_cols)
        d = torch.minimum(row_d[:, None], col_d[None, :])
        ramp = ((feathering - d) / feathering).clamp(min=0)
        inside = ramp * ramp
    mask[top:top + height, left:left + width] = inside
    return mask


def run_pad_for_outpaint(ctx, image, left: int, top: int, right: int, bottom: int,
                         feathering: int) -> dict[str, Any]:
    import torch

    image = check_image(image)
    batch, _, height, width = image.shape
    new_h, new_w = height + top + bottom, width + left + right
    if new_h > MAX_IMAGE_SIDE or new_w > MAX_IMAGE_SIDE:
        raise ValueError(f"the padded image would be {new_w}x{new_h}; the largest this app takes is "
                         f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} (make left/top/right/bottom smaller)")
    padded = torch.full((batch, 3, new_h, new_w), PAD_GREY, dtype=torch.float32, device=image.device)
    padded[:, :, top:top + height, left:left + width] = image
    if feathering and (left or top or right or bottom) and not (2 * feathering < height and 2 * feathering < width):
        ctx.warn(f"feathering {feathering} px is not less than half the image ({width}x{height}): "
                 "no feathering (as in ComfyUI)")
    mask = outpaint_mask(height, width, left, top, right, bottom, feathering)
    return {"image": padded, "mask": mask.to(image.device).unsqueeze(0).repeat(batch, 1, 1)}


def canny_edges(image, low_threshold: int, high_threshold: int):
    """White-on-black edge maps [B, 3, H, W]: each image rounded to 8 bits, made grey with
    OpenCV's RGB2GRAY (BT.601 luma, rounded), then ``cv2.Canny`` (3x3 Sobel, L1 gradient)."""
    import numpy as np
    import torch

    try:
        import cv2
    except ImportError:
        raise RuntimeError("the Canny node needs OpenCV: pip install opencv-python-headless") from None
    pixels = image.detach().cpu().mul(255).round().clamp(0, 255).to(torch.uint8)
    maps = []
    for picture in pixels.permute(0, 2, 3, 1).numpy():
        grey = cv2.cvtColor(np.ascontiguousarray(picture), cv2.COLOR_RGB2GRAY)
        maps.append(torch.from_numpy(cv2.Canny(grey, low_threshold, high_threshold)))
    edges = torch.stack(maps).float().div(255)
    return edges.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def run_canny(ctx, image, low_threshold: int, high_threshold: int) -> dict[str, Any]:
    if low_threshold > high_threshold:
        raise ValueError(f"low_threshold ({low_threshold}) is above high_threshold ({high_threshold}); "
                         "make it lower or equal")
    return {"image": canny_edges(check_image(image), low_threshold, high_threshold)}


def run_invert_image(ctx, image) -> dict[str, Any]:
    return {"image": 1.0 - check_image(image)}


def run_grayscale(ctx, image) -> dict[str, Any]:
    grey = luminance(check_image(image)).clamp(0, 1)
    return {"image": grey.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()}


def _side(name: str) -> Param:
    return Param(name, "int", 0, min=0, max=MAX_PAD, step=8, tooltip=f"pixels added on the {name}")


PAD_FOR_OUTPAINT = NodeType(
    "image.pad_for_outpaint", "Pad image", "image", run_pad_for_outpaint,
    inputs=(Socket("image", "IMAGE"),), outputs=(Socket("image", "IMAGE"), Socket("mask", "MASK")),
    params=(*(_side(name) for name in ("left", "top", "right", "bottom")),
            Param("feathering", "int", 40, min=0, max=MAX_PAD, step=1,
                  tooltip="pixels of the original image, along each padded side, that are partly "
                          "repainted too, so the new area blends in")),
    aliases=("ImagePadForOutpaint", "outpaint", "extend image", "expand canvas"),
    description="Adds grey borders to an image and a mask of them (feathered into the image), "
                "for outpainting.",
)
CANNY = NodeType(
    "image.canny", "Canny", "image", run_canny,
    inputs=(Socket("image", "IMAGE"),), outputs=(Socket("image", "IMAGE"),),
    params=(Param("low_threshold", "int", 100, min=0, max=255, step=1,
                  tooltip="gradients below this are never edges; at most high_threshold"),
            Param("high_threshold", "int", 200, min=0, max=255, step=1,
                  tooltip="gradients above this are always edges (weaker ones only where they "
                          "join a strong edge)")),
    aliases=("Canny", "edge detection", "controlnet preprocessor"),
    description="Finds edges (OpenCV's Canny), white on black, for a canny ControlNet; depth and pose "
                "maps need their own estimator models: bring a preprocessed image (Load image) instead.",
)
INVERT_IMAGE = NodeType(
    "image.invert", "Invert image", "image", run_invert_image,
    inputs=(Socket("image", "IMAGE"),), outputs=(Socket("image", "IMAGE"),),
    aliases=("ImageInvert", "negative"),
    description="Inverts an image's colours (1 - value), e.g. black lines on white into white on black.",
)
GRAYSCALE = NodeType(
    "image.grayscale", "Grayscale", "image", run_grayscale,
    inputs=(Socket("image", "IMAGE"),), outputs=(Socket("image", "IMAGE"),),
    aliases=("greyscale", "desaturate", "black and white", "grayscale to RGB"),
    description="Makes an image grey (ITU-R 601 luma, as PIL's 'L'), kept as 3 equal channels: an "
                "IMAGE is always RGB, so no separate grey-to-RGB node is needed.",
)

NODE_TYPES = (PAD_FOR_OUTPAINT, CANNY, INVERT_IMAGE, GRAYSCALE)
