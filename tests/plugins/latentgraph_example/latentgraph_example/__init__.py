"""An example LatentGraph plugin: one node type that inverts an image.

LatentGraph finds it through the entry point in pyproject.toml and registers NODE_TYPES.
Type ids are namespaced by the package: "latentgraph_example.invert".
"""

from __future__ import annotations

from typing import Any

from graphs.registry import NodeType, Param, Socket


def run_invert(ctx, image, strength: float) -> dict[str, Any]:
    """``image`` is an IMAGE: a float tensor [batch, 3, height, width] in 0..1."""
    ctx.check_cancel()
    return {"image": image + strength * (1 - 2 * image)}


INVERT = NodeType(
    "latentgraph_example.invert", "Invert image", "image", run_invert,
    inputs=(Socket("image", "IMAGE"),),
    outputs=(Socket("image", "IMAGE"),),
    params=(Param("strength", "float", 1.0, min=0.0, max=1.0, step=0.05,
                  report="invert_strength", tooltip="0: unchanged, 1: fully inverted"),),
    description="Inverts the colours of an image (an example plugin node).",
)

NODE_TYPES = (INVERT,)
