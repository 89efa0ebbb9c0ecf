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
of ``n × n`` matrices, ``O(k n^3)`` time and ``O(k n^2)`` memory.

Triangles (``k = 3``, the complete graph on three nodes) are cheaper: the
product *through* node ``c``, :math:`T_c = K_{c-1} D_c K_c`, stays valid
until ``g_c`` changes and gives the marginals of *both* other nodes,

.. math::
    r_{c+1} = e^{g_{c+1}} \circ \big((T_c^\top \circ K_{c+1})\, e^{g_{c-1}}\big),
    \qquad
    r_{c-1} = e^{g_{c-1}} \circ \big((T_c^\top \circ K_{c+1})^\top e^{g_{c+1}}\big).

A marginal reuses a valid :math:`T_c` if there is one, else builds the one
through the node changed most recently (the least likely to change next). In
cyclic order 0, 1, 2, 0, ... each product then serves two consecutive updates
(:math:`T_2`: 0 and 1, :math:`T_1`: 2 and 0, :math:`T_0`: 1 and 2): 1.5
matrix products per sweep, the same iterates as any other engine (in the
scaled mode below; the log mode keeps the prefixes and suffixes).

Two ways to take the products (``mode``):

``'scaled'`` (default in float64, and for triangles in float32)
    Every product is held as ``diag(e^a) M̃ diag(e^b)`` with ``M̃`` row
    maxima 1, and the kernels are *absorbed* (``K_t = diag(e^ρ) K̃_t
    diag(e^κ)``, with half of the current log-scalings of both ends folded
    in, then shifted so that every row and every column of ``K̃_t`` has
    maximum 1: a node that no row favours keeps its column away from the
    flush threshold). A step is then a scaling by an exponentiated vector,
    one matrix product and a row normalisation: no exponential of a matrix.
    Entries below ``sqrt(tiny)`` are flushed to zero (no subnormal slow
    paths) and a per-row bound on the resulting absolute error is carried
    along; a marginal entry is accepted only if this bound is below
    ``64 eps`` of its value. Otherwise the kernels are absorbed again at the
    current scalings and, if that is not enough (tiny ε), the engine
    switches to the log domain for a while. In sync-free sweeps
    (:func:`~ot_multimarginal._backend.deferred_checks`, on a GPU) the
    acceptance test is a certificate left on the device, read at the next
    error check of the loop (:mod:`ot_multimarginal.strategies.cyclic`),
    and every product is row-normalised (no host read of the row range).
``'log'``
    Every product in the log domain with max shifts
    (:func:`._pairwise.log_matmul`): ``O(n^2)`` exponentials per product,
    exact at any ε and in float32.

As in the tree engine, ``g[i]`` counts as changed when a new object is passed
for it (do not modify the arrays in place).
"""
# License: MIT License

import math

import numpy as np

from .._backend import can_write_in_place, defer_check
from .._validation import check_dense_size
from ._pairwise import (
    _CHUNK,
    PairwiseEngine,
    _deferrable,
    amax,
    finite_max,
    flush,
    flushed_exp,
    index_array,
    log_matmul,
    logsumexp,
    skip_enabled,
)

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
    ``n × n``). ``mode``: ``'auto'`` (scaled products in float64 and for
    triangles in any dtype, log domain otherwise), ``'scaled'`` or ``'log'``
    (see the module docstring).
    """

    _LOG_SPELL = 50  # calls spent in the log domain after the scaled products fail

    def __init__(self, shape, edges, matrices, reg, nx, memory_budget=None, mode="auto", cost_offset=None):
        super().__init__(shape, edges, matrices, reg, nx, memory_budget, cost_offset)
        if mode not in ("auto", "scaled", "log"):
            raise ValueError("mode must be 'auto', 'scaled' or 'log', got %r" % (mode,))
        k = self.k
        self.order = cycle_order(k, self.edges)
        self._pos = np.empty(k, dtype=np.int64)
        self._pos[self.order] = np.arange(k)
        n = [self.shape[v] for v in self.order]
        self._n = n
        check_dense_size(
            (4 * k, max(n), max(n)),
            nx.bitsize(self.type_as) // 8,
            1,
            memory_budget,
            "the cycle engine's cached products",
            nx,
            self.type_as,
        )
        # edge at position t joins order[t] and order[t+1]
        self._edge = []
        for t in range(k):
            a, b = self.order[t], self.order[(t + 1) % k]
            for e, (u, v) in enumerate(self.edges):
                if (u, v) == (a, b) or (u, v) == (b, a):
                    self._edge.append(e)
                    break
        self._A = [self._oriented_log_kernel(self._edge[t], self.order[t]) for t in range(k)]
        # cached column-shifted kernels for the log-domain prefix products
        self._E = [None] * k
        self.mode = mode
        # float32's range suits a triangle's single product of two kernels, not longer chains
        self._scaled_ok = mode == "scaled" or (mode == "auto" and (self.prec.factor < 1e-100 or k == 3))
        self._mode = "scaled" if self._scaled_ok else "log"
        self._rtol = 64 * self.prec.eps
        self._calls = 0
        self._log_until = 0
        self._kern = None
        self.n_fallbacks = 0
        self.n_exact_entries = 0
        self.n_products = 0  # scaled n x n matrix products taken (the cost of the sweeps)
        self._absorbed_at = 0
        self._g = [None] * k  # by position
        self._tick = 0
        self._changed = [0] * k  # when the log-scaling at each position last changed
        self._reset_caches()

    def _init_kwargs(self):
        return {"mode": self.mode}

    def _reset_caches(self):
        k = self.k
        self._pref = [None] * k  # _pref[t] = P_t (n_0 x n_t), t >= 1
        self._suf = [None] * k  # _suf[t] = S_t (n_t x n_0)
        self._pref_valid = 0  # _pref[1.._pref_valid] are valid
        self._suf_from = k  # _suf[_suf_from..k-1] are valid
        # triangles: through-products by position, (g object they used, H~, shifts)
        self._thru = [None] * k

    def _set_mode(self, mode):
        if mode != self._mode:
            self._mode = mode
            self._reset_caches()

    # ---- caches ----------------------------------------------------------
    def _sync(self, g):
        if len(g) != self.k:
            raise ValueError("g must hold %d log-scalings, got %d" % (self.k, len(g)))
        k = self.k
        for t, v in enumerate(self.order):
            if g[v] is not self._g[t]:
                self._g[t] = g[v]
                self._tick += 1
                self._changed[t] = self._tick
                if t >= 1:
                    self._pref_valid = min(self._pref_valid, t)
                if self._suf_from < k:
                    self._suf_from = max(self._suf_from, min(t, k - 1))

    def _prefix(self, t):
        if self._pref_valid == 0:
            self._pref[1] = self._base(0)
            self._pref_valid = 1
        while self._pref_valid < t:
            s = self._pref_valid
            self._pref[s + 1] = self._prefix_step(self._pref[s], s)
            self._pref_valid = s + 1
        return self._pref[t]

    def _suffix(self, t):
        k = self.k
        if self._suf_from == k:
            self._suf[k - 1] = self._base(k - 1)
            self._suf_from = k - 1
        while self._suf_from > t:
            s = self._suf_from - 1
            self._suf[s] = self._suffix_step(self._suf[s + 1], s)
            self._suf_from = s
        return self._suf[t]

    def _base(self, t):
        if self._mode == "log":
            return self._A[t]
        K, rho, kap = self._kern[t]
        # (matrix, row log-shifts, column log-shifts, row error bounds, max entry)
        return (K, rho, kap, self.prec.flush, 1.0)

    def _prefix_step(self, P, s):
        """``P_{s+1} = P_s D_s K_s``."""
        nx = self.nx
        if self._mode == "log":
            if self._E[s] is None:
                c = finite_max(nx, self._A[s], -2)
                self._E[s] = (flushed_exp(nx, self._A[s] - c, self.prec), c)
            E2, c2 = self._E[s]
            return log_matmul(nx, P + self._g[s][None, :], self._A[s], self.prec, E2=E2, c2=c2)
        Pt, a, b, d, r = P
        K, rho, kap = self._kern[s]
        w = b + self._g[s] + rho
        W = nx.max(nx.detach(w))
        wh = flushed_exp(nx, w - W, self.prec)
        M = self._flush(Pt * wh[None, :]) @ K
        self.n_products += 1
        # row x of Pt errs by at most d[x]; the flushes of Pt wh and of K
        # (entries <= r and <= 1) add at most flush * (1 + r) per term
        err = self._n[s] * (d + self.prec.flush * (1.0 + r))
        return self._normalise(M, a + W, kap, err)

    def _suffix_step(self, S, s):
        """``S_s = K_s D_{s+1} S_{s+1}``."""
        nx = self.nx
        if self._mode == "log":
            return log_matmul(nx, self._A[s] + self._g[s + 1][None, :], S, self.prec)
        St, a, b, d, r = S
        K, rho, kap = self._kern[s]
        w = kap + self._g[s + 1] + a
        W = nx.max(nx.detach(w))
        wh = flushed_exp(nx, w - W, self.prec)
        M = K @ self._flush(wh[:, None] * St)
        self.n_products += 1
        err = self._n[s + 1] * (nx.max(nx.detach(wh) * d) + self.prec.flush * (1.0 + r))
        return self._normalise(M, rho + W, b, err)

    def _flush(self, X):
        return flush(self.nx, X, self.prec)

    def _normalise(self, M, a, b, err):
        """``(M, a, b, err, max M)``, rows rescaled to maximum 1 when out of range.

        Rows stay as they are while their maxima lie in ``[lo, 1/lo]``
        (``lo = flush^(1/3)``): products then keep a range of ``1/lo`` below
        each row's maximum before flushing, and a division pass is saved.
        """
        nx = self.nx
        rm = amax(nx, nx.detach(M), 1)
        if not _deferrable(nx):  # sync-free sweeps: always rescaled (a division pass, no host read)
            lo = self.prec.flush ** (1.0 / 3.0)
            rmin, rmax = (float(v) for v in nx.to_numpy(nx.stack([nx.min(rm), nx.max(rm)])))  # one host sync
            if rmin >= lo and rmax <= 1.0 / lo:
                return (M, a, b, err, rmax)
        pos = rm > 0
        rs = nx.where(pos, rm, nx.ones(rm.shape, type_as=rm))
        # a collapsed row gets a huge (finite: no 0 * inf later) error bound
        big = 1.0 / self.prec.flush
        d = nx.where(pos, err / nx.maximum(rs, err / big), big + 0 * rs)
        return (M / rs[:, None], a + nx.log(rs), b, d, 1.0)

    # ---- scaled kernels --------------------------------------------------
    def _absorb(self):
        nx = self.nx
        k = self.k
        gh = []
        for t in range(k):
            v = nx.detach(self._g[t])
            fin = nx.isfinite(v)
            if bool(nx.any(fin)):
                lo = nx.min(nx.where(fin, v, nx.full(v.shape, np.inf, type_as=v)))
                v = nx.where(fin, v, lo + nx.zeros(v.shape, type_as=v))
            else:
                v = nx.zeros(v.shape, type_as=v)
            gh.append(0.5 * v)
        kern = []
        for t in range(k):
            col = gh[(t + 1) % k]
            L = nx.detach(self._A[t]) + gh[t][:, None] + col[None, :]
            rm = amax(nx, L, 1)
            # then columns: every row and column of K~ has maximum 1 (a node no
            # row favours keeps its column out of the flush range)
            cm = amax(nx, L - rm[:, None], 0)
            K = flushed_exp(nx, self._A[t] + ((gh[t] - rm)[:, None] + (col - cm)[None, :]), self.prec)
            kern.append((K, rm - gh[t], cm - col))
        self._kern = kern
        self._reset_caches()  # every cached product holds the old kernels
        self._absorbed_at = self._calls
        self.n_absorptions += 1

    def _through(self, c):
        r"""Triangle: :math:`H_c = T_c^\top \circ K_{c+1}` (rows: position ``c+1``, columns: ``c-1``).

        Held as ``(g_c, H~, row shifts, column shifts, error)`` with
        ``H = diag(e^row) H~ diag(e^col)``: with the absorbed kernels
        :math:`K_t = \mathrm{diag}(e^{\rho_t}) \tilde K_t \mathrm{diag}(e^{\kappa_t})`,
        :math:`T_c^\top = \mathrm{diag}(e^{\kappa_c})\, \tilde K_c^\top \mathrm{diag}(e^{w})
        \tilde K_{c-1}^\top\, \mathrm{diag}(e^{\rho_{c-1}})`, :math:`w = \rho_c + g_c + \kappa_{c-1}`.
        Every factor lies in [0, 1] with flushes of at most ``flush`` each, so
        each entry of ``H~`` errs by at most ``error = 4 n_c flush``.
        """
        nx = self.nx
        k = self.k
        p, q = (c - 1) % k, (c + 1) % k
        Kp, rho_p, kap_p = self._kern[p]
        Kc, rho_c, kap_c = self._kern[c]
        Kq, rho_q, kap_q = self._kern[q]
        w = rho_c + self._g[c] + kap_p
        W = nx.detach(w).max()  # ndarray/tensor method: no wrapper overhead
        wh = flushed_exp(nx, w - W, self.prec)
        # wh and the kernels are flushed at sqrt(tiny), so no operand of the product is subnormal
        U = (wh[:, None] * Kc).T @ Kp.T
        self.n_products += 1
        if can_write_in_place(nx, U, Kq):
            U *= Kq
            H = U
        else:
            H = U * Kq
        entry = (self._g[c], H, kap_c + rho_q, rho_p + kap_q + W, 4.0 * self._n[c] * self.prec.flush)
        self._thru[c] = entry
        return entry

    def _triangle_marginal(self, t):
        """``(log r_t, bad)`` from a through-product (see the module docstring)."""
        nx = self.nx
        k = self.k
        g = self._g
        c1, c2 = (t + 1) % k, (t + 2) % k
        e1, e2 = self._thru[c1], self._thru[c2]
        if e1 is not None and e1[0] is g[c1]:
            c, entry = c1, e1
        elif e2 is not None and e2[0] is g[c2]:
            c, entry = c2, e2
        else:
            c = c1 if self._changed[c1] >= self._changed[c2] else c2
            entry = self._through(c)
        _, H, row, col, e = entry
        if t == (c + 1) % k:
            # rows of H: sum over the columns (position c - 1)
            v = col + self._g[(c - 1) % k]
            V = nx.detach(v).max()
            y = H @ flushed_exp(nx, v - V, self.prec)
            out = self._g[t] + row + V
            n_sum = self._n[(c - 1) % k]
        else:
            v = row + self._g[(c + 1) % k]
            V = nx.detach(v).max()
            y = flushed_exp(nx, v - V, self.prec) @ H
            out = self._g[t] + col + V
            n_sum = self._n[(c + 1) % k]
        # each of the n_sum terms errs by at most (e + flush) (H~ and the flushed weights)
        err = n_sum * (e + self.prec.flush * self._n[c])
        return self._finish(y, out, err, t)

    def _finish(self, y, out, err, t):
        """``(log r_t, bad)`` from the sums ``y`` (error bounds ``err``) and their log-shifts ``out``."""
        nx = self.nx
        yd = nx.detach(y)
        if _deferrable(nx):
            # sync-free sweeps (strategies.cyclic): the certificate "every entry accurate" stays on the device
            ok = (yd * self._rtol >= err) | ~nx.isfinite(nx.detach(self._g[t]))
            if defer_check(nx, ~nx.any(~ok), "CycleEngine scaled marginal"):
                pos = yd > 0
                out = out + nx.log(nx.where(pos, y, nx.ones(y.shape, type_as=y)))
                return nx.where(pos, out, nx.full(out.shape, -np.inf, type_as=out)), None
        if isinstance(err, float) and float(yd.min()) * self._rtol >= err:
            # every entry accurate (one reduction instead of the masks below)
            return out + nx.log(y), None
        ok = (yd * self._rtol >= err) | ~nx.isfinite(nx.detach(self._g[t]))
        pos = yd > 0
        if not bool(nx.any(~pos)):
            out = out + nx.log(y)
        else:
            y = nx.where(pos, y, nx.ones(y.shape, type_as=y))
            out = nx.where(pos, out + nx.log(y), out - np.inf)
        if not bool(nx.any(~ok)):
            return out, None
        return out, np.nonzero(nx.to_numpy(~ok))[0]

    def _scaled_marginal(self, t):
        """``(log r_t, bad)`` from the scaled products (``bad``: NumPy indices of the inaccurate entries)."""
        nx = self.nx
        if self.k == 3:
            return self._triangle_marginal(t)
        fl = self.prec.flush
        if t == 0:
            # diag(K_0 D_1 S_1): no product needed
            St, aS, bS, dS, rS = self._suffix(1)
            K, rho, kap = self._kern[0]
            v = kap + self._g[1] + aS
            V = nx.max(nx.detach(v))
            vh = flushed_exp(nx, v - V, self.prec)
            y = nx.dot(K * St.T, vh)
            err = self._n[1] * (nx.max(nx.detach(vh) * dS) + 2 * fl * rS)
            out = self._g[0] + rho + bS + V
        else:
            St, aS, bS, dS, rS = self._suffix(t)
            Pt, aP, bP, dP, rP = self._prefix(t)
            v = bS + self._g[0] + aP
            V = nx.max(nx.detach(v))
            vh = flushed_exp(nx, v - V, self.prec)
            y = nx.dot(St * Pt.T, vh)
            err = self._n[0] * (dS * rP + rS * nx.max(nx.detach(vh) * dP) + fl * rS * rP)
            out = self._g[t] + aS + bP + V
        return self._finish(y, out, err, t)

    def _log_entries(self, t, rows):
        """Exact ``log r_t[rows]``: the cycle from each of ``rows`` back to itself, in the log domain.

        ``k - 1`` log-domain products of an ``(m, n)`` block by the kernels:
        ``O(k m n^2)``, cheap for the few entries the scaled products miss.
        """
        nx = self.nx
        k = self.k
        idx = index_array(nx, rows, self._A[t])
        V = self._A[t][idx, :]
        s = (t + 1) % k
        while s != t:
            V = log_matmul(nx, V + self._g[s][None, :], self._A[s], self.prec)
            s = (s + 1) % k
        m = len(rows)
        diag = V[index_array(nx, np.arange(m), V), idx]
        return self._g[t][idx] + diag

    def _fix_entries(self, out, t, rows):
        nx = self.nx
        vals = self._log_entries(t, rows)
        mask = np.zeros(out.shape[0], dtype=bool)
        mask[rows] = True
        full = nx.full(out.shape, 0.0, type_as=out)
        full[index_array(nx, rows, out)] = vals
        return nx.where(nx.from_numpy(mask, type_as=out) > 0, full, out)

    def _log_marginal_pos(self, t):
        nx = self.nx
        self._calls += 1
        if self._scaled_ok and self._mode == "log" and self._calls >= self._log_until:
            self._set_mode("scaled")
            self._kern = None
        if self._mode == "scaled":
            fresh = self._kern is None
            if fresh:
                self._absorb()
            out, bad = self._scaled_marginal(t)
            n_t = self._n[t]
            if bad is not None and not fresh and self._calls - self._absorbed_at > 2 * self.k:
                # entries missed: absorb the current scalings and retry (a few n^2
                # exponentials, cheaper than the log-domain repairs below)
                self._absorb()
                out, bad = self._scaled_marginal(t)
            if bad is None:
                return out
            if len(bad) * 4 <= n_t:
                # a few entries missed: those alone in the log domain
                self.n_exact_entries += len(bad)
                return self._fix_entries(out, t, bad)
            self.n_fallbacks += 1
            self._set_mode("log")
            self._log_until = self._calls + self._LOG_SPELL
        if t == 0:
            S = self._suffix(1)
            return self._g[0] + logsumexp(nx, self._A[0] + self._g[1][None, :] + S.T, 1)
        S = self._suffix(t)
        P = self._prefix(t)
        return self._g[t] + logsumexp(nx, S + self._g[0][None, :] + P.T, 1)

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

    def log_mass(self, g, log_marginal=None):
        if log_marginal is None:
            log_marginal = self.log_marginal(g, self.order[0])
        return logsumexp(self.nx, log_marginal, 0)  # (NumPy: no SciPy wrapper overhead, called once per line search)

    def log_partition_once(self, g):
        """One-shot :meth:`log_partition` in the log domain: ``k - 2`` stabilised products around the cycle and a trace.

        No kernel is absorbed and nothing is cached (for engines built for a
        single question, e.g. on each mini-batch of :mod:`ot_multimarginal.neural`).
        """
        nx = self.nx
        k = self.k
        if len(g) != k:
            raise ValueError("g must hold %d log-scalings, got %d" % (k, len(g)))
        G = [g[v] for v in self.order]
        # the cycle closes with Σ_{x_0, x_{k-1}} e^{g_0 + L[x_0, x_{k-1}] + g_{k-1} + A_{k-1}[x_{k-1}, x_0]}: the last
        # product may skip the entries this addend makes provably negligible (no repair, no failed deferred check)
        close = G[0][:, None] + G[k - 1][None, :] + self._A[k - 1].T
        L = self._A[0]
        for s in range(1, k - 1):
            last = s == k - 2
            L = log_matmul(nx, L + G[s][None, :], self._A[s], self.prec, addend=close if last else None, summed=last)
        T = L + close
        # the kernels are centred (see .base): the uncentred log-partition adds -cost_offset/reg
        return nx.logsumexp(nx.reshape(T, (-1,))) - self.cost_offset / self.reg

    def _path(self, p, q, addend=None):
        """Log of the factors on the path from position ``p`` forward to ``q`` (endpoints' ``D`` excluded).

        ``addend``: what the caller adds to the result (its last product may
        then skip provably negligible entries, :func:`._pairwise.log_matmul`).
        """
        nx = self.nx
        k = self.k
        L = self._A[p]
        s = (p + 1) % k
        while s != q:
            last = (s + 1) % k == q
            L = log_matmul(nx, L + self._g[s][None, :], self._A[s], self.prec, addend=addend if last else None)
            s = (s + 1) % k
        return L

    def _log_pairwise(self, g, i, j, skip):
        self._check_pair(i, j)
        self._sync(g)
        p, q = int(self._pos[i]), int(self._pos[j])
        ends = self._g[p][:, None] + self._g[q][None, :]
        if not skip:
            return ends + self._path(p, q) + self._path(q, p).T
        if (q - p) % self.k <= (p - q) % self.k:
            # the shorter path first: the longer one's last product may skip what is negligible next to it
            first = ends + self._path(p, q)
            return first + self._path(q, p, addend=first.T).T
        first = ends + self._path(q, p).T
        return first + self._path(p, q, addend=first)

    def log_pairwise_marginal(self, g, i, j):
        return self._log_pairwise(g, i, j, skip=False)

    def pairwise_marginal(self, g, i, j):
        """The pairwise marginal to the dtype's resolution (:meth:`.base.GibbsEngine.pairwise_marginal`).

        Triangles in the scaled mode take the through-product of the third
        node (one ``n × n`` matrix product, shared with the marginals, no
        exponential of a matrix) when its error bound shows every entry
        accurate or negligible; otherwise, and for longer cycles, the
        log-domain products, whose closing product recomputes only the
        underflowed entries that a bound says can matter next to their row's
        and column's largest (:func:`._pairwise.log_matmul`).
        """
        if not skip_enabled():  # OT_MULTIMARGINAL_NO_SKIP=1: the exact log-domain products (baselines)
            return self.nx.exp(self._log_pairwise(g, i, j, skip=False))
        if self.k == 3 and self._scaled_ok and not getattr(self.matrices[0], "requires_grad", False):
            # (also in a log-domain spell of the marginals: absorbing drops only caches that g has invalidated)
            self._check_pair(i, j)
            self._sync(g)
            for attempt in range(2):
                fresh = self._kern is None
                if fresh:
                    self._absorb()
                P = self._triangle_pairwise(int(self._pos[i]), int(self._pos[j]))
                if P is not None or fresh or attempt == 1:
                    break
                self._absorb()  # kernels absorbed far from g: once more at g
            if P is not None:
                return P
            self.n_fallbacks += 1
        return self.nx.exp(self._log_pairwise(g, i, j, skip=True))

    def _triangle_pairwise(self, p, q):
        """``P`` of positions ``(p, q)`` from the through-product of the third one, or ``None`` if not accurate.

        With ``H = diag(e^row) H~ diag(e^col)`` (:meth:`_through`), the
        pairwise marginal of positions ``(c + 1, c - 1)`` is
        ``exp(g_{c+1} + row) H~ exp(col + g_{c-1})``; each entry of ``H~``
        errs by at most ``e``. Accepted when every entry is accurate
        (``H~ rtol >= e``) or its error bound is below ``eps**2 / n`` times
        the largest accurate entry of its row and of its column.
        """
        nx = self.nx
        k = self.k
        c = 3 - p - q
        entry = self._thru[c]
        if entry is None or entry[0] is not self._g[c]:
            entry = self._through(c)
        _, H, row, col, e = entry
        a = self._g[(c + 1) % k] + row
        b = col + self._g[(c - 1) % k]
        pos = H > 0
        with np.errstate(divide="ignore"):
            L = (a[:, None] + b[None, :]) + nx.log(nx.where(pos, H, nx.ones(H.shape, type_as=H)))
        L = nx.where(pos, L, nx.full(L.shape, -np.inf, type_as=L))
        acc = (H * self._rtol >= e) | ~nx.isfinite(a)[:, None] | ~nx.isfinite(b)[None, :]
        if bool(nx.any(~acc)):
            m, n = int(H.shape[0]), int(H.shape[1])
            La = nx.where(acc, L, nx.full(L.shape, -np.inf, type_as=L))
            rel = 2.0 * math.log(self.prec.eps)
            lim = nx.minimum(
                amax(nx, La, 1, keepdims=True) + (rel - math.log(n)),
                amax(nx, La, 0, keepdims=True) + (rel - math.log(m)),
            )
            with np.errstate(invalid="ignore"):
                negl = (math.log(e) + (a[:, None] + b[None, :])) < lim
            bad = ~(acc | negl)
            if bool(nx.any(bad)):
                L = self._fix_pairwise_entries(L, bad, c)
                if L is None:
                    return None
        P = nx.exp(L)
        return P if p == (c + 1) % k else P.T

    def _fix_pairwise_entries(self, L, bad, c):
        """``L`` (log pairwise marginal of positions ``(c + 1, c - 1)``) with its ``bad`` entries exact.

        Each entry is ``g_{c+1}[x] + g_{c-1}[y] + A_{c+1}[x, y] + log Σ_z e^{A_{c-1}[y, z] + g_c[z] + A_c[z, x]}``,
        gathered in chunks (``n_c`` exponentials an entry); ``None`` when more
        than a quarter of the entries are bad (the log-domain products are then cheaper).
        """
        nx = self.nx
        k = self.k
        xs, ys = np.nonzero(nx.to_numpy(bad))
        m, n = int(L.shape[0]), int(L.shape[1])
        if 4 * len(xs) > m * n:
            return None
        self.n_exact_entries += len(xs)
        nc = self._n[c]
        Ay = self._A[(c - 1) % k] + self._g[c][None, :]  # (n_{c-1}, n_c)
        Ax = self._A[c].T  # (n_{c+1}, n_c)
        step = max(1, _CHUNK // max(nc, 1))
        vals = []
        for s in range(0, len(xs), step):
            ix = index_array(nx, xs[s : s + step], L)
            iy = index_array(nx, ys[s : s + step], L)
            vals.append(logsumexp(nx, Ay[iy, :] + Ax[ix, :], 1))
        vals = vals[0] if len(vals) == 1 else nx.concatenate(vals, axis=0)
        ix, iy = index_array(nx, xs, L), index_array(nx, ys, L)
        vals = vals + self._g[(c + 1) % k][ix] + self._g[(c - 1) % k][iy] + self._A[(c + 1) % k][ix, iy]
        out = nx.full(L.shape, -np.inf, type_as=L)
        out[ix, iy] = vals
        return nx.where(bad, out, L)

    def iter_edge_log_pairwise_marginals(self, g):
        return self._edge_pairs(g, skip=False)

    def iter_edge_log_pairwise_marginals_for_sums(self, g):
        return self._edge_pairs(g, skip=True)

    def _edge_pairs(self, g, skip):
        nx = self.nx
        k = self.k
        self._sync(g)
        G, A, pr = self._g, self._A, self.prec

        def rest(t):
            """What edge t's closing product is added to (transposed), when negligible entries may be skipped."""
            return (G[t][:, None] + A[t] + G[(t + 1) % k][None, :]).T if skip else None

        # log-domain prefixes and suffixes at g (not the caches: any mode);
        # pref[k - 1] and suf[1] serve only as the closing products of the edges at positions k - 1 and 0
        pref = [None] * k
        pref[1] = A[0]
        for s in range(1, k - 1):
            pref[s + 1] = log_matmul(nx, pref[s] + G[s][None, :], A[s], pr, addend=rest(k - 1) if s == k - 2 else None)
        suf = [None] * k
        suf[k - 1] = A[k - 1]
        for s in range(k - 2, 0, -1):
            suf[s] = log_matmul(nx, A[s] + G[s + 1][None, :], suf[s + 1], pr, addend=rest(0) if s == 1 else None)
        for e in range(len(self.edges)):
            t = self._edge.index(e)
            if t == 0:
                Q = suf[1]
            elif t == k - 1:
                Q = pref[k - 1]
            else:
                Q = log_matmul(nx, suf[t + 1] + G[0][None, :], pref[t], pr, addend=rest(t))
            L = G[t][:, None] + A[t] + G[(t + 1) % k][None, :] + Q.T
            yield L if self.edges[e][0] == self.order[t] else L.T
