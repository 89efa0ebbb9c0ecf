# -*- coding: utf-8 -*-
"""Point-cloud entry points: build the cost from samples, then solve."""
# License: MIT License

import inspect

from ._validation import check_memory_budget, check_solver_call
from .costs.dense import cost_tensor
from .sinkhorn import emot_sinkhorn, emot_sinkhorn2
from .strategies import STRATEGIES

__all__ = ["empirical_emot_sinkhorn", "empirical_emot_sinkhorn2", "empirical_cost"]


def empirical_cost(X_s, metric="sqeuclidean", graph=None, memory_budget=None):
    """The cost of point clouds ``X_s``: a dense tensor, or a :class:`PairwiseCost` if ``graph`` is given.

    ``graph=None`` sums ``metric`` over all pairs into a dense tensor
    (:func:`cost_tensor`); ``graph='complete'``, ``'chain'``, ``'circle'``,
    ``'star'``, ``'tree'`` (with ``edges=``) or an edge list keeps the
    same pairwise terms on that graph without forming the tensor.
    """
    memory_budget = check_memory_budget(memory_budget)
    if graph is None:
        return cost_tensor(X_s, metric=metric, memory_budget=memory_budget)
    from .costs.graph import PairwiseCost

    if isinstance(graph, PairwiseCost):
        return graph
    return PairwiseCost.from_point_clouds(X_s, graph=graph, metric=metric)


def empirical_emot_sinkhorn(X_s, reg, a_s=None, metric="sqeuclidean", graph=None, memory_budget=None, free=None,
                            **kwargs):
    r"""EMOT plan between point clouds (cost: ``metric`` summed over pairs).

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Samples of the k measures.
    reg : float
        Entropic regularisation ε > 0.
    a_s : list of k weight vectors, optional
        Sample weights (uniform by default).
    metric : str, callable or list, optional
        Pairwise ground cost (see :func:`cost_tensor`), ``'sqeuclidean'`` by default.
    graph : None, str or edge list, optional
        ``None`` (default): all pairs, dense tensor. Otherwise the pairs of a
        graph (``'complete'``, ``'chain'``, ``'circle'``, ``'star'``, ...),
        solved without forming the tensor.
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
        ``stopThr``, ``log``, ``warmstart``, ...).

    Returns
    -------
    P : the plan (see :func:`emot_sinkhorn`), and ``log`` if ``log=True``.
    """
    _check_kwargs("empirical_emot_sinkhorn", emot_sinkhorn, X_s, reg, kwargs)
    C = empirical_cost(X_s, metric, graph, memory_budget)
    return emot_sinkhorn(a_s, C, reg, memory_budget=memory_budget, free=free, **kwargs)


def empirical_emot_sinkhorn2(X_s, reg, a_s=None, metric="sqeuclidean", graph=None, memory_budget=None, free=None,
                             **kwargs):
    r"""EMOT value between point clouds; differentiable in ``X_s`` and ``a_s`` on torch.

    Same parameters as :func:`empirical_emot_sinkhorn` (``free`` included);
    returns the value of :func:`emot_sinkhorn2` (and ``log`` if ``log=True``).
    """
    _check_kwargs("empirical_emot_sinkhorn2", emot_sinkhorn2, X_s, reg, kwargs)
    C = empirical_cost(X_s, metric, graph, memory_budget)
    return emot_sinkhorn2(a_s, C, reg, memory_budget=memory_budget, free=free, **kwargs)


def _check_kwargs(caller, solver, X_s, reg, kwargs):
    """Mistyped keywords are reported by the point-cloud call itself, with the valid names."""
    own = [p for p in inspect.signature(solver).parameters if p not in ("a_s", "M", "reg", "kwargs")]
    check_solver_call(caller, None, X_s, reg, kwargs.get("method", "sinkhorn_log"), STRATEGIES,
                      {key: v for key, v in kwargs.items() if key not in own}, own)
