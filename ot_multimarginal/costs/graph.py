# -*- coding: utf-8 -*-
r"""Pairwise costs on a graph: the cost tensor is never formed.

A :class:`PairwiseCost` is the cost

.. math::
    C(x_1, \dots, x_k) = \sum_{(a, b) \in E} C_{ab}[x_a, x_b]

given by one matrix per edge of a graph on the k marginals. Its Gibbs tensor
factors along the graph, so the solvers compute marginals with matrix
products on the edges instead of sums over :math:`\prod_i n_i` entries:

============================  ===========================================  ================================
graph                         engine (:mod:`ot_multimarginal.marginals`)   one Sinkhorn sweep
============================  ===========================================  ================================
tree, chain, star (forest)    :class:`TreeEngine` (message passing)        :math:`O(\sum_E n_a n_b)`
circle (one cycle)            :class:`CycleEngine` (transfer matrices)     :math:`O(k\, n^3)`
any other (complete, chords)  :class:`ContractionEngine` (elimination)     exponential in the treewidth only
============================  ===========================================  ================================

The engine follows the structure, not the name: the complete graph on three
nodes is a cycle (two ``n × n`` matrix products per sweep); a forest or a
graph with several components is solved component by component (the plan is
their product). Pass it wherever a cost tensor is accepted
(:func:`~ot_multimarginal.emot_sinkhorn`, :func:`~ot_multimarginal.emot_sinkhorn2`,
``graph=`` of the point-cloud calls); the plan comes back in factored form
(:class:`~ot_multimarginal.plans.FactoredPlan`). Every engine works in the log
domain (exact at small ε, finite in float32) and differentiates on torch.

**Sizes each engine reaches** under the default memory budget, and the time of a
sweep, are measured by ``bench/bench_reach.py`` (``bench/results/bench_reach.md``,
on the documentation's benchmark page).

Chains, trees, stars and circles scale to thousands of points per
marginal (so does the triangle, k = 3 complete),
while a complete graph on k ≥ 4 nodes has treewidth k − 1 and is limited to
n of about a hundred whatever the budget. For dense interactions among many
marginals at large n, use the neural estimator
(``ot_multimarginal.emot_neural``), which works from samples.
"""
# License: MIT License

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

from .._typing import Array, Edges, Metric
from .._validation import (
    backend_of,
    check_dense_size,
    check_finite,
    check_free,
    check_index_tuples,
    check_k,
    check_point_clouds,
    check_reg,
    check_shape,
    describe,
)
from .dense import pair_list

__all__ = ["PairwiseCost", "graph_edges", "GRAPHS"]

GRAPHS = ("chain", "circle", "star", "tree", "complete")


def graph_edges(graph, k, center=0, edges=None):
    """Edge list of a named graph on ``k`` nodes (or the given edge list).

    ``'chain'``: ``(0,1), (1,2), …, (k-2,k-1)``; ``'circle'``: the chain plus
    ``(k-1, 0)`` (``k >= 3``); ``'star'``: ``(center, j)`` for every other
    ``j`` in increasing order; ``'complete'``: all pairs ``i < j`` in
    lexicographic order (the order of per-pair metrics in
    :func:`~ot_multimarginal.cost_tensor`); ``'tree'``: ``edges`` (must be
    acyclic); a list of pairs: itself.
    """
    if isinstance(graph, str):
        if graph == "chain":
            return [(t, t + 1) for t in range(k - 1)]
        if graph == "circle":
            if k < 3:
                raise ValueError("graph='circle' needs at least 3 nodes, got k=%d (for k=2 use 'chain')" % k)
            return [(t, t + 1) for t in range(k - 1)] + [(k - 1, 0)]
        if graph == "star":
            if isinstance(center, (bool, np.bool_)) or not isinstance(center, (int, np.integer)) or not 0 <= center < k:
                raise ValueError("center must be a node in [0, %d), got %r" % (k, center))
            return [(int(center), j) for j in range(k) if j != center]
        if graph == "complete":
            return pair_list(k)
        if graph == "tree":
            if edges is None:
                raise ValueError(
                    "graph='tree' needs the edge list: pass edges=[(a, b), ...] (or the list itself as graph)"
                )
            return [tuple(e) for e in edges]
        raise ValueError("graph must be one of %s or a list of edges (a, b), got %r" % (GRAPHS, graph))
    if isinstance(graph, (list, tuple)):
        return [tuple(e) if isinstance(e, (list, tuple)) else e for e in graph]
    raise TypeError("graph must be one of %s or a list of edges (a, b), got %s" % (GRAPHS, type(graph).__name__))


def _check_edge_list(edges, k=None, name="edges"):
    if not isinstance(edges, (list, tuple)):
        raise TypeError("%s must be a list of pairs (a, b) of node indices, got %s" % (name, type(edges).__name__))
    out = []
    seen = {}
    for idx, e in enumerate(edges):
        if not isinstance(e, (list, tuple)) or len(e) != 2:
            raise ValueError("%s[%d] must be a pair (a, b) of node indices, got %r" % (name, idx, e))
        a, b = e
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (a, b)):
            raise TypeError("%s[%d] must hold two integers, got %r" % (name, idx, e))
        a, b = int(a), int(b)
        if a < 0 or b < 0:
            raise ValueError("%s[%d] = %r has a negative node index" % (name, idx, e))
        if k is not None and (a >= k or b >= k):
            raise ValueError(
                "%s[%d] = %r refers to a missing node: the cost has k=%d nodes (0..%d)" % (name, idx, (a, b), k, k - 1)
            )
        if a == b:
            raise ValueError(
                "%s[%d] = %r is a self-loop; a node's own cost belongs in its weights, not on an edge"
                % (name, idx, (a, b))
            )
        key = (min(a, b), max(a, b))
        if key in seen:
            raise ValueError(
                "%s[%d] = %r duplicates %s[%d] = %r: give each pair of nodes one edge (add the two matrices)"
                % (name, idx, (a, b), name, seen[key], tuple(edges[seen[key]]))
            )
        seen[key] = idx
        out.append((a, b))
    return out


def _components(k, edges):
    parent = list(range(k))

    def find(v):
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    cycle_edge = None
    for idx, (a, b) in enumerate(edges):
        ra, rb = find(a), find(b)
        if ra == rb:
            if cycle_edge is None:
                cycle_edge = idx
        else:
            parent[ra] = rb
    roots = set(find(v) for v in range(k))
    return len(roots), cycle_edge


def _is_single_cycle(k, edges):
    if k < 3 or len(edges) != k:
        return False
    deg = [0] * k
    for a, b in edges:
        deg[a] += 1
        deg[b] += 1
    return all(d == 2 for d in deg) and _components(k, edges)[0] == 1


def classify_graph(k, edges):
    """``'chain'``, ``'star'``, ``'tree'``, ``'forest'``, ``'circle'``, ``'complete'`` or ``'graph'``."""
    n_comp, cycle_edge = _components(k, edges)
    deg = [0] * k
    for a, b in edges:
        deg[a] += 1
        deg[b] += 1
    if cycle_edge is None:
        if n_comp > 1:
            return "forest"
        if max(deg) <= 2:
            return "chain"
        if k >= 4 and max(deg) == k - 1:
            return "star"
        return "tree"
    if _is_single_cycle(k, edges):
        return "circle"
    if len(edges) == k * (k - 1) // 2:
        return "complete"
    return "graph"


class PairwiseCost:
    r"""A cost that is a sum of pairwise terms on the edges of a graph.

    .. math::
        C(x_1, \dots, x_k) = \sum_{e = (a, b)} C_e[x_a, x_b]

    Parameters
    ----------
    edges : list of pairs ``(a, b)``
        The edges, nodes numbered ``0 .. k-1``. No self-loops, no repeated
        pair (in either orientation). Any graph: trees, cycles, several
        components (the plan is then the product of the components' plans).
    matrices : list of arrays
        ``matrices[e]`` of shape ``(n_a, n_b)`` for ``edges[e] = (a, b)``:
        NumPy arrays or torch tensors (one library, one dtype and device),
        finite. Gradients flow to them on torch.
    shape : tuple of k ints, optional
        The sizes ``n_i``; needed only when a node has no edge (or to check).
    graph_kind : str, optional
        The name of the graph (``'chain'``, ``'circle'``, ``'star'``,
        ``'tree'``, ``'complete'``); checked against the edges. Detected when
        omitted.
    free : sequence of int, optional
        Nodes whose marginal is not prescribed (default none), e.g. the centre
        of a star for a barycenter. The solvers
        (:func:`~ot_multimarginal.emot_sinkhorn`,
        :func:`~ot_multimarginal.emot_sinkhorn2` and the point-cloud calls)
        use it when their own ``free=`` is ``None``; an explicit ``free=``
        there overrides it. Validated like theirs: distinct indices in
        ``[0, k)``, at least one node prescribed.

    Attributes
    ----------
    shape : tuple of int
        The sizes :math:`(n_0, \dots, n_{k-1})` of the k nodes.
    k : int
        Number of nodes (marginals).
    edges : list of tuple of int
        The edges ``(a, b)``, as given (validated).
    matrices : list of arrays
        ``matrices[e]`` of shape ``(n_a, n_b)``, the cost of ``edges[e]``.
    nx : ot.backend.Backend
        The POT backend of the matrices.
    type_as : array
        ``matrices[0]``: the dtype and device of the cost.
    graph_kind : str
        ``'chain'``, ``'circle'``, ``'star'``, ``'tree'``, ``'forest'``,
        ``'complete'`` or ``'graph'`` (given, or detected from the edges).
    free : tuple of int
        The free nodes, sorted (``()``: every marginal prescribed).

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import emot_sinkhorn, emot_sinkhorn2
    >>> from ot_multimarginal.costs import PairwiseCost
    >>> rng = np.random.RandomState(0)
    >>> C = PairwiseCost.chain([rng.rand(4, 5), rng.rand(5, 6)])
    >>> C.shape, C.graph_kind
    ((4, 5, 6), 'chain')
    >>> v = emot_sinkhorn2(None, C, reg=0.1)
    >>> bool(abs(v - emot_sinkhorn2(None, C.to_dense(), reg=0.1)) < 1e-8)
    True
    >>> S = PairwiseCost.star([rng.rand(3, 4), rng.rand(3, 5)], free=[0])  # free centre
    >>> P = emot_sinkhorn(None, S, reg=0.1)
    >>> P.free
    (0,)

    See Also
    --------
    ot_multimarginal.cost_tensor : the dense cost of point clouds (all pairs).
    """

    def __init__(
        self,
        edges: Edges,
        matrices: Sequence[Array],
        shape: Optional[Sequence[int]] = None,
        graph_kind: Optional[str] = None,
        free: Sequence[int] = (),
    ) -> None:
        shape = check_shape(shape)
        edges = _check_edge_list(edges, None if shape is None else len(shape))
        if not isinstance(matrices, (list, tuple)):
            raise TypeError("matrices must be a list of arrays, one per edge, got %s" % describe(matrices))
        matrices = list(matrices)
        if len(matrices) != len(edges):
            raise ValueError(
                "matrices must hold one matrix per edge: %d edges, got %d matrices" % (len(edges), len(matrices))
            )
        if not edges:
            raise ValueError("edges is empty: a pairwise cost needs at least one edge")
        for e, M in enumerate(matrices):
            if not (hasattr(M, "shape") and hasattr(M, "dtype")):
                raise TypeError("matrices[%d] must be a NumPy array or torch tensor, got %s" % (e, type(M).__name__))
        nx = backend_of(matrices=matrices)
        ref = matrices[0]
        sizes = {}
        if shape is not None:
            for i, n in enumerate(shape):
                sizes[i] = (n, "shape[%d]" % i)
        for e, ((a, b), M) in enumerate(zip(edges, matrices)):
            if M.ndim != 2:
                raise ValueError(
                    "matrices[%d] (edge %r) must be 2-D of shape (n_%d, n_%d), got shape %s"
                    % (e, (a, b), a, b, tuple(M.shape))
                )
            if "complex" in str(M.dtype) or not nx.is_floating_point(M):
                raise TypeError(
                    "matrices[%d] must have a real floating dtype (float32 or float64), got %s" % (e, M.dtype)
                )
            if 0 in tuple(M.shape):
                raise ValueError(
                    "matrices[%d] (edge %r) has an empty axis (shape %s): every node needs at least one point"
                    % (e, (a, b), tuple(M.shape))
                )
            dev, dev0 = getattr(M, "device", "cpu"), getattr(ref, "device", "cpu")
            if M.dtype != ref.dtype or dev != dev0:
                raise TypeError(
                    "matrices must share one dtype and device: matrices[0] is %s on %s, matrices[%d] is %s on %s"
                    % (ref.dtype, dev0, e, M.dtype, dev)
                )
            for axis, v in enumerate((a, b)):
                n = int(M.shape[axis])
                if v in sizes and sizes[v][0] != n:
                    raise ValueError(
                        "matrices[%d] (edge %r) has shape %s: axis %d gives node %d size %d, but %s gives %d"
                        % (e, (a, b), tuple(M.shape), axis, v, n, sizes[v][1], sizes[v][0])
                    )
                sizes.setdefault(v, (n, "matrices[%d] axis %d" % (e, axis)))
            check_finite(nx, M, "matrices[%d] (edge %r)" % (e, (a, b)))
        if shape is None:
            k = max(sizes) + 1
            missing = [v for v in range(k) if v not in sizes]
            if missing:
                raise ValueError(
                    "node(s) %s have no edge: pass shape=(n_0, ..., n_%d) to give their sizes" % (missing, k - 1)
                )
            shape = tuple(sizes[v][0] for v in range(k))
        check_k(len(shape), "the number of nodes k")
        self.free = check_free(free, len(shape))
        self.shape = shape
        self.edges = edges
        self.matrices = matrices
        self.nx = nx
        self.type_as = ref
        detected = classify_graph(len(shape), edges)
        if graph_kind is not None:
            self._check_kind(graph_kind, detected)
        self.graph_kind = graph_kind if graph_kind is not None else detected
        self._detected = detected

    def _check_kind(self, kind, detected):
        k = self.k
        if kind == "tree":
            if detected not in ("chain", "star", "tree", "forest"):
                n_comp, cyc = _components(k, self.edges)
                raise ValueError(
                    "graph='tree' but the edges contain a cycle (closed by edge %r); use graph=edge list "
                    "or 'circle' for graphs with cycles" % (self.edges[cyc],)
                )
        elif kind == "circle":
            if not _is_single_cycle(k, self.edges):
                raise ValueError("graph_kind='circle' but the edges are not one cycle through all %d nodes" % k)
        elif kind in ("chain", "star", "complete"):
            if kind == "complete" and len(self.edges) != k * (k - 1) // 2:
                raise ValueError(
                    "graph_kind='complete' needs all %d pairs of nodes, got %d edges"
                    % (k * (k - 1) // 2, len(self.edges))
                )
            if kind == "chain" and not (detected == "chain" or (k == 2)):
                raise ValueError("graph_kind='chain' but the edges are not a path through all %d nodes" % k)
            if kind == "star" and (detected not in ("star", "chain") or max(self._degrees()) != k - 1):
                raise ValueError("graph_kind='star' but no node is joined to all the others by the only edges")
        elif kind != "graph":
            raise ValueError("graph_kind must be one of %s, got %r" % (GRAPHS, kind))

    def _degrees(self):
        deg = [0] * self.k
        for a, b in self.edges:
            deg[a] += 1
            deg[b] += 1
        return deg

    # ---- constructors --------------------------------------------------
    @classmethod
    def from_matrices(
        cls,
        matrices: Sequence[Array],
        graph: Union[str, Edges] = "chain",
        edges: Optional[Edges] = None,
        center: int = 0,
        shape: Optional[Sequence[int]] = None,
        free: Sequence[int] = (),
    ) -> PairwiseCost:
        """Build from one matrix per edge of a named graph.

        ``k`` follows from the number of matrices ``m``: ``m + 1`` for
        ``'chain'`` and ``'star'``, ``m`` for ``'circle'``, the ``k`` with
        ``k(k-1)/2 = m`` for ``'complete'``; for ``'tree'`` or an edge list,
        from the edges (or ``shape``).

        Parameters
        ----------
        matrices : list of arrays
            One cost matrix per edge, in the order of :func:`graph_edges`:
            ``matrices[e]`` of shape ``(n_a, n_b)`` for the e-th edge ``(a, b)``.
        graph : str or list of pairs, optional
            ``'chain'`` (default), ``'circle'``, ``'star'``, ``'complete'``,
            ``'tree'`` (with ``edges``) or an edge list ``[(a, b), ...]``.
        edges : list of pairs, optional
            The edges of ``graph='tree'`` (acyclic). Ignored otherwise.
        center : int, optional
            The centre node of ``graph='star'`` (default 0). Ignored otherwise.
        shape : tuple of k ints, optional
            The sizes ``n_i``: needed only when a node has no edge.
        free : sequence of int, optional
            The free nodes (see the class).

        Returns
        -------
        cost : PairwiseCost
            The cost on the edges of ``graph``.
        """
        if not isinstance(matrices, (list, tuple)):
            raise TypeError("matrices must be a list of arrays, got %s" % describe(matrices))
        shape = check_shape(shape)
        m = len(matrices)
        if isinstance(graph, str) and graph in ("chain", "star"):
            k = m + 1
        elif isinstance(graph, str) and graph == "circle":
            k = m
        elif isinstance(graph, str) and graph == "complete":
            k = int(round((1 + np.sqrt(1 + 8 * m)) / 2))
            if k * (k - 1) // 2 != m:
                raise ValueError("graph='complete' needs k(k-1)/2 matrices (1, 3, 6, 10, ...), got %d" % m)
        else:
            k = None if shape is None else len(shape)
        if k is not None and k < 2:
            raise ValueError("graph=%r needs more matrices: got %d" % (graph, m))
        if graph == "circle" and k is not None and k < 3:
            raise ValueError("graph='circle' needs at least 3 matrices (k >= 3), got %d" % m)
        if k is None:
            E = graph_edges(graph, 0, center, edges)
        else:
            E = graph_edges(graph, k, center, edges)
        kind = graph if isinstance(graph, str) else None
        return cls(E, matrices, shape=shape, graph_kind=kind, free=free)

    @classmethod
    def chain(
        cls, matrices: Sequence[Array], shape: Optional[Sequence[int]] = None, free: Sequence[int] = ()
    ) -> PairwiseCost:
        r"""Build the chain ``0 - 1 - … - k-1``: :math:`C = \sum_t C_t[x_t, x_{t+1}]`.

        Parameters
        ----------
        matrices : list of k - 1 arrays
            ``matrices[t]`` of shape ``(n_t, n_{t+1})``, the cost of edge ``(t, t+1)``.
        shape : tuple of k ints, optional
            The sizes ``n_i``, to check those the matrices give.
        free : sequence of int, optional
            Nodes whose marginal is not prescribed (see the class).

        Returns
        -------
        cost : PairwiseCost
            The cost, ``graph_kind='chain'``.
        """
        return cls.from_matrices(matrices, "chain", shape=shape, free=free)

    @classmethod
    def circle(
        cls, matrices: Sequence[Array], shape: Optional[Sequence[int]] = None, free: Sequence[int] = ()
    ) -> PairwiseCost:
        r"""Build the cycle ``0 - 1 - … - k-1 - 0`` (k >= 3).

        Parameters
        ----------
        matrices : list of k arrays
            ``matrices[t]`` of shape ``(n_t, n_{t+1})`` for the edge
            ``(t, t+1)``; the last one, of shape ``(n_{k-1}, n_0)``, closes the cycle.
        shape : tuple of k ints, optional
            The sizes ``n_i``, to check those the matrices give.
        free : sequence of int, optional
            Nodes whose marginal is not prescribed (see the class).

        Returns
        -------
        cost : PairwiseCost
            The cost, ``graph_kind='circle'``.
        """
        return cls.from_matrices(matrices, "circle", shape=shape, free=free)

    @classmethod
    def star(
        cls, matrices: Sequence[Array], center: int = 0, shape: Optional[Sequence[int]] = None, free: Sequence[int] = ()
    ) -> PairwiseCost:
        r"""Build a star: every node joined to ``center`` only.

        ``free=[center]`` leaves the centre's marginal free: the plan's
        marginal there is the entropic barycenter of the other nodes on the
        centre's support.

        Parameters
        ----------
        matrices : list of k - 1 arrays
            ``matrices[t]`` joins ``center`` to the t-th other node (in
            increasing order), of shape ``(n_center, n_j)``.
        center : int, optional
            The centre node (default 0).
        shape : tuple of k ints, optional
            The sizes ``n_i``, to check those the matrices give.
        free : sequence of int, optional
            Nodes whose marginal is not prescribed (see the class).

        Returns
        -------
        cost : PairwiseCost
            The cost, ``graph_kind='star'``.
        """
        return cls.from_matrices(matrices, "star", center=center, shape=shape, free=free)

    @classmethod
    def tree(
        cls, edges: Edges, matrices: Sequence[Array], shape: Optional[Sequence[int]] = None, free: Sequence[int] = ()
    ) -> PairwiseCost:
        """Build a cost on any acyclic edge list (a forest is accepted: the plan factors over its trees).

        Parameters
        ----------
        edges : list of pairs (a, b)
            The edges, without cycle (``ValueError`` otherwise).
        matrices : list of arrays
            ``matrices[e]`` of shape ``(n_a, n_b)`` for ``edges[e] = (a, b)``.
        shape : tuple of k ints, optional
            The sizes ``n_i``: needed only when a node has no edge.
        free : sequence of int, optional
            Nodes whose marginal is not prescribed (see the class).

        Returns
        -------
        cost : PairwiseCost
            The cost, ``graph_kind='tree'``.
        """
        return cls(edges, matrices, shape=shape, graph_kind="tree", free=free)

    @classmethod
    def complete(
        cls, matrices: Sequence[Array], shape: Optional[Sequence[int]] = None, free: Sequence[int] = ()
    ) -> PairwiseCost:
        r"""Build the complete graph: a term for every pair ``i < j``.

        Parameters
        ----------
        matrices : list of k(k-1)/2 arrays
            One per pair ``(i, j)``, ``i < j``, in lexicographic order
            (``(0, 1), (0, 2), …, (1, 2), …``), of shape ``(n_i, n_j)``.
        shape : tuple of k ints, optional
            The sizes ``n_i``, to check those the matrices give.
        free : sequence of int, optional
            Nodes whose marginal is not prescribed (see the class).

        Returns
        -------
        cost : PairwiseCost
            The cost, ``graph_kind='complete'``.
        """
        return cls.from_matrices(matrices, "complete", shape=shape, free=free)

    @classmethod
    def from_point_clouds(
        cls,
        X_s: Sequence[Array],
        graph: Union[str, Edges] = "complete",
        metric: Metric = "sqeuclidean",
        center: int = 0,
        edges: Optional[Edges] = None,
        free: Sequence[int] = (),
    ) -> PairwiseCost:
        r"""Pairwise ground costs between point clouds on the edges of a graph.

        With point clouds :math:`X_i = (x_{i,1}, \dots, x_{i,n_i})` and a
        graph with edges :math:`E`, the cost is

        .. math::
            C[j_1, \dots, j_k] = \sum_{(a, b) \in E} c_{ab}(x_{a, j_a}, x_{b, j_b}),
            \qquad C_{ab}[p, q] = c_{ab}(x_{a,p}, x_{b,q}),

        one matrix :math:`C_{ab}` per edge (``metric``, e.g.
        :math:`c(x, y) = \|x - y\|^2`). ``graph='complete'`` sums over every
        pair :math:`a < b` (the cost of :func:`~ot_multimarginal.cost_tensor`);
        ``'chain'`` over :math:`(i, i+1)`, a path (e.g. a time series of
        clouds); ``'circle'`` adds :math:`(k-1, 0)`; ``'star'`` couples the
        ``center`` node :math:`c` to every other one,
        :math:`\sum_{j \ne c} c(x_c, x_j)` (a barycenter-type cost, with
        ``free=[center]`` the centre's marginal is the barycenter);
        ``'tree'`` uses the acyclic ``edges``.

        Parameters
        ----------
        X_s : list of k arrays of shape (n_i, d_i)
            Point clouds (NumPy or torch; differentiable on torch).
        graph : str or list of pairs
            ``'complete'`` (default: the same cost as
            :func:`~ot_multimarginal.cost_tensor`), ``'chain'``, ``'circle'``,
            ``'star'`` (with ``center``), ``'tree'`` (with ``edges``) or an
            edge list.
        metric : str, callable or list, optional
            A metric name of :func:`ot.dist` (``'sqeuclidean'``: no 1/2, as in
            :func:`ot.dist`), a callable ``metric(X_a, X_b)`` returning the
            ``(n_a, n_b)`` matrix, or a list of those, one per edge (in the
            order of :func:`graph_edges`).
        center : int, optional
            The centre node of ``graph='star'`` (default 0): the edges are
            :math:`(c, j)` for every :math:`j \ne c`, in increasing
            :math:`j`. Ignored by the other graphs.
        edges : list of pairs (a, b), optional
            The edges of ``graph='tree'`` (node indices in ``[0, k)``, no
            cycle; each edge's matrix is :math:`c(x_a, x_b)`, rows indexed
            by node ``a``). Ignored by the other names; an edge list can
            also be passed as ``graph`` itself (any graph, cycles allowed).
        free : sequence of int, optional
            Nodes whose marginal is not prescribed (see the class), e.g.
            ``graph='star', center=0, free=[0]`` with ``X_s[0]`` the support
            of a barycenter.

        Returns
        -------
        cost : PairwiseCost
            One matrix per edge, in the backend, dtype and device of ``X_s``
            (differentiable in ``X_s`` on torch); the tensor is never formed.

        See Also
        --------
        ot_multimarginal.empirical_cost : the same from the point-cloud calls' ``graph=``.
        ot_multimarginal.cost_tensor : the dense cost of all pairs.

        Examples
        --------
        >>> import numpy as np
        >>> from ot_multimarginal import PairwiseCost
        >>> X_s = [np.random.RandomState(i).randn(5, 2) for i in range(4)]
        >>> C = PairwiseCost.from_point_clouds(X_s, graph='star', center=0, free=[0])
        >>> C.edges, C.free
        ([(0, 1), (0, 2), (0, 3)], (0,))
        """
        from .pointcloud import PointCloudCost

        nx, X_s = check_point_clouds(X_s)
        return PointCloudCost(len(X_s), graph, metric, center=center, edges=edges).pairwise_cost(X_s, free=free)

    # ---- properties ----------------------------------------------------
    @property
    def k(self):
        """Number of marginals (nodes)."""
        return len(self.shape)

    @property
    def is_tree(self):
        """True when the graph has no cycle (tree, chain, star or forest)."""
        return self._detected in ("chain", "star", "tree", "forest")

    @property
    def is_cycle(self):
        """True when the graph is a single cycle through all nodes."""
        return self._detected == "circle"

    @property
    def n_components(self):
        """Number of connected components of the graph (the plan is the product of theirs)."""
        return _components(self.k, self.edges)[0]

    def __repr__(self):
        extra = ", free=%s" % (self.free,) if self.free else ""
        return "PairwiseCost(graph=%r, shape=%s, %d edges, %s%s)" % (
            self.graph_kind,
            self.shape,
            len(self.edges),
            self.type_as.dtype,
            extra,
        )

    # ---- what the solvers use ------------------------------------------
    def engine_kind(self) -> str:
        """Name the engine that :meth:`make_engine` builds by default.

        Returns
        -------
        kind : {'tree', 'cycle', 'contraction'}
            ``'tree'`` for a graph without cycle (message passing),
            ``'cycle'`` for a single cycle through all nodes (transfer
            matrices), ``'contraction'`` for any other graph (variable
            elimination); see the module's table.
        """
        if self.is_tree:
            return "tree"
        if self.is_cycle:
            return "cycle"
        return "contraction"

    def make_engine(self, reg: float, memory_budget: Optional[int] = None, engine: Optional[str] = None) -> Any:
        r"""Build the marginalisation engine of this cost at regularisation ``reg``.

        The solvers call it; use it directly to run a strategy of
        :mod:`ot_multimarginal.strategies` or to build a
        :class:`~ot_multimarginal.FactoredPlan` by hand.

        Parameters
        ----------
        reg : float
            Entropic regularisation :math:`\varepsilon > 0`.
        memory_budget : int, optional
            Bytes the engine's tables may take (default: half the available
            memory); ``MemoryError`` before allocating beyond it.
        engine : {None, 'tree', 'cycle', 'contraction'}, optional
            ``None`` (default): :meth:`engine_kind`. Otherwise force one:
            ``'tree'`` (acyclic graphs only), ``'cycle'`` (single cycles only)
            or ``'contraction'`` (any graph).

        Returns
        -------
        engine : TreeEngine, CycleEngine or ContractionEngine
            The engine (:mod:`ot_multimarginal.marginals`), in the backend,
            dtype and device of the matrices.
        """
        from ..marginals.contraction import ContractionEngine
        from ..marginals.cycle import CycleEngine
        from ..marginals.tree import TreeEngine

        reg = check_reg(reg)
        kind = self.engine_kind() if engine is None else engine
        classes = {"tree": TreeEngine, "cycle": CycleEngine, "contraction": ContractionEngine}
        if kind not in classes:
            raise ValueError("engine must be None, 'tree', 'cycle' or 'contraction', got %r" % (kind,))
        return classes[kind](self.shape, self.edges, self.matrices, reg, self.nx, memory_budget=memory_budget)

    def to_dense(self, memory_budget: Optional[int] = None) -> Array:
        r"""Form the full cost tensor :math:`C[x_1, \dots, x_k] = \sum_{(a, b)} C_{ab}[x_a, x_b]`.

        Parameters
        ----------
        memory_budget : int, optional
            Bytes the tensor (and one temporary of its size) may take
            (default: half the available memory).

        Returns
        -------
        C : array-like of shape (n_0, ..., n_{k-1})
            The dense cost, in the backend, dtype and device of the matrices.

        Raises
        ------
        MemoryError
            Before allocating, when the tensor exceeds ``memory_budget``.
        """
        nx = self.nx
        check_dense_size(
            self.shape, nx.bitsize(self.type_as) // 8, 2, memory_budget, "the dense cost tensor", nx, self.type_as
        )
        k = self.k
        C = nx.zeros(self.shape, type_as=self.type_as)
        for (a, b), M in zip(self.edges, self.matrices):
            sh = [1] * k
            sh[a], sh[b] = self.shape[a], self.shape[b]
            C = C + nx.reshape(M if a < b else M.T, tuple(sh))
        return C

    def cost_at(self, idx: Any) -> Array:
        r"""Evaluate the cost at index tuples, :math:`C[I] = \sum_{(a, b)} C_{ab}[I_a, I_b]`.

        Parameters
        ----------
        idx : int array of shape (m, k) or (k,)
            Index tuples (NumPy array or list; entries in ``[0, n_j)``).

        Returns
        -------
        values : array-like of shape (m,)
            The cost of each tuple, in the backend, dtype and device of the
            matrices (differentiable in them on torch).
        """
        nx = self.nx
        idx, _ = check_index_tuples(idx, self.shape)
        from ..marginals._pairwise import index_array

        total = None
        for (a, b), M in zip(self.edges, self.matrices):
            v = M[index_array(nx, idx[:, a], M), index_array(nx, idx[:, b], M)]
            total = v if total is None else total + v
        return total
