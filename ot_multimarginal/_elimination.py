# -*- coding: utf-8 -*-
r"""Exact sampling of pairwise Gibbs tensors by variable elimination, all samples at once.

For a pairwise cost :math:`C(x) = \sum_{(a,b)\in E} C_{ab}(x_a, x_b)` the Gibbs
tensor :math:`B(g) = \exp(\oplus_i g_i - C/\varepsilon)` is a product of
factors: the unary :math:`g_i` and the pairwise :math:`-C_{ab}/\varepsilon`.
Summing the nodes out in the order :math:`k-1, k-2, \dots, 1` (log-sum-exp,
in float64) leaves, before node :math:`j` is summed out, a set of factors on
nodes :math:`\le j`; those that contain :math:`j` are, up to a constant,
the log of the conditional law of :math:`x_j` given :math:`x_0, \dots, x_{j-1}`:

.. math::
    \log p(x_j = v \mid x_{<j}) = \sum_{f \ni j} f(x_{\mathrm{scope}(f)\setminus j}, v) + \text{const}.

So the conditionals of a whole batch of samples are gathers from these
tables: a draw of m samples costs the elimination (once) plus
:math:`O(m\sum_j n_j)`, against one engine pass per distinct prefix for
the engine-generic sequential sampler. The tables have the size of the
elimination's largest factor: :math:`n^3` on a circle, :math:`n^{j+1}` at node
:math:`j` of a complete graph; :func:`elimination_factors` returns ``None``
when one would exceed ``max_entries``.
"""
# License: MIT License

import numpy as np

__all__ = ["elimination_factors", "sample_by_elimination"]

_MAX_ENTRIES = 2**24  # float64 entries of the largest factor formed (128 MiB)


def _logsumexp(X, axis):
    m = np.max(X, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(X - m), axis=axis)) + np.squeeze(m, axis=axis)


def _expand(table, scope, union):
    """``table`` (axes in the order of ``scope``) broadcast onto the axes of ``union`` (sorted)."""
    order = sorted(range(len(scope)), key=lambda t: scope[t])
    table = np.transpose(table, order)
    shape = [1] * len(union)
    for t in sorted(scope):
        shape[union.index(t)] = table.shape[sorted(scope).index(t)]
    return table.reshape(shape)


def elimination_factors(shape, edges, log_kernels, log_g, max_entries=_MAX_ENTRIES):
    """The factors of each node's conditional law, for the sampling order ``0, 1, ..., k-1``.

    Parameters
    ----------
    shape : tuple of int
    edges : list of (a, b)
    log_kernels : list of float64 arrays of shape (n_a, n_b)
        :math:`-C_{ab}/\\varepsilon` for each edge.
    log_g : list of k float64 arrays
        The log-scalings (``-inf`` where a weight is zero).
    max_entries : int
        Largest factor allowed (entries).

    Returns
    -------
    list of k lists of ``(scope, table)``, or None
        Entry ``j``: the factors containing node ``j`` with every scope in
        ``0..j`` (sorted, ``table`` axes in scope order); ``None`` when a
        factor would exceed ``max_entries``.
    """
    k = len(shape)
    pending = [((i,), np.asarray(lg, dtype=np.float64)) for i, lg in enumerate(log_g)]
    for (a, b), L in zip(edges, log_kernels):
        L = np.asarray(L, dtype=np.float64)
        pending.append(((a, b), L) if a < b else ((b, a), L.T))
    out = [None] * k
    for j in reversed(range(k)):
        mine = [f for f in pending if j in f[0]]
        pending = [f for f in pending if j not in f[0]]
        out[j] = mine
        if j == 0:
            break
        union = sorted(set().union(*[f[0] for f in mine]))
        if int(np.prod([shape[t] for t in union], dtype=np.float64)) > max_entries:
            return None
        total = sum(_expand(t, s, union) for s, t in mine)
        total = np.broadcast_to(total, tuple(shape[t] for t in union))
        rest = tuple(t for t in union if t != j)
        if rest:
            pending.append((rest, _logsumexp(total, union.index(j))))
    return out


def sample_by_elimination(factors, shape, n, rng, draw, draw_rows, block=2**20):
    """``n`` exact samples (int64, shape (n, k)) of the Gibbs tensor whose :func:`elimination_factors` are given.

    ``draw(rng, logp, size)`` and ``draw_rows(rng, L)`` draw from one law and
    from one law per row (the samplers of :mod:`ot_multimarginal.plans`).
    """
    k = len(shape)
    out = np.empty((n, k), dtype=np.int64)
    out[:, 0] = draw(rng, sum(t for _, t in factors[0]), n)
    for j in range(1, k):
        rows_per_block = max(1, block // shape[j])
        for start in range(0, n, rows_per_block):
            rows = slice(start, min(n, start + rows_per_block))
            L = 0.0
            for scope, table in factors[j]:
                T = np.moveaxis(table, scope.index(j), -1)
                L = L + T[tuple(out[rows, t] for t in scope if t != j)]
            out[rows, j] = draw_rows(rng, np.broadcast_to(L, (rows.stop - rows.start, shape[j])))
    return out
