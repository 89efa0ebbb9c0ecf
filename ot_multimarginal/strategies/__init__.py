# -*- coding: utf-8 -*-
r"""Loops around a marginalisation engine, one module per strategy.

Each strategy has the signature
``strategy(engine, a_s, log_a, g, numItermax, stopThr, verbose, blocks=None, **kwargs) -> (g, info)``
where ``info`` has at least ``err`` (list of floats), ``niter`` and
``converged``. ``blocks`` is the tuple of the blocks to update, the
prescribed marginals (``None``: all k); the others are *free* marginals,
whose log-scalings stay as given (:math:`g_i = \log a_i`, i.e.
:math:`\varphi_i = 0`) and whose marginal errors do not count. The public
``method=`` names map to strategies here.
"""
# License: MIT License

from .accelerated import accelerated_sinkhorn
from .cyclic import cyclic_sinkhorn
from .greedy import greedy_sinkhorn
from .newton import newton_sinkhorn

STRATEGIES = {
    "sinkhorn_log": cyclic_sinkhorn,
    "sinkhorn_greedy": greedy_sinkhorn,
    "sinkhorn_accelerated": accelerated_sinkhorn,
    "sinkhorn_newton": newton_sinkhorn,
}

__all__ = ["STRATEGIES", "cyclic_sinkhorn", "greedy_sinkhorn", "accelerated_sinkhorn", "newton_sinkhorn"]
