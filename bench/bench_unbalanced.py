# -*- coding: utf-8 -*-
"""Unbalanced EMOT (``reg_m``): cost per sweep of the cyclic loop, unbalanced against balanced, same run.

Run::

    python bench/bench_unbalanced.py           # ~1-2 min
    python bench/bench_unbalanced.py --quick   # smaller, ~15 s
    python bench/bench_unbalanced.py --render bench_unbalanced   # rewrite the .md from the JSON

Cases, one per engine: dense k = 3 (stabilised scaling), chain k = 6 (tree engine), circle k = 5
(cycle engine), complete k = 4 (contraction engine); point clouds in 2-D, squared Euclidean costs,
ε = 0.5, uniform weights. Each case runs ``emot_sinkhorn2`` for a fixed number of sweeps
(``stopThr=0``) balanced and with ``reg_m=1`` on every marginal, interleaved, best of ``repeat``
runs; the ratio of the times per sweep is the overhead of the unbalanced update (O(n_i) per block
on top of the engine's marginal, and a translation step every 10 sweeps). Also the sweeps each
needs to reach ``stopThr=1e-8``. One BLAS thread. Writes ``bench/results/bench_unbalanced{,_quick}``
``.json``, ``.md`` and ``.png``.
"""
# License: MIT License

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _report import RESULTS, load_results, md_table, pyplot, save_results, write_markdown  # noqa: E402

import ot_multimarginal as om  # noqa: E402

REG = 0.5
RHO = 1.0


def _cost(graph, k, n, seed=0):
    rng = np.random.default_rng(seed)
    X_s = [rng.standard_normal((n, 2)) + 0.3 * i for i in range(k)]
    if graph == "dense":
        return om.empirical_cost(X_s)
    return om.PairwiseCost.from_point_clouds(X_s, graph=graph)


def _time(cost, sweeps, reg_m):
    t0 = time.perf_counter()
    om.emot_sinkhorn2(None, cost, REG, numItermax=sweeps, stopThr=0.0, warn=False, reg_m=reg_m, blas_threads=1)
    return (time.perf_counter() - t0) / sweeps


def _sweeps_to(cost, reg_m, tol=1e-8):
    _, log = om.emot_sinkhorn2(None, cost, REG, numItermax=20000, stopThr=tol, warn=False, reg_m=reg_m, log=True)
    return log["niter"], float(log["value"])


def report(name, result):
    """Write ``bench/results/<name>.md`` from the saved ``result`` (rows and load)."""
    rows = result["rows"]
    table = md_table(
        [
            "case",
            "engine",
            "ms/sweep balanced",
            "ms/sweep unbalanced (reg_m=%g)" % result.get("reg_m", RHO),
            "ratio",
            "sweeps to 1e-8 bal. / unbal.",
        ],
        [
            [
                "%s k=%d n=%d" % (r["graph"], r["k"], r["n"]),
                r["engine"],
                "%.3f" % r["ms_per_sweep_balanced"],
                "%.3f" % r["ms_per_sweep_unbalanced"],
                "%.2f" % r["ratio"],
                "%d / %d" % (r["sweeps_to_1e8_balanced"], r["sweeps_to_1e8_unbalanced"]),
            ]
            for r in rows
        ],
        align="llrrrr",
    )
    write_markdown(
        name,
        "Unbalanced EMOT: cost per sweep",
        [
            "The cyclic loop of `emot_sinkhorn2`, balanced against `reg_m=%g` on every marginal, in the same "
            "run, one case per engine; ε = %g, 2-D clouds, squared Euclidean costs, one BLAS thread; ms per "
            "sweep, best of %d interleaved runs of %d sweeps (`stopThr=0`); the last column, the sweeps to a "
            "stopping error of 1e-8. Load average %.2f / %.2f / %.2f on the shared 2-core machine: compare the "
            "ratios, not the absolute times."
            % (result.get("reg_m", RHO), result.get("reg", REG), rows[0]["repeat"], rows[0]["sweeps"], *result["load"]),
            table,
        ],
        source="`python bench/bench_unbalanced.py`",
        figures=[(name + ".png", "milliseconds per sweep, balanced and unbalanced")]
        if os.path.exists(os.path.join(RESULTS, name + ".png"))
        else (),
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--render", metavar="NAME", help="rewrite bench/results/NAME.md from NAME.json, no run")
    args = parser.parse_args()
    if args.render:
        return report(args.render, load_results(args.render))
    if args.quick:
        cases = [("dense", 3, 40), ("chain", 6, 100), ("circle", 5, 60), ("complete", 4, 20)]
        sweeps, repeat = 50, 2
    else:
        cases = [("dense", 3, 100), ("chain", 6, 400), ("circle", 5, 200), ("complete", 4, 50)]
        sweeps, repeat = 100, 3
    rows = []
    for graph, k, n in cases:
        cost = _cost(graph, k, n)
        _time(cost, 10, None)  # warm-up (caches, first allocations)
        tb, tu = [], []
        for _ in range(repeat):  # interleaved, so that load changes hit both
            tb.append(_time(cost, sweeps, None))
            tu.append(_time(cost, sweeps, RHO))
        nb, vb = _sweeps_to(cost, None)
        nu, vu = _sweeps_to(cost, RHO)
        engine = "DenseEngine" if graph == "dense" else type(cost.make_engine(REG)).__name__
        rows.append(
            dict(
                graph=graph,
                k=k,
                n=n,
                engine=engine,
                sweeps=sweeps,
                repeat=repeat,
                ms_per_sweep_balanced=1e3 * min(tb),
                ms_per_sweep_unbalanced=1e3 * min(tu),
                ratio=min(tu) / min(tb),
                sweeps_to_1e8_balanced=nb,
                sweeps_to_1e8_unbalanced=nu,
                value_balanced=vb,
                value_unbalanced=vu,
            )
        )
        print(rows[-1], flush=True)
    name = "bench_unbalanced_quick" if args.quick else "bench_unbalanced"
    load = save_results(name, rows, reg=REG, reg_m=RHO)
    plot(name, rows)
    report(name, dict(rows=rows, load=load, reg=REG, reg_m=RHO))


def plot(name, rows):
    """The bar chart of the times per sweep (``.png``)."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    labels = ["%s\nk=%d n=%d" % (r["graph"], r["k"], r["n"]) for r in rows]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["ms_per_sweep_balanced"] for r in rows], 0.4, label="balanced")
    ax.bar(x + 0.2, [r["ms_per_sweep_unbalanced"] for r in rows], 0.4, label="unbalanced (reg_m=%g)" % RHO)
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("ms per sweep")
    ax.legend(fontsize=8)
    ax.set_title("cyclic Sinkhorn, cost per sweep (1 BLAS thread)")
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, name + ".png"), dpi=120)


if __name__ == "__main__":
    main()
