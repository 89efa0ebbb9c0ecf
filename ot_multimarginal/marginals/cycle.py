# -*- coding: utf-8 -*-
r"""Cycle engine: transfer-matrix products for pairwise costs on a circle.

For a cost on the cycle :math:`v_0 - v_1 - \dots - v_{k-1} - v_0` with edge
kernels :math:`K_t = e^{-C_t/\varepsilon}` (rows: :math:`v_t`, columns:
:math:`v_{t+1}`) and :math:`D_t = \mathrm{diag}(e^{g_t})`, the marginal at
position ``t`` is the diagonal of the product of all the other factors
around the cycle:

.. math::
    r_t = e^{g_t} \circ \mathrm{diag}\big(S_t\, D_0\, P_t\big), \quad
    S_t = K_t D_{t+1} K_{t+1} \cdots D_{k-1} K_{k-1}, \quad
    P_t = K_0 D_1 K_1 \cdots D_{t-1} K_{t-1}

(a suffix from ``t`` back to ``v_0`` and a prefix from ``v_0`` to ``t``).
Prefixes and suffixes are cached: a cyclic Sinkhorn sweep in cycle order
extends each prefix with one matrix product, and the suffixes are rebuilt
once at the start of the next sweep, so a sweep costs about ``2k`` products
of ``n × n`` matrices, ``O(k n^3)`` time and ``O(k n^2)`` memory. All
products are taken in the log domain with max shifts
(:func:`._pairwise.log_matmul`), exact at small :math:`\varepsilon`.

As in the tree engine, ``g[i]`` counts as changed when a new object is passed
for it (do not modify the arrays in place).
"""
# License: MIT License

import numpy as np

from .._validation import check_dense_size
from ._pairwise import PairwiseEngine, finite_max, log_matmul

__all__ = ["CycleEngine", "cycle_order"]


def cycle_order(k, edges):
    """Nodes of a single cycle in order, from node 0 towards its smaller neighbour.

    Raises ``ValueError`` when ``edges`` is not one cycle through all ``k >= 3`` nodes.
    """
    if k < 3 or len(edges) != k:
        raise ValueError("a cycle through %d nodes needs %d edges (and k >= 3), got %d" % (k, k, len(edges)))
    nbr = [[] for _ in range(k)]
    for a, b in edges:
        nbr[a].append(b)
        nbr[b].append(a)
    if any(len(v) != 2 for v in nbr):
        raise ValueError("the edges do not form a single cycle: every node needs exactly 2 neighbours")
    order = [0, min(nbr[0])]
    while len(order) < k:
        a, b = nbr[order[-1]]
        nxt = a if a != order[-2] else b
        if nxt == order[0]:
            break
        order.append(nxt)
    if len(order) != k or order[0] not in nbr[order[-1]]:
        raise ValueError("the edges do not form a single cycle through all %d nodes" % k)
    return order


class CycleEngine(PairwiseEngine):
    """Engine for pairwise costs on one cycle through all ``k >= 3`` nodes.

    Parameters are those of :class:`~ot_multimarginal.marginals.TreeEngine`;
    ``edges`` must form a single cycle (in any orientation and numbering;
    sweeps are cheapest when the nodes are numbered along the cycle).
    ``memory_budget`` bounds the cached products (about ``3k`` matrices
    ``n × n``).
    """

    def __init__(self, shape, edges, matrices, reg, nx, memory_budget=None):
        super().__init__(shape, edges, matrices, reg, nx, memory_budget)
        k = self.k
        self.order = cycle_order(k, self.edges)
        self._pos = np.empty(k, dtype=np.int64)
        self._pos[self.order] = np.arange(k)
        n = [self.shape[v] for v in self.order]
        self._n = n
        check_dense_size((3 * k, max(n), max(n)), nx.bitsize(self.type_as) // 8, 1, memory_budget, "the cycle engine's cached products", nx, self.type_as)
        # edge at position t joins order[t] and order[t+1]
        self._edge = []
        for t in range(k):
            a, b = self.order[t], self.order[(t + 1) % k]
            for e, (u, v) in enumerate(self.edges):
                if (u, v) == (a, b) or (u, v) == (b, a):
                    self._edge.append(e)
                    break
        self._A = [self._oriented_log_kernel(self._edge[t], self.order[t]) for t in range(k)]
        # cached column-shifted kernels for the prefix products P_{t+1} = P_t D_t K_t
        self._E = [None] * k
        for t in range(1, k - 1):
            c = finite_max(nx, self._A[t], -2)
            self._E[t] = (nx.exp(self._A[t] - c), c)
        self._g = [None] * k  # by position
        self._pref = [None] * k  # _pref[t] = log P_t (n_0 x n_t), t >= 1
        self._suf = [None] * k  # _suf[t] = log S_t (n_t x n_0)
        self._pref[1] = self._A[0]
        self._suf[k - 1] = self._A[k - 1]
        self._pref_valid = 1  # _pref[1.._pref_valid] are valid
        self._suf_from = k - 1  # _suf[_suf_from..k-1] are valid

    # ---- caches ----------------------------------------------------------
    def _sync(self, g):
        if len(g) != self.k:
            raise ValueError("g must hold %d log-scalings, got %d" % (self.k, len(g)))
        k = self.k
        for t, v in enumerate(self.order):
            if g[v] is not self._g[t]:
                self._g[t] = g[v]
                if t >= 1:
                    self._pref_valid = min(self._pref_valid, max(t, 1))
                self._suf_from = max(self._suf_from, min(t, k - 1))

    def _prefix(self, t):
        nx = self.nx
        while self._pref_valid < t:
            s = self._pref_valid
            E2, c2 = self._E[s]
            self._pref[s + 1] = log_matmul(nx, self._pref[s] + self._g[s][None, :], self._A[s], self.factor, E2=E2, c2=c2)
            self._pref_valid = s + 1
        return self._pref[t]

    def _suffix(self, t):
        nx = self.nx
        while self._suf_from > t:
            s = self._suf_from - 1
            self._suf[s] = log_matmul(nx, self._A[s] + self._g[s + 1][None, :], self._suf[s + 1], self.factor)
            self._suf_from = s
        return self._suf[t]

    def _log_marginal_pos(self, t):
        nx = self.nx
        S = self._suffix(t)
        if t == 0:
            return self._g[0] + nx.diag(S)
        P = self._prefix(t)
        return self._g[t] + nx.logsumexp(S + self._g[0][None, :] + P.T, axis=1)

    # ---- protocol --------------------------------------------------------
    def log_marginal(self, g, i):
        self._sync(g)
        return self._log_marginal_pos(int(self._pos[i]))

    def log_marginals(self, g):
        self._sync(g)
        out = [None] * self.k
        for t, v in enumerate(self.order):
            out[v] = self._log_marginal_pos(t)
        return out

    def log_partition(self, g, log_marginal=None):
        if log_marginal is None:
            log_marginal = self.log_marginal(g, self.order[0])
        return self.nx.logsumexp(log_marginal)

    def _path(self, p, q):
        """Log of the product of the factors on the path from position ``p`` forward to ``q`` (endpoints' ``D`` excluded)."""
        nx = self.nx
        k = self.k
        L = self._A[p]
        s = (p + 1) % k
        while s != q:
            L = log_matmul(nx, L + self._g[s][None, :], self._A[s], self.factor)
            s = (s + 1) % k
        return L

    def log_pairwise_marginal(self, g, i, j):
        self._check_pair(i, j)
        self._sync(g)
        p, q = int(self._pos[i]), int(self._pos[j])
        L = self._g[p][:, None] + self._g[q][None, :] + self._path(p, q) + self._path(q, p).T
        return L

    def edge_log_pairwise_marginals(self, g):
        nx = self.nx
        k = self.k
        self._sync(g)
        self._prefix(k - 1)
        self._suffix(0)
        out = [None] * len(self.edges)
        for t in range(k):
            if t == 0:
                Q = self._suf[1]
            elif t == k - 1:
                Q = self._pref[k - 1]
            else:
                Q = log_matmul(nx, self._suf[t + 1] + self._g[0][None, :], self._pref[t], self.factor)
            L = self._g[t][:, None] + self._A[t] + self._g[(t + 1) % k][None, :] + Q.T
            e = self._edge[t]
            out[e] = L if self.edges[e][0] == self.order[t] else L.T
        return out
