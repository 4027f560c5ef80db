"""Student copies of the chapters: the exercise solutions removed, the rest intact.

    python -m ntkutils.classroom --out student        # every chapter in book/
    make student                                      # the same, from a checkout

Each chapter marks an exercise with a ``{exercise}`` directive, the reader's stub in the
code cells after it, the solution between ``{solution-start}`` and ``{solution-end}``
directives, and a checker cell after the solution.  A student copy drops the solution
cells (directives included) and clears the outputs of the exercise's stub and checker
cells; every other cell, with its stored output, stays as it is.  The copy still runs top
to bottom: the stubs raise ``NotImplementedError`` when called and the checkers say what
is wrong (:class:`ntkutils.exercises.ExerciseFailed`).
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

__all__ = ["make_student_copy", "write_student_copies"]


def _source(cell: Any) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _is_directive(cell: Any, name: str) -> bool:
    if cell.get("cell_type") != "markdown":
        return False
    text = _source(cell)
    return any(f"{fence}{{{name}}}" in text for fence in ("```", ":::", "````"))


def make_student_copy(nb: Any) -> tuple[Any, list[int]]:
    """The student copy of one notebook, and the indices of its exercise code cells.

    Parameters
    ----------
    nb : nbformat.NotebookNode
        A chapter, as read by ``nbformat.read(path, as_version=4)``.

    Returns
    -------
    student : nbformat.NotebookNode
        A new notebook: solution cells removed (the ``solution-start`` and
        ``solution-end`` directives, everything between them, and any single-cell
        ``{solution}`` directive); outputs and execution counts of the exercises' stub
        and checker cells cleared.
    exercise_cells : list of int
        Indices, in ``student``, of the stub and checker code cells (the only cells
        allowed to fail when the copy runs unanswered).

    Examples
    --------
    >>> import nbformat.v4 as v4
    >>> nb = v4.new_notebook(cells=[
    ...     v4.new_markdown_cell("```{exercise} Add\\n:label: ex\\n```"),
    ...     v4.new_code_cell("def add(a, b):\\n    raise NotImplementedError"),
    ...     v4.new_markdown_cell("```{solution-start} ex\\n```"),
    ...     v4.new_code_cell("def add(a, b):\\n    return a + b"),
    ...     v4.new_markdown_cell("```{solution-end}\\n```"),
    ...     v4.new_code_cell("check(add)"),
    ...     v4.new_markdown_cell("Next section."),
    ... ])
    >>> student, exercise_cells = make_student_copy(nb)
    >>> [c.cell_type for c in student.cells], exercise_cells
    (['markdown', 'code', 'code', 'markdown'], [1, 2])
    """
    if not hasattr(nb, "cells") or not isinstance(nb.cells, list):
        raise TypeError(f"nb must be a notebook read by nbformat.read(path, as_version=4), "
                        f"got {type(nb).__name__}")
    student = copy.deepcopy(nb)
    cells: list[Any] = []
    exercise_cells: list[int] = []
    in_solution = False
    in_exercise = False  # from an {exercise} to the first markdown after its checker
    solution_done = checker_seen = False
    for cell in nb.cells:
        if _is_directive(cell, "solution-start"):
            in_solution = True
            continue
        if in_solution:
            if _is_directive(cell, "solution-end"):
                in_solution = False
                solution_done = in_exercise
            continue
        if _is_directive(cell, "solution"):
            solution_done = in_exercise
            continue
        if _is_directive(cell, "exercise"):
            in_exercise, solution_done, checker_seen = True, False, False
        elif cell.get("cell_type") == "markdown" and in_exercise and checker_seen:
            in_exercise = False
        cell = copy.deepcopy(cell)
        if cell.get("cell_type") == "code" and in_exercise:
            cell["outputs"] = []
            cell["execution_count"] = None
            exercise_cells.append(len(cells))
            checker_seen = solution_done
        cells.append(cell)
    if in_solution:
        raise ValueError("a {solution-start} directive has no matching {solution-end}")
    student.cells = cells
    return student, exercise_cells


def write_student_copies(book_dir: str | Path, out_dir: str | Path) -> list[Path]:
    """Write the student copy of every chapter notebook in ``book_dir`` to ``out_dir``.

    Parameters
    ----------
    book_dir : str or Path
        The folder of the chapters (``book/`` of a checkout).
    out_dir : str or Path
        Where to write the copies (created if missing), under the same file names.

    Returns
    -------
    list of Path
        The files written.
    """
    import nbformat

    book_dir, out_dir = Path(book_dir), Path(out_dir)
    if not book_dir.exists():
        raise ValueError(f"book_dir {book_dir} does not exist: pass the folder of the "
                         f"chapters (book/ of a checkout)")
    if not book_dir.is_dir():
        raise ValueError(f"book_dir must be a folder of notebooks, got the file {book_dir}")
    chapters = sorted(book_dir.glob("*.ipynb"))
    if not chapters:
        raise ValueError(f"book_dir {book_dir} holds no chapter (no .ipynb file): pass the "
                         f"folder of the chapters (book/ of a checkout)")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in chapters:
        student, _ = make_student_copy(nbformat.read(path, as_version=4))
        target = out_dir / path.name
        nbformat.write(student, target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m ntkutils.classroom --out student``: write the student copies."""
    parser = argparse.ArgumentParser(
        prog="python -m ntkutils.classroom",
        description="Write student copies of the chapters (solutions removed).",
    )
    parser.add_argument("--book", default="book", help="folder of the chapters (book)")
    parser.add_argument("--out", default="student", help="output folder (student)")
    args = parser.parse_args(argv)
    try:
        written = write_student_copies(args.book, args.out)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
