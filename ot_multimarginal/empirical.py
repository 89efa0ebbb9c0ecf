# -*- coding: utf-8 -*-
"""Point-cloud entry points: build the cost from samples, then solve."""
# License: MIT License

from __future__ import annotations

import inspect
from typing import Any, Optional, Sequence, Tuple, Union

from ._deprecation import legacy_graph_metric_order
from ._typing import Array, Cost, Edges, LogDict, Metric, Nodes, Weights
from ._validation import check_cloud_weights, check_memory_budget, check_solver_call
from .costs.dense import cost_tensor
from .sinkhorn import emot_sinkhorn, emot_sinkhorn2
from .strategies import STRATEGIES

__all__ = ["empirical_emot_sinkhorn", "empirical_emot_sinkhorn2", "empirical_cost"]


def empirical_cost(
    X_s: Sequence[Array],
    graph: Union[str, Edges, Any, None] = None,
    metric: Metric = "sqeuclidean",
    memory_budget: Optional[int] = None,
) -> Cost:
    r"""Build the cost of point clouds: a dense tensor, or a :class:`PairwiseCost` if ``graph`` is given.

    For clouds :math:`X_i = (x_{i,1}, \dots, x_{i,n_i})`, :math:`i = 1..k`,
    the cost of an index tuple is the ground cost summed over pairs of clouds,

    .. math::
        C[j_1, \dots, j_k] = \sum_{(a, b) \in E} c_{ab}(x_{a, j_a}, x_{b, j_b}),

    with :math:`E` all pairs :math:`a < b` (``graph=None`` or
    ``'complete'``) or the edges of ``graph``, and :math:`c_{ab}` given by
    ``metric`` (``'sqeuclidean'``: :math:`\|x - y\|^2`, no 1/2, as
    :func:`ot.dist`). ``graph=None`` forms the tensor
    (:func:`cost_tensor`); any other ``graph`` keeps one matrix per edge
    (:meth:`PairwiseCost.from_point_clouds`), never the tensor.

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Point clouds (NumPy arrays or torch tensors, one library, one dtype
        and device); the dimensions :math:`d_i` may differ with a callable
        ``metric``.
    graph : None, str, list of pairs or PairwiseCost, optional
        ``None`` (default here: this call builds the cost itself): all pairs,
        as a dense tensor. ``'complete'``,
        ``'chain'``, ``'circle'``, ``'star'`` (centre node 0) or an edge list
        ``[(a, b), ...]`` (any graph, e.g. a tree): the same pairwise terms on
        that graph, as a :class:`PairwiseCost`. A :class:`PairwiseCost` is
        returned as it is (``X_s`` and ``metric`` are then not used). The
        name ``'tree'`` needs its edges: pass the edge list itself.
    metric : str, callable or list, optional
        Ground cost :math:`c_{ab}`: a metric name of :func:`ot.dist`
        (``'sqeuclidean'`` default), a callable ``metric(X_a, X_b)`` returning
        the ``(n_a, n_b)`` matrix, or a list of those, one per pair: per pair
        ``a < b`` in lexicographic order when ``graph=None``, per edge in the
        order of :func:`~ot_multimarginal.costs.graph.graph_edges` otherwise.
        (Before 0.1 ``metric`` came before ``graph``: a metric given in
        ``graph``'s place is still understood, with a ``DeprecationWarning``.)
    memory_budget : int, optional
        Bytes the dense tensor may take (default: half the available
        memory); ``MemoryError`` before allocating beyond it. Not used when
        ``graph`` is given (nothing dense is formed).

    Returns
    -------
    C : array-like of shape (n_1, ..., n_k), or PairwiseCost
        The dense cost tensor (``graph=None``) or the pairwise cost, in the
        backend, dtype and device of ``X_s`` and differentiable in ``X_s`` on
        torch; either is accepted as the cost ``M`` of :func:`emot_sinkhorn`.

    Raises
    ------
    MemoryError
        If the dense tensor exceeds ``memory_budget``.
    ValueError
        On clouds of inconsistent shapes, a graph name this call does not
        know, or an edge that refers to a missing cloud.

    See Also
    --------
    cost_tensor : the dense cost of all pairs.
    PairwiseCost.from_point_clouds : the pairwise cost on a graph, with
        ``center=`` and ``edges=``.

    Examples
    --------
    >>> import numpy as np
    >>> import ot_multimarginal as om
    >>> X_s = [np.random.RandomState(i).randn(4, 2) for i in range(3)]
    >>> om.empirical_cost(X_s).shape
    (4, 4, 4)
    >>> om.empirical_cost(X_s, graph='chain').edges  # terms c(x_0, x_1) + c(x_1, x_2)
    [(0, 1), (1, 2)]
    >>> C = om.empirical_cost(X_s, graph='complete')  # all pairs, never the tensor
    >>> bool(np.allclose(C.to_dense(), om.empirical_cost(X_s)))
    True
    """
    graph, metric = legacy_graph_metric_order("empirical_cost", graph, metric, None)
    memory_budget = check_memory_budget(memory_budget)
    if graph is None:
        return cost_tensor(X_s, metric=metric, memory_budget=memory_budget)
    from .costs.graph import PairwiseCost

    if isinstance(graph, PairwiseCost):
        return graph
    return PairwiseCost.from_point_clouds(X_s, graph=graph, metric=metric)


def empirical_emot_sinkhorn(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges, Any, None] = "complete",
    metric: Metric = "sqeuclidean",
    memory_budget: Optional[int] = None,
    free: Nodes = None,
    **kwargs: Any,
) -> Any:
    r"""EMOT plan between point clouds (cost: ``metric`` summed over pairs).

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Samples of the k measures.
    reg : float
        Entropic regularisation ε > 0.
    a_s : list of k weight vectors, optional
        Sample weights (uniform by default).
    graph : None, str or edge list, optional
        The pairs of clouds whose costs are summed: ``'complete'`` (default:
        all pairs, solved by the structured engine without forming the
        tensor), ``'chain'``, ``'circle'``, ``'star'``, an edge list or a
        :class:`PairwiseCost` (see :func:`empirical_cost`); the plan is then a
        :class:`FactoredPlan`. ``None``: all pairs as a dense tensor (the plan
        a dense array).
    metric : str, callable or list, optional
        Pairwise ground cost (see :func:`cost_tensor`), ``'sqeuclidean'`` by
        default. (Before 0.1 ``metric`` came before ``graph``: a metric given
        in ``graph``'s place is still understood, with a ``DeprecationWarning``.)
    memory_budget : int, optional
        Bytes the dense tensors may take (see :func:`emot_sinkhorn`).
    free : sequence of int, optional
        Clouds whose marginal is not prescribed: their weights ``a_s[i]``
        are only the reference measure of the KL term, and the plan's i-th
        marginal is free (e.g. ``graph='star', free=[0]`` with ``X_s[0]`` a
        fixed support: the entropic barycenter of the other clouds on it).
        See the Notes of :func:`emot_sinkhorn`. ``None``: the ``free`` of a
        :class:`PairwiseCost` given as ``graph``, else none.
    **kwargs
        Passed to :func:`emot_sinkhorn` (``method``, ``numItermax``,
        ``stopThr``, ``verbose``, ``log``, ``warn``, ``warmstart``, ``grad``,
        ``mode``, ``blas_threads``, ``reg_m`` (unbalanced EMOT: KL penalties
        on the marginals) and the options of the method, e.g.
        ``relaxation``); a mistyped name raises a ``TypeError`` that lists
        the valid ones.

    Returns
    -------
    P : FactoredPlan, or array-like of shape (n_1, ..., n_k)
        The plan of :func:`emot_sinkhorn` on the cost of the clouds
        (:func:`empirical_cost`): a :class:`FactoredPlan` (default), a dense
        tensor for ``graph=None``; backend, dtype and device of ``X_s``.
    log : dict
        Only if ``log=True``: the solve's details (see :func:`emot_sinkhorn`).

    See Also
    --------
    empirical_emot_sinkhorn2 : the value, differentiable in the points.
    empirical_cost : the cost these calls build.
    """
    graph, metric = legacy_graph_metric_order("empirical_emot_sinkhorn", graph, metric, "complete")
    _check_kwargs("empirical_emot_sinkhorn", emot_sinkhorn, X_s, reg, kwargs)
    check_cloud_weights(a_s, X_s)
    C = empirical_cost(X_s, graph, metric, memory_budget)
    return emot_sinkhorn(a_s, C, reg, memory_budget=memory_budget, free=free, **kwargs)


def empirical_emot_sinkhorn2(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges, Any, None] = "complete",
    metric: Metric = "sqeuclidean",
    memory_budget: Optional[int] = None,
    free: Nodes = None,
    **kwargs: Any,
) -> Union[Array, Tuple[Array, LogDict]]:
    r"""EMOT value between point clouds; differentiable in ``X_s`` and ``a_s`` on torch.

    For clouds :math:`X_i = (x_{i,1}, \dots, x_{i,n_i})` with weights
    :math:`a_i`, returns

    .. math::
        \mathrm{EMOT}_\varepsilon(X_1, \dots, X_k) = \min_{P \in \Pi(a_1, \dots, a_k)}
        \sum_{j_1, \dots, j_k} P[j_1, \dots, j_k]\, C[j_1, \dots, j_k]
        + \varepsilon\, \mathrm{KL}(P \,\|\, a_1\otimes\cdots\otimes a_k),
        \qquad C[j_1, \dots, j_k] = \sum_{(a, b)} c(x_{a, j_a}, x_{b, j_b}),

    the sum running over all pairs :math:`a < b` (``graph=None`` or
    ``'complete'``) or over the edges of ``graph`` (see
    :meth:`PairwiseCost.from_point_clouds <ot_multimarginal.PairwiseCost.from_point_clouds>`),
    with :math:`c` = ``metric`` (``'sqeuclidean'``: :math:`\|x - y\|^2`,
    no 1/2, as :func:`ot.dist`). With torch inputs the value is
    differentiable: the gradient in the points flows through the cost
    (envelope theorem: :math:`\partial/\partial C = P`), in the weights it
    is the centred dual potentials.

    .. note:: **Value convention.** This is the *regularised* value,
        entropic term included, as :func:`emot_sinkhorn2` returns it; POT's
        :func:`ot.sinkhorn2` returns the linear part :math:`\langle C, P\rangle`
        only. POT's number is ``log['value_linear']`` (pass ``log=True``).

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Samples of the k measures (NumPy arrays or torch tensors, one library).
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`.
    a_s : list of k weight vectors, optional
        Sample weights :math:`a_i` (uniform by default; ``None`` entries too).
    graph : None, str, list of pairs or PairwiseCost, optional
        The pairs of clouds whose costs are summed: ``'complete'`` (default:
        all pairs, by the structured engine, never the tensor: the same value
        as the dense tensor, about 10× faster and :math:`O(k n^2)` memory at
        k = 3), or the pairs of another graph (see :func:`empirical_cost`).
        ``None``: all pairs as a dense tensor.
    metric : str, callable or list, optional
        Ground cost :math:`c` (see :func:`empirical_cost`), ``'sqeuclidean'``
        by default. (Before 0.1 ``metric`` came before ``graph``: a metric
        given in ``graph``'s place is still understood, with a ``DeprecationWarning``.)
    memory_budget : int, optional
        Bytes the dense tensors may take (see :func:`emot_sinkhorn`).
    free : sequence of int, optional
        Clouds whose marginal is not prescribed (see
        :func:`empirical_emot_sinkhorn`); the value is then that of the
        problem with free marginals.
    **kwargs
        Passed to :func:`emot_sinkhorn2` (``method``, ``numItermax``,
        ``stopThr``, ``log``, ``grad``, ``relaxation``, ``reg_m`` for
        unbalanced EMOT, ...); a mistyped name
        raises a ``TypeError`` that lists the valid ones.

    Returns
    -------
    value : backend scalar
        The value of :func:`emot_sinkhorn2` on the cost of the clouds, in
        the backend, dtype and device of ``X_s``.
    log : dict
        Only if ``log=True`` (see :func:`emot_sinkhorn2`).

    See Also
    --------
    empirical_emot_sinkhorn : the plan.
    empirical_cost : the cost this call builds.

    Examples
    --------
    >>> import numpy as np
    >>> import ot_multimarginal as om
    >>> rng = np.random.RandomState(0)
    >>> X_s = [rng.randn(n, 2) for n in (5, 6, 7)]
    >>> v, log = om.empirical_emot_sinkhorn2(X_s, 0.5, log=True)
    >>> bool(abs(v - om.emot_sinkhorn2(None, om.cost_tensor(X_s), 0.5)) < 1e-8)  # complete graph = dense tensor
    True
    >>> bool(log['value_linear'] > 0)  # <C, P>: what ot.sinkhorn2 would report
    True
    """
    graph, metric = legacy_graph_metric_order("empirical_emot_sinkhorn2", graph, metric, "complete")
    _check_kwargs("empirical_emot_sinkhorn2", emot_sinkhorn2, X_s, reg, kwargs)
    check_cloud_weights(a_s, X_s)
    C = empirical_cost(X_s, graph, metric, memory_budget)
    return emot_sinkhorn2(a_s, C, reg, memory_budget=memory_budget, free=free, **kwargs)


def _check_kwargs(caller, solver, X_s, reg, kwargs):
    """Mistyped keywords are reported by the point-cloud call itself, with the valid names."""
    own = [p for p in inspect.signature(solver).parameters if p not in ("a_s", "M", "reg", "kwargs")]
    check_solver_call(
        caller,
        None,
        X_s,
        reg,
        kwargs.get("method", "sinkhorn_log"),
        STRATEGIES,
        {key: v for key, v in kwargs.items() if key not in own},
        own,
    )
