"""Labelled X/Y grid images for sweeps: one PNG per Z value, cells in columns (X) and rows
(Y), each column and row labelled ``TITLE.PARAM = VALUE`` and a Z grid titled the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Any

MIN_TILE = 160  # small cells are enlarged (nearest) so a label fits above each column
FONT_SIZE = 15
PAD = 8
BACKGROUND, INK, FAILED = (255, 255, 255), (20, 20, 20), (200, 200, 200)


def _font(size: int = FONT_SIZE):
    from PIL import ImageFont

    try:  # Pillow >= 10.1 ships a scalable default font
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def _text_size(draw, text: str, font) -> tuple[int, int]:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    return right - left, bottom - top


def _fit(draw, text: str, font, width: int) -> str:
    """Shorten ``text`` with an ellipsis until it fits ``width`` pixels."""
    if _text_size(draw, text, font)[0] <= width:
        return text
    while len(text) > 1 and _text_size(draw, text + "…", font)[0] > width:
        text = text[:-1]
    return text + "…"


def make_grid(tiles: dict[tuple[int, int], Any], columns: list[str], rows: list[str],
              title: str = "", tile_size: tuple[int, int] | None = None):
    """A PIL image: ``tiles[(x, y)]`` (PIL images, or a string for a failed cell) under
    column labels, beside row labels, below an optional title."""
    from PIL import Image, ImageDraw

    font = _font()
    images = [t for t in tiles.values() if not isinstance(t, str)]
    tw, th = tile_size or ((images[0].width, images[0].height) if images else (64, 64))
    scale = max(1, -(-MIN_TILE // max(tw, 1)))
    cw, ch = tw * scale, th * scale
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _text_size(probe, "Ag=0.5", font)[1] + PAD
    row_w = min(max([_text_size(probe, r, font)[0] for r in rows] + [0]) + 2 * PAD, 320) if any(rows) else 0
    title_h = line_h + PAD if title else 0
    head_h = line_h + PAD if any(columns) else 0
    width = row_w + len(columns) * (cw + PAD) + PAD
    height = title_h + head_h + len(rows) * (ch + PAD) + PAD
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((PAD, PAD), _fit(draw, title, font, width - 2 * PAD), fill=INK, font=font)
    for x, label in enumerate(columns):
        text = _fit(draw, label, font, cw)
        left = row_w + PAD + x * (cw + PAD) + (cw - _text_size(draw, text, font)[0]) // 2
        draw.text((left, title_h + PAD), text, fill=INK, font=font)
    for y, label in enumerate(rows):
        top = title_h + head_h + PAD + y * (ch + PAD)
        text = _fit(draw, label, font, row_w - 2 * PAD)
        draw.text((PAD, top + (ch - line_h) // 2), text, fill=INK, font=font)
        for x in range(len(columns)):
            left = row_w + PAD + x * (cw + PAD)
            tile = tiles.get((x, y))
            if tile is None or isinstance(tile, str):
                draw.rectangle((left, top, left + cw - 1, top + ch - 1), fill=FAILED)
                draw.text((left + PAD, top + PAD), _fit(draw, tile or "missing", font, cw - 2 * PAD),
                          fill=INK, font=font)
            else:
                grid.paste(tile.convert("RGB").resize((cw, ch), Image.NEAREST), (left, top))
    return grid


def write_grids(folder: str | Path, sweep, cells: list[dict[str, Any]]) -> list[str]:
    """One ``grid_z000.png`` per Z value from the manifest's cell entries; returns the names."""
    from PIL import Image

    from .images import write_png

    folder = Path(folder)
    nx, ny, nz = sweep.shape()
    axes = sweep.axes
    columns = [axes[0].label(v) for v in axes[0].values]
    rows = [axes[1].label(v) for v in axes[1].values] if len(axes) > 1 else [""]
    by_coords = {tuple(c["coords"]) + (0,) * (3 - len(c["coords"])): c for c in cells}
    names = []
    for z in range(nz):
        tiles: dict[tuple[int, int], Any] = {}
        for y in range(ny):
            for x in range(nx):
                entry = by_coords.get((x, y, z))
                if entry and entry.get("status") == "done" and entry.get("files"):
                    with Image.open(folder / entry["files"][0]) as image:
                        tiles[(x, y)] = image.convert("RGB")
                else:
                    tiles[(x, y)] = "failed" if entry else "missing"
        title = axes[2].label(axes[2].values[z]) if len(axes) > 2 else ""
        grid = make_grid(tiles, columns, rows, title)
        name = f"grid_z{z:03d}.png"
        write_png(folder / name, grid, None, {"sweep": sweep.to_metadata(), "z": z})
        names.append(name)
    return names
