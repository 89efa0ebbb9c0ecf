# -*- coding: utf-8 -*-
"""Peak memory of mgw_sinkhorn (issue #22): how many n x n float64 arrays it holds at once, against a baseline.

k = 2 (the case that reaches n = 10⁴: one n x n kernel per edge) on the isometric box copies of
``bench_mgw._neural_problem``, reg = 0.1, ``init`` 'auto' (the default: successive halving over five starts) and
'zero' (one alternation, POT's start), the default inner method (Newton up to 3000 points in all, log-domain
Sinkhorn beyond). Each run is a fresh process: the peak of the memory traced by ``tracemalloc`` (every NumPy array;
deterministic), in units of one n x n float64 array, the process's peak resident memory (VmHWM) and the time.
``--baseline=REV`` runs the same cases on the package at git revision REV (a temporary worktree) in the same
session, so the two are compared on the same machine.

Writes bench/results/bench_mgw_memory.{json,md,png}.
Usage: python bench/bench_mgw_memory.py [--n=1000,3000] [--baseline=REV]
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _report import help_and_exit, md_table, pyplot, save_results, write_markdown  # noqa: E402

NAME = "bench_mgw_memory"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _arg(name, default):
    got = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--%s=" % name)]
    return got[0] if got else default


def worker(k, n, init):
    """One run in this process: print a JSON line with the peaks, the time and the value."""
    import tracemalloc

    from _memory import proc_status, reset_peak
    from bench_mgw import _neural_problem

    import ot_multimarginal as om

    X_s = _neural_problem(k, n, 0)[0]
    reset_peak()
    rss0 = proc_status().get("VmRSS", 0)
    tracemalloc.start()
    t = time.perf_counter()
    value, log = om.mgw_sinkhorn2(X_s, 0.1, init=init, log=True)
    elapsed = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    st = proc_status()
    print(
        json.dumps(
            dict(
                k=k,
                n=n,
                init=init,
                peak_arrays=peak / (8.0 * n * n),
                rss_peak_mb=(st.get("VmHWM", 0) - rss0) / 2**20,
                time=elapsed,
                value=float(value),
                start=str(log["init"]),
                package=os.path.dirname(om.__file__),
            )
        )
    )


def run_case(k, n, init, src=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    if src is not None:
        env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", str(k), str(n), init],
        env=env,
        cwd=src or ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = json.loads(out.strip().splitlines()[-1])
    if src is not None and not row["package"].startswith(src):
        raise RuntimeError("the baseline run imported %s, not the worktree %s" % (row["package"], src))
    return row


def main():
    help_and_exit(__doc__)
    if "--worker" in sys.argv:
        i = sys.argv.index("--worker")
        worker(int(sys.argv[i + 1]), int(sys.argv[i + 2]), sys.argv[i + 3])
        return
    ns = [int(v) for v in _arg("n", "1000,3000").split(",")]
    baseline = _arg("baseline", None)
    cases = [(2, n, init) for n in ns for init in ("auto", "zero")]
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = None
        if baseline is not None:
            src = os.path.join(tmp, "baseline")
            subprocess.run(["git", "worktree", "add", "--detach", "-q", src, baseline], cwd=ROOT, check=True)
        try:
            for k, n, init in cases:
                row = dict(this=run_case(k, n, init))
                if src is not None:
                    row["baseline"] = run_case(k, n, init, src)
                t, b = row["this"], row.get("baseline")
                print(
                    "k=%d n=%5d init=%-4s  peak %5.1f n^2 arrays (baseline %s)  RSS peak %7.0f MB  %6.1f s  value %.9f"
                    % (
                        k,
                        n,
                        init,
                        t["peak_arrays"],
                        "%.1f" % b["peak_arrays"] if b else "-",
                        t["rss_peak_mb"],
                        t["time"],
                        t["value"],
                    )
                )
                rows.append(row)
        finally:
            if src is not None:
                subprocess.run(["git", "worktree", "remove", "--force", src], cwd=ROOT, check=False)
    load = save_results(NAME, rows, revision=rev.strip(), baseline=baseline)
    render(rows, rev.strip(), baseline, load)


def render(rows, rev, baseline, load):
    has_b = any("baseline" in r for r in rows)
    header = [
        "k",
        "n",
        "init",
        "inner method",
        "peak (n x n float64 arrays)",
        "peak RSS (MB)",
        "time (s)",
        "value",
        "start kept",
    ]
    if has_b:
        header += ["baseline peak (arrays)", "baseline peak RSS (MB)", "baseline time (s)", "same value"]
    body = []
    for r in rows:
        t, b = r["this"], r.get("baseline")
        cells = [
            t["k"],
            t["n"],
            t["init"],
            "Newton" if t["k"] * t["n"] <= 3000 else "log-domain Sinkhorn",
            "%.1f" % t["peak_arrays"],
            "%.0f" % t["rss_peak_mb"],
            "%.1f" % t["time"],
            "%.9f" % t["value"],
            t["start"],
        ]
        if has_b:
            cells += [
                "%.1f" % b["peak_arrays"],
                "%.0f" % b["rss_peak_mb"],
                "%.1f" % b["time"],
                "yes"
                if abs(b["value"] - t["value"]) <= 1e-9 * abs(t["value"])
                else "%+.2e" % (t["value"] / b["value"] - 1.0),
            ]
        body.append(cells)
    text = [
        "`mgw_sinkhorn2` at k = 2 on the isometric box copies (2-D and 3-D), reg = 0.1, one thread, each run a fresh "
        "process. *Peak*: the largest memory traced by `tracemalloc` during the call (every NumPy array), in units "
        "of one n x n float64 array; *peak RSS*: the process's high-water mark above its resident memory before the "
        "call (includes the allocator's slack). "
        + ("*Baseline*: the same cases on revision `%s`, same session. " % baseline if has_b else "")
        + "At n = 10⁴ one n x n float64 array is 0.8 GB.",
        md_table(header, body, "rrllrrrrl" + ("rrrl" if has_b else "")),
    ]
    figures = ()
    plt = pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6.5, 3.2))
        labels = ["n=%d %s" % (r["this"]["n"], r["this"]["init"]) for r in rows]
        x = list(range(len(rows)))
        w = 0.38 if has_b else 0.6
        ax.bar(
            [v - (w / 2 if has_b else 0) for v in x],
            [r["this"]["peak_arrays"] for r in rows],
            w,
            label="this version (%s)" % rev,
        )
        if has_b:
            ax.bar(
                [v + w / 2 for v in x],
                [r["baseline"]["peak_arrays"] for r in rows],
                w,
                label="baseline (%s)" % baseline,
            )
        ax.set_xticks(x)
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("peak memory (n x n float64 arrays)")
        ax.set_title("mgw_sinkhorn2, k = 2: peak traced memory")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(HERE, "results", NAME + ".png"), dpi=110)
        figures = ((NAME + ".png", "peak memory of mgw_sinkhorn2 against the baseline"),)
    write_markdown(
        NAME,
        "Multimarginal GW: peak memory of mgw_sinkhorn",
        text,
        source="`python bench/bench_mgw_memory.py%s` at revision %s, load average %.2f %.2f %.2f (2 cores shared)"
        % (" --baseline=" + baseline if has_b else "", rev, *load),
        figures=figures,
    )


if __name__ == "__main__":
    main()
