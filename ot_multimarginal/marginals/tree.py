# -*- coding: utf-8 -*-
r"""Tree engine: log-domain message passing for pairwise costs on a tree or forest.

For a cost :math:`\sum_{(a,b)\in E} C_{ab}[x_a, x_b]` on an acyclic graph
(chain, star, any tree, or a forest of them) the marginal of node ``i`` is

.. math::
    r_i = e^{g_i} \prod_{j \sim i} \mu_{j\to i}, \qquad
    \mu_{j\to i}[x_i] = \sum_{x_j} K_{ji}[x_j, x_i]\, e^{g_j[x_j]}
    \prod_{l \sim j, l \ne i} \mu_{l\to j}[x_j],

(belief propagation, exact on trees), times the total mass of the other
components of a forest. Messages are kept in the log domain and computed as
matrix-vector products with absorbed kernels (:class:`._pairwise.EdgeKernel`):
``O(n_a n_b)`` multiply-adds per message and no exponential of a matrix near
convergence.

Messages are cached: a message stays valid until a log-scaling on its source
side changes (``g[i]`` is taken as changed when a *new object* is passed for
it; arrays must not be modified in place). A cyclic Sinkhorn sweep in the
order ``0, 1, …, k-1`` then recomputes each message about once when the nodes
are numbered along the tree (a chain in order, a star from its centre): one
sweep costs ``O(Σ_(a,b) n_a n_b)``. Other numberings stay correct, at the
price of more recomputed messages.
"""
# License: MIT License

import numpy as np

from ._pairwise import EdgeKernel, PairwiseEngine, log_matmul, logsumexp

__all__ = ["TreeEngine"]


_STRUCTURE_CACHE = {}  # (k, edges) -> graph structure (read-only, shared by engines rebuilt on new matrices)


def _bfs(nbr, i):
    parent = {i: (None, None)}
    order = [i]
    head = 0
    while head < len(order):
        v = order[head]
        head += 1
        for w, d in nbr[v]:
            if w not in parent:
                parent[w] = (v, d)
                order.append(w)
    return order, parent


def _tree_structure(k, edges):
    """Directed edges, components, BFS orders and the message schedule of an acyclic graph (cached).

    Depends on the graph only: the engines of the mini-batches of
    :mod:`ot_multimarginal.neural` (one per batch) share it.
    """
    key = (k, edges)
    hit = _STRUCTURE_CACHE.get(key)
    if hit is not None:
        return hit
    E = len(edges)
    # directed edge d = 2e (a -> b) or 2e + 1 (b -> a)
    src = np.empty(2 * E, dtype=np.int64)
    dst = np.empty(2 * E, dtype=np.int64)
    into = [[] for _ in range(k)]
    nbr = [[] for _ in range(k)]  # (neighbour, directed id from node to neighbour)
    for e, (a, b) in enumerate(edges):
        src[2 * e], dst[2 * e] = a, b
        src[2 * e + 1], dst[2 * e + 1] = b, a
        into[b].append(2 * e)
        into[a].append(2 * e + 1)
        nbr[a].append((b, 2 * e))
        nbr[b].append((a, 2 * e + 1))
    # components, BFS orders and parents from every node
    comp = -np.ones(k, dtype=np.int64)
    roots = []
    toward = []  # directed ids towards node i, leaves first
    away = []  # directed ids away from node i
    parents = []  # parent (node, directed id from parent) in the BFS from i
    for i in range(k):
        order, parent = _bfs(nbr, i)
        if comp[i] < 0:
            c = len(roots)
            roots.append(i)
            comp[order] = c
        aw = [parent[v][1] for v in order[1:]]
        away.append(np.asarray(aw, dtype=np.int64))
        toward.append(np.asarray([d ^ 1 for d in reversed(aw)], dtype=np.int64))
        parents.append(parent)
    n_edges_needed = k - len(roots)
    if E != n_edges_needed:
        raise ValueError(
            "TreeEngine needs an acyclic graph: %d nodes in %d component(s) allow %d edges, got %d "
            "(use CycleEngine or ContractionEngine for graphs with cycles)" % (k, len(roots), n_edges_needed, E)
        )
    # schedule of every message: collect towards each root, then distribute
    sched = []
    for r in roots:
        sched.extend(toward[r].tolist())
        sched.extend(away[r].tolist())
    out = {
        "src": src,
        "dst": dst,
        "into": into,
        "nbr": nbr,
        "comp": comp,
        "roots": roots,
        "toward": toward,
        "away": away,
        "parent": parents,
        "comp_nodes": [np.nonzero(comp == c)[0] for c in range(len(roots))],
        "all": np.asarray(sched, dtype=np.int64),
    }
    if len(_STRUCTURE_CACHE) >= 256:
        _STRUCTURE_CACHE.pop(next(iter(_STRUCTURE_CACHE)))
    _STRUCTURE_CACHE[key] = out
    return out


class TreeEngine(PairwiseEngine):
    """Engine for pairwise costs on an acyclic graph (tree, chain, star, forest).

    Parameters
    ----------
    shape : tuple of k ints
        Sizes ``n_i`` of the nodes.
    edges : list of pairs ``(a, b)``
        The edges (no cycle; isolated nodes and several components allowed).
    matrices : list of arrays
        ``matrices[e]``: cost of edge ``e = (a, b)``, shape ``(n_a, n_b)``.
    reg : float
        Entropic regularisation.
    nx : Backend
    memory_budget : int, optional
        Bytes for the dense fallbacks only (:meth:`log_plan`).
    cost_offset : float, sequence of floats, or None
        Constants removed from the edge matrices (default: each one's
        minimum; see :class:`~ot_multimarginal.marginals._pairwise.PairwiseEngine`).
    """

    # the kernels hold exp(...) only: -C/reg is recomputed when needed
    _cache_log_kernels = False

    def __init__(self, shape, edges, matrices, reg, nx, memory_budget=None, cost_offset=None):
        super().__init__(shape, edges, matrices, reg, nx, memory_budget, cost_offset)
        st = _tree_structure(self.k, tuple(self.edges))
        self._src, self._dst, self._into, self._nbr = st["src"], st["dst"], st["into"], st["nbr"]
        self._comp, self._roots, self._toward, self._away = st["comp"], st["roots"], st["toward"], st["away"]
        self._parent, self._comp_nodes, self._all = st["parent"], st["comp_nodes"], st["all"]
        E = len(self.edges)
        # the kernels hold exp(...) only: memory 2 n_a n_b per edge with the cost itself
        self.kernels = [
            EdgeKernel(C, self.reg, nx, self.prec, offset=c) for C, c in zip(self.matrices, self.edge_offsets)
        ]
        self._msg = [None] * (2 * E)
        self._dirty = np.ones(2 * E, dtype=bool)
        self._g = [None] * self.k
        self._logZ = [None] * len(self._roots)

    @property
    def n_absorptions(self):
        return sum(K.n_absorptions for K in self.kernels)

    @n_absorptions.setter
    def n_absorptions(self, value):  # set by the base class; counted per kernel
        pass

    @property
    def n_components(self):
        return len(self._roots)

    # ---- message cache ---------------------------------------------------
    def _sync(self, g):
        if len(g) != self.k:
            raise ValueError("g must hold %d log-scalings, got %d" % (self.k, len(g)))
        for i in range(self.k):
            if g[i] is not self._g[i]:
                self._g[i] = g[i]
                self._dirty[self._away[i]] = True
                self._logZ[self._comp[i]] = None

    def _context(self, v, exclude_d=None):
        """``g_v + Σ incoming log-messages`` (all but the one on directed edge ``exclude_d``)."""
        out = self._g[v]
        for d in self._into[v]:
            if d != exclude_d:
                out = out + self._msg[d]
        return out

    def _update(self, ids):
        ids = ids[self._dirty[ids]]
        for d in ids.tolist():
            src = int(self._src[d])
            e, back = divmod(d, 2)
            ctx = self._context(src, d ^ 1)
            self._msg[d] = self.kernels[e].message(ctx, forward=(back == 0))
            self._dirty[d] = False

    def _comp_log_marginal(self, i):
        self._update(self._toward[i])
        return self._context(i)

    def _comp_logZ(self, c):
        if self._logZ[c] is None:
            r = self._roots[c]
            self._logZ[c] = self.nx.logsumexp(self._comp_log_marginal(r))
        return self._logZ[c]

    def _others_logZ(self, *nodes):
        comps = set(int(self._comp[v]) for v in nodes)
        tot = None
        for c in range(len(self._roots)):
            if c not in comps:
                z = self._comp_logZ(c)
                tot = z if tot is None else tot + z
        return tot

    # ---- protocol --------------------------------------------------------
    def log_marginal(self, g, i):
        self._sync(g)
        out = self._comp_log_marginal(i)
        z = self._others_logZ(i)
        return out if z is None else out + z

    def log_marginals(self, g):
        self._sync(g)
        self._update(self._all)
        logZ = [self._comp_logZ(c) for c in range(len(self._roots))]
        total = None
        for z in logZ:
            total = z if total is None else total + z
        out = []
        for i in range(self.k):
            m = self._context(i)
            if len(logZ) > 1:
                m = m + (total - logZ[self._comp[i]])
            out.append(m)
        return out

    def log_mass(self, g, log_marginal=None):
        if log_marginal is not None:
            return self.nx.logsumexp(log_marginal)
        self._sync(g)
        total = None
        for c in range(len(self._roots)):
            z = self._comp_logZ(c)
            total = z if total is None else total + z
        return total

    def log_partition_once(self, g):
        """One-shot :meth:`log_partition` (uncentred): log-domain messages towards each root, nothing cached.

        One log-sum-exp of ``A_e + h`` per edge (``O(n_a n_b)`` exponentials,
        as many as absorbing the kernel would take), exact at any ε and in
        float32, no host synchronisation; for engines asked once (the
        mini-batches of :mod:`ot_multimarginal.neural`).
        """
        if len(g) != self.k:
            raise ValueError("g must hold %d log-scalings, got %d" % (self.k, len(g)))
        nx = self.nx
        msg = {}
        total = None
        for r in self._roots:
            for d in self._toward[r].tolist():
                src = int(self._src[d])
                ctx = g[src]
                for dd in self._into[src]:
                    if dd != d ^ 1:
                        ctx = ctx + msg[dd]
                msg[d] = logsumexp(nx, self._oriented_log_kernel(d // 2, src) + ctx[:, None], 0)
            m = g[r]
            for dd in self._into[r]:
                m = m + msg[dd]
            z = nx.logsumexp(m)
            total = z if total is None else total + z
        # the kernels are centred (see .base): the uncentred log-partition adds -cost_offset/reg
        return total - self.cost_offset / self.reg

    def log_pairwise_marginal(self, g, i, j):
        self._check_pair(i, j)
        nx = self.nx
        self._sync(g)
        if self._comp[i] != self._comp[j]:
            ri = self.log_marginal(g, i)
            rj = self.log_marginal(g, j)
            return ri[:, None] + rj[None, :] - self.log_mass(g)
        self._update(self._all)
        # path i = v0, v1, ..., vm = j from the BFS tree rooted at j
        parent = self._parent[j]
        path = [i]
        dirs = []  # directed id from path[t] to path[t+1]
        while path[-1] != j:
            p, d = parent[path[-1]]
            path.append(p)
            dirs.append(d ^ 1)
        L = None
        for t, d in enumerate(dirs):
            e = d // 2
            A = self._oriented_log_kernel(e, path[t])
            # context of path[t] without its path neighbours
            excl = {d ^ 1}
            if t > 0:
                excl.add(dirs[t - 1])
            ctx = self._g[path[t]]
            for dd in self._into[path[t]]:
                if dd not in excl:
                    ctx = ctx + self._msg[dd]
            if L is None:
                L = ctx[:, None] + A
            else:
                L = log_matmul(nx, L + ctx[None, :], A, self.prec)
        ctx_j = self._context(j, dirs[-1])
        L = L + ctx_j[None, :]
        z = self._others_logZ(i, j)
        return L if z is None else L + z

    def iter_edge_log_pairwise_marginals(self, g):
        self._sync(g)
        self._update(self._all)
        for e, (a, b) in enumerate(self.edges):
            L = self._context(a, 2 * e + 1)[:, None] + self._log_kernel(e) + self._context(b, 2 * e)[None, :]
            z = self._others_logZ(a)
            yield L if z is None else L + z
