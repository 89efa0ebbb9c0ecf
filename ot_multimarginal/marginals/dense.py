# -*- coding: utf-8 -*-
r"""Dense engine: marginals of the Gibbs tensor of a full cost tensor.

Two ways to compute :math:`r_i(B(g))`:

``mode='log'``
    log-sum-exp of :math:`\oplus_j g_j - C/\varepsilon` over every axis but
    ``i``. Exact in the log domain, one ``exp`` per tensor entry per marginal.

``mode='scaling'`` (default)
    *Stabilised scaling* (Schmitzer 2019, adapted to k marginals): part of the
    log-scalings, :math:`\alpha`, is absorbed in a kernel
    :math:`K_\alpha = \exp(\oplus_j \alpha_j - C/\varepsilon - m)`
    (``m`` its largest exponent, so :math:`0 < K \le 1`) and the rest is kept
    as scalings :math:`u_j = e^{g_j - \alpha_j}`. A marginal is then two
    matrix-vector products over the tensor, about as fast as reading it once:
    no ``exp`` in the loop. When some :math:`|g_j - \alpha_j|` leaves a safe
    range (chosen from the dtype so that products of k scalings cannot
    overflow) the scalings are absorbed again (one ``exp`` pass). If a
    marginal entry underflows to zero anyway (tiny ε), it is recomputed in the
    log domain, so the result is as robust as ``mode='log'``. In sync-free
    sweeps (:func:`~ot_multimarginal._backend.deferred_checks`, on a GPU)
    both questions ("scalings in range? no entry underflowed?") are left on
    the device as one certificate, read at the next error check of the loop
    (:mod:`ot_multimarginal.strategies.cyclic`), which redoes the sweeps on
    this checked path if it failed.

The kernel is that of the centred cost :math:`C - c_0`, :math:`c_0 = \min C`
(``cost_offset``, see :mod:`.base` and :func:`.base.default_offset`): any constant part of the cost, of either
sign and any size, is removed exactly before the division by :math:`\varepsilon`.
"""
# License: MIT License

from .._backend import (
    axes_except,
    can_write_in_place,
    defer_check,
    dtype_info,
    exp_in_place,
    expand_to,
    flat_outer_product,
    outer_sum,
    safe_log,
)
from .._validation import check_dense_size
from ._pairwise import _deferrable
from .base import GibbsEngine, default_offset

__all__ = ["DenseEngine"]


def _prod(xs):
    p = 1
    for x in xs:
        p *= int(x)
    return p


class DenseEngine(GibbsEngine):
    """Engine for a dense cost tensor ``M`` of shape ``(n_1, …, n_k)``.

    Parameters
    ----------
    M : array-like, shape (n_1, ..., n_k)
        Cost tensor (already validated).
    reg : float
        Entropic regularisation ε > 0.
    nx : Backend
        POT backend of ``M``.
    mode : {'scaling', 'log'}
        How marginals are computed (see the module docstring).
    memory_budget : int or None
        Bytes allowed for the working tensors; ``None``: half the free memory.
    cost_offset : float or None
        Constant :math:`c_0` removed from ``M`` (see :mod:`.base`); ``None``
        (default): ``min M`` (0 for a non-negative ``M`` whose minimum is at
        most its range, :func:`.base.default_offset`): the centred exponent
        ``-(M - c_0)/reg`` is then ``<= 0``.
    """

    n_buffers = 2  # the kernel K and one temporary of the same size

    def __init__(self, M, reg, nx, mode="scaling", memory_budget=None, cost_offset=None):
        if mode not in ("scaling", "log"):
            raise ValueError("mode must be 'scaling' or 'log', got %r" % (mode,))
        self.M = M
        self.reg = float(reg)
        self.nx = nx
        self.shape = tuple(int(n) for n in M.shape)
        self.type_as = M
        self.mode = mode
        self.memory_budget = memory_budget
        self.cost_offset = default_offset(nx, M) if cost_offset is None else float(cost_offset)
        itemsize = nx.bitsize(M) // 8 if hasattr(nx, "bitsize") else 8
        check_dense_size(self.shape, itemsize, self.n_buffers, memory_budget, "the Gibbs kernel", nx, M)
        _, log_max = dtype_info(nx, M)
        # |g_j - alpha_j| <= tau for all j keeps products of k scalings and the
        # sums over the tensor far from overflow in the working dtype.
        self._tau = 0.5 * log_max / (self.k + 1)
        self._K = None
        self._alpha = None
        self._m = None
        self._T = None
        self._T_key = None
        self._in_range = [None] * len(self.shape)
        self.n_absorptions = 0

    # ---- plain log domain ----------------------------------------------
    def _centred(self, M):
        """``M - c_0`` (exact for the constant part of ``M``; ``M`` itself when ``c_0 = 0``)."""
        return M - self.cost_offset if self.cost_offset != 0.0 else M

    def log_plan(self, g):
        return outer_sum(self.nx, g) - self._centred(self.M) / self.reg

    def _log_marginal_lse(self, g, i):
        return self.nx.logsumexp(self.log_plan(g), axis=axes_except(i, self.k))

    # ---- stabilised scaling ---------------------------------------------
    def _finite_or_zero(self, v):
        nx = self.nx
        return nx.where(nx.isfinite(v), v, nx.zeros(v.shape, type_as=v))

    def _gibbs_exponent(self, g, shift=None):
        """``⊕g - M/reg`` (minus its max if ``shift``), built in one buffer where allowed.

        Returns ``(S, m)``. Without autograd the tensor is written in place,
        so the engine holds the cost and one tensor-sized buffer only.
        """
        nx = self.nx
        if not can_write_in_place(nx, self.M, *g):
            S = self.log_plan(g)
            m = nx.max(S) if shift else None
            return (S - m if shift else S), m
        if self.cost_offset != 0.0:
            S = self.M - self.cost_offset
            S *= -1.0 / self.reg
        else:
            S = self.M * (-1.0 / self.reg)
        for j, gj in enumerate(g):
            S += expand_to(nx, gj, j, self.k)
        m = None
        if shift:
            m = nx.max(S)
            S -= m
        return S, m

    def _absorb(self, g):
        nx = self.nx
        self._K = self._T = self._T_key = None  # free the old kernel before building the new one
        self._alpha = [self._finite_or_zero(gj) for gj in g]
        S, self._m = self._gibbs_exponent(self._alpha, shift=True)
        self._K = exp_in_place(nx, S) if can_write_in_place(nx, S) else nx.exp(S)
        self._in_range = list(g)  # g - alpha is finite-or-zero here by construction
        self.n_absorptions += 1

    def _scalings(self, g, defer=False):
        """``u_j = exp(g_j - alpha_j)``, re-absorbing first if out of range.

        Only blocks whose array changed since the last call are checked: the
        loops replace ``g[i]``, never mutate it. ``defer=False``: one host
        synchronisation per changed block, returns ``(d, u)``. ``defer=True``
        (torch): returns ``(d, u, check, changed)`` without reading anything,
        ``check`` a device boolean "every changed block in range" (``None`` if
        none changed) that the caller reads together with its own question,
        then calls :meth:`_absorb` when it is false or marks ``changed`` in range.
        """
        nx = self.nx
        if self._K is None:
            self._absorb(g)
        d = [gj - aj for gj, aj in zip(g, self._alpha)]
        if defer:
            changed = [j for j, gj in enumerate(g) if self._in_range[j] is not gj]
            check = None
            if changed:
                dev = nx.stack([nx.max(nx.abs(self._finite_or_zero(nx.detach(d[j])))) for j in changed])
                check = nx.max(dev) <= self._tau
            return d, [nx.exp(dj) for dj in d], check, changed
        for j, (gj, dj) in enumerate(zip(g, d)):
            if self._in_range[j] is gj:
                continue
            if float(nx.max(nx.abs(self._finite_or_zero(nx.detach(dj))))) > self._tau:
                self._absorb(g)
                d = [gi - ai for gi, ai in zip(g, self._alpha)]
                break
            self._in_range[j] = gj
        return d, [nx.exp(dj) for dj in d]

    def _contract_except(self, T, u, i, shape):
        """``Σ_{I: I_i = ·} T_I ∏_{j≠i} u_j[I_j]`` for ``T`` of ``shape``: two matrix-vector products."""
        nx = self.nx
        n = shape
        nl, nr = _prod(n[:i]), _prod(n[i + 1 :])
        left = flat_outer_product(nx, u[:i])
        right = flat_outer_product(nx, u[i + 1 :])
        Y = T
        if left is not None:
            Y = nx.dot(left, nx.reshape(T, (nl, n[i] * nr)))
        Y = nx.reshape(Y, (n[i], nr))
        if right is not None:
            return nx.dot(Y, right)
        return nx.reshape(Y, (n[i],))

    def _last_axis_contraction(self, g, u):
        """``K ×_k u_k`` (shape ``n_1..n_{k-1}``), cached while ``g[-1]`` and the kernel are unchanged.

        A cyclic sweep updates blocks ``1..k-1`` with ``g_k`` fixed, so their
        marginals all come from this (k-1)-tensor: a sweep reads the full
        kernel twice instead of k times.
        """
        key = self._T_key
        if key is not None and key[0] is g[-1] and key[1] == self.n_absorptions:
            return self._T
        n = self.shape
        T = self.nx.dot(self.nx.reshape(self._K, (_prod(n[:-1]), n[-1])), u[-1])
        self._T = self.nx.reshape(T, n[:-1])
        self._T_key = (g[-1], self.n_absorptions)
        return self._T

    def _scaled_sum(self, g, u, i):
        """``Σ_{I: I_i = ·} K_I ∏_{j≠i} u_j[I_j]`` (the marginal's sum in the scaling domain)."""
        if i < self.k - 1:
            T = self._last_axis_contraction(g, u)
            return self._contract_except(T, u[:-1], i, self.shape[:-1])
        return self._contract_except(self._K, u, i, self.shape)

    def _log_marginal_scaling(self, g, i):
        nx = self.nx
        # torch (a GPU): the range check of the scalings and the underflow check of the sum in one host read,
        # the sum computed first (optimistically; redone after an absorption, rare); NumPy reads as it goes
        defer = str(nx) == "torch"
        for attempt in range(2):
            if defer:
                d, u, check, changed = self._scalings(g, defer=True)
                Y = self._scaled_sum(g, u, i)
                bad = (Y <= 0) & nx.isfinite(d[i])
                if attempt == 0 and _deferrable(nx):
                    # sync-free sweeps (strategies.cyclic): both questions left on the device as one certificate
                    ok = ~nx.any(bad) if check is None else check & ~nx.any(bad)
                    if defer_check(nx, ok, "DenseEngine scaled marginal"):
                        for j in changed:
                            self._in_range[j] = g[j]
                        return d[i] + safe_log(nx, Y) + self._m
                if check is None:
                    any_bad = bool(nx.any(bad))
                else:
                    in_range, any_bad = (bool(v) for v in nx.to_numpy(nx.stack([check, nx.any(bad)])))
                    if in_range:
                        for j in changed:
                            self._in_range[j] = g[j]
                    else:  # out of range: absorb, then the sum again
                        self._absorb(g)
                        d, u, _, _ = self._scalings(g, defer=True)
                        Y = self._scaled_sum(g, u, i)
                        bad = (Y <= 0) & nx.isfinite(d[i])
                        any_bad = bool(nx.any(bad))
            else:
                d, u = self._scalings(g)
                Y = self._scaled_sum(g, u, i)
                bad = (Y <= 0) & nx.isfinite(d[i])
                any_bad = bool(nx.any(bad))
            if not any_bad:
                return d[i] + safe_log(nx, Y) + self._m
            if attempt == 0:
                self._absorb(g)  # re-centre the kernel on g, then try again
        return self._log_marginal_lse(g, i)  # still underflows: log domain

    # ---- protocol --------------------------------------------------------
    def log_marginal(self, g, i):
        if self.mode == "log":
            return self._log_marginal_lse(g, i)
        return self._log_marginal_scaling(g, i)

    def linear_cost(self, g):
        """``⟨M, B(g)⟩ = ⟨M - c_0, B(g)⟩ + c_0 ‖B(g)‖₁``, summed over slices of the first axis.

        Each slice is about 1/16 of the tensor."""
        nx = self.nx
        n0 = self.shape[0]
        step = max(1, -(-n0 // 16))
        total = mass = 0.0
        for s in range(0, n0, step):
            Ms = self._centred(self.M[s : s + step])
            E = nx.exp(outer_sum(nx, [g[0][s : s + step]] + list(g[1:])) - Ms / self.reg)
            total = total + nx.sum(Ms * E)
            if self.cost_offset != 0.0:
                mass = mass + nx.sum(E)
        return total + self.cost_offset * mass if self.cost_offset != 0.0 else total

    def plan(self, g, a_s=None, free=()):
        nx = self.nx
        S, _ = self._gibbs_exponent(g)
        return exp_in_place(nx, S) if can_write_in_place(nx, S) else nx.exp(S)

    def log_pairwise_marginal(self, g, i, j):
        if i == j:
            raise ValueError("a pairwise marginal needs two different axes, got i = j = %d" % i)
        L = self.log_plan(g)
        others = tuple(a for a in range(self.k) if a not in (i, j))
        if others:
            L = self.nx.logsumexp(L, axis=others)
        return L if i < j else L.T

    def cost_inputs(self):
        return (self.M,)

    def cost_gradients(self, g):
        return (self.nx.exp(self.log_plan(g)),)

    def without_caches(self):
        """The same engine (same, possibly differentiable, ``M``) without its kernel and work buffers."""
        return DenseEngine(self.M, self.reg, self.nx, self.mode, self.memory_budget, cost_offset=self.cost_offset)

    def detached(self):
        return DenseEngine(
            self.nx.detach(self.M), self.reg, self.nx, self.mode, self.memory_budget, cost_offset=self.cost_offset
        )
