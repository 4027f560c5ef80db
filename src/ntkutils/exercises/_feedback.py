"""The feedback every exercise checker gives, and the answer coercion they share.

A checker compares the reader's answer with an independent computation and either prints
a one-line confirmation (:func:`_passed`) or raises :class:`ExerciseFailed` (through
:func:`_fail`) saying what was checked, what came back and how it misses
(:func:`_miss`), and a hint.  The reader's answers are turned into Python numbers, pairs
or tensors here, once: :func:`_number`, :func:`_pair`, :func:`_as_scalar_tensor`; their
functions are called through :func:`_call` and their tensors compared by
:func:`_compare`.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch


class ExerciseFailed(AssertionError):
    """A wrong answer to an exercise, with feedback in the message.

    It subclasses ``AssertionError`` so test runners report it as a failed check, but its
    message always says what was expected, what came back and what to try.
    """


# Its public home, so that tracebacks name it ``ntkutils.exercises.ExerciseFailed``.
ExerciseFailed.__module__ = "ntkutils.exercises"


def _fail(exercise: str, checked: str, got: str, hint: str) -> None:
    """Raise the feedback: what was checked, what came back and how it misses, a hint.

    ``checked`` names the quantity (or the type expected), never the right value: the
    feedback must not give the answer away.
    """
    raise ExerciseFailed(
        f"{exercise}: not yet.\n  checked:  {checked}\n  got:      {got}\n  hint:     {hint}"
    )


def _miss(got: float, expected: float) -> str:
    """How a wrong number misses, without the right one: its sign or its size.

    >>> _miss(-2.0, 3.0), _miss(250.0, 3.0), _miss(3.5, 3.0), _miss(0.2, 0.0)
    ('the sign is wrong', 'about 10^2 times too large', 'too large', 'too large')
    """
    if got != 0 and expected != 0 and (got > 0) != (expected > 0):
        return "the sign is wrong"
    if got != 0 and expected != 0:
        power = round(math.log10(abs(got / expected)))
        if power != 0:
            size = "large" if power > 0 else "small"
            return f"about 10^{abs(power)} times too {size}"
    return "too large" if got > expected else "too small"


def _passed(exercise: str, detail: str) -> None:
    """Print the confirmation: what was checked (``detail``), never the right value.

    The output stays visible under a collapsed solution in the rendered book, so it must
    not give the answer away (tests/test_exercises_feedback.py checks every checker).

    >>> _passed("Exercise 0.1", "3 cases")
    Exercise 0.1: correct (3 cases).
    >>> _passed("Exercise 0.1", "")
    Exercise 0.1: correct.
    """
    print(f"{exercise}: correct ({detail})." if detail else f"{exercise}: correct.")


def _shown(value: Any, show: str) -> str:
    """The reader's answer as ``show`` writes it: ``{type}`` its type's name, ``{value}``."""
    return show.format(type=type(value).__name__, value=value)


def _number(
    exercise: str, value: Any, checked: str, hint: str, *,
    kinds: type | tuple[type, ...] = (int, float), integral: bool = False,
    show: str = "{type} {value!r}", unwrap: bool = True,
) -> Any:
    """The reader's scalar answer, or feedback saying what kind of number was expected.

    A one-element tensor counts as its value (unless ``unwrap`` is false); a bool, or
    anything that is not an instance of ``kinds`` (with ``integral``, a number with a
    fractional part), raises :class:`ExerciseFailed` with ``checked``, the answer as
    ``show`` writes it (see :func:`_shown`) and ``hint``.

    >>> _number("Exercise 0.1", torch.tensor(2.5), "a number", "return a float")
    2.5
    >>> _number("Exercise 0.1", True, "a number", "return a float")
    Traceback (most recent call last):
    ...
    ntkutils.exercises.ExerciseFailed: Exercise 0.1: not yet.
      checked:  a number
      got:      bool True
      hint:     return a float
    """
    if unwrap and isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if (isinstance(value, bool) or not isinstance(value, kinds)
            or integral and float(value) != int(value)):
        _fail(exercise, checked, _shown(value, show), hint)
    return value


def _pair(
    exercise: str, value: Any, checked: str, hint: str, *,
    kinds: type | tuple[type, ...] | None = None, show: str = "{type}",
) -> Any:
    """The reader's pair (a tuple or list of two), or feedback saying a pair was expected.

    With ``kinds``, both items must be instances of ``kinds`` and not bools.
    """
    if (not isinstance(value, (tuple, list)) or len(value) != 2
            or kinds is not None and not all(isinstance(v, kinds) and not isinstance(v, bool)
                                             for v in value)):
        _fail(exercise, checked, _shown(value, show), hint)
    return value


def _call(exercise: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the reader's function, turning NotImplementedError into feedback."""
    if not callable(fn):
        _fail(exercise, "a function", f"{type(fn).__name__}",
              "pass the function itself, without calling it")
    try:
        return fn(*args)
    except NotImplementedError:
        _fail(exercise, "your implementation", "NotImplementedError",
              "replace the `raise NotImplementedError` line with your code")


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
        mine, right = float(got64.flatten()[idx]), float(ref.flatten()[idx])
        _fail(exercise, f"every value, within {rtol:g} of the largest entry",
              f"largest error {err:.3g} at flat index {idx}, where yours "
              f"({mine:.4g}) is {_miss(mine, right)}",
              hint or "compare a small case by hand")
    return f"shape {tuple(got.shape)}, largest error {err:.2g}"


def _as_scalar_tensor(exercise: str, value: Any) -> torch.Tensor:
    """The reader's scalar answer as a 0-dim float64 tensor (or feedback)."""
    if isinstance(value, torch.Tensor):
        return value.detach().double()
    value = _number(exercise, value, "a number (a Python float or a 0-dim tensor)",
                    "return the kernel value, e.g. a torch.Tensor of shape ()", show="{type}")
    return torch.tensor(float(value), dtype=torch.float64)


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
    Exercise 0.1: correct (within 1%).
    """
    got = _number(exercise, got, "a number (a Python float)", hint or "return a Python float")
    if not abs(got - expected) <= atol + rtol * abs(expected):
        _fail(exercise, f"the value, within {rtol:.0%}", f"{got:.4g}: {_miss(got, expected)}",
              hint or "re-read the formula in the text above")
    _passed(exercise, _tolerance(rtol, atol))


def _tolerance(rtol: float, atol: float) -> str:
    """The tolerance of a check in words, e.g. ``within 1%`` (never the expected value).

    >>> _tolerance(0.01, 0.0), _tolerance(1e-6, 0.0), _tolerance(0.0, 0.05)
    ('within 1%', 'within a relative 1e-06', 'within 0.05')
    """
    if atol == 0:
        return f"within {rtol:.0%}" if rtol >= 0.01 else f"within a relative {rtol:g}"
    return f"within {atol:g}" if rtol == 0 else "within tolerance"
