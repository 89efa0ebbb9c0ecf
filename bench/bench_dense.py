# -*- coding: utf-8 -*-
"""Dense multimarginal Sinkhorn: ``ot_multimarginal`` against OTT-JAX ``MMSinkhorn`` on CPU.

Run (OTT-JAX lives in its own virtual environment, see bench/README.md)::

    bench/.venv-ott/bin/python bench/bench_dense.py            # full, < 10 min
    bench/.venv-ott/bin/python bench/bench_dense.py --quick    # k=3, n=50 only
    python3 bench/bench_dense.py --quick                       # our side only

Every timed solve runs in its own subprocess (``--worker``), so that its peak
memory can be read from ``/proc/self/status`` (``VmHWM``, reset with
``/proc/self/clear_refs`` just before the timed part) and so that the BLAS
thread count can be set per run. The configurations of one case are
interleaved repeat by repeat (the machine is shared: compare ratios within
one run, not absolute times across runs).

What is compared
----------------
* Same point clouds: ``np.random.default_rng(seed)``, then k draws of
  ``standard_normal((n, 2))``; same cost (sum over pairs i<j of
  ``|x_i - x_j|^2``); ``eps = 0.1``; uniform weights; float64 on both sides.
* Same stopping rule: sum over the k marginals of the L1 marginal error,
  checked every 10 sweeps, threshold 1e-6. Both sides run the same cyclic
  log-domain block updates, so they do the same number of sweeps (checked).
* Times include building the cost tensor on both sides (OTT builds it inside
  its solver; ours calls ``cost_tensor`` inside the timed region) and the final
  value.
* OTT: ``jax.jit`` of ``MMSinkhorn.__call__`` with the solver passed as an
  argument (``threshold`` is a pytree leaf), compiled and warmed up by a
  first call with a huge threshold (stops at the first check), then timed on
  the second call (``block_until_ready``). The compiled executable is the
  same (``_cache_size() == 1`` is checked and recorded).
* OTT's value is converted to our convention (KL to the product of the
  weights): ``ent_reg_cost - eps * sum_i <a_i, log a_i>`` =
  ``ent_reg_cost + eps * sum_i log n_i`` for uniform weights.
"""
# License: MIT License

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

from _memory import proc_status, reset_peak  # noqa: E402 (bench/ is on sys.path when run as a script)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

EPS = 0.1
THR = 1e-6
SEED = 2  # the smallest seed for which all k = 3 cases converge within 5000 sweeps
# (k, n, max sweeps). k = 4, n = 30 does not reach 1e-6 within 5000 sweeps at
# eps = 0.1 for any seed 0..19 (either side: the iterates are the same), so it
# is timed at an equal, fixed budget of sweeps on both sides.
CASES_FULL = [(3, 50, 20000), (3, 100, 20000), (3, 150, 20000), (4, 30, 1000)]
CASES_QUICK = [(3, 50, 20000)]
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --------------------------------------------------------------------------
# helpers usable in both the driver and the workers
# --------------------------------------------------------------------------
def _clouds(k, n, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n, 2)) for _ in range(k)]


def _mem_before():
    import gc

    gc.collect()
    reset = reset_peak()
    return reset, proc_status()


def _mem_after(reset, before):
    after = proc_status()
    if not before or not after:
        return {"peak_delta_bytes": None}
    return {
        "rss_before_bytes": before["VmRSS"],
        "hwm_after_bytes": after["VmHWM"],
        # without a reset the peak may predate the solve: report it but flag it
        "peak_delta_bytes": after["VmHWM"] - before["VmRSS"],
        "peak_reset_ok": reset,
    }


# --------------------------------------------------------------------------
# workers (one timed solve per process)
# --------------------------------------------------------------------------
def _worker_ours(spec):
    import numpy as np

    from ot_multimarginal.costs.dense import cost_tensor
    from ot_multimarginal.sinkhorn import emot_sinkhorn2

    k, n, seed, maxit = spec["k"], spec["n"], spec["seed"], spec["maxit"]
    X = _clouds(k, n, seed)
    # warm-up on a tiny problem: lazy imports, first-call overheads
    emot_sinkhorn2(
        None, cost_tensor(_clouds(k, 4, 0)), EPS, stopThr=THR, numItermax=20, log=True, warn=False, blas_threads=None
    )
    reset, before = _mem_before()
    t0 = time.perf_counter()
    C = cost_tensor(X)
    value, log = emot_sinkhorn2(None, C, EPS, stopThr=THR, numItermax=maxit, log=True, warn=False, blas_threads=None)
    t1 = time.perf_counter()
    res = dict(
        time_s=t1 - t0,
        sweeps=int(log["niter"]),
        converged=bool(log["converged"]),
        err=float(log["err"][-1]),
        value=float(value),
        n_absorptions=int(log.get("n_absorptions", -1)),
    )
    res.update(_mem_after(reset, before))
    res["dtype"] = str(np.asarray(C).dtype)
    return res


def _worker_persweep(spec):
    """Per-sweep time of ``mode='scaling'`` and ``mode='log'`` by differencing.

    ``(T(S2) - T(S1)) / (S2 - S1)`` with ``stopThr=0`` (no early stop): the
    setup, the absorption and the final value cancel; one error check per 10
    sweeps stays in, as in a real solve.
    """
    from ot_multimarginal.costs.dense import cost_tensor
    from ot_multimarginal.sinkhorn import emot_sinkhorn2

    k, n, seed = spec["k"], spec["n"], spec["seed"]
    C = cost_tensor(_clouds(k, n, seed))
    emot_sinkhorn2(
        None, cost_tensor(_clouds(k, 4, 0)), EPS, stopThr=THR, numItermax=20, log=True, warn=False, blas_threads=None
    )
    out = {}
    for mode, (s1, s2), reps in (("scaling", spec["scaling_sweeps"], 3), ("log", spec["log_sweeps"], 1)):
        best = {}
        for s in (s1, s2):
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                emot_sinkhorn2(
                    None, C, EPS, stopThr=0.0, numItermax=s, log=True, warn=False, blas_threads=None, mode=mode
                )
                ts.append(time.perf_counter() - t0)
            best[s] = min(ts)
        out[mode] = dict(sweeps=[s1, s2], times_s=[best[s1], best[s2]], per_sweep_s=(best[s2] - best[s1]) / (s2 - s1))
    # logical peak of a full solve (NumPy reports its buffers to tracemalloc;
    # unlike VmHWM this ignores memory the allocator keeps after a free)
    import tracemalloc

    X = _clouds(k, n, seed)
    tracemalloc.start()
    C = cost_tensor(X)
    emot_sinkhorn2(None, C, EPS, stopThr=THR, numItermax=spec["maxit"], log=True, warn=False, blas_threads=None)
    out["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out


def _worker_ott(spec):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np
    from ott.experimental import mmsinkhorn
    from ott.geometry import costs

    k, n, seed, maxit = spec["k"], spec["n"], spec["seed"], spec["maxit"]
    xs = tuple(jnp.asarray(x) for x in _clouds(k, n, seed))

    def make(thr):
        return mmsinkhorn.MMSinkhorn(threshold=thr, norm_error=1.0, inner_iterations=10, max_iterations=maxit)

    run = jax.jit(lambda solver, x_s: solver(x_s, None, cost_fns=costs.SqEuclidean(), epsilon=EPS))
    t0 = time.perf_counter()
    out = run(make(1e300), xs)  # compile + a run that stops at the first check
    out.ent_reg_cost.block_until_ready()
    t_first = time.perf_counter() - t0
    del out
    reset, before = _mem_before()
    t0 = time.perf_counter()
    out = run(make(THR), xs)
    out.ent_reg_cost.block_until_ready()
    t1 = time.perf_counter()
    mem = _mem_after(reset, before)
    errs = np.asarray(out.errors).ravel()
    errs = errs[errs >= 0]
    ent = float(out.ent_reg_cost)
    res = dict(
        time_s=t1 - t0,
        first_call_s=t_first,
        sweeps=int(out.n_iters),
        converged=bool(out.converged),
        err=float(errs[-1]) if errs.size else float("nan"),
        ent_reg_cost=ent,
        value=ent + EPS * k * float(np.log(n)),
        jit_cache_size=int(run._cache_size()) if hasattr(run, "_cache_size") else None,
        dtype=str(out.ent_reg_cost.dtype),
    )
    res.update(mem)
    return res


def _worker_profile(spec):
    """Where a sweep of ``mode='scaling'`` goes: cProfile, plus every backend
    ``dot`` timed and bucketed by the size of its largest operand (full
    tensor, (k-1)-tensor, smaller), against reference reads of the tensor.

    Only the public call is used (the engine's internals change); ``dot`` is
    wrapped in this worker process only.
    """
    import cProfile
    import io
    import pstats

    import numpy as np
    import ot.backend

    from ot_multimarginal.costs.dense import cost_tensor
    from ot_multimarginal.sinkhorn import emot_sinkhorn2

    k, n, seed, sweeps = spec["k"], spec["n"], spec["seed"], spec["sweeps"]
    C = cost_tensor(_clouds(k, n, seed))
    full = n**k
    emot_sinkhorn2(None, C, EPS, stopThr=0.0, numItermax=10, log=True, warn=False, blas_threads=None)

    # 1. plain timing, then cProfile (its overhead inflates Python-heavy parts)
    t0 = time.perf_counter()
    emot_sinkhorn2(None, C, EPS, stopThr=0.0, numItermax=sweeps, log=True, warn=False, blas_threads=None)
    t_plain = time.perf_counter() - t0
    pr = cProfile.Profile()
    pr.enable()
    emot_sinkhorn2(None, C, EPS, stopThr=0.0, numItermax=sweeps, log=True, warn=False, blas_threads=None)
    pr.disable()
    s = io.StringIO()
    st = pstats.Stats(pr, stream=s).sort_stats("tottime")
    st.print_stats(15)
    top = []
    for (fname, line, func), (_cc, nc, tt, ct, _) in sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:15]:
        top.append(
            dict(func="%s:%d(%s)" % (os.path.basename(fname), line, func), ncalls=nc, tottime_s=tt, cumtime_s=ct)
        )

    # 2. every dot timed, bucketed by operand size
    buckets = {}
    orig = ot.backend.NumpyBackend.dot

    def timed_dot(self, a, b):
        t = time.perf_counter()
        r = orig(self, a, b)
        dt = time.perf_counter() - t
        size = max(np.size(a), np.size(b))
        key = "full tensor (%d)" % full if size >= full else ("(k-1)-tensor or n^2" if size >= n * n else "small")
        c = buckets.setdefault(key, [0, 0.0, 0])
        c[0] += 1
        c[1] += dt
        c[2] = max(c[2], size)
        return r

    ot.backend.NumpyBackend.dot = timed_dot
    try:
        t0 = time.perf_counter()
        emot_sinkhorn2(None, C, EPS, stopThr=0.0, numItermax=sweeps, log=True, warn=False, blas_threads=None)
        t_wrapped = time.perf_counter() - t0
    finally:
        ot.backend.NumpyBackend.dot = orig
    dots = {
        key: dict(
            calls=c[0],
            calls_per_sweep=c[0] / sweeps,
            total_s=c[1],
            per_call_ms=1e3 * c[1] / c[0],
            ms_per_sweep=1e3 * c[1] / sweeps,
        )
        for key, c in buckets.items()
    }

    # 3. reference rates on a tensor of the same size
    K = np.exp(-C / EPS / 50.0)
    v = np.ones(n)

    def best(f, r=25):
        ts = []
        for _ in range(r):
            t = time.perf_counter()
            f()
            ts.append(time.perf_counter() - t)
        return float(np.min(ts)), float(np.median(ts))

    refs = {
        "K.sum() (one read)": best(lambda: K.sum()),
        "K.reshape(-1, n) @ v (gemv, one read)": best(lambda: K.reshape(-1, n) @ v),
        "w @ K.reshape(-1, n) (gemv-T, one read)": best(lambda: np.ones(full // n) @ K.reshape(-1, n)),
        "np.exp(K) (log-domain cost of one marginal)": best(lambda: np.exp(K), r=5),
    }
    read_s = refs["K.sum() (one read)"][0]
    full_key = "full tensor (%d)" % full
    full_dots = dots.get(full_key, {})
    return dict(
        k=k,
        n=n,
        sweeps=sweeps,
        tensor_bytes=K.nbytes,
        per_sweep_ms=1e3 * t_plain / sweeps,
        per_sweep_ms_with_dot_timers=1e3 * t_wrapped / sweeps,
        dots=dots,
        references_min_median_s=refs,
        read_bandwidth_GBps=K.nbytes / read_s / 1e9,
        full_tensor_reads_per_sweep=full_dots.get("calls_per_sweep"),
        full_dot_fraction_of_read_bw=(read_s * 1e3 / full_dots["per_call_ms"]) if full_dots else None,
        sweep_over_one_read=(t_plain / sweeps) / read_s,
        top_tottime=top,
        cprofile_text=s.getvalue(),
    )


WORKERS = {"ours": _worker_ours, "persweep": _worker_persweep, "ott": _worker_ott, "profile": _worker_profile}


def _worker_main(spec_json):
    spec = json.loads(spec_json)
    res = WORKERS[spec["side"]](spec)
    print("RESULT " + json.dumps(res))


# --------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------
def _spawn(spec, extra_env=None, timeout=900):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("JAX_PLATFORMS", "cpu")
    if extra_env:
        env.update(extra_env)
    p = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in p.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError("worker %s failed (rc %s):\n%s\n%s" % (spec, p.returncode, p.stdout[-2000:], p.stderr[-4000:]))


def _have_ott():
    return importlib.util.find_spec("jax") is not None and importlib.util.find_spec("ott") is not None


def _version(dist):
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        return None


def _machine_info():
    import numpy as np

    info = dict(
        date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        python=platform.python_version(),
        platform=platform.platform(),
        nproc=os.cpu_count(),
        affinity=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        loadavg_start=os.getloadavg(),
        versions={d: _version(d) for d in ("numpy", "scipy", "POT", "torch", "jax", "jaxlib", "ott-jax")},
    )
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        info["cpu"] = None
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        info["numpy_blas"] = "%s %s" % (blas.get("name"), blas.get("version"))
    except Exception:
        info["numpy_blas"] = None
    try:
        info["git_commit"] = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except Exception:
        info["git_commit"] = None
    return info


def _med(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    m = len(xs) // 2
    return xs[m] if len(xs) % 2 else 0.5 * (xs[m - 1] + xs[m])


def _f(x, fmt="%.3g"):
    return "—" if x is None else fmt % x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="k=3, n=50 only (smoke run)")
    ap.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed repeats per configuration (default: 3 for n=50 and n=150, 1 for n=100, "
        "2 for k=4 n=30, to stay under 10 min)",
    )
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--no-profile", action="store_true", help="skip the profile of our k=3, n=150 sweep")
    ap.add_argument(
        "--out",
        default=None,
        help="JSON path (default bench/results/bench_dense.json, or bench_dense_quick.json with --quick)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--render", action="store_true", help="rewrite the .md results page from the JSON (--out), no run")
    args = ap.parse_args(argv)
    if args.render:
        path = args.out or os.path.join(HERE, "results", "bench_dense.json")
        with open(path) as f:
            return report(os.path.splitext(os.path.basename(path))[0], json.load(f))
    if args.worker:
        return _worker_main(args.worker)

    if args.out is None:
        args.out = os.path.join(HERE, "results", "bench_dense_quick.json" if args.quick else "bench_dense.json")
    t_start = time.perf_counter()
    have_ott = _have_ott()
    cases = CASES_QUICK if args.quick else CASES_FULL
    info = _machine_info()
    print(
        "# machine: %s, %s cores, load %s, numpy %s (%s), jax %s, ott-jax %s"
        % (
            info["cpu"],
            info["nproc"],
            info["loadavg_start"],
            info["versions"]["numpy"],
            info["numpy_blas"],
            info["versions"]["jax"],
            info["versions"]["ott-jax"],
        )
    )
    if not have_ott:
        print("# OTT-JAX not installed in %s: timing our side only" % sys.executable)

    configs = [("ours", {}), ("ours_1thread", ONE_THREAD)] + ([("ott", {})] if have_ott else [])
    results = []
    for k, n, maxit in cases:
        reps = args.repeats or {50: 3, 100: 1, 150: 3}.get(n, 2)
        runs = {name: [] for name, _ in configs}
        load = [os.getloadavg()[0]]
        for r in range(reps):
            order = configs[r % len(configs) :] + configs[: r % len(configs)]
            for name, env in order:
                spec = dict(side="ott" if name == "ott" else "ours", k=k, n=n, seed=args.seed, maxit=maxit)
                res = _spawn(spec, env)
                runs[name].append(res)
                print(
                    "  k=%d n=%d rep %d %-13s %7.2f s  %5d sweeps  err %.2e"
                    % (k, n, r, name, res["time_s"], res["sweeps"], res["err"]),
                    flush=True,
                )
            load.append(os.getloadavg()[0])
        log_sweeps = (10, 20) if n >= 100 or k >= 4 else (10, 30)
        # one BLAS thread: on a loaded machine the default threads mostly measure the other processes
        ps = _spawn(
            dict(
                side="persweep", k=k, n=n, seed=args.seed, maxit=maxit, scaling_sweeps=(50, 150), log_sweeps=log_sweeps
            ),
            ONE_THREAD,
        )
        summ = dict(k=k, n=n, entries=n**k, max_sweeps=maxit, repeats=reps, loadavg_1min=load, runs=runs, persweep=ps)
        for name in runs:
            ts = [x["time_s"] for x in runs[name]]
            summ[name] = dict(
                time_median_s=_med(ts),
                time_min_s=min(ts),
                sweeps=runs[name][0]["sweeps"],
                converged=runs[name][0]["converged"],
                err=runs[name][0]["err"],
                value=runs[name][0]["value"],
                per_sweep_median_s=_med(ts) / max(runs[name][0]["sweeps"], 1),
                peak_delta_bytes=runs[name][0].get("peak_delta_bytes"),
                buffers=(runs[name][0]["peak_delta_bytes"] / (n**k * 8.0))
                if runs[name][0].get("peak_delta_bytes") is not None
                else None,
            )
        if have_ott:
            paired = [o["time_s"] / u["time_s"] for o, u in zip(runs["ott"], runs["ours"])]
            paired1 = [o["time_s"] / u["time_s"] for o, u in zip(runs["ott"], runs["ours_1thread"])]
            summ["ratio_ott_over_ours"] = dict(
                min_over_min=summ["ott"]["time_min_s"] / summ["ours"]["time_min_s"],
                median_of_medians=summ["ott"]["time_median_s"] / summ["ours"]["time_median_s"],
                paired=paired,
                paired_median=_med(paired),
            )
            summ["ratio_ott_over_ours_1thread"] = dict(
                min_over_min=summ["ott"]["time_min_s"] / summ["ours_1thread"]["time_min_s"],
                median_of_medians=summ["ott"]["time_median_s"] / summ["ours_1thread"]["time_median_s"],
                paired=paired1,
                paired_median=_med(paired1),
            )
            summ["value_abs_diff"] = abs(summ["ott"]["value"] - summ["ours"]["value"])
            summ["same_sweeps"] = summ["ott"]["sweeps"] == summ["ours"]["sweeps"]
        results.append(summ)

    profile = None
    if not args.quick and not args.no_profile:
        profile = {}
        for name, env in (("default_threads", {}), ("1thread", ONE_THREAD)):
            profile[name] = _spawn(dict(side="profile", k=3, n=150, seed=args.seed, sweeps=100), env)

    # ---------------- tables ----------------
    lines = []
    lines.append(
        "eps = %g, threshold %g (sum of L1 marginal errors, checked every 10 sweeps), float64, seed %d. "
        "Times in s: min / median of the repeats, cost-tensor construction included on both sides; "
        "ratios = OTT min / ours min (the least perturbed runs) and, in brackets, median / median."
        % (EPS, THR, args.seed)
    )
    lines.append("")
    lines.append(
        "| k | n | sweeps ours / OTT | ours (default BLAS threads) | ours (1 BLAS thread) | OTT | OTT/ours "
        "| OTT/ours-1t "
        "| our value | OTT value (converted) | abs diff | load (1 min) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for s in results:
        o, o1 = s["ours"], s["ours_1thread"]
        capped = "" if o["converged"] else " (cap, err %.1e)" % o["err"]
        load_s = "%.1f–%.1f" % (min(s["loadavg_1min"]), max(s["loadavg_1min"]))

        def tt(d):
            return "%.3f / %.3f" % (d["time_min_s"], d["time_median_s"])

        if have_ott:
            t = s["ott"]
            r, r1 = s["ratio_ott_over_ours"], s["ratio_ott_over_ours_1thread"]
            lines.append(
                "| %d | %d | %d / %d%s | %s | %s | %s | **%.2f** (%.2f) | **%.2f** (%.2f) | %.9f | %.9f | %.1e | %s |"
                % (
                    s["k"],
                    s["n"],
                    o["sweeps"],
                    t["sweeps"],
                    capped,
                    tt(o),
                    tt(o1),
                    tt(t),
                    r["min_over_min"],
                    r["median_of_medians"],
                    r1["min_over_min"],
                    r1["median_of_medians"],
                    o["value"],
                    t["value"],
                    s["value_abs_diff"],
                    load_s,
                )
            )
        else:
            lines.append(
                "| %d | %d | %d / —%s | %s | %s | OTT-JAX not installed | — | — | %.9f | — | — | %s |"
                % (s["k"], s["n"], o["sweeps"], capped, tt(o), tt(o1), o["value"], load_s)
            )
    lines.append("")
    lines.append(
        "Per sweep (ms). 'solve' = min solve time / sweeps; 'diff' = (T(S2) - T(S1)) / (S2 - S1), "
        "no early stop, one BLAS thread."
    )
    lines.append("")
    lines.append(
        "| k | n | ours scaling, solve | ours scaling 1-thread, solve | OTT, solve | ours scaling 1-thread, diff "
        "| ours mode='log' 1-thread, diff | log / scaling |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for s in results:
        ps = s["persweep"]
        ott_ps = s["ott"]["time_min_s"] / s["ott"]["sweeps"] * 1e3 if have_ott else None
        lines.append(
            "| %d | %d | %.3f | %.3f | %s | %.3f | %.1f | %.0f× |"
            % (
                s["k"],
                s["n"],
                s["ours"]["time_min_s"] / s["ours"]["sweeps"] * 1e3,
                s["ours_1thread"]["time_min_s"] / s["ours_1thread"]["sweeps"] * 1e3,
                _f(ott_ps, "%.3f") if have_ott else "OTT-JAX not installed",
                ps["scaling"]["per_sweep_s"] * 1e3,
                ps["log"]["per_sweep_s"] * 1e3,
                ps["log"]["per_sweep_s"] / ps["scaling"]["per_sweep_s"],
            )
        )
    lines.append("")
    lines.append(
        "Peak memory of the timed solve (VmHWM reset just before it, minus the RSS at that point), "
        "in tensors of prod(n) float64 entries:"
    )
    lines.append("")
    lines.append(
        "| k | n | tensor (MB) | ours (MB) | ours (buffers) | ours, tracemalloc (buffers) | OTT (MB) | OTT (buffers) |"
    )
    lines.append("|---|---|---|---|---|---|---|---|")
    for s in results:
        o = s["ours"]
        t = s.get("ott", {})
        lines.append(
            "| %d | %d | %.1f | %s | %s | %.2f | %s | %s |"
            % (
                s["k"],
                s["n"],
                s["entries"] * 8 / 1e6,
                _f(o["peak_delta_bytes"] and o["peak_delta_bytes"] / 1e6, "%.1f"),
                _f(o["buffers"], "%.2f"),
                s["persweep"]["tracemalloc_peak_bytes"] / (s["entries"] * 8.0),
                _f(t.get("peak_delta_bytes") and t["peak_delta_bytes"] / 1e6, "%.1f")
                if have_ott
                else "OTT-JAX not installed",
                _f(t.get("buffers"), "%.2f") if have_ott else "—",
            )
        )
    if profile:
        lines.append("")
        lines.append(
            "Profile of our k=3, n=150 sweep (%d sweeps, stopThr=0; every backend dot timed):"
            % next(iter(profile.values()))["sweeps"]
        )
        lines.append("")
        lines.append(
            "| BLAS threads | ms/sweep | full-tensor dots per sweep | ms per full-tensor dot "
            "| its fraction of K.sum() read bandwidth | ms/sweep in full dots | ms/sweep in other dots "
            "| one read of K (ms) | sweep / one read |"
        )
        lines.append("|---|---|---|---|---|---|---|---|---|")
        for name, p in profile.items():
            fk = [key for key in p["dots"] if key.startswith("full")]
            fd = p["dots"][fk[0]] if fk else None
            other = sum(d["ms_per_sweep"] for key, d in p["dots"].items() if not key.startswith("full"))
            lines.append(
                "| %s | %.2f | %s | %s | %s | %s | %.3f | %.2f | %.1f |"
                % (
                    name,
                    p["per_sweep_ms"],
                    _f(fd and fd["calls_per_sweep"], "%.2f"),
                    _f(fd and fd["per_call_ms"], "%.2f"),
                    _f(p["full_dot_fraction_of_read_bw"], "%.2f"),
                    _f(fd and fd["ms_per_sweep"], "%.2f"),
                    other,
                    p["references_min_median_s"]["K.sum() (one read)"][0] * 1e3,
                    p["sweep_over_one_read"],
                )
            )
    table = "\n".join(lines)
    print()
    print(table)
    info["loadavg_end"] = os.getloadavg()
    info["wall_s"] = time.perf_counter() - t_start
    info["python_executable"] = sys.executable
    payload = dict(
        machine=info,
        eps=EPS,
        threshold=THR,
        seed=args.seed,
        quick=args.quick,
        ott_installed=have_ott,
        ott_call="jax.jit(lambda solver, x_s: solver(x_s, None, cost_fns=SqEuclidean(), epsilon=0.1)); "
        "MMSinkhorn(threshold=1e-6, norm_error=1.0, inner_iterations=10, max_iterations=maxit); 2nd call timed",
        ours_call="C = cost_tensor(X_s); emot_sinkhorn2(None, C, 0.1, stopThr=1e-6, numItermax=maxit, log=True) "
        "(mode='scaling')",
        timing_includes_cost_tensor=True,
        results=results,
        profile=profile,
        table_markdown=table,
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(payload, f, indent=1)
    print("\n# wrote %s (%.0f s)" % (os.path.relpath(args.out), info["wall_s"]))
    report(os.path.splitext(os.path.basename(args.out))[0], payload)


def report(name, payload):
    """Write ``bench/results/<name>.md`` from the JSON payload (its ``table_markdown`` and machine)."""
    from _report import write_markdown

    m = payload["machine"]
    write_markdown(
        name,
        "Dense path against OTT-JAX",
        [
            "`emot_sinkhorn2` on `cost_tensor` of k point clouds N(0, I₂) against OTT-JAX %s `MMSinkhorn` "
            "(jax %s, jit, timed on its second call), same clouds, ε = %g, float64, uniform weights; both "
            "sides do the same sweeps; each solve in its own subprocess. Machine: %s, %s cores, %s; load "
            "average %.1f at the start, %.1f at the end of the run (%s)."
            % (
                m["versions"].get("ott-jax"),
                m["versions"].get("jax"),
                payload["eps"],
                m["cpu"],
                m["nproc"],
                m["numpy_blas"],
                m["loadavg_start"][0],
                m.get("loadavg_end", [float("nan")])[0],
                m["date_utc"][:10],
            ),
            "Our call: `%s`. OTT-JAX: `%s`." % (payload["ours_call"], payload["ott_call"]),
            payload["table_markdown"],
        ],
        source="`bench/.venv-ott/bin/python bench/bench_dense.py` (see bench/README.md)",
    )


if __name__ == "__main__":
    main()
