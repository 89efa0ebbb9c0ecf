# -*- coding: utf-8 -*-
r"""
===============================================================================
Neural estimation of multimarginal OT (NEMOT) on large point clouds
===============================================================================

.. note::
    Example added in release: 0.1.0.

Six snapshots of a population, 2000 points each, coupled along time by the
cost :math:`c(x_1, \dots, x_6) = \sum_t \|x_t - x_{t+1}\|^2`. The dense cost
tensor would have :math:`2000^6 = 6.4\cdot 10^{19}` entries. :func:`ot_multimarginal.emot_neural`
trains one small network per snapshot (the dual potentials) on mini-batches
of 128 points per snapshot; each step costs the same whatever the number of
points. Here the exact structured Sinkhorn (message passing on the chain) can
still be run, so we watch the neural estimate converge to its value; the
final neural value is the dual of the learned potentials evaluated exactly on
the data, hence a certified lower bound.
"""

# License: MIT License

import matplotlib.pyplot as plt
import numpy as np

import ot_multimarginal as om
from ot_multimarginal.neural import NeuralEMOT

# %%
# Six snapshots of a drifting population
# --------------------------------------
rng = np.random.RandomState(0)
T, n = 6, 2000
times = np.linspace(0, 1, T)
X_s = [rng.randn(n, 2) * 0.3 + np.array([2 * t, np.sin(2 * np.pi * t)]) for t in times]
reg = 0.5

# %%
# Train the potentials (a progress bar shows the running estimate)
# ----------------------------------------------------------------
est = NeuralEMOT(reg, graph="chain", random_state=0, verbose=True).fit(X_s)
print("neural value %.5f (%s, %d steps, %.1f s)" % (est.value_, est.value_method_, est.n_iter_, est.timings_["total"]))

# %%
# The exact value, by Sinkhorn on the chain
# -----------------------------------------
v_sinkhorn = om.empirical_emot_sinkhorn2(X_s, reg, graph="chain", stopThr=1e-8)
print("Sinkhorn value %.5f; neural relative error %+.3f%%" % (v_sinkhorn, 100 * (est.value_ - v_sinkhorn) / v_sinkhorn))

# %%
# Training curve: mini-batch duals and the held-out estimates
# -----------------------------------------------------------
h = est.history_
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
ax = axes[0]
ax.plot(h["step"], h["batch_dual"], lw=0.5, alpha=0.6, label="mini-batch dual")
ax.errorbar(
    h["eval_step"],
    h["eval_value"],
    yerr=2 * np.asarray(h["eval_se"]),
    fmt="o-",
    ms=3,
    label="held-out estimate (± 2 s.e.)",
)
ax.axhline(v_sinkhorn, color="k", ls="--", label="exact (Sinkhorn)")
ax.axhline(est.value_, color="C3", ls=":", label="final neural value (exact dual)")
ax.set_ylim(v_sinkhorn - 0.25 * abs(v_sinkhorn), v_sinkhorn + 0.1 * abs(v_sinkhorn))
ax.set_xlabel("training step")
ax.set_title("EMOT estimate")
ax.legend(fontsize=7)

# %%
# The plan of the potentials: trajectories sampled from a FactoredPlan
# --------------------------------------------------------------------
P = est.plan()
paths = P.sample(30, random_state=1)
ax = axes[1]
for X in X_s:
    ax.scatter(X[:300, 0], X[:300, 1], s=2, alpha=0.3)
for p in paths:
    pts = np.array([X_s[t][p[t]] for t in range(T)])
    ax.plot(pts[:, 0], pts[:, 1], "k-", lw=0.6, alpha=0.6)
ax.set_title("trajectories sampled from the neural plan")
fig.tight_layout()
plt.show()
