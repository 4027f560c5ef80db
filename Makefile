# The two commands of the README:
#   make book   build the book into _build/html (warnings are errors)
#   make test   run the whole test suite (package tests, doctests, notebooks)
# Both create the virtual environment .venv (python3 -m venv) on first use and
# install requirements.txt into it; a stamp file makes later runs fast.
#
# For authors:
#   make execute NB=book/<chapter>.ipynb   run a notebook top to bottom in
#                                          place, storing its outputs
#   make student                           write student copies of the chapters
#                                          (solutions removed) into student/
#   make test-portable                     the notebook tests again, as on two other
#                                          CPUs (tools/as-another-cpu --isa avx2 and
#                                          sse41, side by side): stored outputs must
#                                          not depend on the CPU
#   make test-latest                       the package tests and doctests with the
#                                          newest torch, numpy and matplotlib, in a
#                                          second environment .venv-latest (before a
#                                          release, or when Colab moves to a new torch)
#   make clean                             remove _build

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp

.PHONY: book test test-portable test-latest execute student clean

define EXECUTE_NOTEBOOK
import os, sys
import nbformat
from nbclient import NotebookClient
path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
NotebookClient(
    nb, timeout=3600, kernel_name="python3", record_timing=False,
    resources={"metadata": {"path": os.path.dirname(path) or "."}},
).execute()
# The live widgets' state is not stored: the book shows the explorers' static players,
# and Jupyter or Colab rebuild the widgets when the cell runs.  (nbclient needs
# store_widget_state to execute Output widgets, so it is dropped afterwards.)
nb.metadata.pop("widgets", None)
nbformat.write(nb, path)
print("executed", path)
endef
export EXECUTE_NOTEBOOK

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -r requirements.txt
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --builder html -W --keep-going
	@echo "The book is in _build/html (open _build/html/index.html)."

# Two processes, one thread each: the stored outputs are single-threaded, and a 2-core
# machine then runs the suite in about half the time.  A notebook (one kernel) and a test
# file stay in one process; the longest units start first (conftest.py).  TEST_JOBS=1
# runs it in one process.  ISA=sse41 (or avx2) runs it all as on a CPU with only that
# instruction set (tools/as-another-cpu), so the notebooks' stored outputs are compared
# with what that CPU computes: CI does this, in one pass.
TEST_JOBS ?= 2
ISA ?=
test: $(STAMP)
	$(if $(ISA),tools/as-another-cpu --isa $(ISA)) $(BIN)/python -m pytest \
		-n $(TEST_JOBS) --dist loadscope --no-loadscope-reorder

# The stored outputs must not depend on the CPU's instruction set (SIMD sums in another
# order).  Every notebook under every ISA of ISAS, JOBS pytest runs at a time (the test run
# is single-threaded); each failure is shown, and any fails the target.  Reverse order, so
# that the longest notebook (chapter 7) starts first and the short ones fill in after it.
# CI runs the whole suite under SSE4.1 instead, in one pass: make test ISA=sse41.
ISAS ?= avx2 sse41
JOBS ?= 2
test-portable: $(STAMP)
	@for nb in $$(ls -r book/*.ipynb); do for isa in $(ISAS); do echo "$$isa $$nb"; done; done | \
	xargs -P $(JOBS) -L 1 sh -c 'log=.portable-$$0-$$(basename $$1 .ipynb).log; \
		if tools/as-another-cpu --isa $$0 $(BIN)/python -m pytest "$$1" -q \
			-p no:cacheprovider > $$log 2>&1; then echo "passed under $$0: $$1"; \
		else echo "FAILED under $$0: $$1"; tail -n 60 $$log; exit 1; fi'

# What Colab will install next: the pinned requirements, then the newest releases of the three
# libraries whose deprecations reach the course.  Warnings are errors in the package tests.
LATEST := .venv-latest
test-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q -r requirements.txt
	$(LATEST)/bin/python -m pip install -q --upgrade torch numpy matplotlib
	$(LATEST)/bin/python -c "import torch, numpy, matplotlib; print('torch', torch.__version__, \
		'| numpy', numpy.__version__, '| matplotlib', matplotlib.__version__)"
	$(LATEST)/bin/python -m pytest tests src/ntkutils -p no:nbval -o addopts=--doctest-modules \
		--ignore tests/test_book.py -q

# Progress bars off, one thread and no timing metadata, as in the test run
# (conftest.py); the kernel starts in the notebook's folder, as under nbval.
execute: $(STAMP)
	@test -n "$(NB)" || { echo "usage: make execute NB=book/<notebook>.ipynb"; exit 2; }
	TQDM_DISABLE=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
		$(BIN)/python -c "$$EXECUTE_NOTEBOOK" "$(NB)"

# Student copies for a class: every chapter with the exercise solutions removed.
student: $(STAMP)
	$(BIN)/python -m ntkutils.classroom --book book --out student

clean:
	rm -rf _build
