"""Checkers of chapter 1, the deep image prior: the noisy PSNR, the weight count, the
patience and discrepancy stopping rules, the best step of linearised GD with a smaller step
(predict) and the vanilla CNN from a shuffled noisy image (experiment)."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..stopping import discrepancy_step
from ..images import add_noise, psnr
from ..networks import build_vanilla_cnn, count_parameters
from ._feedback import _call, _fail, _miss, _number, _pair, _passed

__all__ = ["check_ch1_noisy_psnr", "check_ch1_weight_count", "check_ch1_patience_stop",
           "check_ch1_discrepancy_stop", "check_ch1_peak_step", "check_ch1_shuffled_input"]


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


_WIDE_K5 = (1, 128, 3, 5)  # Exercise 1.2's network: (C, c, depth, k), printed nowhere above


def check_ch1_weight_count(fn: Callable[[int, int, int, int], Any], side: Any) -> None:
    """Exercise 1.2: the number of weights of the vanilla CNN, counted by hand.

    Parameters
    ----------
    fn : callable
        ``fn(C, c, depth, k) -> int``, the weight count of
        ``build_vanilla_cnn(C, c, depth, k)``.
    side : int
        The smallest side ``s`` of a square gray image with more pixels than the
        vanilla CNN of 128 channels, 3 hidden layers and 5 x 5 kernels has weights
        (``s * s > weights``): a count the chapter prints nowhere above the exercise.

    Raises
    ------
    ExerciseFailed
        On the first case whose count differs from the built network's, or when
        ``side`` is not that smallest side (or not an integer).

    Notes
    -----
    The reference builds each network and counts its trainable scalars with
    :func:`ntkutils.networks.count_parameters`; the closed form is
    ``C c k^2 + (depth - 1) c^2 k^2 + c C``.  The side's reference is the smallest
    integer whose square exceeds the built network's count (:func:`math.isqrt`).

    Examples
    --------
    >>> count = lambda C, c, L, k: C * c * k * k + (L - 1) * c * c * k * k + c * C
    >>> check_ch1_weight_count(count, math.isqrt(count(*_WIDE_K5)) + 1)
    Exercise 1.2: correct (5 networks, every count exact; the side of the image).
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
    got_side = _integer(ex, side, "side: the side of the square image, in pixels")
    net = build_vanilla_cnn(*_WIDE_K5, generator=torch.Generator().manual_seed(0))
    expected_side = math.isqrt(count_parameters(net)) + 1  # smallest s with s^2 > count
    if got_side != expected_side:
        _fail(ex, "side: the smallest side of a square gray image with more pixels than "
              "the vanilla CNN of 128 channels, depth 3 and 5 x 5 kernels has weights",
              f"{got_side}: {_miss(got_side, expected_side)}",
              "count that network's weights with your vanilla_weights(1, 128, 3, 5); the "
              "image has side * side pixels, which must be strictly more (round up)")
    _passed(ex, f"{len(cases)} networks, every count exact; the side of the image")


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


def check_ch1_patience_stop(fn: Callable[[Any, Any, int], Any], loss_kept_psnr: Any,
                            run: Any) -> None:
    """Exercise 1.3: early stopping with patience on a score curve.

    Parameters
    ----------
    fn : callable
        ``fn(steps, scores, patience) -> (best_step, stop_step)``: keep the step with
        the best score so far (strictly larger counts as better); stop at the first
        record that makes ``patience`` records in a row without improvement; the stop
        step is the last step if that never happens.
    loss_kept_psnr : float
        The PSNR (dB) of ``run``'s recorded output at the step that the rule keeps
        with patience 40 and minus the recorded loss as the score (a score that needs
        no clean image); within 0.05 dB.
    run : FitResult
        The run the rule is applied to (``steps``, ``loss`` and ``psnr`` records, as
        :func:`ntkutils.training.fit` returns them).

    Raises
    ------
    ExerciseFailed
        Naming the curve and the patience of the first case that differs.

    Notes
    -----
    The cases cover a single peak, a monotone rise (never stops), ties (a tie is not
    an improvement), a second higher peak hidden behind a dip, and tensor inputs as
    :func:`ntkutils.training.fit` returns them.

    The run's reference step comes from this module's own patience rule on
    ``-run.loss``; the reader's PSNR is compared with ``run.psnr`` at that step.

    Examples
    --------
    >>> from types import SimpleNamespace
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
    >>> steps = torch.arange(0, 1000, 10)
    >>> run = SimpleNamespace(steps=steps, loss=1.0 / (1.0 + steps),
    ...                       psnr=20.0 + torch.sin(steps / 300.0))
    >>> kept = rule(run.steps, -run.loss, 40)[0]
    >>> check_ch1_patience_stop(rule, float(run.psnr[run.steps == kept]), run)
    Exercise 1.3: correct (7 cases; the PSNR kept by the loss-based rule).
    """
    ex = "Exercise 1.3"
    records = [getattr(run, name, None) for name in ("steps", "loss", "psnr")]
    if not all(isinstance(r, torch.Tensor) and r.dim() == 1 for r in records) or len(
            {len(r) for r in records}) != 1:
        _fail(ex, "run: a training run with steps, loss and psnr records of one length",
              type(run).__name__, "pass the first seed's deep image prior run, dip")
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
    got = float(_number(ex, loss_kept_psnr, "loss_kept_psnr: a PSNR in dB",
                        "return a Python float"))
    steps, loss, scores = ([float(v) for v in r] for r in records)
    kept, _ = _patience_reference([int(t) for t in steps], [-v for v in loss], 40)
    expected = scores[[int(t) for t in steps].index(kept)]
    if not abs(got - expected) <= 0.05:
        _fail(ex, "loss_kept_psnr: the PSNR of the output kept with minus the loss as "
              "the score, patience 40, within 0.05 dB",
              f"{got:.4g} dB: {_miss(got, expected)}",
              "apply your rule to run.steps and -run.loss with patience 40, then read "
              "run.psnr at the step it keeps (not at the step where it stops)")
    _passed(ex, f"{len(cases)} cases; the PSNR kept by the loss-based rule")


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


def _gd_best_steps(runs: Sequence[Any], y: torch.Tensor, x: torch.Tensor,
                   factor: float) -> list[int]:
    """Best (oracle) step of each linearised run with the step ``lr / factor``.

    Independent of :func:`ntkutils.spectral.gd_filter`: the closed form
    ``z^t = z^0 + V diag(1 - (1 - lr lam)^t) V^T (y - z^0)`` written out here, on a
    log grid of steps up to ``10^10``.
    """
    steps = torch.unique(torch.logspace(0, 10, 201, dtype=torch.float64).round())  # (T,)
    y64, x64 = y.detach().double().reshape(-1), x.detach().double().reshape(-1)  # (d,)
    best = []
    for run in runs:
        lam, V = run.eigvals[0].double(), run.eigvecs[0].double()  # (m,), (d, m)
        z0 = run.f0.double().reshape(-1)  # (d,)
        coef = V.T @ (y64 - z0)  # (m,)
        factor_t = 1 - (1 - (run.lr / factor) * lam)[None, :] ** steps[:, None]  # (T, m)
        z = z0[None, :] + (factor_t * coef[None, :]) @ V.T  # (T, d)
        mse = ((z - x64[None, :]) ** 2).mean(dim=1)  # (T,)
        best.append(int(steps[int(torch.argmin(mse))]))
    return best


def check_ch1_peak_step(prediction: Any, runs: Sequence[Any], y: torch.Tensor,
                        x: torch.Tensor, *, factor: float = 100) -> None:
    """Exercise 1.5 (predict): the best step of linearised GD with a smaller step.

    Parameters
    ----------
    prediction : float
        The reader's predicted best (oracle) step with the step ``lr / factor``.
    runs : sequence of LinearisedGD
        The chapter's linearised runs (one per seed, single output channel, joint
        kernel): their eigenpairs, ``f0`` and ``lr`` are reused.
    y, x : torch.Tensor, shape (1, H, W)
        The noisy and the clean image.
    factor : float, default 100
        How many times smaller the new step is.

    Raises
    ------
    ExerciseFailed
        When the prediction is not a positive number, or lies outside the seeds'
        best steps widened by a factor ``10^0.5`` on each side.

    Notes
    -----
    The reference evaluates the closed form of gradient descent with a fixed kernel
    itself (not through the package's filter) at 201 log-spaced steps up to ``10^10``.
    """
    ex = "Exercise 1.5"
    got = float(_number(ex, prediction, "a number of steps (your prediction)",
                        "set predicted_peak_step to a number, e.g. 1e3"))
    if not got > 0 or not torch.isfinite(torch.tensor(got)):
        _fail(ex, "a positive number of steps", f"{got!r}",
              "a step count is positive")
    if not isinstance(runs, (list, tuple)) or len(runs) < 3 or not all(
            hasattr(r, "eigvals") and hasattr(r, "lr") for r in runs):
        _fail(ex, "the linearised runs of section 4 (a list of at least 3)",
              f"{type(runs).__name__}", "pass the list of the three seeds' runs")
    if not (isinstance(factor, (int, float)) and not isinstance(factor, bool)
            and factor > 0):
        _fail(ex, "factor, a positive number", f"{factor!r}", "keep factor=100")
    best = _gd_best_steps(runs, y, x, float(factor))
    low, high = min(best) / 10**0.5, max(best) * 10**0.5
    if not low <= got <= high:
        centre = math.exp(sum(math.log(t) for t in best) / len(best))
        _fail(ex, f"the order of magnitude of the best step with the step eta/{factor:g}, "
              f"against {len(best)} seeds", f"{got:.3g}: {_miss(got, centre)}",
              "component i is fitted once eta * lambda_i * t is about 1, so the "
              "best step is set by the product eta * t: what must t do when eta "
              "shrinks?")
    _passed(ex, f"your prediction is within a factor 3 of the best steps of "
            f"{len(best)} seeds")


def check_ch1_shuffled_input(
    shuffled_input: Callable[[torch.Tensor, torch.Generator], Any],
    shuffled_best: Any, closer_to: Any, y: torch.Tensor, x: torch.Tensor,
    reference: dict, *, channels: int = 32, depth: int = 3,
) -> None:
    """Exercise 1.6 (experiment): the vanilla CNN with the noisy image's pixels shuffled.

    Parameters
    ----------
    shuffled_input : callable
        ``shuffled_input(y, generator) -> (C, H, W)``: the pixels of ``y`` in a random
        order, one permutation for all channels.
    shuffled_best : sequence of float
        The reader's oracle best PSNRs (dB) of linearised GD, one per seed (at least 3).
    closer_to : {"noisy image", "iid noise"}
        Which of section 4's vanilla-CNN inputs the result resembles.
    y, x : torch.Tensor, shape (C, H, W)
        The noisy and the clean image.
    reference : dict
        ``{"noisy image": [...], "iid noise": [...]}``: section 4's linearised best
        PSNRs of the vanilla CNN, one per seed.
    channels, depth : int
        The vanilla CNN's width and hidden layers (the chapter's).

    Raises
    ------
    ExerciseFailed
        When the input is not a shuffle of ``y``, the PSNRs disagree with the
        checker's own run, or ``closer_to`` is not the input whose PSNRs are nearer.

    Notes
    -----
    The reference shuffles ``y`` with the reader's function (seeded), builds its own
    vanilla CNN (seed 12345) and runs :func:`ntkutils.linearised.linearised_gd` with
    the exact kernel; the reader's values must lie within 0.5 dB of its best PSNR.
    """
    from ..linearised import linearised_gd

    ex = "Exercise 1.6"
    C, n = y.shape[0], y[0].numel()
    index = torch.arange(n, dtype=y.dtype).repeat(C, 1).reshape(y.shape)  # (C, H, W)
    moved = _call(ex, shuffled_input, index, torch.Generator().manual_seed(2024))
    u = _call(ex, shuffled_input, y, torch.Generator().manual_seed(2024))
    for name, got in (("pixel indices", moved), ("y", u)):
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(y.shape):
            _fail(ex, f"a tensor of the input's shape {tuple(y.shape)} (for {name})",
                  f"{type(got).__name__} {tuple(getattr(got, 'shape', ()))}",
                  "reshape the permuted pixels back to (C, H, W)")
    perm = moved.reshape(C, -1)  # (C, n): where each output pixel came from
    if not torch.equal(perm.sort(dim=1).values, index.reshape(C, -1)):
        _fail(ex, "each pixel of the input exactly once", "other values",
              "permute the pixels (torch.randperm), do not draw new values")
    if not torch.equal(perm, perm[:1].expand_as(perm)):
        _fail(ex, "one permutation for all channels", "channels shuffled differently",
              "draw one permutation of the n pixels and apply it to every channel")
    if (perm[0] == torch.arange(n, dtype=perm.dtype)).float().mean() > 0.5:
        _fail(ex, "the pixels in a new order", "most pixels where they were",
              "apply a random permutation of the n pixel positions")
    order = perm[0].long()  # (n,)
    if not torch.equal(u.reshape(C, -1), y.reshape(C, -1)[:, order]):
        _fail(ex, "the same permutation for the same generator, applied to y",
              "a different result", "take every random draw from the generator argument")
    values = _values(ex, shuffled_best)
    if not isinstance(closer_to, str) or closer_to not in ("noisy image", "iid noise"):
        _fail(ex, 'closer_to, "noisy image" or "iid noise"', f"{closer_to!r}",
              "name one of the two inputs of section 4")
    ref = {k: _values(ex, reference.get(k) if isinstance(reference, dict) else None)
           for k in ("noisy image", "iid noise")}
    net = build_vanilla_cnn(y.shape[0], channels, depth,
                            generator=torch.Generator().manual_seed(12345)).to(y)
    run = linearised_gd(net, u.detach().to(y), y, x=x)
    own = float(run.psnr[run.index])
    mean = sum(values) / len(values)
    if not min(values) - 0.5 <= own <= max(values) + 0.5:
        _fail(ex, "your best PSNRs, against the checker's own shuffled run (within "
              "0.5 dB of your seeds' range)", f"mean {mean:.1f} dB: {_miss(mean, own)}",
              "take the oracle best PSNR of each run (run.psnr[run.index]) with x given")
    distance = {k: abs(sum(v) / len(v) - own) for k, v in ref.items()}
    right = min(distance, key=distance.get)
    if closer_to != right:
        _fail(ex, "which input's best PSNRs yours resemble", f"{closer_to!r}",
              "compare your three values with section 4's table; then ask what a "
              "CNN's kernel compares at two pixels, and what shuffling does to it")
    _passed(ex, f"a shuffle of y; {len(values)} seeds' PSNRs agree with the checker's "
            "own run; the nearer input named")


def _values(exercise: str, values: Any) -> list[float]:
    """At least three finite PSNRs (dB), one per seed, or feedback."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().reshape(-1).tolist()
    if not isinstance(values, (list, tuple)) or len(values) < 3:
        _fail(exercise, "a list of at least 3 PSNRs (dB), one per seed",
              f"{type(values).__name__} {values!r}"[:80],
              "collect one value per seed in a list")
    out = []
    for v in values:
        v = _number(exercise, v, "each PSNR a number (dB)", "append float values")
        if not math.isfinite(v):
            _fail(exercise, "finite PSNRs", f"{v!r}", "check the run for NaN")
        out.append(float(v))
    return out
