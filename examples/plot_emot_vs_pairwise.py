# -*- coding: utf-8 -*-
r"""
===============================================================================
Multimarginal vs sequential pairwise OT: why the joint coupling matters
===============================================================================

.. note::
    Example added in release: 0.1.0.

A common shortcut for coupling three measures is to solve two ordinary OT
problems, :math:`\mu_1 \to \mu_2` and :math:`\mu_2 \to \mu_3`, and glue the
two plans through :math:`\mu_2` (a Markov chain:
:math:`P_{ijl} = P^{12}_{ij} P^{23}_{jl} / a_{2,j}`). The glued plan is
optimal for the pairs (1, 2) and (2, 3) but knows nothing about the pair
(1, 3): whatever :math:`\mu_2` cannot tell apart is lost on the way.

Here :math:`\mu_1` and :math:`\mu_3` are horizontal segments and
:math:`\mu_2` a vertical one. For the squared distance, the cost between a
horizontal and a vertical segment does not depend on how their points are
paired (:math:`\|x - y\|^2 = x_1^2 + y_2^2 + \text{const}`), so
:math:`P^{12}` and :math:`P^{23}` are product couplings and the glued plan
pairs :math:`\mu_1` with :math:`\mu_3` at random. The multimarginal plan for
:math:`c = \sum_{i<j}\|x_i - x_j\|^2` matches them point to point.
"""

# License: MIT License

import matplotlib.pyplot as plt
import numpy as np
import ot

import ot_multimarginal as om

# %%
# Three segments
# --------------
rng = np.random.RandomState(0)
n = 40
s = np.sort(rng.uniform(-2, 2, n))
X1 = np.c_[s, np.full(n, -0.6)]  # horizontal, bottom
X2 = np.c_[np.full(n, 3.5), np.sort(rng.uniform(-2, 2, n))]  # vertical, right
X3 = np.c_[np.sort(rng.uniform(-2, 2, n))[::-1], np.full(n, 0.6)]  # horizontal, top (stored right to left)
X_s = [X1, X2, X3]
a = ot.unif(n)
reg = 0.02

# %%
# Sequential pairwise OT, glued through the middle measure
# --------------------------------------------------------
P12 = ot.sinkhorn(a, a, ot.dist(X1, X2), reg, method="sinkhorn_log", stopThr=1e-10, numItermax=5000)
P23 = ot.sinkhorn(a, a, ot.dist(X2, X3), reg, method="sinkhorn_log", stopThr=1e-10, numItermax=5000)
P_glued = np.einsum("ij,jl->ijl", P12, P23 / a[:, None])

# %%
# The multimarginal plan (a triangle of pairwise costs: no n^3 tensor needed)
# ---------------------------------------------------------------------------
cost = om.PairwiseCost.from_point_clouds(X_s, graph="complete")
P_joint = om.emot_sinkhorn(None, cost, reg, stopThr=1e-8, numItermax=5000).to_dense()

C = om.cost_tensor(X_s)
lp = om.emot_lp2(None, C)
pairs = [(0, 1), (1, 2), (0, 2)]


def pair_costs(P):
    return [float(np.sum(P.sum(axis=3 - i - j) * ot.dist(X_s[i], X_s[j]))) for i, j in pairs]


for name, P in [("glued pairwise", P_glued), ("multimarginal", P_joint)]:
    c12, c23, c13 = pair_costs(P)
    print("%-15s total cost value %.3f = (1,2) %.3f + (2,3) %.3f + (1,3) %.3f" % (name, np.sum(P * C), c12, c23, c13))
ot13 = ot.emd2(a, a, ot.dist(X1, X3))
print("exact multimarginal LP value %.3f; direct OT (1,3) value %.3f" % (lp, ot13))
print(
    "excess (1,3) cost over direct OT: glued %.3f, multimarginal %.3f"
    % (pair_costs(P_glued)[2] - ot13, pair_costs(P_joint)[2] - ot13)
)

# %%
# What each plan does with the pair (1, 3)
# ----------------------------------------
# 80 pairs :math:`(x^{(1)}_i, x^{(3)}_l)` drawn from each plan's (1, 3)
# marginal, coloured by the position of :math:`x^{(1)}_i` (the vertical
# segment on the right is :math:`\mu_2`).
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), layout="constrained")
col = plt.cm.viridis((s + 2) / 4)
for k, (name, P) in enumerate([("glued pairwise OT", P_glued), ("multimarginal OT", P_joint)]):
    ax = axes[k]
    P13 = P.sum(axis=1)
    draws = np.random.RandomState(1).choice(n * n, size=80, p=P13.ravel() / P13.sum())
    for i, l in zip(*np.unravel_index(draws, P13.shape)):
        ax.plot([X1[i, 0], X3[l, 0]], [X1[i, 1], X3[l, 1]], color=col[i], lw=1, alpha=0.7)
    for X, m in zip(X_s, "oso"):
        ax.scatter(X[:, 0], X[:, 1], s=10, color="0.2", marker=m, zorder=3)
    ax.set_title("%s\n(1,3) cost %.2f" % (name, pair_costs(P)[2]))
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])

# %%
# The two (1, 3) marginals as matrices: the glued plan is flat (a product
# coupling), the multimarginal one is close to a permutation (the
# anti-diagonal, since the top segment is stored right to left).
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), layout="constrained")
for k, (name, P) in enumerate([("glued", P_glued), ("multimarginal", P_joint)]):
    ax = axes[k]
    im = ax.imshow(P.sum(axis=1) * n, cmap="magma_r", vmin=0, vmax=1)
    ax.set_title("%s: $P_{13}$" % name)
    ax.set_xlabel("top segment")
    ax.set_ylabel("bottom segment")
fig.colorbar(im, ax=axes, label="$P_{13}[i, l] / a_1[i]$", shrink=0.9)
plt.show()
