"""The files of the mask editor (``mask_editor.py``): reading a Load image node's image and its mask the
way the node reads them, and where and how a painted mask is written (``graphs.safe_io`` does the writing)."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QIODevice
from PySide6.QtGui import QImage

from graphs import safe_io

MASKS_FOLDER = "masks"


def read_image(file: Path, what: str = "image"):
    """A decoded PIL image, read as Load image reads it (``nodes.images.open_image``); ValueError."""
    from nodes.images import open_image

    try:
        return open_image(file, what)
    except FileNotFoundError as exc:
        raise ValueError(str(exc)) from None


def _eight_bit(image):
    """16-bit and float grey as 8-bit grey; other modes unchanged (PIL clips them otherwise)."""
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if image.mode == "F" else 65535.0
        return Image.fromarray((np.clip(values / top, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
    return image


def _qimage(array: np.ndarray, fmt: QImage.Format) -> QImage:
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    return QImage(array.data, width, height, array.strides[0], fmt).copy()  # copy: owns its bytes


def load_pictures(image_file: Path, mask_file: Path | None) -> tuple[QImage, QImage, str]:
    """The image (RGB, as the node sees its colours), the mask to start from (grayscale, the
    image's size: the painted file, stretched if its size differs, else the image's transparent
    pixels) and a note for the user ("" when all went well). Raises ValueError for the image."""
    from PIL import Image

    image = read_image(image_file)
    has_alpha = "A" in image.mode or "a" in image.mode or "transparency" in image.info
    alpha = np.asarray(image.convert("RGBA"))[:, :, 3] if has_alpha else None
    rgb = _qimage(np.asarray(_eight_bit(image).convert("RGB")), QImage.Format.Format_RGB888)
    rgb = rgb.convertToFormat(QImage.Format.Format_RGB32)
    size = (image.width, image.height)
    del image
    note = ""
    if mask_file is not None:
        try:
            painted = _eight_bit(read_image(mask_file, "mask")).convert("L")
            if painted.size != size:
                note = f"the mask was {painted.width}x{painted.height}: stretched to the image"
                painted = painted.resize(size, Image.Resampling.BILINEAR)
            return rgb, _qimage(np.asarray(painted), QImage.Format.Format_Grayscale8), note
        except ValueError as exc:
            note = f"{mask_file.name}: {exc}; starting from the image's transparency"
    mask = 255 - alpha if alpha is not None else np.zeros((size[1], size[0]), np.uint8)
    return rgb, _qimage(mask, QImage.Format.Format_Grayscale8), note


def mask_stem(image_file: str) -> str:
    stem = re.sub(r"[^\w.\- ]", "_", Path(image_file).stem).strip(" .")[:120]
    return stem or "image"


def masks_folder(workflow_folder: Path) -> Path:
    """``masks/`` in the workflow's folder, made if missing; refused (ValueError) when it is a link
    or not a folder: the mask is never written somewhere else than where the workflow says."""
    folder = workflow_folder / MASKS_FOLDER
    try:
        os.mkdir(folder)
    except FileExistsError:
        pass
    info = os.lstat(folder)
    if stat.S_ISLNK(info.st_mode):
        raise ValueError(f"{folder} is a symbolic link; masks are only written into a real folder")
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{folder} is {safe_io.kind_of(info.st_mode)}, not a folder")
    return folder


def png_bytes(mask: QImage) -> bytes:
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not mask.save(buffer, "PNG"):
        raise ValueError("the mask could not be encoded as PNG")
    return bytes(buffer.data())
