# -*- coding: utf-8 -*-
"""Sampling from factored plans: the vectorised elimination sampler against the per-prefix sequential one.

Run::

    python bench/bench_sampling.py           # circle k=5 n=200, complete k=4 n=60, ~2 min
    python bench/bench_sampling.py --quick   # smaller, ~20 s

Cases: circle (cycle engine) of k = 5 clouds with n = 200 points and complete graph (contraction
engine) on k = 4 clouds with n = 60, ε = 0.1, uniform weights, 30 Sinkhorn sweeps then rounded
(sampling only needs the potentials). ``FactoredPlan.sample(m, method=...)``:

- ``'sequential'``: one engine pass per distinct prefix (the only path before; issue 15 measured
  ~3.3 ms per sample on the circle case), timed on ``m_seq`` samples (almost every prefix is
  distinct, so the time per sample does not depend on m);
- ``'elimination'``: tables by variable elimination once, then every conditional of the batch by
  a gather, timed on m = 10,000 samples (tables included).

The speed-up is the ratio of the times per sample. One BLAS thread. Writes
``bench/results/bench_sampling.json``, ``.png`` and the results page ``.md`` (``--render``: the page from the JSON).
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


def _plan(graph, k, n, reg=0.1, seed=0):
    rng = np.random.default_rng(seed)
    X_s = [rng.standard_normal((n, 2)) for _ in range(k)]
    cost = om.PairwiseCost.from_point_clouds(X_s, graph=graph)
    P = om.emot_sinkhorn(None, cost, reg, numItermax=30, warn=False)
    return P.round()


def report(name, result):
    """Write ``bench/results/<name>.md`` from the results dict (rows, load)."""
    rows = [
        [
            r["graph"],
            r["k"],
            r["n"],
            r["engine"],
            "%.3f" % r["ms_per_sample_sequential"],
            "%.4f" % r["ms_per_sample_elimination"],
            "%.0f×" % r["speedup"],
            "%.0f → %.2f" % (10 * r["ms_per_sample_sequential"], 10 * r["ms_per_sample_elimination"]),
        ]
        for r in result["rows"]
    ]
    table = md_table(
        [
            "graph",
            "k",
            "n",
            "engine",
            "sequential ms/sample",
            "elimination ms/sample",
            "speed-up",
            "est. sample(10000): seq → elim (s)",
        ],
        rows,
        align="lrrlrrrr",
    )
    write_markdown(
        name,
        "Sampling from factored plans",
        [
            "`FactoredPlan.sample(m, method=...)`: the vectorised elimination sampler (tables once, then "
            "every conditional of the batch by a gather) against the per-prefix sequential one; ε = 0.1, "
            "uniform weights, one BLAS thread; load average %.2f / %.2f / %.2f on the shared 2-core "
            "machine." % tuple(result["load"]),
            table,
        ],
        source="`python bench/bench_sampling.py`",
        figures=[(name + ".png", "milliseconds per sample, sequential and elimination")]
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
    cases = [("circle", 5, 200), ("complete", 4, 60)] if not args.quick else [("circle", 5, 60), ("complete", 4, 20)]
    m_seq, m_elim = (300, 10000) if not args.quick else (100, 2000)
    rows = []
    for graph, k, n in cases:
        plan = _plan(graph, k, n)
        t0 = time.perf_counter()
        plan.sample(m_seq, random_state=0, method="sequential")
        t_seq = (time.perf_counter() - t0) / m_seq
        t0 = time.perf_counter()
        plan.sample(m_elim, random_state=0, method="elimination")
        t_elim = (time.perf_counter() - t0) / m_elim
        rows.append(
            dict(
                graph=graph,
                k=k,
                n=n,
                m_sequential=m_seq,
                m_elimination=m_elim,
                ms_per_sample_sequential=1e3 * t_seq,
                ms_per_sample_elimination=1e3 * t_elim,
                speedup=t_seq / t_elim,
                engine=type(plan.engine).__name__,
            )
        )
        print(rows[-1], flush=True)
    name = "bench_sampling_quick" if args.quick else "bench_sampling"
    load = save_results(name, rows)
    report(name, dict(rows=rows, load=load))
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5, 3.2))
    labels = ["%s k=%d n=%d" % (r["graph"], r["k"], r["n"]) for r in rows]
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["ms_per_sample_sequential"] for r in rows], 0.4, label="sequential (per prefix)")
    ax.bar(x + 0.2, [r["ms_per_sample_elimination"] for r in rows], 0.4, label="elimination (vectorised)")
    ax.set_yscale("log")
    ax.set_xticks(x)
    ax.set_xticklabels(labels)
    ax.set_ylabel("ms per sample")
    ax.legend(fontsize=8)
    ax.set_title("FactoredPlan.sample, 1 BLAS thread")
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, name + ".png"), dpi=120)


if __name__ == "__main__":
    main()
