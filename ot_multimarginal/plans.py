# -*- coding: utf-8 -*-
r"""A transport plan held in factored form: potentials, never the tensor.

For a structured cost (pairwise costs on a tree, a cycle, any graph) the plan
:math:`P = B(g) = \exp(\oplus_j g_j - C/\varepsilon)` of a Sinkhorn solve has
:math:`\prod_j n_j` entries, far too many to store, but everything one asks
of a plan is a question to the engine that solved it: marginals, pairwise
marginals, the cost :math:`\langle C, P\rangle`, entries at given index
tuples, samples. :class:`FactoredPlan` keeps the engine and the log-scalings
and answers those questions; only :meth:`FactoredPlan.to_dense` forms the
tensor.

A plan may also carry the rank-one correction of the rounding onto the exact
transport polytope (:func:`ot_multimarginal.round_to_feasible`):
:math:`Y = B(g') + (\mathrm{err}_1 \otimes \dots \otimes \mathrm{err}_k)/s^{k-1}`;
every method then answers for :math:`Y`.

The plan is :math:`B(g)` *as is*, not renormalised: it is what Sinkhorn
returns (mass close to 1 near convergence) and agrees entrywise with the
dense ``exp(engine.log_plan(g))``. Here as in the engines, :math:`C` in
:math:`B(g)` is the centred cost :math:`C - c_0` (``engine.cost_offset``, see
:mod:`ot_multimarginal.marginals.base`); :meth:`FactoredPlan.linear_cost` is
the true :math:`\langle C, Y\rangle`.
"""
# License: MIT License

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np
from ot.utils import check_random_state

from ._elimination import elimination_factors, sample_by_elimination
from ._typing import Array
from ._validation import (
    check_dense_size,
    check_free,
    check_log_scalings,
    check_positive_int,
    check_rounded_marginals,
)
from ._validation import check_index_tuples as _check_index_tuples
from .marginals.base import cost_offset_of
from .rounding import (
    RoundedState,
    _dense_cost,
    _edge_matrices,
    _has_rank_one,
    outer_product,
    rank_one_cost,
    rank_one_marginal_scale,
    round_to_feasible,
)

__all__ = ["FactoredPlan", "cost_at"]


def _to_numpy64(nx, x):
    return np.asarray(nx.to_numpy(nx.detach(x)), dtype=np.float64)


def _backend_index(nx, idx, type_as):
    """A NumPy int64 index vector as an index array of the backend of ``type_as``."""
    if str(nx) == "torch":
        import torch  # only reached for torch arrays

        return torch.as_tensor(idx, dtype=torch.int64, device=type_as.device)
    return idx


def cost_at(engine, idx, centred=False):
    r"""The cost :math:`C_I` at the index tuples ``idx`` (NumPy int array of shape (m, k)).

    In order of preference: ``engine.cost_at(idx)`` if the engine defines it
    (same argument, returns a backend array of shape (m,)); for pairwise
    costs (``edges`` and ``matrices`` attributes)
    :math:`\sum_{(a,b)} C_{ab}[I_a, I_b]`; a dense cost tensor indexed
    directly; otherwise the dense cost from ``engine.log_plan``.

    ``centred=True``: :math:`C_I - c_0`, the cost of the engine's centred
    Gibbs tensor (``engine.cost_offset``, see :mod:`.marginals.base`); for
    pairwise costs each edge's offset is removed before the sum, so that a
    large constant part of the edges costs no precision (float32).
    """
    nx = engine.nx
    idx, _ = _check_index_tuples(idx, engine.shape)
    offset = cost_offset_of(engine) if centred else 0.0
    if hasattr(engine, "cost_at"):
        C = engine.cost_at(idx)
        return C - offset if offset != 0.0 else C
    mats = _edge_matrices(engine)
    if mats is not None:
        offsets = getattr(engine, "edge_offsets", None) if centred else None
        if offsets is None:
            offsets = [offset / len(mats)] * len(mats)
        total = nx.zeros((idx.shape[0],), type_as=engine.type_as)
        for (a, b), C, c in zip(engine.edges, mats, offsets):
            ia = _backend_index(nx, idx[:, a], C)
            ib = _backend_index(nx, idx[:, b], C)
            total = total + (C[ia, ib] - c if c != 0.0 else C[ia, ib])
        return total
    M = _dense_cost(engine)
    C = M[tuple(_backend_index(nx, idx[:, j], M) for j in range(engine.k))]
    return C - offset if offset != 0.0 else C


def _draw(rng, logp, size):
    """``size`` draws from the categorical law ``∝ exp(logp)`` (NumPy float64 log-weights)."""
    logp = np.asarray(logp, dtype=np.float64)
    m = np.max(logp)
    if not np.isfinite(m):
        raise ValueError("cannot sample: a conditional law of the plan has no mass")
    cdf = np.cumsum(np.exp(logp - m))
    u = rng.random_sample(size) * cdf[-1]
    out = np.searchsorted(cdf, u, side="right")
    return np.minimum(out, len(cdf) - 1).astype(np.int64)


_DRAW_BLOCK = 2**20  # entries of the (prefix, value) blocks of the last-axis conditionals


def _draw_rows(rng, L):
    """One draw per row of the categorical laws ``∝ exp(L[r])`` (NumPy float64, shape (m, n))."""
    m = np.max(L, axis=1, keepdims=True)
    if not np.all(np.isfinite(m)):
        raise ValueError("cannot sample: a conditional law of the plan has no mass")
    cdf = np.cumsum(np.exp(L - m), axis=1)
    u = rng.random_sample(L.shape[0]) * cdf[:, -1]
    out = np.sum(cdf <= u[:, None], axis=1)
    return np.minimum(out, L.shape[1] - 1).astype(np.int64)


def _group_rows(prefixes):
    """Distinct rows of ``prefixes``, the inverse map, and the rows of each group (contiguous in ``order``)."""
    uniq, inv = np.unique(prefixes, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    order = np.argsort(inv, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(inv, minlength=len(uniq)))])
    return uniq, inv, order, bounds


class FactoredPlan:
    r"""A plan :math:`Y = B(g) + (\otimes_j\,\mathrm{err}_j)/s^{k-1}` kept as potentials.

    :math:`B(g) = \exp(\oplus_j g_j - C/\varepsilon)` is the (unnormalised)
    Gibbs tensor of ``engine`` at the log-scalings ``g``; the rank-one part is
    present only for a rounded plan. Nothing of size :math:`\prod_j n_j` is
    formed except by :meth:`to_dense` (and by the engine itself when it is a
    dense one).

    Parameters
    ----------
    engine : GibbsEngine
        The engine of the cost (dense, tree, cycle, ...).
    g : list of k arrays, or None
        Log-scalings of the Gibbs part. ``None`` with ``rounded``: ``rounded.g``.
    a_s : list of k arrays, optional
        Target weights of the problem: needed by :meth:`round` and
        :meth:`marginal_error`.
    rounded : RoundedState, optional
        The rank-one correction (``errs``, ``s``) of
        :func:`~ot_multimarginal.round_to_feasible`; its ``g`` must
        be the ``g`` given here. Use :meth:`round` rather than building it by hand.
    free : sequence of int, optional
        Free nodes of the problem (marginals not prescribed; their ``a_s``
        entries are reference weights only): :meth:`round` leaves their
        marginals free and :meth:`marginal_error` does not count them.
        Plans returned by the solvers carry the solve's free nodes.

    Notes
    -----
    The plan is :math:`B(g)` itself, not renormalised (Sinkhorn's plan has
    mass close to one near convergence): :meth:`density` agrees with
    ``exp(engine.log_plan(g))`` entrywise. :meth:`sample` draws from the plan
    divided by its mass. Index arrays (input of :meth:`density`, output of
    :meth:`sample`) are NumPy ``int64``; values are backend arrays of the
    engine's dtype and device.

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.sinkhorn import make_engine, solve_potentials
    >>> from ot_multimarginal.plans import FactoredPlan
    >>> M = np.random.RandomState(0).rand(3, 4, 5)
    >>> engine, a_s = make_engine(None, M, 0.5)
    >>> g, _ = solve_potentials(engine, a_s, numItermax=3, stopThr=0, warn=False)
    >>> P = FactoredPlan(engine, g, a_s).round()
    >>> bool(np.allclose(P.marginal(2), a_s[2]))
    True
    >>> P.sample(2, random_state=0).shape
    (2, 3)
    """

    def __init__(
        self,
        engine: Any,
        g: Optional[Sequence[Array]],
        a_s: Optional[Sequence[Array]] = None,
        rounded: Optional[RoundedState] = None,
        free: Sequence[int] = (),
    ) -> None:
        nx = engine.nx
        free = check_free(free, engine.k)
        if g is None:
            if rounded is None:
                raise ValueError("give the log-scalings g (or a RoundedState as rounded)")
            g = rounded.g
        g = check_log_scalings(g, engine.shape)
        if a_s is not None:
            a_s = list(a_s)
            if len(a_s) != engine.k:
                raise ValueError("a_s must be a list of %d weight vectors, got %d" % (engine.k, len(a_s)))
        if rounded is not None and not all(x is y for x, y in zip(g, rounded.g)):
            same = all(np.array_equal(_to_numpy64(nx, x), _to_numpy64(nx, y)) for x, y in zip(g, rounded.g))
            if not same:
                raise ValueError(
                    "rounded.g differs from g: the rank-one correction belongs to the "
                    "rounded log-scalings; pass g=rounded.g (or use plan.round())"
                )
        self.engine = engine
        self.g = g
        self.a_s = a_s
        self.rounded = rounded
        self.free = free
        self._rank_one = rounded is not None and _has_rank_one(nx, rounded.s)
        self._log_marginals = {}

    # ---- basic attributes -----------------------------------------------
    @property
    def nx(self):
        """POT backend of the plan."""
        return self.engine.nx

    @property
    def shape(self):
        """``(n_1, ..., n_k)``."""
        return tuple(self.engine.shape)

    @property
    def k(self):
        """Number of marginals."""
        return len(self.shape)

    @property
    def reg(self):
        """Entropic regularisation ε of the Gibbs part."""
        return self.engine.reg

    @property
    def is_rounded(self):
        """Whether the plan carries the rounding's rank-one part (exact marginals)."""
        return self.rounded is not None

    @property
    def log_scalings(self):
        """The k log-scalings ``g`` of the Gibbs part."""
        return list(self.g)

    def _scale(self, skip):
        return rank_one_marginal_scale(self.nx, self.rounded.errs, self.rounded.s, skip)

    def _gibbs_log_marginal(self, i):
        if i not in self._log_marginals:
            self._log_marginals[i] = self.engine.log_marginal(self.g, i)
        return self._log_marginals[i]

    def _check_axis(self, i, name="i"):
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)) or not -self.k <= i < self.k:
            raise IndexError("%s must be an axis in [0, %d), got %r" % (name, self.k, i))
        return int(i) % self.k

    # ---- marginals and cost ---------------------------------------------
    @property
    def mass(self):
        """Total mass ``‖Y‖₁`` (Gibbs part plus rank-one part)."""
        nx = self.nx
        m = nx.exp(nx.logsumexp(self._gibbs_log_marginal(0)))
        if self._rank_one:
            m = m + self._scale(())
        return m

    def marginal(self, i: int) -> Array:
        r"""Compute the marginal on axis ``i``: :math:`r_i(Y)[x] = \sum_{I : I_i = x} Y[I]`.

        One engine pass for the Gibbs part (cached), nothing dense.

        Parameters
        ----------
        i : int
            The axis, in ``[-k, k)``.

        Returns
        -------
        r : array-like of shape (n_i,)
            The marginal, in the backend, dtype and device of the engine.
            Exactly ``a_s[i]`` (to rounding error) for a rounded plan, unless
            ``i`` is a free node.

        Raises
        ------
        IndexError
            If ``i`` is not an axis of the plan.
        """
        i = self._check_axis(i)
        r = self.nx.exp(self._gibbs_log_marginal(i))
        if self._rank_one:
            r = r + self.rounded.errs[i] * self._scale((i,))
        return r

    @property
    def marginals(self):
        """The k marginals."""
        return [self.marginal(i) for i in range(self.k)]

    def marginal_error(self) -> Array:
        r"""Compute the marginal error :math:`\sum_{i \notin F} \|r_i(Y) - a_i\|_1`.

        The sum runs over the prescribed marginals (:math:`F` = ``free``):
        the solvers' stopping error.

        Returns
        -------
        err : backend scalar
            The sum of the L1 errors, in the backend and dtype of the engine.

        Raises
        ------
        ValueError
            If the plan was built without the target weights ``a_s``.
        """
        if self.a_s is None:
            raise ValueError("marginal_error needs the target weights: build the plan with a_s")
        nx = self.nx
        err = 0.0
        for i in range(self.k):
            if i in self.free:
                continue
            err = err + nx.sum(nx.abs(self.marginal(i) - self.a_s[i]))
        return err

    def pairwise_marginal(self, i: int, j: int) -> Array:
        r"""Compute the pairwise marginal on the axes ``(i, j)``.

        :math:`P_{ij}[x, y] = \sum_{I : I_i = x,\, I_j = y} Y[I]`, for any
        two different axes (adjacent in the graph or not), computed by the
        engine without forming the tensor (for the rank-one part of a rounded
        plan: :math:`\mathrm{err}_i \mathrm{err}_j^\top` times the mass of
        the other factors).

        Parameters
        ----------
        i, j : int
            Two different axes in ``[-k, k)``.

        Returns
        -------
        P_ij : array-like of shape (n_i, n_j)
            The pairwise marginal (rows: axis ``i``), in the backend, dtype
            and device of the engine.

        Raises
        ------
        IndexError
            If ``i`` or ``j`` is not an axis.
        ValueError
            If ``i == j``.
        """
        i = self._check_axis(i, "i")
        j = self._check_axis(j, "j")
        if i == j:
            raise ValueError("a pairwise marginal needs two different axes, got i = j = %d" % i)
        P = self.nx.exp(self.engine.log_pairwise_marginal(self.g, i, j))
        if self._rank_one:
            errs = self.rounded.errs
            P = P + errs[i][:, None] * (errs[j] * self._scale((i, j)))[None, :]
        return P

    def linear_cost(self) -> Array:
        r"""Compute the linear cost :math:`\langle C, Y\rangle = \sum_I C[I]\, Y[I]`.

        The Gibbs part from the engine, the rank-one part of a rounded plan
        contracted with the cost; the true cost :math:`C`, not the centred
        one.

        Returns
        -------
        cost : backend scalar
            :math:`\langle C, Y\rangle`, as the solvers'
            ``log['value_linear']``; differentiable on torch.
        """
        c = self.engine.linear_cost(self.g)
        if self._rank_one:
            c = c + rank_one_cost(self.engine, self.rounded.errs, self.rounded.s)
        return c

    @property
    def value_linear(self):
        r""":math:`\langle C, Y\rangle`, as in the solvers' ``log['value_linear']``."""
        return self.linear_cost()

    # ---- entries -------------------------------------------------------
    def _log_gibbs_at(self, idx):
        nx = self.nx
        out = -cost_at(self.engine, idx, centred=True) / self.reg
        for j, gj in enumerate(self.g):
            out = out + gj[_backend_index(nx, idx[:, j], gj)]
        return out

    def density(self, idx: Any) -> Array:
        r"""Evaluate the plan's entries :math:`Y[I]` at index tuples ``idx``.

        The entries of the plan tensor itself (its density with respect to
        the counting measure on the index tuples, not to
        :math:`\otimes_j a_j`):
        :math:`\exp(\sum_j g_j[I_j] - C[I]/\varepsilon)` plus, for a rounded
        plan, :math:`\prod_j \mathrm{err}_j[I_j]/s^{k-1}`. They sum to
        :attr:`mass` over all tuples.

        Parameters
        ----------
        idx : int array of shape (m, k) or (k,)
            Index tuples (NumPy or a list; entries in ``[0, n_j)``).

        Returns
        -------
        values : array-like of shape (m,), or 0-d for one tuple of shape (k,)
            The entries, in the backend, dtype and device of the engine.

        See Also
        --------
        FactoredPlan.to_dense : all the entries at once.
        """
        nx = self.nx
        idx, single = _check_index_tuples(idx, self.shape)
        vals = nx.exp(self._log_gibbs_at(idx))
        if self._rank_one:
            errs, s = self.rounded.errs, self.rounded.s
            extra = s  # s ∏_j (err_j[I_j]/s): no s^{k-1} that could underflow
            for j, e in enumerate(errs):
                extra = extra * (e[_backend_index(nx, idx[:, j], e)] / s)
            vals = vals + extra
        return vals[0] if single else vals

    def __getitem__(self, key):
        """``plan[i_1, ..., i_k]``: one entry; with k integer arrays: :meth:`density` on their broadcast."""
        if not isinstance(key, tuple) or len(key) != self.k:
            raise IndexError(
                "index a FactoredPlan with k = %d integers or integer arrays (no slices; use to_dense())" % self.k
            )
        if any(isinstance(x, slice) or x is Ellipsis or x is None for x in key):
            raise IndexError("slices are not supported on a FactoredPlan; use to_dense() or density()")
        parts = np.broadcast_arrays(*[np.asarray(x) for x in key])
        shape = parts[0].shape
        idx = np.stack([p.reshape(-1) for p in parts], axis=1)
        vals = self.density(idx)
        return self.nx.reshape(vals, shape)

    # ---- sampling ------------------------------------------------------
    def sample(
        self, n_samples: int, random_state: Union[None, int, np.random.RandomState] = None, method: str = "auto"
    ) -> np.ndarray:
        r"""Exact i.i.d. samples of k-tuples from the plan (divided by its mass).

        Parameters
        ----------
        n_samples : int
            Number of tuples to draw (>= 0).
        random_state : None, int or numpy.random.RandomState, optional
            Seed (:func:`ot.utils.check_random_state`); numbers are drawn in NumPy.
        method : {'auto', 'elimination', 'sequential', 'dense', 'engine'}, optional
            How the Gibbs part is sampled; every method is exact.

            - ``'auto'`` (default): ``'engine'`` if the engine has a
              ``sample_gibbs`` method, else ``'dense'`` for a dense cost
              tensor, else ``'elimination'`` for a pairwise cost whose
              tables fit, else ``'sequential'``.
            - ``'elimination'`` (pairwise costs on any graph: trees, circles,
              complete graphs): axis by axis, every sample's conditional law
              read from tables computed once by variable elimination (log
              domain, float64; see :mod:`ot_multimarginal._elimination`), so
              the batch is drawn in vectorised steps, without an engine pass
              per prefix; it needs the largest table of the elimination
              (:math:`n^3` entries on a circle, :math:`n^{k-1}` on a
              complete graph) to hold at most 2**24 entries, else
              ``ValueError``.
            - ``'sequential'``: axis by axis, :math:`i_1` from the first
              marginal, then :math:`i_j` from the conditional law given
              :math:`(i_1, \dots, i_{j-1})`, the j-th marginal of
              :math:`B(g)` with :math:`g_1, \dots, g_{j-1}` set to
              :math:`-\infty` off the drawn indices: one engine marginal per
              distinct prefix, at most
              :math:`\min(n_{\text{samples}}, n_1 \cdots n_{j-1})` for axis j
              (works for every engine, never forms the tensor). The last
              axis is drawn from
              :math:`\exp(g_k[v] - C(i_1, \dots, i_{k-1}, v)/\varepsilon)`
              with the cost at index tuples (``ot_multimarginal.plans.cost_at``), no engine pass.
            - ``'dense'``: from the flattened tensor (engines whose tensor
              fits in memory).
            - ``'engine'``: the engine's own ``sample_gibbs(g, n, rng)``, a
              hook for user-defined engines (none of the package's engines
              defines one).

            A rounded plan is a mixture: each sample comes from the rank-one
            part (the product law of the :math:`\mathrm{err}_j/\|\mathrm{err}_j\|_1`)
            with probability its share of the mass, else from the Gibbs part.

        Returns
        -------
        idx : numpy.ndarray of int64, shape (n_samples, k)
            The sampled index tuples (one row per sample), whatever the
            backend of the plan.

        Raises
        ------
        ValueError
            On an unknown ``method``, or a ``method`` the engine cannot serve
            (``'engine'`` without ``sample_gibbs``, ``'elimination'`` beyond
            its table size).
        """
        if method not in ("auto", "elimination", "sequential", "dense", "engine"):
            raise ValueError(
                "method must be 'auto', 'elimination', 'sequential', 'dense' or 'engine', got %r" % (method,)
            )
        n_samples = check_positive_int("n_samples", n_samples, minimum=0)
        try:
            rng = check_random_state(random_state)
        except (TypeError, ValueError):
            raise ValueError(
                "random_state must be None, an integer seed or a numpy.random.RandomState, got %r" % (random_state,)
            ) from None
        hook = getattr(self.engine, "sample_gibbs", None)
        if method == "engine" and hook is None:
            raise ValueError("method='engine' needs an engine with a sample_gibbs(g, n, rng) method")
        factors = None
        if method == "elimination" or (method == "auto" and hook is None and getattr(self.engine, "M", None) is None):
            factors = self._elimination_factors()
            if factors is None and method == "elimination":
                raise ValueError(
                    "method='elimination' needs a pairwise cost (an engine with edges and matrices) whose "
                    "elimination tables hold at most 2**24 entries; use method='sequential'"
                )
        if method == "auto":
            if hook is not None:
                method = "engine"
            elif getattr(self.engine, "M", None) is not None:
                method = "dense"
            else:
                method = "elimination" if factors is not None else "sequential"
        out = np.empty((n_samples, self.k), dtype=np.int64)
        from_rank_one = np.zeros(n_samples, dtype=bool)
        if self._rank_one:
            nx = self.nx
            m_r = float(_to_numpy64(nx, self._scale(())))
            m_g = float(_to_numpy64(nx, nx.exp(nx.logsumexp(self._gibbs_log_marginal(0)))))
            from_rank_one = rng.random_sample(n_samples) * (m_r + m_g) < m_r
            n_r = int(from_rank_one.sum())
            if n_r:
                with np.errstate(divide="ignore"):
                    cols = [_draw(rng, np.log(_to_numpy64(nx, e)), n_r) for e in self.rounded.errs]
                out[from_rank_one] = np.stack(cols, axis=1)
        n_g = n_samples - int(from_rank_one.sum())
        if n_g:
            if method == "engine":
                out[~from_rank_one] = np.asarray(hook(self.g, n_g, rng), dtype=np.int64)
            elif method == "dense":
                out[~from_rank_one] = self._sample_dense(rng, n_g)
            elif method == "elimination":
                out[~from_rank_one] = sample_by_elimination(factors, self.shape, n_g, rng, _draw, _draw_rows)
            else:
                out[~from_rank_one] = self._sample_sequential(rng, n_g)
        return out

    def _elimination_factors(self):
        """Tables of :func:`~ot_multimarginal._elimination.elimination_factors` for a pairwise engine, else None."""
        engine, nx = self.engine, self.nx
        edges = getattr(engine, "edges", None)
        mats = getattr(engine, "matrices", None)
        if edges is None or mats is None or len(edges) != len(mats):
            return None
        log_k = [-_to_numpy64(nx, C) / self.reg for C in mats]
        return elimination_factors(self.shape, list(edges), log_k, [_to_numpy64(nx, gj) for gj in self.g])

    def _sample_dense(self, rng, n):
        nx = self.nx
        itemsize = nx.bitsize(self.engine.type_as) // 8 if hasattr(nx, "bitsize") else 8
        budget = getattr(self.engine, "memory_budget", None)
        check_dense_size(self.shape, max(itemsize, 8), 2, budget, "the dense plan", nx, self.engine.type_as)
        L = _to_numpy64(nx, self._log_gibbs_dense()).reshape(-1)
        flat = _draw(rng, L, n)
        return np.stack(np.unravel_index(flat, self.shape), axis=1).astype(np.int64)

    def _sample_sequential(self, rng, n):
        nx = self.nx
        k = self.k
        out = np.empty((n, k), dtype=np.int64)
        out[:, 0] = _draw(rng, _to_numpy64(nx, self._gibbs_log_marginal(0)), n)
        for j in range(1, k - 1):
            uniq, inv, order, bounds = _group_rows(out[:, :j])
            for c, prefix in enumerate(uniq):
                rows = order[bounds[c] : bounds[c + 1]]
                gc = list(self.g)
                for l in range(j):
                    delta = np.full(self.shape[l], -np.inf)
                    delta[prefix[l]] = 0.0
                    gc[l] = gc[l] + nx.from_numpy(delta, type_as=gc[l])
                lm = self.engine.log_marginal(gc, j)
                out[rows, j] = _draw(rng, _to_numpy64(nx, lm), len(rows))
        self._sample_last_axis(rng, out)
        return out

    def _sample_last_axis(self, rng, out):
        """Last axis given all others: ``∝ exp(g_k[v] − C(prefix, v)/ε)``, from the cost at tuples."""
        nx = self.nx
        k = self.k
        j = k - 1
        nk = self.shape[j]
        gk = _to_numpy64(nx, self.g[j])
        uniq, inv, order, bounds = _group_rows(out[:, :j])
        block = max(1, _DRAW_BLOCK // nk)
        for start in range(0, len(uniq), block):
            U = uniq[start : start + block]
            b = len(U)
            idx = np.empty((b * nk, k), dtype=np.int64)
            idx[:, :j] = np.repeat(U, nk, axis=0)
            idx[:, j] = np.tile(np.arange(nk, dtype=np.int64), b)
            L = gk[None, :] - _to_numpy64(nx, cost_at(self.engine, idx, centred=True)).reshape(b, nk) / self.reg
            sel = order[bounds[start] : bounds[start + b]]
            for s0 in range(0, len(sel), block):
                rows = sel[s0 : s0 + block]
                out[rows, j] = _draw_rows(rng, L[inv[rows] - start])

    # ---- dense form ----------------------------------------------------
    def _log_gibbs_dense(self):
        try:
            return self.engine.log_plan(self.g)
        except NotImplementedError:
            idx = np.stack(np.unravel_index(np.arange(int(np.prod(self.shape))), self.shape), axis=1)
            return self.nx.reshape(self._log_gibbs_at(idx), self.shape)

    def to_dense(self, memory_budget: Optional[int] = None) -> Array:
        """Form the plan as a dense tensor.

        Parameters
        ----------
        memory_budget : int, optional
            Bytes the tensor (and one temporary of its size) may take
            (default: half the available memory).

        Returns
        -------
        P : array-like of shape (n_1, ..., n_k)
            The plan :math:`Y`, in the backend, dtype and device of the engine.

        Raises
        ------
        MemoryError
            Before allocating, when the tensor exceeds ``memory_budget``.
        """
        nx = self.nx
        type_as = self.engine.type_as
        itemsize = nx.bitsize(type_as) // 8 if hasattr(nx, "bitsize") else 8
        check_dense_size(self.shape, itemsize, 2, memory_budget, "the dense plan", nx, type_as)
        P = nx.exp(self._log_gibbs_dense())
        if self._rank_one:
            s = self.rounded.s
            P = P + s * outer_product(nx, [e / s for e in self.rounded.errs])
        return P

    # ---- rounding ------------------------------------------------------
    def round(self) -> FactoredPlan:
        r"""Round the plan onto the exact transport polytope of ``a_s``.

        :func:`~ot_multimarginal.round_to_feasible` on the log-scalings
        (Altschuler et al. 2017, Lin et al. 2022; k + 1 engine passes,
        nothing dense). With free nodes (``self.free``) only the prescribed
        marginals are rounded (the sums below run over the prescribed
        :math:`j`); on a free axis the rank-one part follows the plan's
        current marginal there, normalised.

        Returns
        -------
        plan : FactoredPlan
            A new plan :math:`Y` with :math:`Y \ge 0`, marginals exactly
            :math:`r_j(Y) = a_j` (to rounding error) and
            :math:`\|Y - B(g)\|_1 \le 2 \sum_j \|r_j(B(g)) - a_j\|_1`, hence
            :math:`|\langle C, Y\rangle - \langle C, B(g)\rangle| \le
            2\|C\|_\infty \sum_j \|r_j(B(g)) - a_j\|_1`. A rounded plan
            returns itself.

        Raises
        ------
        ValueError
            If the plan was built without the target weights ``a_s``.

        Warns
        -----
        UserWarning
            If the rounded marginals still miss ``a_s`` by more than the
            dtype resolves (log-scalings too large for float32 at small reg).
        """
        if self.rounded is not None:
            return self
        if self.a_s is None:
            raise ValueError("round() needs the target weights: build the plan with a_s")
        state = round_to_feasible(self.engine, self.g, self.a_s, self.free)
        out = FactoredPlan(self.engine, state.g, self.a_s, rounded=state, free=self.free)
        check_rounded_marginals(self.nx, out.marginal_error(), self.k, self.engine.type_as, self.reg)
        return out

    def __repr__(self):
        extra = ", free=%s" % (self.free,) if self.free else ""
        if self.rounded is not None:
            extra += ", rounded=True, s=%.3g" % float(_to_numpy64(self.nx, self.rounded.s))
        return "FactoredPlan(shape=%s, engine=%s, backend=%s%s)" % (
            self.shape,
            type(self.engine).__name__,
            str(self.nx),
            extra,
        )
