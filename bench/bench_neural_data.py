# -*- coding: utf-8 -*-
"""Default ``emot_neural`` on data families that are not the paper's cube, against exact structured Sinkhorn.

Run::

    python bench/bench_neural_data.py --quick     # one row per family (chain k = 6), a few minutes
    python bench/bench_neural_data.py             # the whole suite (families x graphs x reg), long
    python bench/bench_neural_data.py --paper     # also the paper's rows (complete k=4, circle k=10, n=1e4)
    python bench/bench_neural_data.py --threads   # also one vs two torch threads (b = 128 and 1024)
    python bench/bench_neural_data.py --paper --threads --extras --time-limit 36   # the run of the docs
    python bench/bench_neural_data.py --append --skip student_t --time-limit 15    # more rows into the same files
    python bench/bench_neural_data.py --append --rerun-warned --extras     # after a fix: the rows that warned again

``--extras``: the anisotropic Gaussian translated by 1e5 and 1e6, and float64 training rows (translated by
1e6, Student t, anisotropic), chain k = 6 at 0.5x. ``--time-limit`` (minutes): no row starts after it; the
rows not run are listed in the results. ``--append``: keep the rows of the results file and run the missing
ones (``--skip``: families left out of this invocation, e.g. the Student t rows whose exact reference alone
takes 4-7 minutes on a busy 2-core machine).

Suite (issue 21): data families -- the paper's uniform cube; standard Gaussian; anisotropic Gaussian
(spreads 1-3, shifted means); a Gaussian mixture with well-separated modes; Student t (3 degrees of
freedom); the anisotropic Gaussian translated by 1e4; scikit-learn's digits (PCA to d = 5 and d = 10,
split into k groups); unequal sizes n_i -- on complete k = 3, chain k = 6 and circle k = 10, at
reg = 0.1, 0.5 and 1 times the median edge cost. Every row: ``emot_neural`` with its default settings
(float32 training; the value is the exact dual on the data when affordable: a certified lower bound),
the exact value of ``empirical_emot_sinkhorn2`` on the same points (structured engine, float64), the
relative error, whether the non-convergence warning fired, the steps taken and the time. Target: every
row within 0.5% below the exact value, or the warning.

``--paper``: the paper's benchmark (uniform cube, d = 5, reg = 1; complete k = 4 and circle k = 10,
n = 1e4) with the defaults, against the long neural runs of ``bench/results/bench_neural.json``
(Sinkhorn does not reach these sizes).

Writes ``bench/results/bench_neural_data.{json,md,csv,png}``; one torch thread (the estimators' default
policy); prints the load average (the machine is shared: compare within a run).
"""
# License: MIT License

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

import ot  # noqa: E402
import torch  # noqa: E402
from _report import MANUAL, RESULTS, pyplot  # noqa: E402

import ot_multimarginal as om  # noqa: E402

FAMILIES = ("uniform", "gaussian", "aniso", "mixture", "student_t", "translated", "digits5", "digits10", "unequal")
EXTRA_FAMILIES = ("translated1e5", "translated1e6")  # the anisotropic Gaussian + 1e5 / 1e6 (rows of --extras)
GRAPHS = {"complete": 3, "chain": 6, "circle": 10}
REFERENCE_SECONDS = 150.0  # wall-clock cap of the exact reference's sweeps (its bounds stay certified)


def family(name, k, n, seed=0):
    """k clouds of the family ``name`` with about ``n`` points each."""
    rng = np.random.RandomState(seed)
    d = 3
    if name == "uniform":
        return [rng.uniform(-1, 1, (n, d)) / np.sqrt(d) for _ in range(k)]
    if name == "gaussian":
        return [rng.randn(n, d) for _ in range(k)]
    if name in ("aniso", "unequal") or name.startswith("translated"):
        sizes = [n] * k if name != "unequal" else [max(50, int(n * f)) for f in np.linspace(1.0, 0.3, k)]
        X = [rng.randn(m, d) * rng.uniform(1, 3, d) + rng.uniform(-3, 3, d) for m in sizes]
        return [A + float(name[10:] or 1e4) for A in X] if name.startswith("translated") else X
    if name == "mixture":
        centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], dtype=float)
        return [centres[rng.randint(0, 3, n)] + 0.5 * rng.randn(n, d) for _ in range(k)]
    if name == "student_t":
        return [rng.standard_t(3, (n, d)) for _ in range(k)]
    if name.startswith("digits"):
        from sklearn.datasets import load_digits
        from sklearn.decomposition import PCA

        Z = PCA(int(name[6:]), random_state=0).fit_transform(load_digits().data)
        Z = Z / np.sqrt(np.mean(np.sum((Z - Z.mean(0)) ** 2, 1)))  # unit mean squared radius
        perm = rng.permutation(len(Z))
        m = min(n, len(Z) // k)
        return [Z[perm[i * m : (i + 1) * m]] for i in range(k)]
    raise ValueError(name)


def median_edge_cost(X_s, graph):
    edges = om.costs.graph_edges(graph, len(X_s))
    vals = [np.median(ot.dist(X_s[a][:300], X_s[b][:300])) for a, b in edges]
    return float(np.median(vals))


def rounded_upper_bound(pot, C, reg):
    r"""A certified upper bound of EMOT from the plan of potentials ``pot`` (engine of the pairwise cost ``C``).

    Rounding (Altschuler et al. 2017; Lin et al. 2022 for k marginals): scale the plan
    :math:`P = B(g)` down, marginal after marginal, until every marginal is at most
    :math:`a_i` (a plan :math:`P''` of mass :math:`m_1`, still of the Gibbs form, potentials
    :math:`\varphi''`), then add the product :math:`\otimes_i e_i / m_2^{k-1}` of the deficits
    :math:`e_i = a_i - r_i(P'') \ge 0` (mass :math:`m_2 = 1 - m_1` each): a plan
    :math:`\hat P \in \Pi(a_1, \dots, a_k)`. By the convexity of KL,
    :math:`F(\hat P) \le m_1 F(P''/m_1) + m_2 F(\otimes u_i)` (:math:`u_i = e_i/m_2`), where for the
    Gibbs plan :math:`m_1 F(P''/m_1) = \sum_i\langle r_i(P''), \varphi''_i\rangle - \varepsilon m_1 \log m_1`
    and :math:`F(\otimes u_i) = \sum_{(a,b)} u_a^\top C_{ab} u_b + \varepsilon\sum_i \mathrm{KL}(u_i\|a_i)`.
    So :math:`\mathrm{EMOT} \le` the returned value (to rounding), whatever ``pot``.
    """
    from ot_multimarginal.potentials import Potentials

    engine, a_s = pot.engine, [torch.as_tensor(a) for a in pot.a_s]
    g = list(pot.log_scalings)
    log_a = [torch.log(a) for a in a_s]
    for i in range(len(g)):
        g[i] = g[i] + torch.clamp(log_a[i] - engine.log_marginal(g, i), max=0.0)
    log_r = engine.log_marginals(g)
    m1 = float(torch.exp(engine.log_mass(g)))
    phi = Potentials.from_scalings(engine, g, a_s)
    upper = sum(float(torch.sum(torch.exp(lr) * f)) for lr, f in zip(log_r, phi)) - reg * m1 * np.log(m1)
    m2 = 1.0 - m1
    if m2 > 0:
        u = [torch.clamp(a - torch.exp(lr), min=0.0) for a, lr in zip(a_s, log_r)]
        u = [x / torch.sum(x) for x in u]
        cross = sum(float(u[a] @ (torch.as_tensor(M) @ u[b])) for (a, b), M in zip(C.edges, C.matrices))
        kl = sum(
            float(torch.sum(torch.where(x > 0, x * torch.log(x / a), torch.zeros_like(x)))) for x, a in zip(u, a_s)
        )
        upper += m2 * (cross + reg * kl)
    return upper


def exact_reference(X, reg, graph, stopThr=1e-11, numItermax=100000, seconds=REFERENCE_SECONDS):
    """``(lower, upper)``: structured Sinkhorn (float64, over-relaxed: ``relaxation='auto'``) to ``stopThr`` or
    ``seconds`` of sweeps; its dual, a certified lower bound, and the rounded plan's value, a certified upper bound
    (:func:`rounded_upper_bound`): the empirical EMOT lies in between, however far the sweeps got."""
    from ot_multimarginal.potentials import Potentials
    from ot_multimarginal.sinkhorn import make_engine, solve_potentials

    Xt = [torch.as_tensor(A, dtype=torch.float64) for A in X]
    C = om.empirical_cost(Xt, graph)
    end = time.perf_counter() + seconds
    with torch.no_grad():
        engine, a_s = make_engine(None, C, reg)
        g, _ = solve_potentials(
            engine,
            a_s,
            "sinkhorn_log",
            numItermax,
            stopThr,
            warn=False,
            relaxation="auto",
            stop_rule=lambda g, err: time.perf_counter() > end,
        )
        pot = Potentials.from_scalings(engine, g, a_s)
        lower = float(pot.dual())
        upper = rounded_upper_bound(pot, C, reg)
    return lower, upper


def uptime():
    return "load average: %.2f %.2f %.2f" % os.getloadavg()


def run_row(fam, graph, n, reg_factor, seed=0, dtype="float32", exact=None):
    """One row; ``exact``: ``(lower, seconds, upper)`` of the exact reference of an earlier run on the same points
    (``upper`` None for the rows of a version without the upper bound)."""
    k = GRAPHS[graph]
    X = family(fam, k, n, seed)
    reg = reg_factor * median_edge_cost(X, graph)
    if exact is None:
        t0 = time.perf_counter()
        ref, ref_upper = exact_reference(X, reg, graph)
        t_exact = time.perf_counter() - t0
    else:
        ref, t_exact, ref_upper = exact
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        v, log = om.emot_neural2(
            X,
            reg,
            graph=graph,
            random_state=seed,
            log=True,
            dtype=getattr(torch, dtype) if dtype != "float32" else None,
        )
    t_neural = time.perf_counter() - t0
    fired = [str(x.message) for x in w if issubclass(x.category, UserWarning) and "NeuralEMOT:" in str(x.message)]
    est = log.get("estimator")
    gap = getattr(est, "gap_estimate_", None)
    rel = (float(v) - ref) / abs(ref)
    # an exact evaluation is a certified lower bound: it must not pass the reference's upper bound (nor, without
    # one, the reference's own lower bound by more than rounding)
    bound = ref_upper if ref_upper is not None else ref
    above = log["value_method"] == "exact" and float(v) > bound + 1e-9 * abs(bound)
    row = dict(
        family=fam,
        graph=graph,
        k=k,
        n=[int(A.shape[0]) for A in X],
        d=int(X[0].shape[1]),
        reg_factor=reg_factor,
        reg=reg,
        dtype=dtype,
        exact=ref,
        exact_upper=ref_upper,
        exact_s=t_exact,
        neural=float(v),
        rel_err=rel,
        method=log["value_method"],
        steps=int(log["niter"]),
        converged=bool(log["converged"]),
        warned=bool(fired),
        warning=fired[0][:160] if fired else "",
        gap_estimate=None if gap is None else gap / abs(float(v)),
        refine_sweeps=int(getattr(est, "refine_sweeps_", 0) or 0),
        refine_start=getattr(est, "refine_start_", None),
        handed_over=bool(getattr(est, "handed_over_", False)),
        networks=None if getattr(est, "value_networks_", None) is None else float(est.value_networks_),
        neural_s=t_neural,
        load=os.getloadavg()[0],
        above_upper=bool(above),
        ok=bool((abs(rel) <= 5e-3 and not above) or fired),
    )
    print(
        "%-13s %-8s %s k=%-2d n=%-5d reg=%.2gx%-8.3g exact %-11.6g neural %-11.6g %+7.3f%% %-5s steps %-5d "
        "%-4s %6.1fs (exact %5.1fs)%s"
        % (
            fam,
            dtype[-2:],
            graph,
            k,
            row["n"][0],
            reg_factor,
            reg / reg_factor,
            ref,
            v,
            100 * rel,
            row["method"],
            row["steps"],
            "warn" if fired else "",
            t_neural,
            t_exact,
            "" if row["ok"] else "  MISS",
        )
        + (
            "  [upper %.8g, refine %d from %s%s]"
            % (
                ref_upper if ref_upper is not None else float("nan"),
                row["refine_sweeps"],
                row["refine_start"],
                ", handed over" if row["handed_over"] else "",
            )
        ),
        flush=True,
    )
    return row


def run_paper(seed=0):
    """The paper's rows with the defaults, against the long runs of bench_neural.json."""
    prev = json.load(open(os.path.join(RESULTS, "bench_neural.json")))["runtime"]
    rows = []
    for graph, k in (("complete", 4), ("circle", 10)):
        ref = [r for r in prev if r["graph"] == graph and r["k"] == k and r["n"] == 10000 and r["reg"] == 1.0][0]
        rng = np.random.default_rng(0)
        X = [rng.uniform(-1.0, 1.0, size=(10000, 5)) / np.sqrt(5) for _ in range(k)]
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            v, log = om.emot_neural2(X, 1.0, graph=graph, random_state=seed, log=True)
        t = time.perf_counter() - t0
        fired = any("NeuralEMOT:" in str(x.message) for x in w)
        rel = (float(v) - ref["long_value"]) / abs(ref["long_value"])
        row = dict(
            graph=graph,
            k=k,
            n=10000,
            neural=float(v),
            se=log["value_se"],
            method=log["value_method"],
            reference=ref["long_value"],
            reference_se=ref["long_se"],
            rel_err=rel,
            steps=int(log["niter"]),
            warned=fired,
            neural_s=t,
            previous_s=ref["neural_s"],
            previous_value=ref["neural_value"],
        )
        print(
            "paper %-8s k=%-2d n=10000 neural %.6g (se %.2g, %s) long run %.6g: %+.3f%%  steps %d  %.1fs "
            "(previous defaults %.1fs)%s"
            % (
                graph,
                k,
                v,
                log["value_se"],
                log["value_method"],
                ref["long_value"],
                100 * rel,
                row["steps"],
                t,
                ref["neural_s"],
                " warn" if fired else "",
            ),
            flush=True,
        )
        rows.append(row)
    return rows


def run_threads():
    """Step time of the neural fit with one and two torch threads, small and large batches (circle k = 5)."""
    from ot_multimarginal.neural import NeuralEMOT

    rng = np.random.RandomState(0)
    X = [rng.randn(20000, 2) for _ in range(5)]
    rows = []
    for b in (128, 1024):
        for th in (1, 2):
            est = NeuralEMOT(
                1.0,
                graph="circle",
                batch_size=b,
                max_iter=40 if b == 128 else 10,
                eval_every=0,
                num_threads=th,
                random_state=0,
                evaluation="mc",
                n_eval_batches=2,
            ).fit(X)
            ms = 1e3 * est.timings_["train"] / est.n_iter_
            rows.append(dict(b=b, threads=th, ms_per_step=ms, load=os.getloadavg()[0]))
            print(
                "threads: circle k=5 b=%-5d %d thread(s): %8.1f ms/step (load %.2f)" % (b, th, ms, rows[-1]["load"]),
                flush=True,
            )
    return rows


def _refine_cell(r):
    if not r.get("refine_sweeps"):
        return "-" if "refine_sweeps" in r else "(not in this version)"
    return "%d%s (%+.3g%%)" % (
        r["refine_sweeps"],
        {None: "", "given": "", "zero": " from 0" + (", handed over" if r.get("handed_over") else "")}[
            r.get("refine_start")
        ],
        100 * (r["networks"] - r["exact"]) / abs(r["exact"]),
    )


def _upper_cell(r):
    if r.get("exact_upper") is None:
        return "-"
    return "%+.1e" % ((r["exact_upper"] - r["exact"]) / abs(r["exact"]))


def markdown(rows, paper, load, threads=()):
    out = [
        "# emot_neural defaults on data families",
        "",
        "`bench/bench_neural_data.py`: default `emot_neural` (float32 training, one torch thread) against the "
        "exact structured Sinkhorn value on the same points; 'exact': the dual of structured Sinkhorn's potentials "
        "(float64, over-relaxed, to a marginal error of 1e-11 or 150 s of sweeps), a certified lower bound; "
        "'upper - exact': the rounded plan's value (a certified upper bound) minus it, relative (the empirical EMOT "
        "lies in between; '-': a row of a version that computed the dual at stopThr 1e-8 only); reg is a "
        "multiple of the median edge cost; a negative error is below the exact value; 'gap estimate': "
        "`gap_estimate_ / |value|` of the fit (reg x the sum of the KL divergences of the data's weights from the "
        "plan's marginals); 'warning': a `UserWarning` of the estimator fired (budget ended, exact value far below "
        "the held-out estimate, or the plan misses its marginals: gap estimate above 0.5%); 'refine': the sweeps of "
        "exact Sinkhorn on the data that `refine='auto'` ran from the networks' potentials (it runs when the gap "
        "estimate of the networks is above 0.5%; 'from 0': from zero potentials, whose exact dual was the higher; "
        "'handed over': training stopped once the networks did worse on the data than zero potentials) and, in "
        "brackets, the error of the networks alone; 'load': the "
        "1-minute load average at the end of the row (2 cores shared by several jobs: times are noisy).",
        "",
        "| family | graph | dtype | k | n | reg (x median cost) | exact | upper - exact | emot_neural | rel. error | "
        "gap estimate | refine | steps | warning | time (s) | load |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            "| %s | %s | %s | %d | %s | %.3g (%.1fx) | %.6g | %s | %.6g | %+.3f%% | %s | %s | %d | %s | %.1f | %s |"
            % (
                r["family"],
                r["graph"],
                r.get("dtype", "float32"),
                r["k"],
                r["n"][0] if len(set(r["n"])) == 1 else "%d-%d" % (min(r["n"]), max(r["n"])),
                r["reg"],
                r["reg_factor"],
                r["exact"],
                _upper_cell(r),
                r["neural"],
                100 * r["rel_err"],
                "-" if r.get("gap_estimate") is None else "%.3f%%" % (100 * r["gap_estimate"]),
                _refine_cell(r),
                r["steps"],
                "yes" if r["warned"] else "no",
                r["neural_s"],
                "-" if r.get("load") is None else "%.1f" % r["load"],
            )
        )
    if rows:
        out += [
            "",
            "Worst case per family (every graph, reg and dtype of the run; one seed per row): the lowest relative "
            "error among the rows without a warning, the lowest overall, the rows that warned, the slowest row.",
            "",
            "| family | rows | worst without warning | worst overall | warned "
            "| missed (> 0.5% off or above the reference's upper bound, no warning) | slowest (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for fam in dict.fromkeys(r["family"] for r in rows):
            fr = [r for r in rows if r["family"] == fam]
            quiet = [r for r in fr if not r["warned"]]
            wq = min(quiet, key=lambda r: r["rel_err"]) if quiet else None
            wa = min(fr, key=lambda r: r["rel_err"])
            out.append(
                "| %s | %d | %s | %+.3f%% (%s, %.1fx) | %d | %d | %.1f |"
                % (
                    fam,
                    len(fr),
                    "%+.3f%% (%s, %.1fx)" % (100 * wq["rel_err"], wq["graph"], wq["reg_factor"]) if wq else "-",
                    100 * wa["rel_err"],
                    wa["graph"],
                    wa["reg_factor"],
                    sum(r["warned"] for r in fr),
                    sum(not r["ok"] for r in fr),
                    max(r["neural_s"] for r in fr),
                )
            )
        worst = min(rows, key=lambda r: r["rel_err"] if not r["warned"] else 0.0)
        out += [
            "",
            "Worst row without a warning: %s / %s, %+.3f%%."
            % (worst["family"], worst["graph"], 100 * worst["rel_err"]),
        ]
    if paper:
        out += [
            "",
            "| paper row | emot_neural (defaults) | long run | rel. | steps | time (s) | previous defaults (s) |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in paper:
            out.append(
                "| %s k=%d n=1e4 | %.6g (se %.2g) | %.6g | %+.3f%% | %d | %.1f | %.1f |"
                % (
                    r["graph"],
                    r["k"],
                    r["neural"],
                    r["se"],
                    r["reference"],
                    100 * r["rel_err"],
                    r["steps"],
                    r["neural_s"],
                    r["previous_s"],
                )
            )
    if threads:
        out += ["", "| threads (circle k=5, n=2e4) | batch | ms / step | load |", "|---|---|---|---|"]
        for r in threads:
            out.append("| %d | %d | %.1f | %.1f |" % (r["threads"], r["b"], r["ms_per_step"], r["load"]))
    out += ["", "Load average during the run: %.2f %.2f %.2f (2 shared cores)." % load]
    out += ["", "![emot_neural defaults on data families](bench_neural_data.png)"]
    return "\n".join(out) + "\n"


def plot(rows, path):
    plt = pyplot()
    if plt is None or not rows:
        return
    fig, ax = plt.subplots(1, 2, figsize=(12, 0.35 * len(rows) + 1.5))
    labels = ["%s/%s/%.1fx" % (r["family"], r["graph"], r["reg_factor"]) for r in rows]
    y = np.arange(len(rows))
    colors = ["tab:orange" if r["warned"] else ("tab:green" if abs(r["rel_err"]) <= 5e-3 else "tab:red") for r in rows]
    ax[0].barh(y, [100 * r["rel_err"] for r in rows], color=colors)
    ax[0].axvline(-0.5, color="k", ls="--", lw=0.8)
    ax[0].set_yticks(y)
    ax[0].set_yticklabels(labels, fontsize=7)
    ax[0].set_xlabel("relative error of emot_neural (defaults) vs exact Sinkhorn, %")
    ax[1].barh(y, [r["neural_s"] for r in rows], color="tab:blue")
    ax[1].set_yticks(y)
    ax[1].set_yticklabels([])
    ax[1].set_xlabel("emot_neural time (s), one thread")
    fig.suptitle("emot_neural defaults on data families (green: within 0.5%, orange: warned, red: missed)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(args, rows, paper, threads, n, missing=()):
    """The results so far: json, md, csv and png (rewritten after every row, so a cut run keeps its rows)."""
    load = os.getloadavg()
    md = markdown(rows, paper, load, threads)
    if missing:
        md += "\nRows not run (time limit of the run): %s.\n" % ", ".join("%s/%s/%.1fx/%s" % m for m in missing)
    os.makedirs(RESULTS, exist_ok=True)
    md_path = os.path.join(RESULTS, args.name + ".md")
    notes = ""
    if os.path.exists(md_path):  # the notes a person wrote below the marker are kept
        with open(md_path, encoding="utf-8") as f:
            old = f.read()
        if MANUAL in old:
            notes = old[old.index(MANUAL) + len(MANUAL) :]
    md += "\n" + MANUAL + notes
    with open(os.path.join(RESULTS, args.name + ".json"), "w") as f:
        json.dump(
            dict(
                rows=rows,
                paper=paper,
                threads=threads,
                load=load,
                quick=args.quick,
                n=n,
                missing=[list(m) for m in missing],
                torch=torch.__version__,
                torch_threads=1,
            ),
            f,
            indent=1,
        )
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(md)
    with open(os.path.join(RESULTS, args.name + ".csv"), "w") as f:  # the table of the docs (neural.rst)
        f.write(
            "family,graph,dtype,k,n,reg (x median edge cost),exact,exact upper bound,emot_neural,rel. error %,"
            "gap estimate %,"
            "refine sweeps,steps,warning,time (s)\n"
        )
        for r in rows:
            f.write(
                "%s,%s,%s,%d,%s,%.1f,%.8g,%s,%.8g,%+.3f,%s,%d,%d,%s,%.1f\n"
                % (
                    r["family"],
                    r["graph"],
                    r.get("dtype", "float32"),
                    r["k"],
                    "-".join(str(m) for m in sorted(set(r["n"]))),
                    r["reg_factor"],
                    r["exact"],
                    "" if r.get("exact_upper") is None else "%.8g" % r["exact_upper"],
                    r["neural"],
                    100 * r["rel_err"],
                    "" if r.get("gap_estimate") is None else "%.3f" % (100 * r["gap_estimate"]),
                    r.get("refine_sweeps", 0),
                    r["steps"],
                    "yes" if r["warned"] else "no",
                    r["neural_s"],
                )
            )
    plot(rows, os.path.join(RESULTS, args.name + ".png"))
    return md


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one row per family (chain k = 6, reg = 0.5x), small n")
    p.add_argument("--paper", action="store_true", help="also the paper's rows (n = 1e4; run first)")
    p.add_argument("--threads", action="store_true", help="also one vs two torch threads, small and large batches")
    p.add_argument("--extras", action="store_true", help="also data + 1e5 and + 1e6, and float64 training rows")
    p.add_argument("--skip-suite", action="store_true", help="no data-family rows")
    p.add_argument("--n", type=int, default=None, help="points per cloud (default 2000; 1000 with --quick)")
    p.add_argument("--families", default=",".join(FAMILIES))
    p.add_argument("--graphs", default=",".join(GRAPHS))
    p.add_argument("--regs", default="0.5,0.1,1.0", help="reg factors, in the order run")
    p.add_argument("--time-limit", type=float, default=None, help="minutes: start no row after (the rest listed)")
    p.add_argument("--skip", default="", help="families not run in this invocation (listed as missing)")
    p.add_argument("--append", action="store_true", help="keep the rows (and paper/threads) of the results file")
    p.add_argument("--name", default="bench_neural_data")
    p.add_argument(
        "--rerun-warned",
        action="store_true",
        help="with --append: run again the kept rows that warned (their exact value reused), e.g. after a fix",
    )
    p.add_argument(
        "--rerun",
        default="",
        help="with --append: families run again, their exact reference too unless it has its upper bound",
    )
    args = p.parse_args()
    torch.set_num_threads(1)
    t_start = time.perf_counter()
    fams = args.families.split(",")
    if args.quick:
        plan = [(f, "chain", 0.5, "float32") for f in fams] + [
            ("aniso", "complete", 0.5, "float32"),
            ("aniso", "circle", 0.5, "float32"),
            ("aniso", "chain", 0.1, "float32"),
            ("aniso", "chain", 1.0, "float32"),
        ]
        n = args.n or 1000
    else:  # reg by reg (the first reg's rows cover every family and graph when the run is cut)
        plan = [(f, g, float(r), "float32") for r in args.regs.split(",") for g in args.graphs.split(",") for f in fams]
        n = args.n or 2000
    if args.extras:
        extras = [(f, "chain", 0.5, "float32") for f in EXTRA_FAMILIES]
        extras += [(f, "chain", 0.5, "float64") for f in ("translated1e6", "student_t", "aniso")]
        plan = plan[: len(fams)] + extras + plan[len(fams) :]
    print(uptime())
    rows, paper, threads = [], [], []
    if args.append:
        with open(os.path.join(RESULTS, args.name + ".json")) as f:
            old = json.load(f)
        rows, paper, threads = old["rows"], old["paper"], old["threads"]
    cache = {
        (r["family"], r["graph"], float(r["reg_factor"])): (r["exact"], r["exact_s"], r.get("exact_upper"))
        for r in rows
    }
    rerun = set(args.rerun.split(",")) - {""}
    if rerun:  # these families again, with a new exact reference (kept where it has its upper bound already)
        rows = [r for r in rows if r["family"] not in rerun]
        cache = {key: v for key, v in cache.items() if key[0] not in rerun or v[2] is not None}
    if args.rerun_warned:  # (the rows of the families run now)
        rows = [
            r for r in rows if not (r["warned"] and r["family"] in fams and r["family"] not in args.skip.split(","))
        ]
    paper = run_paper() if args.paper else paper
    threads = run_threads() if args.threads else threads

    def key(fam, graph, rf, dtype):
        return (fam, graph, float(rf), dtype)

    def not_run():
        done = {key(r["family"], r["graph"], r["reg_factor"], r.get("dtype", "float32")) for r in rows}
        return [m for m in plan if key(*m) not in done]

    skip = set(args.skip.split(",")) - {""}
    for fam, graph, rf, dtype in [] if args.skip_suite else not_run():
        if fam in skip or (args.time_limit is not None and time.perf_counter() - t_start > 60 * args.time_limit):
            continue
        nn = n if graph == "chain" else min(n, 500 if graph == "complete" else 300)
        rows.append(run_row(fam, graph, nn, rf, dtype=dtype, exact=cache.get((fam, graph, float(rf)))))
        write(args, rows, paper, threads, n, not_run() if args.time_limit or skip else ())
    md = write(args, rows, paper, threads, n, not_run())
    print("\n" + md)


if __name__ == "__main__":
    main()
