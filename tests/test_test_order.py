"""The order and grouping of `make test`'s units (the root conftest.py)."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("root_conftest", ROOT / "conftest.py")
root_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(root_conftest)
unit_of = root_conftest.unit_of
STUDENT = "tests/test_classroom.py::" + root_conftest.STUDENT_RUN


def test_a_notebook_is_one_unit_ranked_by_its_chapter():
    assert unit_of("book/07_paper_results.ipynb::Cell 3") == (
        0, "book/07_paper_results.ipynb")
    assert unit_of("book/07_paper_results.ipynb::Cell 40") == (
        0, "book/07_paper_results.ipynb")
    assert unit_of("book/04_training_is_twicing.ipynb::Cell 0")[0] == 6


def test_each_student_copy_run_is_a_unit_of_its_own():
    a = unit_of(STUDENT + "[01_deep_image_prior]")
    b = unit_of(STUDENT + "[05_nystrom]")
    assert a[0] == 2 and b[0] == 3
    assert len({a[1], b[1], "tests/test_classroom.py"}) == 3
    other = unit_of("tests/test_classroom.py::test_command_writes_every_chapter")
    assert other == (len(root_conftest.LONGEST_FIRST), "tests/test_classroom.py")


def test_a_package_test_file_is_one_unit_after_the_chapters():
    rank, unit = unit_of("tests/test_book.py::test_page_renders[intro]")
    assert (rank, unit) == (len(root_conftest.LONGEST_FIRST), "tests/test_book.py")
    assert unit_of("src/ntkutils/nystrom.py::ntkutils.nystrom.nystrom")[1] == (
        "src/ntkutils/nystrom.py")


def test_every_chapter_has_a_rank():
    """A new chapter must be placed in LONGEST_FIRST, or it would start last."""
    chapters = [p.stem for p in (ROOT / "book").glob("[0-9]*.ipynb")]
    assert chapters
    for stem in chapters:
        assert unit_of(f"book/{stem}.ipynb::Cell 0")[0] < len(
            root_conftest.LONGEST_FIRST), stem
