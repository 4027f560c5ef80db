"""Checkers of chapter 1, the deep image prior: the noisy PSNR, the weight count, and the
patience and discrepancy stopping rules."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ..stopping import discrepancy_step
from ..images import add_noise, psnr
from ..networks import build_vanilla_cnn, count_parameters
from ._feedback import _call, _fail, _miss, _number, _pair, _passed

__all__ = ["check_ch1_noisy_psnr", "check_ch1_weight_count", "check_ch1_patience_stop",
           "check_ch1_discrepancy_stop"]


def _integer(exercise: str, value: Any, what: str) -> int:
    """The reader's integer answer (int, integral float or 1-element tensor) or feedback."""
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()  # a 1-element tensor or a NumPy scalar
    return int(_number(exercise, value, f"{what}, an integer", "return a Python int",
                       integral=True))


def check_ch1_noisy_psnr(fn: Callable[[float], Any]) -> None:
    """Exercise 1.1: the PSNR of a noisy image predicted from ``sigma`` alone.

    Parameters
    ----------
    fn : callable
        ``fn(sigma) -> float``, the predicted PSNR in dB of ``y = x + n`` with
        ``n ~ N(0, sigma^2 I)`` (``sigma`` on the [0, 1] scale).

    Raises
    ------
    ExerciseFailed
        When a prediction is off by more than 0.1 dB from the measured PSNR.

    Notes
    -----
    The reference is a measurement, not the formula: the package's
    :func:`ntkutils.images.psnr` of a simulated noisy 256 x 256 image (seeded), whose
    squared error averages ``sigma^2`` over 65,536 pixels to within about 1 %, so it
    matches ``10 log10(1 / sigma^2)`` to a few hundredths of a dB.

    Examples
    --------
    >>> import math
    >>> check_ch1_noisy_psnr(lambda sigma: -20 * math.log10(sigma))
    Exercise 1.1: correct (4 noise levels, each within 0.1 dB of the measured PSNR).
    """
    ex = "Exercise 1.1"
    x = torch.full((1, 256, 256), 0.5, dtype=torch.float64)
    for k, level in enumerate((5, 15, 25, 50)):
        sigma = level / 255
        y = add_noise(x, sigma, generator=torch.Generator().manual_seed(100 + k))
        expected = psnr(y, x)
        got = _number(ex, _call(ex, fn, sigma), "a number (the PSNR in dB)",
                      "return a Python float")
        if not abs(got - expected) <= 0.1:
            _fail(ex, f"the PSNR of y for sigma = {level}/255, within 0.1 dB of the "
                  "measured one", f"{got:.4g}: {_miss(got, expected)}",
                  "the expected MSE of y is sigma^2; PSNR = 10 log10(1 / MSE) for "
                  "images in [0, 1]")
    _passed(ex, "4 noise levels, each within 0.1 dB of the measured PSNR")


def check_ch1_weight_count(fn: Callable[[int, int, int, int], Any]) -> None:
    """Exercise 1.2: the number of weights of the vanilla CNN, counted by hand.

    Parameters
    ----------
    fn : callable
        ``fn(C, c, depth, k) -> int``, the weight count of
        ``build_vanilla_cnn(C, c, depth, k)``.

    Raises
    ------
    ExerciseFailed
        On the first case whose count differs from the built network's.

    Notes
    -----
    The reference builds each network and counts its trainable scalars with
    :func:`ntkutils.networks.count_parameters`; the closed form is
    ``C c k^2 + (depth - 1) c^2 k^2 + c C``.

    Examples
    --------
    >>> check_ch1_weight_count(
    ...     lambda C, c, L, k: C * c * k * k + (L - 1) * c * c * k * k + c * C)
    Exercise 1.2: correct (5 networks, every count exact).
    """
    ex = "Exercise 1.2"
    cases = [(1, 64, 3, 3), (1, 8, 1, 3), (3, 16, 2, 5), (3, 32, 5, 3), (1, 128, 3, 3)]
    for C, c, depth, k in cases:
        net = build_vanilla_cnn(C, c, depth, k, generator=torch.Generator().manual_seed(0))
        expected = count_parameters(net)
        got = _integer(ex, _call(ex, fn, C, c, depth, k), "a weight count")
        if got != expected:
            _fail(ex, f"the number of weights for C={C}, c={c}, depth={depth}, k={k}",
                  f"{got}: {_miss(got, expected)}",
                  "count each convolution: c_in * c_out * k * k; the first layer has "
                  "c_in = C, the others c_in = c, and the 1 x 1 readout has c * C; "
                  "no biases")
    _passed(ex, f"{len(cases)} networks, every count exact")


def _patience_reference(steps: list[int], scores: list[float],
                            patience: int) -> tuple[int, int]:
    """Index-based patience rule: the best index so far and the first stale run."""
    best = 0
    for i in range(1, len(scores)):
        if scores[i] > scores[best]:
            best = i
        elif i - _last_improvement(scores, i) >= patience:
            return steps[best], steps[i]
    return steps[best], steps[-1]


def _last_improvement(scores: list[float], i: int) -> int:
    """Index of the last record up to ``i`` that set a new strict maximum."""
    last, running = 0, scores[0]
    for j in range(1, i + 1):
        if scores[j] > running:
            last, running = j, scores[j]
    return last


def check_ch1_patience_stop(fn: Callable[[Any, Any, int], Any]) -> None:
    """Exercise 1.3: early stopping with patience on a score curve.

    Parameters
    ----------
    fn : callable
        ``fn(steps, scores, patience) -> (best_step, stop_step)``: keep the step with
        the best score so far (strictly larger counts as better); stop at the first
        record that makes ``patience`` records in a row without improvement; the stop
        step is the last step if that never happens.

    Raises
    ------
    ExerciseFailed
        Naming the curve and the patience of the first case that differs.

    Notes
    -----
    The cases cover a single peak, a monotone rise (never stops), ties (a tie is not
    an improvement), a second higher peak hidden behind a dip, and tensor inputs as
    :func:`ntkutils.training.fit` returns them.

    Examples
    --------
    >>> def rule(steps, scores, patience):
    ...     best, wait = 0, 0
    ...     for i in range(1, len(scores)):
    ...         if scores[i] > scores[best]:
    ...             best, wait = i, 0
    ...         else:
    ...             wait += 1
    ...             if wait == patience:
    ...                 return int(steps[best]), int(steps[i])
    ...     return int(steps[best]), int(steps[-1])
    >>> check_ch1_patience_stop(rule)
    Exercise 1.3: correct (7 cases).
    """
    ex = "Exercise 1.3"
    peak_t = list(range(0, 205, 5))
    peak = [-((t - 60) / 50.0) ** 2 for t in peak_t]
    bumpy = [1.0, 3.0, 2.0, 2.5, 2.0, 4.0, 1.0, 1.0, 1.0]
    cases = [
        ("a single peak at t = 60", peak_t, peak, 5),
        ("a monotone rise", list(range(0, 50, 10)), [1.0, 2.0, 3.0, 4.0, 5.0], 2),
        ("a plateau (ties are not improvements)", list(range(6)),
         [1.0, 2.0, 2.0, 2.0, 2.0, 1.0], 3),
        ("a dip before a higher peak, short patience", list(range(9)), bumpy, 2),
        ("a dip before a higher peak, long patience", list(range(9)), bumpy, 4),
        ("patience longer than the curve", list(range(9)), bumpy, 100),
        ("tensors as fit() records them", torch.arange(0, 205, 5),
         torch.tensor(peak, dtype=torch.float64), 8),
    ]
    for name, steps, scores, patience in cases:
        s_list = [int(v) for v in steps]
        v_list = [float(v) for v in scores]
        expected = _patience_reference(s_list, v_list, patience)
        got = _pair(ex, _call(ex, fn, steps, scores, patience), "a pair (best_step, stop_step)",
                    "return two ints: the step kept and the step where training stops",
                    show="{type} {value!r}")
        got = (_integer(ex, got[0], "best_step"), _integer(ex, got[1], "stop_step"))
        if got != expected:
            wrong = [f"{label} {'too early' if mine < right else 'too late'}"
                     for label, mine, right in zip(("best_step", "stop_step"), got,
                                                   expected) if mine != right]
            _fail(ex, f"(best_step, stop_step) for {name}, patience {patience}",
                  f"{got}: {', '.join(wrong)}",
                  "count records since the last strict improvement; stop when that "
                  "count reaches patience; return steps, not indices")
    _passed(ex, f"{len(cases)} cases")


def check_ch1_discrepancy_stop(fn: Callable[[Any, Any, int, float], Any]) -> None:
    """Exercise 1.4: the discrepancy principle on a recorded loss curve.

    Parameters
    ----------
    fn : callable
        ``fn(steps, loss, n_values, sigma) -> int``: the first recorded step with
        ``2 * loss <= n_values * sigma**2``, where ``loss = 1/2 ||z^t - y||^2``; the
        last step when the loss never gets there.

    Raises
    ------
    ExerciseFailed
        On the first trajectory whose stopping step differs.

    Notes
    -----
    The reference is :func:`ntkutils.stopping.discrepancy_step`, which reads the
    outputs ``z^t`` themselves (``||z^t - y||^2 <= d sigma^2``, ``d = C H W``); the
    reader's function sees only the losses, as a training loop would.

    Examples
    --------
    >>> def rule(steps, loss, n_values, sigma):
    ...     for t, v in zip(steps, loss):
    ...         if 2 * float(v) <= n_values * sigma**2:
    ...             return int(t)
    ...     return int(steps[-1])
    >>> check_ch1_discrepancy_stop(rule)
    Exercise 1.4: correct (4 trajectories).
    """
    ex = "Exercise 1.4"
    g = torch.Generator().manual_seed(14)
    y = torch.rand(1, 12, 12, generator=g, dtype=torch.float64)  # (C, H, W)
    wiggle = torch.randn(1, 12, 12, generator=g, dtype=torch.float64)
    rms = float(y.pow(2).mean().sqrt())
    cases = [  # name, steps, residual fraction left at each step, sigma
        ("steps 0, 1, 2, ...", torch.arange(30), 0.8, 0.3 * rms),
        ("steps 0, 5, 10, ... (recorded every 5)", torch.arange(0, 150, 5), 0.97,
         0.2 * rms),
        ("a loss that never reaches the noise level", torch.arange(0, 40, 2), 0.99,
         0.05 * rms),
        ("a loss below the noise level from the start", torch.arange(0, 20), 0.9,
         1.5 * rms),
    ]
    for name, steps, rate, sigma in cases:
        left = rate ** steps.double()  # (T,)
        z = y[None] * (1 - left[:, None, None, None]) \
            + 0.01 * left[:, None, None, None] * wiggle[None]  # (T, C, H, W)
        loss = 0.5 * (z - y[None]).pow(2).flatten(1).sum(1)  # (T,)
        expected = discrepancy_step(y, z, sigma, steps)
        got = _integer(ex, _call(ex, fn, steps.clone(), loss.clone(), y.numel(), sigma),
                       "a step")
        if got != expected:
            _fail(ex, f"the discrepancy step for {name}",
                  f"{got}: {'too early' if got < expected else 'too late'}",
                  "loss is 1/2 ||z - y||^2, so compare 2 * loss with n_values * "
                  "sigma**2; return the step, not the index; the last step if the "
                  "loss never gets there")
    _passed(ex, f"{len(cases)} trajectories")
