# -*- coding: utf-8 -*-
"""The authors' reference code (GitHub DorTsur/NMOT) against ``emot_neural`` on one problem, in one process.

Run (the reference code is not vendored: pass a checkout of it)::

    git clone https://github.com/DorTsur/NMOT /tmp/nmot
    python bench/nmot_reference.py --nmot /tmp/nmot --graph circle --k 5 --n 300 --d 2 --reg 1

The reference's ``MOT_NE_alg`` is imported from the checkout as it is; the modules it imports but
does not use on this path (wandb, jax, optax, kornia, torchvision, anytree) are replaced by empty
stubs. It trains epoch by epoch (``train_mot`` with ``epochs=1``, models and optimisers kept), with
its combinatorial circle loss (``cost_implement`` unset) or its default aligned ('simplified') loss,
on the same points. After each epoch the dual of its potentials is evaluated *exactly* on the
data with our engines (not timed), and compared with the exact value (our structured Sinkhorn):
the table reports the time to reach 1% and the final error, for its default learning rate (1e-5,
clipping 1e-3, halved every 5 epochs) and a tuned one (1e-3), against ``emot_neural``'s defaults
(its potentials checked the same way every 10 steps; "time to 1%" counts the training steps).
"""
# License: MIT License

import argparse
import math
import os
import sys
import time
import types

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.neural.costs import GraphCost  # noqa: E402
from ot_multimarginal.neural.objectives import exact_dual  # noqa: E402


class _Stub(types.ModuleType):
    """An empty module whose attributes are stubs too; called, it returns its first argument
    (so that decorators such as ``jax.jit`` leave the function as it is)."""

    __path__ = []  # a package: submodules resolve to stubs too

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _stub(self.__name__ + "." + attr)

    def __call__(self, *args, **kwargs):
        return args[0] if args else self


def _stub(name):
    mod = _Stub(name)
    sys.modules[name] = mod
    return mod


def import_reference(path):
    for name in ("wandb", "jax", "jax.numpy", "jax.random", "jax.tree_util", "jax.nn", "optax", "kornia",
                 "torchvision", "torchvision.models", "torchvision.datasets", "torchvision.transforms",
                 "torchvision.transforms.functional", "anytree"):
        _stub(name)
    sys.modules["anytree"].Node = object
    sys.modules["anytree"].RenderTree = object
    sys.path.insert(0, path)
    from neural_estimation.models import MOT_NE_alg  # noqa: E402

    # the stubs stay bound inside the reference's modules; out of sys.modules, so that libraries
    # probing for jax (scipy's array API) do not find them
    for name in [m for m in sys.modules if isinstance(sys.modules[m], _Stub)]:
        del sys.modules[name]
    return MOT_NE_alg


class Params(dict):
    """The attribute-and-key access the reference's config object provides."""

    def __getattr__(self, k):
        return self.get(k)


def reference_run(MOT_NE_alg, X_s, reg, graph, lr, epochs, batch_size, evaluate, simplified=False):
    k, (n, d) = len(X_s), X_s[0].shape
    params = Params(dataset="synthetic", k=k, epochs=1, batch_size=batch_size, eps=reg, cost="quad", lr=lr,
                    schedule=1, schedule_step=5, schedule_gamma=0.5, cost_graph={"complete": "full"}.get(graph, graph),
                    using_wandb=0, efficient_dataset=False, regularize_pariwise_coupling=0, clip_grads=1,
                    max_grad_norm=0.001 if lr <= 1e-4 else 0.1, cost_implement="simplified" if simplified else None,
                    calc_ot_cost=0, euler=0, norm_by_k=0, n=n)
    agent = MOT_NE_alg(params, torch.device("cpu"), d)
    X = torch.tensor(np.stack(X_s, axis=-1), dtype=torch.float32)  # (n, d, k), its data layout
    trace = []
    t_train = 0.0
    for ep in range(epochs):
        t = time.perf_counter()
        agent.train_mot(X)
        t_train += time.perf_counter() - t
        with torch.no_grad():
            f = [agent.models[i](X[:, :, i]).squeeze(-1).double() for i in range(k)]
        trace.append((ep + 1, t_train, evaluate(f)))
    return trace


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nmot", required=True, help="path of a checkout of github.com/DorTsur/NMOT")
    p.add_argument("--graph", default="circle")
    p.add_argument("--k", type=int, default=5)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--d", type=int, default=2)
    p.add_argument("--reg", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    MOT_NE_alg = import_reference(args.nmot)
    rng = np.random.default_rng(0)
    X_s = [(rng.random((args.n, args.d)) * 2 - 1) / math.sqrt(args.d) for _ in range(args.k)]
    exact = float(om.empirical_emot_sinkhorn2(X_s, args.reg, graph=args.graph, stopThr=1e-9, numItermax=5000))
    cost = GraphCost(args.k, args.graph)
    Xt = [torch.tensor(X) for X in X_s]
    w = [torch.full((args.n,), 1.0 / args.n, dtype=torch.float64) for _ in X_s]

    def evaluate(f):
        return float(exact_dual(cost, Xt, f, args.reg, w))

    print("exact (Sinkhorn) %.6f; uptime: %s" % (exact, os.popen("uptime").read().strip()))
    # emot_neural with its defaults; every 10 steps its potentials are checked exactly (not timed)
    from ot_multimarginal.neural import training

    plain_step = training.Trainer.step
    probe = {"steps_s": 0.0, "probe_s": 0.0, "hit": None}

    def timed_step(self):
        t = time.perf_counter()
        v = plain_step(self)
        probe["steps_s"] += time.perf_counter() - t
        if probe["hit"] is None and self.step_count % 10 == 0:
            t = time.perf_counter()
            with torch.no_grad():
                f = [phi(X.float()).double() for phi, X in zip(self.model.potentials, Xt)]
            if abs(evaluate(f) - exact) <= 0.01 * abs(exact):
                probe["hit"] = probe["steps_s"]
            probe["probe_s"] += time.perf_counter() - t
        return v

    training.Trainer.step = timed_step
    try:
        t = time.perf_counter()
        est = om.NeuralEMOT(args.reg, graph=args.graph, seed=0).fit(X_s)
        total = time.perf_counter() - t - probe["probe_s"]
    finally:
        training.Trainer.step = plain_step
    ours = (total, float(est.value_), probe["hit"])
    print("emot_neural: %.1f s end to end, rel. err %+.3f%% (%d steps); training steps to 1%%: %s"
          % (ours[0], 100 * (ours[1] - exact) / exact, est.n_iter_,
             "%.1f s" % ours[2] if ours[2] is not None else "not reached"))
    rows = []
    for label, lr, simplified in (("reference, default lr 1e-5, combinatorial", 1e-5, False),
                                  ("reference, lr 1e-3, combinatorial", 1e-3, False),
                                  ("reference, lr 1e-3, aligned ('simplified')", 1e-3, True)):
        trace = reference_run(MOT_NE_alg, X_s, args.reg, args.graph, lr, args.epochs, 32, evaluate, simplified)
        hit = next((tt for ep, tt, v in trace if abs(v - exact) <= 0.01 * abs(exact)), None)
        rows.append((label, trace[-1][1], hit, (trace[-1][2] - exact) / exact))
        print("%s: %d epochs %.1f s, time to 1%%: %s, final rel. err %+.3f%%"
              % (label, len(trace), trace[-1][1], "%.1f s" % hit if hit is not None else "not reached",
                 100 * rows[-1][3]), flush=True)
    print()
    print("| run | time (s) | time to 1% (s) | final rel. err |")
    print("|---|---|---|---|")
    print("| emot_neural (defaults) | %.1f | %s | %+.3f%% |" % (
        ours[0], "%.1f" % ours[2] if ours[2] is not None else "not reached", 100 * (ours[1] - exact) / exact))
    for label, tt, hit, err in rows:
        print("| %s | %.1f | %s | %+.3f%% |" % (label, tt, "%.1f" % hit if hit is not None else "not reached",
                                                100 * err))


if __name__ == "__main__":
    main()
