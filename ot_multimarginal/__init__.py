# -*- coding: utf-8 -*-
"""ot_multimarginal: entropic multimarginal optimal transport for POT.

Public calls (all backend-generic through :mod:`ot.backend`):

- :func:`emot_sinkhorn` / :func:`emot_sinkhorn2`: plan / value of
  min <C,P> + reg KL(P | a_1 x ... x a_k) over tensors with marginals a_i;
- :func:`empirical_emot_sinkhorn` / :func:`empirical_emot_sinkhorn2`: the same from point clouds;
- :func:`cost_tensor`: the dense pairwise-sum cost of point clouds;
- :class:`PairwiseCost`: pairwise costs on a graph (chain, circle, star, tree,
  complete, any edge list), solved without forming the tensor;
- :class:`FactoredPlan`: plans held as potentials (+ rank-one rounding part):
  marginals, pairwise marginals, exact sampling, density at index tuples;
- :class:`Potentials`: dual potentials on an engine (``log['potentials']``): value, dual, plan;
- :func:`round_to_feasible` / :func:`round_dense`: rounding onto the exact
  transport polytope (Altschuler et al. 2017, Lin et al. 2022);
- :func:`emot_lp` / :func:`emot_lp2`: the exact (unregularised) LP, HiGHS;
- :func:`emot_approx`: Lin et al.'s eps-approximation of the LP, feasible plan + certified gap;
- :func:`blas_threads`: a context manager for the BLAS and torch thread counts.
- :func:`emot_neural` (fitted estimator) / :func:`emot_neural2` (value) / :class:`NeuralEMOT`: neural
  estimation (NEMOT) with mini-batches
  (torch; loaded on first use).
- :func:`mgw_sinkhorn`: multimarginal entropic Gromov–Wasserstein between clouds of any
  dimensions (alternation over the structured engines); :func:`match_from_plan`;
  :func:`mgw_neural` / :class:`NeuralMGW`: the same with neural potentials (torch; loaded on first use).
"""
# License: MIT License

__version__ = "0.1.0.dev0"

from ._threads import blas_threads
from .approx import emot_approx
from .costs import PairwiseCost, cost_tensor
from .empirical import empirical_cost, empirical_emot_sinkhorn, empirical_emot_sinkhorn2
from .gromov import match_from_plan, mgw_sinkhorn, mgw_sinkhorn2
from .lp import emot_lp, emot_lp2
from .plans import FactoredPlan
from .potentials import Potentials
from .rounding import RoundedState, round_dense, round_to_feasible
from .sinkhorn import emot_sinkhorn, emot_sinkhorn2

__all__ = [
    "__version__",
    "emot_sinkhorn",
    "emot_sinkhorn2",
    "empirical_emot_sinkhorn",
    "empirical_emot_sinkhorn2",
    "empirical_cost",
    "cost_tensor",
    "PairwiseCost",
    "FactoredPlan",
    "Potentials",
    "round_to_feasible",
    "round_dense",
    "RoundedState",
    "emot_lp",
    "emot_lp2",
    "emot_approx",
    "blas_threads",
    "emot_neural",
    "emot_neural2",
    "NeuralEMOT",
    "mgw_sinkhorn",
    "mgw_sinkhorn2",
    "match_from_plan",
    "mgw_neural",
    "mgw_neural2",
    "NeuralMGW",
]

_LAZY = {
    "emot_neural": ".neural.api",
    "emot_neural2": ".neural.api",
    "NeuralEMOT": ".neural.estimator",
    "mgw_neural": ".neural.gromov",
    "mgw_neural2": ".neural.gromov",
    "NeuralMGW": ".neural.gromov",
}


def __getattr__(name):
    """Lazy attributes: the neural estimators import torch only when first used."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
