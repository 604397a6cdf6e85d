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
    return _encoded_start(g, ids, "sd.vae_encode", {}, strength)


def _encoded_start(g: Graph, ids: dict[str, str], encode_type: str, params: dict, strength: float,
                   inputs: tuple[str, ...] = ("image",)) -> tuple[Graph, dict[str, str]]:
    """The image node's outputs through a VAE encode node into UNet denoise, in place of Empty latent."""
    ids["encode"] = g.add_node(g.create_node(encode_type, title="encode", params=params)).id
    g.connect(ids["load"], "vae", ids["encode"], "vae")
    for name in inputs:
        g.connect(ids["image"], name, ids["encode"], name)
    g.connect(ids["encode"], "latent", ids["unet"], "latent")
    g.set_param(ids["unet"], "denoise", strength)
    g.remove_node(ids.pop("empty"))
    return g, ids


def add_controlnet(g: Graph, ids: dict[str, str], source: str, image_path: str, strength: float = 1.0,
                   start: float = 0.0, end: float = 1.0, key: str = "control") -> dict[str, str]:
    """Put a Load ControlNet + hint image + Apply ControlNet between the prompts and UNet denoise of a
    graph from :func:`txt2img_graph` (again for multi-ControlNet: each one follows the last)."""
    positive, negative = g.inbound(ids["unet"], "positive"), g.inbound(ids["unet"], "negative")
    ids[f"{key}_net"] = g.add_node(g.create_node("sd.load_controlnet", title=f"{key}_net",
                                                 params={"source": source})).id
    ids[f"{key}_image"] = g.add_node(g.create_node("image.load", title=f"{key}_image",
                                                   params={"path": image_path})).id
    ids[key] = g.add_node(g.create_node("sd.apply_controlnet", title=key, params={
        "strength": strength, "start_percent": start, "end_percent": end})).id
    g.connect(ids["load"], "model", ids[f"{key}_net"], "model")
    g.connect(positive.src_node, positive.src_output, ids[key], "positive")
    g.connect(negative.src_node, negative.src_output, ids[key], "negative")
    g.connect(ids[f"{key}_net"], "control_net", ids[key], "control_net")
    g.connect(ids[f"{key}_image"], "image", ids[key], "image")
    g.connect(ids[key], "positive", ids["unet"], "positive")
    g.connect(ids[key], "negative", ids["unet"], "negative")
    return ids


def inpaint_graph(source: str, image_path: str, mask_path: str, strength: float = 1.0, grow_mask_by: int = 0,
                  **kwargs) -> tuple[Graph, dict[str, str]]:
    """Inpainting: the image and its painted mask through VAE encode (for inpaint) into UNet denoise."""
    g, ids = txt2img_graph(source, **kwargs)
    ids["image"] = g.add_node(g.create_node("image.load", title="image", params={
        "path": image_path, "mask": mask_path})).id
    return _encoded_start(g, ids, "sd.vae_encode_inpaint", {"grow_mask_by": grow_mask_by}, strength,
                          ("image", "mask"))


def add_lora(g: Graph, ids: dict[str, str], file: str, key: str = "lora") -> dict[str, str]:
    """Put a Load LoRA between Load model and its users (UNet denoise and both prompts) of a graph
    from :func:`txt2img_graph`."""
    ids[key] = g.add_node(g.create_node("sd.load_lora", title=key, params={"file": file})).id
    g.connect(ids["load"], "model", ids[key], "model")
    g.connect(ids["load"], "clip", ids[key], "clip")
    g.connect(ids[key], "model", ids["unet"], "model")
    for encode in ("positive", "negative"):
        g.connect(ids[key], "clip", ids[encode], "clip")
    return ids


def base_refiner_graph(base: str, refiner: str, prompt: str = "a red circle", negative: str = "",
                       seed: int = 42, scheduler: str = "Euler", steps: int = 30, split: int = 25,
                       cfg: float = 7.5, size: int = 1024) -> tuple[Graph, dict[str, str]]:
    """SDXL base for the first ``split`` steps, then the refiner continues its latent (add noise
    off), each model with its own Text encodes: the chain sdxl_base_refiner.json holds, and what the
    pipelines' ``denoising_end``/``denoising_start`` do."""
    g = Graph()
    n: dict[str, str] = {}

    def add(key, type_id, **params):
        n[key] = g.add_node(g.create_node(type_id, title=key, params=params)).id

    add("base", "sd.load_model", source=base)
    add("refiner", "sd.load_model", source=refiner)
    for model in ("base", "refiner"):
        add(f"{model}+", "sd.text_encode", text=prompt)
        add(f"{model}-", "sd.text_encode", text=negative)
        g.connect(n[model], "clip", n[f"{model}+"], "clip")
        g.connect(n[model], "clip", n[f"{model}-"], "clip")
    add("empty", "sd.empty_latent", width=size, height=size)
    add("noise", "sd.noise", seed=seed)
    add("scheduler", "sd.scheduler", name=scheduler, steps=steps)
    add("base denoise", "sd.unet_denoise", cfg=cfg, end_step=split)
    add("refiner denoise", "sd.unet_denoise", cfg=cfg, start_step=split, add_noise=False)
    add("decode", "sd.vae_decode")
    add("preview", "image.preview")
    for model in ("base", "refiner"):
        denoise = n[f"{model} denoise"]
        g.connect(n[model], "model", denoise, "model")
        g.connect(n[f"{model}+"], "conditioning", denoise, "positive")
        g.connect(n[f"{model}-"], "conditioning", denoise, "negative")
        g.connect(n["noise"], "noise", denoise, "noise")
        g.connect(n["scheduler"], "scheduler", denoise, "scheduler")
    g.connect(n["base"], "vae", n["empty"], "vae")
    g.connect(n["empty"], "latent", n["base denoise"], "latent")
    g.connect(n["base denoise"], "latent", n["refiner denoise"], "latent")
    g.connect(n["refiner"], "vae", n["decode"], "vae")
    g.connect(n["refiner denoise"], "latent", n["decode"], "latent")
    g.connect(n["decode"], "image", n["preview"], "image")
    return g, n
