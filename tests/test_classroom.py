"""Student copies: solutions removed, the rest intact, and the copy runs unanswered."""
import os
from pathlib import Path

import nbformat
import pytest

from ntkutils.classroom import main, make_student_copy, run_cells

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "book").glob("*.ipynb"))
ALLOWED_ERRORS = {"ExerciseFailed", "NotImplementedError"}


def _solution_sources(nb):
    """Sources of the cells between solution-start and solution-end."""
    inside, found = False, []
    for cell in nb.cells:
        if cell.cell_type == "markdown" and "{solution-start}" in cell.source:
            inside = True
        elif cell.cell_type == "markdown" and "{solution-end}" in cell.source:
            inside = False
        elif inside and cell.source.strip():
            found.append(cell.source.strip())
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_solution_survives_and_the_rest_is_intact(path):
    nb = nbformat.read(path, as_version=4)
    student, exercise_cells = make_student_copy(nb)
    solutions = _solution_sources(nb)
    assert solutions, f"{path.name} has no exercise solutions"
    text = "\n".join(c.source for c in student.cells)
    assert "{solution-start}" not in text and "{solution-end}" not in text
    for sol in solutions:
        assert sol not in text, f"solution text left in the student copy of {path.name}"
    kept = [c for c in nb.cells if c.source.strip() not in solutions
            and "{solution-" not in c.source]
    assert len(kept) == len(student.cells)
    for i, (orig, copy) in enumerate(zip(kept, student.cells)):
        assert orig.source == copy.source
        if i in exercise_cells:
            assert copy.outputs == [] and copy.execution_count is None
        elif orig.cell_type == "code":
            assert copy.outputs == orig.outputs  # stored outputs stay


def test_command_writes_every_chapter(tmp_path, capsys):
    assert main(["--book", str(ROOT / "book"), "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.ipynb")) == [p.name for p in CHAPTERS]
    assert main(["--book", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    assert "does not exist" in capsys.readouterr().err


def _run_cells(nb, cwd):
    """Run every code cell in one kernel; return {cell index: exception name}."""
    return {i: reply["content"]["ename"] for i, reply, _ in run_cells(nb, cwd)
            if reply["content"]["status"] == "error"}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_student_copy_runs_with_only_the_exercises_failing(path):
    student, exercise_cells = make_student_copy(nbformat.read(path, as_version=4))
    os.environ["TQDM_DISABLE"] = "1"
    failed = _run_cells(student, ROOT / "book")
    unexpected = {i: e for i, e in failed.items()
                  if i not in exercise_cells or e not in ALLOWED_ERRORS}
    assert not unexpected, (
        f"{path.name}: cells outside the exercises failed in the student copy "
        f"(they must not depend on a solution): "
        + "; ".join(f"cell {i} {e}: {student.cells[i].source[:60]!r}"
                    for i, e in unexpected.items()))
    n_exercises = sum("{exercise}" in c.source for c in student.cells
                      if c.cell_type == "markdown")
    assert len(failed) >= n_exercises, "every unanswered exercise's checker must fail"


def _graded_notebook(tmp_path):
    """Three exercises on the same checker: one right, one wrong, one left blank."""
    import nbformat.v4 as v4

    def exercise(label, answer):
        return [v4.new_markdown_cell(f"```{{exercise}} Kernel memory {label}\n"
                                     f":label: ex-{label}\n```"),
                v4.new_code_cell(f"def gib(side, dtype):\n    {answer}"),
                v4.new_code_cell("check_ch5_kernel_memory(gib)"),
                v4.new_markdown_cell("Next.")]
    nb = v4.new_notebook(cells=[
        v4.new_code_cell("import torch\n"
                         "from ntkutils.exercises import check_ch5_kernel_memory"),
        *exercise("right", "return side**4 * torch.empty((), dtype=dtype)"
                           ".element_size() / 2**30"),
        *exercise("wrong", "return side**4 * 8 / 1e9"),
        *exercise("blank", "raise NotImplementedError"),
        v4.new_markdown_cell("```{exercise} Typo\n:label: ex-typo\n```"),
        v4.new_code_cell("check_ch5_kernel_memory(no_such_name)"),
    ])
    path = tmp_path / "answers.ipynb"
    nbformat.write(nb, path)
    return path


def test_grading_runs_every_checker_and_tells_each_result(tmp_path, capsys):
    from ntkutils.classroom import grade_notebook

    path = _graded_notebook(tmp_path)
    grades = grade_notebook(path)
    assert [(g.label, g.result) for g in grades] == [
        ("ex-right", "passed"), ("ex-wrong", "failed"), ("ex-blank", "not attempted"),
        ("ex-typo", "error")]
    assert grades[0].title == "Kernel memory right"
    assert "Exercise 5.1: correct" in grades[0].feedback
    assert "1 GiB = 2**30 bytes" in grades[1].feedback  # the checker's hint
    assert "NameError" in grades[3].feedback
    assert main(["grade", str(path)]) == 0
    out = capsys.readouterr().out
    assert "| ex-wrong | Kernel memory wrong | failed |" in out and "1 of 4 passed" in out
    assert main(["grade", str(tmp_path / "missing.ipynb")]) == 2
    assert "does not exist" in capsys.readouterr().err
