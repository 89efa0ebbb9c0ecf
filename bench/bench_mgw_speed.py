# -*- coding: utf-8 -*-
"""Where ``mgw_sinkhorn`` spends its time at k = 3 (issue #22, Speed), before and after the skip of negligible entries.

Problem: isometric copies -- one 2-D cloud N(0, I) embedded in 2-D, 3-D and 5-D by random orthogonal maps
and translations, rows permuted -- on the complete graph, reg = 0.1, ``init='zero'`` (the alternation
itself, without the start screening) and the default ``init='auto'`` (the start screening: the product-plan
start and one principal-axes start whose signs are picked on two-cloud problems), one BLAS/torch thread.

Three parts, each run with the skip on and off (``OT_MULTIMARGINAL_NO_SKIP=1``: the exact log-domain
products everywhere, the code before this change) in the same run:

1. the public call ``mgw_sinkhorn2(..., log=True)``: wall time, outer steps, inner iterations;
2. the first 15 Newton iterations of the inner EMOT solve on the induced pairwise cost at the true matching
   (``gw_linear_cost`` with the cross moment of the permutation plan) from a cold start: the cost of an iteration;
3. the cost of one cyclic Sinkhorn sweep on that cost (triangle engine, scaled products: 1.5 products
   of ``n x n`` matrices a sweep) against a plain float64 matrix product of the same shape measured in
   the same run: the fraction of the machine's matmul rate that the sweep reaches.

Usage: ``python bench/bench_mgw_speed.py [--sizes 100 300 1000] [--baseline-max 300] [--auto-max 300] [--render]``
(the skip-off baselines are off by default; float32 rows up to ``--float32-max`` (300), ``init='auto'`` rows
(the start screening, float64 and float32) up to ``--auto-max`` (300), inner-solve and sweep rows up to
``--inner-max`` (300)). Each public row also gives the Newton (or sweep) iterations of every inner solve of the
call, all starts together, and the matching accuracy (worst edge).
``--sizes 300 1000`` runs in a few minutes on one thread.
"""
# License: MIT License

import argparse
import os
import sys
import time
from contextlib import contextmanager

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

NAME = "bench_mgw_speed"
REG = 0.1


def copies(n, seed=0, dtype=np.float64):
    """One 2-D cloud in 2/3/5-D by random orthogonal maps and translations, rows permuted (and the permutations)."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 2))
    Xs, perms = [], []
    for d in (2, 3, 5):
        Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
        E = np.zeros((n, d))
        E[:, :2] = Z
        X = E @ Q.T + rng.normal(size=d)
        p = rng.permutation(n)
        Xs.append(X[p].astype(dtype))
        perms.append(p)
    return Xs, perms


@contextmanager
def skip(on):
    old = os.environ.get("OT_MULTIMARGINAL_NO_SKIP")
    os.environ["OT_MULTIMARGINAL_NO_SKIP"] = "0" if on else "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["OT_MULTIMARGINAL_NO_SKIP"]
        else:
            os.environ["OT_MULTIMARGINAL_NO_SKIP"] = old


def matmul_gflops(n, reps=5):
    A = np.random.default_rng(1).normal(size=(n, n))
    B = A.T.copy()
    A @ B
    best = np.inf
    for _ in range(reps):
        t = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9, best


@contextmanager
def count_inner():
    """Count the iterations of every inner solve (all starts, the screening's two-cloud problems included)."""
    from ot_multimarginal import _gw_alternation as ga

    total = [0, 0]
    orig = ga.SinkhornInner.solve

    def solve(self, *args, **kwargs):
        out = orig(self, *args, **kwargs)
        total[0] += int(self.last_log.get("niter", 0))
        total[1] += 1
        return out

    ga.SinkhornInner.solve = solve
    try:
        yield total
    finally:
        ga.SinkhornInner.solve = orig


def accuracy(lg, perms):
    """Worst edge's share of points whose most likely partner is the true one."""
    import ot_multimarginal as om

    inv = [np.argsort(p) for p in perms]
    return min(
        float(np.mean(om.match_from_plan(lg["pairwise_plans"][(i, j)]) == inv[j][perms[i]])) for i, j in lg["edges"]
    )


def run_public(n, dtype, on, init="zero"):
    import ot_multimarginal as om

    Xs, perms = copies(n, dtype=dtype)
    with skip(on), count_inner() as total:
        t = time.perf_counter()
        val, lg = om.mgw_sinkhorn2(Xs, REG, init=init, log=True, warn=False)
        dt = time.perf_counter() - t
    inner = lg.get("inner_niter")
    return dict(
        part="public",
        n=n,
        dtype=np.dtype(dtype).name,
        init=init,
        starts=len(lg.get("candidates") or []),
        skip=on,
        time_s=dt,
        outer=int(lg["niter"]),
        inner=[int(v) for v in inner] if inner is not None else None,
        inner_all=total[0],
        solves_all=total[1],
        kept=lg["init"],
        accuracy=accuracy(lg, perms),
        converged=bool(lg["converged"]),
        value=float(val),
    )


def induced_cost(n):
    """The triangle's PairwiseCost at the true matching (what the alternation converges to)."""
    import ot_multimarginal as om
    from ot_multimarginal.gromov import gw_cross_moment, gw_linear_cost

    Xs, perms = copies(n)
    # normalise as mgw_sinkhorn does by default ('each': centred, unit second moment)
    Xs = [X - X.mean(0) for X in Xs]
    Xs = [X / np.sqrt((X**2).sum(1).mean()) for X in Xs]
    inv = [np.argsort(p) for p in perms]  # row r of X_i is point perms[i][r]
    edges = [(0, 1), (0, 2), (1, 2)]
    mats = []
    for i, j in edges:
        P = np.zeros((n, n))
        P[inv[i], inv[j]] = 1.0 / n
        A = gw_cross_moment(Xs[i], Xs[j], P)
        mats.append(gw_linear_cost(Xs[i], Xs[j], A))
    return om.PairwiseCost(edges, mats, shape=(n, n, n))


def run_inner(n, on, sweeps=20, newton_iters=15):
    import ot_multimarginal as om

    pc = induced_cost(n)
    a = [np.full(n, 1.0 / n)] * 3
    out = []
    with skip(on):
        t = time.perf_counter()
        _, lg = om.emot_sinkhorn(
            a, pc, REG, method="sinkhorn_newton", numItermax=newton_iters, stopThr=1e-6, log=True, warn=False
        )
        dt = time.perf_counter() - t
        out.append(
            dict(
                part="inner_newton",
                n=n,
                skip=on,
                time_s=dt,
                niter=int(lg["niter"]),
                per_iter_ms=1e3 * dt / max(int(lg["niter"]), 1),
                err=float(lg["err"][-1]),
            )
        )
        warm = lg["potentials"]
        # the sweeps alone: the difference of two calls (the call's fixed cost, value and checks, cancels)
        times = []
        for ns in (sweeps, 3 * sweeps):
            t = time.perf_counter()
            om.emot_sinkhorn(
                a, pc, REG, method="sinkhorn_log", numItermax=ns, stopThr=0.0, warmstart=warm, log=True, warn=False
            )
            times.append(time.perf_counter() - t)
        dt = max(times[1] - times[0], 1e-9)
        out.append(dict(part="sweep", n=n, skip=on, time_s=dt, niter=2 * sweeps, per_sweep_ms=1e3 * dt / (2 * sweeps)))
    return out


def render(results):
    from _report import md_table, write_markdown

    rows = results["rows"]
    rate = results["matmul"]
    pub = [r for r in rows if r["part"] == "public"]
    base = {(r["n"], r["dtype"]): r["time_s"] for r in pub if not r["skip"] and r.get("init", "zero") == "zero"}
    t1 = md_table(
        [
            "n",
            "dtype",
            "init",
            "skip",
            "time (s)",
            "vs. skip off",
            "outer steps",
            "inner iterations (start kept)",
            "inner iterations, all starts (solves)",
            "start kept",
            "accuracy",
            "converged",
            "value",
        ],
        [
            [
                r["n"],
                r["dtype"],
                "%s (%d starts)" % (r.get("init", "zero"), r.get("starts", 1)),
                "on" if r["skip"] else "off (before)",
                "%.1f" % r["time_s"],
                ("%.1f×" % (base[(r["n"], r["dtype"])] / r["time_s"]))
                if r["skip"] and (r["n"], r["dtype"]) in base and r.get("init", "zero") == "zero"
                else "",
                r["outer"],
                " ".join(str(v) for v in r["inner"] or []),
                "%s (%s)" % (r["inner_all"], r["solves_all"]) if "inner_all" in r else "",
                r.get("kept", ""),
                "%.3f" % r["accuracy"] if "accuracy" in r else "",
                "yes" if r["converged"] else "no",
                "%.10f" % r["value"],
            ]
            for r in pub
        ],
        align="rlllrrrlrllll",
    )
    inner = [r for r in rows if r["part"] == "inner_newton"]
    t2 = md_table(
        ["n", "skip", "Newton iterations", "time (s)", "ms / iteration", "final error"],
        [
            [r["n"], "on" if r["skip"] else "off", r["niter"], "%.2f" % r["time_s"], "%.1f" % r["per_iter_ms"]]
            + [r["err"]]
            for r in inner
        ],
        align="rlrrrr",
    )
    sw = [r for r in rows if r["part"] == "sweep"]
    t3 = md_table(
        ["n", "skip", "ms / sweep", "GFLOP/s (3 n³ flops a sweep)", "plain matmul GFLOP/s", "fraction of matmul"],
        [
            [
                r["n"],
                "on" if r["skip"] else "off",
                "%.1f" % r["per_sweep_ms"],
                "%.1f" % (3.0 * r["n"] ** 3 / (r["per_sweep_ms"] / 1e3) / 1e9),
                "%.1f" % rate[str(r["n"])],
                "%.0f%%" % (100 * 3.0 * r["n"] ** 3 / (r["per_sweep_ms"] / 1e3) / 1e9 / rate[str(r["n"])]),
            ]
            for r in sw
        ],
        align="rlrrrr",
    )
    write_markdown(
        NAME,
        "Multimarginal GW speed at k = 3 (issue #22)",
        [
            "Isometric copies (one 2-D Gaussian cloud in 2-D, 3-D and 5-D by random orthogonal maps and "
            "translations, rows permuted), complete graph, reg = 0.1, `init='zero'` and the default `init='auto'`, "
            "one BLAS thread, on the "
            "shared 2-core machine (load average %.2f %.2f %.2f during the run: other sessions were running, "
            "so absolute times are noisy; the on/off ratios come from the same run). *skip off* is "
            "`OT_MULTIMARGINAL_NO_SKIP=1`: every underflowed entry of the log-domain products recomputed, "
            "and the pairwise marginals taken in the log domain (the code before this change)."
            % tuple(results["load"]),
            "## The public call (`mgw_sinkhorn2`)",
            t1,
            "## Inner solve on the induced cost at the true matching: 15 Newton iterations from a cold start",
            t2,
            "## One cyclic sweep (triangle engine, scaled products) against a plain matmul of the same shape",
            t3,
        ],
        source="`python bench/bench_mgw_speed.py %s` (%s)" % (results["argv"], results["date"]),
        figures=[(NAME + ".png", "time of mgw_sinkhorn2 against n, init='zero' and 'auto'")]
        if results.get("png")
        else (),
    )


def plot(results):
    from _report import RESULTS, pyplot

    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(5, 3.5))
    pub = [r for r in results["rows"] if r["part"] == "public"]
    for init in ("zero", "auto"):
        for dt in ("float64", "float32"):
            for on in (True, False):
                pts = sorted(
                    (r["n"], r["time_s"])
                    for r in pub
                    if r["dtype"] == dt and r["skip"] == on and r.get("init", "zero") == init
                )
                if pts:
                    x, y = zip(*pts)
                    ax.plot(
                        x,
                        y,
                        ("o-" if on else "s--") if init == "zero" else "^:",
                        label="init=%s, %s%s" % (init, dt, "" if on else ", skip off"),
                    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (points per cloud)")
    ax.set_ylabel("mgw_sinkhorn2 time (s)")
    ax.set_title("k = 3 complete, reg = 0.1")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(RESULTS, NAME + ".png"), dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 300])
    ap.add_argument("--baseline-max", type=int, default=0, help="largest n whose skip-off baseline is run")
    ap.add_argument("--public-baseline-max", type=int, default=0, help="largest n of the public call's baseline")
    ap.add_argument("--float32-baseline-max", type=int, default=0)
    ap.add_argument("--float32-max", type=int, default=300, help="largest n of the float32 rows")
    ap.add_argument("--auto-max", type=int, default=300, help="largest n of the init='auto' (start screening) rows")
    ap.add_argument("--inner-max", type=int, default=300, help="largest n of the inner-solve and sweep rows")
    ap.add_argument("--render", action="store_true", help="rewrite the report from the saved JSON")
    args = ap.parse_args()
    from _report import load_results, save_results

    if args.render:
        res = load_results(NAME)
        res["png"] = plot(res)
        render(res)
        return
    from threadpoolctl import threadpool_limits

    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass
    rows, rate = [], {}
    with threadpool_limits(1):
        for n in args.sizes:
            rate[str(n)] = matmul_gflops(n)[0]
            for dtype in (np.float64, np.float32) if n <= args.float32_max else (np.float64,):
                limit = min(args.baseline_max, args.public_baseline_max)
                limit = limit if dtype == np.float64 else args.float32_baseline_max
                for on in (True, False) if n <= limit else (True,):
                    r = run_public(n, dtype, on)
                    rows.append(r)
                    print(
                        "public n=%5d %-7s skip=%-5s %8.2f s  outer %3d  inner %s  value %.10f"
                        % (n, r["dtype"], on, r["time_s"], r["outer"], r["inner"], r["value"]),
                        flush=True,
                    )
            for dtype in (np.float64, np.float32) if n <= min(args.auto_max, args.float32_max) else (np.float64,):
                if n > args.auto_max:
                    break
                r = run_public(n, dtype, True, init="auto")
                rows.append(r)
                print(
                    "public n=%5d %-7s auto: %8.2f s  starts %d  kept %s  inner (all) %d  value %.10f  accuracy %.3f"
                    % (n, r["dtype"], r["time_s"], r["starts"], r["kept"], r["inner_all"], r["value"], r["accuracy"]),
                    flush=True,
                )
            if n > args.inner_max:
                continue
            for on in (True, False) if n <= args.baseline_max else (True,):
                for r in run_inner(n, on):
                    rows.append(r)
                    print(" ".join("%s=%s" % kv for kv in r.items()))
            print("matmul %dx%d: %.1f GFLOP/s" % (n, n, rate[str(n)]))
    load = save_results(
        NAME, rows, matmul=rate, argv=" ".join(sys.argv[1:]), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    )
    res = dict(rows=rows, matmul=rate, load=load, argv=" ".join(sys.argv[1:]), date=time.strftime("%Y-%m-%d %H:%M UTC"))
    res["png"] = plot(res)
    render(res)


if __name__ == "__main__":
    main()
