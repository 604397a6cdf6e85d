"""Regenerate the bundled workflows in resources/workflows/ (run after changing defaults)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nodes  # noqa: E402,F401
from graphs import Graph, Link, workflow  # noqa: E402
from nodes.models import model_settings  # noqa: E402
from nodes.paths import bundled_model_dir  # noqa: E402
from nodes.schedulers import SCHEDULERS  # noqa: E402

NAMESPACE = uuid.UUID("6b1f9a52-6c1d-4e0e-9a55-0d3c2b1f0a77")


def defaults() -> dict:
    """Recommended settings stored with the bundled model (latentgraph.json)."""
    base = model_settings(bundled_model_dir())
    if not base:
        raise SystemExit(f"{bundled_model_dir()}: no latentgraph.json; train or restore the bundled model first")
    # The model folder names a diffusers class; the Scheduler node takes the UI name.
    if base["scheduler"] not in SCHEDULERS:
        base["scheduler"] = next(name for name, (cls, fixed) in SCHEDULERS.items()
                                 if cls == base["scheduler"] and not fixed)
    spacing = base.pop("timestep_spacing", None)
    if spacing and spacing != _model_spacing():
        base["spacing"] = spacing
    return base


def _model_spacing() -> str | None:
    config = bundled_model_dir() / "scheduler" / "scheduler_config.json"
    return json.loads(config.read_text()).get("timestep_spacing") if config.is_file() else None


class Builder:
    def __init__(self, name: str) -> None:
        self.graph = Graph()
        self.name = name

    def add(self, key: str, type_id: str, title: str, pos, **params):
        node_id = uuid.uuid5(NAMESPACE, f"{self.name}/{key}").hex
        return self.graph.add_node(self.graph.create_node(type_id, pos, title, params, node_id))

    def link(self, src, out: str, dst, inp: str) -> None:
        link_id = uuid.uuid5(NAMESPACE, f"{self.name}/{src.id}.{out}->{dst.id}.{inp}").hex
        self.graph.add_link(Link(link_id, src.id, out, dst.id, inp))

    def move_outputs(self, src, out: str, new_src, to_types: tuple[str, ...] = ()) -> None:
        """Whatever took ``src.out`` (of ``to_types``, if given) takes ``new_src.out`` instead."""
        g = self.graph
        for ln in [ln for ln in g.links.values() if ln.src_node == src.id and ln.src_output == out
                   and (not to_types or g.nodes[ln.dst_node].type_id in to_types)]:
            g.remove_link(ln.id)
            self.link(new_src, out, g.nodes[ln.dst_node], ln.dst_input)

    def copy_inputs(self, src, dst, names: tuple[str, ...]) -> None:
        """``dst`` takes the named inputs from where ``src`` takes them."""
        g = self.graph
        for name in names:
            feed = g.inbound(src.id, name)
            self.link(g.nodes[feed.src_node], feed.src_output, dst, name)


def sampler_chain(b: Builder, d: dict, latent_src, latent_out: str, denoise: float = 1.0):
    g = b.graph
    load = next(n for n in g.nodes.values() if n.type_id == "sd.load_model")
    pos = b.add("positive", "sd.text_encode", "Positive prompt", (380, 0), text=d["default_prompt"])
    neg = b.add("negative", "sd.text_encode", "Negative prompt", (380, 260), text=d["negative_prompt"])
    noise = b.add("noise", "sd.noise", "Noise", (380, 500), seed=42)
    sched = b.add("scheduler", "sd.scheduler", "Scheduler", (380, 640), name=d["scheduler"],
                  steps=int(d["steps"]), **({"spacing": d["spacing"]} if "spacing" in d else {}))
    unet = b.add("unet", "sd.unet_denoise", "UNet denoise", (760, 180), cfg=float(d["cfg"]),
                 denoise=denoise)
    decode = b.add("decode", "sd.vae_decode", "VAE decode", (1120, 120))
    save = b.add("save", "image.save", "Save image", (1420, 0))
    preview = b.add("preview", "image.preview", "Preview image", (1420, 380))
    inspect = b.add("inspect", "sd.latent_inspect", "Latent inspect", (1120, 560), step=-1)
    by_id = {n.title: n for n in g.nodes.values()}
    assert by_id
    b.link(load, "clip", pos, "clip")
    b.link(load, "clip", neg, "clip")
    b.link(load, "model", unet, "model")
    b.link(pos, "conditioning", unet, "positive")
    b.link(neg, "conditioning", unet, "negative")
    b.link(latent_src, latent_out, unet, "latent")
    b.link(noise, "noise", unet, "noise")
    b.link(sched, "scheduler", unet, "scheduler")
    b.link(load, "vae", decode, "vae")
    b.link(unet, "latent", decode, "latent")
    b.link(decode, "image", save, "image")
    b.link(decode, "image", preview, "image")
    b.link(unet, "trace", inspect, "trace")
    b.link(load, "vae", inspect, "vae")


def txt2img(d: dict) -> Graph:
    b = Builder("txt2img")
    load = b.add("load", "sd.load_model", "Load model", (0, 120))
    empty = b.add("empty", "sd.empty_latent", "Empty latent", (380, 830), width=int(d["width"]),
                  height=int(d["height"]))
    b.link(load, "vae", empty, "vae")
    sampler_chain(b, d, empty, "latent")
    b.graph.set_view(0.8, (760, 420))
    return b.graph


def img2img(d: dict) -> Graph:
    b = Builder("img2img")
    load = b.add("load", "sd.load_model", "Load model", (0, 120))
    image = b.add("image", "image.load", "Load image", (0, 520),
                  path="img2img_input.png")  # relative: found next to the workflow
    encode = b.add("encode", "sd.vae_encode", "VAE encode", (380, 830))
    b.link(load, "vae", encode, "vae")
    b.link(image, "image", encode, "image")
    sampler_chain(b, d, encode, "latent", denoise=0.6)
    b.graph.set_view(0.8, (760, 420))
    return b.graph


# SDXL: the pipelines' defaults (1024², 30 Euler steps, CFG 5; the refiner's 25 + 5 split).
SDXL = {"default_prompt": "a lighthouse on a cliff at dusk, dramatic sky, photograph", "negative_prompt": "",
        "scheduler": "Euler", "steps": 30, "cfg": 5.0, "width": 1024, "height": 1024}


def sdxl_txt2img() -> Graph:
    b = Builder("sdxl_txt2img")
    load = b.add("load", "sd.load_model", "SDXL base (set source)", (0, 120),
                 source="sd_xl_base_1.0.safetensors")  # relative: next to the workflow, or set a full path
    empty = b.add("empty", "sd.empty_latent", "Empty latent", (380, 830), width=SDXL["width"], height=SDXL["height"])
    b.link(load, "vae", empty, "vae")
    sampler_chain(b, SDXL, empty, "latent")
    b.graph.set_view(0.8, (760, 420))
    return b.graph


def sdxl_base_refiner(base_steps: int = 25) -> Graph:
    """The base model for the first ``base_steps`` of the schedule, the refiner for the rest (its
    UNet denoise continues the base's latent with add noise off), as the SDXL pipelines'
    denoising_end / denoising_start."""
    b = sdxl_txt2img()
    builder = Builder("sdxl_base_refiner")
    builder.graph = b
    by_key = {n.title: n for n in b.nodes.values()}
    base_unet = by_key["UNet denoise"]
    b.set_title(base_unet.id, "Base denoise")
    b.set_param(base_unet.id, "end_step", base_steps)
    refiner = builder.add("refiner", "sd.load_model", "SDXL refiner (set source)", (0, 1100),
                          source="sd_xl_refiner_1.0.safetensors")
    positive = builder.add("refiner_positive", "sd.text_encode", "Refiner positive prompt", (380, 1100),
                           text=SDXL["default_prompt"])
    negative = builder.add("refiner_negative", "sd.text_encode", "Refiner negative prompt", (380, 1360),
                           text=SDXL["negative_prompt"])
    unet = builder.add("refiner_unet", "sd.unet_denoise", "Refiner denoise", (760, 1100), cfg=SDXL["cfg"],
                       start_step=base_steps, add_noise=False)
    builder.move_outputs(base_unet, "latent", unet)
    builder.move_outputs(by_key["SDXL base (set source)"], "vae", refiner, ("sd.vae_decode", "sd.latent_inspect"))
    builder.link(refiner, "clip", positive, "clip")
    builder.link(refiner, "clip", negative, "clip")
    builder.link(refiner, "model", unet, "model")
    builder.link(positive, "conditioning", unet, "positive")
    builder.link(negative, "conditioning", unet, "negative")
    builder.link(base_unet, "latent", unet, "latent")
    builder.copy_inputs(base_unet, unet, ("noise", "scheduler"))
    builder.move_outputs(base_unet, "trace", unet)
    return b


def hires_fix(d: dict) -> Graph:
    """txt2img, the latent upscaled 2x, then a second UNet denoise at denoise 0.5 on it (a hires
    fix): the decode and the outputs take the second pass."""
    g = txt2img(d)
    builder = Builder("hires_fix")
    builder.graph = g
    by_title = {n.title: n for n in g.nodes.values()}
    first, load = by_title["UNet denoise"], by_title["Load model"]
    g.set_title(first.id, "First pass")
    upscale = builder.add("upscale", "sd.upscale_latent", "Upscale latent", (760, 720), scale_by=2.0)
    hires = builder.add("hires", "sd.unet_denoise", "Hires pass", (1780, 120), cfg=float(d["cfg"]), denoise=0.5)
    builder.move_outputs(first, "latent", hires)
    builder.link(first, "latent", upscale, "latent")
    builder.link(load, "vae", upscale, "vae")
    builder.link(upscale, "latent", hires, "latent")
    builder.copy_inputs(first, hires, ("model", "positive", "negative", "noise", "scheduler"))
    return g


def inpaint(d: dict) -> Graph:
    """The bundled picture with a painted mask over its red circle, repainted by the bundled (normal,
    4-channel) model: VAE encode (for inpaint) keeps what is outside the mask."""
    b = Builder("inpaint")
    load = b.add("load", "sd.load_model", "Load model", (0, 120))
    image = b.add("image", "image.load", "Load image", (0, 520), path="img2img_input.png",
                  mask="inpaint_mask.png")  # relative: found next to the workflow
    encode = b.add("encode", "sd.vae_encode_inpaint", "VAE encode (for inpaint)", (380, 830))
    b.link(load, "vae", encode, "vae")
    b.link(image, "image", encode, "image")
    b.link(image, "mask", encode, "mask")
    sampler_chain(b, {**d, "default_prompt": INPAINT_PROMPT}, encode, "latent")
    b.graph.set_view(0.8, (760, 420))
    return b.graph


INPAINT_PROMPT = "a green triangle and a blue square on a white background"


def controlnet_canny() -> Graph:
    """SD 1.5 with a Canny ControlNet: the bundled picture's edges steer a new image. Both model files
    are the user's (the bundled model is not SD 1.5's architecture): the nodes' titles say so."""
    b = Builder("controlnet_canny")
    load = b.add("load", "sd.load_model", "SD 1.5 checkpoint (set source)", (0, 120),
                 source="v1-5-pruned-emaonly.safetensors")
    empty = b.add("empty", "sd.empty_latent", "Empty latent", (380, 830))
    b.link(load, "vae", empty, "vae")
    sampler_chain(b, SD15, empty, "latent")
    g = b.graph
    unet = next(n for n in g.nodes.values() if n.type_id == "sd.unet_denoise")
    image = b.add("image", "image.load", "Control image", (0, 1120), path="img2img_input.png")
    canny = b.add("canny", "image.canny", "Canny", (380, 1120))
    net = b.add("controlnet", "sd.load_controlnet", "Canny ControlNet (set source)", (0, 1500),
                source="control_v11p_sd15_canny.safetensors")
    apply = b.add("apply", "sd.apply_controlnet", "Apply ControlNet", (760, 1120))
    b.link(image, "image", canny, "image")
    b.link(load, "model", net, "model")
    b.link(canny, "image", apply, "image")
    b.link(net, "control_net", apply, "control_net")
    for name in ("positive", "negative"):
        feed = g.remove_link(g.inbound(unet.id, name).id)
        b.link(g.nodes[feed.src_node], feed.src_output, apply, name)
        b.link(apply, name, unet, name)
    g.set_view(0.8, (760, 620))
    return g


# SD 1.5: its pipeline's defaults (512², 50 steps PNDM in diffusers; ComfyUI's template's 20 Euler, CFG 7.5 here).
SD15 = {"default_prompt": "a house by a lake, watercolour", "negative_prompt": "blurry, low quality",
        "scheduler": "Euler", "steps": 20, "cfg": 7.5}


def write_mask(path: Path, size: int) -> None:
    """The inpaint workflow's mask: white over the input picture's red circle (and a little around it)."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (size, size), 0)
    ImageDraw.Draw(mask).ellipse((size * 0.06, size * 0.26, size * 0.49, size * 0.69), fill=255)
    mask.save(path)


def write_input_image(path: Path, size: int) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.ellipse((size * 0.1, size * 0.3, size * 0.45, size * 0.65), fill=(220, 30, 30))
    draw.rectangle((size * 0.58, size * 0.32, size * 0.9, size * 0.64), fill=(30, 60, 220))
    image.save(path)


def main() -> None:
    d = defaults()
    out = ROOT / "resources" / "workflows"
    out.mkdir(parents=True, exist_ok=True)
    for name, graph, title, description in (
            ("txt2img", txt2img(d), "Text to image", "the basic chain, on the bundled model"),
            ("img2img", img2img(d), "Image to image", "the bundled picture redrawn at denoise 0.6"),
            ("hires_fix", hires_fix(d), "Hires fix", "text to image, upscaled 2x and refined"),
            ("inpaint", inpaint(d), "Inpaint", "the bundled picture's circle repainted through a painted mask"),
            ("controlnet_canny", controlnet_canny(), "ControlNet (Canny)",
             "SD 1.5 steered by the edges of a picture; set the checkpoint and ControlNet sources"),
            ("sdxl_txt2img", sdxl_txt2img(), "SDXL text to image", "set the checkpoint's source first"),
            ("sdxl_base_refiner", sdxl_base_refiner(), "SDXL base + refiner",
             "30 steps split 25 + 5, as the SDXL pipelines do; set both sources")):
        graph.metadata = {"title": title, "description": description, "app_version": workflow.APP_VERSION}
        workflow.save(graph, out / f"{name}.json", touch=False)
        print(out / f"{name}.json")
    write_input_image(out / "img2img_input.png", int(d["width"]))
    write_mask(out / "inpaint_mask.png", int(d["width"]))


if __name__ == "__main__":
    main()
