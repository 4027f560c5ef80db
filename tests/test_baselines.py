"""Tests of ntkutils.baselines: the non-local-means weights against scikit-image."""
import math

import numpy as np
import pytest
import torch
from skimage.restoration import denoise_nl_means

from _filter_helpers import gen
from ntkutils.baselines import nlm_weights
from ntkutils.images import add_noise, load_image


# ------------------------------------------------------------------ NLM weights
def fast_exp(v):
    """Schraudolph's (1999) exponential, which scikit-image's NLM uses: write
    2^20/ln 2 * v + (1023 * 2^20 - 60801) into the high 32 bits of a double."""
    high = np.trunc(1512775.0 * v + 1072632447.0).astype(np.int64)
    return (high << 32).view(np.float64)


@pytest.mark.parametrize("colour", [False, True])
@pytest.mark.parametrize("sigma", [None, 0.1])
def test_nlm_weights_match_scikit_image(colour, sigma):
    x = load_image("astronaut" if colour else "camera", size=32, gray=not colour).double()
    y = add_noise(x, 0.1, generator=gen(10))
    for pixel in [(16, 16), (3, 29)]:
        # choose h so that no weight falls below scikit-image's cut-off exp(-5)
        w1 = nlm_weights(y, pixel, patch_size=5, h=1.0, search_window=4)
        dist = -torch.log(w1[w1 > 0] / w1[pixel])
        h = math.sqrt(float(dist.max()) / 4.5)
        ref = denoise_nl_means(y.permute(1, 2, 0).numpy(), patch_size=5, patch_distance=4,
                               h=h, sigma=sigma or 0.0, fast_mode=False, channel_axis=-1)
        w = nlm_weights(y, pixel, patch_size=5, h=h, sigma=sigma, search_window=4).numpy()
        inside = w > 0
        assert inside.sum() == 81 or pixel == (3, 29)
        # our exact weights, recomputed with scikit-image's approximate exp
        D = -np.log(w[inside] / w[pixel])
        u = fast_exp(-D)
        est = (y.numpy()[:, inside] * u).sum(1) / u.sum()
        np.testing.assert_allclose(est, ref[pixel], rtol=0, atol=1e-6)


def test_nlm_weights_properties():
    y = torch.full((1, 24, 24), 0.2, dtype=torch.float64)
    y[:, :, 12:] = 0.8  # two flat halves
    y = y + 0.02 * torch.randn(y.shape, generator=gen(11), dtype=torch.float64)
    w = nlm_weights(y, (12, 4), patch_size=5, h=0.05)
    assert w.shape == (24, 24) and torch.all(w >= 0)
    assert abs(float(w.sum()) - 1) < 1e-12
    assert w.argmax() == 12 * 24 + 4  # the pixel's own patch is the most similar
    assert float(w[:, :10].sum()) > 0.99  # spread over the flat left half only
    assert float(w[:, :10].max()) < 0.05  # ... and spread, not concentrated
    w = nlm_weights(y, (12, 4), patch_size=5, h=0.05, search_window=3)
    assert float(w[:, 8:].sum()) == 0 and float(w[:8].sum()) == 0
    with pytest.raises(ValueError, match="pixel"):
        nlm_weights(y, (24, 0))
    with pytest.raises(ValueError, match="h must be > 0"):
        nlm_weights(y, (0, 0), h=-1.0)
