# -*- coding: utf-8 -*-
"""scikit-learn's parameter protocol for the estimators, read off ``__init__`` (no hand-listed names).

:class:`ParamsMixin` gives ``get_params(deep=True)`` and ``set_params(**params)``
as :class:`sklearn.base.BaseEstimator` defines them (parameters are the
arguments of ``__init__``, stored unchanged as attributes of the same name;
``deep=True`` adds the parameters of parameters that are estimators, as
``name__param``), so :func:`sklearn.base.clone`, grid searches and pipelines
work, without making scikit-learn a dependency. A deprecated parameter name
(``__init__`` decorated by :func:`~ot_multimarginal._deprecation.renamed_kwargs`)
is accepted by ``set_params`` with the same ``DeprecationWarning``.
"""
# License: MIT License

import inspect
import warnings

from ._deprecation import REMOVED_IN

__all__ = ["ParamsMixin"]


class ParamsMixin:
    """``get_params`` / ``set_params`` from the ``__init__`` signature (scikit-learn's protocol)."""

    @classmethod
    def _get_param_names(cls):
        """The names of the constructor's parameters, in signature order."""
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep=True):
        """Get the estimator's parameters (the arguments of its constructor).

        Parameters
        ----------
        deep : bool, optional
            Also return the parameters of parameters that are estimators
            (as ``name__param``), as scikit-learn does.

        Returns
        -------
        params : dict
            Parameter name to value.
        """
        out = {}
        for name in self._get_param_names():
            value = getattr(self, name)
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update((name + "__" + k, v) for k, v in value.get_params(deep=True).items())
            out[name] = value
        return out

    def set_params(self, **params):
        """Set the estimator's parameters (scikit-learn's protocol; ``name__param`` for nested estimators).

        Parameters
        ----------
        **params
            Parameter names (of the constructor) and their new values.

        Returns
        -------
        self
            The estimator.

        Raises
        ------
        ValueError
            For a name that is not a parameter of the constructor.
        """
        if not params:
            return self
        valid = self._get_param_names()
        renamed = getattr(type(self).__init__, "__renamed_kwargs__", {})
        nested = {}
        for key, value in params.items():
            name, sep, sub = key.partition("__")
            if name in renamed:
                warnings.warn(
                    "%s: the parameter %r is deprecated and will be removed in %s; use %r instead"
                    % (type(self).__name__, name, REMOVED_IN, renamed[name]),
                    DeprecationWarning,
                    stacklevel=2,
                )
                name = renamed[name]
            if name not in valid:
                raise ValueError(
                    "invalid parameter %r for estimator %s: valid parameters are %s"
                    % (name, type(self).__name__, ", ".join(valid))
                )
            if sep:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub in nested.items():
            getattr(self, name).set_params(**sub)
        return self
