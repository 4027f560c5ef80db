"""Training: fit a network to one noisy image with gradient descent or Adam.

:func:`fit` minimises ``1/2 ||f(u; w) - y||^2`` (a sum over pixels, not a mean) over the
weights ``w`` of a network ``f`` with a fixed input ``u``, full batch, and records what the
course looks at: the loss, the PSNR against the clean image when it is given, how far each
weight tensor moved from initialisation, output snapshots and empirical tangent kernels.
Gradient descent's default step is ``1 / lambda_max`` of the tangent kernel at
initialisation, found by :func:`ntk_largest_eigenvalue` (of :mod:`ntkutils.empirical`,
re-exported here).

:func:`fit` is a loop over the updates that hands the output ``z^t`` to four recorders of
:mod:`ntkutils.recorders`, one per kind of record: loss and PSNR, weight change, snapshots
and tangent kernels.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ._checks import (
    TrainingDiverged,
    check_float_dtype,
    check_generator,
    check_input_channels,
    check_memory,
    check_positive,
    check_scale,
    check_tensor,
)
from ._progress import progress_bar
from .empirical import ntk_largest_eigenvalue
from .recorders import (
    KernelRecorder,
    MetricRecorder,
    SnapshotRecorder,
    WeightChange,
    WeightRecorder,
)

__all__ = [
    "FitResult",
    "WeightChange",  # of ntkutils.recorders, re-exported
    "fit",
    "make_noise_input",
    "ntk_largest_eigenvalue",  # of ntkutils.empirical, re-exported
]

_OPTIMIZERS = ("gd", "adam")
ADAM_DEFAULT_LR = 1e-2  # the deep image prior's learning rate


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` returns.  ``R`` is the number of recorded steps.

    Attributes
    ----------
    x_hat : torch.Tensor
        Final output ``f(u; w^T)``, shape of ``y``.
    steps : torch.Tensor
        ``(R,)`` int64, the recorded steps ``t`` (0 is the initialisation, the last is
        ``n_steps``); every per-step record below refers to the weights ``w^t``.
    loss : torch.Tensor
        ``(R,)`` float64, ``1/2 ||f(u; w^t) - y||^2``.
    psnr : torch.Tensor or None
        ``(R,)`` float64, PSNR of ``f(u; w^t)`` against the clean ``x`` in dB.
    best_step, best_psnr, best_x_hat
        The recorded step with the highest PSNR, its PSNR and output.  An **oracle**:
        it uses the clean image, which a denoiser does not have.
    weight_change : WeightChange
        ``||w^t - w^0||`` per parameter tensor and in total, absolute and relative.
    snapshots : dict of int to torch.Tensor
        Outputs ``f(u; w^t)`` at the requested ``snapshot_steps``.
    ntks : dict of int to torch.Tensor
        Empirical tangent kernels at the requested ``ntk_steps``.
    average : float
        Weight ``beta`` of the running average of the outputs (0: none was kept).
    loss_average : torch.Tensor or None
        ``(R,)`` ``1/2 ||a^t - y||^2`` of the running average ``a^t`` (None when
        ``average`` is 0).
    psnr_average, best_step_average, best_psnr_average, best_x_hat_average
        With ``average > 0`` and ``x`` given: the PSNR of the running average
        ``a^t`` at the recorded steps, its best recorded step (an ORACLE too), that PSNR
        and ``a^t`` there; else None.
    x_hat_average : torch.Tensor or None
        The running average after the last step (None when ``average`` is 0).
    optimizer, lr, lambda_max, n_steps, seconds
        The optimiser, its step size, the power-iteration ``lambda_max`` when it set the
        gradient-descent step (else None), the number of steps, wall-clock seconds.
    """

    x_hat: torch.Tensor
    steps: torch.Tensor
    loss: torch.Tensor
    psnr: torch.Tensor | None
    best_step: int | None
    best_psnr: float | None
    best_x_hat: torch.Tensor | None
    weight_change: WeightChange
    snapshots: dict[int, torch.Tensor]
    ntks: dict[int, torch.Tensor]
    average: float
    loss_average: torch.Tensor | None
    psnr_average: torch.Tensor | None
    best_step_average: int | None
    best_psnr_average: float | None
    best_x_hat_average: torch.Tensor | None
    x_hat_average: torch.Tensor | None
    optimizer: str
    lr: float
    lambda_max: float | None
    n_steps: int
    seconds: float


def make_noise_input(
    shape: tuple[int, int, int],
    *,
    scale: float = 0.1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """An iid-noise network input, uniform on ``[0, scale]``, as in the deep image prior.

    Parameters
    ----------
    shape : tuple of int
        ``(C, H, W)``; the deep image prior uses ``C = 32`` for denoising.
    scale : float
        Upper end of the uniform distribution (0.1 in the deep image prior).
    generator : torch.Generator, optional
        Source of randomness.
    dtype : torch.dtype, optional
        Floating dtype of the result; ``None`` takes ``torch.get_default_dtype()``.

    Returns
    -------
    torch.Tensor
        ``(C, H, W)`` tensor with iid entries ``U(0, scale)``.

    Notes
    -----
    ``u = scale * U``, ``U ~ Uniform(0, 1)`` iid.  The input is independent of the
    image, so the tangent kernel at initialisation is stationary in expectation: a
    constant plus a spike for a plain CNN, a low-pass filter for the encoder-decoder
    (its down- and up-sampling; chapter 3, section 5).

    References
    ----------
    Ulyanov, Vedaldi & Lempitsky, "Deep image prior", CVPR 2018.

    Examples
    --------
    >>> u = make_noise_input((32, 8, 8), generator=torch.Generator().manual_seed(0))
    >>> u.shape, bool(u.min() >= 0), bool(u.max() <= 0.1)
    (torch.Size([32, 8, 8]), True, True)
    """
    if (not isinstance(shape, (tuple, list)) or len(shape) != 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0
                       for s in shape)):
        raise ValueError(f"shape must be a tuple (C, H, W) of positive ints, got {shape!r}")
    check_positive(scale, "scale")
    check_generator(generator)
    dtype = check_float_dtype(dtype)
    check_memory(math.prod(shape) * torch.empty((), dtype=dtype).element_size(),
                 f"a noise input of shape {tuple(shape)}", "choose a smaller shape")
    return scale * torch.rand(tuple(shape), generator=generator, dtype=dtype)


# ----------------------------------------------------------------------------- fit
def _check_not_diverged(first: float, last: float, t: int, lr: float) -> None:
    """Gradient descent whose loss is no longer finite, or 1e4 times its start, diverged."""
    if not math.isfinite(last) or last > 1e4 * max(first, 1e-300):
        raise TrainingDiverged(
            f"lr = {lr:.4g} is too large: gradient descent diverged, the loss is {last:.3g} "
            f"at step {t} (it was {first:.3g} at step 0); lr must be below 2/lambda_max "
            f"(leave lr=None for 1/lambda_max)"
        )


def _check_steps(value: Iterable[int], name: str, n_steps: int) -> list[int]:
    steps = list(value)
    for s in steps:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= n_steps:
            raise ValueError(
                f"{name} must hold ints in [0, n_steps = {n_steps}], got {s!r}"
            )
    return sorted(set(steps))


def _check_fit_data(model: nn.Module, net_input: torch.Tensor, y: torch.Tensor,
                    x: torch.Tensor | None) -> None:
    """The model, its input, the target and the clean image agree in shape and dtype."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_tensor(net_input, "net_input", ndim=3)
    check_tensor(y, "y", ndim=3)
    check_scale(y, "y", noisy=True)
    if x is not None:
        check_tensor(x, "x")
        check_scale(x, "x")
        if x.shape != y.shape:
            raise ValueError(
                f"x must have y's shape {tuple(y.shape)}, got {tuple(x.shape)}"
            )
    if net_input.shape[-2:] != y.shape[-2:]:
        raise ValueError(
            f"y has shape {tuple(y.shape)} and net_input {tuple(net_input.shape)}: they "
            f"must have the same (H, W)"
        )
    check_input_channels(model, net_input, "net_input")
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if dtypes and dtypes != {net_input.dtype}:
        raise TypeError(f"net_input has dtype {net_input.dtype} but the model's weights are "
                        f"{', '.join(sorted(str(d) for d in dtypes))}; convert one of them, "
                        f"e.g. model.to({net_input.dtype})")
    if y.dtype != net_input.dtype:
        raise TypeError(f"y has dtype {y.dtype} but net_input {net_input.dtype}; use one dtype")


def _check_fit_schedule(model: nn.Module, y: torch.Tensor, optimizer: str, n_steps: int,
                        lr: float | None, input_noise_std: float, record_every: int,
                        snapshot_steps: Iterable[int], ntk_steps: Iterable[int],
                        generator: torch.Generator | None) -> tuple[list[int], list[int]]:
    """The optimiser, the step counts, what to record and the generator.

    Returns the checked ``snapshot_steps`` and ``ntk_steps``, sorted, without repeats.
    """
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"optimizer must be 'gd' or 'adam', got {optimizer!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int):
        raise TypeError(f"n_steps must be an int >= 0, got {n_steps!r}")
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if lr is not None:
        check_positive(lr, "lr")
    if isinstance(input_noise_std, bool) or not isinstance(input_noise_std, (int, float)) \
            or not input_noise_std >= 0:
        raise ValueError(f"input_noise_std must be a number >= 0, got {input_noise_std!r}")
    check_positive(record_every, "record_every", integer=True)
    n_tensors = sum(1 for p in model.parameters() if p.requires_grad)
    for name, value in (("snapshot_steps", snapshot_steps), ("ntk_steps", ntk_steps)):
        if hasattr(value, "__len__"):
            per = (y.numel() if name == "snapshot_steps"
                   else max(y.shape[-1] * y.shape[-2], 1) ** 2)
            check_memory(len(value) * per * y.element_size(),
                         f"fit's {len(value)} {name}", f"record fewer {name}")
    check_memory((n_steps // record_every + 2) * (2 * n_tensors + 2) * 32,
                 f"fit's records every {record_every} steps of {n_steps}",
                 "record less often (a larger record_every)")
    steps = (_check_steps(snapshot_steps, "snapshot_steps", n_steps),
             _check_steps(ntk_steps, "ntk_steps", n_steps))
    check_generator(generator)
    return steps


def _check_output_shape(model: nn.Module, net_input: torch.Tensor, y: torch.Tensor) -> None:
    """``model(net_input)`` has ``y``'s shape (one forward pass)."""
    z = _output(model, net_input)
    if z.shape != y.shape:
        raise ValueError(
            f"model(net_input) has shape {tuple(z.shape)} but y has shape "
            f"{tuple(y.shape)}; they must match"
        )


def _step_size(optimizer: str, lr: float | None, model: nn.Module, net_input: torch.Tensor,
               generator: torch.Generator | None) -> tuple[float, float | None]:
    """``(lr, lambda_max)``: ``lr`` as given, else ``1 / lambda_max`` (GD) or Adam's default."""
    if lr is not None:
        return lr, None
    if optimizer == "adam":
        return ADAM_DEFAULT_LR, None
    lambda_max = ntk_largest_eigenvalue(model, net_input, generator=generator)
    return 1.0 / lambda_max, lambda_max


def _perturbed(net_input: torch.Tensor, std: float,
               generator: torch.Generator | None) -> torch.Tensor:
    """``u + std * N(0, I)``, a fresh draw; ``u`` itself when ``std`` is 0."""
    if std > 0:
        noise = torch.randn(net_input.shape, generator=generator, dtype=net_input.dtype)
        return net_input + std * noise.to(net_input.device)
    return net_input


def _check_average(average: float) -> None:
    """``average`` is a number in [0, 1)."""
    if isinstance(average, bool) or not isinstance(average, (int, float)) \
            or not 0 <= average < 1:
        raise ValueError(f"average must be a number in [0, 1) (the weight of the running "
                         f"average of the outputs, e.g. 0.99; 0 for none), got {average!r}")


def _running_average(z_avg: torch.Tensor | None, z: torch.Tensor,
                     beta: float) -> torch.Tensor:
    """``beta a + (1 - beta) z``; ``z`` itself for the first output."""
    return z.clone() if z_avg is None else beta * z_avg + (1.0 - beta) * z


def _average_fields(averaged: MetricRecorder, z_avg, average: float, x) -> dict:
    """:class:`FitResult`'s fields of the running average (None where not kept)."""
    kept = average > 0 and x is not None
    res = averaged.result()
    return {"average": float(average),
            "loss_average": res["loss"] if average > 0 else None,
            "psnr_average": res["psnr"] if kept else None,
            "best_step_average": res["best_step"] if kept else None,
            "best_psnr_average": res["best_psnr"] if kept else None,
            "best_x_hat_average": res["best_x_hat"] if kept else None,
            "x_hat_average": z_avg}


def _output(model: nn.Module, net_input: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(net_input)


def _record(recorders: Sequence, t: int, z_t: torch.Tensor) -> None:
    """Hand ``z^t`` to every recorder that records step ``t``."""
    for recorder in recorders:
        if t in recorder.steps:
            recorder.record(t, z_t)


def fit(
    model: nn.Module,
    net_input: torch.Tensor,
    y: torch.Tensor,
    *,
    optimizer: str = "gd",
    n_steps: int = 1000,
    lr: float | None = None,
    x: torch.Tensor | None = None,
    input_noise_std: float = 0.0,
    record_every: int = 1,
    snapshot_steps: Iterable[int] = (),
    ntk_steps: Iterable[int] = (),
    ntk_rows: torch.Tensor | None = None,
    average: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = True,
) -> FitResult:
    """Fit ``model`` to one noisy image ``y`` from a fixed input, full batch.

    Parameters
    ----------
    model : torch.nn.Module
        The network, trained in place; ``model(net_input)`` must have ``y``'s shape.
    net_input : torch.Tensor
        The input ``u``: the noisy image itself ``(C, H, W)`` or iid noise
        (:func:`make_noise_input`).
    y : torch.Tensor
        The noisy target ``(C, H, W)``.
    optimizer : {"gd", "adam"}
        Plain gradient descent ``w <- w - lr grad`` or :class:`torch.optim.Adam`.
    n_steps : int
        Number of updates ``T >= 0``.
    lr : float, optional
        Step size.  Gradient descent: default ``1 / lambda_max`` of the tangent kernel at
        initialisation (:func:`ntk_largest_eigenvalue`); stability needs
        ``lr < 2 / lambda_max``.  Adam: default ``1e-2`` (the deep image prior's).
    x : torch.Tensor, optional
        The clean image, ``y``'s shape; only to record PSNR (and the oracle best step).
    input_noise_std : float
        Std of fresh Gaussian noise added to ``u`` at every step (the deep image prior's
        ``reg_noise_std``, 1/30 for sigma = 25); the recorded outputs use ``u`` itself.
    record_every : int
        Record loss, PSNR and weight changes every this many steps (and at ``n_steps``).
    snapshot_steps : iterable of int
        Steps at which to keep the output ``f(u; w^t)``.
    ntk_steps : iterable of int
        Steps at which to compute the empirical tangent kernel
        (:func:`ntkutils.kernels.ntk_empirical` of output channel 0).
    ntk_rows : torch.Tensor, optional
        Pixel indices ``(r,)``: keep only these rows of each kernel, ``(r, n)``.
    average : float in [0, 1), default 0
        Also keep the running average of the outputs the optimiser sees,
        ``a^0 = z^0``, ``a^t = average a^{t-1} + (1 - average) z^t``, and record its PSNR:
        the deep image prior's "exponential averaging" (its reference code uses 0.99).
        With ``input_noise_std > 0``, ``z^t`` is the output for the perturbed input
        of step ``t``, as in the deep image prior (the final one, ``t = n_steps``, for
        ``u`` itself).  0 keeps no average.
    generator : torch.Generator, optional
        Source of the input perturbations and of the power iteration's start.  The
        model's initialisation has its own generator (the factories').
    progress : bool
        Show a progress bar (also off when the environment sets ``TQDM_DISABLE=1``).

    Returns
    -------
    FitResult
        The final output, the loss and PSNR curves at the recorded steps, the oracle
        best iterate, the weight changes, snapshots and kernels.

    Notes
    -----
    The loss is ``L(w) = 1/2 ||f(u; w) - y||_2^2``, a sum over pixels and channels.
    Gradient descent then moves the output, to first order, as
    ``z^{t+1} = z^t + lr Theta (y - z^t)`` with the tangent kernel ``Theta = J J^T``;
    a mean loss would silently rescale ``lr`` by ``2 / n``.  Adam normalises each
    coordinate of the gradient, so its behaviour hardly depends on this scaling.
    Step ``t`` of every record refers to the weights after ``t`` updates; a record with
    ``input_noise_std > 0`` costs one extra forward pass.  Seeded runs on a CPU are
    bit-identical.

    References
    ----------
    Tachella, Tang & Davies, "The neural tangent link between CNN denoisers and non-local
    filters", CVPR 2021.  Ulyanov, Vedaldi & Lempitsky, "Deep image prior", CVPR 2018.

    Examples
    --------
    >>> from ntkutils.networks import build_single_layer_cnn
    >>> g = torch.Generator().manual_seed(0)
    >>> y = torch.rand(1, 8, 8, generator=g)
    >>> net = build_single_layer_cnn(channels=64, symmetric=True, generator=g)
    >>> res = fit(net, y, y, n_steps=20, progress=False, generator=g)
    >>> bool(res.loss[-1] < 0.5 * res.loss[0]), res.steps.shape
    (True, torch.Size([21]))
    """
    _check_fit_data(model, net_input, y, x)
    snapshot_steps, ntk_steps = _check_fit_schedule(
        model, y, optimizer, n_steps, lr, input_noise_std, record_every, snapshot_steps,
        ntk_steps, generator)
    _check_average(average)
    _check_output_shape(model, net_input, y)
    lr, lambda_max = _step_size(optimizer, lr, model, net_input, generator)
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    record_steps = set(range(0, n_steps + 1, record_every)) | {n_steps}
    metrics = MetricRecorder(record_steps, y, x)
    averaged = MetricRecorder(record_steps if average > 0 else (), y, x)
    z_avg = None
    recorders = (metrics, WeightRecorder(record_steps, params),
                 SnapshotRecorder(snapshot_steps),
                 KernelRecorder(ntk_steps, model, net_input, ntk_rows))
    opt = (torch.optim.SGD(params.values(), lr=lr) if optimizer == "gd"
           else torch.optim.Adam(params.values(), lr=lr))

    start = time.perf_counter()
    bar = progress_bar(total=n_steps, progress=progress, desc=f"fit ({optimizer})")
    first_loss = None  # gradient descent's loss at step 0, to detect divergence
    for t in range(n_steps):
        z = model(_perturbed(net_input, input_noise_std, generator))
        loss = 0.5 * ((z - y) ** 2).sum()
        if optimizer == "gd" and t in metrics.steps:
            # before recording: the PSNR of a blown-up output would be refused first
            value = float(loss.detach())
            first_loss = value if first_loss is None else first_loss
            _check_not_diverged(first_loss, value, t, lr)
        if average > 0:
            z_avg = _running_average(z_avg, z.detach(), average)
            _record((averaged,), t, z_avg)
        if any(t in recorder.steps for recorder in recorders):
            z_t = z if input_noise_std == 0 else _output(model, net_input)
            _record(recorders, t, z_t.detach())
            if t in metrics.steps:
                bar.set_postfix(**metrics.postfix())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        bar.update(1)
    bar.close()
    x_hat = _output(model, net_input)
    if optimizer == "gd":
        final_loss = float(0.5 * ((x_hat - y) ** 2).sum())
        _check_not_diverged(final_loss if first_loss is None else first_loss,
                            final_loss, n_steps, lr)
    _record(recorders, n_steps, x_hat.detach())
    if average > 0:
        z_avg = _running_average(z_avg, x_hat.detach(), average)
        _record((averaged,), n_steps, z_avg)
    seconds = time.perf_counter() - start

    _, weights, snapshots, ntks = recorders
    return FitResult(x_hat=x_hat.detach(), **metrics.result(),
                     weight_change=weights.result(), snapshots=snapshots.result(),
                     ntks=ntks.result(), **_average_fields(averaged, z_avg, average, x),
                     optimizer=optimizer, lr=float(lr),
                     lambda_max=lambda_max, n_steps=n_steps, seconds=seconds)
