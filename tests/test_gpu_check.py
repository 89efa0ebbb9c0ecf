"""bench/gpu_check.py: on a machine without a GPU it says so and exits 0 (what CI runs); its report writer."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "bench", "gpu_check.py")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _env():
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_without_a_gpu_it_says_so_and_exits_0(tmp_path):
    mod = _module()
    has_gpu, _ = mod.gpu_available()
    if has_gpu:
        pytest.skip("a GPU is present: the check would run for minutes")
    out = subprocess.run(
        [sys.executable, SCRIPT, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no GPU here" in out.stdout
    assert not os.listdir(tmp_path)  # nothing written: no stale "results"


def test_report_table():
    mod = _module()
    out = {
        "device_name": "NVIDIA H100",
        "torch": "2.x",
        "machine": "linux",
        "date": "today",
        "budget_s": 450,
        "elapsed_s": 300.0,
        "tests": {"command": "pytest -k cuda", "returncode": 0, "summary": "12 passed", "seconds": 60.0},
        "rows": [
            {
                "part": "dense",
                "k": 3,
                "n": 300,
                "gpu_scaling_ms_per_sweep": 1.5,
                "gpu_log_ms_per_sweep": 2.0,
                "cpu_ms_per_sweep": 300.0,
                "ott_gpu_ms_per_sweep": None,
                "gpu_solve_s": 3.2,
                "gpu_solve_sweeps": 2000,
            },
            {"part": "dense", "k": 4, "n": 100, "skipped": "time budget"},
            {
                "part": "emot_neural",
                "graph": "circle",
                "k": 10,
                "n": 100000,
                "fit_s": 40.0,
                "gpu_ms_per_step": 3.0,
                "cpu_ms_per_step": 30.0,
                "steps": 300,
                "value": 1.25,
                "host_syncs_per_20_steps": 0,
            },
            {"part": "mgw_neural", "k": 3, "n": 0, "error": "RuntimeError: boom"},
        ],
    }
    title, source, blocks = mod.report_blocks(out)
    md = "\n\n".join(blocks)
    assert title == "GPU check (NVIDIA H100)" and "budget 450 s" in source
    assert "| k = 3, n = 300 | 1.5 | 2 | 300 |  | 3.2 | 2000 |  |" in md
    assert "skipped: time budget" in md
    assert "| emot_neural circle k = 10, n = 100000 | 40 | 3 | 30 | 300 | 1.25 | 0 |  |" in md
    assert "failed: RuntimeError: boom" in md
    json.dumps(out)  # the JSON side is plain data


@pytest.mark.slow
def test_smoke_run_on_the_cpu_writes_markdown_and_json(tmp_path):
    """``--smoke``: every part of the script at toy sizes on the CPU (the code paths a GPU run takes)."""
    pytest.importorskip("torch")  # the smoke run trains on the CPU with torch
    out = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", "--no-tests", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        env=_env(),
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    res = json.load(open(tmp_path / "gpu_check.json"))
    parts = {r["part"] for r in res["rows"]}
    assert parts == {"dense", "emot_neural", "mgw_neural"} and not any("error" in r for r in res["rows"])
    neural = [r for r in res["rows"] if r["part"] == "emot_neural"][0]
    assert neural["host_syncs_per_20_steps"] == 0
    assert (tmp_path / "gpu_check.md").read_text().startswith("# GPU check")
