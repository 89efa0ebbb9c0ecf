# -*- coding: utf-8 -*-
r"""
===============================================================================
Fixed-support barycenters as a star with a free centre
===============================================================================

.. note::
    Example added in release: 0.1.0.

The Wasserstein barycenter of measures :math:`a_1, \dots, a_m` with weights
:math:`\lambda_j`, on a fixed support :math:`x_1, \dots, x_n`, is

.. math::
    b^\star \in \mathop{\arg\min}_{b} \sum_j \lambda_j\, W_2^2(b, a_j).

It is a multimarginal problem on a *star*: node 0 carries the barycenter's
support, node :math:`j` the measure :math:`a_j`, edge :math:`(0, j)` the cost
:math:`\lambda_j \|x - y\|^2`, and the centre's marginal is left **free**
(``free=[0]``): it is whatever the optimal coupling puts there. The exact
(LP) version is ``ot.lp.barycenter``; the entropic one,

.. math::
    \min_{P}\ \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P\,\|\,u \otimes a_1 \otimes\cdots\otimes a_m)
    \quad\text{s.t. } r_j(P) = a_j \ (j \ge 1),

with a uniform reference :math:`u` on the centre, is solved by message
passing on the star without forming the :math:`n^{m+1}` tensor.

It is **not** POT's entropic barycenter (``ot.bregman.barycenter``), which
minimises a sum of :math:`m` *pairwise* entropic transport costs
:math:`\sum_j \lambda_j W_\varepsilon(b, a_j)`: one entropy per coupling
instead of one entropy of the joint coupling. At a finite :math:`\varepsilon`
the two blur differently (both are smoother than the LP barycenter); as
:math:`\varepsilon \to 0` both tend to the LP barycenter.
"""

# License: MIT License

import matplotlib.pyplot as plt
import numpy as np
import ot

import ot_multimarginal as om

# %%
# Three measures on a 1-D grid
# ----------------------------
n = 60
x = np.linspace(0, 1, n)


def bump(mu, sigma):
    a = np.exp(-0.5 * ((x - mu) / sigma) ** 2)
    return a / a.sum()


A = np.stack([bump(0.2, 0.04), 0.5 * bump(0.45, 0.05) + 0.5 * bump(0.6, 0.03), bump(0.8, 0.06)], axis=1)
lam = np.array([0.3, 0.4, 0.3])
m = A.shape[1]
M = ot.dist(x[:, None], x[:, None])  # squared distances

# %%
# Exact barycenter: the LP, two ways
# ----------------------------------
b_lp, log_lp = ot.lp.barycenter(A, M, weights=lam, log=True)
b_lp = np.maximum(b_lp, 0) / np.maximum(b_lp, 0).sum()  # clip the interior-point round-off
v_lp = log_lp["fun"]
print("LP barycenter (ot.lp.barycenter): value %.6f" % v_lp)

# the same LP as a 4-marginal problem with a free centre, on a coarse grid
# (the exact multimarginal LP has n^4 variables)
step = 5
xs = x[::step]
Ms = ot.dist(xs[:, None], xs[:, None])
As = A.reshape(len(xs), step, m).sum(axis=1)
C_small = om.PairwiseCost.star([lam[j] * Ms for j in range(m)], center=0).to_dense()
v_small = om.emot_lp2([None] + [As[:, j] for j in range(m)], C_small, free=[0])
v_small_ref = ot.lp.barycenter(As, Ms, weights=lam, log=True)[1]["fun"]
print(
    "coarse grid (%d points): multimarginal LP value %.8f, ot.lp.barycenter value %.8f"
    % (len(xs), v_small, v_small_ref)
)

# %%
# Entropic barycenters: multimarginal (free centre) vs POT's pairwise one
# -----------------------------------------------------------------------
cost = om.PairwiseCost.star([lam[j] * M for j in range(m)], center=0, free=[0])
print(cost)
a_s = [None] + [A[:, j] for j in range(m)]  # None: uniform reference measure on the centre
regs = [1e-2, 2e-3, 5e-4]
b_mot, b_pot = {}, {}
for reg in regs:
    P, log = om.emot_sinkhorn(a_s, cost, reg, stopThr=1e-9, numItermax=20000, log=True)
    b_mot[reg] = P.marginal(0)  # the free marginal: the barycenter
    b_pot[reg] = ot.bregman.barycenter(A, M, reg, weights=lam, method="sinkhorn_log", numItermax=20000, stopThr=1e-10)
    print(
        "reg %.0e: multimarginal value %.6f (LP %.6f), %d sweeps; "
        "L1 distance to the LP barycenter: multimarginal %.3f, ot.bregman %.3f; between them %.3f"
        % (
            reg,
            log["value"],
            v_lp,
            log["niter"],
            np.abs(b_mot[reg] - b_lp).sum(),
            np.abs(b_pot[reg] - b_lp).sum(),
            np.abs(b_mot[reg] - b_pot[reg]).sum(),
        )
    )

# %%
# Plot
# ----
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), sharey=True)
for j in range(m):
    axes[0].fill_between(x, A[:, j], color="C%d" % j, alpha=0.3, label=r"$a_%d$ ($\lambda$=%.1f)" % (j + 1, lam[j]))
axes[0].plot(x, b_lp, "k", lw=2, label="LP barycenter")
axes[0].set_title("Measures and the exact barycenter")
axes[0].legend(fontsize=8)
axes[1].plot(x, b_lp, "k", lw=2, label="LP")
for t, reg in enumerate(regs):
    axes[1].plot(x, b_mot[reg], color="C%d" % t, lw=1.5, label="multimarginal, reg=%.0e" % reg)
    axes[1].plot(x, b_pot[reg], color="C%d" % t, lw=1.2, ls="--", label="ot.bregman, reg=%.0e" % reg)
axes[1].set_xlim(0.3, 0.75)
axes[1].set_title(r"Entropic barycenters tend to the LP one as reg $\to$ 0")
axes[1].legend(fontsize=7)
fig.tight_layout()
plt.show()
