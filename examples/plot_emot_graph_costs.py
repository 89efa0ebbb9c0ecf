# -*- coding: utf-8 -*-
r"""
===============================================================================
Multimarginal OT on a chain of measures, without the n^k tensor
===============================================================================

.. note::
    Example added in release: 0.1.0.

Eight point clouds drift along a curve (think of snapshots of a population at
eight times). With a cost that only couples consecutive times,

.. math::
    c(x_1, \dots, x_8) = \sum_{t=1}^{7} \|x_t - x_{t+1}\|^2,

the entropic 8-marginal plan is a Markov chain: it is solved by message passing
on the chain (:class:`ot_multimarginal.PairwiseCost`), although the dense tensor
would have :math:`60^8 \approx 1.7\cdot 10^{14}` entries. We draw whole
trajectories from the plan and round it onto the exact transport polytope.
"""

# License: MIT License

import matplotlib.pyplot as plt
import numpy as np

import ot_multimarginal as om

# %%
# Eight snapshots of a drifting population
# ----------------------------------------
rng = np.random.RandomState(0)
T, n = 8, 60
times = np.linspace(0, 1, T)
X_s = [rng.randn(n, 2) * 0.15 + np.array([3 * t, np.sin(2 * np.pi * t)]) for t in times]

cost = om.PairwiseCost.from_point_clouds(X_s, graph="chain")
print(cost)

# %%
# Solve, then look at the plan without forming it
# -----------------------------------------------
P, log = om.emot_sinkhorn(None, cost, reg=0.05, stopThr=1e-8, numItermax=5000, log=True)
print("value %.5f in %d sweeps; plan: %r" % (log["value"], log["niter"], P))
print("marginal error before rounding: %.2e" % P.marginal_error())
Y = P.round()
print("marginal error after rounding: %.2e" % Y.marginal_error())
paths = P.sample(40, random_state=1)  # (40, T) indices: whole trajectories
print("density of the first sampled path: %.3e" % P.density(paths[:1])[0])

# %%
# Sampled trajectories
# --------------------
fig, ax = plt.subplots(figsize=(7, 3.5))
for t, X in enumerate(X_s):
    ax.scatter(X[:, 0], X[:, 1], s=6, color=plt.cm.viridis(t / (T - 1)), zorder=2)
for path in paths:
    pts = np.array([X_s[t][path[t]] for t in range(T)])
    ax.plot(pts[:, 0], pts[:, 1], color="k", alpha=0.25, lw=0.8, zorder=1)
ax.set_title("Trajectories sampled from the 8-marginal entropic plan")
fig.tight_layout()
plt.show()
