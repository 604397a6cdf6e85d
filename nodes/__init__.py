"""The diffusion node library. Importing it registers every node type into
``graphs.default_registry()``; torch and diffusers load only when a node runs."""

from __future__ import annotations

from graphs.registry import Registry, default_registry

from . import (
    conditioning_ops,
    controlnet,
    diffusion,
    image_ops,
    images,
    inpaint_nodes,
    inspect,
    lora,
    masks,
    primitives,
    upscale,
    upscale_model,
    vae_loader,
)
from .sockets import register_sockets

ALL_NODE_TYPES = (*diffusion.NODE_TYPES, *vae_loader.NODE_TYPES, *lora.NODE_TYPES, *controlnet.NODE_TYPES,
                  *conditioning_ops.NODE_TYPES,
                  *inpaint_nodes.NODE_TYPES, *images.NODE_TYPES,
                  *upscale.NODE_TYPES, *upscale_model.NODE_TYPES, *masks.NODE_TYPES, *image_ops.NODE_TYPES,
                  *inspect.NODE_TYPES,
                  *primitives.NODE_TYPES)


def register(registry: Registry) -> Registry:
    """Add the diffusion socket and node types to ``registry``."""
    register_sockets(registry)
    for node_type in ALL_NODE_TYPES:
        if node_type.type_id not in registry.nodes:
            registry.nodes.register(node_type)
    return registry


def load_plugins() -> list:
    """Load the installed node plugins (entry-point group ``latentgraph.nodes``) into
    ``graphs.default_registry()``, once; a plugin that fails is skipped and reported in
    ``default_registry().plugins``. Called at start-up by the CLI and the editor."""
    from graphs.plugins import load_plugins as load

    return load(default_registry())


def release_models() -> None:
    """Free every loaded model (called by the executor when memory runs out)."""
    from .models import MODEL_CACHE
    from .upscale_model import UPSCALE_MODELS

    MODEL_CACHE.clear()
    UPSCALE_MODELS.clear()


register(default_registry())
