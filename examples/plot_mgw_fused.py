# -*- coding: utf-8 -*-
r"""
===============================================================================
Structure and labels together: multimarginal fused Gromov–Wasserstein
===============================================================================

.. note::
    Example added in release: 0.1.0.

Three datasets see the same 30 objects in different spaces (2-D, 3-D and 2-D,
each moved by a random rotation and translation, rows shuffled, a little noise)
and carry one label per point (three classes). The shape is three identical
clusters at 120° from each other: a rotation by 120° maps it onto itself, so
the *structure alone* cannot tell the clusters apart, and multimarginal GW
matches every point within a cluster but often with the wrong cluster. The
*labels alone* (an EMOT on the label cost) find the right cluster but nothing
inside it. *Fused* GW weighs both,

.. math::
    \min_{P} \alpha \sum_{i<j} G(P_{ij}) + (1 - \alpha) \sum_{i<j} \langle M_{ij}, P_{ij}\rangle
    + \varepsilon\,\mathrm{KL}(P \,\|\, \mu_1\otimes\mu_2\otimes\mu_3),

with :math:`M_{ij}` the squared distance between the one-hot labels, and
recovers most correspondences. The neural estimator
(:func:`~ot_multimarginal.neural.mgw_neural`, for clouds too large for the
exact solver) takes the same ``Y_s`` and ``alpha``; its networks see each
point with its label.
"""

# License: MIT License

# sphinx_gallery_thumbnail_number = 1

import importlib.util

import matplotlib.pyplot as plt
import numpy as np

import ot_multimarginal as om

# %%
# Data: three rotated copies of one cluster, seen in three spaces
# ----------------------------------------------------------------
m = 10  # points per cluster
reg = 0.05  # relative to the normalised clouds (normalize='each')


def rotation(t):
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def datasets(seed):
    rng = np.random.RandomState(seed)
    cluster = rng.randn(m, 2) * [0.35, 0.15] + [2.0, 0.0]
    X = np.vstack([cluster @ rotation(2 * np.pi * c / 3).T for c in range(3)])
    labels = np.repeat(np.arange(3), m)
    X_s, Y_s, perms = [], [], []
    for d in (2, 3, 2):
        Q, _ = np.linalg.qr(rng.randn(d, d))
        Z = np.c_[X, np.zeros((len(X), d - 2))] @ Q + rng.randn(d) + 0.03 * rng.randn(len(X), d)
        perm = rng.permutation(len(X))
        X_s.append(Z[perm])
        Y_s.append(np.eye(3)[labels[perm]])  # one-hot labels: the features
        perms.append(perm)
    return X_s, Y_s, perms


def accuracy(P, perms):
    """Share of the points matched to their true partner, over the three pairs."""
    hits = []
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        truth = np.argsort(perms[j])[perms[i]]
        hits.append(np.mean(om.match_from_plan(P.pairwise_marginal(i, j)) == truth))
    return float(np.mean(hits))


# %%
# Structure only, labels only, both
# ---------------------------------
# ``alpha=0`` is the EMOT of the label cost, no ``Y_s`` plain GW. Three draws of
# the data: which cluster GW pairs with which is a matter of noise.
methods = {"structure (GW)": {}, "labels (alpha=0)": dict(alpha=0.0), "fused (alpha=0.5)": dict(alpha=0.5)}
scores = {name: [] for name in methods}
for seed in range(3):
    X_s, Y_s, perms = datasets(seed)
    for name, kw in methods.items():
        features = dict(Y_s=Y_s, **kw) if kw else {}
        P, log = om.mgw_sinkhorn(X_s, reg, random_state=0, log=True, **features)
        scores[name].append(accuracy(P, perms))
        if seed == 0:
            print("%-18s value %.4f (structure %.4f, labels %.4f)" % (name, log["value"], log["value_quad"],
                                                                       log["value_linear"]))  # fmt: skip
# %%
# The neural estimator on the same problem
# ----------------------------------------
# ``mgw_neural`` (torch) with the same ``Y_s`` and ``alpha``. By default its
# plan is finished by the exact alternation where the data fits the exact
# engine (here: the result of ``mgw_sinkhorn``); ``polish=False`` shows the
# neural plan itself. Its queries at new points need their labels too
# (``Y_i``, ``Y_j``).
if importlib.util.find_spec("torch") is not None:
    from ot_multimarginal.neural import mgw_neural

    name = "fused, neural"
    scores[name] = []
    for seed in range(3):
        X_s, Y_s, perms = datasets(seed)
        est = mgw_neural(X_s, reg, Y_s=Y_s, alpha=0.5, polish=False, random_state=0, warn=False)
        hits = []
        for i, j in [(0, 1), (0, 2), (1, 2)]:
            hits.append(np.mean(est.match(i, j) == np.argsort(perms[j])[perms[i]]))
        scores[name].append(float(np.mean(hits)))
        if seed == 0:
            print("%-18s value %.4f (structure %.4f, labels %.4f; neural plan, marginal error %.2f)"
                  % (name, est.value_, est.value_quad_, est.value_linear_, est.marginal_error_))  # fmt: skip
            # new points: the first five points of datasets 1 and 2, with their labels
            print("matches of 5 points of dataset 1 in dataset 2:",
                  est.match(0, 1, X_s[0][:5], X_s[1], Y_i=Y_s[0][:5], Y_j=Y_s[1]))  # fmt: skip

for name, acc in scores.items():
    print(
        "%-18s points matched to their true partner: %s, mean %.0f%%"
        % (name, " / ".join("%.0f%%" % (100 * a) for a in acc), 100 * np.mean(acc))
    )

# %%
# The data and the accuracies
# ---------------------------
X_s, Y_s, perms = datasets(0)
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
colors = np.argmax(Y_s[0], axis=1)
axes[0].scatter(X_s[0][:, 0], X_s[0][:, 1], c=colors, cmap="viridis", s=25)
axes[0].set_title("dataset 1 (2-D), coloured by label")
axes[0].set_aspect("equal")
names = list(scores)
axes[1].bar(range(len(names)), [100 * np.mean(scores[n]) for n in names], color=["C0", "C1", "C2", "C3"][: len(names)])
axes[1].set_xticks(range(len(names)))
axes[1].set_xticklabels(names, fontsize=8)
axes[1].set_ylabel("points matched (%)")
axes[1].set_title("mean over 3 draws")
plt.tight_layout()
plt.show()
