"""Images and noise: the shipped test images, the noise model ``y = x + n`` and PSNR.

The package holds images channel-first, ``(C, H, W)``; numpy, scikit-image and matplotlib
want them channel-last, ``(H, W, C)``.  :func:`to_hwc` and :func:`to_chw` are the one place
that converts between the two.

The images live in ``data/`` at the root of a source checkout and inside the installed
package (``ntkutils/data``) when the package is installed from the repository (Colab), so
nothing is downloaded at run time.  Their sources and licences are in ``data/README.md``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from skimage.color import rgb2gray
from skimage.io import imread
from skimage.metrics import peak_signal_noise_ratio
from skimage.restoration import estimate_sigma as _skimage_estimate_sigma
from skimage.transform import resize

from ._checks import (
    check_bool,
    check_float_dtype,
    check_generator,
    check_image,
    check_memory,
    check_positive,
    check_scale,
    check_sigma,
    check_tensor,
)

__all__ = ["list_images", "load_image", "add_noise", "psnr", "estimate_sigma", "to_hwc",
           "to_chw"]

_GRAY_ONLY = {"camera", "grass", "brick"}


def to_hwc(img: torch.Tensor | np.ndarray, *, squeeze: bool = False
           ) -> torch.Tensor | np.ndarray:
    """Channel-first ``(C, H, W)`` to channel-last ``(H, W, C)``, a view of ``img``.

    Parameters
    ----------
    img : torch.Tensor or numpy.ndarray, shape (C, H, W)
        An image as the package holds it.
    squeeze : bool
        Return a single-channel image as ``(H, W)`` (what ``imshow`` and ``imsave`` take
        for gray).

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(H, W, C)``, or ``(H, W)`` when ``squeeze`` and ``C = 1``; the same type as
        ``img``, sharing its memory.

    Examples
    --------
    >>> x = torch.arange(12.0).reshape(3, 2, 2)
    >>> to_hwc(x).shape, to_hwc(x.numpy()).shape, to_hwc(x[:1], squeeze=True).shape
    (torch.Size([2, 2, 3]), (2, 2, 3), torch.Size([2, 2]))
    >>> bool((to_chw(to_hwc(x)) == x).all())
    True
    """
    _check_layout(img, "img", "(C, H, W)", (3,))
    if squeeze and img.shape[0] == 1:
        return img[0]  # (H, W)
    return img.permute(1, 2, 0) if isinstance(img, torch.Tensor) else img.transpose(1, 2, 0)


def to_chw(img: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Channel-last ``(H, W, C)`` (or gray ``(H, W)``) to channel-first ``(C, H, W)``, a view.

    Parameters
    ----------
    img : torch.Tensor or numpy.ndarray, shape (H, W, C) or (H, W)
        An image as numpy, scikit-image or an image file holds it.

    Returns
    -------
    torch.Tensor or numpy.ndarray
        ``(C, H, W)`` (``(1, H, W)`` for a gray ``(H, W)``); the same type as ``img``,
        sharing its memory.

    Examples
    --------
    >>> to_chw(np.zeros((4, 5, 3))).shape, to_chw(torch.zeros(4, 5)).shape
    ((3, 4, 5), torch.Size([1, 4, 5]))
    """
    _check_layout(img, "img", "(H, W, C) or (H, W)", (2, 3))
    if img.ndim == 2:
        return img[None]  # (1, H, W)
    return img.permute(2, 0, 1) if isinstance(img, torch.Tensor) else img.transpose(2, 0, 1)


def _check_layout(img: object, name: str, layout: str, ndims: tuple[int, ...]) -> None:
    if not isinstance(img, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or numpy.ndarray, got "
                        f"{type(img).__name__}")
    if img.ndim not in ndims:
        raise ValueError(f"{name} must have shape {layout}, got {tuple(img.shape)}")


def _data_dir() -> Path:
    """The folder holding the shipped PNGs: the checkout's ``data/`` or the package's."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parents[1] / "data", here / "data"):
        if (candidate / "camera.png").is_file():
            return candidate
    raise FileNotFoundError(
        "the course images were not found in data/ of a source checkout nor in the "
        "installed package; reinstall ntkutils from the repository"
    )


def list_images() -> list[str]:
    """Names of the test images shipped with the course.

    Returns
    -------
    list of str
        Sorted names accepted by :func:`load_image`.

    Examples
    --------
    >>> list_images()
    ['astronaut', 'brick', 'camera', 'chelsea', 'coffee', 'grass']
    """
    return sorted(p.stem for p in _data_dir().glob("*.png"))


def load_image(
    name: str, size: int | None = None, gray: bool = True, crop: int | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Load a shipped test image as a float tensor in [0, 1].

    Parameters
    ----------
    name : str
        One of :func:`list_images` (``camera``, ``grass`` and ``brick`` are gray;
        ``astronaut``, ``coffee`` and ``chelsea`` are colour).
    size : int, optional
        Side of the square image returned, in pixels.  ``None`` keeps the stored
        256 x 256.  Resizing is anti-aliased.
    gray : bool
        Return one channel (luminance of a colour image) when True, three when False.
    crop : int, optional
        Side, in stored pixels, of a centre crop taken before resizing: ``crop=64,
        size=64`` is a 64 x 64 detail at full resolution, ``size=64`` alone the whole
        image shrunk.  ``None`` keeps the whole image.
    dtype : torch.dtype, optional
        Floating dtype of the result; ``None`` takes PyTorch's default dtype
        (``torch.get_default_dtype()``: float32 unless a chapter sets float64 for its CPU
        tier).  The image is read and resized in float64 whatever ``dtype`` is.

    Returns
    -------
    torch.Tensor
        ``(C, H, W)`` tensor with ``C = 1`` (gray) or ``3`` and ``H = W = size``.

    Examples
    --------
    >>> x = load_image("camera", size=64)
    >>> tuple(x.shape), x.dtype, bool(0 <= x.min() and x.max() <= 1)
    ((1, 64, 64), torch.float32, True)
    >>> load_image("camera", size=8, dtype=torch.float64).dtype
    torch.float64
    >>> tuple(load_image("coffee", size=32, gray=False).shape)
    (3, 32, 32)
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, one of {list_images()}, got {name!r}")
    names = list_images()
    if name not in names:
        raise ValueError(f"name must be one of {names}, got {name!r}")
    check_bool(gray, "gray")
    if size is not None:
        check_positive(size, "size", integer=True)
        # resize works in float64 on (size, size, 3) plus scratch of the same size
        check_memory(4 * 3 * 8 * size**2, f"load_image(size={size})",
                     "ask for a smaller size (the stored images are 256 x 256)")
    if not gray and name in _GRAY_ONLY:
        raise ValueError(f"gray=False asks for colour, but {name!r} is a gray image")
    dtype = check_float_dtype(dtype)
    img = imread(_data_dir() / f"{name}.png").astype(np.float64) / 255.0  # (H, W[, 3])
    side = img.shape[0]
    if crop is not None:
        check_positive(crop, "crop", integer=True)
        if crop > side:
            raise ValueError(f"crop must be at most {side} (the stored size), got {crop}")
        top = (side - crop) // 2
        img = img[top:top + crop, top:top + crop]
    if size is not None and img.shape[0] != size:
        img = resize(img, (size, size), anti_aliasing=True)
    if img.ndim == 3 and gray:
        img = rgb2gray(img)  # (H, W)
    return torch.from_numpy(np.clip(to_chw(img), 0.0, 1.0)).to(dtype)  # (C, H, W)


def add_noise(
    x: torch.Tensor,
    sigma: float,
    generator: torch.Generator | None = None,
    clip: bool = False,
) -> torch.Tensor:
    """Add white Gaussian noise: ``y = x + n`` with ``n ~ N(0, sigma^2 I)``.

    Parameters
    ----------
    x : torch.Tensor
        Clean image ``(C, H, W)`` in [0, 1] (an image on 0..255 is refused: divide by 255).
    sigma : float
        Noise standard deviation on the [0, 1] scale (``25 / 255`` is "sigma = 25";
        values above 1 are refused as the 0..255 scale).
    generator : torch.Generator, optional
        Source of randomness; pass a seeded one for reproducible noise.
    clip : bool
        Clip ``y`` to [0, 1] (the deep image prior's notebooks do).  The course keeps the
        default ``False``: the theory's model is ``y = x + n`` with Gaussian ``n``.

    Returns
    -------
    torch.Tensor
        Noisy image ``y``, same shape, dtype and device as ``x``.

    Examples
    --------
    >>> x = torch.zeros(1, 100, 100)
    >>> y = add_noise(x, 0.1, generator=torch.Generator().manual_seed(0))
    >>> round(float(y.std()), 2)
    0.1
    """
    check_image(x, "x")
    check_scale(x, "x")
    check_sigma(sigma, "sigma")
    check_generator(generator)
    check_bool(clip, "clip")
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype)
    y = x + sigma * noise.to(x.device)
    return y.clamp(0.0, 1.0) if clip else y


def psnr(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of an estimate of an image in [0, 1].

    Parameters
    ----------
    x_hat : torch.Tensor
        Estimate, any shape, on the [0, 1] scale (values outside [0, 1], as noise gives,
        are scored as they are; values above 5 are refused as the 0..255 scale).
    x : torch.Tensor
        Clean reference, same shape, values in [0, 1] (not 0..255).

    Returns
    -------
    float
        ``10 log10(1 / MSE)``, computed by
        :func:`skimage.metrics.peak_signal_noise_ratio` with ``data_range=1``.

    Examples
    --------
    >>> x = torch.zeros(1, 4, 4)
    >>> round(psnr(x + 0.1, x), 6)
    20.0
    """
    check_tensor(x_hat, "x_hat")
    check_tensor(x, "x")
    check_scale(x, "x")
    check_scale(x_hat, "x_hat", noisy=True)
    if x_hat.shape != x.shape:
        raise ValueError(
            f"x_hat and x must have the same shape, got {tuple(x_hat.shape)} and "
            f"{tuple(x.shape)}"
        )
    ref = x.detach().cpu().double().numpy()
    est = x_hat.detach().cpu().double().numpy()
    return float(peak_signal_noise_ratio(ref, est, data_range=1.0))


def estimate_sigma(y: torch.Tensor) -> float:
    """Estimate the noise standard deviation of a noisy image.

    Parameters
    ----------
    y : torch.Tensor
        Noisy image ``(C, H, W)`` on the [0, 1] scale (noise may take it a little
        outside; values above 5 are refused as the 0..255 scale).

    Returns
    -------
    float
        Estimated ``sigma`` on the [0, 1] scale (averaged over channels), from the
        wavelet-based robust median estimator of Donoho & Johnstone as implemented in
        :func:`skimage.restoration.estimate_sigma`.

    Examples
    --------
    >>> x = load_image("camera", size=128)
    >>> y = add_noise(x, 25 / 255, generator=torch.Generator().manual_seed(0))
    >>> abs(estimate_sigma(y) - 25 / 255) < 0.01
    True
    """
    check_image(y, "y")
    check_scale(y, "y", noisy=True)
    if float(y.max()) == float(y.min()):
        return 0.0  # a constant image has no noise (and no wavelet detail to measure)
    img = to_hwc(y.detach().cpu().double().numpy())  # (H, W, C)
    return float(_skimage_estimate_sigma(img, channel_axis=-1, average_sigmas=True))
