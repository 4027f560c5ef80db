"""Argument checks shared by the public functions (internal).

Every public function validates its arguments here, at the boundary, and raises a
``TypeError`` or ``ValueError`` whose message names the argument, what was expected
and what was given.  Interior helpers trust their callers.
"""
from __future__ import annotations

import math
from typing import Any

import torch

__all__: list[str] = []


def check_tensor(
    value: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    finite: bool = True,
    unit_range: bool = False,
) -> torch.Tensor:
    """Return ``value`` if it is a real floating tensor with the expected shape, else raise."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor, got {type(value).__name__}"
        )
    if value.is_complex() or not value.is_floating_point():
        raise TypeError(
            f"{name} must be a real floating-point tensor (float32 or float64), "
            f"got dtype {value.dtype}; convert it with {name}.float()"
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if value.ndim not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name} must have {want} dimensions, got shape {tuple(value.shape)}"
            )
    if value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    if finite and not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    if unit_range:
        lo, hi = float(value.min()), float(value.max())
        if lo < 0.0 or hi > 1.0:
            raise ValueError(
                f"{name} must have values in [0, 1], got values in [{lo:.3g}, {hi:.3g}]"
            )
    return value


def check_image(value: Any, name: str, *, unit_range: bool = False) -> torch.Tensor:
    """An image ``(C, H, W)`` with ``C`` in {1, 3}."""
    value = check_tensor(value, name, ndim=3, unit_range=unit_range)
    if value.shape[0] not in (1, 3):
        raise ValueError(
            f"{name} must be an image of shape (C, H, W) with C = 1 (gray) or 3 (colour), "
            f"got shape {tuple(value.shape)}"
        )
    return value


def check_net_input(value: Any, name: str) -> torch.Tensor:
    """A network input ``(C, H, W)`` with any number of channels ``C >= 1``.

    The noisy image (1 or 3 channels) or the deep image prior's iid noise (32 channels).
    """
    return check_tensor(value, name, ndim=3)


def check_positive(value: Any, name: str, *, integer: bool = False) -> Any:
    """A finite number > 0 (an int when ``integer``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        kind = "an int" if integer else "a number"
        raise TypeError(f"{name} must be {kind} > 0, got {value!r}")
    if integer and not isinstance(value, int):
        raise TypeError(f"{name} must be an int > 0, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return value


def check_patch_size(value: Any, name: str = "patch_size", *, image_shape=None) -> int:
    """An odd int >= 1, no larger than the image."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an odd int >= 1, got {value!r}")
    if value < 1 or value % 2 == 0:
        raise ValueError(f"{name} must be an odd int >= 1 (a centred patch), got {value}")
    if image_shape is not None and value > min(image_shape):
        raise ValueError(
            f"{name} = {value} is larger than the image ({image_shape[0]}x{image_shape[1]})"
        )
    return value


def check_generator(value: Any, name: str = "generator") -> torch.Generator | None:
    """``None`` or a ``torch.Generator``."""
    if value is not None and not isinstance(value, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(value).__name__}")
    return value


def check_float_dtype(value: Any, name: str = "dtype") -> torch.dtype:
    """``value`` itself, or ``torch.get_default_dtype()`` for ``None``; a floating dtype."""
    if value is None:
        return torch.get_default_dtype()
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.dtype (torch.float32 or "
                        f"torch.float64) or None, got {value!r}")
    return value
