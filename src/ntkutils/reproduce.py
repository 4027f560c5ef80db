"""The poster's grid of denoising results, reproduced by one call.

Tachella, Tang & Davies report, for one noisy image, the PSNR of five denoisers (columns)
with two network inputs (rows): the noisy image itself, or iid noise as in the deep image
prior.  :func:`reproduce_grid` computes the same ten cells with the course's networks,
kernels and training loop; :func:`format_table` prints them beside the poster's numbers
(:data:`POSTER_PSNR`) and :func:`plot_grid` shows the ten estimates in the same grid.
``python -m ntkutils reproduce`` runs the same code from the command line.

Every setting below is the course's own choice (the poster states none of them): the image
("house" is not shipped), its size, the noise level, the widths, depths, steps and learning
rates, and the stopping rule.  The main table stops every cell at its best step by PSNR
against the clean image, an ORACLE that a real denoiser does not have; the discrepancy
principle, which needs only the noise level, is reported beside it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from matplotlib.figure import Figure
from torch import nn

from ._checks import NTKUtilsError, check_float_dtype, check_patch_size, check_positive, check_sigma
from ._progress import progress_bar
from .pipeline import _ntk_filter
from .spectral import _degrees_of_freedom
from .stopping import _discrepancy_index, log_step_grid

__all__ = [
    "INPUTS",
    "METHODS",
    "POSTER_PSNR",
    "GridCell",
    "GridResult",
    "GridSettings",
    "format_settings",
    "format_table",
    "grid_settings",
    "plot_grid",
    "reproduce_grid",
]

#: The rows of the grid: the network input.
INPUTS: tuple[str, ...] = ("noisy image", "iid noise")

#: The columns of the grid: optimiser + architecture (or the closed-form kernel).
METHODS: tuple[str, ...] = (
    "GD + autoencoder",
    "GD + vanilla CNN",
    "NTK + Nyström",
    "Adam + autoencoder",
    "Adam + vanilla CNN",
)

#: PSNR in dB of the authors' CVPR 2021 poster ("house" image; size and noise level not
#: printed there), by network input and method.  "NTK + Nyström" is the poster's
#: "Nystrom + vanilla CNN": the closed-form kernel of the vanilla CNN, no training.
POSTER_PSNR: dict[str, dict[str, float]] = {
    "noisy image": {
        "GD + autoencoder": 24.7,
        "GD + vanilla CNN": 28.0,
        "NTK + Nyström": 28.9,
        "Adam + autoencoder": 31.1,
        "Adam + vanilla CNN": 28.3,
    },
    "iid noise": {
        "GD + autoencoder": 16.4,
        "GD + vanilla CNN": 21.6,
        "NTK + Nyström": 15.3,
        "Adam + autoencoder": 31.0,
        "Adam + vanilla CNN": 21.6,
    },
}

_SCALES = ("cpu", "paper", "test")
_RULES = ("oracle", "discrepancy")


@dataclass(frozen=True)
class GridSettings:
    """Everything that defines a run of the grid (all of it the course's own choice).

    Attributes
    ----------
    scale : str
        ``"cpu"``, ``"paper"``, ``"test"`` or ``"custom"``.
    image : str
        A shipped image (:func:`ntkutils.images.list_images`).
    gray : bool
        One channel (True) or colour.
    size, crop : int, int or None
        The image is the centre ``crop x crop`` of the stored 256 x 256 picture, resized
        to ``size x size`` (``crop=None``: the whole picture).
    sigma : float
        Noise standard deviation on the [0, 1] scale; the noise is not clipped.
    patch_size : int
        Side ``k`` of the 3 x 3 (or k x k) convolutions of the vanilla CNN and its kernel.
    vanilla_channels, vanilla_depth : int
        Width ``c`` and number of hidden ``k x k`` layers of the vanilla CNN (NTK
        parameterisation, no bias), and the depth of its closed-form kernel.  Depth 1 is
        the single-hidden-layer CNN of the theory.
    ae_channels, ae_levels, ae_skip_channels : int
        Width, number of scales and skip width of the encoder-decoder
        (:func:`ntkutils.networks.build_autoencoder`, batch norm, PyTorch-default
        initialisation).
    noise_channels : int
        Channels of the iid-noise input of the encoder-decoder (the vanilla CNN and the
        kernel get the first ``C`` of them, ``C`` the image's channels).
    noise_scale : float
        The iid-noise input is uniform on ``[0, noise_scale]``.
    gd_steps, adam_steps : int
        Training steps of the gradient-descent and of the Adam runs.
    adam_lr : float
        Adam's learning rate.  Gradient descent uses ``1 / lambda_max`` of the tangent
        kernel at initialisation.
    adam_input_noise : float
        Standard deviation of the fresh perturbation of the input at every Adam step (the
        deep image prior's ``reg_noise_std``); gradient descent keeps the input fixed.
        Gradient descent trains the centred network ``f(u; w) - f(u; w^0)`` (the same
        tangent kernel, output 0 at the start, as the NTK prediction
        ``z^t = (I - (I - eta Theta)^t) y`` assumes); Adam trains the network as built,
        as the deep image prior does.
    record_every : int
        Record the PSNR (and the loss) every this many steps; the oracle picks among them.
    snapshot_every : int
        Keep the output every this many steps (for the course's slider).
    n_landmarks : int
        Nyström landmark pixels of the closed-form kernel.
    ntk_max_step : int
        The kernel filter is evaluated at step 0 and 150 log-spaced steps up to this one.
    seed : int
        Seeds the noise, the weights, the inputs and the landmarks.
    """

    scale: str
    image: str
    gray: bool
    size: int
    crop: int | None
    sigma: float
    patch_size: int
    vanilla_channels: int
    vanilla_depth: int
    ae_channels: int
    ae_levels: int
    ae_skip_channels: int
    noise_channels: int
    noise_scale: float
    gd_steps: int
    adam_steps: int
    adam_lr: float
    adam_input_noise: float
    record_every: int
    snapshot_every: int
    n_landmarks: int
    ntk_max_step: int
    seed: int = 0

    def __post_init__(self) -> None:
        """Check every field, by name, as soon as the settings are made."""
        from .images import list_images

        if self.scale not in _SCALES + ("custom",):
            raise ValueError(f"scale must be one of {_SCALES + ('custom',)}, got {self.scale!r}")
        if self.image not in list_images():
            raise ValueError(f"image must be one of {list_images()}, got {self.image!r}")
        if not isinstance(self.gray, bool):
            raise TypeError(f"gray must be True or False, got {self.gray!r}")
        for name in ("size", "vanilla_channels", "vanilla_depth", "ae_channels", "ae_levels",
                     "noise_channels", "gd_steps", "adam_steps", "record_every",
                     "snapshot_every", "n_landmarks", "ntk_max_step"):
            check_positive(getattr(self, name), name, integer=True)
        for name in ("ae_skip_channels", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        if self.crop is not None:
            check_positive(self.crop, "crop", integer=True)
        check_sigma(self.sigma, "sigma")
        check_patch_size(self.patch_size, "patch_size", image_shape=(self.size, self.size))
        for name in ("noise_scale", "adam_lr"):
            check_positive(getattr(self, name), name)
        if isinstance(self.adam_input_noise, bool) \
                or not isinstance(self.adam_input_noise, (int, float)) \
                or not self.adam_input_noise >= 0:
            raise ValueError(f"adam_input_noise must be a number >= 0, got "
                             f"{self.adam_input_noise!r}")
        if self.n_landmarks > self.size**2:
            raise ValueError(f"n_landmarks must be <= the {self.size**2} pixels of a "
                             f"{self.size} x {self.size} image, got {self.n_landmarks}")


def _check_device(device) -> torch.device:
    """A device this machine has, or a clear error naming ``device``."""
    if isinstance(device, str) and device.strip().lower() == "gpu":
        raise NTKUtilsError("device 'gpu' is not a PyTorch device: use device='cuda' "
                            "(an NVIDIA GPU) or 'cpu'")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise NTKUtilsError(f"device must be 'cpu' or 'cuda' (or a torch.device), got "
                            f"{device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NTKUtilsError("device 'cuda' was asked for, but this machine has no CUDA GPU "
                            "PyTorch can use; use device='cpu'")
    if device.type not in ("cpu", "cuda"):
        raise NTKUtilsError(f"device must be 'cpu' or 'cuda', got {str(device)!r}: the grid "
                            f"runs on the CPU or an NVIDIA GPU")
    return device


@dataclass(frozen=True)
class GridCell:
    """One cell of the grid: one network input, one method.

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

    @property
    def images(self) -> dict[str, dict[str, torch.Tensor]]:
        """The estimates at the oracle step, ``images[input][method]`` ``(C, H, W)``."""
        return {i: {m: c.x_hat for m, c in row.items()} for i, row in self.cells.items()}


def grid_settings(scale: str = "cpu", *, image: str | None = None,
                  seed: int = 0) -> GridSettings:
    """The default settings of the grid at one scale.

    Parameters
    ----------
    scale : {"cpu", "paper"}
        ``"cpu"``: a 64 x 64 colour detail, narrow networks, a few hundred steps (a few
        minutes on a laptop CPU).  ``"paper"``: the 256 x 256 colour image, wide networks
        and thousands of steps, meant for a GPU.  (``"test"``, tiny, is for the tests.)
    image : str, optional
        Another shipped image (colour images stay colour, gray ones gray).
    seed : int
        Seed of every random draw.

    Returns
    -------
    GridSettings

    Examples
    --------
    >>> s = grid_settings("cpu")
    >>> s.image, s.size, s.gray, round(s.sigma * 255)
    ('astronaut', 64, False, 25)
    >>> grid_settings("paper").size
    256
    """
    if scale not in _SCALES:
        raise ValueError(f"scale must be 'cpu' or 'paper', got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    common = dict(scale=scale, image="astronaut", gray=False, sigma=25 / 255,
                  patch_size=3, noise_channels=32, noise_scale=0.1, adam_lr=1e-2,
                  adam_input_noise=1 / 30, ntk_max_step=10**6, seed=seed)
    if scale == "cpu":
        s = GridSettings(size=64, crop=128, vanilla_channels=128, vanilla_depth=1,
                         ae_channels=16, ae_levels=3, ae_skip_channels=4,
                         gd_steps=300, adam_steps=600, record_every=10,
                         snapshot_every=50, n_landmarks=256, **common)
    elif scale == "paper":
        s = GridSettings(size=256, crop=None, vanilla_channels=1024, vanilla_depth=1,
                         ae_channels=128, ae_levels=5, ae_skip_channels=4,
                         gd_steps=3000, adam_steps=3000, record_every=25,
                         snapshot_every=250, n_landmarks=1024, **common)
    else:
        s = GridSettings(size=32, crop=64, vanilla_channels=16, vanilla_depth=1,
                         ae_channels=8, ae_levels=2, ae_skip_channels=2,
                         gd_steps=20, adam_steps=20, record_every=5,
                         snapshot_every=10, n_landmarks=64, **common)
    if image is not None:
        from .images import list_images

        if image not in list_images():
            raise ValueError(f"image must be one of {list_images()}, got {image!r}")
        s = dataclasses.replace(s, image=image, gray=_is_gray(image))
    return s


def _is_gray(name: str) -> bool:
    """Whether a shipped image exists only in gray (colour images are used in colour)."""
    from .images import load_image

    try:
        load_image(name, size=8, gray=False)
    except ValueError as err:
        if "gray image" in str(err):
            return True
        raise
    return False


# ------------------------------------------------------------------------------ helpers
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


def _trained_cell(net: nn.Module, u, y, x, optimizer: str, s: GridSettings, generator,
                  progress: bool) -> GridCell:
    """Fit ``net`` to ``y`` from input ``u``; oracle and discrepancy steps from the records."""
    from .networks import count_parameters
    from .training import fit

    start = time.perf_counter()
    net = net.to(y.device)
    if optimizer == "gd":
        net = _Centred(net, u)
    n_steps = s.gd_steps if optimizer == "gd" else s.adam_steps
    res = fit(net, u, y, optimizer=optimizer, n_steps=n_steps,
              lr=None if optimizer == "gd" else s.adam_lr, x=x,
              input_noise_std=0.0 if optimizer == "gd" else s.adam_input_noise,
              record_every=s.record_every,
              snapshot_steps=range(0, n_steps + 1, s.snapshot_every),
              generator=generator, progress=progress)
    disc = _discrepancy_index(2.0 * res.loss, y.numel(), s.sigma)
    return GridCell(
        psnr=float(res.best_psnr), step=int(res.best_step),
        psnr_discrepancy=float(res.psnr[disc]), step_discrepancy=int(res.steps[disc]),
        x_hat=res.best_x_hat.float().cpu(), steps=res.steps, psnr_curve=res.psnr,
        residual=2.0 * res.loss,
        snapshots={t: z.float().cpu() for t, z in res.snapshots.items()},
        n_parameters=count_parameters(net), degrees_of_freedom=None,
        kernel_eigvals=None, landmarks=None, lr=res.lr,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- the grid
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
    scale : {"cpu", "paper"}
        The default settings (:func:`grid_settings`): ``"cpu"`` runs in a few minutes on
        a laptop CPU, ``"paper"`` (256 x 256 colour, wide networks, thousands of steps)
        is meant for a GPU.
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
      initialisation (:func:`ntkutils.training.fit`);
    - *NTK + Nyström*: no training; the closed-form infinite-width kernel ``Theta`` of the
      vanilla CNN at input ``u`` (:func:`ntkutils.kernels.ntk_closed_form`), approximated
      from ``n_landmarks`` columns, and gradient descent in closed form,
      ``z^t = (I - (I - Theta / lambda_max)^t) y``: the pipeline
      :func:`ntkutils.pipeline.ntk_filter` with ``estimates=True``;
    - *Adam + autoencoder* (the deep image prior), *Adam + vanilla CNN*: Adam with the
      deep image prior's learning rate and per-step input perturbation.

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
    from .images import add_noise, load_image, psnr
    from .networks import build_autoencoder, build_vanilla_cnn
    from .training import make_noise_input

    if settings is None:
        s = grid_settings(scale, image=image, seed=seed)
    elif isinstance(settings, GridSettings):
        s = settings
    else:
        raise TypeError(f"settings must be a GridSettings or None, got "
                        f"{type(settings).__name__}")
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = _check_device(device)
    if dtype is None:
        dtype = torch.float32 if device.type == "cuda" else torch.float64
    dtype = check_float_dtype(dtype)

    start = time.perf_counter()
    f64 = torch.float64  # every random draw in float64, the same on any CPU
    x = load_image(s.image, size=s.size, gray=s.gray, crop=s.crop, dtype=f64)  # (C, H, W)
    C, H, W = x.shape
    y = add_noise(x, s.sigma, generator=torch.Generator().manual_seed(s.seed))
    g_input = torch.Generator().manual_seed(s.seed + 1)
    noise = make_noise_input((s.noise_channels, H, W), scale=s.noise_scale,
                             generator=g_input, dtype=f64)  # (noise_channels, H, W)
    xd, yd = x.to(device, dtype), y.to(device, dtype)
    inputs = {"noisy image": (yd, yd), "iid noise": (noise[:C].to(device, dtype),
                                                   noise.to(device, dtype))}

    def vanilla(g: torch.Generator) -> nn.Module:
        with _default_dtype(f64):
            net = build_vanilla_cnn(C, s.vanilla_channels, s.vanilla_depth,
                                    s.patch_size, generator=g)
        return net.to(dtype=dtype)

    def autoencoder(c_in: int, g: torch.Generator) -> nn.Module:
        with _default_dtype(f64):
            net = build_autoencoder(c_in, C, s.ae_channels, levels=s.ae_levels,
                                    skip_channels=s.ae_skip_channels, generator=g)
        return net.to(dtype=dtype)

    cells: dict[str, dict[str, GridCell]] = {i: {} for i in INPUTS}
    bar = progress_bar(total=len(INPUTS) * len(METHODS), progress=progress, desc="grid")
    for row, name in enumerate(INPUTS):
        u_small, u_ae = inputs[name]
        for col, method in enumerate(METHODS):
            bar.set_postfix_str(f"{name}: {method}")
            g = torch.Generator().manual_seed(s.seed + 100 + 10 * row + col)
            if method == "NTK + Nyström":
                cell = _ntk_cell(u_small, yd, xd, s, g)
            else:
                optimizer = "gd" if method.startswith("GD") else "adam"
                if method.endswith("autoencoder"):
                    net, u = autoencoder(u_ae.shape[0], g), u_ae
                else:
                    net, u = vanilla(g), u_small
                cell = _trained_cell(net, u, yd, xd, optimizer, s, g, progress)
            cells[name][method] = cell
            bar.update(1)
    bar.close()
    return GridResult(settings=s, x=x, y=y, noisy_psnr=psnr(y, x), cells=cells,
                      device=str(device), seconds=time.perf_counter() - start)


# ------------------------------------------------------------------------ reporting
def _check_result(result: object) -> GridResult:
    if not isinstance(result, GridResult):
        raise TypeError(f"result must be a GridResult (from reproduce_grid), got "
                        f"{type(result).__name__}")
    return result


def _check_rule(rule: object) -> str:
    if rule not in _RULES:
        raise ValueError(f"rule must be 'oracle' or 'discrepancy', got {rule!r}")
    return rule  # type: ignore[return-value]


def format_table(result: GridResult, *, rule: str = "oracle") -> str:
    """The grid as a markdown table, each of our PSNRs beside the poster's.

    Parameters
    ----------
    result : GridResult
        From :func:`reproduce_grid`.
    rule : {"oracle", "discrepancy"}
        Which stopping rule's PSNRs to show.

    Returns
    -------
    str
        A markdown table (rows: network input; columns: methods; cells "ours (poster)"
        in dB) followed by one line stating the image, size, noise level and rule.

    Examples
    --------
    >>> r = reproduce_grid("test", progress=False)
    >>> print(format_table(r).splitlines()[0])
    | network input | GD + autoencoder | GD + vanilla CNN | NTK + Nyström | Adam + autoencoder | Adam + vanilla CNN |
    """
    r = _check_result(result)
    rule = _check_rule(rule)
    table = r.psnr if rule == "oracle" else r.psnr_discrepancy
    lines = ["| network input | " + " | ".join(METHODS) + " |",
             "|---" * (len(METHODS) + 1) + "|"]
    for name in INPUTS:
        cells = [f"{table[name][m]:.1f} ({POSTER_PSNR[name][m]:.1f})" for m in METHODS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    s = r.settings
    C, H, W = r.x.shape
    stop = ("best step by PSNR against the clean image (ORACLE)" if rule == "oracle"
            else "discrepancy principle ||z - y||^2 <= C n sigma^2 (no clean image)")
    lines += ["", f"PSNR in dB: ours (poster's, 'house' image). Ours: {s.image} "
              f"{H}x{W} {'gray' if C == 1 else 'colour'}, sigma = "
              f"{s.sigma * 255:.0f}/255, noisy {r.noisy_psnr:.1f} dB; stopping: {stop}."]
    return "\n".join(lines)


def format_settings(result: GridResult) -> str:
    """The settings of a grid run as a markdown list (all of them the course's choices).

    Parameters
    ----------
    result : GridResult
        From :func:`reproduce_grid`.

    Returns
    -------
    str
        One markdown bullet per setting: image, noise, the two networks with their
        numbers of weights, the network inputs, the two optimisers, the kernel, the
        stopping rules, the seed and the device.

    Examples
    --------
    >>> r = reproduce_grid("test", progress=False)
    >>> print(format_settings(r).splitlines()[0])
    - image: astronaut, the centre 64x64 of the 256x256 picture resized to 32x32, colour (C = 3)
    """
    r = _check_result(result)
    s = r.settings
    C, H, W = r.x.shape
    cells = r.cells
    where = ("the whole 256x256 picture" if s.crop is None
             else f"the centre {s.crop}x{s.crop} of the 256x256 picture")
    p_van = cells["noisy image"]["GD + vanilla CNN"].n_parameters
    p_ae = cells["noisy image"]["GD + autoencoder"].n_parameters
    p_ae_noise = cells["iid noise"]["GD + autoencoder"].n_parameters
    lines = [
        f"image: {s.image}, {where} resized to {H}x{W}, "
        f"{'gray (C = 1)' if C == 1 else 'colour (C = 3)'}",
        f"noise: Gaussian, sigma = {s.sigma * 255:.0f}/255 on the [0, 1] scale, not "
        f"clipped; noisy PSNR {r.noisy_psnr:.1f} dB",
        f"vanilla CNN: {s.vanilla_depth} hidden layer(s) of {s.patch_size}x{s.patch_size} "
        f"convolutions with {s.vanilla_channels} channels, ReLU, 1x1 read-out; NTK "
        f"parameterisation, no bias; {p_van} weights",
        f"autoencoder: {s.ae_levels} scales of {s.ae_channels} channels, skips of "
        f"{s.ae_skip_channels} channels, batch norm, LeakyReLU, PyTorch-default "
        f"initialisation; {p_ae} weights ({p_ae_noise} with the iid-noise input)",
        f"iid-noise input: uniform on [0, {s.noise_scale:g}], {s.noise_channels} channels "
        f"for the autoencoder, the first {C} of them for the vanilla CNN and the kernel",
        f"gradient descent: {s.gd_steps} steps of size 1/lambda_max (tangent kernel at "
        f"initialisation), fixed input; trains f(u; w) - f(u; w0), so the output starts "
        f"at 0",
        f"Adam: {s.adam_steps} steps, learning rate {s.adam_lr:g}, input perturbed by "
        f"fresh Gaussian noise of std {s.adam_input_noise:.3g} at every step (the deep "
        f"image prior's recipe); trains the network as built",
        f"NTK + Nyström: closed-form kernel of the vanilla CNN (depth {s.vanilla_depth}, "
        f"infinite width) at the network input, {s.n_landmarks} landmark pixels, "
        f"gradient descent in closed form with step 1/lambda_max at t = 0 and 150 "
        f"log-spaced steps up to {s.ntk_max_step:,}",
        f"stopping: the best recorded step (every {s.record_every} steps) by PSNR against "
        f"the clean image, an ORACLE; the discrepancy principle "
        f"(first t with ||z^t - y||^2 <= C n sigma^2) reported beside it",
        f"seed {s.seed}; device {r.device}",
    ]
    return "\n".join(f"- {line}" for line in lines)


def plot_grid(result: GridResult, *, rule: str = "oracle", size: float = 2.0) -> Figure:
    """The ten estimates in the poster's grid, PSNR (ours and the poster's) in the titles.

    Parameters
    ----------
    result : GridResult
        From :func:`reproduce_grid`.
    rule : {"oracle", "discrepancy"}
        Which stopping rule's PSNRs to print (the images are the oracle estimates).
    size : float
        Inches per panel.

    Returns
    -------
    matplotlib.figure.Figure
        Two rows (network input) of six panels: the clean (top) or noisy (bottom) image,
        then the five methods.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> fig = plot_grid(reproduce_grid("test", progress=False))
    >>> len(fig.axes)
    12
    >>> plt.close(fig)
    """
    import matplotlib.pyplot as plt

    from .plotting import to_numpy_image

    r = _check_result(result)
    rule = _check_rule(rule)
    table = r.psnr if rule == "oracle" else r.psnr_discrepancy
    ncols = len(METHODS) + 1
    fig, axes = plt.subplots(len(INPUTS), ncols, figsize=(size * ncols, size * 2 + 0.9),
                             squeeze=False)
    refs = [(r.x, "clean x"), (r.y, f"noisy y: {r.noisy_psnr:.1f} dB")]
    for row, name in enumerate(INPUTS):
        ax = axes[row, 0]
        ax.imshow(to_numpy_image(refs[row][0]), cmap="gray", vmin=0, vmax=1)
        ax.set_title(refs[row][1], fontsize=9)
        for col, method in enumerate(METHODS, start=1):
            ax = axes[row, col]
            ax.imshow(to_numpy_image(r.cells[name][method].x_hat), cmap="gray",
                      vmin=0, vmax=1)
            head = f"{method}\n" if row == 0 else ""
            ax.set_title(f"{head}{table[name][method]:.1f} dB "
                         f"(poster {POSTER_PSNR[name][method]:.1f})", fontsize=9)
        axes[row, 1].text(-0.08, 0.5, f"input: {name}", rotation=90, ha="right",
                          va="center", transform=axes[row, 1].transAxes, fontsize=10)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    stop = "oracle (best PSNR)" if rule == "oracle" else "discrepancy principle"
    fig.suptitle(f"Ours (poster's) PSNR; {r.settings.image} {r.x.shape[-1]}x"
                 f"{r.x.shape[-2]}, sigma = {r.settings.sigma * 255:.0f}/255, "
                 f"stopping: {stop}", fontsize=10)
    fig.tight_layout()
    return fig
