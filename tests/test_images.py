"""Tests of ntkutils.images: loading, noise, PSNR and the noise estimate."""
import math

import numpy as np
import pytest
import torch

from ntkutils.images import (
    add_noise,
    estimate_sigma,
    list_images,
    load_image,
    psnr,
    to_chw,
    to_hwc,
)


@pytest.mark.parametrize("name", ["camera", "grass", "brick"])
def test_gray_images_load_in_unit_range(name):
    x = load_image(name)
    assert x.shape == (1, 256, 256) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert float(x.std()) > 0.05  # a real picture, not a blank


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_colour_images_have_three_distinct_channels(name):
    x = load_image(name, size=64, gray=False)
    assert x.shape == (3, 64, 64)
    assert float((x[0] - x[2]).abs().mean()) > 0.01


def test_gray_of_colour_is_luminance():
    rgb = load_image("coffee", size=32, gray=False)
    gray = load_image("coffee", size=32, gray=True)
    lum = 0.2125 * rgb[0] + 0.7154 * rgb[1] + 0.0721 * rgb[2]  # ITU-R 709 weights
    assert torch.allclose(gray[0], lum, atol=2e-2)


def test_crop_is_a_full_resolution_detail():
    whole = load_image("camera")
    detail = load_image("camera", size=64, crop=64)
    assert torch.equal(detail, whole[:, 96:160, 96:160])


def test_add_noise_statistics_and_reproducibility():
    x = torch.full((1, 200, 200), 0.5)
    y1 = add_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    y2 = add_noise(x, 0.1, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y1, y2)
    n = (y1 - x).flatten()
    assert abs(float(n.mean())) < 0.003 and abs(float(n.std()) - 0.1) < 0.003
    assert float(add_noise(x, 0.5, clip=True).max()) <= 1.0


def test_psnr_matches_definition():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 16, 16, generator=g)
    x_hat = x + 0.05 * torch.randn(3, 16, 16, generator=g)
    mse = float(((x_hat.double() - x.double()) ** 2).mean())
    assert psnr(x_hat, x) == pytest.approx(10 * math.log10(1 / mse), abs=1e-9)


def test_estimate_sigma_close_to_truth():
    x = load_image("camera", size=128)
    for sigma in (10 / 255, 25 / 255, 50 / 255):
        y = add_noise(x, sigma, generator=torch.Generator().manual_seed(1))
        assert abs(estimate_sigma(y) - sigma) < 0.15 * sigma


def test_channel_layout_conversions_move_the_channel_axis_and_share_memory():
    x = torch.arange(24.0).reshape(3, 2, 4)  # (C, H, W)
    for img in (x, x.numpy()):
        hwc = to_hwc(img)
        assert tuple(hwc.shape) == (2, 4, 3) and type(hwc) is type(img)
        for c in range(3):
            for r in range(2):
                for col in range(4):
                    assert hwc[r, col, c] == img[c, r, col]
        back = to_chw(hwc)
        assert tuple(back.shape) == (3, 2, 4) and (back == img).all()
        hwc[0, 0, 0] = -1.0  # a view: no copy
        assert img[0, 0, 0] == -1.0
    gray = torch.rand(1, 5, 6)
    assert torch.equal(to_hwc(gray, squeeze=True), gray[0])
    assert to_hwc(gray).shape == (5, 6, 1)
    assert to_hwc(x, squeeze=True).shape == (2, 4, 3)  # squeezes only one channel
    assert torch.equal(to_chw(gray[0]), gray)  # (H, W) -> (1, H, W)
    with pytest.raises(ValueError, match=r"img must have shape \(C, H, W\)"):
        to_hwc(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"img must have shape \(H, W, C\) or \(H, W\)"):
        to_chw(np.zeros((1, 2, 3, 4)))
    with pytest.raises(TypeError, match="img must be a torch.Tensor or numpy.ndarray"):
        to_hwc([[[0.0]]])


def test_list_images():
    assert set(list_images()) == {"astronaut", "brick", "camera", "chelsea", "coffee", "grass"}


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: load_image("house"), ValueError, "name must be one of"),
        (lambda: load_image(3), TypeError, "name must be a str"),
        (lambda: load_image("camera", gray=False), ValueError, "gray image"),
        (lambda: load_image("camera", size=0), ValueError, "size must be > 0"),
        (lambda: load_image("camera", size=2.5), TypeError, "size must be an int"),
        (lambda: load_image("camera", crop=300), ValueError, "crop must be at most"),
        (lambda: add_noise(torch.zeros(4, 4), 0.1), ValueError, "x must have 3"),
        (lambda: add_noise(torch.zeros(1, 4, 4, dtype=torch.int64), 0.1), TypeError, "x must be a real"),
        (lambda: add_noise(torch.zeros(1, 4, 4), -0.1), ValueError, "sigma must be > 0"),
        (lambda: add_noise(torch.zeros(1, 4, 4), 0.1, generator=0), TypeError, "generator"),
        (lambda: psnr(torch.zeros(1, 4, 4), torch.zeros(1, 4, 5)), ValueError, "same shape"),
        (lambda: psnr(np.zeros(3), torch.zeros(3)), TypeError, "torch.Tensor"),
        (lambda: estimate_sigma(torch.full((1, 8, 8), float("nan"))), ValueError, "NaN"),
        (lambda: estimate_sigma(torch.zeros(2, 8, 8)), ValueError, "C = 1"),
    ],
)
def test_bad_input_names_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
