# -*- coding: utf-8 -*-
"""The documentation sources cover the package: every public name, every example.

The Sphinx build itself (``python -m sphinx -W -b html docs/source docs/_build/html``)
runs in CI after the tests; these checks are the fast part of it.
"""
import importlib.util
import pathlib
import re
import warnings

import ot_multimarginal
from test_readme import missing_optional

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "source"
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _autosummary_names(text):
    names = []
    for block in re.findall(r"^\.\. autosummary::\n((?:[ \t]+.*\n|\n)+)", text, re.M):
        names += [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith(":")]
    return names


def test_api_reference_lists_every_public_name():
    listed = _autosummary_names((DOCS / "api.rst").read_text(encoding="utf-8"))
    public = [n for n in ot_multimarginal.__all__ if not n.startswith("_")]
    assert sorted(set(public) - set(listed)) == [], "public names missing from docs/source/api.rst"
    assert sorted(set(listed) - set(public)) == [], "api.rst lists names that are not in __all__"
    assert len(listed) == len(set(listed)), "api.rst lists a name twice"


def test_every_example_is_a_gallery_script_named_in_the_readme():
    examples = sorted((ROOT / "examples").glob("plot_*.py"))
    assert examples
    gallery = README[README.index("## Gallery"):]
    gallery = gallery[: gallery.index("\n## ", 1)]
    for path in examples:
        text = path.read_text(encoding="utf-8")
        # sphinx-gallery needs a module docstring that starts with an rst title
        assert re.match(r'^(#.*\n)*r?"""\n=+\n.+\n=+\n', text), "%s: no gallery title" % path.name
        assert path.name in gallery, "%s is not listed in the README's Gallery section" % path.name
    assert (ROOT / "examples" / "GALLERY_HEADER.rst").is_file()


def _section_to_rst():
    spec = importlib.util.spec_from_file_location("_readme_section", DOCS / "_readme_section.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.section_to_rst


def test_readme_sections_included_in_the_docs_convert():
    convert = _section_to_rst()
    for title in ("Benchmarks", "Which solver for which size", "How it compares"):
        rst = convert(README, title, image_prefix="../../")
        assert ".. list-table::" in rst
        n_rows = len(re.findall(r"^\|", README[README.index("## " + title):].split("\n## ")[0], re.M))
        # every Markdown row but the |---| separators becomes one list-table row
        assert rst.count("   * - ") == n_rows - rst.count(".. list-table::")
    bench = convert(README, "Benchmarks", image_prefix="../../")
    for path in re.findall(r"^\.\. image:: (\S+)", bench, re.M):
        assert (DOCS / path).resolve().is_file(), path


def test_conversion_of_markdown_inline_markup():
    convert = _section_to_rst()
    md = "## T\n\nSee `a_b` and [POT](https://pythonot.github.io/), **bold**.\n\n| x | y |\n|---|---|\n| `1` | |\n"
    rst = convert(md, "T")
    assert "``a_b``" in rst and "`POT <https://pythonot.github.io/>`__" in rst and "**bold**" in rst
    assert "   * - ``1``\n     - \\ " in rst


def test_documentation_code_blocks_run(monkeypatch, tmp_path):
    """Every ``.. code-block:: python`` of the docs pages runs (one namespace per page)."""
    monkeypatch.chdir(tmp_path)
    pages = sorted(DOCS.glob("*.rst"))
    n_blocks = 0
    for page in pages:
        text = page.read_text(encoding="utf-8")
        ns = {"__name__": "__docs__"}
        for m in re.finditer(r"^\.\. code-block:: python\n\n((?:[ ]{4}.*\n|\n)+)", text, re.M):
            code = "\n".join(ln[4:] for ln in m.group(1).splitlines())
            if missing_optional(code):  # e.g. the neural page in an install without torch
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a documented snippet runs cleanly
                warnings.filterwarnings("ignore", category=DeprecationWarning)
                exec(compile(code, "%s (line %d)" % (page.name, text[: m.start()].count("\n") + 1), "exec"), ns)
            n_blocks += 1
    assert n_blocks >= 2
