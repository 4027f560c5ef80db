"""The book's own Sphinx tweaks (a local extension, listed in _config.yml).

- Each script is included once per page: sphinx-thebe registers its configuration script
  (``const THEBE_JS_URL = ...``) again when Jupyter Book re-reads the environment, and a
  second ``const`` declaration is an error in every reader's console.
- MathJax is served from the book (sphinx-mathjax-offline copies the whole distribution,
  24 MB): the combined bundles the pages never load (``tex-svg.js``, ``mml-chtml.js``, ...,
  all but the one in ``mathjax_path``) are removed after the build.  The components the
  page's bundle loads on demand (fonts, the menu's renderers, the accessibility explorer)
  stay.
- The bibliography is labelled the way the text cites, author and year ("Tachella et al.
  2021"), sorted by author: the ``author_year`` pybtex style registered here
  (sphinxcontrib-bibtex's own styles label [TTD21]).
- ``ntk-book.css``: display formulas wider than the column scroll sideways (with a visible
  scroll bar) instead of being clipped, and the explorers' players fit the column.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from pybtex.plugin import register_plugin
from pybtex.style.formatting.plain import Style as PlainStyle
from pybtex.style.labels import BaseLabelStyle

STATIC = Path(__file__).parent / "static"


class AuthorYearLabels(BaseLabelStyle):
    """Labels "Last 2021", "Last and Other 2021", "Last et al. 2021" (a, b on clashes)."""

    def format_labels(self, sorted_entries):
        labels = [self._label(entry) for entry in sorted_entries]
        counts, seen = Counter(labels), Counter()
        for label in labels:
            if counts[label] == 1:
                yield label
            else:
                yield label + "abcdefghijklmnopqrstuvwxyz"[seen[label]]
                seen[label] += 1

    @staticmethod
    def _label(entry) -> str:
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [" ".join(p.last_names) for p in people]
        who = (names[0] if len(names) == 1 else " and ".join(names) if len(names) == 2
               else f"{names[0]} et al." if names else entry.key)
        return f"{who} {entry.fields.get('year', '')}".strip()


class AuthorYearStyle(PlainStyle):
    default_label_style = "author_year"


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "author_year", AuthorYearStyle)


def _script_key(script) -> tuple:
    """What makes two scripts the same: the file (None and "" both mean an inline body)
    and the attributes, the body among them."""
    filename = getattr(script, "filename", script) or ""
    attributes = tuple(sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items()))
    return (str(filename), attributes)


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, unique = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def _add_static(app) -> None:
    app.config.html_static_path.append(str(STATIC))


#: The combined MathJax bundles: one file each, an alternative to the others.
BUNDLE = re.compile(r"(tex|mml)-[a-z-]+\.js|node-main\.js")


def _drop_unused_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    folder = Path(app.outdir) / "_static" / "mathjax"
    used = Path(str(app.config.mathjax_path)).name
    if not (folder / used).is_file():
        return  # MathJax from elsewhere (a CDN): nothing of ours to prune
    for bundle in folder.iterdir():
        if BUNDLE.fullmatch(bundle.name) and bundle.name != used:
            bundle.unlink()


def setup(app):
    app.connect("builder-inited", _add_static)
    app.connect("html-page-context", _unique_scripts, priority=900)
    app.connect("build-finished", _drop_unused_mathjax)
    app.add_css_file("ntk-book.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
