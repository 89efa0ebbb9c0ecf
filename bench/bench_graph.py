# -*- coding: utf-8 -*-
"""Graph-structured costs: the pairwise engines against the dense solver, and at sizes the dense one cannot hold.

Run::

    python bench/bench_graph.py            # full, ~15 min on 2 cores
    python bench/bench_graph.py --quick    # small sizes, ~2 min
    python bench/bench_graph.py --cases a,a-ott   # some cases; they replace their rows in the JSON

Cases
-----
(a) complete graph on k = 3 point clouds (sum over pairs of squared
    Euclidean distances, as :func:`ot_multimarginal.cost_tensor`), n = 150,
    ε = 0.1, threshold 1e-6: :class:`PairwiseCost` (``graph='complete'``,
    the triangle is solved by the cycle engine) against the dense tensor
    (``emot_sinkhorn2(None, cost_tensor(X_s), 0.1, stopThr=1e-6)``). Both run
    the same cyclic updates, so they do the same number of sweeps (checked);
    times include building the cost.
    Case (a-2t) is the same with 2 BLAS threads on both sides. Each
    comparison runs both sides 3 times, alternating; the fastest run of each
    side counts (the machine is shared).
(a-ott) case (a) by OTT-JAX ``MMSinkhorn`` (jit, timed on its second call, as
    ``bench/bench_dense.py`` runs it), once, in its own virtual environment
    ``bench/.venv-ott`` (skipped when absent; see bench/README.md).
(a2) the same at n = 300 (216 MB dense tensor), both sides for the same
    fixed number of sweeps.
(a3) n = 150 at ε = 0.01, both sides for the same fixed number of sweeps:
    small ε, where the engines must stay stable (scaled products with
    checked error bounds, log-domain repairs where they fail).
(b) the same graph at n = 2000 (the dense tensor would take 64 GB): ε = 1 and
    threshold 1e-4 (a few minutes at most), peak memory reported.
(c) chains of k = 10, 20, 50 clouds of n = 1000 points, ε = 0.1: the first
    20 sweeps (kernels absorbed on the way), then the time per sweep in steady
    state (20 more sweeps on the same engine: linear in k), and a full solve
    for k = 10.
(d) circle of k = 10 clouds, n = 500, ε = 0.1: full solve to 1e-6.
(e) complete graph on k = 4 clouds, n = 60 (contraction engine: variable
    elimination, factors of n^3 entries) against the dense tensor (n^4),
    100 sweeps on both sides.

Every solve runs in its own subprocess (``--worker``), so that its peak
memory can be read from ``/proc/self/status`` (``VmHWM``, reset through
``/proc/self/clear_refs`` just before the timed part), with one BLAS thread
by default (``--threads``): on a shared 2-core machine, multithreaded BLAS
on small matrices mostly measures the other processes. The same run measures
the machine's float64 matrix-product rate (1000 × 1000 ``A @ B``) and
matrix-vector rate (1000 × 1000 ``A @ x``, memory bound); each structured case
reports its achieved GFLOP/s (flops of its matrix products only) and the
fraction of the relevant reference rate. The machine is shared: compare
ratios within one run, not absolute times across runs.

Point clouds: ``np.random.default_rng(seed)``, k draws of
``standard_normal((n, 2))`` (as ``bench/bench_dense.py``), uniform weights,
float64.
"""
# License: MIT License

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from _memory import proc_status, reset_peak  # noqa: E402 (bench/ is on sys.path when run as a script)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

SEED = 2


def _clouds(k, n, seed=SEED):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 2)) for _ in range(k)]


def _peak_mib():
    return proc_status().get("VmHWM", float("nan")) / 2**20


def _rss_mib():
    return proc_status().get("VmRSS", float("nan")) / 2**20


def _matmul_flops_per_sweep(kind, shape):
    """Flops of the matrix products of one cyclic sweep (what the engines do)."""
    k = len(shape)
    n = max(shape)
    if kind == "cycle":
        if k == 3:
            # triangle: one through-product per two updates
            return 1.5 * 2.0 * n**3
        # scaled cycle engine: suffixes S_1..S_{k-2} and prefixes P_2..P_{k-1}
        return 2 * (k - 2) * 2.0 * n**3
    if kind == "tree":
        # chain: 2 (k - 1) matrix-vector products
        return 2 * (k - 1) * 2.0 * n * n
    return float("nan")


def worker(spec):
    """One timed solve (or the reference rates); prints one JSON line."""
    if spec.get("rates"):
        print("RESULT " + json.dumps(machine_rates()))
        return
    import warnings

    import numpy as np

    from ot_multimarginal import emot_sinkhorn2
    from ot_multimarginal.costs import PairwiseCost, cost_tensor

    k, n, reg, thr, maxit = spec["k"], spec["n"], spec["reg"], spec["thr"], spec["maxit"]
    if spec["side"] == "ott":
        # OTT-JAX MMSinkhorn, as bench_dense.py runs it (jit, timed on the second call)
        import bench_dense

        if (reg, thr, SEED) != (bench_dense.EPS, bench_dense.THR, bench_dense.SEED):
            raise ValueError(
                "the OTT-JAX worker runs eps=%g, thr=%g, seed=%d" % (bench_dense.EPS, bench_dense.THR, bench_dense.SEED)
            )
        r = bench_dense._worker_ott(dict(k=k, n=n, seed=SEED, maxit=maxit))
        out = dict(
            spec,
            engine="ott-jax",
            time_s=r["time_s"],
            niter=r["sweeps"],
            converged=r["converged"],
            err=r["err"],
            value=r["value"],
            per_sweep_ms=1e3 * r["time_s"] / max(r["sweeps"], 1),
            peak_increase_mib=(r.get("peak_delta_bytes") or float("nan")) / 2**20,
            gflops=float("nan"),
        )
        print("RESULT " + json.dumps(out))
        return
    X = _clouds(k, n)
    base_rss = _rss_mib()
    reset_peak()
    # blas_threads=None: the thread count is the worker's environment (--threads, case a-2t), not the 'auto' rule
    kw = dict(stopThr=thr, numItermax=maxit, log=True, warn=False, blas_threads=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        if spec["side"] == "dense":
            M = cost_tensor(X)
            v, log = emot_sinkhorn2(None, M, reg, **kw)
            kind = "dense"
        else:
            C = PairwiseCost.from_point_clouds(X, graph=spec["graph"])
            kind = C.engine_kind()
            v, log = emot_sinkhorn2(None, C, reg, **kw)
        dt = time.perf_counter() - t0
    out = dict(
        spec,
        engine=kind,
        time_s=dt,
        niter=int(log["niter"]),
        converged=bool(log["converged"]),
        err=float(log["err"][-1]),
        value=float(v),
        per_sweep_ms=1e3 * dt / max(int(log["niter"]), 1),
        peak_mib=_peak_mib(),
        base_rss_mib=base_rss,
    )
    out["peak_increase_mib"] = out["peak_mib"] - base_rss
    fl = _matmul_flops_per_sweep(kind, tuple([n] * k)) if kind != "dense" else float("nan")
    out["gflops"] = fl * out["niter"] / dt / 1e9 if fl == fl else float("nan")
    if spec.get("steady"):
        # time per sweep once the kernels are absorbed: continue the same engine
        from ot_multimarginal.sinkhorn import make_engine, solve_potentials

        engine, a_s = make_engine(None, C, reg)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g, _ = solve_potentials(engine, a_s, numItermax=spec["steady"], stopThr=0.0, warn=False, blas_threads=None)
            phi = [reg * (gi - np.log(ai)) for gi, ai in zip(g, a_s)]
            t1 = time.perf_counter()
            solve_potentials(engine, a_s, numItermax=maxit, stopThr=0.0, warn=False, warmstart=phi, blas_threads=None)
            out["steady_per_sweep_ms"] = 1e3 * (time.perf_counter() - t1) / maxit
        out["steady_gflops"] = fl / (out["steady_per_sweep_ms"] / 1e3) / 1e9
    print("RESULT " + json.dumps(out))


THREADS = 1
REPS = 3  # runs of each side of the (a) comparisons; the fastest counts
OTT_PYTHON = os.path.join(HERE, ".venv-ott", "bin", "python")  # see bench/README.md


def _env(threads):
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    return env


def _run(spec, timeout=900):
    python = OTT_PYTHON if spec.get("side") == "ott" else sys.executable
    cmd = [python, os.path.abspath(__file__), "--worker", json.dumps(spec)]
    t = time.perf_counter()
    env = _env(spec.get("threads", THREADS))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise RuntimeError(
        "worker failed after %.1fs: %s\n%s" % (time.perf_counter() - t, p.stdout[-2000:], p.stderr[-4000:])
    )


def machine_rates():
    import numpy as np

    rng = np.random.default_rng(0)
    out = {}
    for n in (1000, 150):
        A = rng.standard_normal((n, n))
        B = rng.standard_normal((n, n))
        A @ B
        best = float("inf")
        reps = 5 if n == 1000 else 200
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(reps):
                A @ B
            best = min(best, (time.perf_counter() - t) / reps)
        out["matmul_%d_gflops" % n] = 2.0 * n**3 / best / 1e9
    # matrix-vector products over 16 different 1000 x 1000 matrices (128 MB: from
    # main memory, as the kernels of a long chain), then over one (from cache)
    As = [rng.standard_normal((1000, 1000)) for _ in range(16)]
    x = rng.standard_normal(1000)
    for name, mats in (("matvec_1000_gflops", As), ("matvec_1000_cached_gflops", As[:1] * 16)):
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            for _ in range(4):
                for A in mats:
                    A @ x
            best = min(best, (time.perf_counter() - t) / (4 * len(mats)))
        out[name] = 2.0 * 1000**2 / best / 1e9
    return out


def _paired(spec):
    """Structured and dense sides of ``spec``, REPS runs each, alternating; the fastest of each counts."""
    runs = {"structured": [], "dense": []}
    for _ in range(REPS):
        for side in runs:
            runs[side].append(_run(dict(spec, side=side)))
    rs, rd = (min(runs[side], key=lambda r: r["time_s"]) for side in ("structured", "dense"))
    rs["times_s"] = [r["time_s"] for r in runs["structured"]]
    rd["times_s"] = [r["time_s"] for r in runs["dense"]]
    rs["speedup_vs_dense"] = rd["time_s"] / rs["time_s"]
    rs["value_rel_diff_vs_dense"] = abs(rs["value"] - rd["value"]) / abs(rd["value"])
    rs["same_niter_as_dense"] = rs["niter"] == rd["niter"]
    return rs, rd


def main(quick=False, cases=None):
    import numpy as np

    def want(case):
        return cases is None or case in cases

    t_start = time.perf_counter()
    rates = _run({"rates": True})
    results = {"rates": rates, "cases": []}
    if quick:
        a_n, a2_n, a2_it, b_n, b_it, chain_ks, chain_n, circ = 50, 80, 100, 500, 10, (5, 10), 300, (6, 200, 100)
        a3_it, e_n = 100, 20
    else:
        a_n, a2_n, a2_it, b_n, b_it, chain_ks, chain_n, circ = (
            150,
            300,
            500,
            2000,
            60,
            (10, 20, 50),
            1000,
            (10, 500, 6000),
        )
        a3_it, e_n = 300, 60
    rows = []

    # (a) complete graph k = 3 against the dense tensor, with 1 and 2 BLAS threads;
    # (a2) the same at n = 300 (216 MB dense tensor), an equal fixed budget of sweeps;
    # (a3) eps = 0.01 at n = 150, an equal fixed budget of sweeps.
    # Each pair is run REPS times, alternating sides; the fastest run of each side counts.
    sa = dict(case="a", k=3, n=a_n, reg=0.1, thr=1e-6, maxit=20000, graph="complete")
    specs = [
        sa,
        dict(sa, case="a-2t", threads=2),
        dict(sa, case="a2", n=a2_n, maxit=a2_it),
        dict(sa, case="a3", reg=0.01, maxit=a3_it),
    ]
    best_a = None
    for spec in [sp for sp in specs if want(sp["case"])]:
        rs, rd = _paired(spec)
        results["cases"] += [rs, rd]
        rows += [rs, rd]
        if spec is sa:
            best_a = rs

    # (e) complete graph on k = 4 nodes (contraction engine) against the dense tensor, fixed sweeps
    if want("e"):
        se = dict(case="e", k=4, n=e_n, reg=0.1, thr=0.0, maxit=100, graph="complete")
        rs, rd = _paired(se)
        results["cases"] += [rs, rd]
        rows += [rs, rd]

    # (a-ott) case (a) by OTT-JAX MMSinkhorn, once (its solve takes ~40 s), when its venv exists
    if want("a-ott") and os.path.exists(OTT_PYTHON):
        ro = _run(dict(sa, case="a-ott", side="ott"))
        if best_a is not None:
            ro["ott_over_structured"] = ro["time_s"] / best_a["time_s"]
            ro["value_abs_diff_vs_structured"] = abs(ro["value"] - best_a["value"])
        results["cases"].append(ro)
        rows.append(ro)

    # (b) complete graph k = 3 beyond the dense reach
    if want("b"):
        sb = dict(case="b", k=3, n=b_n, reg=1.0, thr=1e-4, maxit=b_it, graph="complete", side="structured")
        rb = _run(sb, timeout=1200)
        rb["dense_tensor_would_need_gib"] = 8.0 * b_n**3 / 2**30
        results["cases"].append(rb)
        rows.append(rb)

    # (c) chains: per-sweep time (fixed number of sweeps), then one full solve
    if want("c"):
        for k in chain_ks:
            sc = dict(case="c", k=k, n=chain_n, reg=0.1, thr=0.0, maxit=20, graph="chain", side="structured", steady=5)
            rc = _run(sc)
            results["cases"].append(rc)
            rows.append(rc)
    if want("c-full"):
        sc = dict(
            case="c-full", k=chain_ks[0], n=chain_n, reg=0.1, thr=1e-6, maxit=3000, graph="chain", side="structured"
        )
        rc = _run(sc)
        results["cases"].append(rc)
        rows.append(rc)

    # (d) circle
    if want("d"):
        sd = dict(case="d", k=circ[0], n=circ[1], reg=0.1, thr=1e-6, maxit=circ[2], graph="circle", side="structured")
        rd2 = _run(sd)
        results["cases"].append(rd2)
        rows.append(rd2)

    # fractions of the reference rates
    for r in results["cases"]:
        if r["engine"] == "cycle":
            r["fraction_of_matmul"] = r["gflops"] / rates["matmul_1000_gflops"]
        elif r["engine"] == "tree":
            r["fraction_of_matvec"] = r.get("steady_gflops", r["gflops"]) / rates["matvec_1000_gflops"]
    chain_rows = [r for r in results["cases"] if r["case"] == "c"]
    if len(chain_rows) >= 2:
        results["chain_ms_per_edge_per_sweep"] = [r["steady_per_sweep_ms"] / (r["k"] - 1) for r in chain_rows]

    results["meta"] = dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        python=platform.python_version(),
        numpy=np.__version__,
        machine=platform.machine(),
        cpus=os.cpu_count(),
        quick=quick,
        blas_threads=THREADS,
        total_s=time.perf_counter() - t_start,
    )
    _print_table(rows, rates, results)
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "bench_graph_quick.json" if quick else "bench_graph.json")
    total_s = results["meta"]["total_s"]
    if cases is not None and os.path.exists(path):
        # a partial run replaces its own cases in the saved results (ratios stay within one run)
        with open(path) as f:
            saved = json.load(f)
        done = {r["case"] for r in results["cases"]}
        for r in results["cases"]:
            r["partial_run"] = dict(results["meta"], rates=rates)
        saved["cases"] = [r for r in saved["cases"] if r["case"] not in done] + results["cases"]
        results = saved
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print("saved", os.path.relpath(path, ROOT), "after %.0f s" % total_s)
    report(os.path.splitext(os.path.basename(path))[0], results)


def _notes(r):
    """The result column of a case: ratios to the dense path / OTT-JAX, memory, fraction of the machine's rates."""
    notes = []
    if "speedup_vs_dense" in r:
        notes.append(
            "speed-up over dense %.1fx, value rel. diff %.1e, same sweeps: %s"
            % (r["speedup_vs_dense"], r["value_rel_diff_vs_dense"], r["same_niter_as_dense"])
        )
    if "ott_over_structured" in r:
        notes.append(
            "the cycle engine (row a) is %.0fx faster; value abs. diff %.1e"
            % (r["ott_over_structured"], r["value_abs_diff_vs_structured"])
        )
    if "threads" in r:
        notes.append("%d BLAS threads" % r["threads"])
    if "dense_tensor_would_need_gib" in r:
        notes.append("dense tensor: %.0f GiB" % r["dense_tensor_would_need_gib"])
    if "fraction_of_matmul" in r:
        notes.append("%.0f%% of matmul rate" % (100 * r["fraction_of_matmul"]))
    if "steady_per_sweep_ms" in r:
        notes.append("first %d sweeps; then %.2f ms/sweep" % (r["niter"], r["steady_per_sweep_ms"]))
    if "fraction_of_matvec" in r:
        notes.append("%.0f%% of matvec rate" % (100 * r["fraction_of_matvec"]))
    return notes


def report(name, results):
    """Write ``bench/results/<name>.md`` from the saved results (rates, cases, meta)."""
    from _report import md_table, write_markdown

    runs = {}
    for r in results["cases"]:
        run = r.get("partial_run", dict(results["meta"], rates=results["rates"]))
        runs.setdefault(run["date"], run)
    order = sorted(runs)
    rows = []
    for r in results["cases"]:
        if r["side"] == "dense" and "speedup_vs_dense" not in r:
            continue  # the dense side of a comparison: its ratio is on the structured row
        run = order.index(r.get("partial_run", results["meta"])["date"]) + 1
        rows.append(
            [
                r["case"],
                r["graph"],
                r["engine"],
                r["k"],
                r["n"],
                "%g" % r["reg"],
                "%d%s" % (r["niter"], " (converged)" if r["converged"] else ""),
                "%.3g" % r["per_sweep_ms"],
                "%.0f" % r["peak_increase_mib"],
                "; ".join(_notes(r)),
                run,
            ]
        )
    rates = [
        "run %d (%s): matmul 1000² %.1f GFLOP/s, matvec 1000² from memory %.1f GFLOP/s"
        % (i + 1, d, runs[d]["rates"]["matmul_1000_gflops"], runs[d]["rates"]["matvec_1000_gflops"])
        for i, d in enumerate(order)
    ]
    table = md_table(
        ["case", "graph", "engine", "k", "n", "ε", "sweeps", "ms/sweep", "peak MiB added", "result", "run"],
        rows,
        align="lllrrrrrrll",
    )
    write_markdown(
        name,
        "Graph-structured costs",
        [
            "The pairwise (graph) engines against the dense path on the same problem (and OTT-JAX `MMSinkhorn` for "
            "case a-ott), and sizes the dense path cannot hold; float64, point clouds N(0, I₂), %d BLAS thread(s) "
            "unless said, each comparison run alternately and the fastest kept, on the shared 2-core machine. Ratios "
            "are within one run; reference rates of each run: %s."
            % (results["meta"]["blas_threads"], "; ".join(rates)),
            table,
        ],
        source="`python bench/bench_graph.py` (`--cases a,a-ott` reruns some cases into the same JSON)",
    )


def _print_table(rows, rates, results):
    print(
        "BLAS threads per run: %d; +peak_MiB: peak resident memory of the solve above the process before it" % THREADS
    )
    print(
        "reference rates (GFLOP/s): matmul 1000x1000 %.1f, matmul 150x150 %.1f, matvec 1000x1000 %.1f "
        "(16 matrices, main memory; %.1f from cache)"
        % (
            rates["matmul_1000_gflops"],
            rates["matmul_150_gflops"],
            rates["matvec_1000_gflops"],
            rates["matvec_1000_cached_gflops"],
        )
    )
    cols = ("case", "graph", "engine", "k", "n", "reg", "time_s", "niter", "conv", "ms/sweep", "+peak_MiB", "value")
    hdr = "%-6s %-8s %-11s %3s %5s %6s %8s %6s %5s %9s %10s %10s %8s %s" % (cols + ("GFLOP/s", "notes"))
    print(hdr)
    print("-" * len(hdr))
    for r in rows:
        notes = _notes(r)
        vals = (r["case"], r["graph"], r["engine"], r["k"], r["n"], r["reg"], r["time_s"], r["niter"])
        vals += ("yes" if r["converged"] else "no", r["per_sweep_ms"], r["peak_increase_mib"], r["value"], r["gflops"])
        print("%-6s %-8s %-11s %3d %5d %6g %8.2f %6d %5s %9.2f %10.0f %10.5g %8.1f" % vals, "; ".join(notes))
    if "chain_ms_per_edge_per_sweep" in results:
        print(
            "chain: ms per edge per sweep:",
            ", ".join("%.2f" % v for v in results["chain_ms_per_edge_per_sweep"]),
            "(steady state; constant = linear in k)",
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (< 1 min)")
    ap.add_argument(
        "--threads", type=int, default=1, help="BLAS threads of every timed run (default 1: the machine is shared)"
    )
    ap.add_argument(
        "--cases",
        default=None,
        help="comma-separated cases to run (a, a-2t, a2, a3, a-ott, b, c, c-full, d, e); they replace "
        "their rows in the saved JSON (default: all)",
    )
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--render", action="store_true", help="rewrite bench/results/bench_graph.md from the JSON")
    args = ap.parse_args()
    if args.render:
        with open(os.path.join(HERE, "results", "bench_graph.json")) as f:
            report("bench_graph", json.load(f))
    elif args.worker is not None:
        worker(json.loads(args.worker))
    else:
        THREADS = args.threads
        main(quick=args.quick, cases=None if args.cases is None else set(args.cases.split(",")))
