"""Pad image (outpainting), Canny, Invert image and Grayscale through the graph."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from test_upscale import run_node

import nodes  # noqa: F401


def outputs(type_id, inputs, **params):
    result, node = run_node(type_id, inputs, **params)
    assert result.status == "finished", result.error and result.error.message
    return result.outputs[node], result.warnings.get(node, [])


def test_pad_sizes_fill_and_mask():
    image = torch.rand(2, 3, 100, 80)
    out, warnings = outputs("image.pad_for_outpaint", {"image": ("IMAGE", image)},
                            left=16, top=8, right=0, bottom=24, feathering=10)
    padded, mask = out["image"], out["mask"]
    assert padded.shape == (2, 3, 132, 96) and mask.shape == (2, 132, 96) and not warnings
    assert torch.equal(padded[:, :, 8:108, 16:96], image)
    assert torch.all(padded[:, :, :8] == 0.5) and torch.all(padded[:, :, 108:] == 0.5)
    assert torch.all(padded[:, :, :, :16] == 0.5)
    assert torch.equal(mask[0], mask[1])
    m = mask[0]
    assert torch.all(m[:8] == 1) and torch.all(m[108:] == 1) and torch.all(m[:, :16] == 1)
    inside = m[8:108, 16:96]  # the original image, row i and column j
    assert inside[50, 40] == 0  # far from every padded side
    assert inside[0, 40] == 1  # the top row: distance 0
    assert inside[3, 40] == pytest.approx(0.49)  # ((10 - 3) / 10)²
    assert inside[9, 40] == pytest.approx(0.01) and inside[10, 40] == 0
    assert inside[99, 40] == pytest.approx(0.81)  # the bottom row counts from 1, as in ComfyUI
    assert inside[50, 0] == 1 and inside[50, 5] == pytest.approx(0.25)  # the left side
    assert torch.all(inside[10:90, 79] == 0)  # the right side was not padded: no ramp there
    assert inside[2, 5] == pytest.approx(0.64)  # a corner: the nearer side counts
    assert torch.all(inside[:, 40][:10] > inside[:, 40][1:11])  # ramps down into the image


def test_pad_without_feathering_or_padding():
    image = torch.rand(1, 3, 16, 24)
    out, _ = outputs("image.pad_for_outpaint", {"image": ("IMAGE", image)}, left=8, feathering=0)
    expected = torch.ones(1, 16, 32)
    expected[:, :, 8:] = 0
    assert torch.equal(out["mask"], expected)
    out, warnings = outputs("image.pad_for_outpaint", {"image": ("IMAGE", image)}, right=8, feathering=8)
    assert torch.equal(out["mask"][:, :, :24], torch.zeros(1, 16, 24))  # 2 * 8 is not less than 16
    assert warnings and "no feathering" in warnings[0]
    out, warnings = outputs("image.pad_for_outpaint", {"image": ("IMAGE", image)})
    assert torch.equal(out["image"], image) and torch.equal(out["mask"], torch.zeros(1, 16, 24))
    assert not warnings


def test_pad_past_the_size_limit_is_refused():
    result, _ = run_node("image.pad_for_outpaint", {"image": ("IMAGE", torch.zeros(1, 3, 8, 8000))},
                         left=200, right=0)
    assert result.status == "failed"
    assert "8200x8" in result.error.message and "8192x8192" in result.error.message


def square_picture(size=64, lo=20, hi=44):
    picture = np.zeros((size, size, 3), np.uint8)
    picture[lo:hi, lo:hi] = 255
    return picture


def as_image(*pictures):
    return torch.from_numpy(np.stack(pictures)).permute(0, 3, 1, 2).float() / 255


def test_canny_finds_the_squares_border_only():
    picture = square_picture()
    out, _ = outputs("image.canny", {"image": ("IMAGE", as_image(picture))})
    edges = out["image"]
    assert edges.shape == (1, 3, 64, 64) and torch.equal(edges[:, 0], edges[:, 1])
    assert torch.equal(edges[:, 0], edges[:, 2]) and set(edges.unique().tolist()) == {0.0, 1.0}
    e = edges[0, 0]
    ring = torch.zeros(64, 64, dtype=torch.bool)
    ring[18:46, 18:46] = True
    ring[22:42, 22:42] = False  # within 2 px of the square's border
    assert e[~ring].sum() == 0  # nothing in the flat areas
    for row in range(24, 40):  # every row crossing the square has an edge on its left and right side
        assert e[row, 18:22].any() and e[row, 42:46].any()
    assert e[18:22, 24:40].any(dim=0).all() and e[42:46, 24:40].any(dim=0).all()  # top and bottom


def test_canny_equals_opencv_per_image_and_checks_thresholds():
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:48, 0:40]
    smooth = (127 + 100 * np.sin(xs / 5.0) * np.cos(ys / 7.0)).astype(np.uint8)
    noisy = np.clip(smooth.astype(int) + rng.integers(-30, 30, smooth.shape), 0, 255).astype(np.uint8)
    colour = np.stack([noisy, smooth, 255 - smooth], axis=-1)
    pictures = (colour, np.ascontiguousarray(colour[::-1]))
    out, _ = outputs("image.canny", {"image": ("IMAGE", as_image(*pictures))}, low_threshold=50,
                     high_threshold=120)
    for index, picture in enumerate(pictures):
        expected = cv2.Canny(cv2.cvtColor(picture, cv2.COLOR_RGB2GRAY), 50, 120)
        assert expected.any() and not expected.all()
        assert np.array_equal((out["image"][index, 0].numpy() * 255).astype(np.uint8), expected)
    result, _ = run_node("image.canny", {"image": ("IMAGE", as_image(colour))}, low_threshold=150,
                         high_threshold=100)
    assert result.status == "failed"
    assert "low_threshold (150) is above high_threshold (100)" in result.error.message


def test_invert_and_grayscale():
    image = torch.rand(2, 3, 5, 6)
    out, _ = outputs("image.invert", {"image": ("IMAGE", image)})
    assert torch.allclose(out["image"], 1 - image)
    pure = torch.zeros(1, 3, 1, 3)
    pure[0, 0, 0, 0] = pure[0, 1, 0, 1] = pure[0, 2, 0, 2] = 1.0  # red, green, blue pixels
    out, _ = outputs("image.grayscale", {"image": ("IMAGE", pure)})
    grey = out["image"]
    assert grey.shape == (1, 3, 1, 3) and torch.equal(grey[:, 0], grey[:, 2])
    assert torch.allclose(grey[0, 0, 0], torch.tensor([0.299, 0.587, 0.114]))
    picture = np.random.default_rng(1).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    out, _ = outputs("image.grayscale", {"image": ("IMAGE", as_image(picture))})
    pil_l = np.asarray(Image.fromarray(picture, "RGB").convert("L"), dtype=np.float32) / 255
    assert np.abs(out["image"][0, 1].numpy() - pil_l).max() <= 1 / 255 + 1e-6  # PIL rounds to 8 bits
