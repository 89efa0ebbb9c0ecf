# -*- coding: utf-8 -*-
"""Multimarginal entropic GW: time and accuracy.

(a) k = 2 against POT's entropic GW (same eps, same start): time, plan difference, value difference.
(b) k = 3 as n grows: time, outer steps, inner sweeps, matching accuracy on isometric copies in dims 2, 3, 5.
(c) real data: scikit-learn's digits seen through three feature maps of different dimensions
    (raw pixels 64-D, a 16-D PCA, a random orthogonal embedding in 80-D), rows shuffled:
    accuracy of recovering the identity correspondence from the pairwise plans.
(d) mgw_neural against mgw_sinkhorn as n grows (k = 3, same start): time, value, accuracy, the share of points
    given the same partner (all points, and the decisive ones: sinkhorn's top partner at least twice as likely
    as its second), L1 distance of the pairwise plans; beyond n = 300 mgw_neural alone.

Prints markdown tables and the machine load; saves bench/results/bench_mgw.json and .png.
Usage: python bench/bench_mgw.py [--quick]
"""

import json
import os
import sys
import time
import warnings

import numpy as np
import ot

import ot_multimarginal as om

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results")
QUICK = "--quick" in sys.argv


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def box(rng, n):
    return (rng.rand(n, 2) - 0.5) * np.array([4.0, 1.0])


def copy_in(rng, X, d):
    Q, _ = np.linalg.qr(rng.randn(d, d))
    Y = np.c_[X, np.zeros((len(X), d - X.shape[1]))] @ Q + 3 * rng.randn(d)
    perm = rng.permutation(len(X))
    return Y[perm], perm


def acc(P, pi, pj):
    return float((om.match_from_plan(P) == np.argsort(pj)[pi]).mean())


def unit(X):
    Xc = X - X.mean(0)
    return Xc / np.sqrt((Xc**2).sum(1).mean())


def case_pot(ns, eps):
    rows = []
    for n in ns:
        rng = np.random.RandomState(n)
        X = unit(box(rng, n))
        Y, _ = copy_in(rng, X, 3)
        Y = unit(Y + 0.1 * rng.randn(*Y.shape))
        C1, C2 = ot.dist(X, X), ot.dist(Y, Y)
        t = time.perf_counter()
        v, log = om.mgw_sinkhorn2(
            [X, Y],
            eps,
            normalize=None,
            init="zero",
            log=True,
            warn=False,
            stopThr=1e-9,
            stopThrInner=1e-9,
            numItermaxInner=20000,
        )
        t_om = time.perf_counter() - t
        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            T, lt = ot.gromov.entropic_gromov_wasserstein(
                C1, C2, epsilon=eps, log=True, tol=1e-9, numItermax=20000, stopThr=1e-9
            )
        t_pot = time.perf_counter() - t
        rows.append(
            dict(
                n=n,
                eps=eps,
                time_om=t_om,
                time_pot=t_pot,
                plan_diff=float(np.abs(log["pairwise_plans"][(0, 1)] - T).max()),
                value_linear_diff=float(abs(log["value_quad"] - lt["gw_dist"])),
                outer=log["niter"],
                sweeps=int(sum(log["inner_niter"])),
            )
        )
        print(
            "| %d | %g | %.2f | %.2f | %.1e | %.1e | %d | %d |"
            % (
                n,
                eps,
                t_om,
                t_pot,
                rows[-1]["plan_diff"],
                rows[-1]["value_linear_diff"],
                rows[-1]["outer"],
                rows[-1]["sweeps"],
            ),
            flush=True,
        )
    return rows


def _k3_problem(n):
    rng = np.random.RandomState(100 + n)
    X = box(rng, n)
    X_s, perms = zip(*[copy_in(rng, X, d) for d in (2, 3, 5)])
    return list(X_s), perms


def case_auto(cases):
    """Default init='auto' (A = 0 and 16 principal-axes sign flips screened, best continued): the whole call."""
    rows = []
    for n, eps in cases:
        X_s, perms = _k3_problem(n)
        t = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            v, log = om.mgw_sinkhorn2(X_s, eps, log=True)
        el = time.perf_counter() - t
        a = [acc(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) for e in log["edges"]]
        rows.append(
            dict(
                n=n,
                eps=eps,
                time=el,
                starts=len(log["candidates"]),
                init=log["init"],
                warnings=len(w),
                accuracy=a,
                value=float(v),
            )
        )
        print(
            "| %d | %g | %.2f | %d | %s | %d | %.8f | %s |"
            % (n, eps, el, len(log["candidates"]), log["init"], len(w), float(v), " / ".join("%.2f" % x for x in a)),
            flush=True,
        )
    return rows


def case_k3(ns, eps, before=True):
    """Before (cyclic inner Sinkhorn, the previous defaults) and after (method='auto': Newton inner solves)."""
    rows = []
    variants = [("before: sinkhorn_log", dict(method="sinkhorn_log", n_screen=5))] if before else []
    variants.append(("after: default (Newton)", {}))
    for n in ns:
        X_s, perms = _k3_problem(n)
        for name, kw in variants:
            t = time.perf_counter()
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                v, log = om.mgw_sinkhorn2(X_s, eps, init="zero", log=True, **kw)
            el = time.perf_counter() - t
            a = [acc(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) for e in log["edges"]]
            rows.append(
                dict(
                    n=n,
                    eps=eps,
                    variant=name,
                    time=el,
                    outer=log["niter"],
                    inner=int(sum(log["inner_niter"])),
                    accuracy=a,
                    value=float(v),
                    warnings=len(w),
                    inner_err=float(log["inner_log"]["err"][-1]),
                )
            )
            print(
                "| %d | %g | %s | %.2f | %d | %d | %.1e | %d | %.8f | %s |"
                % (
                    n,
                    eps,
                    name,
                    el,
                    log["niter"],
                    rows[-1]["inner"],
                    rows[-1]["inner_err"],
                    len(w),
                    float(v),
                    " / ".join("%.2f" % x for x in a),
                ),
                flush=True,
            )
    return rows


def decisive(P):
    """Rows where the plan's top partner has at least twice the mass of the second (no near-tie)."""
    top2 = np.sort(P, axis=1)[:, -2:]
    return top2[:, 1] >= 2 * top2[:, 0]


def case_neural(ns, eps, sinkhorn_up_to):
    """mgw_neural against mgw_sinkhorn (k = 3, init A = 0 for both) as n grows: value, matchings, time.

    Beyond ``sinkhorn_up_to`` points only mgw_neural runs (accuracy against the hidden correspondence).
    """
    from ot_multimarginal import mgw_neural

    rows = []
    for n in ns:
        X_s, perms = _k3_problem(n)
        ref = n <= sinkhorn_up_to
        if ref:
            t = time.perf_counter()
            v_ref, log_ref = om.mgw_sinkhorn2(X_s, eps, init="zero", log=True)
            t_ref = time.perf_counter() - t
        t = time.perf_counter()
        v, log = mgw_neural(X_s, eps, init="zero", seed=0, log=True)
        t_nn = time.perf_counter() - t
        est, E = log["estimator"], log["edges"]
        row = dict(
            n=n,
            eps=eps,
            time_neural=t_nn,
            value_neural=float(v),
            outer=est.n_outer_,
            acc_neural=[acc(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) for e in E],
        )
        if ref:
            same = [est.match(*e) == om.match_from_plan(log_ref["pairwise_plans"][e]) for e in E]
            dec = [decisive(log_ref["pairwise_plans"][e]) for e in E]
            row.update(
                time_sinkhorn=t_ref,
                value_sinkhorn=float(v_ref),
                rel_diff=float((v - v_ref) / v_ref),
                acc_sinkhorn=[acc(log_ref["pairwise_plans"][e], perms[e[0]], perms[e[1]]) for e in E],
                same_matches=[float(s.mean()) for s in same],
                decisive=[int(d.sum()) for d in dec],
                same_on_decisive=[float(s[d].mean()) if d.any() else float("nan") for s, d in zip(same, dec)],
                plan_l1=float(
                    np.mean([np.abs(log["pairwise_plans"][e] - log_ref["pairwise_plans"][e]).sum() for e in E])
                ),
            )
        rows.append(row)
        f2 = lambda xs: " / ".join("%.2f" % x for x in xs)  # noqa: E731
        if ref:
            print(
                "| %d | %g | %.2f | %.1f | %+.2f%% | %s | %s | %s | %s of %s | %.3f |"
                % (
                    n,
                    eps,
                    t_ref,
                    t_nn,
                    100 * row["rel_diff"],
                    f2(row["acc_sinkhorn"]),
                    f2(row["acc_neural"]),
                    f2(row["same_matches"]),
                    f2(row["same_on_decisive"]),
                    "/".join(map(str, row["decisive"])),
                    row["plan_l1"],
                ),
                flush=True,
            )
        else:
            print("| %d | %g | — | %.1f | — | — | %s | — | — | — |" % (n, eps, t_nn, f2(row["acc_neural"])), flush=True)
    return rows


def case_digits(n, eps):
    from sklearn.datasets import load_digits
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(0)
    D = load_digits().data
    idx = rng.choice(len(D), n, replace=False)
    raw = D[idx]
    pca = PCA(16, random_state=0).fit(D).transform(raw)
    Q, _ = np.linalg.qr(rng.randn(80, 80))
    emb = np.c_[raw, np.zeros((n, 16))] @ Q
    views = [raw, pca, emb]
    perms = [np.arange(n)] + [rng.permutation(n) for _ in range(2)]
    X_s = [V[p] for V, p in zip(views, perms)]
    t = time.perf_counter()
    v, log = om.mgw_sinkhorn2(X_s, eps, init="zero", log=True, warn=False)
    el = time.perf_counter() - t
    a = {"%d-%d" % e: acc(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) for e in log["edges"]}
    print("| %d | %g | %.1f | %s |" % (n, eps, el, " / ".join("%s: %.2f" % kv for kv in a.items())), flush=True)
    return dict(n=n, eps=eps, time=el, accuracy=a, views=["raw 64-D", "PCA 16-D", "orthogonal 80-D"])


def main():
    os.makedirs(OUT, exist_ok=True)
    print("load before: %s" % load())
    res = {}
    print("\n(a) k = 2 against POT's entropic GW (init A = 0 = POT's start)\n")
    print("| n | eps | mgw_sinkhorn (s) | POT (s) | max plan diff | value_linear diff | outer | inner iterations |")
    print("|---|---|---|---|---|---|---|---|")
    res["pot"] = case_pot([10, 20] if QUICK else [10, 20, 40], 5.0)
    print("\n(b) k = 3, isometric copies in dims 2, 3, 5 (complete graph), init A = 0, default tolerances\n")
    print(
        "| n | eps | inner solver | time (s) | outer | inner iterations | last inner error | warnings | value | "
        "accuracy per edge |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    res["k3"] = case_k3([10, 20] if QUICK else [10, 20, 40], 0.5)
    res["k3_small_eps"] = case_k3([40] if QUICK else [40, 100], 0.1, before=False)
    print("\n(b') the same with the default init='auto' (starts screened for n_screen=2 steps, best continued)\n")
    print("| n | eps | time (s) | starts | start kept | warnings | value | accuracy per edge |")
    print("|---|---|---|---|---|---|---|---|")
    res["k3_auto"] = case_auto([(15, 0.5), (40, 0.1)])
    print("\n(d) mgw_neural against mgw_sinkhorn (k = 3, same problems, init A = 0, default training budget)\n")
    print(
        "| n | eps | mgw_sinkhorn (s) | mgw_neural (s) | value difference | accuracy sinkhorn | accuracy neural | "
        "same partner as sinkhorn | same on decisive points | plan L1 distance |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    res["neural"] = case_neural([20, 40] if QUICK else [20, 40, 100, 300, 1000], 0.2, sinkhorn_up_to=300)
    print("\n(c) digits through three feature maps (raw 64-D, PCA 16-D, orthogonal 80-D)\n")
    print("| n | eps | time (s) | accuracy per edge |")
    print("|---|---|---|---|")
    res["digits"] = case_digits(30 if QUICK else 60, 0.5)
    res["load_after"] = load()
    print("\nload after: %s" % res["load_after"])
    with open(os.path.join(OUT, "bench_mgw.json"), "w") as f:
        json.dump(res, f, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(13.5, 3.5))
    ax[0].plot([r["n"] for r in res["pot"]], [r["time_om"] for r in res["pot"]], "o-", label="mgw_sinkhorn")
    ax[0].plot([r["n"] for r in res["pot"]], [r["time_pot"] for r in res["pot"]], "s-", label="POT entropic GW")
    ax[0].set_xlabel("n")
    ax[0].set_ylabel("time (s)")
    ax[0].set_title("k = 2, eps = 5")
    ax[0].legend()
    for name in ("before: sinkhorn_log", "after: default (Newton)"):
        rr = [r for r in res["k3"] if r["variant"] == name]
        ax[1].semilogy([r["n"] for r in rr], [r["time"] for r in rr], "o-", label=name)
    ax[1].legend()
    ax[1].set_xlabel("n")
    ax[1].set_title("k = 3, eps = 0.5")
    rr = res["neural"]
    ax[2].loglog([r["n"] for r in rr], [r["time_neural"] for r in rr], "o-", label="mgw_neural")
    rs = [r for r in rr if "time_sinkhorn" in r]
    ax[2].loglog([r["n"] for r in rs], [r["time_sinkhorn"] for r in rs], "s-", label="mgw_sinkhorn")
    ax[2].set_xlabel("n (per cloud)")
    ax[2].set_ylabel("time (s)")
    ax[2].set_title("k = 3, eps = 0.2, init A = 0")
    ax[2].legend()
    plt.tight_layout()
    fig.savefig(os.path.join(OUT, "bench_mgw.png"), dpi=100)


if __name__ == "__main__":
    main()
