"""Student copies of the chapters (the exercise solutions removed), and grading them.

    python -m ntkutils.classroom --out student        # every chapter in book/
    make student                                      # the same, from a checkout
    python -m ntkutils.classroom grade student/*.ipynb   # one table per notebook

Each chapter marks an exercise with a ``{exercise}`` directive, the reader's stub in the
code cells after it, the solution between ``{solution-start}`` and ``{solution-end}``
directives, and a checker cell after the solution.  A student copy drops the solution
cells (directives included) and clears the outputs of the exercise's stub and checker
cells; every other cell, with its stored output, stays as it is.  The copy still runs top
to bottom: the stubs raise ``NotImplementedError`` when called and the checkers say what
is wrong (:class:`ntkutils.exercises.ExerciseFailed`).

Grading (:func:`grade_notebook`) runs every code cell of a returned notebook in one fresh
kernel, *going on after errors* (``jupyter execute`` stops at the first failed checker and
hides every later answer), and reports each exercise as passed, failed or not attempted.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["ExerciseGrade", "format_grades", "grade_notebook", "make_student_copy",
           "write_student_copies"]

_CHECKER = re.compile(r"\bcheck\w*\(")
_NOT_ATTEMPTED = re.compile(r"got:\s+(NotImplementedError|None|NoneType None)\s*$", re.M)


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


@dataclass(frozen=True)
class ExerciseGrade:
    """One exercise of a graded notebook.

    Attributes
    ----------
    label : str
        The exercise's ``:label:`` (``ex-ch5-4``), or its position when it has none.
    title : str
        The exercise's title, as in the book.
    result : str
        ``"passed"``, ``"failed"``, ``"not attempted"`` (the stub still raises
        ``NotImplementedError`` or the answer is still ``None``) or ``"error"`` (the
        checker cell raised something else, for example a ``NameError``).
    feedback : str
        The checker's message (its first line when it passed).
    """

    label: str
    title: str
    result: str
    feedback: str


def _exercises(nb: Any) -> list[tuple[str, str, int]]:
    """``(label, title, checker cell index)`` of each exercise.

    An exercise runs from its ``{exercise}`` directive to the next one or the next heading;
    its checker is the last code cell there that calls a ``check...(`` function.
    """
    found: list[list[Any]] = []
    current = None
    for i, cell in enumerate(nb.cells):
        text = _source(cell)
        if _is_directive(cell, "exercise"):
            title = re.search(r"\{exercise\}[ \t]*(.*)", text)
            label = re.search(r"^:label:\s*(\S+)", text, re.M)
            current = [label.group(1) if label else f"exercise {len(found) + 1}",
                       title.group(1).strip() if title else "", None]
            found.append(current)
        elif cell.get("cell_type") == "markdown" and text.lstrip().startswith("#"):
            current = None
        elif (current is not None and cell.get("cell_type") == "code"
              and _CHECKER.search(text)):
            current[2] = i
    return [(label, title, idx) for label, title, idx in found if idx is not None]


def _grade(reply: dict, stdout: str) -> tuple[str, str]:
    """The result and feedback of one checker cell from its kernel reply and output."""
    content = reply["content"]
    if content["status"] == "ok":
        lines = [line for line in stdout.splitlines() if line.strip()]
        passed = [line for line in lines if ": correct" in line]
        return ("passed", passed[-1]) if passed else ("error", "the checker printed nothing")
    name, value = content.get("ename", ""), content.get("evalue", "")
    if name == "NotImplementedError" or _NOT_ATTEMPTED.search(value):
        return "not attempted", value.splitlines()[0] if value else name
    if name == "ExerciseFailed":
        return "failed", value
    return "error", f"{name}: {value}"


def run_cells(nb: Any, cwd: str | Path, *, timeout: float = 1800):
    """Run every non-empty code cell of ``nb`` in one fresh kernel, going on after errors.

    Yields ``(cell index, execute reply, stdout text)`` per cell, in order.  A blocking
    ``jupyter_client`` loop, cell by cell (as nbval runs the notebooks): nbclient's
    asynchronous client was seen to wait forever on an idle kernel here.
    """
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))
    try:
        for i, cell in enumerate(nb.cells):
            if cell.cell_type != "code" or not cell.source.strip():
                continue
            out: list[str] = []

            def hook(msg, out=out):
                if msg["msg_type"] == "stream":
                    out.append(msg["content"]["text"])
            reply = kc.execute_interactive(cell.source, timeout=timeout, output_hook=hook)
            yield i, reply, "".join(out)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def grade_notebook(path: str | Path, *, timeout: float = 1800) -> list[ExerciseGrade]:
    """Run a student's notebook top to bottom, errors and all, and grade every exercise.

    Parameters
    ----------
    path : str or Path
        A chapter notebook as the student returns it (a student copy, stubs filled in).
    timeout : float, default 1800
        Seconds allowed per cell.

    Returns
    -------
    list of ExerciseGrade
        One per exercise, in the order of the notebook.

    Notes
    -----
    Every code cell runs, in order, in one fresh ``python3`` kernel started in the
    notebook's folder; a cell that fails does not stop the run, so a wrong answer to
    Exercise 1 cannot hide the answer to Exercise 2.  An exercise's checker is the last
    code cell before the text that follows it.  Stored outputs are ignored and the file is
    not changed.

    Examples
    --------
    >>> grade_notebook("no-such.ipynb")
    Traceback (most recent call last):
    ...
    ValueError: path no-such.ipynb does not exist: pass a notebook (.ipynb)
    """
    import nbformat

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {path} does not exist: pass a notebook (.ipynb)")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:  # nbformat raises several kinds for a non-notebook
        raise ValueError(f"path {path} is not a notebook nbformat can read "
                         f"({type(err).__name__})") from None
    exercises = _exercises(nb)
    checkers = {idx: (label, title) for label, title, idx in exercises}
    grades: dict[int, ExerciseGrade] = {}
    for i, reply, stdout in run_cells(nb, path.parent.resolve(), timeout=timeout):
        if i in checkers:
            grades[i] = ExerciseGrade(*checkers[i], *_grade(reply, stdout))
    return [grades[idx] for _, _, idx in exercises]


def format_grades(name: str, grades: list[ExerciseGrade]) -> str:
    """A markdown table of one notebook's grades, with a count line."""
    lines = [f"## {name}", "", "| exercise | title | result |", "|---|---|---|"]
    lines += [f"| {g.label} | {g.title} | {g.result} |" for g in grades]
    passed = sum(g.result == "passed" for g in grades)
    lines += ["", f"{passed} of {len(grades)} passed"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``--out student``: write the student copies; ``grade FILE...``: grade notebooks."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["grade"]:
        return _grade_command(argv[1:])
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


def _grade_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ntkutils.classroom grade",
        description="Run each notebook, errors and all, and print a table of its exercises.",
    )
    parser.add_argument("notebooks", nargs="+", help="student notebooks (.ipynb)")
    args = parser.parse_args(argv)
    status = 0
    for name in args.notebooks:
        try:
            print(format_grades(name, grade_notebook(name)) + "\n")
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
