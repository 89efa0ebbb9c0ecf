# -*- coding: utf-8 -*-
r"""
===============================================================================
Torch and gradients: moving a cloud to lower the EMOT value
===============================================================================

.. note::
    Example added in release: 0.1.0.

Every solver takes torch tensors as they are: pass ``torch.tensor(X)``
instead of ``X`` and the result is a torch tensor on the same device, with
gradients. For the value :math:`\mathrm{EMOT}_\varepsilon(X_1, \dots, X_k)` of
point clouds, the envelope theorem gives the gradient with respect to a point
:math:`x^{(i)}_j` without differentiating through the iterations:

.. math::
    \nabla_{x^{(i)}_j} \mathrm{EMOT}_\varepsilon
    = \sum_{\text{tuples} \ni j} P_{\dots j \dots}\, \nabla_{x^{(i)}_j} c(\dots),

which is what ``emot_sinkhorn2`` returns by default (``grad='envelope'``).

We let one cloud (the free one) flow by gradient descent on the EMOT value of
three clouds, :math:`\min_{X_3} \mathrm{EMOT}_\varepsilon(X_1, X_2, X_3)`:
for the pairwise squared distance the optimum is the (entropic) barycenter
of :math:`X_1` and :math:`X_2`, up to the spread that entropy keeps.
"""

# License: MIT License

import matplotlib.pyplot as plt
import numpy as np
import torch

import ot_multimarginal as om

# %%
# Two fixed clouds and a moving one
# ---------------------------------
rng = np.random.RandomState(0)
n = 40
t = rng.uniform(0, 2 * np.pi, n)
X1 = np.c_[np.cos(t), np.sin(t)] * 0.7 + np.array([-2.0, 0.0])  # a ring
X2 = rng.randn(n, 2) * np.array([0.15, 0.8]) + np.array([2.0, 0.0])  # a vertical blob
X3 = rng.randn(n, 2) * 0.3 + np.array([0.0, 2.5])  # the moving cloud, start

# %%
# The one-line switch: NumPy in, NumPy out; torch in, torch out
# -------------------------------------------------------------
reg = 0.1
v_np = om.empirical_emot_sinkhorn2([X1, X2, X3], reg)
Xt = [torch.tensor(X) for X in (X1, X2)] + [torch.tensor(X3, requires_grad=True)]
v_t = om.empirical_emot_sinkhorn2(Xt, reg)
v_t.backward()
print(
    "value NumPy %.6f, torch %.6f (%s); gradient norm on X3: %.3f"
    % (v_np, v_t.item(), v_t.dtype, Xt[2].grad.norm().item())
)

# %%
# Gradient descent on the moving cloud
# ------------------------------------
# Each step solves the 3-marginal problem (warm-started from the previous
# potentials: the cost changes little between steps) and moves X3 along minus
# the gradient. The cost is a triangle of pairwise costs, solved without the
# n^3 tensor.
X = torch.tensor(X3, requires_grad=True)
opt = torch.optim.SGD([X], lr=n / 8)  # each point carries mass 1/n: scale the step by n
path, values, warm = [X3.copy()], [], None
for _ in range(15):
    opt.zero_grad()
    cost = om.PairwiseCost.from_point_clouds([Xt[0], Xt[1], X], graph="complete")
    v, log = om.emot_sinkhorn2(None, cost, reg, log=True, warmstart=warm, stopThr=1e-7)
    warm = [p.detach() for p in log["potentials"]]
    v.backward()
    opt.step()
    values.append(v.item())
    path.append(X.detach().numpy().copy())
print("EMOT value: start %.4f, after %d steps %.4f" % (values[0], len(values), values[-1]))
path = np.array(path)

# %%
# The flow
# --------
fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [1.6, 1]})
ax = axes[0]
ax.scatter(X1[:, 0], X1[:, 1], s=14, color="C0", label="$X_1$ (fixed)")
ax.scatter(X2[:, 0], X2[:, 1], s=14, color="C1", label="$X_2$ (fixed)")
for j in range(n):
    ax.plot(path[:, j, 0], path[:, j, 1], color="C2", lw=0.6, alpha=0.5)
ax.scatter(path[0, :, 0], path[0, :, 1], s=14, color="C2", alpha=0.4, label="$X_3$, start")
ax.scatter(
    path[-1, :, 0],
    path[-1, :, 1],
    s=18,
    color="C2",
    edgecolor="k",
    linewidth=0.4,
    label="$X_3$ after %d steps" % (len(path) - 1),
)
ax.set_aspect("equal")
ax.legend(fontsize=8, loc="lower left")
ax.set_title("Gradient descent of $X_3$ on EMOT$(X_1, X_2, X_3)$")
axes[1].plot(values, "k.-")
axes[1].set_xlabel("step")
axes[1].set_ylabel("EMOT value")
axes[1].set_title("value (torch, envelope gradients)")
axes[1].grid(alpha=0.3)
fig.tight_layout()
plt.show()
