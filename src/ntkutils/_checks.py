"""Argument checks shared by the public functions (internal).

Every public function validates its arguments here, at the boundary, and raises a
``TypeError`` or ``ValueError`` whose message names the argument, what was expected
and what was given.  Interior helpers trust their callers.
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch
from torch import nn

__all__ = ["NTKUtilsError"]

WORK_BYTES = 2**28  # memory for the temporaries of one chunk of a kernel (about 256 MB)


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
            f"got shape {tuple(value.shape)}{channels_last_hint(value, name)}"
        )
    return value


def check_net_input(value: Any, name: str) -> torch.Tensor:
    """A network input ``(C, H, W)`` with any number of channels ``C >= 1``.

    The noisy image (1 or 3 channels) or the deep image prior's iid noise (32 channels).
    """
    value = check_tensor(value, name, ndim=3)
    hint = channels_last_hint(value, name)
    if hint:
        raise ValueError(f"{name} must have shape (C, H, W), got {tuple(value.shape)}{hint}")
    return value


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


def check_index(value: Any, name: str, size: int) -> torch.Tensor:
    """A 1-D integer tensor of indices in ``[0, size)``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D torch.LongTensor of indices, got "
                        f"{type(value).__name__}")
    if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of indices, got dtype {value.dtype}")
    if value.ndim != 1 or value.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor, got shape {tuple(value.shape)}")
    lo, hi = int(value.min()), int(value.max())
    if lo < 0 or hi >= size:
        raise ValueError(f"{name} must hold indices in [0, {size}), got values in [{lo}, {hi}]")
    return value.long()


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


class NTKUtilsError(ValueError):
    """A bad argument to ``ntkutils`` or its command lines (a ``ValueError``).

    The message names the argument, what was expected and, where there is one, the fix.
    """


class TrainingDiverged(NTKUtilsError):
    """Gradient descent diverged: its learning rate is too large for the network.

    Raised by :func:`ntkutils.training.fit` (a ``ValueError`` that names ``lr``), so a
    caller that expects divergence, such as the grid at the step ``1 / lambda_max``,
    catches this class and nothing else.
    """


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def available_memory() -> int:
    """Bytes of memory this process can still allocate (MemAvailable; else physical)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 2**63


def check_memory(nbytes: float, what: str, advice: str) -> None:
    """Refuse, before allocating, a computation that needs more memory than is available."""
    have = available_memory()
    if nbytes > have:
        raise NTKUtilsError(
            f"{what} needs about {_gib(nbytes)} of memory but this machine has "
            f"{_gib(have)} available; {advice}"
        )


def check_input_channels(model: nn.Module, u: torch.Tensor, name: str) -> None:
    """``u`` ``(C, H, W)`` has the input channels of ``model``'s first convolution."""
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is not None and u.shape[0] != conv.in_channels:
        raise ValueError(f"{name} must have the model's {conv.in_channels} input channels, "
                         f"got shape {tuple(u.shape)}")


def check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_sigma(value: Any, name: str = "sigma", *, allow_zero: bool = False) -> float:
    """A noise level on the [0, 1] scale: refuse values that are clearly on 0..255."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number on the [0, 1] scale (25/255 for "
                        f"'sigma = 25'), got {value!r}")
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} on the [0, 1] "
                         f"scale, got {value!r}")
    if value > 1:
        raise NTKUtilsError(
            f"{name} = {value!r} looks like the 0..255 scale; ntkutils takes sigma on the "
            f"[0, 1] scale: pass {name}={value:g}/255"
        )
    return float(value)


def check_scale(value: torch.Tensor, name: str, *, noisy: bool = False) -> torch.Tensor:
    """Refuse an image that is clearly on the 0..255 scale (a noisy one may leave [0, 1])."""
    hi = float(value.detach().abs().max())
    limit = 5.0 if noisy else 1.0 + 1e-6
    if hi > limit:
        raise NTKUtilsError(
            f"{name} has values up to {hi:.3g}: it looks like the 0..255 scale, but "
            f"ntkutils takes images on the [0, 1] scale; divide {name} by 255"
        )
    if not noisy and float(value.min()) < -1e-6:
        raise ValueError(f"{name} must have values in [0, 1], got a minimum of "
                         f"{float(value.min()):.3g}")
    return value


def channels_last_hint(value: torch.Tensor, name: str) -> str:
    """A sentence for a ``(H, W, C)`` tensor that was meant as ``(C, H, W)``, else ''."""
    if value.ndim == 3 and value.shape[-1] in (1, 3, 4) and min(value.shape[:2]) > 4:
        return (f"; it looks channels-last (H, W, C): use {name}.permute(2, 0, 1)")
    return ""


def check_device(device) -> torch.device:
    """A device this machine has (the CPU or an NVIDIA GPU), or a clear error naming ``device``."""
    if isinstance(device, str) and device.strip().lower() == "gpu":
        raise NTKUtilsError("device 'gpu' is not a PyTorch device: device must be 'cpu', "
                            "'cuda' (an NVIDIA GPU) or a torch.device")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise NTKUtilsError(f"device must be 'cpu' or 'cuda' (or a torch.device), got "
                            f"{device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise NTKUtilsError("device 'cuda' was asked for, but PyTorch sees no GPU (no CUDA "
                            "GPU it can use); use device='cpu'")
    if device.type not in ("cpu", "cuda"):
        raise NTKUtilsError(f"device must be 'cpu' or 'cuda', got {str(device)!r}: the "
                            f"course runs on the CPU or an NVIDIA GPU")
    return device
