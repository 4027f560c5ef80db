"""The publishing workflow, the citation file and the licences."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _workflow():
    return yaml.safe_load((ROOT / ".github/workflows/book.yml").read_text())


def test_workflow_builds_on_push_to_main_and_publishes_pages():
    wf = _workflow()
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads `on` as True
    assert triggers["push"]["branches"] == ["main"]
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"
    build = wf["jobs"]["build"]["steps"]
    uses = [s.get("uses", "") for s in build]
    runs = [s.get("run", "") for s in build]
    assert any(u.startswith("actions/checkout@") for u in uses)
    assert any(u.startswith("actions/setup-python@") for u in uses)
    assert any(r.startswith("make book") for r in runs), "the README's build command"
    upload = next(s for s in build if s.get("uses", "").startswith(
        "actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    assert any(s.get("uses", "").startswith("actions/deploy-pages@") for s in deploy["steps"])


def test_make_book_treats_warnings_as_errors():
    makefile = (ROOT / "Makefile").read_text()
    book_rule = makefile.split("\nbook:")[1].split("\n\n")[0]
    assert "jupyter-book build" in book_rule and " -W" in book_rule


def test_workflow_python_matches_the_pinned_toolchain():
    setup = next(s for s in _workflow()["jobs"]["build"]["steps"]
                 if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["with"]["python-version"] == "3.11"
    assert "torch==2.13.0" in (ROOT / "requirements.txt").read_text()


def test_citation_file_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    paper = cff["preferred-citation"]
    assert paper["title"] == ("The Neural Tangent Link Between CNN Denoisers and "
                              "Non-Local Filters")
    assert [a["family-names"] for a in paper["authors"]] == ["Tachella", "Tang", "Davies"]
    assert paper["year"] == 2021
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert cff["repository-code"] == config["repository"]["url"]


def test_licences_for_code_text_and_images():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    assert "CC BY 4.0" in (ROOT / "LICENSE-text").read_text()
    data_readme = (ROOT / "data/README.md").read_text()
    for png in sorted((ROOT / "data").glob("*.png")):
        row = next((line for line in data_readme.splitlines() if f"`{png.name}`" in line), "")
        assert "CC0" in row or "public domain" in row, f"no licence for {png.name}"
