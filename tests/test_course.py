"""ntkutils.course: the glue record is myst-nb's, and numbers keep only the digits asked for."""
from __future__ import annotations

import pytest

from ntkutils import NTKUtilsError, course


class _Shell:
    """Stands in for a running IPython kernel (glue displays only inside one)."""


def _capture(monkeypatch, module, attr):
    calls = []
    monkeypatch.setattr(module, attr, lambda *a, **k: calls.append((a, k)))
    return calls


def test_record_is_the_one_myst_nb_writes(monkeypatch):
    myst_glue = pytest.importorskip("myst_nb.ext.glue")
    import IPython
    import IPython.display

    ours = _capture(monkeypatch, IPython.display, "display")
    monkeypatch.setattr(IPython, "get_ipython", lambda: _Shell())
    course.glue("best_psnr", 25.2006977)
    theirs = _capture(monkeypatch, myst_glue, "ipy_display")
    myst_glue.glue("best_psnr", "25.2", display=False)
    assert ours == theirs


def test_myst_nb_reads_the_record_back(monkeypatch):
    myst_glue = pytest.importorskip("myst_nb.ext.glue")
    import nbformat
    import IPython
    import IPython.display

    calls = _capture(monkeypatch, IPython.display, "display")
    monkeypatch.setattr(IPython, "get_ipython", lambda: _Shell())
    course.glue("slope", -0.4912, fmt=".2f")
    (args, kwargs), = calls
    cell = nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data=args[0], metadata=kwargs["metadata"])])
    (key, data), = myst_glue.extract_glue_data_cell(cell)
    assert key == "slope"
    from myst_nb.core.variables import format_plain_text

    assert format_plain_text(data["data"]["text/plain"], "") == "-0.49"


@pytest.mark.parametrize("value, fmt, text", [
    (25.2006977, ".1f", "25.2"),
    (0.1634, ".0%", "16%"),
    (3, "d", "3"),
    ("already 3.0", ".1f", "already 3.0"),
])
def test_formats_numbers_and_keeps_strings(value, fmt, text):
    assert course.glue("x", value, fmt=fmt) == text


def test_tensor_and_numpy_scalars():
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert course.glue("a", torch.tensor(1.25, dtype=torch.float64), ".2f") == "1.25"
    assert course.glue("b", np.float64(2.5), ".0f") == "2"


@pytest.mark.parametrize("name, value, fmt, words", [
    ("bad name", 1.0, ".1f", "name must be letters"),
    ("", 1.0, ".1f", "name must be letters"),
    ("x", [1.0], ".1f", "must be a number or a string"),
    ("x", True, ".1f", "must be a number or a string"),
    ("x", 1.0, "q", "is not a format"),
    ("x", 1.0, 2, "fmt must be a format spec"),
])
def test_bad_input_is_named(name, value, fmt, words):
    with pytest.raises(NTKUtilsError, match=words):
        course.glue(name, value, fmt=fmt)


def test_run_time(monkeypatch):
    course._CLOCK.clear()
    with pytest.raises(NTKUtilsError, match="clock was never started"):
        course.glue_run_time()
    now = [100.0]
    monkeypatch.setattr(course.time, "perf_counter", lambda: now[0])
    course.start_clock()
    now[0] += 60 * 3.3
    assert course.glue_run_time() == "3.5 min"
    now[0] += 60 * 10
    assert course.glue_run_time() == "13 min"
    course._CLOCK.clear()
    course.start_clock()
    assert course.glue_run_time() == "0.5 min"


@pytest.fixture
def restore_dtype():
    import torch

    before = torch.get_default_dtype()
    yield
    torch.set_default_dtype(before)


def test_setup_cpu_is_float64_and_reads_the_switch(monkeypatch, capsys, restore_dtype):
    import torch

    monkeypatch.setenv("NTK_PAPER_SCALE", "1")
    monkeypatch.setenv("TQDM_DISABLE", "1")
    got = course.setup(seed=3, device="cpu")
    assert got == (3, torch.device("cpu"), torch.float64, True, False)
    assert torch.get_default_dtype() is torch.float64
    assert capsys.readouterr().out.strip() == (
        "seed: 3 | device: cpu | dtype: float64 | paper scale: True")
    monkeypatch.delenv("NTK_PAPER_SCALE")
    assert course.setup(device="cpu").paper_scale is False
    assert course.setup(paper_scale=True, device="cpu").paper_scale is True
    assert "start" in course._CLOCK


@pytest.mark.parametrize("kwargs, words", [
    ({"seed": -1}, "seed must be an integer"),
    ({"seed": 1.5}, "seed must be an integer"),
    ({"paper_scale": "yes"}, "paper_scale must be True, False or None"),
    ({"device": "gpu"}, "device must be 'cpu', 'cuda'"),
])
def test_setup_bad_input(kwargs, words, restore_dtype):
    with pytest.raises(NTKUtilsError, match=words):
        course.setup(**kwargs)


def test_setup_cuda_without_gpu(restore_dtype):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(NTKUtilsError, match="sees no GPU"):
        course.setup(device="cuda")


def test_glue_spread_records_mean_min_max_and_count(monkeypatch):
    recorded = {}
    monkeypatch.setattr(course, "glue", lambda name, value, fmt=".1f": recorded.setdefault(
        name, course._format(name, value, fmt)))
    course.glue_spread("gain", [1.04, 0.96, 1.30], ".2f")
    assert recorded == {"gain": "1.10", "gain_min": "0.96", "gain_max": "1.30",
                        "gain_seeds": "3", "gain_spread": "1.10 (0.96 to 1.30)"}


@pytest.mark.parametrize("values, words", [
    ([1.0, 2.0], "at least 3 seeds"),
    ([1.0, 2.0, float("nan")], "must be finite"),
    (["a", 1.0, 2.0], "sequence of numbers"),
    (3.0, "sequence of numbers"),
])
def test_glue_spread_bad_input(values, words):
    with pytest.raises(NTKUtilsError, match=words):
        course.glue_spread("gain", values)
