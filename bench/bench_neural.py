# -*- coding: utf-8 -*-
"""Neural EMOT (``emot_neural``) against the exact structured Sinkhorn, and the cost of a training step.

Run::

    python bench/bench_neural.py --quick    # small sizes, a few minutes
    python bench/bench_neural.py            # the paper's sizes (complete k=4 up to n=1e4, circle k=10 up to 8e4)
    python bench/bench_neural.py --parts steps   # only part (3)

Parts
-----
(1) ``runtime``: the paper's runtime figure (Tsur et al. 2025, Fig. "runtime"; figures read off the
    plot in ``shared/notes/nemot.md`` §4) redone on this CPU. Data: the paper's synthetic setting,
    k clouds uniform on ``[-1/sqrt(d), 1/sqrt(d)]^d``, d = 5, cost ``sum_{(i,j) in E} ||x_i - x_j||^2``,
    ε = 1, uniform weights. Complete graph with k = 4 (n = 50 .. 1e4) and circle with k = 10
    (n = 250 .. 8e4). For each n: our exact structured Sinkhorn (``empirical_emot_sinkhorn2``,
    contraction / cycle engine, stopThr 1e-6) as far as it runs in the time limit, and
    ``emot_neural`` with its default settings (end to end: the fit and the final evaluation).
    Accuracy of the neural value: relative to Sinkhorn's value where it ran, else to a long neural
    run (4x the steps, evaluated on many more held-out batches). The gap of the zero potentials
    (the dual at φ = 0) is reported too, so that "within 1%" can be judged; the k = 4, n = 1e4 case is
    repeated at ε = 0.1 (harder).
(2) ``reference``: the authors' code (GitHub DorTsur/NMOT) is not run here (see ``bench_neural_reference.py``).
(3) ``steps``: time of one training step (loss, backward, Adam step; the networks included) against
    the batch size b for complete (k = 3, 4), circle and chain (k = 3, 5, 10, 20) graphs, float32.
    The flops of the combinatorial loss's matrix products (forward; the backward about doubles
    them) over the step time, as a fraction of this machine's float32 matrix-product rate
    (``1024 x 1024`` products, measured in the same run). Per-step cost must be linear in k for chains
    and circles (the ``ms/k`` column).

Timings use one torch thread by default (``--threads``); the machine is shared, ``uptime`` is
printed with the results: compare ratios within one run.
"""
# License: MIT License

import argparse
import datetime
import importlib
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.costs.pointcloud import PointCloudCost  # noqa: E402
from ot_multimarginal.neural import NeuralEMOT  # noqa: E402
from ot_multimarginal.neural.evaluation import exact_is_affordable, monte_carlo_dual  # noqa: E402
from ot_multimarginal.neural.objectives import exact_dual  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")

# the paper's runtimes (seconds), read off its figure (notes §4); None: not shown
PAPER = {
    ("complete", 4): {"sinkhorn": {50: 10, 100: 170, 250: 5e3}, "nemot": {100: 8, 1000: 45, 10000: 500}},
    ("circle", 10): {"sinkhorn": {250: 500, 1000: 2e3, 10000: 1.5e5}, "nemot": {250: 18, 10000: 650, 80000: 3e3}},
}


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return "?"


def clouds(k, n, d, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.random((n, d)) * 2 - 1) / math.sqrt(d) for _ in range(k)]


def matmul_rate(n=1024, repeats=5):
    A = torch.randn(n, n)
    B = torch.randn(n, n)
    A @ B
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def zero_potential_dual(X_s, graph, reg, n_batches=64, b=64):
    """The dual at φ = 0 (exact when the data fits an engine, else Monte Carlo)."""
    cost = PointCloudCost(len(X_s), graph)
    Xt = [torch.tensor(X) for X in X_s]
    w = [torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=torch.float64) for X in X_s]
    f = [torch.zeros(X.shape[0], dtype=torch.float64) for X in X_s]
    if exact_is_affordable(cost, [X.shape[0] for X in X_s]):
        return float(exact_dual(cost, Xt, f, reg, w))
    v, _, _ = monte_carlo_dual(cost, Xt, f, w, reg, b, n_batches, torch.Generator().manual_seed(5))
    return float(v)


def sinkhorn_limit(graph, k, n):
    """Whether our exact Sinkhorn runs at this size within a few minutes on this CPU."""
    if graph == "complete":
        return n <= 250
    return n <= 1000


def run_runtime(args):
    rows = []
    cases = [("complete", 4, [50, 100, 250, 1000, 10000]), ("circle", 10, [250, 1000, 10000, 80000])]
    if args.quick:
        cases = [("complete", 4, [50, 100, 1000]), ("circle", 10, [250, 1000])]
    if args.complete_ns is not None or args.circle_ns is not None:
        cases = [("complete", 4, _ints(args.complete_ns)), ("circle", 10, _ints(args.circle_ns))]
    for graph, k, ns in cases:
        for n in ns:
            for reg in [1.0, 0.1] if (graph == "complete" and n == 10000) else [1.0]:
                X_s = clouds(k, n, args.d)
                row = {"graph": graph, "k": k, "n": n, "d": args.d, "reg": reg}
                if sinkhorn_limit(graph, k, n):
                    t = time.perf_counter()
                    v = om.empirical_emot_sinkhorn2(X_s, reg, graph=graph, stopThr=1e-6, numItermax=5000, warn=False)
                    row["sinkhorn_s"] = time.perf_counter() - t
                    row["sinkhorn_value"] = float(v)
                t = time.perf_counter()
                est = NeuralEMOT(reg, graph=graph, random_state=0).fit(X_s)
                row["neural_s"] = time.perf_counter() - t
                row["neural_value"] = float(est.value_)
                row["neural_method"] = est.value_method_
                row["neural_se"] = est.value_se_
                row["neural_steps"] = est.n_iter_
                row["neural_ms_per_step"] = 1e3 * est.timings_["train"] / max(est.n_iter_, 1)
                if "sinkhorn_value" in row:
                    ref, ref_kind = row["sinkhorn_value"], "sinkhorn"
                else:
                    long = NeuralEMOT(
                        reg, graph=graph, random_state=1, max_iter=4 * est.n_iter_, patience=None, n_eval_batches=256
                    ).fit(X_s)
                    ref, ref_kind = float(long.value_), "long neural run (%d steps)" % long.n_iter_
                    row["long_value"], row["long_se"] = ref, long.value_se_
                row["reference"] = ref_kind
                row["neural_rel_err"] = (row["neural_value"] - ref) / abs(ref)
                row["zero_potentials_rel_gap"] = (zero_potential_dual(X_s, graph, reg) - ref) / abs(ref)
                paper = PAPER.get((graph, k), {})
                row["paper_sinkhorn_s"] = paper.get("sinkhorn", {}).get(n)
                row["paper_nemot_s"] = paper.get("nemot", {}).get(n)
                rows.append(row)
                print(
                    "  runtime",
                    json.dumps({a: (round(b, 5) if isinstance(b, float) else b) for a, b in row.items()}),
                    flush=True,
                )
    return rows


def _ints(text):
    return [int(float(x)) for x in text.split(",")] if text else []


def step_time(graph, k, b, d=5, repeats=5):
    X_s = [torch.tensor(X, dtype=torch.float32) for X in clouds(k, max(b, 256), d)]
    est = NeuralEMOT(1.0, graph=graph, random_state=0, max_iter=repeats + 2, batch_size=b, eval_every=0)
    est.fit([X.numpy() for X in X_s])
    tr = est.trainer_
    tr.n_iter = 10**9
    tr.step()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        tr.step()
        best = min(best, time.perf_counter() - t)
    return best


def loss_flops(graph, k, b):
    """Multiply-adds x2 of the forward log-partition's matrix products."""
    if graph == "chain":
        return 2.0 * (k - 1) * b * b
    if graph == "circle" or (graph == "complete" and k == 3):
        return 2.0 * (k - 1) * b**3
    # complete k >= 4: one split product of b^k multiply-adds (ContractionEngine.log_partition_once)
    return 2.0 * float(b) ** k


def run_steps(args, rate):
    rows = []
    bs = [32, 64, 128, 256] if not args.quick else [32, 64, 128]
    cases = [
        ("complete", 3),
        ("complete", 4),
        ("circle", 3),
        ("circle", 5),
        ("circle", 10),
        ("circle", 20),
        ("chain", 3),
        ("chain", 5),
        ("chain", 10),
        ("chain", 20),
    ]
    if args.quick:
        cases = [("complete", 3), ("complete", 4), ("circle", 5), ("circle", 10), ("chain", 5), ("chain", 10)]
    for graph, k in cases:
        for b in bs:
            if graph == "complete" and k == 4 and b > 128 and args.quick:
                continue
            s = step_time(graph, k, b)
            fl = loss_flops(graph, k, b)
            row = {
                "graph": graph,
                "k": k,
                "b": b,
                "ms": 1e3 * s,
                "ms_per_k": 1e3 * s / k,
                "loss_gflop": fl / 1e9,
                "matmul_fraction": 3 * fl / s / rate,
            }
            rows.append(row)
            print(
                "  step",
                json.dumps({a: (round(v, 4) if isinstance(v, float) else v) for a, v in row.items()}),
                flush=True,
            )
    return rows


def fmt(x, p=3):
    if x is None:
        return "–"
    if isinstance(x, float):
        return ("%." + str(p) + "g") % x
    return str(x)


def tables(out):
    lines = []
    if out.get("runtime"):
        lines.append(
            "| graph | k | n | ε | Sinkhorn (ours) s | paper Sinkhorn s | emot_neural s | paper NEMOT s | "
            "steps | neural rel. err | reference | zero potentials gap |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in out["runtime"]:
            lines.append(
                "| %s | %d | %d | %g | %s | %s | %s | %s | %d | %+.3f%% | %s | %+.1f%% |"
                % (
                    r["graph"],
                    r["k"],
                    r["n"],
                    r["reg"],
                    fmt(r.get("sinkhorn_s")),
                    fmt(r["paper_sinkhorn_s"]),
                    fmt(r["neural_s"]),
                    fmt(r["paper_nemot_s"]),
                    r["neural_steps"],
                    100 * r["neural_rel_err"],
                    r["reference"],
                    100 * r["zero_potentials_rel_gap"],
                )
            )
    if out.get("steps"):
        lines.append("")
        lines.append("| graph | k | b | ms / step | ms / step / k | loss GFLOP (fwd) | fraction of matmul rate |")
        lines.append("|---|---|---|---|---|---|---|")
        for r in out["steps"]:
            lines.append(
                "| %s | %d | %d | %.2f | %.2f | %.3g | %.1f%% |"
                % (r["graph"], r["k"], r["b"], r["ms"], r["ms_per_k"], r["loss_gflop"], 100 * r["matmul_fraction"])
            )
    return "\n".join(lines)


def plot(out, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    ax = axes[0]
    for (graph, k), color in ((("complete", 4), "C0"), (("circle", 10), "C1")):
        rows = [r for r in out.get("runtime", []) if r["graph"] == graph and r["k"] == k and r["reg"] == 1.0]
        if not rows:
            continue
        ns = [r["n"] for r in rows]
        ax.loglog(ns, [r["neural_s"] for r in rows], "o-", color=color, label="emot_neural %s k=%d" % (graph, k))
        sk = [(r["n"], r["sinkhorn_s"]) for r in rows if r.get("sinkhorn_s")]
        if sk:
            ax.loglog(*zip(*sk), "s--", color=color, label="our Sinkhorn %s k=%d" % (graph, k))
        p = PAPER[(graph, k)]
        ax.loglog(
            list(p["nemot"]),
            list(p["nemot"].values()),
            "^:",
            color=color,
            alpha=0.5,
            label="paper NEMOT %s k=%d" % (graph, k),
        )
        ax.loglog(
            list(p["sinkhorn"]),
            list(p["sinkhorn"].values()),
            "v:",
            color=color,
            alpha=0.3,
            label="paper Sinkhorn %s k=%d" % (graph, k),
        )
    ax.set_xlabel("n (points per marginal)")
    ax.set_ylabel("seconds")
    ax.set_title("runtime (ε = 1, d = 5)")
    ax.legend(fontsize=6)
    ax = axes[1]
    keys = sorted({(r["graph"], r["k"]) for r in out.get("steps", [])})
    for graph, k in keys:
        rows = [r for r in out["steps"] if r["graph"] == graph and r["k"] == k]
        ax.loglog([r["b"] for r in rows], [r["ms"] for r in rows], "o-", label="%s k=%d" % (graph, k))
    ax.set_xlabel("batch size b")
    ax.set_ylabel("ms per training step")
    ax.set_title("training step (float32, combinatorial loss)")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def report(name, out):
    """Write ``bench/results/<name>.md`` from the saved results (runtime and step tables, run conditions)."""
    from _report import write_markdown

    runs = [
        "%s (%s; float32 matmul %.1f GFLOP/s)"
        % (r["date"], (r.get("uptime_before") or "").split(",  ")[-1], r.get("matmul_gflops_float32") or float("nan"))
        for r in out.get("previous_runs", [])
    ]
    runs.append(
        "%s (%s; float32 matmul %.1f GFLOP/s)"
        % (out["date"], out["uptime_before"].split(",  ")[-1], out["matmul_gflops_float32"])
    )
    write_markdown(
        name,
        "Neural estimation (NEMOT) at the paper's sizes",
        [
            "`emot_neural` with its default settings against our exact structured Sinkhorn and the figures of the "
            "paper (Tsur et al. 2025). Data as in the paper: uniform on [−1/√d, 1/√d]^d, d = 5, cost Σ_E ‖x_i − x_j‖², "
            'float32 training, %d torch thread(s). "neural rel. err": against our exact Sinkhorn where it ran, else '
            'against a 4× longer neural run; "zero potentials gap": the dual at φ = 0, to show what 1%% means. '
            'Second table: the time of one training step (loss, backward, Adam) against the batch size b; "fraction '
            "of matmul rate\" = 3 × the flops of the loss's matrix products over the step time." % out["threads"],
            "Runs merged into this file (`--merge`; rows of a later run replace those of an earlier one): "
            + "; ".join(runs)
            + ". The machine is a shared 2-core CPU: compare rows of one run.",
            tables(out),
        ],
        source="`python bench/bench_neural.py --parts runtime,steps` (`--complete-ns`, `--circle-ns`, `--merge`)",
        figures=[
            (
                name + ".png",
                "seconds against n for emot_neural, our Sinkhorn and the paper; "
                "milliseconds per training step against the batch size",
            )
        ],
    )


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--parts", default="runtime,steps")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--d", type=int, default=5)
    p.add_argument("--complete-ns", default=None, help="n values of the complete k=4 rows (comma-separated)")
    p.add_argument("--circle-ns", default=None, help="n values of the circle k=10 rows (comma-separated)")
    p.add_argument("--merge", default=None, help="a previous JSON whose rows are kept unless rerun here")
    p.add_argument("--out", default=os.path.join(RESULTS, "bench_neural.json"))
    p.add_argument("--render", action="store_true", help="rewrite the .md results page from the JSON (--out), no run")
    args = p.parse_args()
    if args.render:
        with open(args.out) as f:
            return report(os.path.splitext(os.path.basename(args.out))[0], json.load(f))
    torch.set_num_threads(args.threads)
    importlib.import_module("torch._dynamo")  # torch.optim imports it on first use: keep it out of the timings

    parts = args.parts.split(",")
    out = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "threads": args.threads,
        "quick": args.quick,
        "uptime_before": uptime(),
    }
    rate = matmul_rate()
    out["matmul_gflops_float32"] = rate / 1e9
    print("float32 matmul rate: %.1f GFLOP/s (%d thread(s))" % (rate / 1e9, args.threads), flush=True)
    if "steps" in parts:
        out["steps"] = run_steps(args, rate)
    if "runtime" in parts:
        out["runtime"] = run_runtime(args)
    out["uptime_after"] = uptime()
    if args.merge:
        with open(args.merge) as f:
            prev = json.load(f)
        for part, key in (("runtime", ("graph", "k", "n", "reg")), ("steps", ("graph", "k", "b"))):
            new_keys = {tuple(r[a] for a in key) for r in out.get(part, [])}
            kept = [r for r in prev.get(part, []) if tuple(r[a] for a in key) not in new_keys]
            out[part] = sorted(kept + out.get(part, []), key=lambda r: tuple(r[a] for a in key))
        out["previous_runs"] = prev.get("previous_runs", []) + [
            {a: prev.get(a) for a in ("date", "uptime_before", "uptime_after", "matmul_gflops_float32", "quick")}
        ]
    os.makedirs(RESULTS, exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
    plot(out, os.path.splitext(args.out)[0] + ".png")
    print()
    print(tables(out))
    print()
    print("uptime before: %s\nuptime after:  %s" % (out["uptime_before"], out["uptime_after"]))
    report(os.path.splitext(os.path.basename(args.out))[0], out)


if __name__ == "__main__":
    main()
