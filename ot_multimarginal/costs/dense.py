# -*- coding: utf-8 -*-
r"""Dense cost tensors built from point clouds.

The convention (the same as OTT-JAX's ``MMSinkhorn``): the cost of a k-tuple is
the sum over all pairs :math:`i < j` of a ground cost,

.. math::
    C(x_1, \dots, x_k) = \sum_{i<j} c_{ij}(x_i, x_j),

with :math:`c_{ij}` = ``ot.dist(X_i, X_j, metric)`` (the squared Euclidean
distance by default, without a 1/2 and not divided by k).
"""
# License: MIT License

from __future__ import annotations

from typing import Optional, Sequence

import ot

from .._typing import Array, Metric
from .._validation import check_dense_size, check_memory_budget, check_metric, check_point_clouds, describe

__all__ = ["cost_tensor", "pair_list", "check_point_clouds", "pairwise_cost_matrix"]


def pair_list(k):
    """The pairs ``(i, j)``, ``i < j``, in the order used for per-pair metrics."""
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


def pairwise_cost_matrix(nx, X, Y, metric, name):
    """``c(X, Y)`` as an ``(n_X, n_Y)`` matrix for a metric name or a callable."""
    metric = check_metric(metric, nx, "metric for %s" % name)
    if callable(metric):
        C = metric(X, Y)
        if not (hasattr(C, "shape") and hasattr(C, "dtype")):
            raise TypeError("the metric callable for %s must return an array, got %s" % (name, describe(C)))
        if tuple(C.shape) != (X.shape[0], Y.shape[0]):
            raise ValueError(
                "the metric callable for %s returned shape %s, expected %s"
                % (name, tuple(C.shape), (X.shape[0], Y.shape[0]))
            )
        return C
    if X.shape[1] != Y.shape[1]:
        raise ValueError(
            "metric %r for %s needs point clouds of the same dimension, got %d and %d; "
            "pass a callable metric for spaces of different dimensions" % (metric, name, X.shape[1], Y.shape[1])
        )
    return ot.dist(X, Y, metric=metric)


def cost_tensor(X_s: Sequence[Array], metric: Metric = "sqeuclidean", memory_budget: Optional[int] = None) -> Array:
    r"""Dense cost tensor :math:`C_{i_1\dots i_k} = \sum_{i<j} c_{ij}(x_i[i_i], x_j[i_j])`.

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Point clouds (NumPy arrays or torch tensors, one library).
    metric : str, callable, or list of those
        Ground cost of each pair: a metric name of :func:`ot.dist`
        (``'sqeuclidean'`` default), a callable ``metric(X_i, X_j)`` returning
        the ``(n_i, n_j)`` matrix (e.g. for spaces of different dimensions),
        or a list of k(k-1)/2 of those, one per pair ``(i, j)`` with ``i < j``
        in lexicographic order.
    memory_budget : int, optional
        Bytes allowed for the tensor (default: half the available memory).

    Returns
    -------
    C : array-like of shape (n_1, ..., n_k)
        Differentiable with respect to the point clouds on torch.
    """
    nx, X_s = check_point_clouds(X_s)
    memory_budget = check_memory_budget(memory_budget)
    k = len(X_s)
    shape = tuple(int(X.shape[0]) for X in X_s)
    check_dense_size(shape, nx.bitsize(X_s[0]) // 8, 2, memory_budget, "the cost tensor", nx, X_s[0])
    from .pointcloud import PointCloudCost

    pairs = pair_list(k)
    if isinstance(metric, (list, tuple)) and len(metric) != len(pairs):
        raise ValueError(
            "metric must be one metric or a list of %d (one per pair i<j), got %d" % (len(pairs), len(metric))
        )
    pc = PointCloudCost(k, "complete", metric)
    for e, m in enumerate(pc.metrics):
        check_metric(m, nx, "metric for pair %r" % (pairs[e],))
    C = None
    for (i, j), Cij in zip(pairs, pc.matrices(X_s)):
        shape_ij = [1] * k
        shape_ij[i], shape_ij[j] = shape[i], shape[j]
        term = nx.reshape(Cij, tuple(shape_ij))
        C = term if C is None else C + term
    return C  # every axis belongs to some pair (k >= 2), so C already has the full shape
