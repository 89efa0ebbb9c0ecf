# -*- coding: utf-8 -*-
"""How far NeuralMGW's objective estimates of refits for the same A_ij disagree, against their standard error.

Beyond the exact engines each outer step of ``NeuralMGW`` is scored by an estimate (the NEMOT value of a warm
refit, over batches) and accepted or rejected against the best step by their *standard errors*: the evaluation's
noise over held-out batches. A refit is itself random (its batches, its SGD path). Here, on the path taken beyond
the engines but at a size the exact engines reach (``bench_mgw_large.batch_path``: k = 3 complete, n = 1000, the
start screened on a subsample and its axes taken from all the points), the first fit of ``NeuralMGW(0.1,
max_iter=1)`` is followed by warm refits (``max_iter_refit`` steps, different seeds) for (a) the same A_ij, (b) the
moments of the first fit's plan over batches (the closed-form update), (c) half of that step; each row gives the
estimate, its standard error and the exact objective of that A_ij (the exact EMOT plan of c_A, float64).

Writes bench/results/bench_mgw_refits.{json,md}.
Usage: python bench/bench_mgw_refits.py [--n=N] [--seeds=S] [--refits=R]
"""

import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _report import help_and_exit, md_table, save_results, write_markdown  # noqa: E402
from bench_mgw_large import _arg, batch_path, exact_objective, problem  # noqa: E402

NAME = "bench_mgw_refits"


def run(family, n, seed, refits):
    import torch

    from ot_multimarginal.neural import NeuralMGW

    torch.set_num_threads(1)
    X_s = problem(family, n, seed)
    with warnings.catch_warnings(), batch_path():
        warnings.simplefilter("ignore", UserWarning)
        est = NeuralMGW(0.1, random_state=seed, polish=False, max_iter=1).fit(X_s)
    pr = est._problem
    gen = torch.Generator().manual_seed(seed)

    def score(emot, A):  # the step's objective beyond the engines and the moments of its plan (over batches)
        with batch_path():
            obj, _, A_P, _, _, se = est._score(emot, A, list(pr.Z_s), list(pr.a_s), pr.edges, pr.S1, gen)
        return obj, se, A_P

    emot, A0 = est.emot_, list(est.A_used_)
    v, se, A_step = score(emot, A0)
    A_step = [M.to(A0[0].dtype) for M in A_step]
    cpu = torch.device("cpu")
    rows = [dict(family=family, n=n, seed=seed, A="start", fit="first fit", estimate=v, se=se)]
    candidates = [
        ("start", A0),
        ("full step", A_step),
        ("half step", [a + 0.5 * (m - a) for a, m in zip(A0, A_step)]),
    ]
    exact_values = {}
    for name, A in candidates:
        exact_values[name] = exact_objective(pr, A)
        for r in range(1, refits + 1):
            t0 = time.perf_counter()
            with warnings.catch_warnings(), batch_path():
                warnings.simplefilter("ignore", UserWarning)
                e2 = est._inner_fit(A, emot, r, list(pr.Z_s), list(pr.a_s), pr.edges, pr.reg, seed, cpu, 0)
            v, se, _ = score(e2, A)
            rows.append(dict(family=family, n=n, seed=seed, A=name, fit="refit %d" % r, estimate=v, se=se,
                             seconds=time.perf_counter() - t0))  # fmt: skip
    for r in rows:
        r["exact"] = exact_values[r["A"]]
    for r in rows:
        print("%-5s seed %d %-9s %-9s estimate %.5f (se %.1e) exact %.5f" % (r["family"], seed, r["A"], r["fit"],
              r["estimate"], r["se"], r["exact"]), flush=True)  # fmt: skip
    return rows


def render(rows):
    table = []
    for r in rows:
        rel = 100 * (r["estimate"] - r["exact"]) / abs(r["exact"])
        table.append([r["family"], r["seed"], r["A"], r["fit"], "%.5f" % r["estimate"], "%.1e" % r["se"],
                      "%.5f" % r["exact"], "%+.2f %%" % rel])  # fmt: skip
    summary = []
    for key in sorted({(r["family"], r["seed"], r["A"]) for r in rows}):
        group = [r for r in rows if (r["family"], r["seed"], r["A"]) == key]
        est = np.array([r["estimate"] for r in group])
        se = np.array([r["se"] for r in group])
        spread = est.max() - est.min()
        summary.append([key[0], key[1], key[2], len(group), "%.5f" % spread, "%.1e" % se.mean(),
                        "%.1f" % (spread / (2 * np.sqrt(2) * se.mean())), "%.5f" % group[0]["exact"]])  # fmt: skip
    blocks = [
        __doc__.split("\n\n")[1].replace("\n", " "),
        md_table(
            ["family", "seed", "A_ij", "fit", "estimate", "se", "exact objective", "estimate vs exact"],
            table,
            "lrllrrrr",
        ),  # fmt: skip
        "Per A_ij: the spread (largest minus smallest estimate of the fits for it) against the band the rejection "
        "rule treats as noise (two combined standard errors, 2·√2·se with the mean se).",
        md_table(
            ["family", "seed", "A_ij", "fits", "spread", "mean se", "spread / (2·√2·se)", "exact objective"],
            summary,
            "lrlrrrrr",
        ),  # fmt: skip
    ]
    write_markdown(NAME, "mgw_neural beyond the engines: refits for the same A_ij", blocks,
                   source="`python bench/bench_mgw_refits.py` (one thread; load average in the JSON)")  # fmt: skip


def main():
    help_and_exit(__doc__)
    n, seeds, refits = _arg("n", 1000), _arg("seeds", 1), _arg("refits", 2)
    rows = []
    for family in ("gauss", "box"):
        for seed in range(seeds):
            rows += run(family, n, seed, refits)
            save_results(NAME, rows)
    render(rows)


if __name__ == "__main__":
    main()
