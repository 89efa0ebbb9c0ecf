# -*- coding: utf-8 -*-
r"""The cost of point clouds: pairwise metrics on a graph, or a callable on k-tuples.

:class:`PointCloudCost` is the one place where the package turns point
clouds into pairwise cost matrices: :meth:`PairwiseCost.from_point_clouds
<ot_multimarginal.PairwiseCost.from_point_clouds>` (the point-cloud calls
``empirical_*``), :func:`~ot_multimarginal.cost_tensor` and the neural
estimators (mini-batches, the exact value on the data) all use it. With
point clouds :math:`X_i` and edges :math:`E`,

.. math::
    C[j_1, \dots, j_k] = \sum_{(a, b) \in E} c_{ab}(x_{a, j_a}, x_{b, j_b}).

**Float32 and translations.** :func:`ot.dist` computes ``'sqeuclidean'`` and
``'euclidean'`` as :math:`\|x\|^2 + \|y\|^2 - 2\langle x, y\rangle`, which
cancels when the clouds sit far from the origin (clouds translated by
:math:`10^4` in float32: :math:`\|x\|^2 \approx 10^8`, rounding error
:math:`\approx 10`). The clouds are therefore first centred by one
reference point shared by all the clouds of an edge group
(:func:`reference_point`, the mean of the clouds' means): a common
translation, which changes no translation-invariant metric and removes the
cancellation. The other built-in metrics of :func:`ot.dist` are computed
from coordinate differences (``'cityblock'``, ``'minkowski'``, SciPy's
``cdist``) or are not translation-invariant (``'cosine'`` and
``'correlation'``, whose :math:`1 - \cos` cancels for nearly parallel
vectors: computed in float64 from float32 clouds).

:class:`TupleCost` is a general cost on k-tuples given by a callable (its
Gibbs tensor over a batch is dense: small batches only).
"""
# License: MIT License

from __future__ import annotations

import numpy as np

from .._validation import check_metric
from .dense import pairwise_cost_matrix
from .graph import PairwiseCost, _check_edge_list, graph_edges

__all__ = ["PointCloudCost", "TupleCost", "make_cost", "reference_point", "TRANSLATION_INVARIANT"]

TRANSLATION_INVARIANT = frozenset(("sqeuclidean", "euclidean", "cityblock", "minkowski", "chebyshev", "seuclidean"))
"""Metric names of :func:`ot.dist` that a common translation of the clouds does not change."""

# ot.dist computes these from norms and inner products: centred first (module docstring)
_EXPANDED = frozenset(("sqeuclidean", "euclidean"))
# 1 - cos cancels when the vectors are nearly parallel (far from the origin): computed in float64
_ANGULAR = frozenset(("cosine", "correlation"))


def reference_point(X_s):
    """The mean of the clouds' means (no gradient): the shared centre of :class:`PointCloudCost`.

    Parameters
    ----------
    X_s : list of arrays of shape (n_i, d)
        Clouds of one dimension (NumPy or torch).

    Returns
    -------
    r : array of shape (d,)
        In the clouds' backend and dtype, detached.
    """
    from ot.backend import get_backend

    nx = get_backend(*X_s)
    r = None
    for X in X_s:
        m = nx.mean(nx.detach(X) if str(nx) != "numpy" else X, axis=0)
        r = m if r is None else r + m
    return r / len(X_s)


def _torch_sqeuclidean(X, Y, sqX, sqY):
    """``max(‖x‖² + ‖y‖² − 2⟨x, y⟩, 0)`` of centred clouds: one ``addmm`` and a clamp (torch)."""
    import torch

    return torch.clamp(torch.addmm(sqX[:, None] + sqY[None, :], X, Y.T, alpha=-2.0), min=0.0)


def _as_float64(nx, X, like=None):
    """``X`` in float64, or back in the dtype of ``like`` (differentiable on torch)."""
    if like is None:
        return X.astype(np.float64) if isinstance(X, np.ndarray) else X.double()
    return X.astype(like.dtype) if isinstance(X, np.ndarray) else X.to(like.dtype)


class PointCloudCost:
    r"""Pairwise cost :math:`\sum_{(a,b)\in E} c_{ab}(x_a, x_b)` of point clouds on the edges of a graph.

    One metric per edge: a metric name of :func:`ot.dist` or a callable
    ``metric(X_a, X_b)`` returning the ``(n_a, n_b)`` matrix. Callables may
    close over parameters that change between calls (e.g. the matrices
    :math:`A_{ij}` of a Gromov-Wasserstein cost): the edge matrices are
    recomputed on every call and differentiate through them on torch.

    Parameters
    ----------
    k : int
        Number of clouds (nodes).
    graph : str or list of pairs, optional
        ``'complete'`` (default), ``'chain'``, ``'circle'``, ``'star'`` (with
        ``center``), ``'tree'`` (with ``edges``) or an edge list
        (:func:`~ot_multimarginal.costs.graph.graph_edges`).
    metric : str, callable or list, optional
        One metric for all edges (default ``'sqeuclidean'``, no 1/2, as
        :func:`ot.dist`) or a list, one per edge in the order of
        :func:`~ot_multimarginal.costs.graph.graph_edges`. The list
        ``metrics`` may be changed between calls.
    center : int, optional
        The centre node of ``graph='star'``.
    edges : list of pairs, optional
        The edges of ``graph='tree'``.

    Attributes
    ----------
    edges : list of tuple of int
        The validated edges.
    metrics : list
        One metric per edge.
    graph_kind : str or None
        The graph's name when given by name.
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

    @property
    def translation_invariant(self):
        """True when every edge's metric is a name in :data:`TRANSLATION_INVARIANT` (callables: unknown, False)."""
        return all(isinstance(m, str) and m in TRANSLATION_INVARIANT for m in self.metrics)

    def _centred(self, X_s):
        """The clouds of the edges with an expanded metric, centred by one reference point per dimension."""
        groups = {}
        for (a, b), m in zip(self.edges, self.metrics):
            if isinstance(m, str) and m in _EXPANDED and X_s[a].shape[1] == X_s[b].shape[1]:
                g = groups.setdefault(int(X_s[a].shape[1]), [])
                g.extend(v for v in (a, b) if v not in g)
        out = list(X_s)
        for nodes in groups.values():
            r = reference_point([X_s[v] for v in nodes])
            for v in nodes:
                out[v] = X_s[v] - r
        return out

    def matrices(self, X_s):
        """The edge matrices :math:`c_{ab}(X_a, X_b)`, in the backend, dtype and device of the clouds.

        Differentiable in the clouds on torch. ``'sqeuclidean'`` and
        ``'euclidean'`` are computed on clouds centred by a shared reference
        point (module docstring); on torch ``'sqeuclidean'`` takes one
        ``addmm`` per edge with the squared norms computed once per node.

        Parameters
        ----------
        X_s : list of k arrays of shape (n_i, d_i)
            The clouds (not validated here: see :meth:`pairwise_cost`).

        Returns
        -------
        matrices : list of arrays
            ``matrices[e]`` of shape ``(n_a, n_b)`` for ``edges[e] = (a, b)``.
        """
        from ot.backend import get_backend

        C_s = self._centred(X_s)
        is_torch = hasattr(X_s[0], "matmul") and not isinstance(X_s[0], np.ndarray)
        nx = None
        sq = {}
        out = []
        for (a, b), m in zip(self.edges, self.metrics):
            name = "edge (%d, %d)" % (a, b)
            if is_torch and isinstance(m, str) and m == "sqeuclidean" and C_s[a].shape[1] == C_s[b].shape[1]:
                for v in (a, b):
                    if v not in sq:
                        sq[v] = (C_s[v] * C_s[v]).sum(1)
                out.append(_torch_sqeuclidean(C_s[a], C_s[b], sq[a], sq[b]))
                continue
            if nx is None:
                nx = get_backend(*X_s)
            if isinstance(m, str) and m in _ANGULAR and nx.bitsize(C_s[a]) < 64:
                M = pairwise_cost_matrix(nx, _as_float64(nx, C_s[a]), _as_float64(nx, C_s[b]), m, name)
                out.append(_as_float64(nx, M, like=C_s[a]))
            else:
                out.append(pairwise_cost_matrix(nx, C_s[a], C_s[b], m, name))
        return out

    def pairwise_cost(self, X_s, free=()):
        """The :class:`~ot_multimarginal.PairwiseCost` of the clouds ``X_s``.

        Parameters
        ----------
        X_s : list of k arrays of shape (n_i, d_i)
            The clouds (NumPy or torch).
        free : sequence of int, optional
            Nodes whose marginal is not prescribed.

        Returns
        -------
        cost : PairwiseCost
            Validated; one matrix per edge.
        """
        if len(X_s) != self.k:
            raise ValueError("X_s must hold %d clouds (one per node), got %d" % (self.k, len(X_s)))
        from ot.backend import get_backend

        nx = get_backend(*X_s)
        for e, m in enumerate(self.metrics):
            check_metric(m, nx, "metric for edge %r" % (self.edges[e],))
        return PairwiseCost(
            self.edges,
            self.matrices(X_s),
            shape=tuple(int(X.shape[0]) for X in X_s),
            graph_kind=self.graph_kind,
            free=free,
        )

    def engine(self, X_s, reg):
        """The engine of the Gibbs tensor of ``X_s`` (all tuples), built without a validation pass after the first.

        The first call for given sizes goes through
        :class:`~ot_multimarginal.PairwiseCost` (checks and engine choice);
        later calls rebind that engine to the new edge matrices
        (:meth:`PairwiseEngine.rebind <ot_multimarginal.marginals._pairwise.PairwiseEngine.rebind>`).
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
        """Cost of the aligned tuples ``(X_s[0][r], …, X_s[k-1][r])``, shape ``(m,)``.

        Built-in metrics from the coordinate differences (no cancellation);
        callables and other names through the diagonal of their matrix, in
        blocks of 1024 rows.
        """
        total = None
        for (a, b), m in zip(self.edges, self.metrics):
            v = _rowwise(X_s[a], X_s[b], m)
            total = v if total is None else total + v
        return total

    def __repr__(self):
        return "PointCloudCost(k=%d, %d edges, graph=%r)" % (self.k, len(self.edges), self.graph)


def _rowwise(X, Y, metric):
    """``c(X[r], Y[r])`` for every row ``r``: shape ``(m,)``."""
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
            return (D * D).sum(1) ** 0.5
        if metric == "cityblock":
            return abs(D).sum(1)
    from ot.backend import get_backend

    nx = get_backend(X, Y)
    out = []
    for s in range(0, X.shape[0], 1024):
        pair = PointCloudCost(2, "chain", metric)
        M = pair.matrices([X[s : s + 1024], Y[s : s + 1024]])[0]
        out.append(nx.diag(M) if str(nx) == "numpy" else M.diagonal())
    return out[0] if len(out) == 1 else nx.concatenate(out)


class TupleCost:
    r"""A general cost :math:`c(x_1, \dots, x_k)` given by a callable on aligned tuples (torch).

    ``cost(X_1, …, X_k)`` receives ``k`` arrays of ``m`` rows (row ``r`` of
    each is one tuple) and returns the ``m`` costs. The combinatorial
    estimator evaluates it on all :math:`b^k` tuples of a batch (the dense
    engine, log domain): only for small ``b`` and ``k``.
    """

    pairwise = False
    translation_invariant = False

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
    """:class:`TupleCost` when ``cost`` (a callable on k-tuples) is given, else :class:`PointCloudCost`."""
    if cost is not None:
        if isinstance(cost, (PointCloudCost, TupleCost)):
            return cost
        return TupleCost(k, cost)
    return PointCloudCost(k, graph, metric, center=center, edges=edges)
