"""Every chapter has exercises that teach by doing (issue 15, item 4).

Each of chapters 1-7 has at least one exercise that asks the reader to *predict* an outcome
before running the code that shows it (``:class: predict`` on the ``{exercise}`` directive),
and one that *changes an experiment* (a width, the input, the optimiser, ...) and asks what
happened and why (``:class: experiment``).  The book's CSS tags both kinds after the title.
Each such exercise has a stub that raises ``NotImplementedError``, a collapsed solution and a
checker, like every other exercise (tests/test_classroom.py runs the student copies).
"""
from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("0*.ipynb"))
KINDS = ("predict", "experiment")
_EXERCISE = re.compile(r"```\{exercise\}[^\n]*\n((?::[^\n]*\n)*)", re.M)


def exercise_kinds(nb) -> list[set[str]]:
    """The classes of each exercise directive of a notebook, in order."""
    kinds = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for m in _EXERCISE.finditer(cell.source):
            classes = set()
            for option in m.group(1).splitlines():
                if option.startswith(":class:"):
                    classes |= set(option.split(":", 2)[2].split())
            kinds.append(classes)
    return kinds


def test_reader_finds_classes():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "```{exercise} A\n:label: a\n:class: predict\n\nText\n```\n"
        "```{exercise} B\n:label: b\n\nText\n```")])
    assert exercise_kinds(nb) == [{"predict"}, set()]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
@pytest.mark.parametrize("kind", KINDS)
def test_chapter_has_an_exercise_of_each_kind(path, kind):
    kinds = exercise_kinds(nbformat.read(path, as_version=4))
    assert any(kind in k for k in kinds), (
        f"{path.name}: no exercise with ':class: {kind}' among its {len(kinds)} exercises")
