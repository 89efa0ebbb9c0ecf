# -*- coding: utf-8 -*-
"""Data-parallel NEMOT: samples per second, time to a given accuracy and scaling efficiency.

Run::

    python bench/bench_distributed.py            # ~5-10 min on a loaded 2-core machine
    python bench/bench_distributed.py --quick    # fewer steps, ~3 min

Every configuration is one ``torchrun`` launch (``python -m torch.distributed.run
--nproc_per_node=W``) of this script in ``--worker`` mode, so the measured runs
are exactly what a user runs:

- CPU: ``W = 2`` processes with one thread each (gloo on the loopback) and
  ``b_r = 128`` points per marginal per rank; ``W = 1`` with one thread and
  ``b = 128`` (the weak-scaling baseline) and ``b = 256`` (the same global
  batch: with ``distributed_loss='global'`` the very trajectory of the two
  ranks, so the ratio of times per step is the speed-up at equal accuracy);
  ``W = 1`` with two threads and ``b = 256`` (the same two cores used by
  intra-op threads instead of processes);
- GPU (whenever CUDA is available): ``W = 1 .. torch.cuda.device_count()``
  processes, one GPU each (NCCL), ``b_r = 128``; skipped on a machine
  without GPUs.

The learning rate is unchanged. Cases: a chain of k = 5
clouds (tree engine: the step is dominated by the networks) and the complete
graph on k = 3 clouds (triangle: the engine's ``O(b^3)`` work on the global
batch is replicated on every rank), each with ``distributed_loss='global'``
(the one-process loss of the global batch) and ``'local'`` (each rank's own
dual). Reported per configuration: milliseconds per step, samples per second
(points through the networks: ``W b_r k`` per step), the weak-scaling
efficiency (samples/s over ``W`` times the samples/s of one process, one
thread, ``b = 128``), the speed-up at equal global batch (time per step of
one process with ``b = W b_r`` over this one's), the time to reach 1% of the
exact value (the structured Sinkhorn value of the data; the first held-out
estimate, every 20 steps, within 1%, times the time per training step), and
the cost of the two
collectives of a step (the all-gather of the ``b_r x k`` potential values and
the all-reduce of the gradients), timed alone.

Writes ``bench/results/bench_distributed.{json,md,csv,png}`` (``--b-rank B`` other than 128:
``bench_distributed_bB.*``) and prints a markdown
table with the machine's load (``uptime``). The machine is shared: compare
ratios within one run.
"""
# License: MIT License

import argparse
import json
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
OUT = os.path.join(HERE, "results")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

B_RANK = 128
TARGET = 0.01
CASES = {
    "chain k=5": dict(k=5, n=2000, graph="chain", reg=0.5),
    "complete k=3": dict(k=3, n=1000, graph="complete", reg=1.0),
}


def _clouds(k, n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 2)) + 0.5 * i for i in range(k)]


def _reference(case):
    """The exact (structured Sinkhorn) value of the data."""
    c = CASES[case]
    import ot_multimarginal as om

    return float(
        om.empirical_emot_sinkhorn2(_clouds(c["k"], c["n"]), c["reg"], graph=c["graph"], stopThr=1e-7, numItermax=20000)
    )


def _time_collectives(b_rank, k, n_params, device, repeats=200):
    """Microseconds per all-gather of the (b_r, k) potentials and per all-reduce of the gradients."""
    import torch
    import torch.distributed as dist

    from ot_multimarginal.neural.distributed import gather_global

    if not dist.is_initialized():
        return None, None
    f = torch.randn(b_rank, k, device=device)
    g = torch.randn(n_params, device=device)
    out = {}
    for name, fn in (("gather", lambda: gather_global(f)), ("allreduce", lambda: dist.all_reduce(g))):
        for _ in range(10):
            fn()
        dist.barrier()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[name] = 1e6 * (time.perf_counter() - t0) / repeats
    return out["gather"], out["allreduce"]


def worker(spec):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(int(spec["threads"]))
    from ot_multimarginal.neural import NeuralEMOT

    device = spec["device"]
    rank = int(os.environ.get("RANK", 0))
    rows = []
    for case in spec["cases"]:
        c = CASES[case]
        X_s = _clouds(c["k"], c["n"])
        for loss in spec["losses"]:
            b_rank = int(spec["b_rank"])
            est = NeuralEMOT(
                c["reg"],
                graph=c["graph"],
                batch_size=b_rank,
                max_iter=spec["steps"],
                eval_every=20,
                patience=None,
                random_state=0,
                device=device,
                distributed_loss=loss,
                evaluation="mc",
                n_eval_batches=8,
            )
            est.fit(X_s)
            world = est.world_size_
            steps = est.n_iter_
            t = est.timings_["train"]
            n_params = sum(p.numel() for p in est.potentials_.parameters())
            dev = est.X_fit_[0].device
            gather_us, allreduce_us = _time_collectives(b_rank, c["k"], n_params, dev)
            rows.append(
                dict(
                    case=case,
                    loss=loss,
                    world=world,
                    threads=int(spec["threads"]),
                    device=str(dev.type),
                    backend=str(dist.get_backend()) if dist.is_initialized() else None,
                    b_rank=b_rank,
                    b_global=b_rank * world,
                    steps=steps,
                    train_s=t,
                    ms_per_step=1e3 * t / steps,
                    samples_per_s=b_rank * world * c["k"] * steps / t,
                    eval_step=list(est.history_["eval_step"]),
                    eval_value=list(est.history_["eval_value"]),
                    value=float(est.value_),
                    gather_us=gather_us,
                    allreduce_us=allreduce_us,
                    n_params=n_params,
                )
            )
            if loss == "global" and world == 1:
                break  # one process: the two losses are the same
    if rank == 0:
        with open(spec["out"], "w") as fh:
            json.dump(rows, fh)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world, threads, device, b_rank, steps, cases, losses, timeout=1800):
    out = os.path.join(OUT, ".bench_distributed_%d_%d_%s_%d.json" % (world, threads, device, b_rank))
    spec = dict(threads=threads, device=device, b_rank=b_rank, steps=steps, cases=cases, losses=losses, out=out)
    env = dict(
        os.environ,
        PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
        OMP_NUM_THREADS=str(threads),
        OPENBLAS_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
    )
    if device == "cpu" and any(name == "lo" for _, name in socket.if_nameindex()):
        env["GLOO_SOCKET_IFNAME"] = "lo"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=%d" % world,
        "--master_addr=127.0.0.1",
        "--master_port=%d" % _free_port(),
        os.path.abspath(__file__),
        "--worker",
        json.dumps(spec),
    ]
    subprocess.run(cmd, env=env, check=True, timeout=timeout, cwd=ROOT)
    with open(out) as fh:
        rows = json.load(fh)
    os.unlink(out)
    return rows


def _uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:  # pragma: no cover
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--gpus", type=int, default=None, help="GPU counts up to this (default: all)")
    parser.add_argument("--render", action="store_true", help="only rewrite the table, CSV and plot from the JSON")
    parser.add_argument(
        "--b-rank",
        type=int,
        default=B_RANK,
        help="points per marginal per rank (default 128; other values write bench_distributed_b<B>.*)",
    )
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    name = "bench_distributed" if args.b_rank == B_RANK else "bench_distributed_b%d" % args.b_rank
    if args.render:
        with open(os.path.join(OUT, name + ".json")) as fh:
            return render(json.load(fh), name)
    import torch

    steps = args.steps or (60 if args.quick else 200)
    os.makedirs(OUT, exist_ok=True)
    cases = list(CASES)
    up_start = _uptime()
    rows = []
    b = int(args.b_rank)
    configs = [(1, 1, "cpu", b), (1, 1, "cpu", 2 * b), (2, 1, "cpu", b), (1, 2, "cpu", 2 * b)]
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if args.gpus is not None:
        n_gpu = min(n_gpu, args.gpus)
    configs += [(w, 1, "cuda", b) for w in range(1, n_gpu + 1)]
    for world, threads, device, b_rank in configs:
        print("launching W=%d threads=%d %s b_r=%d ..." % (world, threads, device, b_rank), flush=True)
        # two threads on this shared machine mostly measure oversubscription: fewer steps suffice
        n = steps if threads == 1 else min(steps, 60)
        rows += launch(world, threads, device, b_rank, n, cases, ["global", "local"])
    up_end = _uptime()
    refs = {case: _reference(case) for case in cases}
    for r in rows:
        one = [
            q
            for q in rows
            if q["case"] == r["case"] and q["world"] == 1 and q["threads"] == 1 and q["device"] == r["device"]
        ]
        base = [q for q in one if q["b_global"] == b]
        same = [q for q in one if q["b_global"] == r["b_global"]]
        r["efficiency"] = r["samples_per_s"] / (r["world"] * base[0]["samples_per_s"]) if base else None
        r["speedup"] = same[0]["ms_per_step"] / r["ms_per_step"] if same else None
        ref = refs[r["case"]]
        r["reference"] = ref
        r["steps_to_target"] = next(
            (
                s
                for s, v in zip(r["eval_step"], r["eval_value"])
                if ref is not None and abs(v - ref) <= TARGET * abs(ref)
            ),
            None,
        )
        r["time_to_target_s"] = (
            r["steps_to_target"] * r["ms_per_step"] / 1e3 if r["steps_to_target"] is not None else None
        )
    result = dict(
        uptime_start=up_start,
        uptime_end=up_end,
        steps=steps,
        b_rank=b,
        target=TARGET,
        torch=torch.__version__,
        cases=CASES,
        rows=rows,
    )
    with open(os.path.join(OUT, name + ".json"), "w") as fh:
        json.dump(result, fh, indent=1)
    render(result, name)


def render(result, name="bench_distributed"):
    from _report import write_markdown

    text = table(result)
    print(text)
    write_markdown(
        name,
        "Data-parallel NEMOT, b_r = %d points per marginal per rank" % result["b_rank"],
        [
            "`emot_neural` on `torch.distributed`: 1 and 2 CPU processes (gloo), 1 process with 2 threads, and 1..N "
            "GPUs (NCCL) when present; samples per second, time to 1% of the structured Sinkhorn value, scaling "
            "efficiency, and the cost of the two collectives of a step.",
            text,
        ],
        source="`python bench/bench_distributed.py%s`"
        % ("" if result["b_rank"] == 128 else " --b-rank %d" % result["b_rank"]),
        figures=[(name + ".png", "samples per second and time to 1%")]
        if os.path.exists(os.path.join(OUT, name + ".png"))
        else (),
    )
    write_csv(result, name)
    plot(result, name)


def _fmt(x, f="%.3g"):
    return "—" if x is None else f % x


def table(result):
    refs = ", ".join(
        sorted(set("%s %.6g" % (r["case"], r["reference"]) for r in result["rows"] if r["reference"] is not None))
    )
    lines = [
        "uptime at start: %s" % result["uptime_start"],
        "uptime at end:   %s" % result["uptime_end"],
        "",
        "b_r = %d points per marginal per rank (one process: b_r or 2 b_r), %d steps (60 with two threads), "
        "torch %s; time to %g%% of the exact value (structured Sinkhorn: %s)."
        % (result["b_rank"], result["steps"], result["torch"], 100 * result["target"], refs),
        "",
        "| case | device | ranks × threads | batch (per rank) | loss | ms/step | samples/s | weak-scaling "
        "efficiency | speed-up, same global batch | steps to 1% | time to 1% (s) | all-gather (µs) | "
        "all-reduce (µs) |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            "| %s | %s%s | %d × %d | %d (%d) | %s | %.2f | %.0f | %s | %s | %s | %s | %s | %s |"
            % (
                r["case"],
                r["device"],
                " (%s)" % r["backend"] if r["backend"] else "",
                r["world"],
                r["threads"],
                r["b_global"],
                r["b_rank"],
                r["loss"] if r["world"] > 1 else "—",
                r["ms_per_step"],
                r["samples_per_s"],
                _fmt(r["efficiency"], "%.2f"),
                _fmt(r["speedup"], "%.2f"),
                _fmt(r["steps_to_target"], "%d"),
                _fmt(r["time_to_target_s"], "%.2f"),
                _fmt(r["gather_us"], "%.0f"),
                _fmt(r["allreduce_us"], "%.0f"),
            )
        )
    return "\n".join(lines)


def write_csv(result, name="bench_distributed"):
    """The table as CSV (``docs/source/distributed.rst`` includes it with ``csv-table``)."""
    import csv

    with open(os.path.join(OUT, name + ".csv"), "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "case",
                "device",
                "ranks x threads",
                "global batch (per rank)",
                "loss",
                "ms/step",
                "samples/s",
                "weak-scaling efficiency",
                "speed-up, same global batch",
                "time to 1% (s)",
            ]
        )
        for r in result["rows"]:
            w.writerow(
                [
                    r["case"],
                    r["device"],
                    "%d x %d" % (r["world"], r["threads"]),
                    "%d (%d)" % (r["b_global"], r["b_rank"]),
                    r["loss"] if r["world"] > 1 else "-",
                    "%.1f" % r["ms_per_step"],
                    "%.0f" % r["samples_per_s"],
                    _fmt(r["efficiency"], "%.2f"),
                    _fmt(r["speedup"], "%.2f"),
                    _fmt(r["time_to_target_s"], "%.2f"),
                ]
            )


def plot(result, name="bench_distributed"):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    rows = result["rows"]
    fig, axes = plt.subplots(1, len(result["cases"]), figsize=(5 * len(result["cases"]), 3.6))
    for ax, case in zip(axes if len(result["cases"]) > 1 else [axes], result["cases"]):
        rs = [r for r in rows if r["case"] == case]
        labels = [
            "%s %d×%d b=%d%s"
            % (r["device"], r["world"], r["threads"], r["b_global"], "" if r["world"] == 1 else " " + r["loss"])
            for r in rs
        ]
        ax.bar(range(len(rs)), [r["samples_per_s"] for r in rs], color="C0")
        ax.set_xticks(range(len(rs)))
        ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("samples / s")
        ax.set_title(case)
    fig.suptitle(
        "NEMOT data-parallel, %d points/marginal/rank (%s)"
        % (result["b_rank"], result["uptime_start"].split("load average:")[-1].strip()),
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, name + ".png"), dpi=110)
    print("wrote %s" % os.path.join(OUT, name + ".{json,md,csv,png}"))


if __name__ == "__main__":
    main()
