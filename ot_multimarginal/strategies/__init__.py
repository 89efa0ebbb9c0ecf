# -*- coding: utf-8 -*-
"""Loops around a marginalisation engine, one module per strategy.

Each strategy has the signature
``strategy(engine, a_s, log_a, g, numItermax, stopThr, verbose, **kwargs) -> (g, info)``
where ``info`` has at least ``err`` (list of floats), ``niter`` and
``converged``. The public ``method=`` names map to strategies here.
"""
# License: MIT License

from .cyclic import cyclic_sinkhorn

STRATEGIES = {
    "sinkhorn_log": cyclic_sinkhorn,
}

__all__ = ["STRATEGIES", "cyclic_sinkhorn"]
