# -*- coding: utf-8 -*-
"""mgw_neural beyond the exact engines (issue #22): k = 3 complete, n = 10⁴, defaults, one thread.

Isometric copies (in 2, 3 and 5 dimensions, rows permuted, translated) of a 2-D Gaussian cloud and of the 4 × 1
box of ``bench_mgw._neural_problem``; reg = 0.1; ``NeuralMGW(0.1, random_state=seed)`` with its defaults (the
value over batches, no exact engine at that size). Per run: time, outer steps, how the run stopped
(``convergence_``: 'tol', 'noise', or unconverged), the value (an estimate) and its standard error, the last
A_ij change. ``--previous`` also runs the rule of the previous version in the same session (no stop by noise:
``n_iter_no_change`` out of reach; undamped updates after accepted steps: ``NOISY_THETA = 1``), so the two are
compared on the same machine load. No matching accuracy: at n = 10⁴ ``match`` samples (``method='sampled'``) at
2-3 minutes per edge under load (``bench_mgw.md``'s notes).

Writes bench/results/bench_mgw_large.{json,md,png}; rows are saved after every run (``--resume`` continues,
``--render`` rewrites the page from the JSON).
--reference: the batch path at a size the exact engines reach (default n = 1000): the neural alternation with its
objective forced over batches, against mgw_sinkhorn2 and the exact objective of the plan of the learned A_ij.
--no-retrain: the n = 10⁴ runs with a step scored as first fitted (no retraining of a step whose estimate has a
relative standard error above RETRAIN_REL_SE), rows kept beside this version's (JSON key rows_no_retrain).
Usage: python bench/bench_mgw_large.py [--n=N] [--seeds=S] [--previous] [--reference] [--no-retrain]
       [--resume|--render]
"""

import os
import sys
import time
import warnings
from contextlib import ExitStack, contextmanager
from unittest import mock

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _report import help_and_exit, load_results, md_table, pyplot, save_results, write_markdown  # noqa: E402
from bench_mgw import _neural_problem, copy_in  # noqa: E402

NAME = "bench_mgw_large"
# --reference rows of this version's rule (1: the start is the subsample screening's answer; 2: a principal-axes start
# kept by the screening takes the axes of all the points; 3: the same, the cross-moments over 128 batches instead of
# 32; 4: the same, a rejection followed by the rejected step's own update before the damped ones; 5: the same rules,
# float32 products that underflow repaired in float64 instead of by log-sum-exp; 6: the same, a step's NEMOT value
# estimated over the n_moment_batches batches of the moments instead of the fit's 32 held-out batches; 7: the same, a
# step whose estimate has a relative standard error above RETRAIN_REL_SE trained on before it is judged); --resume
# reruns the rows of earlier rules and keeps them beside
START_RULE = 7
RULES = {
    1: "subsample's answer, 32 batches",
    2: "all points' axes, 32 batches",
    3: "all points' axes, 128 batches",
    4: "all points' axes, 128 batches, look-ahead",
    5: "the same, float32 products repaired in float64",
    6: "the same, step value over the moment batches",
    7: "the same, noisy steps trained on",
}


def _arg(name, default):
    got = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--%s=" % name)]
    return type(default)(got[0]) if got else default


def problem(family, n, seed):
    """k = 3 isometric copies (2, 3, 5-D) of a 2-D Gaussian cloud ('gauss') or of the 4 x 1 box ('box')."""
    if family == "box":
        return _neural_problem(3, n, seed)[0]
    rng = np.random.RandomState(seed)
    X = rng.randn(n, 2)
    return [copy_in(rng, X, d)[0] for d in (2, 3, 5)]


def run(family, n, seed, variant, retrain=True):
    import torch

    import ot_multimarginal._gw_alternation as alternation
    import ot_multimarginal.neural.gromov as neural_gromov
    from ot_multimarginal.neural import NeuralMGW

    torch.set_num_threads(1)
    X_s = problem(family, n, seed)
    kw = {} if variant == "this" else dict(n_iter_no_change=10**9)
    theta = alternation.NOISY_THETA if variant == "this" else 1.0
    retrain_max = neural_gromov.RETRAIN_MAX if retrain else 0  # --no-retrain: a step is scored as first fitted
    with (
        mock.patch.object(alternation, "NOISY_THETA", theta),
        mock.patch.object(neural_gromov, "RETRAIN_MAX", retrain_max),
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        est = NeuralMGW(0.1, random_state=seed, **kw).fit(X_s)
        seconds = time.perf_counter() - t0
    h = est.history_
    best = int(np.argmin(h["objective"]))
    row = dict(
        family=family,
        n=n,
        seed=seed,
        variant=variant,
        seconds=seconds,
        steps=est.n_iter_,
        convergence=est.convergence_ or "unconverged",
        value=float(est.value_),
        se=float(h["objective_se"][best]),
        last_A_change=float(h["A_change"][-1]),
        objective=[float(v) for v in h["objective"]],
        objective_se=[float(v) for v in h["objective_se"]],
        accepted=list(h["accepted"]),
        theta=[float(v) for v in h["theta"]],
        warnings=sorted({str(w.message)[:90] for w in caught}),
        load=os.getloadavg(),
    )
    print(
        "%-5s n=%d seed %d %-8s %6.1f s  %2d steps  %-11s value %.5f (se %.1e)"
        % (family, n, seed, variant, seconds, row["steps"], row["convergence"], row["value"], row["se"]),
        flush=True,
    )
    return row


@contextmanager
def batch_path():
    """NeuralMGW on the path it takes beyond the engines, at a size they reach: the GW objective, the NEMOT
    value and its refinement all over batches (the estimator's value with its default budget, not its plans on
    batches); the start screened on a subsample (as beyond 3000 points), not by mgw_sinkhorn on all the points."""
    from ot_multimarginal.neural import estimator, evaluation, gromov

    affordable = estimator.exact_is_affordable
    with ExitStack() as patches:
        for module in (gromov, evaluation):
            patches.enter_context(mock.patch.object(module, "exact_is_affordable", lambda *a, **k: False))
        patches.enter_context(
            mock.patch.object(
                estimator, "exact_is_affordable", lambda c, s, *a, **k: bool(a or k) and affordable(c, s, *a, **k)
            )
        )
        patches.enter_context(mock.patch.object(gromov, "NEWTON_MAX_POINTS", 0))
        yield


def exact_objective(pr, A):
    """The objective of the exact EMOT plan of c_A (one exact solve, float64) on the neural problem ``pr``'s clouds."""
    import torch

    from ot_multimarginal._gw_alternation import Alternation, GWProblem, SinkhornInner

    f64 = [X.to(torch.float64) for X in pr.X_s]
    exact = GWProblem(pr.nx, f64, [a.to(torch.float64) for a in pr.a_s], pr.edges, pr.reg)
    alt = Alternation(exact, SinkhornInner(exact, stopThr=1e-8, tol_start=1e-8), [M.to(torch.float64) for M in A])
    alt.step()
    return float(alt.history[-1])


def run_reference(family, n, seed, sinkhorn=None):
    """The batch path at a size the exact engines reach: NeuralMGW with its objective forced over batches (as
    beyond the engines; no exact finish) against mgw_sinkhorn2 (defaults), and the exact objective of the plan
    of the learned A_ij (one exact EMOT solve): how good the learned A_ij are, and how far the estimate is."""
    import torch

    import ot_multimarginal as om
    from ot_multimarginal.neural import NeuralMGW

    torch.set_num_threads(1)
    X_s = problem(family, n, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if sinkhorn is None:
            t0 = time.perf_counter()
            ref = float(om.mgw_sinkhorn2(X_s, 0.1, random_state=seed))
            t_ref = time.perf_counter() - t0
        else:  # (the value of an earlier run of this row: the same problem and call)
            ref, t_ref = sinkhorn
        with batch_path():
            t0 = time.perf_counter()
            est = NeuralMGW(0.1, random_state=seed, polish=False).fit(X_s)
            t_neural = time.perf_counter() - t0
            pr = est._problem
            A_start = est._start(pr.nx, pr.X_s, pr.a_s, pr.edges, pr.reg, seed)[0]  # (deterministic: the same start)
        # the exact plan of the learned A_ij, and of the start's
        exact_value = [exact_objective(pr, A) for A in (est.A_used_, A_start)]
    h = est.history_
    best = int(np.argmin(h["objective"]))
    row = dict(
        family=family, n=n, seed=seed, value_sinkhorn=ref, seconds_sinkhorn=t_ref, value_estimate=float(est.value_),
        se=float(h["objective_se"][best]), value_learned_A=exact_value[0], value_start_A=exact_value[1],
        seconds_neural=t_neural,
        steps=est.n_iter_, convergence=est.convergence_ or "unconverged", objective=[float(v) for v in h["objective"]],
        accepted=list(h["accepted"]), load=os.getloadavg(), screening="subsample", init=est.init_,
        start_rule=START_RULE,
    )  # fmt: skip
    print(
        "%-5s n=%d seed %d  sinkhorn %.5f (%.0f s)  neural estimate %.5f (se %.1e, %s, %d steps, %.0f s)  "
        "exact plan of the learned A %.5f (%+.2f %%), of the start's %.5f (%+.2f %%)"
        % (family, n, seed, ref, t_ref, row["value_estimate"], row["se"], row["convergence"], row["steps"], t_neural,
           row["value_learned_A"], 100 * (row["value_learned_A"] - ref) / abs(ref),
           row["value_start_A"], 100 * (row["value_start_A"] - ref) / abs(ref)),
        flush=True,
    )  # fmt: skip
    return row


def _key(r):
    return r["family"], r["n"], r["seed"]


def render(rows, reference=(), earlier_rules=()):
    rows = sorted(rows, key=lambda r: (r["family"], r["n"], r["seed"], r["variant"] != "this"))
    table = []
    for r in rows:
        other = [o for o in rows if (o["family"], o["n"], o["seed"]) == (r["family"], r["n"], r["seed"]) and o is not r]
        diff = "%+.2f %%" % (100 * (r["value"] - other[0]["value"]) / abs(other[0]["value"])) if other else ""
        table.append(
            [
                r["family"], r["n"], r["seed"], r["variant"], "%.1f" % r["seconds"], r["steps"],
                "%d / %d" % (sum(1 for a in r["accepted"] if not a), len(r["accepted"])),
                r["convergence"], "%.5f" % r["value"], "%.1e" % r["se"], diff if r["variant"] == "this" else "",
                "%.3f" % r["last_A_change"], "%.1f" % r["load"][0],
            ]
        )  # fmt: skip
    this = [r for r in rows if r["variant"] == "this"]
    blocks = [
        "k = 3 complete, isometric copies (2, 3, 5-D) of a 2-D Gaussian cloud and of the 4 × 1 box, reg = 0.1, "
        "`NeuralMGW(0.1, random_state=seed)` defaults, one thread. The value is the NEMOT estimate over batches "
        "(no exact engine at this size); `se` its standard error at the best step. `convergence`: `noise` = "
        "stationary to the estimator's resolution (3 steps in a row without lowering the best objective by more "
        "than two standard errors, one of them within them), `tol` = the stopping rule, `unconverged` (warned). "
        "`previous` = the stopping rule of the previous version (no stop by noise, undamped updates after accepted "
        "steps), from the same start, run in the same session; `vs previous` = this version's value relative to "
        "it (lower is better; values differing by less than about 2·√2·se are not distinguishable)."
        + (
            ""
            if any(r["variant"] == "previous" for r in rows)
            else " This run has no `previous` rows; that comparison, made with 32 moment batches, is kept in the "
            "JSON's `rows_moment_batches_32`."
        ),
        md_table(
            [
                "family",
                "n",
                "seed",
                "variant",
                "s",
                "steps",
                "rejected",
                "convergence",
                "value",
                "se",
                "vs previous",
                "last A change",
                "load",
            ],
            table,
            "lrrlrrrlrrrrr",
        ),  # fmt: skip
    ]
    if this:
        worst = max(r["seconds"] for r in this)
        conv = sum(r["convergence"] != "unconverged" for r in this)
        blocks.append(
            "This version: %d of %d runs converged; slowest %.1f s (target ≤ 120 s on a quiet machine: see the load "
            "column, 2 cores)." % (conv, len(this), worst)
        )

    def earlier(rows_before, r):
        got = [b for b in rows_before if b["variant"] == "this" and _key(b) == _key(r)]
        return got[0] if got else None

    sets = [(name, rows_before) for name, rows_before in earlier_rules if rows_before][-3:]  # (the latest three)
    pairs = [(r, [earlier(rows_before, r) for _, rows_before in sets]) for r in this]
    pairs = [(r, bs) for r, bs in pairs if any(bs)]
    if pairs:

        def cell(b, r):
            if b is None:
                return ["", "", ""]
            rel = 100 * (r["value"] - b["value"]) / abs(b["value"])
            return ["%.5f" % b["value"], "%.1e" % b["se"], "%+.2f %%" % rel]

        header = ["family", "n", "seed"]
        for name, _ in sets:
            header += [name, "se", "this vs"]
        blocks += [
            "Against the earlier rules (their rows kept in the JSON): *earlier start* (`rows_start_rule_1`: the "
            "subsample screening's own answer, before the principal-axes start took the axes of all the points), "
            "*32 moment batches* (`rows_moment_batches_32`: this start, the cross-moments of each step averaged over "
            "32 batches instead of 128) and *no look-ahead* (`rows_no_lookahead`: 128 batches, a rejected step "
            "followed at once by damped steps, without first trying its own update) and *float32 log-sum-exp repair* "
            "(`rows_float32_lse_repair`: the look-ahead rule with the implementation before the float64 repair: the "
            "float32 products of the training batches that underflow, most of them at reg = 0.1, recomputed by a "
            "b × b × b log-sum-exp instead of one float64 product) and *value over 32 held-out batches* "
            "(`rows_value_held_out_32`: the float64 repair, a step's NEMOT value taken from the fit's own held-out "
            "estimate over 32 batches instead of the 128 batches of the moments) and *no retraining* (`rows_no_"
            "retrain`, `--no-retrain`, run with this code: a step judged on its first fit; this version trains a "
            "step whose estimate has a standard error above 1 % of it on, up to 3 times, and keeps the highest of "
            "its fits' estimates) and *no retraining, 7 Dec* (`rows_no_retrain_dec7`: the same rule, run on 7 "
            "December before a change of the float32 rounding of the batch log-partitions, 49ea59f: the same "
            "values to float32 accuracy, yet Gaussian seed 0 went from 1.128 to 0.548, se 0.093: one first fit "
            "under-trained by chance); `this vs` = this version's value relative to each. The values are dual "
            "estimates (see `--reference` below for how far from the exact objective): a lower one is better only "
            "where both fits are well trained (under-trained potentials give low values), and differences within "
            "about 2·√2·se do not rank them. The table shows the latest three.",
            md_table(
                header + ["this", "se"],
                [
                    [r["family"], r["n"], r["seed"]]
                    + [c for b in bs for c in cell(b, r)]
                    + ["%.5f" % r["value"], "%.1e" % r["se"]]
                    for r, bs in pairs
                ],
                "lrr" + "rrr" * len(sets) + "rr",
            ),  # fmt: skip
        ]
        secs = [(r["seconds"] / r["steps"], bs[-1]["seconds"] / bs[-1]["steps"]) for r, bs in pairs if bs[-1]]
        if secs:
            blocks.append(
                "Seconds an outer step, this version: %.1f-%.1f; *%s*: %.1f-%.1f (each row's load in its table)."
                % (min(a for a, _ in secs), max(a for a, _ in secs), sets[-1][0],
                   min(b for _, b in secs), max(b for _, b in secs))
            )  # fmt: skip
    reference = [r for r in reference if "value_start_A" in r]  # (rows of this version of the mode)
    if reference:
        ref_rows = [
            [
                r["family"], r["n"], r["seed"],
                RULES[r.get("start_rule", 1)],
                "%.5f" % r["value_sinkhorn"], "%.0f" % r["seconds_sinkhorn"],
                "%.5f" % r["value_estimate"], "%.1e" % r["se"], r["convergence"], r["steps"],
                "%.0f" % r["seconds_neural"],
                "%.5f" % r["value_learned_A"],
                "%+.2f %%" % (100 * (r["value_learned_A"] - r["value_sinkhorn"]) / abs(r["value_sinkhorn"])),
                "%+.2f %%" % (100 * (r["value_start_A"] - r["value_sinkhorn"]) / abs(r["value_sinkhorn"])),
                "%+.2f %%" % (100 * (r["value_estimate"] - r["value_learned_A"]) / abs(r["value_learned_A"])),
            ]
            for r in sorted(reference, key=lambda r: (r["family"], r["n"], r["seed"], -r.get("start_rule", 1)))
        ]  # fmt: skip
        current = [r for r in reference if r.get("start_rule", 1) == START_RULE] or reference
        worst = max(current, key=lambda r: (r["value_learned_A"] - r["value_sinkhorn"]) / abs(r["value_sinkhorn"]))
        blocks += [
            "## The batch path against a reference (`--reference`)",
            "At a size the exact engines reach, the neural alternation is run with its objective forced over "
            "batches and its start screened on a subsample (200 points per cloud), the path it takes beyond the "
            "engines (no exact finish), and compared with `mgw_sinkhorn2` (defaults). *rule*: where the screening "
            "keeps a principal-axes start, the current rules take the axes of "
            "all the points (`all points' axes`); the first, the subsample's own answer, whose clouds are "
            "independent draws (their principal axes, and the rotation of the A_ij, arbitrary on a nearly "
            "isotropic cloud); `128 batches`: the cross-moments of each step averaged over 128 batches (the "
            "default now), formerly 32; `look-ahead`: a rejected step is followed by its own "
            "update (the moments of its plan, where the exact alternation would go next) before the damped steps "
            "(a step's estimated objective is the one linearised at its A_ij, above its plan's: see "
            "`bench_mgw_refits`); `float32 products repaired in float64`: the same rules, the "
            "underflowed float32 products of the training batches redone in float64 instead of by a b × b × b "
            "log-sum-exp (the same values, 4-5× faster); `step value over the moment batches`: "
            "a step's NEMOT value averaged over the 128 batches of its moments, not the fit's 32 held-out ones; "
            "`noisy steps trained on` (this version): a step whose estimate has a standard error above 1 % of it "
            "trained on (up to 3 times), the highest of its fits' estimates kept. "
            "The rows of every rule are listed. "
            "`exact, learned A` is the objective of the exact plan for the learned A_ij (one exact "
            "EMOT solve, float64): how good the A_ij are (against `mgw_sinkhorn2`'s value; `start A`: the same for "
            "the screened start the alternation began from) and how far the "
            "estimate is from the value of its own A_ij (a NEMOT value is a dual value: under-trained potentials "
            "give lower estimates).",
            md_table(
                [
                    "family",
                    "n",
                    "seed",
                    "rule",
                    "mgw_sinkhorn2",
                    "s",
                    "estimate",
                    "se",
                    "convergence",
                    "steps",
                    "s",
                    "exact, learned A",
                    "vs sinkhorn",
                    "start A vs sinkhorn",
                    "estimate vs exact",
                ],
                ref_rows,
                "lrrlrrrrlrrrrrr",
            ),  # fmt: skip
            "Worst seed of this version: %s seed %d, the learned A_ij %+.2f %% above `mgw_sinkhorn2`."
            % (
                worst["family"],
                worst["seed"],
                100 * (worst["value_learned_A"] - worst["value_sinkhorn"]) / abs(worst["value_sinkhorn"]),
            ),  # fmt: skip
        ]
    plt = pyplot()
    figures = []
    if plt is not None and rows:
        fams = sorted({r["family"] for r in rows})
        fig, axes = plt.subplots(1, len(fams), figsize=(5.5 * len(fams), 4), squeeze=False)
        for ax, fam in zip(axes[0], fams):
            for r in [r for r in rows if r["family"] == fam]:
                c = "C%d" % r["seed"]
                ls = "-" if r["variant"] == "this" else ":"
                t = np.arange(1, len(r["objective"]) + 1)
                label = "seed %d %s (%s)" % (r["seed"], r["variant"], r["convergence"])
                ax.errorbar(t, r["objective"], yerr=2 * np.asarray(r["objective_se"]), color=c, ls=ls, marker="o",
                            ms=3, lw=1, label=label)  # fmt: skip
                rej = [i for i, a in enumerate(r["accepted"]) if not a]
                ax.plot(t[rej], np.asarray(r["objective"])[rej], "x", color=c, ms=7)
            ax.set_title("%s copies, k = 3, n = %d" % (fam, rows[0]["n"]))
            ax.set_xlabel("outer step (x: rejected; bars: 2 se)")
            ax.set_ylabel("objective (estimate)")
            ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", NAME + ".png"), dpi=110)
        figures.append((NAME + ".png", "objective per outer step, this version and the previous rule"))
    write_markdown(
        NAME,
        "mgw_neural beyond the exact engines (n = 10⁴)",
        blocks,
        source="`python bench/bench_mgw_large.py --seeds=3` and `--reference --seeds=2` (`--previous` for the "
        "JSON's earlier rows), rows of several "
        "runs merged with `--resume` (each row's load average is in the JSON; the n = 10⁴ table gives it)",
        figures=figures,
    )


def main():
    help_and_exit(__doc__)
    n, seeds = _arg("n", 1000 if "--reference" in sys.argv else 10000), _arg("seeds", 3)
    saved = load_results(NAME) if {"--resume", "--render", "--no-retrain"} & set(sys.argv) else {}
    rows, reference = list(saved.get("rows", [])), list(saved.get("reference", []))
    kept = {key: v for key, v in saved.items() if key not in ("rows", "reference", "load")}  # (earlier rules' rows)
    if "--reference" in sys.argv and "--render" not in sys.argv:
        for family in ("gauss", "box"):
            for seed in range(seeds):
                old = [r for r in reference if (r["family"], r["n"], r["seed"]) == (family, n, seed)]
                if any(r.get("start_rule", 1) == START_RULE and "value_start_A" in r for r in old):
                    continue
                sinkhorn = (old[0]["value_sinkhorn"], old[0]["seconds_sinkhorn"]) if old else None
                reference = [r for r in reference if r not in old or "value_start_A" in r]  # earlier rules kept
                reference.append(run_reference(family, n, seed, sinkhorn))
                save_results(NAME, rows, reference=reference, **kept)
    elif "--render" not in sys.argv:
        retrain = "--no-retrain" not in sys.argv  # else: the rule before the retraining of noisy steps, this rounding
        done = rows if retrain else kept.setdefault("rows_no_retrain", [])
        variants = ["this", "previous"] if "--previous" in sys.argv else ["this"]
        for family in ("gauss", "box"):
            for seed in range(seeds):
                for variant in variants:
                    if any((r["family"], r["n"], r["seed"], r["variant"]) == (family, n, seed, variant) for r in done):
                        continue
                    done.append(run(family, n, seed, variant, retrain))
                    save_results(NAME, rows, reference=reference, **kept)
    earlier_rules = [
        ("earlier start", kept.get("rows_start_rule_1", ())),
        ("32 moment batches", kept.get("rows_moment_batches_32", ())),
        ("no look-ahead", kept.get("rows_no_lookahead", ())),
        ("float32 log-sum-exp repair", kept.get("rows_float32_lse_repair", ())),
        ("value over 32 held-out batches", kept.get("rows_value_held_out_32", ())),
        ("no retraining, 7 Dec", kept.get("rows_no_retrain_dec7", ())),
        ("no retraining", kept.get("rows_no_retrain", ())),
    ]
    render(rows, reference, earlier_rules)


if __name__ == "__main__":
    main()
