"""Tests of ntkutils.nystrom: landmarks cover the image, the eigenpairs are those of
``C A^+ C^T`` computed with a pseudo-inverse, and exact when every pixel is a landmark."""
import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")

from _filter_helpers import (  # noqa: E402
    arccos_ntk,
    camera32,  # noqa: F401  (a fixture)
    gen,
    small,  # noqa: F401  (a fixture)
)
from ntkutils.nystrom import landmark_pixels, nystrom_eigenpairs  # noqa: E402
from ntkutils.spectral import gd_filter  # noqa: E402


# ------------------------------------------------------------------ landmarks
@pytest.mark.parametrize("method", ["grid", "random"])
def test_landmark_pixels(method):
    for shape, m in [((16, 16), 1), ((16, 16), 37), ((10, 23), 100), ((7, 5), 35)]:
        S = landmark_pixels(shape, m, method=method, generator=gen(4))
        assert S.dtype == torch.int64 and S.shape == (m,)
        assert S.unique().numel() == m
        assert torch.all(S[1:] > S[:-1]) and S.min() >= 0 and S.max() < shape[0] * shape[1]
    S1 = landmark_pixels((20, 20), 50, method=method, generator=gen(5))
    S2 = landmark_pixels((20, 20), 50, method=method, generator=gen(5))
    assert torch.equal(S1, S2)


def test_grid_landmarks_cover_the_image():
    S = landmark_pixels((32, 32), 64, method="grid", generator=gen(6))
    rows, cols = S // 32, S % 32
    counts = torch.zeros(8, 8)  # 64 cells of 4 x 4 pixels: exactly one landmark each
    for r, c in zip(rows.tolist(), cols.tolist()):
        counts[r // 4, c // 4] += 1
    assert torch.all(counts == 1)


# ------------------------------------------------------------------ Nyström
def test_nystrom_is_orthonormal_and_matches_C_Apinv_Ct(camera32):
    x, y, K, lam, V = camera32
    S = landmark_pixels((32, 32), 100, method="random", generator=gen(7))
    C = K[:, S]
    lam_n, V_n = nystrom_eigenpairs(C, S)
    assert torch.all(lam_n[:-1] >= lam_n[1:]) and torch.all(lam_n > 0)
    torch.testing.assert_close(V_n.T @ V_n, torch.eye(V_n.shape[1], dtype=torch.float64),
                               rtol=0, atol=1e-9)
    approx = C @ torch.linalg.pinv(K[S][:, S], hermitian=True, rtol=1e-10) @ C.T
    torch.testing.assert_close(V_n @ torch.diag(lam_n) @ V_n.T, approx,
                               rtol=0, atol=1e-8 * float(K.abs().max()))


def test_nystrom_with_every_pixel_is_exact(small):
    x, y, K, lam, V = small
    S = landmark_pixels((16, 16), 256, generator=gen(8))
    lam_n, V_n = nystrom_eigenpairs(K[:, S], S, rcond=1e-13)
    steps = [1, 10, 100, 1000]
    torch.testing.assert_close(gd_filter(y, lam_n, V_n, steps), gd_filter(y, lam, V, steps),
                               rtol=0, atol=1e-6)


def test_nystrom_error_falls_with_landmarks(camera32):
    x, y, K, lam, V = camera32
    t = [60]
    exact = gd_filter(y, lam, V, t)
    errors = []
    for m in [32, 128, 512]:
        S = landmark_pixels((32, 32), m, generator=gen(9))
        lam_n, V_n = nystrom_eigenpairs(K[:, S], S)
        z = gd_filter(y, lam_n, V_n, t)
        errors.append(float((z - exact).norm() / exact.norm()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.05


def test_nystrom_survives_a_singular_landmark_block():
    y = torch.full((1, 16, 16), 0.5, dtype=torch.float64)
    y[:, :, 8:] = 0.2  # two flat halves: many identical patches, a rank-deficient block
    K = arccos_ntk(y)
    S = torch.arange(0, 256, 3)
    lam_n, V_n = nystrom_eigenpairs(K[:, S], S)
    assert torch.isfinite(lam_n).all() and torch.isfinite(V_n).all()
    assert V_n.shape[1] < len(S)  # repeated patches dropped
    torch.testing.assert_close(V_n.T @ V_n, torch.eye(V_n.shape[1], dtype=torch.float64),
                               rtol=0, atol=1e-8)


def test_nystrom_refuses_bad_landmarks(small):
    x, y, K, lam, V = small
    S = torch.tensor([0, 5, 9])
    with pytest.raises(TypeError, match="landmarks"):
        nystrom_eigenpairs(K[:, S], S.double())
    with pytest.raises(ValueError, match="landmarks"):
        nystrom_eigenpairs(K[:, S], torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="distinct"):
        nystrom_eigenpairs(K[:, S], torch.tensor([0, 5, 5]))
    with pytest.raises(ValueError, match="n_landmarks"):
        landmark_pixels((4, 4), 17)
    with pytest.raises(ValueError, match="method"):
        landmark_pixels((4, 4), 3, method="sobol")
