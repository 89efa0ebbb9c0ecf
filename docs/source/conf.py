# -*- coding: utf-8 -*-
"""Sphinx configuration of the ot_multimarginal documentation.

Build (warnings are errors, as in CI)::

    python -m sphinx -W -b html docs/source docs/_build/html

The gallery (sphinx-gallery) runs every ``examples/plot_*.py`` headless and
renders its figures; ``-D plot_gallery=0`` skips running them for a quick
build of the text.
"""
# License: MIT License

import os
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, ROOT)

import ot_multimarginal  # noqa: E402

# -- Project -------------------------------------------------------------------
project = "ot_multimarginal"
author = "ot_multimarginal developers"
copyright = "2026, ot_multimarginal developers"
release = ot_multimarginal.__version__
version = release

# -- Extensions ----------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",  # the benchmark page (Markdown) includes the benches' own results pages, bench/results/*.md
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"

# autodoc / autosummary / numpydoc: one page per public name, numpydoc sections.
autosummary_generate = True
autodoc_default_options = {"members": True, "undoc-members": True, "inherited-members": False}
autodoc_typehints = "none"  # the numpydoc "Parameters" sections carry the types
numpydoc_show_class_members = False  # methods are listed by the class template
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
# numpydoc validation: the build (-W) fails on a docstring gap of a documented name. The checks
# are those that matter to a reader: a summary line (SS01-SS03), every parameter documented with
# a type and a description and in the signature's order (PR01, PR03, PR04, PR06, PR07, PR10), no
# documented parameter that does not exist (PR02), a described Returns section (RT01, RT03), no
# unknown section (GL06) and no undocumented object (GL08). Section order (GL07) is not checked:
# numpydoc renders the sections in its own order. Every docstring autodoc renders is checked
# (the API reference and the neural and distributed pages' developer reference);
# tests/test_docs.py reads this set and runs it over every public name without building the docs.
numpydoc_validation_checks = {
    "GL06",
    "GL08",
    "PR01",
    "PR02",
    "PR03",
    "PR04",
    "PR06",
    "PR07",
    "PR10",
    "RT01",
    "RT03",
    "SS01",
    "SS02",
    "SS03",
}
numpydoc_validation_exclude = {r"\._[^.]*$"}  # private names (none is rendered; never check one)

# -- Gallery -------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": os.path.join(ROOT, "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # run every plot_*.py
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "abort_on_example_error": True,
    "reset_modules": ("matplotlib",),
    "min_reported_time": 1,
    "show_memory": False,
    "doc_module": ("ot_multimarginal",),
    "backreferences_dir": os.path.join(HERE, "generated", "backreferences"),
}
# matplotlib's Agg backend and the examples' plt.show() are harmless here.
warnings.filterwarnings(
    "ignore", category=UserWarning, message="Matplotlib is currently using agg, which is a non-GUI backend"
)
warnings.filterwarnings("ignore", category=UserWarning, message="FigureCanvasAgg is non-interactive")

# -- HTML ----------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = "ot_multimarginal %s" % release
html_static_path = ["_static"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False
