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
# The test run never reaches the paper's sizes, even if the shell asks for it.
os.environ.pop("NTK_PAPER_SCALE", None)
