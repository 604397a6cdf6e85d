"""Procedural "shapes world" for the bundled LatentGraph model.

Scene sampler, antialiased renderer, caption templates, colour table and a
simple image-analysis scorer (used by the benchmark and for sanity checks).
Everything is deterministic given a ``random.Random`` / seed; nothing is
downloaded.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SUPERSAMPLE = 4

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (255, 140, 0),
    "yellow": (250, 225, 20),
    "green": (30, 170, 50),
    "blue": (30, 70, 225),
    "purple": (140, 40, 180),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle", "star"]
SIZES = ["small", "big"]
POSITIONS = ["top left", "top right", "bottom left", "bottom right", "center"]
POSITION_CENTRES = {
    "top left": (16.0, 16.0),
    "top right": (48.0, 16.0),
    "bottom left": (16.0, 48.0),
    "bottom right": (48.0, 48.0),
    "center": (32.0, 32.0),
}
TEMPLATES = ["single", "size", "position", "two"]
STAR_INNER = 0.42

# "radius" = half of the bounding-box extent, in pixels at 64x64. The smallest object spans 15 px,
# about four cells of the 16x16 latent: small shapes of 11-14 px (radius 5.5-7, the first world)
# were three cells wide, below what the autoencoder resolves (it reconstructed 33 % of small stars)
# and the model drew 43 % of them right against 96 % of big ones.
SIZE_RANGES = {"small": (7.5, 9.0), "big": (13.0, 15.0), "any": (9.0, 12.5), "fixed": (9.0, 10.5)}
SIZE_SPLIT_PX = 22.0  # bounding-box extent between small (15-18 px) and big (26-30 px)


@dataclass
class Obj:
    shape: str
    colour: str
    cx: float
    cy: float
    r: float


@dataclass
class Scene:
    template: str
    background: str
    objects: list[Obj]
    caption: str
    size: str | None = None
    position: str | None = None
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- captions

def caption_for(template: str, objs: list[Obj], bg: str, size: str | None = None,
                position: str | None = None, rng: random.Random | None = None,
                paraphrase: bool = False) -> str:
    o = objs[0]
    if template == "single":
        if paraphrase and rng is not None and rng.random() < 0.5:
            return f"{o.colour} {o.shape} on {bg} background"
        return f"a {o.colour} {o.shape} on a {bg} background"
    if template == "size":
        return f"a {size} {o.colour} {o.shape} on a {bg} background"
    if template == "position":
        return f"a {o.colour} {o.shape} in the {position} on a {bg} background"
    if template == "two":
        a, b = objs
        return f"a {a.colour} {a.shape} and a {b.colour} {b.shape} on a {bg} background"
    raise ValueError(template)


def all_caption_words() -> list[str]:
    words = {"a", "on", "background", "in", "the", "and"}
    words.update(COLOUR_NAMES)
    words.update(SHAPES)
    words.update(SIZES)
    for p in POSITIONS:
        words.update(p.split())
    return sorted(words)


def contrast_captions() -> list[tuple[str, str, str, str, str]]:
    """Caption pairs that differ in one word of one kind: (kind, word_a, word_b, caption_a,
    caption_b) for every pair of object colours, backgrounds, shapes, sizes and positions.
    A text encoder that gives both captions of a pair nearly the same hidden states cannot
    tell those words apart, and no UNet can then draw the difference (a from-scratch run whose
    "top" and "bottom" collapsed drew half its positions upside down, docs/benchmarks.md)."""
    pairs = []

    def other_colour(*used):
        return next(c for c in COLOUR_NAMES if c not in used)

    for i, a in enumerate(COLOUR_NAMES):
        for b in COLOUR_NAMES[i + 1:]:
            other = other_colour(a, b)  # the background for a colour pair, the object for a background pair
            pairs.append(("colour", a, b, f"a {a} circle on a {other} background",
                          f"a {b} circle on a {other} background"))
            pairs.append(("background", a, b, f"a {other} circle on a {a} background",
                          f"a {other} circle on a {b} background"))
    for words, kind, frame in ((SHAPES, "shape", "a red {} on a blue background"),
                               (SIZES, "size", "a {} red circle on a blue background"),
                               (POSITIONS, "position", "a red circle in the {} on a blue background")):
        for i, a in enumerate(words):
            for b in words[i + 1:]:
                pairs.append((kind, a, b, frame.format(a), frame.format(b)))
    return pairs


# --------------------------------------------------------------------------- sampling

def sample_scene(rng: random.Random, template: str | None = None, paraphrase: bool = True) -> Scene:
    if template is None:
        template = rng.choice(TEMPLATES)
    if template == "two":
        c1, c2, bg = rng.sample(COLOUR_NAMES, 3)
        s1, s2 = rng.choice(SHAPES), rng.choice(SHAPES)
        r1 = rng.uniform(*SIZE_RANGES["fixed"])
        r2 = rng.uniform(*SIZE_RANGES["fixed"])
        o1 = Obj(s1, c1, rng.uniform(14.0, 18.0), rng.uniform(22.0, 42.0), r1)
        o2 = Obj(s2, c2, rng.uniform(46.0, 50.0), rng.uniform(22.0, 42.0), r2)
        objs = [o1, o2]
        return Scene(template, bg, objs, caption_for(template, objs, bg))
    c, bg = rng.sample(COLOUR_NAMES, 2)
    s = rng.choice(SHAPES)
    size = position = None
    if template == "single":
        r = rng.uniform(*SIZE_RANGES["any"])
        cx, cy = rng.uniform(26.0, 38.0), rng.uniform(26.0, 38.0)
    elif template == "size":
        size = rng.choice(SIZES)
        r = rng.uniform(*SIZE_RANGES[size])
        cx, cy = rng.uniform(27.0, 37.0), rng.uniform(27.0, 37.0)
    elif template == "position":
        position = rng.choice(POSITIONS)
        r = rng.uniform(*SIZE_RANGES["fixed"])
        px, py = POSITION_CENTRES[position]
        cx, cy = px + rng.uniform(-3, 3), py + rng.uniform(-3, 3)
    else:
        raise ValueError(template)
    objs = [Obj(s, c, cx, cy, r)]
    cap = caption_for(template, objs, bg, size=size, position=position, rng=rng, paraphrase=paraphrase)
    return Scene(template, bg, objs, cap, size=size, position=position)


# --------------------------------------------------------------------------- rendering

def shape_polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "triangle":
        return [(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "star":
        # 5-point star scaled so that its bounding box is ~2r x 2r
        pts = []
        for k in range(10):
            ang = -math.pi / 2 + k * math.pi / 5
            rad = 1.0 if k % 2 == 0 else STAR_INNER
            pts.append((math.cos(ang) * rad, math.sin(ang) * rad))
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        mx, my = (max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2
        sx, sy = 2 * r / (max(xs) - min(xs)), 2 * r / (max(ys) - min(ys))
        return [(cx + (x - mx) * sx, cy + (y - my) * sy) for x, y in pts]
    raise ValueError(shape)


def render(scene: Scene, size: int = IMAGE_SIZE) -> Image.Image:
    s = SUPERSAMPLE
    big = Image.new("RGB", (size * s, size * s), COLOURS[scene.background])
    d = ImageDraw.Draw(big)
    k = s * size / IMAGE_SIZE
    for o in scene.objects:
        col = COLOURS[o.colour]
        if o.shape == "circle":
            d.ellipse([(o.cx - o.r) * k, (o.cy - o.r) * k, (o.cx + o.r) * k, (o.cy + o.r) * k], fill=col)
        else:
            d.polygon([(x * k, y * k) for x, y in shape_polygon(o.shape, o.cx, o.cy, o.r)], fill=col)
    return big.resize((size, size), Image.BOX)


def render_batch(scenes: list[Scene]) -> np.ndarray:
    """uint8 array (N, 64, 64, 3)."""
    return np.stack([np.asarray(render(sc)) for sc in scenes])


def to_tensor_range(arr: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [-1, 1]."""
    return (arr.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)


# --------------------------------------------------------------------------- scoring

_PALETTE = np.array([COLOURS[c] for c in COLOUR_NAMES], dtype=np.float32)


def nearest_colour_idx(pix: np.ndarray) -> np.ndarray:
    d = ((pix[..., None, :] - _PALETTE) ** 2).sum(-1)
    return d.argmin(-1)


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask (small images; pure python BFS)."""
    h, w = mask.shape
    seen = np.zeros_like(mask, dtype=bool)
    comps = []
    ys, xs = np.nonzero(mask)
    for y0, x0 in zip(ys.tolist(), xs.tolist()):
        if seen[y0, x0]:
            continue
        stack = [(y0, x0)]
        seen[y0, x0] = True
        pts = []
        while stack:
            y, x = stack.pop()
            pts.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        comps.append(np.array(pts))
    return comps


def convex_hull_area(points: list[tuple[float, float]]) -> float:
    """Area of the convex hull of 2-D points (Andrew's monotone chain + shoelace)."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    upper: list = []
    for pt in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], pt) <= 0:
            lower.pop()
        lower.append(pt)
    for pt in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], pt) <= 0:
            upper.pop()
        upper.append(pt)
    hull = lower[:-1] + upper[:-1]
    return 0.5 * abs(sum(hull[i][0] * hull[i - 1][1] - hull[i - 1][0] * hull[i][1] for i in range(len(hull))))


def shape_features(alpha: np.ndarray) -> tuple[float, float]:
    """(fill, solidity) of the half-coverage silhouette (alpha >= 0.5).

    The 0.5 contour of an antialiased or slightly blurred edge stays where the edge is, so
    these hold up under the blur a VAE adds, unlike ratios of soft coverage.
    fill = area / bounding box (square ~1, circle ~0.78, triangle ~0.5, star ~0.4);
    solidity = area / convex hull area (star ~0.6, the convex shapes > 0.85).
    """
    comps = _components(alpha >= 0.5)
    if not comps:
        return 0.0, 1.0
    comp = max(comps, key=len)
    ys, xs = comp[:, 0], comp[:, 1]
    area = float(len(comp))
    box = float((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
    corners = [(x + dx, y + dy) for y, x in zip(ys.tolist(), xs.tolist()) for dx in (0, 1) for dy in (0, 1)]
    return area / box, area / max(convex_hull_area(corners), 1.0)


def classify_shape(fill: float, solidity: float) -> str:
    """Thresholds sit between the ranges measured on ground-truth renders (python shapes_world.py)."""
    if solidity < 0.78:
        return "star"
    if fill >= 0.89:
        return "square"
    if fill >= 0.67:
        return "circle"
    return "triangle"


def analyse_region(img: np.ndarray, bg_rgb: np.ndarray, bg_idx: int, x0: int = 0, x1: int | None = None,
                   min_pixels: int = 12) -> dict | None:
    """Find the dominant object in columns [x0, x1) of a float RGB image."""
    x1 = img.shape[1] if x1 is None else x1
    sub = img[:, x0:x1]
    dist = np.sqrt(((sub - bg_rgb) ** 2).sum(-1))
    mask = dist > 70.0
    if mask.sum() < min_pixels:
        return None
    comps = _components(mask)
    comp = max(comps, key=len)
    if len(comp) < min_pixels:
        return None
    cmask = np.zeros_like(mask)
    cmask[comp[:, 0], comp[:, 1]] = True
    labels = nearest_colour_idx(sub[cmask])
    labels = labels[labels != bg_idx] if (labels != bg_idx).any() else labels
    counts = np.bincount(labels, minlength=len(COLOUR_NAMES))
    cidx = int(counts.argmax())
    core = cmask & (nearest_colour_idx(sub) == cidx)
    obj_rgb = np.median(sub[core], axis=0) if core.any() else _PALETTE[cidx]
    # soft coverage (alpha) of the object colour against the background
    v = obj_rgb - bg_rgb
    alpha = np.clip(((sub - bg_rgb) @ v) / max(float(v @ v), 1e-6), 0.0, 1.0)
    # restrict to a dilated neighbourhood of the component (drop other blobs)
    grow = cmask.copy()
    grow[1:] |= cmask[:-1]
    grow[:-1] |= cmask[1:]
    grow[:, 1:] |= cmask[:, :-1]
    grow[:, :-1] |= cmask[:, 1:]
    alpha = alpha * grow
    area = float(alpha.sum())
    w = float(alpha.max(0).sum())
    h = float(alpha.max(1).sum())
    yy, xx = np.mgrid[0:sub.shape[0], 0:sub.shape[1]]
    cy = float((alpha * yy).sum() / max(area, 1e-6)) + 0.5
    cx = float((alpha * xx).sum() / max(area, 1e-6)) + 0.5 + x0
    fill, solidity = shape_features(alpha)
    return {"colour": COLOUR_NAMES[cidx], "fill": fill, "solidity": solidity,
            "shape": classify_shape(fill, solidity), "area": area, "cx": cx, "cy": cy, "w": w, "h": h}


def position_of(cx: float, cy: float, size: int = IMAGE_SIZE) -> str:
    c = size / 2
    if max(abs(cx - c), abs(cy - c)) < size / 8:
        return "center"
    return ("top" if cy < c else "bottom") + " " + ("left" if cx < c else "right")


def analyse_image(img, two: bool = False) -> dict:
    """Analyse a 64x64 RGB image (PIL or uint8 array)."""
    a = np.asarray(img.convert("RGB") if isinstance(img, Image.Image) else img).astype(np.float32)
    n = a.shape[0]
    border = np.concatenate([a[:2].reshape(-1, 3), a[-2:].reshape(-1, 3), a[:, :2].reshape(-1, 3),
                             a[:, -2:].reshape(-1, 3)])
    bl = nearest_colour_idx(border)
    bg_idx = int(np.bincount(bl, minlength=len(COLOUR_NAMES)).argmax())
    bg_rgb = np.median(border[bl == bg_idx], axis=0)
    out = {"background": COLOUR_NAMES[bg_idx]}
    if two:
        out["left"] = analyse_region(a, bg_rgb, bg_idx, 0, n // 2)
        out["right"] = analyse_region(a, bg_rgb, bg_idx, n // 2, n)
    else:
        out["object"] = analyse_region(a, bg_rgb, bg_idx)
    return out


def objects_seen(scene: Scene, analysis: dict) -> list[dict | None]:
    """The analysed object for each of ``scene.objects`` (None where nothing was found)."""
    if scene.template == "two":
        return [analysis["left"], analysis["right"]]
    return [analysis["object"]]


def size_of(r: dict) -> str:
    """small or big by the larger bounding-box extent (area would rank a big star below a
    small square)."""
    return "big" if max(r["w"], r["h"]) > SIZE_SPLIT_PX else "small"


def score_image(scene: Scene, img) -> dict:
    """Per-image correctness dict; keys present only where the template defines them.

    Lists of booleans so that two-object scenes count both objects for colour/shape.
    """
    res = analyse_image(img, two=scene.template == "two")
    seen = objects_seen(scene, res)
    sc = {"background": [res["background"] == scene.background],
          "colour": [bool(got) and got["colour"] == o.colour for o, got in zip(scene.objects, seen)],
          "shape": [bool(got) and got["shape"] == o.shape for o, got in zip(scene.objects, seen)]}
    got = seen[0]
    if scene.template == "two":  # binding: both objects found, each colour on its own side
        sc["binding"] = [all(sc["colour"])]
    if scene.template == "position":
        sc["position"] = [bool(got) and position_of(got["cx"], got["cy"]) == scene.position]
    if scene.template == "size":
        sc["size"] = [bool(got) and size_of(got) == scene.size]
    sc["analysis"] = res
    return sc


def eval_scenes(rng: random.Random, per_template: int) -> list[Scene]:
    """Benchmark prompts: ``per_template`` scenes for each template (canonical captions)."""
    out = []
    for t in TEMPLATES:
        for _ in range(per_template):
            out.append(sample_scene(rng, t, paraphrase=False))
    return out


if __name__ == "__main__":
    # sanity check of the scorer on ground-truth renders
    rng = random.Random(123)
    tot: dict[str, list[bool]] = {}
    fills = {s: [] for s in SHAPES}
    for sc in eval_scenes(rng, 200):
        r = score_image(sc, render(sc))
        for k, v in r.items():
            if k != "analysis":
                tot.setdefault(k, []).extend(v)
        for o, g in zip(sc.objects, objects_seen(sc, r["analysis"])):
            if g:
                fills[o.shape].append((g["fill"], g["solidity"]))
    for k, v in tot.items():
        print(f"{k:12s} {np.mean(v):.3f} (n={len(v)})")
    for s, f in fills.items():
        f = np.array(f)
        print(s, f"fill min {f[:, 0].min():.3f} mean {f[:, 0].mean():.3f} max {f[:, 0].max():.3f} | "
              f"solidity min {f[:, 1].min():.3f} mean {f[:, 1].mean():.3f} max {f[:, 1].max():.3f}")
