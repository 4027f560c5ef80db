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
#   make clean                             remove _build

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.requirements.stamp

.PHONY: book test execute student clean

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

test: $(STAMP)
	$(BIN)/python -m pytest

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
