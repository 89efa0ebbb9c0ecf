# -*- coding: utf-8 -*-
"""Independent oracles shared by the tests, written plainly in NumPy (no package code)."""

import numpy as np


def axes_except(j, k):
    return tuple(i for i in range(k) if i != j)


def textbook_round(X, a_s, free=()):
    """Altschuler-Weed-Rigollet / Lin et al. rounding of a dense tensor onto Π(a_1..a_k).

    Scale each axis in turn down to ``a_j`` (using the current tensor), then add
    ``err_1 ⊗ … ⊗ err_k / s^{k-1}``. Axes in ``free`` are not scaled, and their
    ``err`` is ``s`` times the current marginal divided by its sum.
    """
    X = np.array(X, dtype=np.float64)
    k = X.ndim
    prescribed = [j for j in range(k) if j not in free]
    for j in prescribed:
        r = X.sum(axis=axes_except(j, k))
        z = np.ones_like(r)
        pos = r > 0
        z[pos] = np.minimum(1.0, a_s[j][pos] / r[pos])
        shape = [1] * k
        shape[j] = -1
        X = X * z.reshape(shape)
    errs = [np.maximum(a_s[j] - X.sum(axis=axes_except(j, k)), 0.0) for j in range(k)]
    s = errs[prescribed[0]].sum()
    for j in free:
        r = X.sum(axis=axes_except(j, k))
        errs[j] = s * r / r.sum()
    if s > 0:
        R = errs[0]
        for e in errs[1:]:
            R = np.multiply.outer(R, e)
        X = X + R / s ** (k - 1)
    return X


def dense_pairwise_cost(shape, edges, mats):
    """The dense tensor ``Σ_{(a,b)∈E} C_ab[x_a, x_b]`` of a pairwise cost, by broadcasting."""
    k = len(shape)
    C = np.zeros(shape)
    for (a, b), M in zip(edges, mats):
        sh = [1] * k
        sh[a], sh[b] = shape[a], shape[b]
        C = C + (M if a < b else M.T).reshape(sh)
    return C
