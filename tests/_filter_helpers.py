"""Kernels and fixtures shared by the tests of the spectral filter, Nyström and stopping.

The kernels here are written independently of the package (a patch arc-cosine kernel and a
Gaussian patch kernel), so those tests do not depend on ntkutils.kernels.
"""
import math

import pytest
import torch

from ntkutils.images import add_noise, load_image
from ntkutils.spectral import eigh_psd

SIGMA = 25 / 255


def gen(seed):
    return torch.Generator().manual_seed(seed)


def patches(u, k):
    """(n, C k k) zero-padded patches, written independently with a loop over offsets."""
    C, H, W = u.shape
    p = k // 2
    padded = torch.zeros(C, H + 2 * p, W + 2 * p, dtype=u.dtype)
    padded[:, p:p + H, p:p + W] = u
    cols = [padded[:, dr:dr + H, dc:dc + W].reshape(C, -1) for dr in range(k) for dc in range(k)]
    return torch.cat(cols, 0).T  # (n, C k k)


def arccos_ntk(u, k=3):
    """|u_i||u_j| (sin phi + 2 (pi - phi) cos phi) / (2 pi d): the contract's depth-1 NTK."""
    P = patches(u.double(), k)
    d = P.shape[1]
    norms = P.norm(dim=1)
    prod = norms[:, None] * norms[None, :]
    cos = torch.where(prod > 0, (P @ P.T) / prod.clamp_min(1e-300), torch.ones(()))
    phi = torch.arccos(cos.clamp(-1, 1))
    return prod * (torch.sin(phi) + 2 * (math.pi - phi) * torch.cos(phi)) / (2 * math.pi * d)


def gauss_kernel(u, k=3, h=0.3):
    P = patches(u.double(), k)
    return torch.exp(-torch.cdist(P, P).pow(2) / h**2)


def _camera(size, seed):
    """A camera crop, its noisy version and the arc-cos kernel of the noisy image."""
    x = load_image("camera", size=size).double()
    y = add_noise(x, SIGMA, generator=gen(seed))
    K = arccos_ntk(y)
    lam, V = eigh_psd(K)
    return x, y, K, lam, V


@pytest.fixture(scope="module")
def small():
    """16 x 16: (x, y, K, lam, V)."""
    return _camera(16, 0)


@pytest.fixture(scope="module")
def camera32():
    """32 x 32: (x, y, K, lam, V)."""
    return _camera(32, 1)


def filter_matrix(K, lr, t):
    n = K.shape[0]
    eye = torch.eye(n, dtype=K.dtype)
    return eye - torch.linalg.matrix_power(eye - lr * K, t)
