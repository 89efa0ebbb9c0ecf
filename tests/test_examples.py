# -*- coding: utf-8 -*-
"""The gallery examples run (headless) and print what they promise."""

import pathlib
import re
import runpy

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs(path, capsys, monkeypatch):
    pytest.importorskip("matplotlib")
    for mod in re.findall(r"^(?:import|from) (torch|sklearn)\b", path.read_text(encoding="utf-8"), re.M):
        pytest.importorskip(mod)  # optional packages (an install without torch skips the torch example)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    monkeypatch.setattr(plt, "show", lambda *a, **k: None)
    runpy.run_path(str(path), run_name="__main__")
    plt.close("all")
    out = capsys.readouterr().out
    assert "value" in out


def test_there_are_examples():
    assert len(EXAMPLES) >= 2
