"""Test-run environment, for every test that pytest collects from this folder.

It lives at the repository root (not in tests/) so that it also applies when
only the notebooks are tested, e.g. ``python -m pytest book/``.  nbval starts
each notebook's kernel with pytest's environment, so what is set here reaches
the notebooks too.
"""
import os

# Progress bars off in the package and in the notebooks (see
# book/how_this_book_works.ipynb): the stored outputs hold no bars.
os.environ["TQDM_DISABLE"] = "1"
# Same hash seed in every kernel, for reproducible set and dict orders.
os.environ.setdefault("PYTHONHASHSEED", "0")
# One BLAS/OpenMP thread, in pytest and in every notebook kernel: the stored
# outputs were computed this way, and a seeded run then reproduces them bit for
# bit (a different thread count may change the last bits of a reduction).
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"
# The test run never reaches the paper's sizes, even if the shell asks for it.
os.environ.pop("NTK_PAPER_SCALE", None)


def pytest_collection_modifyitems(config, items):
    """Warnings are errors in the package's own tests and doctests.

    A deprecated call in ``ntkutils`` (or one it triggers in PyTorch) then fails a test
    instead of landing in a chapter's outputs.  The notebooks are not marked: their
    warnings would appear in the stored outputs, which nbval already compares.
    """
    import pytest

    for item in items:
        if not item.nodeid.endswith(".ipynb") and ".ipynb::" not in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings("error"))
