# -*- coding: utf-8 -*-
"""Loops around a marginalisation engine, one module per strategy.

Each strategy has the signature
``strategy(engine, a_s, log_a, g, numItermax, stopThr, verbose, **kwargs) -> (g, info)``
where ``info`` has at least ``err`` (list of floats), ``niter`` and
``converged``. The public ``method=`` names map to strategies here.
"""
# License: MIT License

from .accelerated import accelerated_sinkhorn
from .cyclic import cyclic_sinkhorn
from .greedy import greedy_sinkhorn

STRATEGIES = {
    "sinkhorn_log": cyclic_sinkhorn,
    "sinkhorn_greedy": greedy_sinkhorn,
    "sinkhorn_accelerated": accelerated_sinkhorn,
}

__all__ = ["STRATEGIES", "cyclic_sinkhorn", "greedy_sinkhorn", "accelerated_sinkhorn"]
