# -*- coding: utf-8 -*-
"""Every fenced ```python block of the README runs, in order, in one namespace.

The README is the newcomer's first contact: a block that cannot run as
written is a bug. A block that needs an optional package (torch, matplotlib)
is skipped, alone, when the package is missing; ``bash`` blocks are checked
against ``.ci/run`` (CI runs exactly the README's commands).
"""

import importlib.util
import pathlib
import re
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)
BLOCKS = [(m.group(1), m.group(2), README[: m.start()].count("\n") + 2) for m in FENCE.finditer(README)]
PYTHON = [(code, line) for lang, code, line in BLOCKS if lang == "python"]
OPTIONAL = ("torch", "matplotlib", "sklearn")


def test_readme_has_python_blocks():
    assert len(PYTHON) >= 4


# calls that need an optional package although the snippet does not import it
_NEEDS = {"torch": r"\b(emot_neural|NeuralEMOT|mgw_neural|NeuralMGW)\b"}


def missing_optional(code):
    """The optional package a snippet needs (imports it, or calls a torch-only solver) that is not installed."""
    for mod in OPTIONAL:
        uses = re.search(r"^\s*(import|from) %s\b" % mod, code, re.M) or (
            mod in _NEEDS and re.search(_NEEDS[mod], code)
        )
        if uses and importlib.util.find_spec(mod) is None:
            return mod
    return None


def test_readme_python_blocks_run(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # blocks must not depend on (or write to) the working directory
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns = {"__name__": "__readme__"}
    ran = 0
    for i, (code, line) in enumerate(PYTHON):
        if missing_optional(code):  # e.g. the torch block in an install without torch: skip that block only
            continue
        # a README block must run cleanly: a warning (e.g. non-convergence) is a failure
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            try:
                exec(compile(code, "README.md (block %d, line %d)" % (i, line), "exec"), ns)
            except Exception as e:  # pragma: no cover - the message is the point
                raise AssertionError("README python block %d (line %d) failed: %r\n%s" % (i, line, e, code)) from e
        ran += 1
    if all(importlib.util.find_spec(mod) for mod in OPTIONAL):
        assert ran == len(PYTHON)  # the full install runs every block
    else:
        assert ran >= 1  # the NumPy-only blocks (the quickstart first) run without the extras


def test_readme_commands_are_what_ci_runs():
    # the two set-up commands and the documentation build, verbatim
    bash = [code.strip() for lang, code, _ in BLOCKS if lang == "bash"]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert len(bash) >= 3
    for cmd in bash:
        assert cmd in ci, "README command not run verbatim by .ci/run: %s" % cmd


def test_readme_images_exist():
    for path in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", README):
        if not path.startswith("http"):
            assert (ROOT / path).is_file(), "README image %s is missing" % path
