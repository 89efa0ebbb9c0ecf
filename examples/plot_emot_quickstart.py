# -*- coding: utf-8 -*-
r"""
===============================================================================
Entropic multimarginal OT between three point clouds
===============================================================================

.. note::
    Example added in release: 0.1.0.

We couple three point clouds :math:`\mu_1, \mu_2, \mu_3` in the plane with the
cost :math:`c(x_1, x_2, x_3) = \sum_{i<j} \|x_i - x_j\|^2` and solve

.. math::
    \min_{P \in \Pi(a_1, a_2, a_3)} \langle C, P\rangle
    + \varepsilon\, \mathrm{KL}(P \,\|\, a_1 \otimes a_2 \otimes a_3)

with multimarginal Sinkhorn, then compare with the exact LP and look at the
pairwise marginals of the 3-way plan.
"""

# License: MIT License

# sphinx_gallery_thumbnail_number = 1

import time

import matplotlib.pyplot as plt
import numpy as np

import ot_multimarginal as om

# %%
# Three point clouds of different sizes
# -------------------------------------
rng = np.random.RandomState(42)
sizes = (30, 40, 50)
centres = [(0.0, 0.0), (2.0, 0.5), (1.0, 2.0)]
X_s = [rng.randn(n, 2) * 0.4 + np.array(c) for n, c in zip(sizes, centres)]
a_s = [np.full(n, 1.0 / n) for n in sizes]

# %%
# Entropic multimarginal plan and value
# -------------------------------------
reg = 0.1
C = om.cost_tensor(X_s)  # dense (30, 40, 50) tensor: sum over pairs of sq. distances
t0 = time.perf_counter()
P, log = om.emot_sinkhorn(a_s, C, reg, stopThr=1e-9, log=True, relaxation="auto")
t_sink = time.perf_counter() - t0
errors = [np.abs(P.sum(axis=tuple(j for j in range(3) if j != i)) - a).sum() for i, a in enumerate(a_s)]
print("EMOT value (reg=%g): %.6f  [%d sweeps, %.3f s]" % (reg, log["value"], log["niter"], t_sink))
print("linear part <C, P>: %.6f" % log["value_linear"])
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
# Pairwise marginals of the 3-way plan
# ------------------------------------
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
for ax, (i, j) in zip(axes, [(0, 1), (0, 2), (1, 2)]):
    other = 3 - i - j
    ax.imshow(P.sum(axis=other), cmap="Blues", aspect="auto")
    ax.set_title(r"$P_{%d%d}$" % (i + 1, j + 1))
    ax.set_xlabel("points of $\\mu_%d$" % (j + 1))
    ax.set_ylabel("points of $\\mu_%d$" % (i + 1))
fig.suptitle("Pairwise marginals of the entropic 3-marginal plan")
fig.tight_layout()
plt.show()
