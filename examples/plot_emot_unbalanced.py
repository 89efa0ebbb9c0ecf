# -*- coding: utf-8 -*-
r"""
===============================================================================
Unbalanced multimarginal OT: a growing population with an outlier cluster
===============================================================================

.. note::
    Example added in release: 0.2.0.

Four snapshots of a population of cells drift to the right and **grow**
(each snapshot has more mass than the previous one); the third snapshot also
holds a small **outlier cluster** far away (a batch effect, a contamination).
We couple the four snapshots along time, a chain :math:`0 - 1 - 2 - 3` with
squared Euclidean costs, and compare

- balanced EMOT (:func:`~ot_multimarginal.emot_sinkhorn`): the weights are
  normalised and every marginal is a constraint, so mass must flow in and
  out of the outliers, and the growth is explained by transport;
- unbalanced EMOT (``reg_m``): the marginal constraints become penalties
  :math:`\rho\,\mathrm{KL}(r_i(P)\,\|\,a_i)` and the weights keep their
  masses, so the plan may create and destroy mass where transport is too
  dear: the outliers are left (almost) unmatched.

Both solves run on the chain's tree engine (message passing, no
:math:`n^4` tensor). See :doc:`/unbalanced` for the maths and conventions.
"""

# License: MIT License

# sphinx_gallery_thumbnail_number = 1

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection

import ot_multimarginal as om

# %%
# The snapshots
# -------------
# 40 cells at t = 0, then about 20% more at each step; each cell has unit
# mass. The outliers (12 cells) appear at t = 2 only.

rng = np.random.RandomState(0)
growth = [1.0, 1.2, 1.45, 1.75]
X_s, a_s, outlier = [], [], []
for t, g in enumerate(growth):
    n = int(round(40 * g))
    X = np.c_[1.2 * t + 0.35 * rng.randn(n), 0.5 * rng.randn(n)]
    is_out = np.zeros(n, dtype=bool)
    if t == 2:
        X = np.r_[X, np.c_[2.4 + 0.25 * rng.randn(12), 3.0 + 0.25 * rng.randn(12)]]
        is_out = np.r_[is_out, np.ones(12, dtype=bool)]
    X_s.append(X)
    a_s.append(np.ones(len(X)) / 40.0)  # unit mass per cell, in units of the first snapshot
    outlier.append(is_out)
print("snapshot masses:", [round(float(a.sum()), 2) for a in a_s])

cost = om.PairwiseCost.from_point_clouds(X_s, graph="chain")
reg, rho = 0.1, 5.0

# %%
# Balanced and unbalanced couplings
# ---------------------------------

P_bal, log_bal = om.emot_sinkhorn([a / a.sum() for a in a_s], cost, reg, log=True)
P_unb, log_unb = om.emot_sinkhorn(a_s, cost, reg, reg_m=rho, log=True)
print("balanced EMOT value: %.4f (%d sweeps)" % (log_bal["value"], log_bal["niter"]))
print("unbalanced EMOT value: %.4f (%d sweeps), plan mass %.3f" % (log_unb["value"], log_unb["niter"], P_unb.mass))


def outlier_share(log):
    """Share of the plan's mass at t = 2 that sits on the outlier cluster."""
    r = log["marginals"][2]
    return float(r[outlier[2]].sum() / r.sum())


print(
    "outlier share at t=2: data %.1f%%, balanced plan %.1f%%, unbalanced plan %.1f%%"
    % (100 * a_s[2][outlier[2]].sum() / a_s[2].sum(), 100 * outlier_share(log_bal), 100 * outlier_share(log_unb))
)

# %%
# The couplings between consecutive snapshots
# -------------------------------------------
# Each segment joins two cells of consecutive snapshots; its opacity is the
# mass of the pairwise marginal :math:`P_{t,t+1}` (relative to the largest).
# Balanced, mass must reach the outliers from the main population and leave
# them again; unbalanced, those long segments (almost) vanish.

colors = plt.cm.viridis(np.linspace(0, 0.9, 4))
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, sharey=True)
for ax, P, title in zip(axes, (P_bal, P_unb), ("balanced", "unbalanced (reg_m=%g)" % rho)):
    for t in range(3):
        pm = np.asarray(P.pairwise_marginal(t, t + 1))
        pm = pm / pm.max()
        ii, jj = np.nonzero(pm > 0.02)
        segments = np.stack([X_s[t][ii], X_s[t + 1][jj]], axis=1)
        rgba = np.zeros((len(ii), 4))
        rgba[:, 3] = 0.6 * pm[ii, jj]
        ax.add_collection(LineCollection(segments, colors=rgba, linewidths=0.8))
    for t, X in enumerate(X_s):
        r = np.asarray(P.marginal(t))
        ax.scatter(
            X[:, 0],
            X[:, 1],
            s=20 * r * len(r) / r.sum(),
            color=colors[t],
            edgecolor="k",
            lw=0.3,
            label="t = %d" % t,
            zorder=3,
        )
    ax.set_title(
        "%s: outliers get %.0f%% of the mass at t=2" % (title, 100 * outlier_share(log_bal if P is P_bal else log_unb))
    )
    ax.set_aspect("equal")
axes[0].legend(loc="lower right", fontsize=8)
fig.suptitle(
    "Four snapshots of a growing population, coupled along time (disc area: the plan's marginal, "
    "relative to the snapshot's mean)"
)
fig.tight_layout()

# %%
# The marginals: what the plan keeps of each snapshot
# ---------------------------------------------------
# One multimarginal plan is a measure on *tuples* (trajectories
# :math:`(x_0, x_1, x_2, x_3)`), so all its marginals have the same total
# mass :math:`\|P\|_1`: the unbalanced plan settles on a compromise mass
# between the snapshots' (here about 1.07) and pays
# :math:`\rho\,\mathrm{KL}(r_t\,\|\,a_t)` for the mass it creates or
# destroys at each time. Where that mass goes is the point: on the main
# population the plan's marginal (bars) follows the data's shape, and the
# outliers are dropped. ``reg_m`` sets the price (``inf``: a constraint;
# smaller: cheaper mass changes, more is dropped).

fig, ax = plt.subplots(figsize=(6, 3.2))
x = np.arange(4)
main_data = [a[~o].sum() for a, o in zip(a_s, outlier)]
out_data = [a[o].sum() for a, o in zip(a_s, outlier)]
main_plan = [float(r[~o].sum()) for r, o in zip(log_unb["marginals"], outlier)]
out_plan = [float(r[o].sum()) for r, o in zip(log_unb["marginals"], outlier)]
ax.bar(x, main_plan, 0.5, label="plan: main population", color="C0")
ax.bar(x, out_plan, 0.5, bottom=main_plan, label="plan: outliers", color="C3")
ax.plot(x, main_data, "o", color="C0", mec="k", label="data: main population")
ax.plot(x, np.add(main_data, out_data), "s", color="C3", mec="k", label="data: with outliers")
ax.set_xticks(x)
ax.set_xticklabels(["t = %d" % t for t in range(4)])
ax.set_ylabel("mass")
ax.set_title("unbalanced plan's marginals (reg_m=%g) vs the data" % rho)
ax.legend(fontsize=7)
fig.tight_layout()
plt.show()
