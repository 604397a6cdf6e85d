"""Mask nodes through the graph: Load mask (8-bit, 16-bit, alpha), Grow/Feather/Invert/Threshold
mask, Image to mask and Mask to image, with hand-computed expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from test_upscale import run_node

import nodes  # noqa: F401
from graphs import default_registry


def output(type_id, inputs, name="mask", **params):
    result, node = run_node(type_id, inputs, **params)
    assert result.status == "finished", result.error and result.error.message
    return result.outputs[node][name]


def point(size=15, at=(7, 7), batch=1):
    mask = torch.zeros(batch, size, size)
    mask[:, at[0], at[1]] = 1.0
    return mask


def diamond(size, centre, radius):
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    return ((ys - centre[0]).abs() + (xs - centre[1]).abs() <= radius).float()[None]


def test_grow_a_point_makes_a_diamond_tapered_and_a_square_without():
    grown = output("mask.grow", {"mask": ("MASK", point())}, pixels=2, tapered_corners=True)
    assert grown.shape == (1, 15, 15) and grown.sum() == 13  # 1 + 4 + 8
    assert torch.equal(grown, diamond(15, (7, 7), 2))
    grown = output("mask.grow", {"mask": ("MASK", point())}, pixels=2, tapered_corners=False)
    assert grown.sum() == 25 and torch.equal(grown[0, 5:10, 5:10], torch.ones(5, 5))
    grown = output("mask.grow", {"mask": ("MASK", point())}, pixels=5, tapered_corners=True)
    assert torch.equal(grown, diamond(15, (7, 7), 5))  # 1 + 4 * (1 + ... + 5) = 61
    assert grown.sum() == 61


def test_grow_at_the_border_and_past_the_image():
    corner = output("mask.grow", {"mask": ("MASK", point(at=(0, 0)))}, pixels=2, tapered_corners=True)
    assert corner.sum() == 6  # the quarter of the diamond inside the image: 1 + 2 + 3
    everything = output("mask.grow", {"mask": ("MASK", point(size=5, at=(2, 2)))}, pixels=40,
                        tapered_corners=False)
    assert torch.equal(everything, torch.ones(1, 5, 5))


def test_shrink_is_the_erosion_with_the_same_kernel():
    shape = diamond(15, (7, 7), 3)  # 25 pixels
    by_cross = output("mask.grow", {"mask": ("MASK", shape)}, pixels=-1, tapered_corners=True)
    assert torch.equal(by_cross, diamond(15, (7, 7), 2))
    by_square = output("mask.grow", {"mask": ("MASK", shape)}, pixels=-1, tapered_corners=False)
    assert torch.equal(by_square, diamond(15, (7, 7), 1))  # only pixels whose 3x3 is inside
    full = output("mask.grow", {"mask": ("MASK", torch.ones(2, 6, 9))}, pixels=-3, tapered_corners=True)
    assert torch.equal(full, torch.ones(2, 6, 9))  # the image's border is not the mask's edge
    gone = output("mask.grow", {"mask": ("MASK", point())}, pixels=-1, tapered_corners=False)
    assert gone.sum() == 0


@pytest.mark.parametrize("tapered", [True, False])
@pytest.mark.parametrize("pixels", [3, -2])
def test_grow_on_grey_values_is_scipys_grey_morphology_repeated(tapered, pixels):
    """ComfyUI's GrowMask: |pixels| repeats of scipy's grey dilation/erosion with a 3x3 cross or
    square footprint (default 'reflect' border)."""
    from scipy import ndimage

    rng = np.random.default_rng(3)
    masks = rng.random((2, 23, 17)).astype(np.float32)
    footprint = np.array([[not tapered, 1, not tapered], [1, 1, 1], [not tapered, 1, not tapered]], bool)
    expected = []
    for mask in masks:
        for _ in range(abs(pixels)):
            morph = ndimage.grey_dilation if pixels > 0 else ndimage.grey_erosion
            mask = morph(mask, footprint=footprint)
        expected.append(mask)
    grown = output("mask.grow", {"mask": ("MASK", torch.from_numpy(masks))}, pixels=pixels,
                   tapered_corners=tapered)
    assert np.array_equal(grown.numpy(), np.stack(expected))


def test_feather_is_a_symmetric_gaussian_that_keeps_the_mass():
    blurred = output("mask.feather", {"mask": ("MASK", point(size=41, at=(20, 20)))}, radius=6)
    assert blurred.shape == (1, 41, 41)
    assert abs(blurred.sum().item() - 1.0) < 1e-5  # the normalised kernel spreads, never adds
    assert torch.allclose(blurred, blurred.flip(-1)) and torch.allclose(blurred, blurred.flip(-2))
    assert torch.allclose(blurred, blurred.transpose(-1, -2))
    assert blurred[0].argmax() == 20 * 41 + 20
    row = blurred[0, 20]
    assert row[26] > 0 and row[27] == 0 and blurred[0, 26, 26] > 0  # reaches exactly 6 px
    assert torch.all(row[20:26] > row[21:27])  # falls off steadily
    # sigma = radius / 3 = 2: one step off the centre is exp(-1/8) of the peak on each axis
    assert row[21].item() / row[20].item() == pytest.approx(np.exp(-1 / 8), rel=1e-5)


def test_feather_edges_and_identity():
    half = torch.zeros(1, 20, 20)
    half[:, :, 10:] = 1.0
    blurred = output("mask.feather", {"mask": ("MASK", half)}, radius=4)
    assert torch.allclose(blurred[:, :, 14:], torch.ones(1, 20, 6)) and torch.all(blurred[:, :, :6] == 0)
    assert torch.allclose(blurred[0, :, 9] + blurred[0, :, 10], torch.ones(20))  # symmetric ramp
    assert 0 < blurred[0, 0, 9] < 0.5 < blurred[0, 0, 10] < 1
    full = output("mask.feather", {"mask": ("MASK", torch.ones(1, 8, 8))}, radius=30)
    assert torch.allclose(full, torch.ones(1, 8, 8))  # no darkening at the image's border
    same = torch.rand(2, 9, 7)
    assert torch.equal(output("mask.feather", {"mask": ("MASK", same)}, radius=0), same)


def test_invert_and_threshold():
    mask = torch.tensor([[[0.0, 0.2, 0.5, 0.8, 1.0]]])
    assert torch.allclose(output("mask.invert", {"mask": ("MASK", mask)}),
                          torch.tensor([[[1.0, 0.8, 0.5, 0.2, 0.0]]]))
    assert torch.equal(output("mask.threshold", {"mask": ("MASK", mask)}, value=0.5),
                       torch.tensor([[[0.0, 0.0, 1.0, 1.0, 1.0]]]))
    assert torch.equal(output("mask.threshold", {"mask": ("MASK", mask)}, value=0.0), torch.ones(1, 1, 5))


def test_image_to_mask_and_back():
    image = torch.zeros(2, 3, 4, 6)
    image[0, 0] = 1.0  # red
    image[1, 1, :, :3] = 1.0  # half green
    red = output("mask.from_image", {"image": ("IMAGE", image)}, channel="red")
    assert red.shape == (2, 4, 6) and torch.equal(red, image[:, 0])
    luma = output("mask.from_image", {"image": ("IMAGE", image)}, channel="luminance")
    assert torch.allclose(luma[0], torch.full((4, 6), 0.299))
    assert torch.allclose(luma[1, :, :3], torch.full((4, 3), 0.587)) and torch.all(luma[1, :, 3:] == 0)
    mask = torch.rand(2, 5, 7)
    picture = output("mask.to_image", {"mask": ("MASK", mask)}, name="image")
    assert picture.shape == (2, 3, 5, 7) and all(torch.equal(picture[:, c], mask) for c in range(3))
    back = output("mask.from_image", {"image": ("IMAGE", picture)}, channel="luminance")
    assert torch.allclose(back, mask, atol=1e-6)


def test_a_mask_of_the_wrong_shape_is_refused_by_name():
    result, _ = run_node("mask.grow", {"mask": ("MASK", torch.zeros(1, 3, 8, 8))}, pixels=1)
    assert result.status == "failed"
    assert "input 'mask' is not a mask [batch, height, width]: got (1, 3, 8, 8)" in result.error.message
    result, _ = run_node("mask.from_image", {"image": ("IMAGE", torch.zeros(1, 8, 8))})
    assert result.status == "failed" and "input 'image' is not an RGB image" in result.error.message


def test_load_mask_8_bit_16_bit_and_alpha(tmp_path):
    grey = np.array([[0, 128, 255], [64, 32, 16]], dtype=np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png")
    mask = output("mask.load", {}, path=str(tmp_path / "grey.png"))
    assert mask.shape == (1, 2, 3) and mask.dtype == torch.float32
    assert torch.allclose(mask[0], torch.from_numpy(grey / 255.0).float())

    deep = np.array([[0, 1000, 65535], [30000, 7, 12345]], dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode in ("I;16", "I")  # really a 16-bit file
    mask = output("mask.load", {}, path=str(tmp_path / "deep.png"))
    assert torch.allclose(mask[0], torch.from_numpy(deep / 65535.0).float(), atol=1e-7)
    assert mask[0, 0, 1].item() != round(1000 / 65535 * 255) / 255  # not cut to 8 bits

    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 255  # red everywhere
    rgba[..., 3] = [[0, 255], [51, 204]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    mask = output("mask.load", {}, path=str(tmp_path / "alpha.png"), channel="alpha")
    assert torch.allclose(mask[0], torch.tensor([[1.0, 0.0], [0.8, 0.2]]))  # transparent repaints
    mask = output("mask.load", {}, path=str(tmp_path / "alpha.png"), channel="red")
    assert torch.equal(mask[0], torch.ones(2, 2))  # a colour channel is not inverted
    no_alpha = output("mask.load", {}, path=str(tmp_path / "grey.png"), channel="alpha")
    assert torch.equal(no_alpha, torch.zeros(1, 2, 3))  # opaque: nothing to repaint

    # Load image's mask from the same file: the same convention
    result, node = run_node("image.load", {}, path=str(tmp_path / "alpha.png"))
    assert torch.allclose(result.outputs[node]["mask"][0], torch.tensor([[1.0, 0.0], [0.8, 0.2]]))
    assert torch.equal(result.outputs[node]["image"][0, 0], torch.ones(2, 2))


def test_load_mask_errors_and_fingerprint(tmp_path):
    result, _ = run_node("mask.load", {})
    assert result.status == "failed" and "param 'path' is empty" in result.error.message
    result, _ = run_node("mask.load", {}, path=str(tmp_path / "nowhere.png"))
    assert result.status == "failed" and "mask not found" in result.error.message
    (tmp_path / "junk.png").write_bytes(b"not a png")
    result, _ = run_node("mask.load", {}, path=str(tmp_path / "junk.png"))
    assert result.status == "failed" and "cannot read mask" in result.error.message

    fingerprint = default_registry().nodes.get("mask.load").fingerprint
    path = tmp_path / "m.png"
    Image.fromarray(np.zeros((4, 4), np.uint8), "L").save(path)
    before = fingerprint({"path": str(path)}, {})
    Image.fromarray(np.full((4, 4), 255, np.uint8), "L").save(path)
    assert fingerprint({"path": str(path)}, {}) != before  # an edited mask file reruns the node
