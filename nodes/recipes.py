"""The standard text-to-image / image-to-image graphs, built through the public graph API (for scripts,
benchmarks and tests: `txt2img_graph(source)` gives the chain the bundled workflow holds)."""

from __future__ import annotations

from graphs import Graph


def txt2img_graph(source: str, prompt: str = "a red circle", negative: str = "", seed: int = 42,
                  scheduler: str = "Euler", steps: int = 6, cfg: float = 7.5, size: int = 32,
                  batch: int = 1) -> tuple[Graph, dict[str, str]]:
    g = Graph()
    ids = {}

    def add(key, type_id, **params):
        ids[key] = g.add_node(g.create_node(type_id, title=key, params=params)).id

    add("load", "sd.load_model", source=source)
    add("positive", "sd.text_encode", text=prompt)
    add("negative", "sd.text_encode", text=negative)
    add("empty", "sd.empty_latent", width=size, height=size, batch=batch)
    add("noise", "sd.noise", seed=seed)
    add("scheduler", "sd.scheduler", name=scheduler, steps=steps)
    add("unet", "sd.unet_denoise", cfg=cfg)
    add("decode", "sd.vae_decode")
    add("preview", "image.preview")
    c = g.connect
    c(ids["load"], "clip", ids["positive"], "clip")
    c(ids["load"], "clip", ids["negative"], "clip")
    c(ids["load"], "vae", ids["empty"], "vae")
    c(ids["load"], "model", ids["unet"], "model")
    c(ids["positive"], "conditioning", ids["unet"], "positive")
    c(ids["negative"], "conditioning", ids["unet"], "negative")
    c(ids["empty"], "latent", ids["unet"], "latent")
    c(ids["noise"], "noise", ids["unet"], "noise")
    c(ids["scheduler"], "scheduler", ids["unet"], "scheduler")
    c(ids["load"], "vae", ids["decode"], "vae")
    c(ids["unet"], "latent", ids["decode"], "latent")
    c(ids["decode"], "image", ids["preview"], "image")
    return g, ids


def img2img_graph(source: str, image_path: str, strength: float = 0.6,
                  **kwargs) -> tuple[Graph, dict[str, str]]:
    g, ids = txt2img_graph(source, **kwargs)
    ids["image"] = g.add_node(g.create_node("image.load", title="image",
                                            params={"path": image_path})).id
    ids["encode"] = g.add_node(g.create_node("sd.vae_encode", title="encode")).id
    g.connect(ids["load"], "vae", ids["encode"], "vae")
    g.connect(ids["image"], "image", ids["encode"], "image")
    g.connect(ids["encode"], "latent", ids["unet"], "latent")
    g.set_param(ids["unet"], "denoise", strength)
    g.remove_node(ids.pop("empty"))
    return g, ids
