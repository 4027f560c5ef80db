"""What :func:`ntkutils.training.fit` records while it trains, one small object per record.

Each recorder has ``steps``, the steps ``t`` at which it records, ``record(t, z_t)``, which
takes the network's output ``z^t = f(u; w^t)`` (detached) after ``t`` updates, and
``result()``, what it kept.  :func:`~ntkutils.training.fit` hands ``z^t`` to every recorder
whose ``steps`` hold ``t``; each recorder can also be built and fed by hand.

- :class:`MetricRecorder`: the loss ``1/2 ||z^t - y||^2``, the PSNR and the oracle best step
- :class:`WeightRecorder`: ``||w^t - w^0||`` per weight tensor (a :class:`WeightChange`)
- :class:`SnapshotRecorder`: copies of ``z^t``
- :class:`KernelRecorder`: the empirical tangent kernel at ``w^t``
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn

from .empirical import frozen_running_stats, ntk_empirical
from .images import psnr

__all__ = [
    "WeightChange",
    "MetricRecorder",
    "WeightRecorder",
    "SnapshotRecorder",
    "KernelRecorder",
]


@dataclass(frozen=True)
class WeightChange:
    """Distance of the weights from their initial values, at the recorded steps.

    Each dict maps a parameter name (``model.named_parameters()``) to a ``(R,)``
    float64 tensor over the recorded steps; ``total_*`` are over all parameters at once.
    ``*_rel`` divide by the same norm of the initial tensor (``nan`` where it is 0).
    """

    l2: dict[str, torch.Tensor]
    inf: dict[str, torch.Tensor]
    l2_rel: dict[str, torch.Tensor]
    inf_rel: dict[str, torch.Tensor]
    total_l2: torch.Tensor
    total_inf: torch.Tensor
    total_l2_rel: torch.Tensor
    total_inf_rel: torch.Tensor


class MetricRecorder:
    """The loss ``1/2 ||z^t - y||^2`` and, given the clean ``x``, the PSNR and the best step.

    Examples
    --------
    >>> x = torch.zeros(1, 2, 2)
    >>> rec = MetricRecorder([0, 1], y=x + 0.5, x=x)
    >>> rec.record(0, x + 0.1); rec.record(1, x + 0.4)
    >>> [round(v, 4) for v in rec.losses], rec.best_step, round(rec.best_psnr, 2)
    ([0.32, 0.02], 0, 20.0)
    """

    def __init__(self, steps: Iterable[int], y: torch.Tensor,
                 x: torch.Tensor | None = None) -> None:
        self.steps = frozenset(steps)
        self.y, self.x = y, x
        self.recorded: list[int] = []
        self.losses: list[float] = []
        self.psnrs: list[float] = []
        self.best_step: int | None = None
        self.best_psnr = -float("inf")
        self.best_x_hat: torch.Tensor | None = None

    def record(self, t: int, z_t: torch.Tensor) -> None:
        self.recorded.append(t)
        self.losses.append(0.5 * float(((z_t - self.y) ** 2).sum()))
        if self.x is not None:
            self.psnrs.append(psnr(z_t, self.x))
            if self.psnrs[-1] > self.best_psnr:
                self.best_step, self.best_psnr = t, self.psnrs[-1]
                self.best_x_hat = z_t.clone()

    def postfix(self) -> dict[str, str]:
        """The latest loss (and PSNR) for a progress bar."""
        return {"loss": f"{self.losses[-1]:.4g}",
                **({"psnr": f"{self.psnrs[-1]:.2f}"} if self.psnrs else {})}

    def result(self) -> dict[str, object]:
        """:class:`FitResult`'s fields ``steps``, ``loss``, ``psnr`` and ``best_*``."""
        return {
            "steps": torch.tensor(self.recorded, dtype=torch.int64),
            "loss": _as_tensor(self.losses),
            "psnr": _as_tensor(self.psnrs) if self.x is not None else None,
            "best_step": self.best_step,
            "best_psnr": self.best_psnr if self.x is not None else None,
            "best_x_hat": self.best_x_hat,
        }


class WeightRecorder:
    """``||w^t - w^0||`` (2-norm and max-norm) of each parameter tensor, from ``w^0`` on.

    ``params`` are the live parameters (trained in place); their values at construction
    are ``w^0``.

    Examples
    --------
    >>> w = torch.zeros(4)
    >>> rec = WeightRecorder([0, 1], {"w": w})
    >>> rec.record(0, None); _ = w.add_(0.5); rec.record(1, None)
    >>> change = rec.result()
    >>> change.l2["w"].tolist(), change.inf["w"].tolist(), bool(change.l2_rel["w"].isnan().all())
    ([0.0, 1.0], [0.0, 0.5], True)
    """

    def __init__(self, steps: Iterable[int], params: dict[str, torch.Tensor]) -> None:
        self.steps = frozenset(steps)
        self.params = params
        self.w0 = {k: p.detach().clone() for k, p in params.items()}
        self.l2: dict[str, list[float]] = {k: [] for k in params}
        self.inf: dict[str, list[float]] = {k: [] for k in params}
        self.n_records = 0

    def record(self, t: int, z_t: torch.Tensor | None) -> None:
        with torch.no_grad():
            for k, p in self.params.items():
                d = p - self.w0[k]
                self.l2[k].append(float(d.norm()))
                self.inf[k].append(float(d.abs().max()))
        self.n_records += 1

    def result(self) -> WeightChange:
        """The changes at the recorded steps, absolute and relative to ``w^0``."""
        w0_l2 = {k: float(w.norm()) for k, w in self.w0.items()}
        w0_inf = {k: float(w.abs().max()) for k, w in self.w0.items()}
        l2 = {k: _as_tensor(v) for k, v in self.l2.items()}
        inf = {k: _as_tensor(v) for k, v in self.inf.items()}
        none = torch.zeros(self.n_records, dtype=torch.float64)  # no trainable parameter
        total_l2 = (torch.stack(list(l2.values())) ** 2).sum(0).sqrt() if l2 else none
        total_inf = torch.stack(list(inf.values())).amax(0) if inf else none
        return WeightChange(
            l2=l2,
            inf=inf,
            l2_rel={k: _relative(v, w0_l2[k]) for k, v in l2.items()},
            inf_rel={k: _relative(v, w0_inf[k]) for k, v in inf.items()},
            total_l2=total_l2,
            total_inf=total_inf,
            total_l2_rel=_relative(total_l2, sum(v**2 for v in w0_l2.values()) ** 0.5),
            total_inf_rel=_relative(total_inf, max(w0_inf.values(), default=0.0)),
        )


class SnapshotRecorder:
    """Copies of the outputs ``z^t``.

    Examples
    --------
    >>> rec = SnapshotRecorder([2])
    >>> rec.record(2, torch.ones(1)); rec.result()
    {2: tensor([1.])}
    """

    def __init__(self, steps: Iterable[int]) -> None:
        self.steps = frozenset(steps)
        self.snapshots: dict[int, torch.Tensor] = {}

    def record(self, t: int, z_t: torch.Tensor) -> None:
        self.snapshots[t] = z_t.clone()

    def result(self) -> dict[int, torch.Tensor]:
        return self.snapshots


class KernelRecorder:
    """The empirical tangent kernel of output channel 0 at the current weights.

    Rows ``rows`` only (all when None); see :func:`ntkutils.kernels.ntk_empirical`.  Batch
    norm in training mode is evaluated with batch statistics, its running ones untouched.

    Examples
    --------
    >>> from ntkutils.networks import build_single_layer_cnn
    >>> net = build_single_layer_cnn(channels=4, generator=torch.Generator().manual_seed(0))
    >>> rec = KernelRecorder([0], net, torch.rand(1, 5, 5), rows=torch.tensor([0, 3]))
    >>> rec.record(0, None); rec.result()[0].shape
    torch.Size([2, 25])
    """

    def __init__(self, steps: Iterable[int], model: nn.Module, net_input: torch.Tensor,
                 rows: torch.Tensor | None = None) -> None:
        self.steps = frozenset(steps)
        self.model, self.net_input, self.rows = model, net_input, rows
        self.ntks: dict[int, torch.Tensor] = {}

    def record(self, t: int, z_t: torch.Tensor | None) -> None:
        with frozen_running_stats(self.model):
            self.ntks[t] = ntk_empirical(self.model, self.net_input, rows=self.rows).detach()

    def result(self) -> dict[int, torch.Tensor]:
        return self.ntks


def _as_tensor(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _relative(values: torch.Tensor, norm0: float) -> torch.Tensor:
    """``values / norm0``; ``nan`` where the initial norm is 0."""
    return values / norm0 if norm0 > 0 else torch.full_like(values, float("nan"))
