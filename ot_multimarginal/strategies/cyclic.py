# -*- coding: utf-8 -*-
r"""Cyclic multimarginal Sinkhorn (iterative Bregman projections).

Benamou, Carlier, Cuturi, Nenna, Peyré, *Iterative Bregman projections for
regularized transportation problems*, SIAM J. Sci. Comput. 2015.

One sweep updates the blocks ``i = 1..k`` in turn with the exact block
minimisation of the dual, :math:`g_i \leftarrow g_i + \log a_i - \log r_i(B(g))`,
after which marginal ``i`` of :math:`B(g)` equals :math:`a_i`.
"""
# License: MIT License

from ._common import (
    NonFiniteIterate,
    block_update,
    check_finite_error,
    marginal_error,
    print_header,
    print_row,
)

__all__ = ["cyclic_sinkhorn"]


def cyclic_sinkhorn(engine, a_s, log_a, g, numItermax, stopThr, verbose=False, check_every=10):
    """Run cyclic sweeps from log-scalings ``g``.

    Returns ``(g, info)`` with ``info`` holding ``err`` (list of floats, one
    per check), ``niter`` (sweeps done) and ``converged``. The error is
    checked every ``check_every`` sweeps on all marginals at the same point.
    """
    nx = engine.nx
    k = engine.k
    positive = [a > 0 for a in a_s]
    g = list(g)
    errs = []
    converged = False
    it = 0
    if verbose:
        print_header(["It.", "Err"])
    while True:
        check = it % check_every == 0 or it == numItermax
        log_r0 = None
        if check:
            log_r = engine.log_marginals(g)
            err = check_finite_error(nx, marginal_error(nx, log_r, a_s), it)
            errs.append(err)
            if verbose:
                print_row(it, err)
            if err <= stopThr:
                converged = True
                break
            log_r0 = log_r[0]
        if it >= numItermax:
            break
        for i in range(k):
            lr = log_r0 if (i == 0 and log_r0 is not None) else engine.log_marginal(g, i)
            g[i] = block_update(nx, g[i], log_a[i], lr, positive[i])
        it += 1
    return g, {"err": errs, "niter": it, "converged": converged}


__all__ += ["NonFiniteIterate"]
