"""What the poster's grid is made of: its rows, columns, the poster's numbers, the settings.

:data:`INPUTS` (the rows: the network input) and :data:`METHODS` (the columns: optimiser and
architecture, or the closed-form kernel), :data:`POSTER_PSNR` (the poster's table), and
:class:`GridSettings` with its defaults per scale, :func:`grid_settings`.  Every setting is
the course's own choice: the poster states none of them.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .._checks import NTKUtilsError, check_patch_size, check_positive, check_sigma
from ..images import list_images, load_image

__all__ = ["INPUTS", "METHODS", "POSTER_PSNR", "GridSettings", "grid_settings"]

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

_SCALES = ("cpu", "medium", "paper", "test")


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
        Training steps of the gradient-descent and of the Adam runs (Adam's with the
        noisy image as input; see ``adam_steps_noise``).
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
    adam_average : float
        Weight of the running average of Adam's outputs (the deep image prior's
        exponential averaging, 0.99 in its reference code); the table reports the
        output, and the running average is kept beside it.  0: no average.
    record_every : int
        Record the PSNR (and the loss) every this many steps; the oracle picks among them.
    snapshot_every : int
        Keep the output every this many steps (for the course's slider).
    n_landmarks : int
        Nyström landmark pixels of the closed-form kernel and of the gradient-descent
        cells' tangent kernel at initialisation (every pixel: the exact kernels).  The
        linearised curve cannot fit the part of ``y`` outside the span of the kernel's
        columns at the landmarks, so too few landmarks cap it (Chapter 7).
    ntk_max_step : int
        The kernel filter is evaluated at step 0 and 150 log-spaced steps up to this one.
    seed : int
        Seeds the noise, the weights, the inputs and the landmarks.
    adam_steps_noise : int or None
        Adam's steps with iid noise as input (None: ``adam_steps``).  From noise the
        deep image prior fits the image more slowly than from the noisy image, so it
        needs more steps to reach its best (:meth:`adam_steps_for`).
    gd_lanczos : int or None
        Lanczos steps of the gradient-descent cells' linearised dynamics (None: Nyström
        with ``n_landmarks``, as the kernel column).  The network's tangent kernel at
        initialisation is then never approximated by its columns: the dynamics are exact
        for the first ``gd_lanczos - 1`` steps and fit all of ``y`` at convergence, at
        the cost of ``gd_lanczos`` Nyström columns; between, the more steps the closer
        (:func:`ntkutils.linearised.linearised_gd`).
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
    adam_average: float
    record_every: int
    snapshot_every: int
    n_landmarks: int
    ntk_max_step: int
    seed: int = 0
    adam_steps_noise: int | None = None
    gd_lanczos: int | None = None

    def adam_steps_for(self, network_input: str) -> int:
        """Adam's steps with this network input (a row of the grid, see ``INPUTS``).

        Examples
        --------
        >>> s = grid_settings("cpu")
        >>> s.adam_steps_for("noisy image"), s.adam_steps_for("iid noise")
        (1500, 3000)
        """
        if network_input not in INPUTS:
            raise ValueError(f"network_input must be one of {INPUTS}, got "
                             f"{network_input!r}")
        if network_input == "iid noise" and self.adam_steps_noise is not None:
            return self.adam_steps_noise
        return self.adam_steps

    def __post_init__(self) -> None:
        """Check every field, by name, as soon as the settings are made."""
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
        for name in ("crop", "adam_steps_noise", "gd_lanczos"):
            if getattr(self, name) is not None:
                check_positive(getattr(self, name), name, integer=True)
        check_sigma(self.sigma, "sigma")
        check_patch_size(self.patch_size, "patch_size", image_shape=(self.size, self.size))
        for name in ("noise_scale", "adam_lr"):
            check_positive(getattr(self, name), name)
        if isinstance(self.adam_input_noise, bool) \
                or not isinstance(self.adam_input_noise, (int, float)) \
                or not self.adam_input_noise >= 0:
            raise ValueError(f"adam_input_noise must be a number >= 0, got "
                             f"{self.adam_input_noise!r}")
        if isinstance(self.adam_average, bool) \
                or not isinstance(self.adam_average, (int, float)) \
                or not 0 <= self.adam_average < 1:
            raise ValueError(f"adam_average must be a number in [0, 1), got "
                             f"{self.adam_average!r}")
        outputs = (1 if self.gray else 3) * self.size**2
        if self.gd_lanczos is not None and self.gd_lanczos > outputs:
            raise ValueError(f"gd_lanczos must be <= the {outputs} values of the "
                             f"{self.size} x {self.size} image, got {self.gd_lanczos}")
        if self.n_landmarks > self.size**2:
            raise ValueError(f"n_landmarks must be <= the {self.size**2} pixels of a "
                             f"{self.size} x {self.size} image, got {self.n_landmarks}")


def grid_settings(scale: str = "cpu", *, image: str | None = None,
                  seed: int = 0) -> GridSettings:
    """The default settings of the grid at one scale.

    Parameters
    ----------
    scale : {"cpu", "medium", "paper"}
        ``"cpu"``: a 32 x 32 colour detail (the centre 128 x 128 shrunk by 4), a vanilla
        CNN of 3 hidden layers of 64 channels, 1,500 Adam steps from the noisy image and
        3,000 from iid noise (about two minutes a seed on one laptop core).  ``"medium"``: the whole picture at 128 x 128, a wider
        encoder-decoder (about 16 times the cpu scale's cost; meant to be run once and
        stored).  ``"paper"``: the 256 x 256 colour image, wide networks and thousands
        of steps, meant for a GPU.  (``"test"``, tiny, is for the tests.)
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
    ('astronaut', 32, False, 25)
    >>> grid_settings("paper").size
    256
    """
    if scale not in _SCALES:
        raise ValueError(f"scale must be 'cpu', 'medium' or 'paper', got {scale!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be an int >= 0, got {seed!r}")
    common = dict(scale=scale, image="astronaut", gray=False, sigma=25 / 255,
                  patch_size=3, noise_channels=32, noise_scale=0.1, adam_lr=1e-2,
                  adam_input_noise=1 / 30, adam_average=0.99, ntk_max_step=10**6, seed=seed)
    if scale == "cpu":
        s = GridSettings(size=32, crop=128, vanilla_channels=64, vanilla_depth=3,
                         ae_channels=16, ae_levels=3, ae_skip_channels=4,
                         gd_steps=100, adam_steps=1500, adam_steps_noise=3000,
                         record_every=10, snapshot_every=100, n_landmarks=128, **common)
    elif scale == "medium":
        s = GridSettings(size=128, crop=None, vanilla_channels=64, vanilla_depth=3,
                         ae_channels=32, ae_levels=4, ae_skip_channels=4,
                         gd_steps=100, adam_steps=1500, record_every=10,
                         snapshot_every=250, n_landmarks=256, **common)
    elif scale == "paper":
        s = GridSettings(size=256, crop=None, vanilla_channels=512, vanilla_depth=3,
                         ae_channels=128, ae_levels=5, ae_skip_channels=4,
                         gd_steps=1000, adam_steps=3000, record_every=10,
                         snapshot_every=250, n_landmarks=1024, **common)
    else:
        s = GridSettings(size=32, crop=64, vanilla_channels=16, vanilla_depth=2,
                         ae_channels=8, ae_levels=2, ae_skip_channels=2,
                         gd_steps=20, adam_steps=20, record_every=5,
                         snapshot_every=10, n_landmarks=64, **common)
    if image is not None:
        if image not in list_images():
            raise ValueError(f"image must be one of {list_images()}, got {image!r}")
        s = dataclasses.replace(s, image=image, gray=_is_gray(image))
    return s


def _is_gray(name: str) -> bool:
    """Whether a shipped image exists only in gray (colour images are used in colour)."""
    try:
        load_image(name, size=8, gray=False)
    except ValueError as err:
        if "gray image" in str(err):
            return True
        raise
    return False

