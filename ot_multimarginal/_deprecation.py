# -*- coding: utf-8 -*-
"""The one shim for renamed keyword arguments: the old name keeps working for one release, with a warning.

Usage (the new name in the signature, the old ones mapped to it)::

    @renamed_kwargs(n_iter="numItermax", tol="stopThr", seed="random_state")
    def emot_neural2(X_s, reg, ..., numItermax=None, stopThr=1e-4, random_state=None): ...

A call with an old name raises a ``DeprecationWarning`` naming the new one
and is forwarded under the new name; giving both raises a ``TypeError``.
The mapping is kept on the function as ``__renamed_kwargs__`` (the
API-convention test reads it). For a class, decorate ``__init__``.
"""
# License: MIT License

import functools
import warnings

__all__ = ["renamed_kwargs", "deprecated_attribute", "deprecated_key_dict", "legacy_graph_metric_order", "REMOVED_IN"]

REMOVED_IN = "0.2"  # the release after the next one drops the old names (they work in 0.1)


def renamed_kwargs(**renames):
    """Decorator: accept each old keyword ``old`` of ``renames`` (``old='new'``) as ``new``, with a warning."""

    def deco(func):
        name = func.__qualname__.replace(".__init__", "")

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            "%s() got both %r and its deprecated name %r: use %r only" % (name, new, old, new)
                        )
                    warnings.warn(
                        "%s(): the argument %r is deprecated and will be removed in %s; use %r instead"
                        % (name, old, REMOVED_IN, new),
                        DeprecationWarning,
                        stacklevel=2,
                    )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        wrapper.__renamed_kwargs__ = dict(getattr(func, "__renamed_kwargs__", {}), **renames)
        return wrapper

    return deco


def deprecated_attribute(old, new):
    """A class attribute ``old`` that reads and writes the attribute ``new``, with a DeprecationWarning."""

    def _warn(obj):
        warnings.warn(
            "%s.%s is deprecated and will be removed in %s; use %s.%s instead"
            % (type(obj).__name__, old, REMOVED_IN, type(obj).__name__, new),
            DeprecationWarning,
            stacklevel=3,
        )

    def fget(self):
        _warn(self)
        return getattr(self, new)

    def fset(self, value):
        _warn(self)
        setattr(self, new, value)

    return property(fget, fset, doc="Deprecated alias of ``%s``." % new)


def deprecated_key_dict(data, renames, where):
    """A dict whose old keys (``renames``: ``old='new'``) still read, with a DeprecationWarning (log dicts)."""
    return _DeprecatedKeys(data, renames, where)


class _DeprecatedKeys(dict):
    def __init__(self, data, renames, where):
        super().__init__(data)
        self._renames = dict(renames)
        self._where = where

    def __missing__(self, key):
        if key in self._renames and self._renames[key] in self:
            warnings.warn(
                "%s: log[%r] is deprecated and will be removed in %s; use log[%r]"
                % (self._where, key, REMOVED_IN, self._renames[key]),
                DeprecationWarning,
                stacklevel=2,
            )
            return self[self._renames[key]]
        raise KeyError(key)

    def get(self, key, default=None):
        return self[key] if key in self or key in self._renames and self._renames[key] in self else default


_GRAPH_NAMES = ("complete", "chain", "circle", "star", "tree")


def _looks_like_metric(x):
    if callable(x) and not hasattr(x, "make_engine"):
        return True
    if isinstance(x, str):
        return x not in _GRAPH_NAMES
    if isinstance(x, (list, tuple)) and x:
        return all(isinstance(m, str) or callable(m) for m in x)
    return False


def legacy_graph_metric_order(name, graph, metric, default_graph):
    """``(graph, metric)`` of a point-cloud call, understanding the old positional order ``(metric, graph)``.

    The point-cloud calls take ``(X_s, reg, a_s, graph, metric)``; before
    0.1 the empirical ones took ``metric`` before ``graph``. A metric (a
    name that is no graph name, a callable, a list of those) found in
    ``graph``'s place is swapped back with a ``DeprecationWarning``.
    """
    if not _looks_like_metric(graph) or _looks_like_metric(metric) and metric != "sqeuclidean":
        return graph, metric
    warnings.warn(
        "%s(): the metric %r was given in the place of graph; the order is now (X_s, reg, a_s, graph, "
        "metric) (the old order is understood until %s): pass metric=... by name" % (name, graph, REMOVED_IN),
        DeprecationWarning,
        stacklevel=3,
    )
    new_graph = default_graph if metric == "sqeuclidean" else metric
    return new_graph, graph
