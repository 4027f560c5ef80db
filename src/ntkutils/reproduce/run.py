"""Running the poster's grid: ten cells, each a trained network or the kernel filter.

:func:`reproduce_grid` draws the image, the noise and the inputs from the settings
(:mod:`ntkutils.reproduce.settings`), fits each network with
:func:`ntkutils.training.fit` or runs the kernel filter
:func:`ntkutils.pipeline.ntk_filter`, and returns every cell's PSNR curve, stopping steps
and estimate in a :class:`GridResult`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from .._checks import TrainingDiverged, check_device, check_float_dtype
from .._progress import progress_bar
from ..images import add_noise, load_image, psnr
from ..linearised import linearised_gd
from ..networks import build_autoencoder, build_vanilla_cnn, count_parameters
from ..pipeline import _ntk_filter
from ..spectral import _degrees_of_freedom
from ..stopping import _discrepancy_index, log_step_grid
from ..training import fit, make_noise_input
from .settings import INPUTS, METHODS, GridSettings, grid_settings

__all__ = ["GridCell", "GridResult", "grid_cell", "reproduce_grid"]


@dataclass(frozen=True)
class GridCell:
    """One cell of the grid: one network input, one method.

    Each cell has one main curve, which the table reports: for gradient descent the
    linearised dynamics of the network at initialisation (its empirical tangent kernel),
    at every step up to ``ntk_max_step``; for Adam the network's output; for the kernel
    its closed-form filter.  Beside it, gradient descent keeps the real run of
    ``gd_steps`` steps (``*_real``, ``gap``), Adam the running average of its outputs
    (``*_average``, the deep image prior's exponential averaging).

    Attributes
    ----------
    psnr, step : float, int
        Best PSNR (dB) over the recorded steps and its step: the ORACLE stopping rule.
    psnr_discrepancy, step_discrepancy : float, int
        PSNR at the first recorded step whose residual ``||z^t - y||^2`` falls to
        ``C n sigma^2`` (the discrepancy principle; the last step if it never does).
    x_hat : torch.Tensor
        ``(C, H, W)`` estimate at the oracle step (on the CPU).
    steps, psnr_curve, residual : torch.Tensor
        ``(R,)`` recorded steps, their PSNR and ``||z^t - y||^2`` (float64, on the CPU).
    snapshots : dict of int to torch.Tensor
        Outputs at every ``snapshot_every`` steps (trained networks only; on the CPU).
    steps_real, psnr_curve_real : torch.Tensor or None
        Gradient descent only: ``(R,)`` real gradient descent of the network for
        ``gd_steps`` steps at the linearised run's learning rate (None otherwise, and
        None when real gradient descent diverged at that step).
    psnr_real, step_real : float or None
        The oracle best of that run and its step.
    psnr_curve_average : torch.Tensor or None
        Adam only (with ``adam_average > 0``): ``(R,)`` PSNR of the running average of
        the outputs at ``steps`` (None otherwise).
    psnr_average, step_average : float or None
        Its oracle best and step.
    gap : float or None
        Gradient descent only: ``||z_real^T - z_lin^T|| / ||y||`` at ``T = gd_steps``,
        how far real gradient descent has left its linearisation (None otherwise;
        ``inf`` when real gradient descent diverged at the step ``1 / lambda_max``,
        which a network in the lazy regime would not).
    n_parameters : int or None
        Trainable weights of the network (None for the kernel).
    degrees_of_freedom : float or None
        The kernel's ``C tr(I - (I - eta Theta)^t)`` at the oracle step (None for the
        trained networks).
    kernel_eigvals : torch.Tensor or None
        ``(m,)`` Nyström eigenvalues of the kernel, descending (None for the networks).
    landmarks : torch.Tensor or None
        ``(m,)`` the kernel's landmark pixels ``i = row * W + col`` (None for the
        networks).
    lr : float
        Learning rate used (``1 / lambda_max`` for gradient descent and the kernel).
    seconds : float
        Wall-clock time of the cell.
    """

    psnr: float
    step: int
    psnr_discrepancy: float
    step_discrepancy: int
    x_hat: torch.Tensor
    steps: torch.Tensor
    psnr_curve: torch.Tensor
    residual: torch.Tensor
    snapshots: dict[int, torch.Tensor]
    n_parameters: int | None
    degrees_of_freedom: float | None
    kernel_eigvals: torch.Tensor | None
    landmarks: torch.Tensor | None
    lr: float
    seconds: float
    steps_real: torch.Tensor | None = None
    psnr_curve_real: torch.Tensor | None = None
    psnr_real: float | None = None
    step_real: int | None = None
    psnr_curve_average: torch.Tensor | None = None
    psnr_average: float | None = None
    step_average: int | None = None
    gap: float | None = None


@dataclass(frozen=True)
class GridResult:
    """What :func:`reproduce_grid` returns.

    Attributes
    ----------
    settings : GridSettings
        The image, size, noise level, widths, depths, steps, learning rates, stopping.
    x, y : torch.Tensor
        Clean and noisy images ``(C, H, W)`` (on the CPU).
    noisy_psnr : float
        PSNR of ``y`` against ``x``.
    cells : dict of str to dict of str to GridCell
        ``cells[input][method]`` for ``input`` in :data:`INPUTS` and ``method`` in
        :data:`METHODS`.
    device : str
        Where the networks were trained and the kernels built.
    seconds : float
        Wall-clock time of the whole grid.
    """

    settings: GridSettings
    x: torch.Tensor
    y: torch.Tensor
    noisy_psnr: float
    cells: dict[str, dict[str, GridCell]]
    device: str
    seconds: float

    @property
    def psnr(self) -> dict[str, dict[str, float]]:
        """The oracle PSNR table, ``psnr[input][method]`` in dB."""
        return {i: {m: c.psnr for m, c in row.items()} for i, row in self.cells.items()}

    @property
    def psnr_discrepancy(self) -> dict[str, dict[str, float]]:
        """The PSNR table with the discrepancy-principle stopping rule."""
        return {i: {m: c.psnr_discrepancy for m, c in row.items()}
                for i, row in self.cells.items()}

    def table(self, rule: str = "oracle") -> dict[str, dict[str, float]]:
        """The PSNR table of one stopping rule, ``"oracle"`` or ``"discrepancy"``."""
        return self.psnr if _check_rule(rule) == "oracle" else self.psnr_discrepancy

    @property
    def images(self) -> dict[str, dict[str, torch.Tensor]]:
        """The estimates at the oracle step, ``images[input][method]`` ``(C, H, W)``."""
        return {i: {m: c.x_hat for m, c in row.items()} for i, row in self.cells.items()}


_RULES = ("oracle", "discrepancy")


def _check_results(results: object, name: str = "result") -> list[GridResult]:
    """One run or a non-empty sequence of runs of the same settings but the seed."""
    runs = [results] if isinstance(results, GridResult) else results
    if not isinstance(runs, (list, tuple)) or not runs \
            or not all(isinstance(r, GridResult) for r in runs):
        raise TypeError(f"{name} must be a GridResult (from reproduce_grid) or a non-empty "
                        f"list of them, got {type(results).__name__}")
    keys = {dataclasses.replace(r.settings, seed=0) for r in runs}
    if len(keys) > 1:
        raise ValueError(f"{name}: the runs must share every setting but the seed")
    return list(runs)


def _check_result(result: object) -> GridResult:
    if not isinstance(result, GridResult):
        raise TypeError(f"result must be a GridResult (from reproduce_grid), got "
                        f"{type(result).__name__}")
    return result


def _check_rule(rule: object) -> str:
    if rule not in _RULES:
        raise ValueError(f"rule must be 'oracle' or 'discrepancy', got {rule!r}")
    return rule  # type: ignore[return-value]



def reproduce_grid(
    scale: str = "cpu",
    *,
    image: str | None = None,
    seed: int = 0,
    settings: GridSettings | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = True,
) -> GridResult:
    """Compute the poster's grid: 2 network inputs x 5 denoisers, PSNR and estimates.

    Parameters
    ----------
    scale : {"cpu", "medium", "paper"}
        The default settings (:func:`grid_settings`): ``"cpu"`` runs in a few minutes on
        a laptop CPU, ``"medium"`` (128 x 128 colour) in over an hour, ``"paper"``
        (256 x 256 colour, wide networks, thousands of steps) is meant for a GPU.
    image : str, optional
        A shipped image instead of the default (``astronaut``).
    seed : int
        Seed of the noise, weights, inputs and landmarks.
    settings : GridSettings, optional
        Complete settings; overrides ``scale``, ``image`` and ``seed``.
    device : str or torch.device, optional
        Where to compute; default ``"cuda"`` when available, else ``"cpu"``.
    dtype : torch.dtype, optional
        Dtype of the networks and their training; default float64 on the CPU (seeded runs
        then give the same digits on any CPU) and float32 on a GPU.  The image, the noise,
        the inputs and the initial weights are always drawn in float64 and then cast, so
        both dtypes start from the same numbers.
    progress : bool
        Progress bars (also off with ``TQDM_DISABLE=1``).

    Returns
    -------
    GridResult
        ``result.psnr[input][method]`` (oracle), ``result.psnr_discrepancy``, the
        estimates ``result.images``, per-cell curves and snapshots, and the settings.

    Notes
    -----
    With ``y = x + n``, ``n ~ N(0, sigma^2 I)``, the rows are the network input ``u``:
    the noisy image ``y`` itself, or iid noise ``U(0, 0.1)`` (the deep image prior's
    input).  The columns:

    - *GD + autoencoder*, *GD + vanilla CNN*: full-batch gradient descent on
      ``1/2 ||f(u; w) - y||^2`` with step ``1 / lambda_max`` of the tangent kernel at
      initialisation, to convergence by the linearised dynamics
      (:func:`ntkutils.linearised.linearised_gd`: the network's empirical tangent
      kernel at initialisation, Nyström, every step up to ``ntk_max_step``), with real
      gradient descent (:func:`ntkutils.training.fit`) for the first ``gd_steps``
      steps beside it and the distance between the two at that step (``gap``);
    - *NTK + Nyström*: no training; the closed-form infinite-width kernel ``Theta`` of the
      vanilla CNN at input ``u`` (:func:`ntkutils.kernels.ntk_closed_form`), approximated
      from ``n_landmarks`` columns, and gradient descent in closed form,
      ``z^t = (I - (I - Theta / lambda_max)^t) y``: the pipeline
      :func:`ntkutils.pipeline.ntk_filter` with ``estimates=True``;
    - *Adam + autoencoder* (the deep image prior), *Adam + vanilla CNN*: Adam with the
      deep image prior's learning rate and per-step input perturbation; the running
      average of the outputs (weight ``adam_average``) is recorded beside the output.

    Every cell is stopped at its best recorded step by PSNR against ``x`` (an ORACLE);
    the discrepancy principle (first ``t`` with ``||z^t - y||^2 <= C n sigma^2``) is
    recorded too.  Seeded float64 CPU runs agree to about 13 digits across CPUs (float32
training amplifies the last-bit differences of vectorised sums into the second digit).

    References
    ----------
    J. Tachella, J. Tang, M. Davies, "The neural tangent link between CNN denoisers and
    non-local filters", CVPR 2021.  D. Ulyanov, A. Vedaldi, V. Lempitsky, "Deep image
    prior", CVPR 2018.

    Examples
    --------
    >>> r = reproduce_grid("test", progress=False)
    >>> sorted(r.psnr) == sorted(INPUTS), len(r.psnr["iid noise"])
    (True, 5)
    """
    s = _resolve_settings(scale, image, seed, settings)
    device, dtype = _resolve_device(device, dtype)
    start = time.perf_counter()
    x, y, noise = _draw(s)  # float64, on the CPU
    cells: dict[str, dict[str, GridCell]] = {i: {} for i in INPUTS}
    bar = progress_bar(total=len(INPUTS) * len(METHODS), progress=progress, desc="grid")
    for name in INPUTS:
        for method in METHODS:
            bar.set_postfix_str(f"{name}: {method}")
            cells[name][method] = _seeded_cell(s, name, method, x, y, noise, device,
                                               dtype, progress)
            bar.update(1)
    bar.close()
    return GridResult(settings=s, x=x, y=y, noisy_psnr=psnr(y, x), cells=cells,
                      device=str(device), seconds=time.perf_counter() - start)


def grid_cell(settings: GridSettings, network_input: str, method: str, *,
              device: str | torch.device | None = None, dtype: torch.dtype | None = None,
              progress: bool = False) -> GridCell:
    """One cell of the grid, computed as :func:`reproduce_grid` computes it.

    The same draws (image, noise, input, weights, landmarks: each cell has its own
    seed), so ``grid_cell(s, i, m)`` equals ``reproduce_grid(settings=s).cells[i][m]``;
    change a setting with :func:`dataclasses.replace` to rerun one cell differently,
    for example with more Nyström landmarks.

    Parameters
    ----------
    settings : GridSettings
        From :func:`grid_settings`.
    network_input : str
        A row, one of :data:`INPUTS`.
    method : str
        A column, one of :data:`METHODS`.
    device, dtype, progress
        As for :func:`reproduce_grid`.

    Returns
    -------
    GridCell

    Examples
    --------
    >>> s = grid_settings("test")
    >>> cell = grid_cell(s, "noisy image", "NTK + Nyström")
    >>> cell.psnr == reproduce_grid(settings=s, progress=False).psnr["noisy image"][
    ...     "NTK + Nyström"]
    True
    """
    if not isinstance(settings, GridSettings):
        raise TypeError(f"settings must be a GridSettings (from grid_settings), got "
                        f"{type(settings).__name__}")
    if network_input not in INPUTS:
        raise ValueError(f"network_input must be one of {INPUTS}, got {network_input!r}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    device, dtype = _resolve_device(device, dtype)
    x, y, noise = _draw(settings)
    return _seeded_cell(settings, network_input, method, x, y, noise, device, dtype,
                        progress)


def _seeded_cell(s: GridSettings, name: str, method: str, x, y, noise, device, dtype,
                 progress: bool) -> GridCell:
    """The cell (``name``, ``method``) from the drawn images, with its own seed."""
    row, col = INPUTS.index(name), METHODS.index(method)
    C = x.shape[0]
    xd, yd = x.to(device, dtype), y.to(device, dtype)
    u_small, u_ae = ((yd, yd) if name == "noisy image"
                     else (noise[:C].to(device, dtype), noise.to(device, dtype)))
    g = torch.Generator().manual_seed(s.seed + 100 + 10 * row + col)
    return _cell(method, u_small, u_ae, yd, xd, s, s.adam_steps_for(name), dtype, g,
                 progress)


def _resolve_settings(scale, image, seed, settings) -> GridSettings:
    """The settings given, or the defaults of ``scale`` (with ``image`` and ``seed``)."""
    if settings is None:
        return grid_settings(scale, image=image, seed=seed)
    if not isinstance(settings, GridSettings):
        raise TypeError(f"settings must be a GridSettings or None, got "
                        f"{type(settings).__name__}")
    return settings


def _resolve_device(device, dtype) -> tuple[torch.device, torch.dtype]:
    """The device (a GPU when there is one) and the dtype (float32 there, else float64)."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = check_device(device)
    if dtype is None:
        dtype = torch.float32 if device.type == "cuda" else torch.float64
    return device, check_float_dtype(dtype)


def _draw(s: GridSettings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clean and noisy image and the iid-noise input, drawn in float64 (same on any CPU)."""
    f64 = torch.float64
    x = load_image(s.image, size=s.size, gray=s.gray, crop=s.crop, dtype=f64)  # (C, H, W)
    C, H, W = x.shape
    y = add_noise(x, s.sigma, generator=torch.Generator().manual_seed(s.seed))
    g_input = torch.Generator().manual_seed(s.seed + 1)
    noise = make_noise_input((s.noise_channels, H, W), scale=s.noise_scale,
                             generator=g_input, dtype=f64)  # (noise_channels, H, W)
    return x, y, noise


def _cell(method: str, u_small, u_ae, y, x, s: GridSettings, adam_steps: int, dtype,
          generator, progress: bool) -> GridCell:
    """One cell: the kernel filter, or a network built and fitted from its input
    (Adam for ``adam_steps``, which depend on the input)."""
    if method == "NTK + Nyström":
        return _ntk_cell(u_small, y, x, s, generator)
    C = y.shape[0]
    with _default_dtype(torch.float64):  # initial weights drawn in float64, then cast
        if method.endswith("autoencoder"):
            net, u = build_autoencoder(u_ae.shape[0], C, s.ae_channels, levels=s.ae_levels,
                                       skip_channels=s.ae_skip_channels,
                                       generator=generator), u_ae
        else:
            net, u = build_vanilla_cnn(C, s.vanilla_channels, s.vanilla_depth,
                                       s.patch_size, generator=generator), u_small
    net = net.to(dtype=dtype)
    if method.startswith("GD"):
        return _gd_cell(net, u, y, x, s, generator, progress)
    return _adam_cell(net, u, y, x, s, adam_steps, generator, progress)


# ------------------------------------------------------------------------------ cells
@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """PyTorch's default dtype set to ``dtype`` inside the block, restored after it."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class _Centred(nn.Module):
    """``f(u; w) - f(u; w^0)``: the same network and tangent kernel, output 0 at ``w^0``."""

    def __init__(self, net: nn.Module, net_input: torch.Tensor) -> None:
        super().__init__()
        self.net = net
        with torch.no_grad():
            self.register_buffer("offset", net(net_input).detach().clone())

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.net(u) - self.offset


def _ntk_cell(u, y, x, s: GridSettings, generator) -> GridCell:
    """Closed-form kernel of the vanilla CNN at input ``u``, Nyström, GD filter of ``y``."""
    start = time.perf_counter()
    f = _ntk_filter(u, y, s.patch_size, s.vanilla_depth, "nystrom", s.n_landmarks,
                    log_step_grid(s.ntk_max_step), "sure", s.sigma, x, True, generator)
    residual = f.residual.cpu()  # (T,)
    disc = _discrepancy_index(residual, y.numel(), s.sigma)
    df = y.shape[0] * float(_degrees_of_freedom(f.eigvals, torch.tensor([f.step]), f.lr)[0])
    return GridCell(
        psnr=float(f.psnr[f.index]), step=f.step,
        psnr_discrepancy=float(f.psnr[disc]), step_discrepancy=int(f.steps[disc]),
        x_hat=f.x_hat.float().cpu(), steps=f.steps.cpu(), psnr_curve=f.psnr,
        residual=residual, snapshots={}, n_parameters=None, degrees_of_freedom=df,
        kernel_eigvals=f.eigvals.cpu(), landmarks=f.landmarks.cpu(), lr=f.lr,
        seconds=time.perf_counter() - start,
    )


def _adam_cell(net: nn.Module, u, y, x, s: GridSettings, n_steps: int, generator,
               progress: bool) -> GridCell:
    """Adam on ``net`` from input ``u`` for ``n_steps``; oracle and discrepancy steps
    from the records."""
    start = time.perf_counter()
    net = net.to(y.device)
    res = fit(net, u, y, optimizer="adam", n_steps=n_steps, lr=s.adam_lr, x=x,
              input_noise_std=s.adam_input_noise, record_every=s.record_every,
              snapshot_steps=range(0, n_steps + 1, s.snapshot_every),
              average=s.adam_average, generator=generator, progress=progress)
    disc = _discrepancy_index(2.0 * res.loss, y.numel(), s.sigma)
    averaged = s.adam_average > 0
    return GridCell(
        psnr=float(res.best_psnr), step=int(res.best_step),
        psnr_discrepancy=float(res.psnr[disc]), step_discrepancy=int(res.steps[disc]),
        x_hat=res.best_x_hat.float().cpu(), steps=res.steps, psnr_curve=res.psnr,
        residual=2.0 * res.loss,
        snapshots={t: z.float().cpu() for t, z in res.snapshots.items()},
        n_parameters=count_parameters(net), degrees_of_freedom=None,
        kernel_eigvals=None, landmarks=None, lr=res.lr,
        seconds=time.perf_counter() - start,
        psnr_curve_average=res.psnr_average if averaged else None,
        psnr_average=float(res.best_psnr_average) if averaged else None,
        step_average=int(res.best_step_average) if averaged else None)


def _gd_cell(net: nn.Module, u, y, x, s: GridSettings, generator,
             progress: bool) -> GridCell:
    """Gradient descent: linearised at initialisation to ``ntk_max_step``, real for
    ``gd_steps`` (the centred network, same learning rate)."""
    start = time.perf_counter()
    net = _Centred(net.to(y.device), u)
    real_steps = torch.arange(0, s.gd_steps + 1, s.record_every)
    steps = torch.unique(torch.cat([log_step_grid(s.ntk_max_step), real_steps,
                                    torch.tensor([s.gd_steps])]))
    lin = linearised_gd(net, u, y, steps=steps, channels="joint", x=x, sigma=s.sigma,
                        n_landmarks=s.n_landmarks if s.gd_lanczos is None else None,
                        lanczos=s.gd_lanczos, generator=generator)
    try:
        res = fit(net, u, y, optimizer="gd", n_steps=s.gd_steps, lr=lin.lr, x=x,
                  record_every=s.record_every,
                  snapshot_steps=range(0, s.gd_steps + 1, s.snapshot_every),
                  generator=generator, progress=progress)
    except TrainingDiverged:  # at 1/lambda_max the real network may leave its linearisation
        res = None
    if res is None:
        gap = math.inf
    else:
        at_end = lin.estimates[int((steps == s.gd_steps).nonzero())]
        gap = float(torch.linalg.vector_norm(res.x_hat.double() - at_end)
                    / torch.linalg.vector_norm(y.double()))
    disc = lin.index_discrepancy
    return GridCell(
        psnr=float(lin.psnr[lin.index]), step=lin.step,
        psnr_discrepancy=float(lin.psnr[disc]), step_discrepancy=int(lin.steps[disc]),
        x_hat=lin.x_hat.float().cpu(), steps=lin.steps.cpu(), psnr_curve=lin.psnr,
        residual=lin.residual.cpu(),
        snapshots=({} if res is None
                   else {t: z.float().cpu() for t, z in res.snapshots.items()}),
        n_parameters=count_parameters(net), degrees_of_freedom=None,
        kernel_eigvals=None, landmarks=None, lr=lin.lr,
        seconds=time.perf_counter() - start,
        steps_real=None if res is None else res.steps,
        psnr_curve_real=None if res is None else res.psnr,
        psnr_real=None if res is None else float(res.best_psnr),
        step_real=None if res is None else int(res.best_step), gap=gap)
