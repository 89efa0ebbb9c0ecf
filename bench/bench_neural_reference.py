# -*- coding: utf-8 -*-
"""``emot_neural`` against the authors' NEMOT reference code, in the same run.

Run::

    python bench/bench_neural_reference.py --nmot-path /path/to/NMOT           # ~10 min on 2 cores
    python bench/bench_neural_reference.py --nmot-path /path/to/NMOT --quick   # < 2 min (A, B at n = 300)
    python bench/bench_neural_reference.py --nmot-path ... --problems B,E      # some problems (E: extra)
    python bench/bench_neural_reference.py --nmot-path ... --problems A,B --lr-sweep 1e-4,3e-4,1e-3,3e-3,1e-2

The reference code is *not* part of this project and is never imported by it:
clone it next to the repository (``git clone https://github.com/DorTsur/NMOT``)
and pass its folder with ``--nmot-path`` (or the environment variable
``NMOT_PATH``). Without it the script says so and exits with status 0. Measured
with commit ``20a24a828a06cea444f4e037829fbd5b1566276d`` (2025-05-31, "updated
readme"); the JSON records the commit found at run time.

Problems (uniform data as in the paper, d = 5)
----------------------------------------------
====  ========================  =====  ====  ====================================
name  cost graph                n      ε     exact value by
====  ========================  =====  ====  ====================================
A     complete, k = 3           1000   1     structured Sinkhorn (triangle engine)
B     complete, k = 3           1000   0.1   structured Sinkhorn (the harder ε)
C     circle, k = 10            500    1     structured Sinkhorn (cycle engine)
D     complete, k = 4           10⁴    1     long run of ours (``--long-iter``)
E     complete, k = 4           10⁴    0.1   long run of ours (extra: ``--problems E``)
====  ========================  =====  ====  ====================================

``--quick`` runs A and B at n = 300 with caps of 10 s (reference) and 20 s (ours).

What is measured
----------------
On each problem, on the same points (uniform on ``[-1/sqrt(d), 1/sqrt(d)]^d``
as in the paper, d = 5, float32, ``numpy.random.default_rng(seed)``; uniform
weights):

1. the **exact value**: :func:`ot_multimarginal.empirical_emot_sinkhorn2`
   (``graph='complete'`` / ``'circle'``, float64, ``stopThr=1e-7``) where the
   graph engines hold the data; otherwise a **long neural run** of ours
   (``--long-iter`` = 1000 steps, no early stopping, another seed; stated in
   the table), evaluated like everything else (below);
2. the reference's ``MOT_NE_alg.train_mot`` with **its own defaults** (read at
   run time from the literal dict in its ``utils/config.py``: batch 32, Adam
   lr 1e-5, StepLR ×0.5 every 5 epochs, gradient-norm clipping at 1e-3, 100
   epochs, the ``'simplified'`` aligned-tuple estimator, MLP d -> 10K -> 10K ->
   K -> 1 with K = min(6d, 80), one optimiser step per marginal per batch), and
   again with a **better learning rate** (``--ref-lr-tuned``, 3e-4 by default:
   the best of 1e-4, 3e-4, 1e-3, 3e-3, 1e-2 over problems A and B in a 30 s
   side sweep, ``--lr-sweep``, results in
   ``bench/results/bench_neural_reference_lr_sweep.json``: on A all of 1e-4 to
   3e-3 reach 1 % in 7-20 s, on B none does and 3e-4 ends closest; 1e-2
   diverges to NaN on both; on C, swept later with a 45 s cap, none of 1e-4,
   1e-3, 3e-3 reaches 1 % either, 3e-3 ending closest at 2.7 %; everything
   else at its defaults) so that the comparison is not against a learning rate
   that was never meant for this budget;
3. ours: :class:`ot_multimarginal.NeuralEMOT` (what
   :func:`ot_multimarginal.emot_neural` runs) with its default settings, given
   only the cost (``graph``, ``metric``) and a seed.

Every run is bounded: ``--ref-cap`` seconds (45 by default) for each reference
run, ``--ours-cap`` (90) for ours (it ends by itself well before). A reference run also stops once both its
evaluated value (at two consecutive checkpoints) and its own estimate are within
the tolerance (1 %); ours runs to its own end (its defaults: 300 steps, early
stopping), so its final error is that of a complete default call.

Accuracy is measured two ways:

* **own estimate**: the value each code reports while it trains (the
  reference: its per-epoch mean of the mini-batch dual plus ε, the number it
  prints and saves; ours: its held-out estimates, every 50 steps, and its
  final ``value_``);
* **dual on the data** (the fair measure, the same for both): the learned
  potentials evaluated at every data point, and the log form of the dual
  ``Σ_i mean φ_i(X_i) − ε log mean_{⊗μ_n} exp((Σφ_i − c)/ε)`` on the empirical
  measures. Where an engine holds the data (complete k = 3, circle) it is exact
  (a lower bound of the exact value by weak duality); otherwise (complete k = 4,
  n = 10⁴) the second term is a Monte-Carlo average over 2²⁰ index tuples,
  the same tuples for every evaluation, with its standard error. The log form is
  invariant to a constant shift of the potentials, so the reference is not
  penalised for the constant its non-log loss pins down. This evaluation is
  the bench's own (``DualOnData``: :class:`~ot_multimarginal.PairwiseCost`
  engines' ``log_partition``, or the tuple average), not ours' internal one,
  and is checked in every run: ``evaluator_check`` in the JSON is its
  distance from Sinkhorn's value at Sinkhorn's potentials.

Checkpoints are at geometrically spaced wall-clock times (0.1 s, then ×1.25),
taken between training steps; the clock is paused while a checkpoint is
evaluated, so the times are training time only (the reference: from the call to
``train_mot``; ours: from the call to ``NeuralEMOT.fit``, its data
standardisation and its own held-out estimates included). The final evaluation
ours does at the end of ``fit`` is outside this clock (the reference's
evaluation on the data is switched off, see below); the JSON has ours'
end-to-end time too. Process CPU time (``time.process_time``, the same pauses)
is recorded next to the wall clock at every checkpoint: with one torch thread on
each side it is the measure that other users of a shared machine disturb least,
so the table gives the speed-up both ways. The one-time lazy import of ``torch._dynamo`` by
``torch.optim`` (5-10 s here) is done before any clock starts.
"Time to 1 %" is the first checkpoint (or, for the reference's own estimate,
the end of the first epoch) within 1 % of the exact value; "not reached" when
the cap came first. The speed-up compares the faster of the two reference runs
with ours, on the dual on the data.

Cost conventions (matched exactly)
----------------------------------
The reference's ``'full'`` cost in its default (``'simplified'``) estimator is
``(1/k) Σ_{i<j} ‖x_i − x_j‖²`` (``norm_by_k = 1``); ours is given the same cost
with ``graph='complete'`` and the callable metric ``ot.dist(A, B) / k``. Its
``'circle'`` cost is ``Σ_i ‖x_i − x_{i+1}‖²`` cyclically, not divided by k:
ours is ``graph='circle'``, ``metric='sqeuclidean'``. (Its ``'combinatorial'``
estimator builds the ``'full'`` cost without the 1/k, a different problem; it is
not used here.) The value convention is the same on both sides:
``EMOT = min_π ⟨c, π⟩ + ε KL(π ‖ ⊗μ_i)``.

Patches to the reference (all from the outside, at run time; its files are
untouched)
-------------------------------------------------------------------------
* Imports it does not use on this path (``wandb``, ``jax``, ``optax``,
  ``kornia``, ``torchvision``, ``anytree``, ``box``, ...) are replaced, only
  when not installed, by empty stand-in modules while its
  ``neural_estimation/models.py`` is imported, and removed from
  ``sys.modules`` right after.
* Its configuration object (a ``python-box`` ``Box``) is replaced by a dict
  with attribute access, filled from its own defaults, with: ``k``, ``n``,
  ``dim``, ``eps``, ``cost_graph`` of the problem; ``device='cpu'``;
  ``using_wandb=0``; ``calc_ot_cost=0`` (on the circle, its every-10-epochs
  plan evaluation on all n points, O(k n²) memory at n = 10⁴, is not part of
  training and would only slow it); ``efficient_dataset=False`` (as its ``main.py`` sets).
* ``tqdm`` in its module is replaced by the bench's iterator over the batches:
  it reads the clock, evaluates checkpoints (clock paused) and stops the run at
  the cap or on reaching the tolerance (by raising an exception caught here).
  Its per-epoch prints are captured, not shown.
* Nothing in its training step, loss or networks is changed.

On our side the same checkpoints run from a wrapper around
``ot_multimarginal.neural.training.Trainer.step``, installed for the duration of
the fit only; the training loop is otherwise the library's.

Threads: ``torch.set_num_threads(--threads)`` (1 by default: the machine is
shared) for both sides alike. ``uptime`` is recorded before and after each
problem.

Facts about the reference noticed on the way (not patched): the aligned tuples
are fixed (its DataLoader shuffles the rows of one (n, d, k) tensor, so row r
of every marginal always meets row r of the others); every batch computes the
loss k times and steps one network at a time; the gradients of all networks
accumulate over those k backward passes (``zero_grad`` once per batch); the
exp term is a raw ``torch.exp``.
"""
# License: MIT License

import argparse
import ast
import contextlib
import datetime
import io
import json
import math
import os
import subprocess
import sys
import time
import types

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

RESULTS = os.path.join(HERE, "results")
TOL = 0.01
OBTAIN = (
    "The NEMOT reference code was not found{where}.\n"
    "Get it with\n    git clone https://github.com/DorTsur/NMOT\n"
    "(measured at commit 20a24a828a06cea444f4e037829fbd5b1566276d) and run\n"
    "    python bench/bench_neural_reference.py --nmot-path /path/to/NMOT\n"
    "(or set NMOT_PATH). Its own requirements are not needed: the imports it does not use here are stubbed."
)

# name, graph, k, n, reg; quick variants below
PROBLEMS = {
    "A": dict(graph="complete", k=3, n=1000, reg=1.0),
    "B": dict(graph="complete", k=3, n=1000, reg=0.1),
    "C": dict(graph="circle", k=10, n=500, reg=1.0),
    "D": dict(graph="complete", k=4, n=10000, reg=1.0),
}
EXTRA = {  # not in the default set (each adds a long neural run): --problems E
    "E": dict(graph="complete", k=4, n=10000, reg=0.1),
}
QUICK = {
    "A": dict(graph="complete", k=3, n=300, reg=1.0),
    "B": dict(graph="complete", k=3, n=300, reg=0.1),
}
DIM = 5


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except Exception:  # pragma: no cover - no uptime binary
        return "load %s" % (os.getloadavg(),)


def clouds(k, n, d, seed):
    rng = np.random.default_rng(seed)
    h = 1.0 / math.sqrt(d)
    return [rng.uniform(-h, h, (n, d)).astype(np.float32) for _ in range(k)]


def metric_for(graph, k):
    """Our cost matched to the reference's: complete graph divided by k, circle not."""
    if graph == "complete":
        import ot

        def sqeuclidean_over_k(A, B):
            return ot.dist(A, B) / k

        return sqeuclidean_over_k, "(1/k) Σ_{i<j} ‖x_i − x_j‖²"
    return "sqeuclidean", "Σ_i ‖x_i − x_{i+1}‖² (cyclic)"


# --------------------------------------------------------------------------------------------
# The dual of given potentials on the data (exact by an engine, or Monte Carlo)
# --------------------------------------------------------------------------------------------
class DualOnData:
    """``Σ_i mean φ_i − ε log mean_{⊗μ_n} exp((Σ φ_i − c)/ε)`` for potentials given at the data points."""

    def __init__(self, X_s, reg, graph, exact, n_tuples=2**20, seed=0):
        self.X = [np.asarray(X, dtype=np.float64) for X in X_s]
        self.reg = float(reg)
        self.graph = graph
        self.k = len(X_s)
        self.n = [X.shape[0] for X in self.X]
        self.exact = exact
        if exact:
            from ot_multimarginal.costs import PairwiseCost

            metric, _ = metric_for(graph, self.k)
            self.cost = PairwiseCost.from_point_clouds(self.X, graph=graph, metric=metric)
            self.engine = self.cost.make_engine(self.reg)
        else:
            from ot_multimarginal.costs.graph import graph_edges

            rng = np.random.default_rng(seed + 7919)
            self.idx = np.stack([rng.integers(0, n, n_tuples) for n in self.n], axis=1)
            self.edges = graph_edges(graph, self.k)
            scale = 1.0 / self.k if graph == "complete" else 1.0
            c = np.zeros(n_tuples)
            for a, b in self.edges:
                c += np.sum((self.X[a][self.idx[:, a]] - self.X[b][self.idx[:, b]]) ** 2, axis=1)
            self.c = c * scale

    @property
    def how(self):
        return (
            "exact (%s engine)" % self.engine.__class__.__name__
            if self.exact
            else ("Monte Carlo, %d tuples" % self.idx.shape[0])
        )

    def __call__(self, phis):
        """``(value, standard error)`` for ``phis``: k float arrays, ``phis[i]`` of shape ``(n_i,)``."""
        phis = [np.asarray(p, dtype=np.float64).reshape(-1) for p in phis]
        if not all(np.all(np.isfinite(p)) for p in phis):
            return float("nan"), float("nan")
        lin = sum(float(p.mean()) for p in phis)
        eps = self.reg
        if self.exact:
            g = [p / eps - math.log(n) for p, n in zip(phis, self.n)]
            return lin - eps * float(self.engine.log_partition(g)), 0.0
        S = -self.c.copy()
        for i, p in enumerate(phis):
            S += p[self.idx[:, i]]
        S /= eps
        m = S.max()
        w = np.exp(S - m)
        mw = w.mean()
        val = lin - eps * (m + math.log(mw))
        se = eps * w.std() / mw / math.sqrt(w.size)
        return val, se


# --------------------------------------------------------------------------------------------
# The reference code, loaded from the outside
# --------------------------------------------------------------------------------------------
class _Stub(types.ModuleType):
    """A stand-in module: every attribute is a callable that returns itself (decorators, calls...)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything()


class _Anything:
    def __call__(self, *a, **kw):
        return self

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return self


_STUBBED = [
    "wandb",
    "jax",
    "jax.numpy",
    "jax.random",
    "jax.nn",
    "jax.tree_util",
    "optax",
    "kornia",
    "torchvision",
    "torchvision.models",
    "torchvision.datasets",
    "torchvision.transforms",
    "torchvision.transforms.functional",
    "anytree",
    "box",
    "pulp",
    "PIL",
    "PIL.Image",
    "sklearn",
    "sklearn.linear_model",
    "sklearn.metrics",
]


def _importable(name):
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def reference_commit(path):
    try:
        out = subprocess.run(
            ["git", "-C", path, "log", "-1", "--format=%H %cs %s"], capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() or "unknown (not a git checkout)"
    except Exception:
        return "unknown"


def load_reference(path):
    """Import the reference's ``neural_estimation.models`` with stand-ins for its unused imports."""
    added = []
    for name in _STUBBED:
        top = name.split(".")[0]
        if name in sys.modules or (top not in added and _importable(top)):
            continue
        sys.modules[name] = _Stub(name)
        added.append(name)
    own = ("utils", "neural_estimation", "sinkhorn")
    saved = {m: sys.modules.pop(m) for m in list(sys.modules) if m.split(".")[0] in own}
    sys.path.insert(0, path)
    try:
        import importlib

        models = importlib.import_module("neural_estimation.models")
    finally:
        sys.path.remove(path)
        for m in list(sys.modules):
            if m.split(".")[0] in own:
                del sys.modules[m]
        sys.modules.update(saved)
        for name in added:
            sys.modules.pop(name, None)
    return models, added


def reference_defaults(path):
    """The literal config dict of the reference's ``utils/config.py`` (``GetConfig``)."""
    with open(os.path.join(path, "utils", "config.py")) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "GetConfig":
            for st in ast.walk(node):
                if (
                    isinstance(st, ast.Assign)
                    and isinstance(st.value, ast.Dict)
                    and any(isinstance(t, ast.Name) and t.id == "config" for t in st.targets)
                ):
                    return ast.literal_eval(st.value)
    raise RuntimeError("could not read the default config of the reference (utils/config.py, GetConfig)")


class Params(dict):
    """Dict with attribute access (stands in for the reference's python-box ``Box``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value


class _Stop(Exception):
    pass


class Recorder:
    """Wall clock with pauses, geometric checkpoints, a cap and the stop-on-reach rule."""

    def __init__(self, evaluate, exact, cap, first=0.1, factor=1.25, own=None, stop_on_reach=True):
        self.evaluate = evaluate  # () -> (value, se)
        self.stop_on_reach = stop_on_reach
        self.steps = []  # (t, step) where the code reports steps
        self.exact = exact
        self.cap = cap
        self.next = first
        self.factor = factor
        self.own = own  # () -> list of (t, value) of the code's own estimates so far
        self.points = []  # (t, value, se)
        self.paused = 0.0
        self.paused_cpu = 0.0
        self.t0 = None
        self.streak = 0
        self.status = "cap"

    def start(self):
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()

    def elapsed(self):
        return time.perf_counter() - self.t0 - self.paused

    def cpu(self):
        return time.process_time() - self.c0 - self.paused_cpu

    def err(self, v):
        return abs(v - self.exact) / abs(self.exact)

    def checkpoint(self, force=False):
        t = self.elapsed()
        if not force and t < self.next and t < self.cap:
            return
        c = self.cpu()
        p0, q0 = time.perf_counter(), time.process_time()
        v, se = self.evaluate()
        self.points.append((t, v, se, c))
        self.paused += time.perf_counter() - p0
        self.paused_cpu += time.process_time() - q0
        while self.next <= t:
            self.next *= self.factor
        if force:
            return
        if not math.isfinite(v):
            self.status = "non-finite"
            raise _Stop
        self.streak = self.streak + 1 if self.err(v) <= TOL else 0
        own_ok = True
        if self.own is not None:
            vals = self.own()
            own_ok = bool(vals) and self.err(vals[-1][1]) <= TOL
        if self.stop_on_reach and self.streak >= 2 and own_ok:
            self.status = "reached"
            raise _Stop
        if t >= self.cap:
            self.status = "cap"
            raise _Stop


def run_reference(models, defaults, X_s, prob, lr, cap, evaluator, seed):
    import torch

    k, n = prob["k"], prob["n"]
    p = Params(defaults)
    p.update(
        k=k,
        n=n,
        dim=DIM,
        dims=[DIM] * k,
        eps=prob["reg"],
        cost_graph="full" if prob["graph"] == "complete" else "circle",
        device="cpu",
        using_wandb=0,
        calc_ot_cost=0,
        efficient_dataset=False,
        alg="ne_mot",
        dataset="synthetic",
        data_dist="uniform",
        seed=seed,
    )
    if lr is not None:
        p["lr"] = lr
    p["batch_size"] = min(p["batch_size"], n)
    X = torch.from_numpy(np.stack(X_s, axis=-1))  # (n, d, k), as its gen_data returns
    torch.manual_seed(seed)
    agent = models.MOT_NE_alg(p, torch.device("cpu"), DIM)

    def potentials():
        with torch.no_grad():
            return [agent.models[i](X[..., i]).numpy().reshape(-1) for i in range(k)]

    own = []  # (t, value) at the end of each epoch

    def own_values():
        vals = getattr(agent, "tot_loss", [])
        while len(own) < len(vals):
            own.append((rec.elapsed(), float(vals[len(own)])))
        return own

    rec = Recorder(lambda: evaluator(potentials()), prob["exact"], cap, own=own_values)

    def batches(loader, *a, **kw):
        own_values()
        for batch in loader:
            rec.checkpoint()
            rec.steps.append((rec.elapsed(), len(rec.steps)))
            yield batch

    saved_tqdm = models.tqdm
    models.tqdm = batches
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):
            rec.start()
            try:
                agent.train_mot(X)
                rec.status = "finished"
            except _Stop:
                pass
            t_end, c_end = rec.elapsed(), rec.cpu()
            own_values()
            if rec.status == "finished" and (not rec.points or rec.points[-1][0] < t_end - 1e-3):
                rec.checkpoint(force=True)
    except _Stop:
        pass
    finally:
        models.tqdm = saved_tqdm
    return dict(
        lr=p["lr"],
        status=rec.status,
        t_end=t_end,
        cpu_end=c_end,
        points=rec.points,
        own=own,
        epochs=len(own),
        batches=len(rec.steps),
        settings={
            key: p[key]
            for key in (
                "batch_size",
                "lr",
                "epochs",
                "schedule",
                "schedule_step",
                "schedule_gamma",
                "clip_grads",
                "max_grad_norm",
                "cost_implement",
                "norm_by_k",
            )
        },
    )


# --------------------------------------------------------------------------------------------
# Ours
# --------------------------------------------------------------------------------------------
def _fit_ours(X_s, prob, recorder, evaluator, seed, **params):
    """Fit :class:`NeuralEMOT` with checkpoints before every training step; returns the fitted estimator.

    The checkpoints wrap :meth:`Trainer.step <ot_multimarginal.neural.training.Trainer.step>` for the
    duration of the fit (the training loop itself is unchanged).
    """
    import torch

    from ot_multimarginal.neural import NeuralEMOT, training

    metric, _ = metric_for(prob["graph"], prob["k"])
    est = NeuralEMOT(prob["reg"], graph=prob["graph"], metric=metric, random_state=seed, **params)
    step = training.Trainer.step

    def step_with_checkpoints(trainer):
        if recorder.evaluate is None:

            def current():
                with torch.no_grad():
                    return [f.double().cpu().numpy() for f in trainer.model(trainer.data)]

            recorder.evaluate = lambda: evaluator(current())
        recorder.steps.append((recorder.elapsed(), trainer.step_count))
        recorder.checkpoint()
        return step(trainer)

    training.Trainer.step = step_with_checkpoints
    try:
        recorder.start()
        est.fit([torch.from_numpy(X) for X in X_s])
        recorder.status = "finished"
    except _Stop:
        est = None
    finally:
        training.Trainer.step = step
    return est


def run_ours(X_s, prob, cap, evaluator, seed, **params):
    """Ours with its defaults: the checkpointed dual on the data, its own estimates, its end-to-end time."""
    try:
        from ot_multimarginal import neural  # noqa: F401
    except ImportError:
        return None
    rec = Recorder(None, prob["exact"], cap, stop_on_reach=False)  # evaluate: set at the first step
    t0 = time.perf_counter()
    est = _fit_ours(X_s, prob, rec, evaluator, seed, **params)
    total = time.perf_counter() - t0 - rec.paused
    t_end, c_end = rec.elapsed(), rec.cpu()
    own = []
    out = dict(status=rec.status, t_end=t_end, cpu_end=c_end, steps=len(rec.steps), params=params)
    if est is not None:
        # the fitted potentials (it keeps its best held-out state) and its own value, evaluated by itself
        rec.evaluate = lambda: evaluator([f.double().cpu().numpy() for f in _potentials_on_data(est)])
        rec.checkpoint(force=True)
        rec.points[-1] = (t_end,) + tuple(rec.points[-1][1:3]) + (c_end,)
        times = dict((s, t) for t, s in rec.steps)
        h = est.history_
        own = [(times.get(s, t_end), float(v)) for s, v in zip(h.get("eval_step", []), h.get("eval_value", []))]
        own.append((t_end, float(est.value_)))
        out.update(
            n_iter=int(est.n_iter_),
            value=float(est.value_),
            value_se=float(getattr(est, "value_se_", 0.0)),
            value_method=getattr(est, "value_method_", None),
            # its own timings_ count the bench's paused checkpoint evaluations as training time
            timings_incl_checkpoints=dict(getattr(est, "timings_", {})),
            end_to_end=total,
            batch_size=getattr(est, "batch_size_", None),
        )
    out.update(points=rec.points, own=own)
    return out


def _potentials_on_data(est):
    import torch

    with torch.no_grad():
        return est.potentials_([X.to(est.potentials_[0].scale.dtype) for X in est.X_fit_])


def long_neural_run(X_s, prob, evaluator, args):
    """The reference value where no engine holds the data: a long run of ours, evaluated by ``evaluator``."""
    import torch

    from ot_multimarginal.neural import NeuralEMOT

    metric, _ = metric_for(prob["graph"], prob["k"])
    t0 = time.perf_counter()
    est = NeuralEMOT(
        prob["reg"],
        graph=prob["graph"],
        metric=metric,
        random_state=args.seed + 1,
        max_iter=args.long_iter,
        patience=None,
    ).fit([torch.from_numpy(X) for X in X_s])
    v, se = evaluator([f.double().cpu().numpy() for f in _potentials_on_data(est)])
    return v, se, time.perf_counter() - t0


# --------------------------------------------------------------------------------------------
def time_to_tol(points, exact, cpu=False):
    """First time (wall clock, or CPU with ``cpu=True``) a point is within the tolerance; None if never."""
    for p in points:
        if math.isfinite(p[1]) and abs(p[1] - exact) / abs(exact) <= TOL:
            return p[3] if cpu else p[0]
    return None


def final_err(points, exact):
    if not points:
        return None
    v = points[-1][1]
    return abs(v - exact) / abs(exact) if math.isfinite(v) else float("inf")


def fmt_t(t):
    return "not reached" if t is None else ("%.2f s" % t if t < 10 else "%.0f s" % t)


def fmt_e(e):
    if e is None:
        return "–"
    if not math.isfinite(e):
        return "non-finite"
    return "%.2f %%" % (100 * e)


def exact_by_engine(prob):
    """Whether the structured Sinkhorn solves the problem in seconds here."""
    if prob["graph"] == "complete":
        return prob["k"] == 3 and prob["n"] <= 2000
    return prob["n"] <= 1000


def solve_exact(X_s, prob):
    import ot_multimarginal as om

    metric, _ = metric_for(prob["graph"], prob["k"])
    t0 = time.perf_counter()
    v, log = om.empirical_emot_sinkhorn2(
        [X.astype(np.float64) for X in X_s], prob["reg"], graph=prob["graph"], metric=metric, stopThr=1e-7, log=True
    )
    return float(v), time.perf_counter() - t0, [np.asarray(f) for f in log["potentials"]]


def lr_sweep(args, models, defaults, problems):
    lrs = [float(s) for s in args.lr_sweep.split(",")]
    rows = []
    for name, prob in problems.items():
        X_s = clouds(prob["k"], prob["n"], DIM, args.seed)
        if not exact_by_engine(prob):
            print("problem %s: no exact value by an engine, skipped in the sweep" % name)
            continue
        prob = dict(prob, exact=solve_exact(X_s, prob)[0])
        ev = DualOnData(X_s, prob["reg"], prob["graph"], exact=True)
        for lr in lrs:
            r = run_reference(models, defaults, X_s, prob, lr, args.ref_cap, ev, args.seed)
            rows.append(
                dict(
                    problem=name,
                    lr=lr,
                    status=r["status"],
                    t_tol=time_to_tol(r["points"], prob["exact"]),
                    t_tol_own=time_to_tol(r["own"], prob["exact"]),
                    final_err=final_err(r["points"], prob["exact"]),
                    best_err=min(
                        (abs(q[1] - prob["exact"]) / prob["exact"] for q in r["points"] if math.isfinite(q[1])),
                        default=None,
                    ),
                    uptime=uptime(),
                )
            )
            x = rows[-1]
            print(
                "| %s | %g | %s | %s | %s | %s | %s |"
                % (
                    name,
                    lr,
                    fmt_t(x["t_tol"]),
                    fmt_t(x["t_tol_own"]),
                    fmt_e(x["final_err"]),
                    fmt_e(x["best_err"]),
                    x["status"],
                ),
                flush=True,
            )
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, "bench_neural_reference_lr_sweep.json")
    for row in rows:
        row.update(cap=args.ref_cap, date=datetime.datetime.now().isoformat(timespec="seconds"))
    old = []
    if os.path.exists(path):  # keep the rows of other problems / learning rates
        with open(path) as f:
            old = json.load(f).get("rows", [])
    done = {(r["problem"], r["lr"]) for r in rows}
    rows = [r for r in old if (r["problem"], r["lr"]) not in done] + rows
    with open(path, "w") as f:
        json.dump(dict(rows=rows), f, indent=1)


def run_problem(args, models, defaults, name, prob):
    res = dict(problem=name, **prob, d=DIM, uptime_before=uptime())
    _, res["cost"] = metric_for(prob["graph"], prob["k"])
    X_s = clouds(prob["k"], prob["n"], DIM, args.seed)
    exact = exact_by_engine(prob)
    ev = DualOnData(X_s, prob["reg"], prob["graph"], exact=exact, seed=args.seed)
    res["evaluation"] = ev.how
    if exact:
        res["exact"], res["exact_time"], potentials = solve_exact(X_s, prob)
        res["exact_how"] = "structured Sinkhorn (stopThr 1e-7)"
        # the evaluator gives Sinkhorn's value back from Sinkhorn's potentials
        res["evaluator_check"] = abs(ev(potentials)[0] - res["exact"])
    else:
        res["exact"], res["exact_se"], res["exact_time"] = long_neural_run(X_s, prob, ev, args)
        res["exact_how"] = "long run of emot_neural (dual on data, MC)"
    prob = dict(prob, exact=res["exact"])
    zero, _ = ev([np.zeros(n) for n in [prob["n"]] * prob["k"]])
    res["zero_value"], res["zero_err"] = zero, abs(zero - res["exact"]) / abs(res["exact"])
    runs = {}
    runs["reference (its defaults)"] = run_reference(models, defaults, X_s, prob, None, args.ref_cap, ev, args.seed)
    runs["reference (lr %g)" % args.ref_lr_tuned] = run_reference(
        models, defaults, X_s, prob, args.ref_lr_tuned, args.ref_cap, ev, args.seed
    )
    runs["ours (emot_neural defaults)"] = run_ours(X_s, prob, args.ours_cap, ev, args.seed)
    for r in runs.values():
        if r is None:
            continue
        r["t_tol"] = time_to_tol(r["points"], res["exact"])
        r["cpu_tol"] = time_to_tol(r["points"], res["exact"], cpu=True)
        r["t_tol_own"] = time_to_tol(r.get("own", []), res["exact"])
        r["final_err"] = final_err(r["points"], res["exact"])
        r["final_err_own"] = final_err(r.get("own", []), res["exact"])
    res["runs"] = runs
    ours = runs["ours (emot_neural defaults)"]
    refs = [r for key, r in runs.items() if key.startswith("reference")]
    ref_t = [r["t_tol"] for r in refs if r["t_tol"] is not None]
    ref_c = [r["cpu_tol"] for r in refs if r["cpu_tol"] is not None]
    if ours is not None and ours["t_tol"] is not None:
        if ref_t:
            res["speedup"] = min(ref_t) / ours["t_tol"]
            res["speedup_cpu"] = min(ref_c) / max(ours["cpu_tol"], 1e-9)
        else:  # the reference never got there: a lower bound from its longest run
            res["speedup_at_least"] = max(r["t_end"] for r in refs) / ours["t_tol"]
            res["speedup_cpu_at_least"] = max(r["cpu_end"] for r in refs) / max(ours["cpu_tol"], 1e-9)
    res["uptime_after"] = uptime()
    return res


def table(results):
    lines = [
        "| problem | exact (how) | zero φ | run | time to 1 % (dual on data) | time to 1 % (own estimate) "
        "| final error (dual / own) | stopped |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        head = "%s: %s k=%d, n=%d, d=%d, ε=%g" % (
            res["problem"],
            res["graph"],
            res["k"],
            res["n"],
            res["d"],
            res["reg"],
        )
        ex = "%.5f (%s, %.0f s)" % (
            res["exact"],
            "Sinkhorn" if "Sinkhorn" in res["exact_how"] else "long neural run",
            res["exact_time"],
        )
        first = True
        for key, r in res["runs"].items():
            if r is None:
                row = [key, "not available", "", "", ""]
            else:
                row = [
                    key,
                    fmt_t(r["t_tol"]) + ("" if r["cpu_tol"] is None else " (CPU %s)" % fmt_t(r["cpu_tol"])),
                    fmt_t(r["t_tol_own"]) if r.get("own") else "–",
                    "%s / %s" % (fmt_e(r["final_err"]), fmt_e(r["final_err_own"])),
                    "%s at %.1f s" % (r["status"], r["t_end"]),
                ]
            lines.append(
                "| %s | %s | %s | %s |"
                % (head if first else "", ex if first else "", fmt_e(res["zero_err"]) if first else "", " | ".join(row))
            )
            first = False
        if "speedup" in res:
            s = "**%.0f×** faster (CPU time: %.0f×), dual on data, best reference run" % (
                res["speedup"],
                res["speedup_cpu"],
            )
        elif "speedup_at_least" in res:
            s = "**> %.0f×** (CPU time: > %.0f×): the reference did not reach 1 %% before its cap" % (
                res["speedup_at_least"],
                res["speedup_cpu_at_least"],
            )
        else:
            s = "–"
        lines.append("| | | | speed-up to 1 %% | %s | | | |" % s)
    return "\n".join(lines)


def summary_table(results):
    """One row per problem: time to 1 % of the dual on the data and final error of each run, and the speed-up."""
    keys = []
    for res in results:
        keys += [k for k in res["runs"] if k not in keys]
    head = (
        ["problem", "exact", "zero φ"]
        + ["%s: time to 1 %% / final error" % k for k in keys]
        + ["speed-up (wall / CPU)", "load"]
    )
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        row = [
            "%s: %s k=%d, n=%d, ε=%g" % (res["problem"], res["graph"], res["k"], res["n"], res["reg"]),
            "%.4f (%s)" % (res["exact"], "Sinkhorn" if "Sinkhorn" in res["exact_how"] else "long run"),
            fmt_e(res["zero_err"]),
        ]
        for k in keys:
            r = res["runs"].get(k)
            row.append(
                "–"
                if r is None
                else "%s / %s"
                % (fmt_t(r["t_tol"]) if r["t_tol"] is not None else "> %.0f s" % r["t_end"], fmt_e(r["final_err"]))
            )
        if "speedup" in res:
            row.append("**%.0f×** / %.0f×" % (res["speedup"], res["speedup_cpu"]))
        elif "speedup_at_least" in res:
            row.append("**> %.0f×** / > %.0f×" % (res["speedup_at_least"], res["speedup_cpu_at_least"]))
        else:
            row.append("–")
        row.append(res["uptime_after"].split("load average:")[-1].split(",")[0].strip())
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = len(results)
    cols = min(m, 2)
    rows = (m + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows + 0.8), squeeze=False)
    axes = axes.reshape(-1)
    for ax in axes[m:]:
        ax.set_visible(False)
    colors = {"reference (its defaults)": "tab:gray", "ours (emot_neural defaults)": "tab:blue"}
    for ax, res in zip(axes, results):
        for key, r in res["runs"].items():
            if r is None or not r["points"]:
                continue
            c = colors.get(key, "tab:orange")
            t = [p[0] for p in r["points"]]
            e = [max(abs(p[1] - res["exact"]) / abs(res["exact"]), 1e-6) for p in r["points"]]
            ax.plot(t, e, "-o", ms=3, color=c, label=key + ", dual on data")
            if r.get("own"):
                t = [p[0] for p in r["own"]]
                e = [max(abs(p[1] - res["exact"]) / abs(res["exact"]), 1e-6) for p in r["own"]]
                ax.plot(t, e, ":", color=c, alpha=0.7, label=key + ", own estimate")
        ax.axhline(TOL, color="k", lw=0.8, ls="--")
        ax.axhline(max(res["zero_err"], 1e-6), color="tab:red", lw=0.8, ls=":", label="zero potentials")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("wall-clock training time (s)")
        ax.set_title(
            "%s: %s k=%d n=%d ε=%g" % (res["problem"], res["graph"], res["k"], res["n"], res["reg"]), fontsize=9
        )
    for ax in axes[::cols]:
        ax.set_ylabel("relative error to the exact value")
    handles, labels = [], []
    for ax in axes[:m]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    ncol = 3 if cols > 1 else 2
    fig.legend(handles, labels, loc="lower center", ncol=ncol, fontsize=7, frameon=False)
    lines = -(-len(labels) // ncol)
    fig.tight_layout(rect=(0, (0.16 * lines + 0.1) / (3.6 * rows + 0.8), 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(name, saved):
    """Write ``bench/results/<name>.md`` from the saved results (meta, summary and detailed tables)."""
    from _report import write_markdown

    m = saved["meta"]
    problems = ", ".join(r["problem"] for r in saved["results"])
    write_markdown(
        name,
        "Against the NEMOT reference code (%s)" % problems,
        [
            "The authors' code (DorTsur/NMOT at `%s`, cloned separately, unmodified, on the CPU with stubs for the "
            "imports it does not use here) and `NeuralEMOT` with its default settings, in the same process, on the "
            "same points (uniform on [−1/√5, 1/√5]⁵ as in the paper), %d torch thread each. Costs matched: on the "
            "complete graph the reference's default (1/k) Σ_{i<j} ‖xᵢ − xⱼ‖² (`norm_by_k`), "
            "on the circle Σᵢ ‖xᵢ − xᵢ₊₁‖². "
            "Accuracy is the dual of each code's learned potentials evaluated on all the data, the same way for both "
            "(exact by the graph engines, a certified lower bound; Monte Carlo over 2²⁰ index tuples where no engine "
            "holds the data), against the exact value. Time is training time up to the first checkpoint within %g %% "
            "(checkpoints at ×1.25 in time, evaluation excluded). The reference runs once with its own defaults "
            '(lr %g, batch %d) and once with lr %g, each capped at %g s ("> %g s": not reached). "zero φ" is the '
            'error of zero potentials, so the 1 %% means something. "load": `uptime`\'s 1-minute load at the end of '
            "each problem on the shared 2-core machine; the CPU-time ratio is the steadier one. Run of %s, torch %s."
            % (
                m["reference_commit"][:7],
                m["threads"],
                100 * m["tol"],
                m["reference_defaults"]["lr"],
                m["reference_defaults"]["batch_size"],
                m["ref_lr_tuned"],
                m["ref_cap"],
                m["ref_cap"],
                m["date"],
                m["torch"],
            ),
            saved["summary"],
            "## Detailed runs",
            saved["table"],
        ],
        source="`python bench/bench_neural_reference.py --nmot-path /path/to/NMOT`",
        figures=[(name + ".png", "error against training time, reference and ours")]
        if os.path.exists(os.path.join(RESULTS, name + ".png"))
        else (),
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--nmot-path",
        default=os.environ.get("NMOT_PATH"),
        help="folder of a clone of github.com/DorTsur/NMOT (default: $NMOT_PATH)",
    )
    ap.add_argument("--quick", action="store_true", help="small problems and caps (< 2 min)")
    ap.add_argument("--problems", default=None, help="comma-separated problem names (default: all)")
    ap.add_argument("--ref-cap", type=float, default=None, help="seconds per reference run (45; quick: 10)")
    ap.add_argument("--ours-cap", type=float, default=None, help="seconds per run of ours (90; quick: 20)")
    ap.add_argument("--ref-lr-tuned", type=float, default=3e-4, help="the better learning rate for the reference")
    ap.add_argument(
        "--lr-sweep",
        default=None,
        help="comma-separated learning rates: only sweep the reference's lr on the chosen problems",
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--long-iter",
        type=int,
        default=1000,
        help="steps of the long neural run that gives the value where no engine holds the data",
    )
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/bench_neural_reference.json)")
    ap.add_argument("--render", action="store_true", help="rewrite the .md results page from the JSON (--out), no run")
    args = ap.parse_args(argv)
    if args.render:
        out = args.out or os.path.join(RESULTS, "bench_neural_reference.json")
        with open(out) as f:
            report(os.path.splitext(os.path.basename(out))[0], json.load(f))
        return 0

    path = args.nmot_path
    if not path or not os.path.isfile(os.path.join(path, "neural_estimation", "models.py")):
        print(OBTAIN.format(where="" if not path else " at %s" % path))
        return 0
    if args.ref_cap is None:
        args.ref_cap = 10.0 if args.quick else 45.0
    if args.ours_cap is None:
        args.ours_cap = 20.0 if args.quick else 90.0

    import torch

    torch.set_num_threads(args.threads)
    # one-time lazy imports (torch.optim pulls in torch._dynamo on its first optimiser, ~5-10 s here) happen
    # now, before any clock starts, so that neither side pays them
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])
    models, stubbed = load_reference(path)
    defaults = reference_defaults(path)
    problems = dict(QUICK if args.quick else PROBLEMS)
    if args.problems:
        wanted = [p.strip() for p in args.problems.split(",")]
        known = dict(PROBLEMS, **EXTRA, **{"quick-" + k: v for k, v in QUICK.items()})
        unknown = [w for w in wanted if w not in known and w not in problems]
        if unknown:
            ap.error("unknown problem(s) %s; choose from %s" % (", ".join(unknown), ", ".join(sorted(known))))
        problems = {w: problems.get(w, known.get(w)) for w in wanted}
    if args.lr_sweep:
        lr_sweep(args, models, defaults, problems)
        return 0
    results = []
    for name, prob in problems.items():
        print("problem %s: %s" % (name, prob), flush=True)
        results.append(run_problem(args, models, defaults, name, prob))
    md = table(results)
    print(md)
    summary = summary_table(results)
    print("\n" + summary)
    os.makedirs(RESULTS, exist_ok=True)
    out = args.out or os.path.join(RESULTS, "bench_neural_reference%s.json" % ("_quick" if args.quick else ""))
    meta = dict(
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        reference_commit=reference_commit(path),
        stubbed_imports=stubbed,
        reference_defaults={
            k: defaults.get(k)
            for k in (
                "batch_size",
                "epochs",
                "lr",
                "schedule",
                "schedule_step",
                "schedule_gamma",
                "clip_grads",
                "max_grad_norm",
                "cost_implement",
                "norm_by_k",
            )
        },
        threads=args.threads,
        ref_cap=args.ref_cap,
        ours_cap=args.ours_cap,
        tol=TOL,
        seed=args.seed,
        ref_lr_tuned=args.ref_lr_tuned,
        torch=torch.__version__,
    )
    with open(out, "w") as f:
        json.dump(dict(meta=meta, results=results, table=md, summary=summary), f, indent=1, default=float)
    png = os.path.splitext(out)[0] + ".png"
    plot(results, png)
    report(os.path.splitext(os.path.basename(out))[0], dict(meta=meta, results=results, table=md, summary=summary))
    print("\nsaved %s and %s" % (out, png))
    print("reference commit: %s; %s" % (meta["reference_commit"], uptime()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
