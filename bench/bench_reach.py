# -*- coding: utf-8 -*-
"""Sizes each engine reaches: the largest n (equal sizes) under the default memory budget, and a sweep's time.

Run::

    python bench/bench_reach.py        # ~1 min

For each graph and k, the largest n for which the engine the solvers pick is built without a
``MemoryError`` under the default budget (half the available memory; read from the engines' own
checks: the dense tensor, the cycle engine's ~4k cached n x n products, the contraction engine's
largest elimination factor), and the time of one Sinkhorn sweep (one BLAS thread, ε = 0.1, point
clouds N(0, I_2)) at a size that runs in seconds, and the n at which a sweep takes about a second
(extrapolated with the engine's growth in n). Writes
``bench/results/bench_reach.json`` and the results page ``bench_reach.md`` (``--render``: the page
from the JSON).
"""
# License: MIT License

import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _report import help_and_exit, load_results, md_table, write_markdown  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal._validation import default_memory_budget  # noqa: E402
from ot_multimarginal.costs.graph import graph_edges  # noqa: E402
from ot_multimarginal.marginals.contraction import _MEMO_FACTORS, elimination_plan  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def _largest(fits, hi=10**7):
    lo = 2
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


def _sweep_time(graph, k, n, reg=0.1, sweeps=10):
    rng = np.random.default_rng(0)
    X_s = [rng.standard_normal((n, 2)) for _ in range(k)]
    if graph == "dense":
        C = om.cost_tensor(X_s)
    else:
        C = om.PairwiseCost.from_point_clouds(X_s, graph=graph)
    # the difference of two runs: the sweeps alone, not building the engine
    t0 = time.perf_counter()
    om.emot_sinkhorn(None, C, reg, numItermax=2, stopThr=0, warn=False)
    t1 = time.perf_counter()
    om.emot_sinkhorn(None, C, reg, numItermax=2 + sweeps, stopThr=0, warn=False)
    t2 = time.perf_counter()
    return max((t2 - t1) - (t1 - t0), 1e-6) / sweeps


def report(name, result):
    """Write ``bench/results/<name>.md`` from the results dict (rows, budget_bytes, load)."""
    rows = [
        [
            r["graph"],
            r["k"],
            r["engine"],
            r["n_max_memory"],
            "%.3g s at n = %d (grows as n^%d)" % (r["s_per_sweep"], r["n_timed"], r["growth"]),
            "~%d" % r["n_one_second_sweep"],
        ]
        for r in result["rows"]
    ]
    table = md_table(
        ["graph", "k", "engine", "largest n (memory)", "one sweep", "n at 1 s per sweep"], rows, align="lrlrll"
    )
    write_markdown(
        name,
        "Sizes each engine reaches",
        [
            "For each graph and k, the largest equal size n for which the engine the solvers pick is built "
            "without a `MemoryError` under the default memory budget (%.1f GiB: half the available memory), "
            "the time of one Sinkhorn sweep (one BLAS thread, ε = 0.1, point clouds N(0, I₂)) and the n at "
            "which a sweep takes about a second (extrapolated with the engine's growth in n). Load average "
            "%.2f / %.2f / %.2f on the shared 2-core machine."
            % ((result["budget_bytes"] / 2**30,) + tuple(result["load"])),
            table,
        ],
        source="`python bench/bench_reach.py`",
    )


def main():
    help_and_exit(__doc__)
    if sys.argv[1:2] == ["--render"]:
        return report("bench_reach", load_results("bench_reach"))
    budget = default_memory_budget()
    B = 8  # float64
    cases = [
        # graph, k, engine, largest-n rule, n timed, sweep growth
        ("dense", 3, "DenseEngine", lambda n: n**3 * B * 2 <= budget, 100, 3),
        ("dense", 4, "DenseEngine", lambda n: n**4 * B * 2 <= budget, 30, 4),
        ("chain", 10, "TreeEngine", lambda n: (10 - 1) * 2 * n * n * B <= budget, 1000, 2),
        ("complete", 3, "CycleEngine", lambda n: 4 * 3 * n * n * B <= budget, 300, 3),
        ("circle", 5, "CycleEngine", lambda n: 4 * 5 * n * n * B <= budget, 200, 3),
    ]
    for k in (4, 5):
        edges = graph_edges("complete", k)

        def fits(n, k=k, edges=edges):
            peak = max(elimination_plan((n,) * k, edges, (i,))[2] for i in range(k))
            return peak * B * (4 + _MEMO_FACTORS) <= budget

        cases.append(("complete", k, "ContractionEngine", fits, {4: 60, 5: 20}[k], k))
    rows = []
    for graph, k, engine, fits, n_t, growth in cases:
        n_max = _largest(fits, hi=10**6)
        t = _sweep_time(graph, k, n_t)
        n_1s = int(n_t * (1.0 / t) ** (1.0 / growth))  # a sweep grows like n^growth
        rows.append(
            dict(
                graph=graph,
                k=k,
                engine=engine,
                n_max_memory=n_max,
                n_timed=n_t,
                s_per_sweep=t,
                growth=growth,
                n_one_second_sweep=min(n_1s, n_max),
            )
        )
        print(rows[-1], flush=True)
    load = os.getloadavg()
    print("\nmemory budget %.1f GiB; load average %.2f %.2f %.2f (2 cores shared)\n" % ((budget / 2**30,) + load))
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "bench_reach.json"), "w") as f:
        json.dump(dict(rows=rows, budget_bytes=budget, load=load), f, indent=1)
    report("bench_reach", dict(rows=rows, budget_bytes=budget, load=load))


if __name__ == "__main__":
    main()
