"""The diffusion socket types and their colours (ComfyUI-like palette users know)."""

from graphs.registry import Registry, SocketType

DIFFUSION_SOCKETS = (
    SocketType("MODEL", "#b39ddb", "a denoising UNet with its scheduler config"),
    SocketType("CLIP", "#ffd54f", "tokenizer + text encoder"),
    SocketType("VAE", "#ef5350", "the autoencoder between pixels and latents"),
    SocketType("CONDITIONING", "#ffa726", "encoded prompt embeddings"),
    SocketType("LATENT", "#f48fb1", "latent images"),
    SocketType("LATENT_TRACE", "#ce93d8", "every intermediate latent and x0 prediction of a run"),
    SocketType("NOISE", "#90a4ae", "a seeded noise source"),
    SocketType("SCHEDULER", "#4db6ac", "a sampler/scheduler recipe"),
    SocketType("IMAGE", "#64b5f6", "RGB images"),
    # [batch, height, width] float in 0..1 at the image's size; 1 (white in a mask file) = the
    # area to repaint, as diffusers' inpaint pipelines and ComfyUI read masks.
    SocketType("MASK", "#81c784", "where to repaint: white (1) repaints, black (0) keeps"),
    SocketType("CONTROL_NET", "#00897b", "a ControlNet with the model family it was trained for"),
    SocketType("UPSCALE_MODEL", "#7986cb", "an image upscaler network (ESRGAN, SwinIR, ...)"),
)


def register_sockets(registry: Registry) -> None:
    for socket_type in DIFFUSION_SOCKETS:
        if socket_type.name not in registry.sockets:
            registry.sockets.register(socket_type)
