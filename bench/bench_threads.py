# -*- coding: utf-8 -*-
"""Sweeps per second against n with 1 and 2 BLAS threads, dense and cycle engines.

Run::

    python bench/bench_threads.py           # ~3 min
    python bench/bench_threads.py --quick   # ~40 s

The dense engine (k = 3, ``cost_tensor`` of point clouds) and the cycle engine (circle of
k = 5 clouds; its sweep is ``n × n`` matrix products) run a fixed number of cyclic sweeps at
ε = 0.1 on an engine built once, inside ``ot_multimarginal.blas_threads(t)`` for t = 1 and 2,
alternating, best of 3 (the machine is shared). The ratio ``2 threads / 1 thread`` of the
sweep rates decides the ``blas_threads='auto'`` rule of the solvers (one thread below
``AUTO_SINGLE_THREAD_FLOPS``). Writes ``bench/results/bench_threads.json`` and ``.png``
and its results page ``bench_threads.md`` (``--render``: rewrite the page from the JSON).
"""
# License: MIT License

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from _report import RESULTS, load_results, md_table, pyplot, save_results, write_markdown  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal._threads import _largest_product_flops  # noqa: E402
from ot_multimarginal.sinkhorn import make_engine, solve_potentials  # noqa: E402


def _engine(kind, n, reg=0.1):
    rng = np.random.default_rng(0)
    if kind == "dense":
        C = om.cost_tensor([rng.standard_normal((n, 2)) for _ in range(3)])
    else:
        C = om.PairwiseCost.from_point_clouds([rng.standard_normal((n, 2)) for _ in range(5)], graph="circle")
    engine, a_s = make_engine(None, C, reg)
    solve_potentials(engine, a_s, numItermax=3, stopThr=0, warn=False)  # absorb, warm caches
    return engine, a_s


def _rate(engine, a_s, threads, sweeps):
    with om.blas_threads(threads):
        t0 = time.perf_counter()
        solve_potentials(engine, a_s, numItermax=sweeps, stopThr=0, warn=False, blas_threads=None)
        return sweeps / (time.perf_counter() - t0)


def report(name, result):
    """Write ``bench/results/<name>.md`` from the results dict (rows, load)."""
    rows = result["rows"]
    table = md_table(
        ["engine", "n", "largest product (Mflop)", "sweeps/s, 1 thread", "sweeps/s, 2 threads", "2 / 1"],
        [
            [
                r["engine"],
                r["n"],
                "%.2g" % (r["flops_largest_product"] / 1e6),
                "%.1f" % r["rate_1"],
                "%.1f" % r["rate_2"],
                "%.2f" % r["ratio"],
            ]
            for r in rows
        ],
        align="lrrrrr",
    )
    write_markdown(
        name,
        "BLAS threads: 1 against 2 (load %.1f)" % result["load"][0],
        [
            "Sweeps per second of the dense engine (k = 3) and the cycle engine (circle, k = 5) at ε = 0.1 "
            "inside `blas_threads(1)` and `blas_threads(2)`, alternating, best of 3, on the project's shared "
            "2-core machine (load average %.2f / %.2f / %.2f at the end of the run). The ratio 2 / 1 sets "
            "the `blas_threads='auto'` rule: one thread below `AUTO_SINGLE_THREAD_FLOPS` (2·400³ flops in "
            "a sweep's largest product)." % tuple(result["load"]),
            table,
        ],
        source="`python bench/bench_threads.py`",
        figures=[(name + ".png", "sweeps per second against n")]
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
    sizes = {"dense": [20, 50, 100, 150], "cycle": [50, 100, 200, 400, 800]}
    if args.quick:
        sizes = {"dense": [20, 60], "cycle": [50, 200]}
    rows = []
    for kind, ns in sizes.items():
        for n in ns:
            engine, a_s = _engine(kind, n)
            t_one = 1.0 / _rate(engine, a_s, 1, 2)
            sweeps = int(min(200, max(3, 1.0 / t_one)))  # about a second per measurement
            r = {1: 0.0, 2: 0.0}
            for _ in range(3):
                for t in (1, 2):
                    r[t] = max(r[t], _rate(engine, a_s, t, sweeps))
            rows.append(
                dict(
                    engine=kind,
                    n=n,
                    sweeps=sweeps,
                    rate_1=r[1],
                    rate_2=r[2],
                    ratio=r[2] / r[1],
                    flops_largest_product=_largest_product_flops(engine),
                )
            )
            print(rows[-1], flush=True)
    name = "bench_threads_quick" if args.quick else "bench_threads"
    load = save_results(name, rows)
    report(name, dict(rows=rows, load=load))
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for kind, style in (("dense", "o-"), ("cycle", "s-")):
        rs = [r for r in rows if r["engine"] == kind]
        for t, ls in ((1, ""), (2, "--")):
            ax.plot(
                [r["n"] for r in rs],
                [r["rate_%d" % t] for r in rs],
                style[:1] + (ls or "-"),
                label="%s, %d thread%s" % (kind, t, "s" * (t > 1)),
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n")
    ax.set_ylabel("sweeps / s")
    ax.set_title("load %.1f on 2 cores" % load[0])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, name + ".png"), dpi=120)


if __name__ == "__main__":
    main()
