"""Independent computations the tests compare ``ntkutils`` with (shared by several test files).

``ContractCNN`` writes the finite network of the shared contract (NTK parameterisation, zero
padding, no bias) from its definition, independently of :mod:`ntkutils.networks`;
``jacobian_ntk`` forms ``J J^T`` from the full Jacobian; ``camera`` and ``astronaut`` are small
float64 details of the shipped images.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev

from ntkutils.images import load_image


def camera(side: int, top: int = 100, left: int = 90) -> torch.Tensor:
    """A ``side x side`` full-resolution detail of the camera image, float64 (1, side, side)."""
    return load_image("camera")[:, top:top + side, left:left + side].double()


def astronaut(side: int) -> torch.Tensor:
    return load_image("astronaut", gray=False)[:, 60:60 + side, 100:100 + side].double()


class ContractCNN(nn.Module):
    """The shared parameterisation, written from its definition: ``depth`` x (k x k conv,
    scaled by fan_in^-1/2, ReLU), then a 1x1 conv scaled by c^-1/2; N(0, 1) weights."""

    def __init__(self, C, c, depth, k, generator):
        super().__init__()
        self.k = k
        self.ws = nn.ParameterList(
            nn.Parameter(torch.randn(c, C if l == 0 else c, k, k, generator=generator))
            for l in range(depth)
        )
        self.a = nn.Parameter(torch.randn(C, c, 1, 1, generator=generator))

    def forward(self, u):  # (B, C, H, W)
        h = u
        for w in self.ws:
            h = torch.relu(F.conv2d(h, w, padding=self.k // 2) / math.sqrt(w[0].numel()))
        return F.conv2d(h, self.a) / math.sqrt(self.a.shape[1])


def jacobian_ntk(model: nn.Module, u: torch.Tensor) -> torch.Tensor:
    """J J^T over all outputs, from the full Jacobian (torch.func.jacrev)."""
    params = {k: p.detach() for k, p in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (u,)).reshape(-1))(params)
    J = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)  # (N, P)
    return (J @ J.T).double()
