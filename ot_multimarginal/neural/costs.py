# -*- coding: utf-8 -*-
r"""The cost of a mini-batch: pairwise costs on a graph, or a callable on k-tuples.

Both kinds answer the two questions the estimators ask of a batch of ``b``
points per marginal (``X_s[i]`` of shape ``(b, d_i)``):

:meth:`engine`
    the marginalisation engine (:mod:`ot_multimarginal.marginals`) of the
    batch's Gibbs tensor over all :math:`b^k` tuples: for a pairwise cost
    the tree, cycle or contraction engine of the ``b × b`` edge matrices
    (:meth:`ot_multimarginal.PairwiseCost.make_engine`; no :math:`b^k`
    tensor), for a callable the dense engine of the :math:`b^k` cost tensor
    (only when it fits);
:meth:`at_tuples`
    the cost of ``m`` aligned tuples (row ``r`` of every cloud), ``(m,)``.

A :class:`GraphCost` keeps one metric per edge, as
:meth:`~ot_multimarginal.PairwiseCost.from_point_clouds` does: a metric name
of :func:`ot.dist` or a callable ``metric(X_a, X_b)`` returning the
``(n_a, n_b)`` matrix. Callables may close over parameters that change
during training (e.g. the matrices :math:`A_{ij}` of a Gromov-Wasserstein
cost): the edge matrices are recomputed on every call and differentiate
through them on torch.
"""
# License: MIT License

import numpy as np

from ..costs.dense import pairwise_cost_matrix
from ..costs.graph import PairwiseCost, _check_edge_list, graph_edges

__all__ = ["GraphCost", "TupleCost", "make_cost", "edge_matrix", "rowwise_metric"]


def edge_matrix(X, Y, metric, name="edge"):
    """The ``(n_X, n_Y)`` cost matrix of one edge: the values of :func:`ot.dist`.

    ``'sqeuclidean'`` (the default of the package) is computed here as
    ``‖x‖² + ‖y‖² − 2⟨x, y⟩`` clamped at zero, exactly :func:`ot.dist`'s
    formula, without its per-call overhead (it matters at small batches);
    other names and callables go through
    :func:`~ot_multimarginal.costs.dense.pairwise_cost_matrix`.
    """
    if _fast_sqeuclidean(metric, X, Y):
        return _sqeuclidean(X, Y, (X * X).sum(1), (Y * Y).sum(1))
    from ot.backend import get_backend

    return pairwise_cost_matrix(get_backend(X, Y), X, Y, metric, name)


def _fast_sqeuclidean(metric, X, Y):
    return isinstance(metric, str) and metric == "sqeuclidean" and hasattr(X, "matmul") and X.shape[1] == Y.shape[1]


def _sqeuclidean(X, Y, sqX, sqY):
    """``max(‖x‖² + ‖y‖² − 2⟨x, y⟩, 0)`` from the squared norms: one ``addmm`` and a clamp (torch)."""
    import torch

    return torch.clamp(torch.addmm(sqX[:, None] + sqY[None, :], X, Y.T, alpha=-2.0), min=0.0)


def rowwise_metric(X, Y, metric):
    """``c(X[r], Y[r])`` for every row ``r``: shape ``(m,)`` (the aligned tuples' edge costs)."""
    if isinstance(metric, str):
        if X.shape[1] != Y.shape[1]:
            raise ValueError(
                "metric %r needs point clouds of the same dimension, got %d and %d; pass a callable metric"
                % (metric, X.shape[1], Y.shape[1])
            )
        D = X - Y
        if metric == "sqeuclidean":
            return (D * D).sum(1)
        if metric == "euclidean":
            return (D * D).sum(1).sqrt()
        if metric == "cityblock":
            return D.abs().sum(1)
    # general case: the diagonal of the matrix, in blocks of 1024 rows
    out = []
    for s in range(0, X.shape[0], 1024):
        M = edge_matrix(X[s:s + 1024], Y[s:s + 1024], metric)
        out.append(M.diagonal())
    return out[0] if len(out) == 1 else _cat(out)


def _cat(parts):
    import torch

    return torch.cat(parts)


class GraphCost:
    r"""Pairwise cost :math:`\sum_{(a,b)\in E} c_{ab}(x_a, x_b)` on the edges of a graph.

    Parameters
    ----------
    k : int
        Number of marginals.
    graph : str or list of pairs
        As in :meth:`~ot_multimarginal.PairwiseCost.from_point_clouds`.
    metric : str, callable or list
        One metric for all edges or a list, one per edge (order of
        :func:`~ot_multimarginal.costs.graph.graph_edges`). May be replaced
        between training steps (``cost.metrics[e] = ...``).
    center, edges
        For ``graph='star'`` / ``graph='tree'``.
    """

    pairwise = True

    def __init__(self, k, graph="complete", metric="sqeuclidean", center=0, edges=None):
        name = "graph" if not isinstance(graph, str) else "edges"
        self.edges = _check_edge_list(graph_edges(graph, k, center, edges), k, name)
        if not self.edges:
            raise ValueError("graph must have at least one edge, got none")
        if isinstance(metric, (list, tuple)):
            if len(metric) != len(self.edges):
                raise ValueError(
                    "metric must be one metric or a list of %d (one per edge), got %d" % (len(self.edges), len(metric))
                )
            self.metrics = list(metric)
        else:
            self.metrics = [metric] * len(self.edges)
        for e, m in enumerate(self.metrics):
            if not (isinstance(m, str) or callable(m)):
                raise TypeError("metric[%d] must be a metric name of ot.dist or a callable, got %r" % (e, m))
        self.k = int(k)
        self.graph = graph
        self.graph_kind = graph if isinstance(graph, str) else None
        self._template = {}

    def matrices(self, X_s):
        """The edge matrices ``c_ab(X_a, X_b)`` (differentiable on torch; squared norms computed once per node)."""
        sq = {}
        out = []
        for (a, b), m in zip(self.edges, self.metrics):
            if _fast_sqeuclidean(m, X_s[a], X_s[b]):
                for v in (a, b):
                    if v not in sq:
                        sq[v] = (X_s[v] * X_s[v]).sum(1)
                out.append(_sqeuclidean(X_s[a], X_s[b], sq[a], sq[b]))
            else:
                out.append(edge_matrix(X_s[a], X_s[b], m, "edge (%d, %d)" % (a, b)))
        return out

    def pairwise_cost(self, X_s):
        """The :class:`~ot_multimarginal.PairwiseCost` of the clouds ``X_s`` (validated; any sizes)."""
        return PairwiseCost(
            self.edges, self.matrices(X_s), shape=tuple(int(X.shape[0]) for X in X_s), graph_kind=self.graph_kind
        )

    def engine(self, X_s, reg):
        """The engine of the Gibbs tensor of ``X_s`` (all tuples), built without a validation pass.

        The first call for given sizes goes through
        :class:`~ot_multimarginal.PairwiseCost` (checks and engine choice);
        later calls rebind that engine to the new edge matrices (:meth:`PairwiseEngine.rebind
        <ot_multimarginal.marginals._pairwise.PairwiseEngine.rebind>`).
        """
        shape = tuple(int(X.shape[0]) for X in X_s)
        key = (shape, float(reg))
        tpl = self._template.get(key)
        if tpl is None:
            tpl = self.pairwise_cost(X_s).make_engine(reg)
            if len(self._template) >= 4:
                self._template.pop(next(iter(self._template)))
            self._template[key] = tpl
            return tpl
        return tpl.rebind(self.matrices(X_s))

    def at_tuples(self, X_s):
        """Cost of the aligned tuples ``(X_s[0][r], …, X_s[k-1][r])``, shape ``(m,)``."""
        total = None
        for (a, b), m in zip(self.edges, self.metrics):
            v = rowwise_metric(X_s[a], X_s[b], m)
            total = v if total is None else total + v
        return total

    def __repr__(self):
        return "GraphCost(k=%d, %d edges, graph=%r)" % (self.k, len(self.edges), self.graph)


class TupleCost:
    r"""A general cost :math:`c(x_1, \dots, x_k)` given by a callable on aligned tuples.

    ``cost(X_1, …, X_k)`` receives ``k`` arrays of ``m`` rows (row ``r`` of
    each is one tuple) and returns the ``m`` costs. The combinatorial
    estimator evaluates it on all :math:`b^k` tuples of a batch (the dense
    engine, log domain): only for small ``b`` and ``k``.
    """

    pairwise = False

    def __init__(self, k, cost, max_tuples=2**22):
        if not callable(cost):
            raise TypeError("cost must be a callable cost(X_1, ..., X_k) -> (m,), got %r" % (cost,))
        self.k = int(k)
        self.fn = cost
        self.max_tuples = int(max_tuples)

    def at_tuples(self, X_s):
        m = int(X_s[0].shape[0])
        out = self.fn(*X_s)
        if not hasattr(out, "shape") or tuple(out.shape) != (m,):
            raise ValueError(
                "the cost callable must return one value per tuple, shape (%d,), got %s"
                % (m, tuple(getattr(out, "shape", ())) if hasattr(out, "shape") else type(out).__name__)
            )
        return out

    def tensor(self, X_s):
        """The dense cost tensor of all tuples of the clouds ``X_s`` (shape ``(n_1, …, n_k)``)."""
        import torch

        shape = tuple(int(X.shape[0]) for X in X_s)
        total = int(np.prod(shape))
        if total > self.max_tuples:
            raise ValueError(
                "estimator='combinatorial' with a callable cost evaluates all %d tuples of a batch (more than %d): "
                "use estimator='aligned' or a smaller batch_size" % (total, self.max_tuples)
            )
        grids = torch.meshgrid(*[torch.arange(n, device=X_s[0].device) for n in shape], indexing="ij")
        flat = [X[gr.reshape(-1)] for X, gr in zip(X_s, grids)]
        return self.at_tuples(flat).reshape(shape)

    def engine(self, X_s, reg):
        from ot.backend import get_backend

        from ..marginals.dense import DenseEngine

        M = self.tensor(X_s)
        # log domain: the offset is only a constant taken out and added back (exact for any value); 0 spares
        # the host synchronisation of computing the tensor's minimum at every step on a GPU
        return DenseEngine(M, reg, get_backend(M), mode="log", memory_budget=None, cost_offset=0.0)

    def __repr__(self):
        return "TupleCost(k=%d, %r)" % (self.k, self.fn)


def make_cost(k, graph="complete", metric="sqeuclidean", cost=None, center=0, edges=None):
    """:class:`TupleCost` when ``cost`` (a callable on k-tuples) is given, else :class:`GraphCost`."""
    if cost is not None:
        if isinstance(cost, (GraphCost, TupleCost)):
            return cost
        return TupleCost(k, cost)
    return GraphCost(k, graph, metric, center=center, edges=edges)
