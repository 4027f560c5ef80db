"""Tests of the exercises' shared feedback (``ntkutils.exercises._feedback``) and of the
package's re-exports: the message's shape, how a miss is described, and how the reader's
answers are turned into numbers and pairs, each against messages written out here."""
from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch

import ntkutils.exercises as exercises
from ntkutils.exercises import ExerciseFailed, check_value
from ntkutils.exercises._feedback import _call, _compare, _fail, _miss, _number, _pair


def _message(call) -> str:
    with pytest.raises(ExerciseFailed) as info:
        call()
    return str(info.value)


def test_fail_writes_what_was_checked_what_came_back_and_a_hint():
    message = _message(lambda: _fail("Exercise 0.1", "the value", "3: too large", "redo it"))
    assert message == ("Exercise 0.1: not yet.\n  checked:  the value\n"
                       "  got:      3: too large\n  hint:     redo it")


def test_exercise_failed_is_an_assertion_error_named_at_its_public_home():
    assert issubclass(ExerciseFailed, AssertionError)
    try:
        _fail("Exercise 0.1", "a", "b", "c")
    except ExerciseFailed as error:
        last = traceback.format_exception_only(type(error), error)[0]
    assert last.startswith("ntkutils.exercises.ExerciseFailed: Exercise 0.1: not yet.")


@pytest.mark.parametrize("got, expected, how", [
    (-2.0, 3.0, "the sign is wrong"),
    (250.0, 3.0, "about 10^2 times too large"),
    (0.004, 3.0, "about 10^3 times too small"),
    (3.5, 3.0, "too large"),
    (2.5, 3.0, "too small"),
    (0.2, 0.0, "too large"),
])
def test_miss_says_sign_or_size_without_the_value(got, expected, how):
    assert _miss(got, expected) == how


@pytest.mark.parametrize("value, number", [
    (2.5, 2.5), (3, 3), (torch.tensor(2.5), 2.5), (torch.tensor([7]), 7),
    (np.float64(1.5), np.float64(1.5)),
])
def test_number_accepts_numbers_and_one_element_tensors(value, number):
    got = _number("Exercise 0.1", value, "a number", "return a float")
    assert got == number and type(got) is type(number)


@pytest.mark.parametrize("value, shown", [
    (True, "bool True"), (None, "NoneType None"), ("2.5", "str '2.5'"),
    (torch.tensor([1.0, 2.0]), "Tensor tensor([1., 2.])"), (np.int64(3), f"int64 {np.int64(3)!r}"),
])
def test_number_refuses_anything_else_showing_type_and_value(value, shown):
    message = _message(lambda: _number("Exercise 0.1", value, "a number", "return a float"))
    assert message == ("Exercise 0.1: not yet.\n  checked:  a number\n"
                       f"  got:      {shown}\n  hint:     return a float")


def test_number_options_kinds_integral_show_and_unwrap():
    assert _number("E", 4.0, "an integer", "h", integral=True) == 4.0
    assert "got:      float 4.5\n" in _message(
        lambda: _number("E", 4.5, "an integer", "h", integral=True))
    assert "got:      4.0\n" in _message(
        lambda: _number("E", 4.0, "an int", "h", kinds=int, show="{value!r}"))
    assert "got:      float\n" in _message(
        lambda: _number("E", torch.tensor(4.0), "an int", "h", kinds=int, show="{type}"))
    assert "got:      Tensor\n" in _message(
        lambda: _number("E", torch.tensor(4.0), "a number", "h", show="{type}", unwrap=False))


def test_pair_checks_length_and_optionally_the_items():
    assert _pair("E", (1, 2.0), "a pair", "h", kinds=(int, float)) == (1, 2.0)
    assert _pair("E", ["a", None], "a pair", "h") == ["a", None]
    assert "got:      tuple\n" in _message(lambda: _pair("E", (1, 2, 3), "a pair", "h"))
    assert "got:      (True, 0.5)\n" in _message(
        lambda: _pair("E", (True, 0.5), "a pair", "h", kinds=(int, float), show="{value!r}"))
    assert "got:      int 3\n" in _message(
        lambda: _pair("E", 3, "a pair", "h", show="{type} {value!r}"))


def test_call_turns_a_stub_and_a_non_function_into_feedback():
    def stub(x):
        raise NotImplementedError

    assert _call("E", lambda x: 2 * x, 3) == 6
    assert "got:      NotImplementedError\n" in _message(lambda: _call("E", stub, 3))
    assert "checked:  a function\n  got:      int\n" in _message(lambda: _call("E", 5, 3))


def test_compare_names_the_first_difference():
    ref = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    assert _compare("E", ref + 1e-9, ref, 1e-6, 0.0, "h").startswith("shape (3,)")
    cases = [([1.0, 2.0, 3.0], "a torch.Tensor of shape (3,)"),
             (torch.ones(2), "shape (3,)"),
             (torch.tensor([1, 2, 3]), "a floating-point tensor"),
             (torch.tensor([1.0, float("nan"), 3.0]), "finite values"),
             (torch.tensor([1.0, 2.0, -3.0]), "every value, within 1e-06 of the largest entry")]
    for got, checked in cases:
        assert f"checked:  {checked}\n" in _message(lambda: _compare("E", got, ref, 1e-6, 0.0,
                                                                     "h"))
    assert "at flat index 2, where yours (-3) is the sign is wrong" in _message(
        lambda: _compare("E", torch.tensor([1.0, 2.0, -3.0]), ref, 1e-6, 0.0, "h"))


def test_check_value_accepts_within_tolerance(capsys):
    check_value("Exercise 0.1", torch.tensor(3.1416), 3.14159)
    check_value("Exercise 0.1", 3, 3.02, rtol=0.0, atol=0.05)
    # The confirmation stays visible under a collapsed solution: it never shows the value.
    assert capsys.readouterr().out == ("Exercise 0.1: correct (within 1%).\n"
                                       "Exercise 0.1: correct (within 0.05).\n")
    assert "got:      str '3.14'\n" in _message(lambda: check_value("E", "3.14", 3.14159))


def test_every_checker_is_exported_from_the_package():
    from ntkutils.exercises import ch1, ch2, ch3, ch4, ch5, ch6, ch7

    chapters = [ch1, ch2, ch3, ch4, ch5, ch6, ch7]
    defined = {name for mod in chapters for name in vars(mod)
               if name.startswith("check_") and callable(getattr(mod, name))}
    defined |= {"ExerciseFailed", "check_value", "CH5_LANDMARK_COUNTS"}
    assert set(exercises.__all__) == defined
    assert all(getattr(exercises, name) is not None for name in exercises.__all__)


def test_wrong_answers_get_feedback_without_the_answer():
    # The feedback says what was checked, how the answer misses and a hint; it never
    # prints the right value (a student could copy it).
    from ntkutils.exercises import check_ch5_landmarks_for_error, check_weight_change_exponents

    cases = [
        (lambda: check_value("Exercise 0.1", 1.0, 3.14159), "3.142", "too small"),
        (lambda: check_value("Exercise 0.1", -3.0, 3.14159), "3.142", "sign is wrong"),
        (lambda: check_weight_change_exponents((0.0, -1.0)), "-0.5", "too small"),
        (lambda: check_ch5_landmarks_for_error(8), "m = 64", "too few"),
    ]
    for call, answer, how in cases:
        with pytest.raises(ExerciseFailed) as info:
            call()
        message = str(info.value)
        assert answer not in message and how in message, message
        assert "checked:" in message and "hint:" in message



def test_no_stored_confirmation_shows_a_value():
    """What a rendered solution shows under the checker: "correct", never the answer.

    Every confirmation stored in a chapter comes from ``_passed``; none may quote an
    expected value (the old messages ended in "(expected 3.142)").
    """
    import json
    import re
    from pathlib import Path

    lines = []
    for path in sorted(Path(__file__).parents[1].glob("book/*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            for out in cell.get("outputs", []):
                text = "".join(out.get("text", "")) + "".join(
                    out.get("data", {}).get("text/plain", ""))
                lines += [(path.name, ln) for ln in text.splitlines()
                          if re.match(r"Exercise \d+(\.\d+)?: correct", ln)]
    assert lines, "no stored confirmation found: the test reads the wrong outputs"
    # a value: "(expected 3.142)", "t* = 1", "rho = 0.60" (a property such as "V^T V = I" is
    # what was checked, not an answer)
    shown = [(name, ln) for name, ln in lines
             if re.search(r"expected\s*[-+]?\.?\d|=\s*[-+]?\.?\d", ln)]
    assert not shown, f"confirmations that give the answer away: {shown}"
