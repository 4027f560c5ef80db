"""The package's public surface: every exported name exists, is documented, has an example."""
import inspect
import os

import ntkutils


def test_every_public_name_is_importable_and_documented():
    for name in ntkutils.__all__:
        obj = getattr(ntkutils, name)
        doc = inspect.getdoc(obj) or ""
        assert doc, f"{name} has no docstring"
        if inspect.isfunction(obj):
            assert "Examples" in doc, f"{name} has no doctested example"
            assert "Parameters" in doc or not inspect.signature(obj).parameters, name
            hints = obj.__annotations__
            assert "return" in hints, f"{name} has no return type hint"


def test_import_runs_nothing_heavy():
    # importing the package must not build a kernel or train: it is fast and silent
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import ntkutils"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""


def test_every_subpackage_ships_in_the_wheel():
    """setuptools lists the packages by name: a subpackage left out of pyproject.toml would
    install without it (Colab installs the package from the repository with pip)."""
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
                 ["tool"]["setuptools"]["packages"])
    src = root / "src"
    found = {".".join(p.parent.relative_to(src).parts)
             for p in (src / "ntkutils").rglob("__init__.py")}
    assert found - listed == set(), f"subpackages missing from pyproject.toml: {found - listed}"


def test_every_shipped_data_file_is_in_the_package_data():
    """A data file that ``pyproject.toml``'s package-data patterns miss is in a checkout but
    not in a pip install (Colab): every image and stored run in data/ must match one."""
    import fnmatch
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"]["setuptools"]["package-data"]["ntkutils.data"]
    files = [p.name for p in (root / "data").iterdir() if p.suffix in (".png", ".json")]
    assert any(f.startswith("width-") for f in files) and any(
        f.startswith("grid-") for f in files)
    missed = [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
    assert not missed, f"data files left out of the package data: {missed}"


def test_progress_bars_follow_tqdm_disable(monkeypatch, capsys):
    """The stored outputs hold no bars: TQDM_DISABLE=1 (set for the test run and its notebook
    kernels by the root conftest.py) silences the package's bars; without it they show."""
    from ntkutils._progress import progress_bar

    assert os.environ.get("TQDM_DISABLE") == "1"
    list(progress_bar(range(3), desc="quiet"))
    assert "quiet" not in capsys.readouterr().err
    monkeypatch.delenv("TQDM_DISABLE")
    list(progress_bar(range(3), desc="shown"))
    assert "shown" in capsys.readouterr().err
    list(progress_bar(range(3), desc="off", progress=False))
    assert "off" not in capsys.readouterr().err
