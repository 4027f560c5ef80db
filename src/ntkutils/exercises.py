"""Checkers for the book's exercises.

Each chapter's exercises call a checker from this module with the reader's answer.  A
checker compares the answer with an independent computation from the package and either
prints a one-line confirmation or raises :class:`ExerciseFailed` with feedback a student
can act on: what was expected, what came back, and a hint.  Checkers never return silently
on a wrong answer.

Chapter sections below are added by the chapters that use them; the building blocks come
first.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["ExerciseFailed", "check_value", "check_tensor_close"]


class ExerciseFailed(AssertionError):
    """A wrong answer to an exercise, with feedback in the message.

    It subclasses ``AssertionError`` so test runners report it as a failed check, but its
    message always says what was expected, what came back and what to try.
    """


def _fail(exercise: str, expected: str, got: str, hint: str) -> None:
    raise ExerciseFailed(
        f"{exercise}: not yet.\n  expected: {expected}\n  got:      {got}\n  hint:     {hint}"
    )


def _passed(exercise: str, detail: str) -> None:
    print(f"{exercise}: correct. {detail}".rstrip())


def check_value(
    exercise: str, got: Any, expected: float, *, rtol: float = 1e-2, atol: float = 0.0,
    hint: str = "",
) -> None:
    """Check a scalar answer against the expected value.

    Parameters
    ----------
    exercise : str
        The exercise's label, e.g. ``"Exercise 1.2"``.
    got : float
        The reader's answer.
    expected : float
        The value computed independently by the package.
    rtol, atol : float
        Relative and absolute tolerance.
    hint : str
        What to try when the answer is wrong.

    Raises
    ------
    ExerciseFailed
        With the expected value, the answer and the hint, when they differ.

    Examples
    --------
    >>> check_value("Exercise 0.1", 3.1416, 3.14159)
    Exercise 0.1: correct. 3.142 (expected 3.142)
    """
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        _fail(exercise, f"a number close to {expected:.4g}",
              f"{type(got).__name__} {got!r}", hint or "return a Python float")
    if not abs(got - expected) <= atol + rtol * abs(expected):
        _fail(exercise, f"{expected:.4g} (within {rtol:.0%})", f"{got:.4g}",
              hint or "re-read the formula in the text above")
    _passed(exercise, f"{got:.4g} (expected {expected:.4g})")


def check_tensor_close(
    exercise: str, got: Any, expected: torch.Tensor, *, rtol: float = 1e-4,
    atol: float = 1e-6, hint: str = "",
) -> None:
    """Check a tensor answer: its type, shape, finiteness and values.

    Parameters
    ----------
    exercise : str
        The exercise's label.
    got : torch.Tensor
        The reader's answer.
    expected : torch.Tensor
        The independent reference.
    rtol, atol : float
        Tolerances of the comparison (relative to the reference's largest entry).
    hint : str
        What to try when the answer is wrong.

    Raises
    ------
    ExerciseFailed
        Naming the first thing that differs (type, shape, NaN, or the largest error).

    Examples
    --------
    >>> check_tensor_close("Exercise 0.2", torch.ones(2, 2), torch.ones(2, 2))
    Exercise 0.2: correct. shape (2, 2), largest error 0
    """
    _passed(exercise, _compare(exercise, got, expected, rtol, atol, hint))


def _compare(
    exercise: str, got: Any, expected: torch.Tensor, rtol: float, atol: float, hint: str
) -> str:
    """Raise ExerciseFailed on the first difference; else describe the match."""
    if not isinstance(got, torch.Tensor):
        _fail(exercise, f"a torch.Tensor of shape {tuple(expected.shape)}",
              f"{type(got).__name__}", hint or "return a tensor, not a list or array")
    if tuple(got.shape) != tuple(expected.shape):
        _fail(exercise, f"shape {tuple(expected.shape)}", f"shape {tuple(got.shape)}",
              hint or "check which axis you reduced or reshaped")
    if not got.is_floating_point():
        _fail(exercise, "a floating-point tensor", f"dtype {got.dtype}",
              hint or "convert with .double()")
    if not bool(torch.isfinite(got).all()):
        _fail(exercise, "finite values", "NaN or inf entries",
              hint or "look for a division by zero (a zero patch?) or arccos of a value "
              "just outside [-1, 1]")
    got64 = got.detach().cpu().double()
    ref = expected.detach().cpu().double()
    err = float((got64 - ref).abs().max())
    scale = float(ref.abs().max())
    if err > atol + rtol * scale:
        idx = int((got64 - ref).abs().argmax())
        _fail(exercise, f"values within {rtol:g} of the reference (largest {scale:.4g})",
              f"largest error {err:.3g} at flat index {idx} "
              f"(yours {float(got64.flatten()[idx]):.4g}, "
              f"reference {float(ref.flatten()[idx]):.4g})",
              hint or "compare a small case by hand")
    return f"shape {tuple(got.shape)}, largest error {err:.2g}"


def check_function(
    exercise: str, fn: Callable[..., Any], reference: Callable[..., Any],
    cases: list[tuple], **kwargs: Any,
) -> None:
    """Check a function the reader wrote against the package's own on several inputs.

    Parameters
    ----------
    exercise : str
        The exercise's label.
    fn : callable
        The reader's function.
    reference : callable
        The package's function with the same signature.
    cases : list of tuple
        Positional arguments to try, one tuple per call.
    **kwargs
        Passed to :func:`check_tensor_close` (``rtol``, ``atol``, ``hint``).

    Examples
    --------
    >>> check_function("Exercise 0.3", torch.relu, lambda t: t.clamp(min=0),
    ...                [(torch.tensor([-1.0, 2.0]),)])
    Exercise 0.3: correct. 1 case(s), last: shape (2,), largest error 0
    """
    if not callable(fn):
        _fail(exercise, "a function", f"{type(fn).__name__}",
              "pass the function itself, without calling it")
    rtol, atol = kwargs.get("rtol", 1e-4), kwargs.get("atol", 1e-6)
    hint = kwargs.get("hint", "")
    for args in cases:
        try:
            got = fn(*args)
        except NotImplementedError:
            _fail(exercise, "your implementation", "NotImplementedError",
                  "replace the `raise NotImplementedError` line with your code")
        detail = _compare(exercise, got, reference(*args), rtol, atol, hint)
    _passed(exercise, f"{len(cases)} case(s), last: {detail}")


__all__ += ["check_function"]
