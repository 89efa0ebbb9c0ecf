# -*- coding: utf-8 -*-
"""Iterations and time to a marginal error of 1e-3 / 1e-4: cyclic, greedy, accelerated Sinkhorn.

Problems (the note's §5 family): C ~ U[0,1] of shape n^k, weights
(U[0,1] + 0.1) normalised, seed 0; k = 3 (n = 10) and k = 4 (n = 6), several
η. For each (problem, η, method, tolerance) one run from g = log a, timed
(solve only, engine built before). Also the time of the exact LP (HiGHS
through scipy.optimize.linprog on the same problem).

What is counted
    ``iters``  the loop's own iterations (table: "sweeps" for cyclic): cyclic = sweeps over the k blocks
               (error checked every 10 sweeps), greedy = block updates,
               accelerated = iterations;
    ``passes`` engine work in units of "all k marginals once": cyclic: one
               per sweep (k single marginals) plus one per error check (every
               10 sweeps),
               greedy 1 per iteration, accelerated 3 per iteration.

Outputs: ``bench/results/bench_accelerated.json``,
``bench/results/bench_accelerated.png`` (error vs iterations and vs passes
at the smallest η), the results page ``bench/results/bench_accelerated.md``.
Run from the repository root: ``python bench/bench_accelerated.py`` (about 2–4 minutes on 2 cores;
``--render`` rewrites the page from the JSON).
Timings are wall-clock on a shared machine: compare ratios, not absolutes.
"""

import json
import os
import platform
import sys
import time

import numpy as np
from scipy import sparse
from scipy.optimize import linprog

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _report import help_and_exit, load_results, md_table, write_markdown  # noqa: E402

from ot_multimarginal.sinkhorn import make_engine, solve_potentials  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results")

PROBLEMS = [(3, 10), (4, 6)]
ETAS = [0.01, 0.002, 0.001, 0.0005]
TOLS = [1e-3, 1e-4]
METHODS = [
    ("cyclic", "sinkhorn_log", {}),
    ("greedy", "sinkhorn_greedy", {}),
    ("accelerated", "sinkhorn_accelerated", {}),
]
NUMITERMAX = {"cyclic": 20000, "greedy": 60000, "accelerated": 20000}


def problem(k, n, seed=0):
    rng = np.random.RandomState(seed)
    M = rng.rand(*([n] * k))
    a_s = []
    for _ in range(k):
        a = rng.rand(n) + 0.1
        a_s.append(a / a.sum())
    return a_s, M


def lp_time(a_s, M):
    """Wall time of HiGHS on the full LP (n^k variables, Σ n_i equality rows)."""
    t0 = time.perf_counter()
    shape = M.shape
    flat = np.arange(M.size).reshape(shape)
    rows, cols, b, r0 = [], [], [], 0
    for i, n in enumerate(shape):
        idx = np.moveaxis(flat, i, 0).reshape(n, -1)
        rows.append(np.repeat(np.arange(r0, r0 + n), idx.shape[1]))
        cols.append(idx.ravel())
        b.append(a_s[i])
        r0 += n
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    A = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(r0, M.size))
    res = linprog(M.ravel(), A_eq=A, b_eq=np.concatenate(b), bounds=(0, None), method="highs")
    return time.perf_counter() - t0, float(res.fun), res.status


def passes(name, info, k):
    if name == "cyclic":
        return info["niter"] + len(info["err"])  # sweeps + full-marginal checks
    if name == "greedy":
        return info["niter"] + 1
    return info.get("n_passes", 3 * info["niter"] + 1)


def run_one(a_s, M, eta, method, kwargs, tol, numItermax):
    engine, a = make_engine(a_s, M, eta)
    t0 = time.perf_counter()
    g, info = solve_potentials(engine, a, method, numItermax=numItermax, stopThr=tol, warn=False, **kwargs)
    return time.perf_counter() - t0, info


def report(name, result):
    """Write ``bench/results/<name>.md`` from the results dict (meta, lp, records)."""
    records, lps = result["records"], result["lp"]
    rows = []
    for k, n in PROBLEMS:
        for eta in ETAS:
            for tol in TOLS:
                sel = {r["method"]: r for r in records if (r["k"], r["n"], r["eta"], r["tol"]) == (k, n, eta, tol)}
                if len(sel) < 3:
                    continue
                c, g, a = sel["cyclic"], sel["greedy"], sel["accelerated"]

                def cell(r, show_passes=False):
                    s = "%d" % r["iters"] + (" / %d" % r["passes"] if show_passes else "")
                    s += " (%.2f s)" % r["time_s"]
                    return s if r["converged"] else s + " **not conv.**"

                rows.append(
                    [
                        k,
                        n,
                        "%g" % eta,
                        "%.0e" % tol,
                        cell(c),
                        cell(g),
                        cell(a, True),
                        "%.2f" % (a["iters"] / max(g["iters"], 1)),
                        "%.2f" % (a["time_s"] / max(g["time_s"], 1e-12)),
                        "%.3f s" % lps["k%dn%d" % (k, n)]["time_s"],
                    ]
                )
    table = md_table(
        [
            "k",
            "n",
            "η",
            "tol",
            "cyclic sweeps (time)",
            "greedy iters (time)",
            "accelerated iters / passes (time)",
            "acc / greedy iters",
            "acc / greedy time",
            "LP time",
        ],
        rows,
        align="rrrrrrrrrr",
    )
    meta = result["meta"]
    write_markdown(
        name,
        "Cyclic, greedy and accelerated Sinkhorn",
        [
            "Iterations (and time) to reach the L1 marginal error `tol`: %s. One run per cell from g = log a, "
            'engine built before; "passes" counts engine work in units of all k marginals once (the '
            "accelerated loop costs 3 per iteration). The LP is the exact problem solved by HiGHS. Timings "
            "are wall-clock on the shared 2-core machine (%s): compare the ratios." % (meta["problems"], meta["date"]),
            table,
        ],
        source="`python bench/bench_accelerated.py`",
        figures=[
            ("bench_accelerated.png", "marginal error against iterations for the cyclic, greedy and accelerated loops")
        ]
        if os.path.exists(os.path.join(OUT, name + ".png"))
        else (),
    )


def main():
    help_and_exit(__doc__)
    if sys.argv[1:2] == ["--render"]:
        return report("bench_accelerated", load_results("bench_accelerated"))
    os.makedirs(OUT, exist_ok=True)
    t_start = time.perf_counter()
    records, curves, lps = [], {}, {}
    for k, n in PROBLEMS:
        a_s, M = problem(k, n)
        t_lp, lp_val, status = lp_time(a_s, M)
        lps["k%dn%d" % (k, n)] = {"time_s": t_lp, "value": lp_val, "status": status, "n_variables": int(M.size)}
        print("LP k=%d n=%d: %.3f s (value %.5f)" % (k, n, t_lp, lp_val), flush=True)
        for eta in ETAS:
            for name, method, kw in METHODS:
                for tol in TOLS:
                    t, info = run_one(a_s, M, eta, method, kw, tol, NUMITERMAX[name])
                    rec = {
                        "k": k,
                        "n": n,
                        "eta": eta,
                        "method": name,
                        "tol": tol,
                        "converged": bool(info["converged"]),
                        "iters": int(info["niter"]),
                        "passes": float(passes(name, info, k)),
                        "time_s": t,
                        "final_err": float(info["err"][-1]),
                    }
                    if name == "accelerated":
                        rec["n_accepted"] = int(info["n_accepted"])
                    records.append(rec)
                    flag = "" if rec["converged"] else "NOT CONVERGED"
                    print(
                        "k=%d n=%d eta=%-6g %-11s tol=%.0e iters=%6d passes=%8.1f time=%6.2fs %s"
                        % (k, n, eta, name, tol, rec["iters"], rec["passes"], t, flag),
                        flush=True,
                    )
                    if tol == min(TOLS) and eta == min(ETAS):
                        step = 10 if name == "cyclic" else 1
                        its = [step * i for i in range(len(info["err"]))]
                        per = {"cyclic": 1.1, "greedy": 1.0, "accelerated": 3.0}[name]
                        curves["k%dn%d/%s" % (k, n, name)] = {
                            "iters": its,
                            "passes": [per * i for i in its],
                            "err": info["err"],
                        }
    total = time.perf_counter() - t_start

    # ratios accelerated / greedy
    ratios = []
    for k, n in PROBLEMS:
        for eta in ETAS:
            for tol in TOLS:
                sel = {r["method"]: r for r in records if (r["k"], r["n"], r["eta"], r["tol"]) == (k, n, eta, tol)}
                acc, gre, cyc = sel["accelerated"], sel["greedy"], sel["cyclic"]
                ratios.append(
                    {
                        "k": k,
                        "n": n,
                        "eta": eta,
                        "tol": tol,
                        "iters_acc_over_greedy": acc["iters"] / max(gre["iters"], 1),
                        "passes_acc_over_greedy": acc["passes"] / max(gre["passes"], 1),
                        "time_acc_over_greedy": acc["time_s"] / max(gre["time_s"], 1e-12),
                        "time_acc_over_cyclic": acc["time_s"] / max(cyc["time_s"], 1e-12),
                        "all_converged": acc["converged"] and gre["converged"] and cyc["converged"],
                    }
                )

    meta = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "total_time_s": total,
        "note": "shared 2-core machine; one run per cell; timings noisy, compare ratios",
        "problems": "C ~ U[0,1], weights (U+0.1) normalised, seed 0, dense engine (mode='scaling'), float64",
    }
    thin = {}
    for key, cv in curves.items():  # at most ~400 points per curve in the JSON (the PNG has all)
        stride = max(1, len(cv["err"]) // 400)
        keep = list(range(0, len(cv["err"]), stride))
        if keep[-1] != len(cv["err"]) - 1:
            keep.append(len(cv["err"]) - 1)
        thin[key] = {name: [vals[i] for i in keep] for name, vals in cv.items()}
    with open(os.path.join(OUT, "bench_accelerated.json"), "w") as f:
        json.dump({"meta": meta, "lp": lps, "records": records, "ratios": ratios, "curves": thin}, f, indent=1)

    report("bench_accelerated", {"meta": meta, "lp": lps, "records": records})
    print("\ntotal bench time %.1f s" % total)

    # figure
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PROBLEMS), 2, figsize=(11, 4.2 * len(PROBLEMS)), squeeze=False)
    for row, (k, n) in enumerate(PROBLEMS):
        for col, xkey in enumerate(["iters", "passes"]):
            ax = axes[row][col]
            for name, _, _ in METHODS:
                cv = curves.get("k%dn%d/%s" % (k, n, name))
                if cv:
                    label = "cyclic (x: sweeps)" if (name == "cyclic" and xkey == "iters") else name
                    ax.semilogy(cv[xkey], cv["err"], label=label, lw=1)
            for tol in TOLS:
                ax.axhline(tol, color="gray", lw=0.5, ls="--")
            ax.set_xlabel("iterations" if xkey == "iters" else "engine passes (all k marginals)")
            ax.set_ylabel("marginal error Σ‖r_i − a_i‖₁")
            ax.set_title("k=%d, n=%d, η=%g" % (k, n, min(ETAS)))
            ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "bench_accelerated.png"), dpi=110)
    print("wrote %s" % os.path.join(OUT, "bench_accelerated.{json,png}"))


if __name__ == "__main__":
    main()
