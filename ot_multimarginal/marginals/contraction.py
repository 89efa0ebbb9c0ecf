# -*- coding: utf-8 -*-
r"""Contraction engine: variable elimination for pairwise costs on any graph.

The Gibbs tensor of a pairwise cost is a tensor network: one factor
:math:`e^{g_i}` per node and one matrix :math:`e^{-C_{ab}/\varepsilon}` per
edge. A marginal (node ``i``), a pairwise marginal (nodes ``i, j``) or the
total mass sums the network over every other node; this engine does it by
*variable elimination*: nodes are summed out one at a time in a greedy order
(smallest new factor first, fewest fill-in edges to break ties), and each
step is one (batched) matrix product of two groups of factors,

.. math::
    F(W, T_1, T_2) = \sum_{x_v} F_1(W, T_1, x_v)\, F_2(W, x_v, T_2),

taken in the log domain with max shifts (:func:`._pairwise.log_matmul`).
The work of a step is the size of the new factor times ``n_v``; memory never
exceeds the largest factor, far below :math:`\prod_i n_i`. For the complete
graph on three nodes a marginal is one ``n × n`` matrix product and
``O(n^2)`` exponentials; in general the cost is exponential in the treewidth
only (``n^k`` flops and ``n^{k-1}`` memory for the complete graph on ``k``
nodes).

The elimination plans depend only on the graph: they are built once per
kept set and replayed on new log-scalings. The edge factors that enter a
product alone keep their exponentials cached.

Intermediate factors are reused across calls: a factor is the sum over its
eliminated nodes of the factors it absorbed, whatever the order, so it is
keyed by that set of factors (and its scope) and stays valid while the
log-scalings it absorbed are the same objects. In a cyclic sweep on the
complete graph, the marginal of node ``i + 1`` then reuses most of the
elimination done for node ``i`` (it absorbed neither ``g_i`` nor
``g_{i+1}``). As in the tree and cycle engines, ``g[i]`` counts as changed
when a new object is passed for it (do not modify the arrays in place).
"""
# License: MIT License

import itertools

import numpy as np

from .._validation import SCALING_HINT, check_dense_size
from ._pairwise import PairwiseEngine, finite_max, flushed_exp, log_matmul, logsumexp
from ._split_product import complete_split, split_log_mass

__all__ = ["ContractionEngine", "elimination_plan"]

_MAX_EXACT_PARTITION = 10  # factors beyond which the two groups are chosen greedily
_MEMO_FACTORS = 3  # the memoised intermediate factors hold at most this many largest factors


def _size(scope, shape):
    s = 1
    for v in scope:
        s *= shape[v]
    return s


def _best_partition(scopes, v, shape):
    """Split the factors ``scopes`` (each containing ``v``) into two groups for one product.

    Returns ``(G1, G2)`` (index lists, ``G2`` possibly empty) minimising the
    exponentials and logs of the step plus a tenth of its multiply-adds
    (an exponential costs about as much as ten multiply-adds).
    """
    m = len(scopes)
    sets = [set(s) - {v} for s in scopes]
    nv = shape[v]

    def cost(g1, g2):
        T1 = set().union(*[sets[i] for i in g1])
        if not g2:
            return _size(T1, shape) * nv + _size(T1, shape)
        T2 = set().union(*[sets[i] for i in g2])
        U = T1 | T2
        return _size(T1, shape) * nv + _size(T2, shape) * nv + _size(U, shape) + _size(U, shape) * nv / 10.0

    if m <= _MAX_EXACT_PARTITION:
        best = None
        for mask in range(1 << (m - 1)):
            g1 = [0] + [i for i in range(1, m) if not (mask >> (i - 1)) & 1]
            g2 = [i for i in range(1, m) if (mask >> (i - 1)) & 1]
            c = cost(g1, g2)
            if best is None or c < best[0]:
                best = (c, g1, g2)
        return best[1], best[2]
    order = sorted(range(m), key=lambda i: -_size(sets[i], shape))
    g1, g2 = [order[0]], []
    for i in order[1:]:
        if cost(g1 + [i], g2) <= cost(g1, g2 + [i]):
            g1.append(i)
        else:
            g2.append(i)
    if cost(g1 + g2, []) < cost(g1, g2):
        g1, g2 = g1 + g2, []
    return g1, g2


def elimination_plan(shape, edges, keep):
    """Symbolic variable elimination of every node not in ``keep``.

    Returns ``(steps, final, peak)``: the steps to replay (see
    :meth:`ContractionEngine._run`), the ids of the factors left (scopes
    within ``keep``) and the largest factor size met.
    Factor ids: ``('u', i)`` the node factor ``g_i``, ``('e', e)`` the edge
    factor ``-C_e/reg`` (axes ``edges[e]``), ``('t', s)`` the result of step ``s``.
    """
    k = len(shape)
    keep = tuple(keep)
    factors = {("u", i): (i,) for i in range(k)}
    for e, (a, b) in enumerate(edges):
        factors[("e", e)] = (a, b)
    todo = [v for v in range(k) if v not in keep]
    steps = []
    peak = max(_size(s, shape) for s in factors.values())
    while todo:
        best = None
        for v in todo:
            inv = [s for s in factors.values() if v in s]
            scope = set().union(*[set(s) for s in inv]) - {v}
            size = _size(scope, shape)
            # fill-in: pairs of scope nodes not yet sharing a factor
            fill = 0
            sl = sorted(scope)
            for a, b in itertools.combinations(sl, 2):
                if not any(a in s and b in s for s in factors.values()):
                    fill += 1
            key = (size * shape[v], fill, v)
            if best is None or key < best[0]:
                best = (key, v)
        v = best[1]
        todo.remove(v)
        ids = [f for f, s in factors.items() if v in s]
        vec_ids = [f for f in ids if factors[f] == (v,)]
        mat_ids = [f for f in ids if factors[f] != (v,)]
        if mat_ids:
            g1, g2 = _best_partition([factors[f] for f in mat_ids], v, shape)
            G1 = [mat_ids[i] for i in g1]
            G2 = [mat_ids[i] for i in g2]
            # the vectors go with the group that is not a lone edge factor
            if len(G2) > 0 and len(G1) == 1 and G1[0][0] == "e" and not (len(G2) == 1 and G2[0][0] == "e"):
                G1, G2 = G2, G1
        else:
            G1, G2 = [], []
        T1 = set().union(*[set(factors[f]) for f in G1]) - {v} if G1 else set()
        T2 = set().union(*[set(factors[f]) for f in G2]) - {v} if G2 else set()
        W = sorted(T1 & T2)
        T1p = sorted(T1 - set(W))
        T2p = sorted(T2 - set(W))
        out_scope = tuple(W + T1p + T2p)
        step = {
            "v": v,
            "G1": G1 + vec_ids,
            "G2": G2,
            "scope1": tuple(W + T1p + [v]),
            "scope2": tuple(W + [v] + T2p) if G2 else None,
            "dims": (_size(W, shape), _size(T1p, shape), shape[v], _size(T2p, shape)),
            "out_scope": out_scope,
            "out_shape": tuple(shape[u] for u in out_scope),
        }
        peak = max(peak, _size(step["scope1"], shape), _size(out_scope, shape))
        if G2:
            peak = max(peak, _size(step["scope2"], shape))
        for f in ids:
            del factors[f]
        tid = ("t", len(steps))
        factors[tid] = out_scope
        steps.append(step)
    final = [(f, s) for f, s in factors.items()]
    return steps, final, peak


_PLAN_CACHE = {}  # (shape, edges, keep) -> annotated elimination plan (read-only, shared by engines)
_PLAN_CACHE_SIZE = 256


def _annotated_plan(shape, edges, keep):
    """:func:`elimination_plan` with each step's absorbed leaves and memo key, cached by graph and sizes.

    Plans depend only on ``(shape, edges, keep)``: engines rebuilt on new
    matrices of the same sizes (mini-batches) reuse them instead of
    re-running the symbolic elimination.
    """
    key = (tuple(shape), tuple(edges), tuple(keep))
    hit = _PLAN_CACHE.get(key)
    if hit is not None:
        return hit
    steps, final, peak = elimination_plan(shape, edges, keep)
    for st in steps:
        # the leaf factors a step has absorbed, and the nodes among them
        leaves = set()
        for f in st["G1"] + st["G2"]:
            leaves |= steps[f[1]]["leaves"] if f[0] == "t" else {f}
        st["leaves"] = frozenset(leaves)
        st["nodes"] = tuple(sorted(i for kind, i in leaves if kind == "u"))
        st["key"] = (st["leaves"], st["out_scope"])
    if len(_PLAN_CACHE) >= _PLAN_CACHE_SIZE:
        _PLAN_CACHE.pop(next(iter(_PLAN_CACHE)))
    _PLAN_CACHE[key] = (steps, final, peak)
    return _PLAN_CACHE[key]


_SPLIT_CACHE = {}  # (shape, edges) -> complete_split (graph-only, shared by engines)


def _complete_split(shape, edges):
    key = (tuple(shape), tuple(edges))
    if key not in _SPLIT_CACHE:
        if len(_SPLIT_CACHE) >= _PLAN_CACHE_SIZE:
            _SPLIT_CACHE.pop(next(iter(_SPLIT_CACHE)))
        _SPLIT_CACHE[key] = complete_split(shape, edges)
    return _SPLIT_CACHE[key]


def _expand_spec(scope, target):
    """``(perm, shape_pattern)`` to put a factor of ``scope`` on the axes of ``target``."""
    present = [u for u in target if u in scope]
    perm = tuple(scope.index(u) for u in present)
    return perm, [u if u in scope else None for u in target]


def _contraction_hint(k, edges):
    """The advice of the contraction engine's ``MemoryError``: why this graph does not scale, and what does."""
    complete = len({tuple(sorted(e)) for e in edges}) == k * (k - 1) // 2
    why = (
        "A complete graph on k = %d nodes has treewidth %d: every elimination order forms a factor with %d "
        "of the n_i as axes, so this engine is exact but does not scale in n (on 20 GiB of free memory: "
        "n <= ~580 for k = 4, n <= ~118 for k = 5; one sweep costs O(n^k))" % (k, k - 1, k - 1)
        if complete
        else "This graph's elimination (treewidth of the graph) forms a factor too large for the budget"
    )
    return why + ". " + SCALING_HINT


class ContractionEngine(PairwiseEngine):
    """Engine for pairwise costs on any graph (cycles, complete graph, disconnected).

    Parameters are those of :class:`~ot_multimarginal.marginals.TreeEngine`.
    ``memory_budget`` bounds the largest intermediate factor (checked for
    the single-node marginals when the engine is built): a ``MemoryError``
    names the graph's treewidth as the limit.
    """

    def __init__(self, shape, edges, matrices, reg, nx, memory_budget=None, cost_offset=None):
        super().__init__(shape, edges, matrices, reg, nx, memory_budget, cost_offset)
        self._plans = {}
        self._cache = {}
        self._memo = {}  # (absorbed factors, scope) -> (their log-scalings, value, nodes)
        self.n_steps = 0  # elimination steps computed
        self.n_reused = 0  # elimination steps taken from the memo
        self.n_split = 0  # log-partitions taken by the scaled split product (log_partition_once)
        itemsize = nx.bitsize(self.type_as) // 8
        peak = max(self._plan((i,))[2] for i in range(self.k))
        # a step's operands and result (4) plus the memoised factors (_MEMO_FACTORS)
        check_dense_size(
            (peak,),
            itemsize,
            4 + _MEMO_FACTORS,
            memory_budget,
            "the largest factor of the graph contraction",
            nx,
            self.type_as,
            hint=_contraction_hint(self.k, self.edges),
        )
        self._memo_limit = _MEMO_FACTORS * peak

    def _plan(self, keep):
        keep = tuple(keep)
        if keep not in self._plans:
            self._plans[keep] = _annotated_plan(self.shape, tuple(self.edges), keep)
        return self._plans[keep]

    def _reused(self, st):
        """The memoised result of step ``st`` (valid: :meth:`_prune` ran for the current ``g``)."""
        hit = self._memo.get(st["key"])
        if hit is None:
            return None
        self.n_reused += 1
        return hit[1]

    def _remember(self, st, g, out):
        size = int(np.prod(st["out_shape"])) if st["out_shape"] else 1
        self._memo[st["key"]] = (tuple(g[i] for i in st["nodes"]), out, st["nodes"], size)
        total = sum(e[3] for e in self._memo.values())
        while total > self._memo_limit and len(self._memo) > 1:
            oldest = next(iter(self._memo))  # insertion order: the least recently computed
            total -= self._memo.pop(oldest)[3]

    def _prune(self, g):
        """Forget the memoised factors that absorbed a log-scaling that has changed since."""
        stale = [key for key, (gs, _, nodes, _) in self._memo.items() if any(a is not g[i] for a, i in zip(gs, nodes))]
        for key in stale:
            del self._memo[key]

    # ---- replay ----------------------------------------------------------
    def _scope_of(self, fid, steps):
        kind, i = fid
        if kind == "u":
            return (i,)
        if kind == "e":
            return self.edges[i]
        return steps[i]["out_scope"]

    def _value(self, fid, g, vals):
        kind, i = fid
        if kind == "u":
            return g[i]
        if kind == "e":
            return self._log_kernel(i)
        return vals[i]

    def _expand(self, X, scope, target):
        nx = self.nx
        perm, pattern = _expand_spec(tuple(scope), tuple(target))
        if perm != tuple(range(len(perm))):
            X = nx.transpose(X, perm)
        shp = tuple(self.shape[u] if u is not None else 1 for u in pattern)
        if tuple(X.shape) != shp:
            X = nx.reshape(X, shp)
        return X

    def _group_sum(self, ids, target, g, vals, steps):
        total = None
        for f in ids:
            X = self._expand(self._value(f, g, vals), self._scope_of(f, steps), target)
            total = X if total is None else total + X
        full = tuple(self.shape[u] for u in target)
        if tuple(total.shape) != full:
            total = total + self.nx.zeros(full, type_as=total)
        return total

    def _run(self, g, keep):
        nx = self.nx
        steps, final, _ = self._plan(keep)
        if len(g) != self.k:
            raise ValueError("g must hold %d log-scalings, got %d" % (self.k, len(g)))
        self._prune(g)
        vals = []
        for st in steps:
            hit = self._reused(st)
            if hit is not None:
                vals.append(hit)
                continue
            self.n_steps += 1
            B, p, q, r = st["dims"]
            F1 = self._group_sum(st["G1"], st["scope1"], g, vals, steps)
            if not st["G2"]:
                out = logsumexp(nx, nx.reshape(F1, (B * p, q)), 1)
            else:
                cached = None
                if len(st["G2"]) == 1 and st["G2"][0][0] == "e":
                    key = (st["G2"][0], st["scope2"])
                    cached = self._cache.get(key)
                    if cached is None:
                        F2 = self._group_sum(st["G2"], st["scope2"], g, vals, steps)
                        F2 = nx.reshape(F2, (B, q, r) if B > 1 else (q, r))
                        c2 = finite_max(nx, F2, -2)
                        cached = (F2, flushed_exp(nx, F2 - c2, self.prec), c2)
                        self._cache[key] = cached
                    F2 = cached[0]
                else:
                    F2 = self._group_sum(st["G2"], st["scope2"], g, vals, steps)
                    F2 = nx.reshape(F2, (B, q, r) if B > 1 else (q, r))
                F1 = nx.reshape(F1, (B, p, q) if B > 1 else (p, q))
                if cached is not None:
                    out = log_matmul(nx, F1, F2, self.prec, E2=cached[1], c2=cached[2])
                else:
                    out = log_matmul(nx, F1, F2, self.prec)
            out = nx.reshape(out, st["out_shape"])
            vals.append(out)
            self._remember(st, g, out)
        target = tuple(keep)
        total = None
        for f, scope in final:
            X = self._value(f, g, vals)
            if len(scope) == 0:
                X = nx.reshape(X, (1,) * len(target)) if target else nx.reshape(X, ())
            else:
                X = self._expand(X, scope, target)
            total = X if total is None else total + X
        full = tuple(self.shape[u] for u in target)
        if total is None:
            return nx.zeros(full, type_as=self.type_as)
        if tuple(total.shape) != full:
            total = total + nx.zeros(full, type_as=total)
        return total

    # ---- protocol --------------------------------------------------------
    def log_marginal(self, g, i):
        return self._run(g, (i,))

    def log_mass(self, g, log_marginal=None):
        if log_marginal is not None:
            return self.nx.logsumexp(log_marginal)
        return self._run(g, ())

    def log_pairwise_marginal(self, g, i, j):
        self._check_pair(i, j)
        return self._run(g, (i, j))

    def log_partition_once(self, g):
        """One-shot :meth:`log_partition` (uncentred): on a complete graph, one chunked product of scaled kernels.

        A complete graph on ``k >= 3`` nodes takes
        :func:`._split_product.split_log_mass` (``n^k`` multiply-adds as one
        matrix product in cache-sized chunks, ``O(n^2)`` exponentials, no
        ``n^{k-1}``-sized factor in memory; on torch a custom gradient of two
        more products), unless its error bound says that the scaled product
        underflowed, in which case (and for any other graph) the exact
        log-domain elimination runs. Nothing is cached (for engines built for
        a single question, e.g. on each mini-batch of :mod:`ot_multimarginal.neural`).
        """
        if len(g) != self.k:
            raise ValueError("g must hold %d log-scalings, got %d" % (self.k, len(g)))
        split = _complete_split(self.shape, tuple(self.edges))
        if split is not None:
            out = split_log_mass(self.nx, self.shape, self.edges, self._log_kernel, g, self.prec, split)
            if out is not None:
                self.n_split += 1
                # the kernels are centred (see .base): the uncentred log-partition adds -cost_offset/reg
                return out - self.cost_offset / self.reg
        return self.log_partition(g)
