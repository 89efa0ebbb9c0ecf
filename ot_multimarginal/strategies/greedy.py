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
    dual_objective,
    marginal_error,
    print_header,
)
from ._deferred import IterateChecks, fresh

__all__ = ["greedy_sinkhorn", "greedy_divergence", "greedy_block", "greedy_step"]


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


def greedy_step(nx, g, a_s, log_a, log_r, positive, blocks, on_device=False):
    """The greedy step: the block of :func:`greedy_block` gets its exact update.

    Returns ``(g, p)``: the new log-scalings (a new list) and the position
    ``p`` of the updated block in ``blocks``. ``on_device`` (sync-free
    loops): no host read; the divergences are compared on the device (NaN
    counts as ``+inf``; the first of equal maxima wins, as in
    :func:`greedy_block`), ``p`` is a 0-d device integer and every candidate
    block gets ``where(p == its position, its exact update, g_i)``: the same
    iterate, for k O(n_i) elementwise updates (a new array for every
    candidate block).
    """
    g = list(g)
    if not on_device:
        K = greedy_block(nx, a_s, log_r, positive, blocks)
        g[K] = block_update(nx, g[K], log_a[K], log_r[K], positive[K])
        return g, blocks.index(K)
    div = nx.stack([greedy_divergence(nx, a_s[i], log_r[i], positive[i]) for i in blocks])
    div = nx.where(div != div, nx.full(div.shape, math.inf, type_as=div), div)
    p = nx.argmax(div)
    for q, i in enumerate(blocks):
        g[i] = nx.where(p == q, block_update(nx, g[i], log_a[i], log_r[i], positive[i]), g[i])
    return g, p


def greedy_sinkhorn(
    engine,
    a_s,
    log_a,
    g,
    numItermax,
    stopThr,
    verbose=False,
    print_every=10,
    blocks=None,
    stop_rule=None,
    sync_free=None,
    check_every=10,
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
    each iteration), ``niter`` (block updates done), ``converged`` and, in
    sync-free mode, ``n_redone``.
    ``verbose`` prints a row every ``print_every`` iterations and at the end
    (columns ``Err``: the marginal error; ``Dual``: :math:`\phi(g)`,
    non-increasing, equal to :math:`-\mathrm{value}/\varepsilon + \sum_i H(a_i)`
    at the optimum, see :func:`~ot_multimarginal.strategies._common.dual_objective`).
    ``stop_rule(g, err)``, if given, is asked at every check whose error is
    above ``stopThr``; ``True`` stops the loop as converged.

    ``sync_free`` (torch only; ``None``: on a non-CPU device): no host
    synchronisation between two checks, one every ``check_every``
    iterations (see :mod:`~ot_multimarginal.strategies._deferred`). The
    block choice is made on the device (:func:`greedy_step`), the errors and
    duals of every iterate and the blocks chosen are read at the checks, and
    the loop still stops at the first iterate whose error is at most
    ``stopThr`` (the at most ``check_every - 1`` iterations computed after
    it are discarded): the same iterates, ``err``, ``dual`` and ``blocks``
    as the checked path, to rounding. Every candidate block is then a new
    array at each iteration, so engines that reuse work when one block
    changes redo it (see :mod:`~ot_multimarginal.strategies._deferred`).
    Otherwise the error is checked at every iterate (``check_every`` is not
    used).
    """
    nx = engine.nx
    active = all_blocks(a_s, blocks)  # the prescribed blocks
    positive = [a > 0 for a in a_s]
    g0 = list(g)
    rec = IterateChecks(
        engine,
        sync_free,
        check_every,
        numItermax,
        stopThr,
        stop_rule,
        verbose,
        print_every,
        steps=("blocks",),
        checked_every=1,
    )
    g = g0
    it = 0
    log_r = None  # the log-marginals at g when known (after a redo from a check)
    if verbose:
        print_header(["It.", "Err", "Dual"])
    while True:
        if log_r is None:
            with rec.products():
                log_r = engine.log_marginals(g)
                err = marginal_error(nx, log_r, a_s, active)
                dual = dual_objective(nx, g, a_s, nx.logsumexp(log_r[0]), active)
            rec.record(it, (g, log_r), err, dual)
            if rec.due(it):
                action, it_c, state = rec.check()
                if action == "redo":
                    # back to the last accepted check (new arrays: the engines' caches are stale)
                    it, (g, log_r) = (0, (g0, None)) if state is None else (it_c, state)
                    g = fresh(g)
                    continue
                if action == "stop":
                    it, g = it_c, state[0]
                    break
        g, p = greedy_step(nx, g, a_s, log_a, log_r, positive, active, on_device=rec.on)
        rec.step(it, blocks=p)
        log_r = None
        it += 1
    info = {
        "err": rec.errs,
        "dual": rec.duals,
        "blocks": [active[int(p)] for p in rec.steps["blocks"]],
        "niter": it,
        "converged": rec.converged,
    }
    if rec.on:
        info["n_redone"] = rec.n_redone
    return g, info
