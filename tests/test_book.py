"""Tests of the book itself: configuration, notebook conventions, the build and
the rendered pages.

- Static checks read ``_config.yml``, ``_toc.yml``, ``book/references.bib`` and
  every notebook in ``book/`` (cheap, no build).
- ``built_book`` (session fixture) builds the book with Jupyter Book into a
  temporary folder with warnings as errors, exactly as ``make book`` does.
- The browser checks open every page of the table of contents in headless
  Chromium (Debian's ``chromium`` and ``chromium-driver``, which ``.ci/run``
  installs), served over http on 127.0.0.1.  Without Chromium they are skipped,
  except under ``CI=true``, where they fail.

The notebooks themselves are executed by nbval (``--nbval`` in pytest.ini).
"""
from __future__ import annotations

import base64
import functools
import importlib.util
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from html import escape as html_escape
from pathlib import Path
from urllib.parse import urlparse

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO_URL = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"]["branch"]
BOOK_TITLE = CONFIG["title"]
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))

# The book's Sphinx extension (book/_ext/ntk_book.py), for the names the tests share with it.
_spec = importlib.util.spec_from_file_location("ntk_book", ROOT / "book/_ext/ntk_book.py")
NTK_BOOK = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(NTK_BOOK)
NB_IDS = [p.stem for p in NOTEBOOKS]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MAX_COLUMNS = 79


# --------------------------------------------------------------------------
# helpers


def toc_docnames() -> list[str]:
    """Docnames of the table of contents, root first, in reading order."""
    from sphinx_external_toc.parsing import parse_toc_yaml

    site_map = parse_toc_yaml(ROOT / "_toc.yml")
    names = [site_map.root.docname]
    names += [name for name in site_map if name != site_map.root.docname]
    return names


def source_of(docname: str) -> Path | None:
    """The source file of a docname (``.md`` or ``.ipynb``), or None."""
    for suffix in (".md", ".ipynb"):
        path = ROOT / f"{docname}{suffix}"
        if path.is_file():
            return path
    return None


def colab_link(docname: str) -> str:
    """The Colab address of a notebook of the book, on the configured branch."""
    owner_repo = urlparse(REPO_URL).path.strip("/")
    return (f"https://colab.research.google.com/github/{owner_repo}/blob/"
            f"{BRANCH}/{docname}.ipynb")


def tags(cell) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


def read_notebook(path: Path):
    return nbformat.read(path, as_version=4)


def parse_newcommands(text: str) -> dict[str, object]:
    r"""Macros defined by ``\newcommand{\name}[k]{body}`` in ``text``.

    Returns ``{name: body}`` for macros without arguments and
    ``{name: [body, k]}`` with, the form of ``mathjax3_config`` in
    ``_config.yml``.  Braces inside the body are matched.
    """
    macros: dict[str, object] = {}
    pos = 0
    pattern = re.compile(r"\\newcommand\{\\([A-Za-z]+)\}(?:\[(\d+)\])?\{")
    while (m := pattern.search(text, pos)) is not None:
        depth, i = 1, m.end()
        while depth:
            if i >= len(text):
                raise ValueError(f"unbalanced braces in \\newcommand{{\\{m[1]}}}")
            if text[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        body = text[m.end():i - 1]
        macros[m[1]] = [body, int(m[2])] if m[2] else body
        pos = i
    return macros


def bib_entries(text: str) -> dict[str, str]:
    """The entries of a .bib file by key, each as its full text."""
    entries = {}
    for m in re.finditer(r"^@\w+\{([^,\s]+),.*?^\}", text, re.M | re.S):
        entries[m[1]] = m[0]
    return entries


# --------------------------------------------------------------------------
# configuration and sources


def test_config_has_the_agreed_settings():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    assert CONFIG["only_build_toc_files"] is True
    assert BRANCH == "main"
    assert urlparse(REPO_URL).netloc == "github.com"
    # path_to_book must be "" so launch links read .../blob/main/book/x.ipynb
    assert CONFIG["repository"]["path_to_book"] == ""
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    extensions = CONFIG["sphinx"]["extra_extensions"]
    for ext in ("sphinx_exercise", "sphinx-mathjax-offline"):
        assert ext in extensions
    # Jupyter Book loads it already; a second time injects its script twice
    assert "sphinx_togglebutton" not in extensions
    assert CONFIG["bibtex_bibfiles"] == ["book/references.bib"]
    assert CONFIG["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]


def test_toc_lists_only_pages_that_exist():
    missing = [name for name in toc_docnames() if source_of(name) is None]
    assert not missing, f"_toc.yml lists pages without a source file: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = set(toc_docnames())
    orphans = [p.name for p in NOTEBOOKS if f"book/{p.stem}" not in listed]
    assert not orphans, f"notebooks missing from _toc.yml: {orphans}"


def test_every_citation_is_in_references_bib():
    keys = set(bib_entries((ROOT / "book/references.bib").read_text("utf-8")))
    assert "tachella2021neural" in keys
    sources = [source_of(name) for name in toc_docnames()]
    cited = set()
    for path in sources:
        text = path.read_text("utf-8")
        for m in re.finditer(r"\{cite(?::[a-z]+)?\}`([^`]+)`", text):
            cited.update(k.strip() for k in m[1].split(","))
    assert cited, "the book cites nothing"
    assert not cited - keys, f"cited but not in references.bib: {cited - keys}"


def test_intro_cites_the_paper_with_the_bib_entry():
    intro = (ROOT / "book/intro.md").read_text("utf-8")
    block = re.search(r"```bibtex\n(.*?)```", intro, re.S)
    assert block, "book/intro.md has no ```bibtex block"
    bib = bib_entries((ROOT / "book/references.bib").read_text("utf-8"))
    assert block[1].strip() == bib["tachella2021neural"].strip()


def test_parse_newcommands_reads_arguments_and_nested_braces():
    text = r"$\newcommand{\R}{\mathbb{R}}$ $\newcommand{\norm}[1]{\lVert{#1}\rVert}$"
    assert parse_newcommands(text) == {
        "R": r"\mathbb{R}", "norm": [r"\lVert{#1}\rVert", 1]}


# --------------------------------------------------------------------------
# notebook conventions (every notebook in book/)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_colab_install_cell(path):
    nb = read_notebook(path)
    cell = code_cells(nb)[0]
    src = cell.source
    assert "remove-cell" in tags(cell), "the install cell must be tagged remove-cell"
    assert re.search(r"""if ["']google\.colab["'] in sys\.modules:""", src), \
        "the install cell must run only in Colab"
    # either git+<url>@<branch> literally, or REPO = "<url>" and git+{REPO}@<branch>
    urls = re.findall(r"https?://[^\s\"'@{}]+", src)
    assert urls == [REPO_URL], (
        f"the install cell must install from {REPO_URL} (the repository of "
        f"_config.yml), found {urls}")
    literal = f"git+{REPO_URL}@{BRANCH}" in src
    via_name = (re.search(rf"^REPO = [\"']{re.escape(REPO_URL)}[\"']", src, re.M)
                and f"git+{{REPO}}@{BRANCH}\"" in src)
    assert literal or via_name, f"the install cell must install the branch {BRANCH}"
    literals = re.findall(r"\"[^\"]*\"|'[^']*'", src)
    assert not any(re.search(r"\btorch\b", lit) for lit in literals), \
        "the install cell must never install torch (Colab's build is kept)"


SITE_URL = CONFIG["html"]["baseurl"].rstrip("/")
# Files outside the notebooks that link the repository or the published site.
LINKING_FILES = ["README.md", "CITATION.cff", "pyproject.toml", "book/intro.md",
                 "book/teaching.md", ".github/workflows/book.yml"]


@pytest.mark.parametrize("name", LINKING_FILES)
def test_repository_and_site_links_match_config(name):
    """The repository's URL is written once (_config.yml): every other mention must agree."""
    text = (ROOT / name).read_text(encoding="utf-8")
    repos = set(re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text))
    sites = set(re.findall(r"https://[\w-]+\.github\.io/[\w.-]+", text))
    assert repos <= {REPO_URL}, f"{name} links {repos - {REPO_URL}}, not {REPO_URL}"
    assert sites <= {SITE_URL}, f"{name} links {sites - {SITE_URL}}, not {SITE_URL}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_macro_cell_matches_config(path):
    nb = read_notebook(path)
    cells = [c for c in nb.cells
             if c.cell_type == "markdown" and "\\newcommand" in c.source]
    assert len(cells) == 1, "one markdown cell must define the MathJax macros"
    assert "remove-cell" in tags(cells[0])
    expected = CONFIG["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"]
    assert parse_newcommands(cells[0].source) == expected


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_notebook_is_executed_and_follows_the_style(path):
    nb = read_notebook(path)
    cells = [c for c in code_cells(nb) if c.source.strip()]
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        "store outputs from one clean run, top to bottom "
        f"(make execute NB={path.relative_to(ROOT)}); execution counts {counts}")
    long_lines = [(i, line) for i, c in enumerate(nb.cells) if c.cell_type == "code"
                  for line in c.source.splitlines() if len(line) > MAX_COLUMNS]
    assert not long_lines, f"code lines over {MAX_COLUMNS} columns: {long_lines}"
    assert re.search(r"^SEED, DEVICE, DTYPE, PAPER_SCALE, PROGRESS = setup\(seed=\d+\)$",
                     "\n".join(c.source for c in cells), re.M), \
        "the set-up cell must call ntkutils.course.setup (the size switch, seed, dtype)"
    for c in cells:
        for out in c.outputs:
            assert out.output_type != "error", f"stored error output: {c.source[:60]}"
            data = out.get("data", {})
            assert "application/vnd.jupyter.widget-view+json" not in data or \
                "nbval-ignore-output" in tags(c), (
                    "a progress bar was stored: run with TQDM_DISABLE=1 and pass "
                    "disable=not PROGRESS to tqdm")


# --- Prose numbers come from the computation (myst-nb glue) ---------------------------------

GLUE_ROLE = re.compile(r"\{glue:text\}`(?:(?P<doc>[^`:]+)::)?(?P<key>[A-Za-z0-9_]+)(?::[^`]*)?`")
# A decimal number or a percentage typed in prose: a measured number should be glued.
TYPED_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])|(?<![\w.])\d+(?:\.\d+)? ?%")
# "Section 6.2", "Exercises 3.1 and 3.3": numbers that name a part of the book.
NUMBERED_REFERENCE = re.compile(
    r"\b(?:Sections?|Exercises?|Chapters?|Figures?|Tables?|Equations?)\s+\d+(?:\.\d+)*"
    r"(?:(?:,\s*|\s+and\s+|\s+or\s+|\s*[-\u2013]\s*)\d+(?:\.\d+)*)*")
# Numbers a chapter states rather than measures, and may therefore type: the poster's grid
# (compared with POSTER_PSNR below) and these settings and quotations of the paper.
STATED_NUMBERS: dict[str, set[str]] = {
    # 20 log10(2) = 6.02: doubling sigma costs 6 dB (arithmetic, not a measurement).
    "how_this_book_works": {"6.02"},
    # U(0, 0.1): the deep image prior's noise input; h = 0.8 sigma: the NLM bandwidth.
    "01_deep_image_prior": {"0.1", "0.8"},
    # The poster's width rate O(c^-0.5), quoted from the paper.
    "02_neural_tangent_kernel": {"0.5"},
    # U(0, 0.1): the deep image prior's noise input; h = 0.8 sigma: the NLM bandwidth;
    # the 1 % of pixels closest in angle: a setting of the figure.
    "03_ntk_nonlocal_filter": {"0.1", "0.8", "1%"},
    # h = 0.8 sigma: the NLM bandwidth.
    "05_nystrom": {"0.8"},
    # U(0, 0.1) input; Adam's beta1 = 0.9 and beta2 = 0.999; "within 1 % of the learning
    # rate": the tolerance of the measurement.
    "06_adam_adapts_the_kernel": {"0.1", "0.9", "0.999", "1%"},
    # U(0, 0.1) input; 0.99: the weight of the deep image prior's running average.
    "07_paper_results": {"0.1", "0.99"},
}


def glued_keys(nb) -> set[str]:
    """The keys a notebook's stored outputs record with glue."""
    return {out.get("metadata", {}).get("scrapbook", {}).get("name")
            for c in code_cells(nb) for out in c.get("outputs", [])} - {None}


def glue_references(text: str) -> list[tuple[str | None, str]]:
    return [(m["doc"], m["key"]) for m in GLUE_ROLE.finditer(text)]


def unglued(text: str, here: Path | None) -> list[str]:
    """The glue references of ``text`` that no stored output records: ``key`` is looked up in
    the notebook ``here``, ``doc::key`` in book/doc.ipynb (a page that is no notebook must
    name one)."""
    missing = []
    for doc, key in glue_references(text):
        source = here if doc is None else (ROOT / "book" / doc).with_suffix(".ipynb")
        if source is None or key not in glued_keys(read_notebook(source)):
            missing.append(key if doc is None else f"{doc}::{key}")
    return missing


def typed_numbers(text: str) -> list[str]:
    """Decimals and percentages in Markdown, outside code spans and glue roles."""
    text = GLUE_ROLE.sub(" ", text)
    text = re.sub(r"```.*?```|`[^`\n]*`", " ", text, flags=re.S)
    text = re.sub(r"\(https?://[^)]*\)|https?://\S+", " ", text)
    text = re.sub(r"^#+ [\d.]+", " ", text, flags=re.M)  # numbered headings
    text = NUMBERED_REFERENCE.sub(" ", text)
    return [m.group().replace(" ", "") for m in TYPED_NUMBER.finditer(text)]


def test_typed_numbers_finds_decimals_and_percentages_but_not_glue_or_code():
    text = ("PSNR {glue:text}`best_psnr` dB, 25.2 dB, 16 % and 40%; `lr=0.01`, "
            "{glue:text}`other::key:.1f`, Section 6.2, x2.5, $t = 0.5$, "
            "Exercises 3.1, 3.2 and 3.3.\n### 6.4 A heading")
    assert typed_numbers(text) == ["25.2", "16%", "40%", "0.5"]
    assert glue_references(text) == [(None, "best_psnr"), ("other", "key")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=NB_IDS)
def test_prose_numbers_are_glued(path):
    """Every glued key the text quotes is recorded by the notebook, and no measured decimal
    or percentage is typed by hand (the poster's numbers and stated settings excepted)."""
    from ntkutils import POSTER_PSNR

    nb = read_notebook(path)
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    missing = unglued(prose, path)
    assert not missing, (
        f"the text quotes glue keys that no stored output records: {missing}; "
        f"glue them in a code cell and run make execute NB={path.relative_to(ROOT)}")
    poster = {f"{v:.1f}" for row in POSTER_PSNR.values() for v in row.values()}
    allowed = poster | STATED_NUMBERS.get(path.stem, set())
    typed = sorted(set(typed_numbers(prose)) - allowed)
    assert not typed, (
        f"numbers typed in the text of {path.name}: {typed}. A measured number comes from "
        "the computation: ntkutils.course.glue(name, value, fmt) in a code cell and "
        "{glue:text}`name` in the text. A number the chapter states (a setting, the "
        "paper's) goes in STATED_NUMBERS with the reason.")


@pytest.mark.parametrize("page", ["intro.md", "teaching.md"])
def test_pages_quote_only_glued_run_times(page):
    text = (ROOT / "book" / page).read_text(encoding="utf-8")
    missing = unglued(text, None)
    assert not missing, f"{page} quotes glue keys no notebook records: {missing}"


# --------------------------------------------------------------------------
# the build


@dataclass(frozen=True)
class Build:
    returncode: int
    log: str
    html: Path


def _jupyter_book() -> list[str]:
    exe = Path(sys.executable).parent / "jupyter-book"
    if exe.is_file():
        return [str(exe)]
    found = shutil.which("jupyter-book")
    if found:
        return [found]
    pytest.fail("jupyter-book is not installed (pip install -r requirements.txt)")


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> Build:
    """The book built as by ``make book`` (warnings are errors), in a temp dir."""
    out = tmp_path_factory.mktemp("book")
    cmd = _jupyter_book() + ["build", str(ROOT), "--path-output", str(out),
                             "--builder", "html", "-W", "--keep-going"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          timeout=1200)
    return Build(proc.returncode, proc.stdout + proc.stderr,
                 out / "_build" / "html")


def html_of(build: Build) -> Path:
    if build.returncode != 0:
        pytest.fail("the book did not build; see test_book_builds_without_warnings")
    return build.html


def test_book_builds_without_warnings(built_book):
    assert built_book.returncode == 0, built_book.log[-6000:]
    for name in toc_docnames():
        assert (built_book.html / f"{name}.html").is_file(), name
    assert (built_book.html / "index.html").is_file()


def test_mathjax_is_served_from_the_book(built_book):
    html = html_of(built_book)
    assert (html / "_static/mathjax/tex-chtml.js").is_file()
    page = (html / "book/intro.html").read_text("utf-8")
    scripts = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", page)
    mathjax = [s for s in scripts if "mathjax" in s.lower()]
    assert mathjax and all(not s.startswith(("http:", "https:", "//"))
                           for s in mathjax), mathjax
    # only the bundle the pages load is shipped (book/_ext/ntk_book.py drops the others)
    bundles = sorted(p.name for p in (html / "_static/mathjax").glob("*.js")
                     if NTK_BOOK.BUNDLE.fullmatch(p.name))
    assert bundles == ["tex-chtml.js"], bundles
    # the macros of _config.yml reach the page
    assert "\\\\operatorname{PSNR}" in page or "\\operatorname{PSNR}" in page


def toc_notebooks() -> list[Path]:
    """The notebooks of the table of contents (those the book builds)."""
    return [p for p in map(source_of, toc_docnames()) if p and p.suffix == ".ipynb"]


@pytest.mark.parametrize("path", toc_notebooks(), ids=lambda p: p.stem)
def test_launch_link_points_at_the_notebook_on_main(built_book, path):
    html = html_of(built_book)
    docname = f"book/{path.stem}"
    page = (html / f"{docname}.html").read_text("utf-8")
    links = set(re.findall(r'href="(https://colab\.research\.google\.com/[^"]+)"', page))
    assert links == {colab_link(docname)}


def test_hidden_cells_are_not_in_the_pages(built_book):
    html = html_of(built_book)
    for path in toc_notebooks():
        page = (html / f"book/{path.stem}.html").read_text("utf-8")
        install_cell = code_cells(read_notebook(path))[0].source
        first_line = install_cell.strip().splitlines()[0]
        assert html_escape(first_line, quote=False) not in page, path.name
        assert "\\newcommand" not in page, path.name


# --------------------------------------------------------------------------
# headless Chromium


@pytest.fixture(scope="session")
def served_book(built_book):
    """The built HTML served over http on 127.0.0.1 (a random free port)."""
    html = html_of(built_book)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def require_chromium(chromium: Path, chromedriver: Path, *, ci: bool) -> None:
    """Skip (or, in CI, fail) the calling test when Chromium is not installed."""
    missing = [str(p) for p in (chromium, chromedriver) if not p.is_file()]
    if missing:
        reason = (f"headless Chromium is not installed ({', '.join(missing)} missing): "
                  "apt-get install chromium chromium-driver")
        if ci:
            pytest.fail(f"{reason} (CI=true: the browser checks must run)")
        pytest.skip(reason)


@pytest.mark.parametrize("ci, outcome", [(False, pytest.skip.Exception),
                                         (True, pytest.fail.Exception)])
def test_missing_chromium_skips_locally_and_fails_in_ci(tmp_path, ci, outcome):
    with pytest.raises(outcome, match="chromium-driver"):
        require_chromium(tmp_path / "chromium", tmp_path / "chromedriver", ci=ci)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Debian Chromium driven by selenium; skipped if absent (not in CI)."""
    require_chromium(CHROMIUM, CHROMEDRIVER, ci=os.environ.get("CI") == "true")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1000",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    driver.set_script_timeout(120)
    yield driver
    driver.quit()


WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
if (!document.querySelector('.math')) { done('no math'); return; }
const start = Date.now();
(function poll() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done('typeset'), e => done('error: ' + e));
  } else if (Date.now() - start > 60000) {
    done('MathJax did not load');
  } else {
    setTimeout(poll, 100);
  }
})();
"""

VISIBLE_TEXT = """
const main = document.querySelector('main') || document.body;
const copy = main.cloneNode(true);
copy.querySelectorAll('pre, code, mjx-container, script, style, .toggle-hidden, '
                      + '.tag_hide-input .cell_input').forEach(e => e.remove());
return copy.textContent;
"""

IMAGES = """
const main = document.querySelector('main') || document.body;
return Array.from(main.querySelectorAll('img')).map(
  img => [img.getAttribute('src'), img.complete, img.naturalWidth]);
"""


def stored_figures(path: Path) -> int:
    """How many image outputs a notebook shows in the book."""
    nb = read_notebook(path)
    count = 0
    for c in code_cells(nb):
        if {"remove-cell", "remove-output"} & set(tags(c)):
            continue
        count += sum("image/png" in out.get("data", {}) for out in c.outputs)
    return count


# Console errors known and not ours to fix (none now: sphinx-thebe's configuration script,
# included twice, is deduplicated by book/_ext/ntk_book.py).
KNOWN_CONSOLE_ERRORS: tuple[str, ...] = ()


def own_console_error(message: str) -> bool:
    """A console error of the book itself: not a CDN the offline test cannot reach, not a
    known one."""
    url = message.split(" ", 1)[0]
    if url.startswith("http") and urlparse(url).hostname not in ("127.0.0.1", "localhost"):
        return False
    return not any(known in message for known in KNOWN_CONSOLE_ERRORS)


def test_own_console_error():
    assert own_console_error("http://127.0.0.1:1/favicon.ico - Failed to load resource: 404")
    assert not own_console_error("https://cdn.jsdelivr.net/x.js - Failed to load resource")
    assert own_console_error(
        "http://127.0.0.1:1/a.html 62:12 Uncaught SyntaxError: Identifier 'THEBE_JS_URL' "
        "has already been declared")


@pytest.mark.browser
@pytest.mark.parametrize("docname", toc_docnames())
def test_page_renders_in_chromium(browser, served_book, docname):
    browser.get(f"{served_book}/{docname}.html")

    # the title: the page's heading, then the book's title
    h1 = browser.execute_script(
        "const h = document.querySelector('main h1');"
        "return h ? h.textContent.replace('#', '').trim() : null;")
    assert h1, "the page has no <h1>"
    assert h1 in browser.title and browser.title.endswith(BOOK_TITLE), browser.title

    # MathJax (served offline from _static) typesets every formula
    state = browser.execute_async_script(WAIT_FOR_MATHJAX)
    assert state in ("typeset", "no math"), state
    n_math, n_typeset, n_errors = browser.execute_script(
        "return [document.querySelectorAll('.math').length,"
        " document.querySelectorAll('.math mjx-container').length,"
        " document.querySelectorAll('mjx-merror').length];")
    assert n_typeset == n_math, f"{n_math - n_typeset} formulas left untypeset"
    assert n_errors == 0, f"{n_errors} MathJax errors (undefined macro?)"
    if docname == toc_docnames()[0]:
        assert n_math > 0, "the intro shows the course's equations"
    text = browser.execute_script(VISIBLE_TEXT)
    for raw in ("$$", "\\(", "\\[", "\\newcommand"):
        assert raw not in text, f"raw TeX {raw!r} left in the page text"
    leftover = re.findall(r"\\[A-Za-z]+", text)
    assert not leftover, f"raw TeX commands in the page text: {leftover[:5]}"

    # no error in the browser's console (a script injected twice, a missing favicon, ...)
    errors = [entry["message"] for entry in browser.get_log("browser")
              if entry["level"] == "SEVERE" and own_console_error(entry["message"])]
    assert not errors, f"console errors on {docname}: {errors}"

    # every image is present and decoded
    images = browser.execute_script(IMAGES)
    broken = [src for src, complete, width in images if not (complete and width > 0)]
    assert not broken, f"broken images: {broken}"
    source = source_of(docname)
    if source.suffix == ".ipynb":
        figures = [src for src, _, _ in images if src and "_images/" in src
                   or (src or "").startswith("data:image")]
        assert len(figures) >= stored_figures(source), (
            f"{stored_figures(source)} figures stored, {len(figures)} shown")
        # the Colab launch link points at this notebook on main
        hrefs = browser.execute_script(
            "return Array.from(document.querySelectorAll("
            "'a[href*=\"colab.research.google.com\"]')).map(a => a.href);")
        assert set(hrefs) == {colab_link(docname)}, hrefs


# ---------------------------------------------------------------- the page as a reader sees it

#: The two screens the book is read on: a desktop window and a phone.
WIDTHS = {"desktop": (1280, 1000), "phone": (390, 844)}

LAYOUT = """
const main = document.querySelector('main') || document.body;
const figures = Array.from(main.querySelectorAll('.cell_output img, .ntk-explorer img'))
  .filter(img => img.naturalWidth > 0)
  .map((img, i) => ['figure ' + i + ' of the page',
                    img.getBoundingClientRect().width, img.naturalWidth]);
const formulas = Array.from(main.querySelectorAll('mjx-container[display="true"]'))
  .map(m => [m.textContent.slice(0, 40), m.scrollWidth, m.clientWidth,
             getComputedStyle(m).overflowX]);
const outputs = Array.from(main.querySelectorAll('.cell_output pre'))
  .map(p => [p.textContent.slice(0, 40), p.scrollWidth, p.clientWidth]);
const column = (main.querySelector('article') || main).clientWidth;
return [figures, formulas, outputs, column];
"""

MOVE_EXPLORERS = """
return Array.from(document.querySelectorAll('.ntk-explorer')).map(d => {
  const input = d.querySelector('input[type=range]');
  const img = d.querySelector('img');
  const before = img.getAttribute('src');
  input.value = input.value === '0' ? input.max : '0';
  input.dispatchEvent(new Event('input', {bubbles: true}));
  return [Number(input.max) + 1, before !== img.getAttribute('src'),
          d.querySelector('output').textContent];
});
"""


def small_fonts(source: str) -> list[str]:
    """The font sizes below MIN_FONT_PT that a cell's code asks for."""
    from ntkutils.plotting import MIN_FONT_PT

    small = []
    for m in SMALL_FONT.finditer(source):
        size = m.group(1) or m.group(2)
        if size is None or float(size) < MIN_FONT_PT:
            small.append(m.group(0))
    return small


def test_small_fonts_finds_small_text_only():
    found = small_fonts(
        'ax.legend(fontsize=8); ax.set_title("t", fontsize=12); show_images(a, size=2.0); '
        'ax.tick_params(labelsize="small"); ax.legend(prop={"size": 7}); plot(markersize=4)')
    assert found == ["fontsize=8", 'labelsize="small"', '"size": 7']


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_figures_fit_the_phone_column(path):
    """Every stored figure is at most MAX_WIDTH_IN at the book's dpi (plus the tight bbox's
    margin): on the phone column (PHONE_COLUMN_PX) its 10 pt text is still 9 px or more."""
    from ntkutils.plotting import MIN_READABLE_PX, PHONE_COLUMN_PX, smallest_text_px

    too_wide = []
    for k, cell in enumerate(code_cells(read_notebook(path))):
        for out in cell.outputs:
            png = out.get("data", {}).get("image/png")
            if png:
                # a figure for a 550 px column needs no more than a few hundred KB
                assert len(png) * 3 / 4 < 600_000, f"cell {k}: a {len(png) * 3 // 4} byte PNG"
                width = int.from_bytes(base64.b64decode(png[:64])[16:20], "big")
                shown = min(width, PHONE_COLUMN_PX)
                if smallest_text_px(shown, width) < MIN_READABLE_PX:
                    too_wide.append((k, width))
    assert not too_wide, f"figures too wide to read on a phone (cell, px): {too_wide}"


SMALL_FONT = re.compile(r"\b(?:fontsize|labelsize|titlesize)\s*=\s*(?:([0-9.]+)|[\"'](?:xx?-)?small[\"'])"
                        r"|[\"'](?:size|fontsize)[\"']\s*:\s*([0-9.]+)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_figure_text_below_the_book_minimum(path):
    """No cell asks for text smaller than the style's MIN_FONT_PT (the test above assumes it)."""
    from ntkutils.plotting import MIN_FONT_PT

    small = [s for cell in code_cells(read_notebook(path)) for s in small_fonts(cell.source)]
    assert not small, f"text below {MIN_FONT_PT} pt: {small}"


@pytest.mark.browser
@pytest.mark.parametrize("screen", WIDTHS)
@pytest.mark.parametrize("docname", toc_docnames())
def test_page_reads_on_desktop_and_phone(browser, served_book, docname, screen):
    from ntkutils.plotting import MIN_READABLE_PX, smallest_text_px

    browser.set_window_size(*WIDTHS[screen])
    try:
        browser.get(f"{served_book}/{docname}.html")
        state = browser.execute_async_script(WAIT_FOR_MATHJAX)
        assert state in ("typeset", "no math"), state
        figures, formulas, outputs, column = browser.execute_script(LAYOUT)
        explorers = browser.execute_script(MOVE_EXPLORERS)
    finally:
        browser.set_window_size(*WIDTHS["desktop"])
    small = [(name, round(smallest_text_px(shown, natural), 1))
             for name, shown, natural in figures
             if smallest_text_px(shown, natural) < MIN_READABLE_PX]
    assert not small, f"figure text below {MIN_READABLE_PX} px on the {screen}: {small}"
    clipped = [text for text, scroll, client, overflow in formulas
               if scroll > client + 1 and overflow not in ("auto", "scroll")]
    assert not clipped, f"formulas cut off without a scroll bar: {clipped}"
    if screen == "desktop":
        wide = [text for text, scroll, client, _ in formulas if scroll > client + 1]
        assert not wide, f"formulas wider than the desktop column ({column} px): {wide}"
        long = [text for text, scroll, client in outputs if scroll > client + 1]
        assert not long, f"text outputs wider than the column: {long}"
    for frames, changed, label in explorers:
        assert frames >= 2 and changed, f"an explorer whose image does not change ({label})"


def test_bibliography_is_labelled_author_year(built_book):
    """The bibliography's labels read like the text's citations ("Tachella et al. 2021"),
    not alpha codes ([TTD21]): book/_ext/ntk_book.py registers the style."""
    page = (html_of(built_book) / "book/references.html").read_text("utf-8")
    labels = re.findall(r'class="label"><span class="fn-bracket">\[</span>(?:<a [^>]*>)?([^<]+)<',
                        page)
    assert "Tachella et al. 2021" in labels, labels
    assert len(labels) == len(bib_entries((ROOT / "book/references.bib").read_text())), labels
    assert all(re.fullmatch(r"\D+ \d{4}[a-z]?", label) for label in labels), labels


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_widget_state_is_stored(path):
    """The book shows the explorers' static players and loads no widget manager; a stored
    widget state would only add megabytes (make execute drops it)."""
    assert "widgets" not in read_notebook(path).metadata
