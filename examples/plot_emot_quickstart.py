# -*- coding: utf-8 -*-
r"""
===============================================================================
Entropic multimarginal OT between three point clouds
===============================================================================

.. note::
    Example added in release: 0.1.0.

We couple three point clouds :math:`\mu_1, \mu_2, \mu_3` in the plane, a ring,
a crescent and a tilted ellipse, with the cost
:math:`c(x_1, x_2, x_3) = \sum_{i<j} \|x_i - x_j\|^2` and solve

.. math::
    \min_{P \in \Pi(a_1, a_2, a_3)} \langle C, P\rangle
    + \varepsilon\, \mathrm{KL}(P \,\|\, a_1 \otimes a_2 \otimes a_3)

with multimarginal Sinkhorn, check it against the exact LP, and look at the
coupling: each heavy entry :math:`P_{ijl}` is a *triplet*
:math:`(x^{(1)}_i, x^{(2)}_j, x^{(3)}_l)` matched together, drawn as a
triangle. For this cost the triplets' centroids are the support of the
Wasserstein barycenter of the three clouds.
"""

# License: MIT License

# sphinx_gallery_thumbnail_number = 1

import time

import matplotlib.pyplot as plt
import numpy as np

import ot_multimarginal as om

# %%
# Three point clouds of different sizes and shapes
# ------------------------------------------------
rng = np.random.RandomState(42)
sizes = (30, 40, 50)
t1 = np.sort(rng.uniform(0, 2 * np.pi, sizes[0]))
ring = np.c_[np.cos(t1), np.sin(t1)] * 0.8 + rng.randn(sizes[0], 2) * 0.04
t2 = np.sort(rng.uniform(0.15 * np.pi, 1.85 * np.pi, sizes[1]))
crescent = np.c_[np.cos(t2), np.sin(t2)] * 0.9 + np.array([3.2, 0.3]) + rng.randn(sizes[1], 2) * 0.05
t3 = np.sort(rng.uniform(0, 2 * np.pi, sizes[2]))
rot = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
ellipse = (np.c_[1.2 * np.cos(t3), 0.5 * np.sin(t3)] @ rot.T) + np.array([1.5, 2.6]) + rng.randn(sizes[2], 2) * 0.04
X_s = [ring, crescent, ellipse]
a_s = [np.full(n, 1.0 / n) for n in sizes]

# %%
# Entropic multimarginal plan and value
# -------------------------------------
reg = 0.1
C = om.cost_tensor(X_s)  # dense (30, 40, 50) tensor: sum over pairs of sq. distances
t0 = time.perf_counter()
P, log = om.emot_sinkhorn(a_s, C, reg, stopThr=1e-9, log=True)
t_sink = time.perf_counter() - t0
errors = [np.abs(P.sum(axis=tuple(j for j in range(3) if j != i)) - a).sum() for i, a in enumerate(a_s)]
print("EMOT value (reg=%g): %.6f  [%d sweeps, %.3f s]" % (reg, log["value"], log["niter"], t_sink))
print("linear part <C, P> (what ot.sinkhorn2 would report): %.6f" % log["value_linear"])
print("marginal L1 errors: " + ", ".join("%.2e" % e for e in errors))

# %%
# The exact LP on the same problem (60,000 variables, HiGHS)
# ----------------------------------------------------------
t0 = time.perf_counter()
lp = om.emot_lp2(a_s, C)
print("exact LP value: %.6f  [%.3f s]" % (lp, time.perf_counter() - t0))
print("entropic bias <C,P> - LP: %.3e" % (log["value_linear"] - lp))
assert max(errors) < 1e-6 and log["value_linear"] >= lp - 1e-9

# %%
# The coupling: heaviest triplets, and a pairwise marginal
# --------------------------------------------------------
# The plan has 60,000 entries, and about 1,400 of them carry 90% of its mass
# (entropy spreads each match over a few neighbours). The 120 heaviest are
# drawn, each as a triangle joining its three points, coloured by the angle
# of its ring point, so one colour follows one part of the ring through the
# crescent and the ellipse. The centroid of each triplet (dots, size = mass)
# traces the barycenter of the three clouds.
top = np.argsort(P.ravel())[::-1][:120]
idx = np.array(np.unravel_index(top, P.shape)).T
w = P.ravel()[top]
srt = np.sort(P.ravel())[::-1]
print(
    "the 120 heaviest triplets carry %.0f%% of the mass; %d entries carry 90%%"
    % (100 * w.sum(), np.searchsorted(np.cumsum(srt), 0.9) + 1)
)

angle = lambda X: np.arctan2(*(X - X.mean(0)).T[::-1])  # noqa: E731
hue = plt.cm.hsv((angle(X_s[0])[idx[:, 0]] + np.pi) / (2 * np.pi))
fig, ax = plt.subplots(figsize=(6.4, 5.2))
for (i, j, l), wt, c in zip(idx, w, hue):
    tri = np.array([X_s[0][i], X_s[1][j], X_s[2][l], X_s[0][i]])
    ax.plot(tri[:, 0], tri[:, 1], color=c, lw=0.8, alpha=min(1.0, 0.2 + 40 * wt), zorder=1)
for X, m, name in zip(
    X_s, ["o", "s", "^"], ["ring ($\\mu_1$, 30)", "crescent ($\\mu_2$, 40)", "ellipse ($\\mu_3$, 50)"]
):
    ax.scatter(X[:, 0], X[:, 1], s=22, marker=m, color="0.15", label=name, zorder=3, edgecolor="w", linewidth=0.4)
centroids = np.mean([X_s[m][idx[:, m]] for m in range(3)], axis=0)
ax.scatter(centroids[:, 0], centroids[:, 1], s=5000 * w, color=hue, zorder=4, edgecolor="k", linewidth=0.3)
ax.set_aspect("equal")
ax.set_title("Heaviest triplets of the 3-marginal plan (reg=%g)" % reg)
ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
ax.set_xticks([])
ax.set_yticks([])
fig.tight_layout()

# %%
# The pairwise marginal :math:`P_{12}`, with the points of each cloud ordered
# by angle around its centre: the band is the ring being matched, in order,
# onto the crescent.
order = [np.argsort(angle(X)) for X in X_s]
P12 = P.sum(axis=2)[np.ix_(order[0], order[1])]
fig, ax = plt.subplots(figsize=(5.6, 4.2))
im = ax.imshow(P12 * sizes[0], cmap="magma_r", aspect="auto", interpolation="nearest")
ax.set_xlabel("crescent points, by angle")
ax.set_ylabel("ring points, by angle")
ax.set_title(r"pairwise marginal $P_{12}$ (rows sum to 1)")
fig.colorbar(im, ax=ax, label="conditional mass $P_{12}[i, j] / a_1[i]$")
fig.tight_layout()
plt.show()
