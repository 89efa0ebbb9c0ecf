# -*- coding: utf-8 -*-
r"""Greedy multimarginal Sinkhorn (Lin, Ho, Cuturi, Jordan, Algorithm 1).

T. Lin, N. Ho, M. Cuturi, M. I. Jordan, *On the complexity of approximating
multimarginal optimal transport*, JMLR 23(65), 2022 (arXiv 1910.00152).

Each iteration computes all k marginals :math:`r_i = r_i(B(g))` of the
unnormalised Gibbs tensor at the current log-scalings (one pass of the
engine), which gives the stopping error :math:`\sum_i\|r_i - a_i\|_1` and
the dual objective

.. math::
    \phi(g) = \log\|B(g)\|_1 - \sum_i \langle g_i, a_i\rangle

for free. It then updates only the block that is the furthest from its
target in the divergence

.. math::
    \rho(a, r) = \mathbf 1^\top(r - a) + \sum_j a_j \log(a_j / r_j)
    \qquad (a_j \log a_j = 0 \text{ where } a_j = 0),

with the exact block minimisation :math:`g_K \leftarrow g_K + \log a_K - \log r_K`.
Each update decreases :math:`\phi` by at least :math:`\rho(a_K, r_K)`, so
:math:`\phi` never increases (``info['dual']``).
"""
# License: MIT License

import math

from .._backend import to_float
from ._common import (
    all_blocks,
    block_update,
    check_and_record,
    print_header,
)

__all__ = ["greedy_sinkhorn", "greedy_divergence", "greedy_block"]


# 1/m! for m = 2..11: the Taylor series of exp(u) - 1 - u
_INV_FACT = [1.0 / math.factorial(m) for m in range(2, 12)]


def _exp_minus_one_minus_id(nx, u):
    r""":math:`e^u - 1 - u \ge 0` without cancellation for small :math:`|u|`.

    Taylor series (to :math:`u^{11}`, relative error below 1e-16) for
    :math:`|u| \le 0.1`, the direct formula elsewhere (where it is at least
    :math:`0.005` and loses nothing). ``u = -inf`` gives ``+inf``; large ``u``
    is capped at 600 (a huge finite value, never an overflow).
    """
    small = nx.abs(u) <= 0.1
    us = nx.where(small, u, nx.zeros(u.shape, type_as=u))
    poly = _INV_FACT[-1]
    for c in reversed(_INV_FACT[:-1]):
        poly = c + us * poly
    ub = nx.clip(u, -math.inf, 600.0)  # no overflow: the block is picked anyway
    return nx.where(small, us * us * poly, nx.exp(ub) - 1.0 - ub)


def greedy_divergence(nx, a, log_r, positive):
    r"""Lin et al.'s :math:`\rho(a, r) = \mathbf 1^\top(r - a) + \sum a \log(a/r)` (backend scalar).

    ``log_r`` is the log of the current (unnormalised) marginal. Computed as
    :math:`\sum_{a_j>0} a_j\,\psi(\log r_j - \log a_j) + \sum_{a_j=0} r_j`
    with :math:`\psi(u) = e^u - 1 - u \ge 0`: a sum of non-negative terms,
    accurate near convergence where :math:`\rho = O(\text{err}^2)` is far
    below the rounding error of the plain formula (which would make the
    greedy choice random and stall the loop). It is ``+inf`` when some
    ``r_j = 0 < a_j``.
    """
    zero = nx.zeros(a.shape, type_as=a)
    a_safe = nx.where(positive, a, zero + 1.0)  # log only where a > 0
    lr_safe = nx.where(positive, log_r, zero)
    u = lr_safe - nx.log(a_safe)
    terms = nx.where(positive, a * _exp_minus_one_minus_id(nx, u), nx.exp(log_r))
    return nx.sum(terms)


def greedy_block(nx, a_s, log_r, positive, blocks=None):
    """Index of the block with the largest :func:`greedy_divergence` (a Python int).

    Only the ``blocks`` (the prescribed marginals; default all) are candidates.
    """
    blocks = all_blocks(a_s, blocks)
    best, best_val = blocks[0], None
    for i in blocks:
        v = to_float(nx, greedy_divergence(nx, a_s[i], log_r[i], positive[i]))
        if v != v:  # NaN: treat as the worst block so that it gets fixed
            v = float("inf")
        if best_val is None or v > best_val:
            best, best_val = i, v
    return best


def greedy_sinkhorn(
    engine, a_s, log_a, g, numItermax, stopThr, verbose=False, print_every=10, blocks=None, stop_rule=None
):
    r"""Greedy multimarginal Sinkhorn from log-scalings ``g``.

    ``blocks`` (the prescribed marginals; default all k) are the candidates
    of the greedy choice and the terms of the error and of the dual; the
    other (free) blocks keep their log-scalings.

    One iteration = one pass of the engine (all k log-marginals at ``g``) and
    one block update. Returns ``(g, info)``: ``info['err']`` (the marginal
    error :math:`\sum_i\|r_i(B(g)) - a_i\|_1` at every iterate, the first
    entry at the initial ``g``), ``info['dual']`` (:math:`\phi(g)` at the
    same iterates, non-increasing), ``info['blocks']`` (the block updated at
    each iteration), ``niter`` (block updates done) and ``converged``.
    ``verbose`` prints a row every ``print_every`` iterations and at the end
    (columns ``Err``: the marginal error; ``Dual``: :math:`\phi(g)`,
    non-increasing, equal to :math:`-\mathrm{value}/\varepsilon + \sum_i H(a_i)`
    at the optimum, see :func:`~ot_multimarginal.strategies._common.dual_objective`).
    ``stop_rule(g, err)``, if given, is asked at every check whose error is
    above ``stopThr``; ``True`` stops the loop as converged.
    """
    nx = engine.nx
    active = all_blocks(a_s, blocks)  # the prescribed blocks
    positive = [a > 0 for a in a_s]
    g = list(g)
    errs, duals, blocks = [], [], []
    converged = False
    it = 0
    if verbose:
        print_header(["It.", "Err", "Dual"])
    while True:
        log_r = engine.log_marginals(g)
        converged, stop = check_and_record(
            nx, log_r, g, a_s, it, active, errs, duals, stopThr, numItermax, verbose, print_every, stop_rule
        )
        if stop:
            break
        K = greedy_block(nx, a_s, log_r, positive, active)
        g[K] = block_update(nx, g[K], log_a[K], log_r[K], positive[K])
        blocks.append(K)
        it += 1
    return g, {"err": errs, "dual": duals, "blocks": blocks, "niter": it, "converged": converged}
