"""Test-run environment, for every test that pytest collects from this folder.

It lives at the repository root (not in tests/) so that it also applies when
only the notebooks are tested, e.g. ``python -m pytest book/``.  nbval starts
each notebook's kernel with pytest's environment, so what is set here reaches
the notebooks too.
"""
import os

import pytest

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


# The costliest test units, longest first (measured in CI's run on a 2-core machine, one
# thread per process, under SSE4.1: a chapter's nbval run or its student copy takes 3 to
# 8 minutes, chapter 7's about 20).  `make test` runs two processes (pytest-xdist):
# starting the long units first lets the short package tests fill in at the end, so
# neither process is left idle while the other finishes a chapter.
LONGEST_FIRST = ("07_", "06_", "01_", "05_", "02_", "03_", "04_")
STUDENT_RUN = "test_student_copy_runs_with_only_the_exercises_failing"


def unit_of(nodeid):
    """(rank, unit) of a test: which tests run in one process, and how early they start.

    A notebook's cells share one kernel and the book's page tests one built book, so a
    test file is one unit; each chapter's student-copy run (the whole chapter executed
    again) is a unit of its own, so the chapters' runs spread over both processes.  The
    rank orders the units longest first (tests/test_test_order.py).
    """
    path = nodeid.split("::")[0]
    name, unit = path.rsplit("/", 1)[-1], path
    if STUDENT_RUN in nodeid:
        name, unit = nodeid.rsplit("[", 1)[-1].rstrip("]"), nodeid
    rank = next((i for i, prefix in enumerate(LONGEST_FIRST) if name.startswith(prefix)),
                len(LONGEST_FIRST))
    return rank, unit


def pytest_collection_modifyitems(config, items):
    """Warnings are errors in the package tests; the longest test units first.

    A deprecated call in ``ntkutils`` (or one it triggers in PyTorch) then fails a test
    instead of landing in a chapter's outputs.  The notebooks are not marked: their
    warnings would appear in the stored outputs, which nbval already compares.

    The sort is stable: a notebook's cells and a file's tests keep their order.
    """
    for item in items:
        if not item.nodeid.endswith(".ipynb") and ".ipynb::" not in item.nodeid:
            item.add_marker(pytest.mark.filterwarnings("error"))
    items.sort(key=lambda item: unit_of(item.nodeid)[0])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pytest-xdist hands out whole units (``unit_of``), in collection order."""
    from xdist.scheduler import LoadScopeScheduling

    class UnitScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return unit_of(nodeid)[1]

    return UnitScheduling(config, log)
