# -*- coding: utf-8 -*-
"""The documentation sources cover the package: every public name, every example.

The Sphinx build itself (``python -m sphinx -W -b html docs/source docs/_build/html``)
runs in CI after the tests; these checks are the fast part of it.
"""

import importlib.util
import pathlib
import re
import warnings

from test_readme import missing_optional

import ot_multimarginal

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
    gallery = README[README.index("## Gallery") :]
    gallery = gallery[: gallery.index("\n## ", 1)]
    for path in examples:
        text = path.read_text(encoding="utf-8")
        # sphinx-gallery needs a module docstring that starts with an rst title
        assert re.match(r'^(#.*\n)*r?"""\n=+\n.+\n=+\n', text), "%s: no gallery title" % path.name
        assert path.name in gallery, "%s is not listed in the README's Gallery section" % path.name
    assert (ROOT / "examples" / "GALLERY_HEADER.rst").is_file()


def test_every_bench_result_page_is_in_the_docs():
    """Each bench writes its results page bench/results/<name>.md; the benchmark page includes every one."""
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    included = re.findall(r"^```\{include\} \.\./\.\./bench/results/(\S+\.md)\n((?::.*\n)*)```", page, re.M)
    results = sorted(p.name for p in (ROOT / "bench" / "results").glob("*.md"))
    assert results, "no bench results pages"
    assert sorted(name for name, _ in included) == results, "docs/source/benchmarks.md must include each page once"
    for name, opts in included:
        assert ":relative-images:" in opts, name  # their plots sit next to them
        text = (ROOT / "bench" / "results" / name).read_text(encoding="utf-8")
        assert text.startswith("# "), "%s: a results page starts with its '# title'" % name
        assert "\n### " not in text, "%s: use '##' for sub-sections (MyST refuses skipped levels)" % name
        for img in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", text):
            assert (ROOT / "bench" / "results" / img).is_file(), "%s: image %s is missing" % (name, img)


def test_bench_report_writer(tmp_path, monkeypatch):
    """bench/_report.py: the table, the page, and the hand-written notes a rewrite keeps."""
    spec = importlib.util.spec_from_file_location("_report", ROOT / "bench" / "_report.py")
    report = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(report)
    monkeypatch.setattr(report, "RESULTS", str(tmp_path))
    table = report.md_table(["a", "b"], [[1, 0.123456], ["x|y", None]], align="lr")
    assert table.splitlines() == ["| a | b |", "|---|---:|", "| 1 | 0.1235 |", "| x\\|y |  |"]
    import pytest

    with pytest.raises(ValueError, match="one entry per column"):
        report.md_table(["a", "b"], [[1]])
    path = report.write_markdown("b", "Title", ["text", table], source="`cmd`", figures=[("b.png", "plot")])
    text = pathlib.Path(path).read_text(encoding="utf-8")
    assert text.startswith("# Title\n\n*Source:* `cmd`\n\ntext\n\n| a | b |") and text.endswith("![plot](b.png)\n")
    pathlib.Path(path).write_text(text + "\n" + report.MANUAL + "\n\nkept note\n", encoding="utf-8")
    report.write_markdown("b", "Title 2", ["new"])
    text = pathlib.Path(path).read_text(encoding="utf-8")
    assert "Title 2" in text and "text" not in text and text.endswith(report.MANUAL + "\n\nkept note\n")


def test_readme_is_a_front_page():
    """The README stays a front page: short, no load averages, the benchmark numbers live in bench/results/."""
    assert len(README.splitlines()) <= 250
    assert not re.search(r"load( average)?:? \d", README) and "GFLOP" not in README, (
        "measurement details belong in bench/results/"
    )
    for path in re.findall(r"\]\(((?:docs|bench)/[^)#\s]+)\)", README):
        assert (ROOT / path).is_file(), "README links to a missing file: %s" % path
    # the peer table is included by the documentation's front page between these markers
    assert "<!-- compare:start -->" in README and "<!-- compare:end -->" in README
    assert "compare:start" in (DOCS / "index.rst").read_text(encoding="utf-8")


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


def _numpydoc_checks():
    """The numpydoc checks of the docs build: ``numpydoc_validation_checks`` of docs/source/conf.py (one place)."""
    import ast

    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "numpydoc_validation_checks" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    raise AssertionError("docs/source/conf.py sets no numpydoc_validation_checks")


def _documented_objects():
    """Dotted names of what the docs render: ``ot_multimarginal.__all__`` (the API reference), the
    names of the pages' ``autofunction`` / ``autoclass`` / ``automodule :members:`` directives, and
    the public members of every class among them."""
    import importlib
    import inspect

    torch_missing = importlib.util.find_spec("torch") is None
    tops = ["ot_multimarginal." + n for n in ot_multimarginal.__all__ if not n.startswith("_")]
    for page in sorted(DOCS.glob("*.rst")):
        text = page.read_text(encoding="utf-8")
        for kind, target, opts in re.findall(
            r"^\.\. auto(function|class|module):: (\S+)\n((?:[ ]{3}:.*\n)*)", text, re.M
        ):
            if kind != "module":
                tops.append(target)
                continue
            members = re.search(r":members: (.+)", opts)
            tops += [target + "." + m.strip() for m in members.group(1).split(",")] if members else []
    names = []
    for name in dict.fromkeys(tops):
        module, _, attr = name.rpartition(".")
        if torch_missing and (".neural" in module or attr in getattr(ot_multimarginal, "_LAZY", {})):
            continue  # the neural subpackage needs torch
        obj = getattr(importlib.import_module(module), attr)
        names.append(name)
        if inspect.isclass(obj):
            names += ["%s.%s" % (name, m) for m in vars(obj) if not m.startswith("_")]
    return names


def test_documented_docstrings_pass_the_numpydoc_checks_of_the_docs_build():
    """Every public function, class, method and property, and what the docs pages render: summary,
    every parameter with a type and a description (none that does not exist), a described Returns
    section: the checks the Sphinx build (``numpydoc_validation_checks``, warnings as errors) makes,
    here without building the docs."""
    import pytest

    validate = pytest.importorskip("numpydoc.validate").validate  # only in the 'docs' extra
    checks = _numpydoc_checks()
    assert {"PR01", "PR02", "RT01", "GL08"} <= checks
    names = _documented_objects()
    assert "ot_multimarginal.FactoredPlan.sample" in names and "ot_multimarginal.PairwiseCost.chain" in names
    gaps = []
    for name in names:
        with warnings.catch_warnings(record=True) as caught:  # e.g. numpydoc's "Unknown section Fields"
            warnings.simplefilter("always")
            gaps += ["%s %s: %s" % (name, code, msg) for code, msg in validate(name)["errors"] if code in checks]
        gaps += ["%s: %s" % (name, w.message) for w in caught if "numpydoc" in w.filename]
    assert gaps == [], "docstring gaps (numpydoc):\n" + "\n".join(gaps)
