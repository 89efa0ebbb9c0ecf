# -*- coding: utf-8 -*-
"""The first GPU run in one command: the CUDA test cases and the GPU benchmark rows, in under 8 minutes.

Run on a machine with an NVIDIA GPU (torch built with CUDA)::

    python bench/gpu_check.py            # tests + bench rows, writes bench/results/gpu_check.{md,json}
    python bench/gpu_check.py --no-tests # bench rows only

Without a GPU it says so and exits 0 (CI runs it that way, tests/test_gpu_check.py). ``--smoke`` runs
the same code on the CPU at toy sizes (a check that the script itself works; its numbers mean nothing).

What it does, in a global time budget (``--budget``, default 450 s; a row that would not fit is
skipped and marked so):

1. the CUDA test cases: ``pytest -k cuda`` over the test files whose fixtures add CUDA cases when a
   GPU is present (``nx``: the Sinkhorn engines and solvers; ``torch_device``: neural, GW, saves and
   loads across devices; the host-synchronisation counts of tests/test_host_sync.py on CUDA);
2. dense multimarginal Sinkhorn, k = 3 n = 300 and k = 4 n = 100 (ε = 0.1, squared Euclidean costs
   of 2-D Gaussian clouds, float64): time per sweep of ``emot_sinkhorn2`` on CUDA (``mode='scaling'``
   and ``mode='log'``) against the CPU path (NumPy, the same call), and against OTT-JAX
   ``MMSinkhorn`` on the GPU when ``ott`` and a CUDA ``jax`` are installed; then one CUDA solve to
   1e-6 (sweeps, time, value);
3. ``emot_neural`` on CUDA, the paper's sizes: complete k = 4, n = 1e4 and circle k = 10, n = 1e5
   (d = 5, ε = 1, default settings): fit time, ms per step against the CPU's ms per step (a few
   steps of the same estimator on the CPU), the value, and the host synchronisations of 20 training
   steps (target 0);
4. ``mgw_neural`` on CUDA, k = 3, n = 1e4, reg = 0.1 (clouds of dimensions 2, 3, 2 of one shape): fit time, value,
   warnings (or the error).

The Markdown table goes to ``bench/results/gpu_check.md``, everything to ``bench/results/gpu_check.json``
(``--out`` changes the folder).
"""
# License: MIT License

import argparse
import json
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
for _p in (ROOT, HERE):  # the package, and bench/_report.py
    if _p not in sys.path:
        sys.path.insert(0, _p)

EPS = 0.1
# the test files whose fixtures add CUDA cases (nx, torch_device) and the sync counts
CUDA_TESTS = [
    "tests/test_host_sync.py",
    "tests/test_devices.py",
    "tests/test_sinkhorn.py",
    "tests/test_marginals_graph.py",
    "tests/test_gromov.py",
]


def gpu_available():
    """``(True, name)`` with a usable CUDA device, else ``(False, why)``."""
    try:
        import torch
    except ImportError:
        return False, "torch is not installed"
    if not torch.cuda.is_available():
        return False, "torch.cuda.is_available() is False (torch %s)" % torch.__version__
    return True, torch.cuda.get_device_name(0)


class Budget:
    """The global time budget: rows ask before they start."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds

    def left(self):
        return self.end - time.monotonic()

    def allows(self, seconds):
        return self.left() > seconds


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _clouds(k, n, d, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, d)) for _ in range(k)]


# ---------------------------------------------------------------- 1. the CUDA tests
def run_tests(budget, smoke=False):
    """``pytest -k cuda`` over :data:`CUDA_TESTS` (``-k cpu and sync`` with ``--smoke``); the summary line."""
    limit = max(30, min(240, budget.left() - 200))
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-k",
        "cuda" if not smoke else "counter_sees",
        *CUDA_TESTS,
    ]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=limit)
        tail = (out.stdout + out.stderr).strip().splitlines()
        summary = tail[-1] if tail else ""
        rc = out.returncode
    except subprocess.TimeoutExpired:
        summary, rc = "timed out after %d s" % limit, -1
    return {"command": " ".join(cmd[1:]), "returncode": rc, "summary": summary, "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------- 2. dense Sinkhorn
def _dense_sweep_time(C, device, mode, sweeps):
    """Seconds per sweep of ``emot_sinkhorn2`` (fixed number of sweeps, no stopping)."""
    import torch

    from ot_multimarginal import emot_sinkhorn2

    M = C if device == "numpy" else torch.as_tensor(C, device=device)
    emot_sinkhorn2(None, M, EPS, numItermax=2, stopThr=0.0, warn=False, mode=mode)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    emot_sinkhorn2(None, M, EPS, numItermax=sweeps, stopThr=0.0, warn=False, mode=mode)
    _sync(device)
    return (time.perf_counter() - t0) / sweeps


def _ott_sweep_time(X, sweeps):
    """Seconds per sweep of OTT-JAX ``MMSinkhorn`` on the GPU, or ``None`` when it is not available."""
    try:
        import jax

        jax.config.update("jax_enable_x64", True)
        if jax.devices()[0].platform != "gpu":
            return None
        import jax.numpy as jnp
        from ott.experimental import mmsinkhorn
        from ott.geometry import costs
    except Exception:  # noqa: BLE001 - any missing piece means "not available"
        return None
    xs = tuple(jnp.asarray(x) for x in X)

    def make(n_it):
        return mmsinkhorn.MMSinkhorn(threshold=0.0, norm_error=1.0, inner_iterations=10, max_iterations=n_it)

    run = jax.jit(lambda solver, x_s: solver(x_s, None, cost_fns=costs.SqEuclidean(), epsilon=EPS))
    run(make(sweeps), xs).ent_reg_cost.block_until_ready()  # compile
    t0 = time.perf_counter()
    run(make(sweeps), xs).ent_reg_cost.block_until_ready()
    return (time.perf_counter() - t0) / sweeps


def dense_rows(budget, device, smoke=False):
    import torch

    from ot_multimarginal import emot_sinkhorn2
    from ot_multimarginal.costs.dense import cost_tensor

    cases = [(3, 300, 20), (4, 100, 20)] if not smoke else [(3, 12, 3)]
    rows = []
    for k, n, sweeps in cases:
        row = {"part": "dense", "k": k, "n": n, "reg": EPS}
        if not budget.allows(60):
            row["skipped"] = "time budget"
            rows.append(row)
            continue
        X = _clouds(k, n, 2, seed=2)
        C = cost_tensor(X)
        row["gpu_scaling_ms_per_sweep"] = 1e3 * _dense_sweep_time(C, device, "scaling", sweeps)
        row["gpu_log_ms_per_sweep"] = 1e3 * _dense_sweep_time(C, device, "log", sweeps)
        row["cpu_ms_per_sweep"] = 1e3 * _dense_sweep_time(C, "numpy", "scaling", max(2, sweeps // 4))
        try:
            t_ott = None if smoke else _ott_sweep_time(X, sweeps)
        except Exception as e:  # noqa: BLE001 - OTT-JAX failing is reported, not fatal
            t_ott, row["ott_error"] = None, "%s: %s" % (type(e).__name__, e)
        row["ott_gpu_ms_per_sweep"] = None if t_ott is None else 1e3 * t_ott
        if budget.allows(60):
            M = torch.as_tensor(C, device=device)
            _sync(device)
            t0 = time.perf_counter()
            v, log = emot_sinkhorn2(
                None, M, EPS, numItermax=5000 if not smoke else 20, stopThr=1e-6, warn=False, log=True
            )
            _sync(device)
            row.update(
                gpu_solve_s=time.perf_counter() - t0,
                gpu_solve_sweeps=int(log["niter"]),
                converged=bool(log["converged"]),
                value=float(v),
            )
        rows.append(row)
        print("  dense", json.dumps(row), flush=True)
    return rows


# ---------------------------------------------------------------- 3. emot_neural
def _count_step_syncs(est, device, n_steps=20):
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from _host_sync import HostSyncCounter

    tr = est.trainer_
    tr.sync_free = True  # what a GPU run does by default (and the smoke run on the CPU checks the same path)
    tr.n_iter = tr.step_count + n_steps + 1
    with HostSyncCounter(device) as s:
        for _ in range(n_steps):
            tr.step_async()
    tr.sync()
    return s.count


def neural_rows(budget, device, smoke=False):
    import numpy as np

    from ot_multimarginal.neural import NeuralEMOT

    cases = [("complete", 4, 10_000), ("circle", 10, 100_000)] if not smoke else [("complete", 4, 40)]
    rows = []
    for graph, k, n in cases:
        row = {"part": "emot_neural", "graph": graph, "k": k, "n": n, "d": 5, "reg": 1.0}
        if not budget.allows(90):
            row["skipped"] = "time budget"
            rows.append(row)
            continue
        rng = np.random.default_rng(0)
        X = [rng.uniform(-1 / np.sqrt(5), 1 / np.sqrt(5), (n, 5)) for _ in range(k)]
        kw = {} if not smoke else {"n_iter": 6, "batch_size": 8, "eval_every": 3}
        t0 = time.perf_counter()
        est = NeuralEMOT(1.0, graph=graph, seed=0, device=device, **kw).fit(X)
        _sync(device)
        row.update(
            fit_s=time.perf_counter() - t0,
            steps=int(est.n_iter_),
            value=float(est.value_),
            value_method=est.value_method_,
            gpu_ms_per_step=1e3 * est.timings_["train"] / max(est.n_iter_, 1),
        )
        row["host_syncs_per_20_steps"] = _count_step_syncs(est, device)
        cpu = NeuralEMOT(
            1.0,
            graph=graph,
            seed=0,
            device="cpu",
            n_iter=10,
            eval_every=0,
            evaluation="mc",
            n_eval_batches=2,
            batch_size=est.batch_size_,
        ).fit([x[: max(64, est.batch_size_)] for x in X])
        row["cpu_ms_per_step"] = 1e3 * cpu.timings_["train"] / max(cpu.n_iter_, 1)
        rows.append(row)
        print("  neural", json.dumps(row), flush=True)
    return rows


# ---------------------------------------------------------------- 4. mgw_neural
def mgw_rows(budget, device, smoke=False):
    import numpy as np

    from ot_multimarginal.neural import NeuralMGW

    n = 10_000 if not smoke else 30
    row = {"part": "mgw_neural", "k": 3, "n": n}
    if not budget.allows(60):
        row["skipped"] = "time budget"
        return [row]
    rng = np.random.default_rng(0)
    base = rng.standard_normal((n, 2)) * np.array([2.0, 1.0])
    X = []
    for d in (2, 3, 2):
        Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
        X.append(np.c_[base, np.zeros((n, d - 2))] @ Q)
    kw = (
        {}
        if not smoke
        else {
            "max_iter": 1,
            "max_iter_inner": 4,
            "max_iter_refit": 2,
            "batch_size": 8,
            "n_moment_batches": 2,
            "init": "zero",
        }
    )
    import warnings

    # reg = 0.1 (that of bench_mgw_large): its float32 training batches underflow in most scaled products, which the
    # sync-free GPU steps do not repair (a NaN update before d3a6deb; an underflow warning at every fit before 49ea59f,
    # whose log-partition certificate skips the entries negligible in the total): the warnings are kept in the row
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est = NeuralMGW(0.1, graph="complete", random_state=0, device=device, **kw).fit(X)
        except FloatingPointError as exc:
            row.update(error=str(exc)[:200])
            print("  mgw", json.dumps(row), flush=True)
            return [row]
    _sync(device)
    row.update(fit_s=time.perf_counter() - t0, value=float(est.value_))
    row["warnings"] = sorted({str(w.message)[:120] for w in caught})
    print("  mgw", json.dumps(row), flush=True)
    return [row]


# ---------------------------------------------------------------- report
def _note(r):
    """What the table's last column says of a row: skipped or failed."""
    if "skipped" in r:
        return "skipped: " + r["skipped"]
    return "failed: " + r["error"] if "error" in r else ""


def report_blocks(out):
    """``(title, source, blocks)`` of the results page (tables by :func:`_report.md_table`)."""
    from _report import md_table

    title = "GPU check (%s)" % out["device_name"]
    source = "`python bench/gpu_check.py`, %s, torch %s, %s; budget %d s, used %.0f s." % (
        out["date"],
        out["torch"],
        out["machine"],
        out["budget_s"],
        out["elapsed_s"],
    )
    blocks = []
    if out.get("tests"):
        t = out["tests"]
        blocks.append(
            "CUDA tests (`%s`): %s (exit %s, %.0f s)." % (t["command"], t["summary"], t["returncode"], t["seconds"])
        )
    dense = [r for r in out["rows"] if r["part"] == "dense"]
    if dense:
        blocks.append(
            "Dense Sinkhorn, ε = 0.1, float64: time per sweep on the GPU (both modes), on the CPU "
            "(NumPy, the same call) and of OTT-JAX `MMSinkhorn` on the GPU; then one GPU solve to 1e-6."
        )
        blocks.append(
            md_table(
                [
                    "case",
                    "GPU scaling ms/sweep",
                    "GPU log ms/sweep",
                    "CPU ms/sweep",
                    "OTT-JAX GPU ms/sweep",
                    "GPU solve to 1e-6 (s)",
                    "sweeps",
                    "note",
                ],
                [
                    [
                        "k = %d, n = %d" % (r["k"], r["n"]),
                        r.get("gpu_scaling_ms_per_sweep"),
                        r.get("gpu_log_ms_per_sweep"),
                        r.get("cpu_ms_per_sweep"),
                        r.get("ott_gpu_ms_per_sweep"),
                        r.get("gpu_solve_s"),
                        r.get("gpu_solve_sweeps"),
                        _note(r),
                    ]
                    for r in dense
                ],
                align="lrrrrrrl",
            )
        )
    neural = [r for r in out["rows"] if r["part"] != "dense"]
    if neural:
        blocks.append(
            "Neural estimators on the GPU (default settings, d = 5 for `emot_neural`, ε = 1; `mgw_neural` ε = 0.1); "
            "CPU ms per step: a few steps of the same estimator and batch size on the CPU; host synchronisations of "
            "20 training steps (target 0)."
        )
        for r in neural:
            for w in r.get("warnings", ()):
                blocks.append("Warning of `%s`: %s…" % (r["part"], w))
        blocks.append(
            md_table(
                ["case", "fit (s)", "GPU ms/step", "CPU ms/step", "steps", "value", "host syncs / 20 steps", "note"],
                [
                    [
                        "%s %s k = %d, n = %d" % (r["part"], r.get("graph", "complete"), r["k"], r["n"]),
                        r.get("fit_s"),
                        r.get("gpu_ms_per_step"),
                        r.get("cpu_ms_per_step"),
                        r.get("steps"),
                        r.get("value"),
                        r.get("host_syncs_per_20_steps"),
                        _note(r),
                    ]
                    for r in neural
                ],
                align="lrrrrrrl",
            )
        )
    return title, source, blocks


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=450.0, help="seconds for everything (default 450)")
    ap.add_argument("--no-tests", action="store_true", help="bench rows only")
    ap.add_argument("--smoke", action="store_true", help="toy sizes on the CPU: checks the script, not the GPU")
    ap.add_argument("--out", default=os.path.join(HERE, "results"), help="folder of gpu_check.{md,json}")
    args = ap.parse_args(argv)
    ok, name = gpu_available()
    if not ok and not args.smoke:
        print("gpu_check: no GPU here (%s): nothing to check, exiting." % name)
        return 0
    import torch

    device = "cuda" if not args.smoke else "cpu"
    if args.smoke:
        name = "CPU smoke run (%s; not a GPU result)" % platform.processor()
    t_start = time.monotonic()
    budget = Budget(args.budget)
    out = {
        "device_name": name,
        "torch": torch.__version__,
        "machine": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "budget_s": args.budget,
        "smoke": args.smoke,
        "rows": [],
    }
    if not args.no_tests:
        out["tests"] = run_tests(budget, args.smoke)
        print("tests:", out["tests"]["summary"], flush=True)
    for part in (dense_rows, neural_rows, mgw_rows):
        try:
            out["rows"] += part(budget, device, args.smoke)
        except Exception as e:  # noqa: BLE001 - a failed row is reported, the others still run
            out["rows"].append({"part": part.__name__, "k": 0, "n": 0, "error": "%s: %s" % (type(e).__name__, e)})
            print("  %s failed: %s" % (part.__name__, e), flush=True)
    out["elapsed_s"] = time.monotonic() - t_start
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
        json.dump(out, f, indent=1)
    import _report

    _report.RESULTS = args.out  # the one writer of the benches' pages, into --out
    title, source, blocks = report_blocks(out)
    with open(_report.write_markdown("gpu_check", title, blocks, source=source), encoding="utf-8") as f:
        print(f.read())
    failed = (out.get("tests", {}).get("returncode", 0) not in (0, 5)) or any("error" in r for r in out["rows"])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
