# -*- coding: utf-8 -*-
r"""Accelerated multimarginal Sinkhorn (estimate sequence + greedy Sinkhorn steps).

.. warning:: **This is a reconstruction.** Lin, Ho, Cuturi and Jordan [1]_
    describe an "accelerated multimarginal Sinkhorn" that "achieves the
    acceleration by incorporating an estimate sequence", with complexity
    :math:`\tilde O(k^3 n^{k+1/3}\varepsilon^{-4/3})`. Only the abstract of
    the paper was available when this module was written, not its
    Algorithm 3, and no public implementation was found. The loop below is
    the reconstruction of ``shared/notes/accelerated_sinkhorn.md`` §4.1:
    Nesterov's estimate sequence on the dual with a monotone safeguard and a
    greedy Sinkhorn correction, a shape forced by the advertised bound. It
    has been checked *numerically* only (the dual decreases monotonically, it
    converges to the same plan as Sinkhorn, and it needs 0.1–0.4× the
    iterations of greedy Sinkhorn at small regularisation; see
    ``tests/test_strategies.py`` and ``bench/bench_accelerated.py``); a
    line-by-line match with the paper is **not** verified. The nearest
    published, fully specified method is the primal–dual accelerated
    alternating minimisation (PD-AAM) of Tupitsa et al. [2]_ (Guminov et al.
    [3]_ for two marginals), which averages primal iterates instead of
    returning the last one.

The dual (minimised), with :math:`B(g) = \exp(\oplus_i g_i - C/\varepsilon)`,

.. math::
    \phi(g) = \log\|B(g)\|_1 - \sum_i \langle g_i, a_i\rangle, \qquad
    \nabla_i \phi(g) = r_i(B(g))/\|B(g)\|_1 - a_i,

is :math:`L`-smooth with :math:`L = k` (each entry of the tensor is touched
by k blocks). One iteration (θ₀ = 1, :math:`\check g = \tilde g = g_0`):

1. coupling point :math:`\bar g = (1-\theta)\check g + \theta\tilde g`;
2. gradient :math:`d = \nabla\phi(\bar g)` (one pass of the engine);
3. estimate-sequence step :math:`\tilde g \leftarrow \tilde g - d/(L\theta)`;
4. gradient step :math:`\hat g = \bar g - d/L`;
5. safeguard: :math:`\check g \leftarrow \hat g` if
   :math:`\phi(\hat g) < \phi(\check g)` (one pass), else keep :math:`\check g`;
6. greedy Sinkhorn step on :math:`\check g`: the block ``K`` maximising
   :math:`\rho(a_K, r_K(B(\check g)))` gets
   :math:`\check g_K \leftarrow \check g_K + \log a_K - \log r_K`;
7. marginals of the new :math:`\check g` (one pass): stopping error
   :math:`\sum_i\|r_i - a_i\|_1` and :math:`\phi(\check g)`;
8. :math:`\theta \leftarrow \theta(\sqrt{\theta^2 + 4} - \theta)/2`.

The output is the last Sinkhorn-corrected iterate :math:`\check g` (not an
average), so the plan keeps the factored form :math:`B(\check g)` that every
engine (dense or structured) can marginalise and round. :math:`\phi(\check g)`
never increases (steps 5 and 6). Cost: three passes per iteration, against
one for greedy Sinkhorn; it pays at small ε, where the gradient step is
accepted in about half of the iterations.

References
----------
.. [1] T. Lin, N. Ho, M. Cuturi, M. I. Jordan, On the complexity of
   approximating multimarginal optimal transport, JMLR 23(65), 2022
   (arXiv 1910.00152).
.. [2] N. Tupitsa, P. Dvurechensky, A. Gasnikov, C. A. Uribe, Multimarginal
   optimal transport by accelerated alternating minimization, IEEE CDC 2020
   (arXiv 2004.02294).
.. [3] S. Guminov, P. Dvurechensky, N. Tupitsa, A. Gasnikov, On a combination
   of alternating minimization and Nesterov's momentum, ICML 2021
   (arXiv 1906.03622).
"""
# License: MIT License

import math

from .._backend import to_float
from ._common import (
    all_blocks,
    dual_objective,
    marginal_error,
    print_header,
)
from ._deferred import IterateChecks, fresh
from .greedy import greedy_step

__all__ = ["accelerated_sinkhorn"]


def accelerated_sinkhorn(
    engine,
    a_s,
    log_a,
    g,
    numItermax,
    stopThr,
    verbose=False,
    L=None,
    print_every=10,
    blocks=None,
    stop_rule=None,
    sync_free=None,
    check_every=10,
):
    r"""Accelerated multimarginal Sinkhorn from log-scalings ``g`` (see the module docstring).

    Parameters
    ----------
    engine, a_s, log_a, g, numItermax, stopThr, verbose
        As for every strategy (``numItermax`` counts iterations, each of
        three engine passes).
    L : float, optional
        Smoothness constant of the dual used in the gradient steps; default
        the number of updated blocks, ``k`` when none is free (the proven
        bound: the Hessian of :math:`\log\|B(g)\|_1` in the updated blocks
        is at most their number in the Euclidean norm). Smaller values take
        longer steps; the safeguard keeps the dual monotone whatever ``L`` is.
    print_every : int, optional
        With ``verbose``, print a row every ``print_every`` iterations and at the end.
    blocks : tuple of int, optional
        The blocks the dual is minimised over (the prescribed marginals);
        default all k. The other (free) blocks keep their log-scalings in
        every sequence (:math:`\check g, \tilde g, \bar g, \hat g`) and
        their errors do not count.
    stop_rule : callable, optional
        ``stop_rule(g, err) -> bool``, asked at every check whose error is
        above ``stopThr`` (with :math:`\check g`); ``True`` stops the loop
        as converged.
    sync_free : bool, optional
        Sync-free iterations (torch only; ``None``, the default: on a
        non-CPU device; see :mod:`~ot_multimarginal.strategies._deferred`):
        no host synchronisation between two checks. The safeguard (step 5)
        is a ``where`` on a device boolean, the greedy block is chosen on
        the device (:func:`~ot_multimarginal.strategies.greedy.greedy_step`),
        and the errors, duals, blocks and safeguard outcomes of the iterates
        since the previous check are read there at once. The loop still
        stops at the first iterate whose error is at most ``stopThr`` (the
        at most ``check_every - 1`` iterations computed after it are
        discarded; θ is a host number, the same on both paths): the same
        iterates and ``info`` as the checked path, to rounding.
    check_every : int, optional
        Iterations between two checks in sync-free mode (default 10);
        otherwise the error is checked at every iterate.

    Returns
    -------
    g : list of k arrays
        The last Sinkhorn-corrected iterate :math:`\check g`.
    info : dict
        ``err`` and ``dual`` (marginal error and :math:`\phi(\check g)` at
        every iterate, the first at the initial ``g``; ``dual`` is
        non-increasing), ``niter``, ``converged``, ``blocks`` (block of each
        Sinkhorn step), ``n_accepted`` (iterations whose gradient step passed
        the safeguard), ``n_passes`` (engine passes made, all k marginals
        each: ``3 niter + 1`` on the checked path; sync-free, the discarded
        and redone iterations count too), ``L`` and, sync-free,
        ``n_redone`` (check intervals redone on the checked path after a
        failed certificate).
    """
    nx = engine.nx
    active = all_blocks(a_s, blocks)  # the prescribed blocks
    L = float(len(active) if L is None else L)
    if not (L > 0 and math.isfinite(L)):
        raise ValueError("L (the smoothness constant of the dual) must be a finite number > 0, got %r" % (L,))
    positive = [a > 0 for a in a_s]
    zeros = [nx.zeros(a.shape, type_as=a) for a in a_s]

    def finite(v, i):
        # zero-weight entries hold -inf; do the arithmetic on 0 there
        return nx.where(positive[i], v, zeros[i])

    def masked(v, i):
        # and put -inf back (B(g) has no mass where a_i = 0)
        return nx.where(positive[i], v, log_a[i])

    def step(seq, fn):
        # fn(i) on the updated blocks; free blocks are kept exactly as they are
        out = list(seq)
        for i in active:
            out[i] = fn(i)
        return out

    rec = IterateChecks(
        engine,
        sync_free,
        check_every,
        numItermax,
        stopThr,
        stop_rule,
        verbose,
        print_every,
        steps=("blocks", "accepted"),
        checked_every=1,
    )
    g_check = [masked(finite(gi, i), i) for i, gi in enumerate(g)]
    g_tilde = [finite(gi, i) for i, gi in enumerate(g)]
    start = (g_check, g_tilde)
    theta = 1.0
    n_passes = 0
    it = 0
    log_r = None  # the log-marginals at g_check when known
    known = False  # whether the iterate's record is already taken (resumed from a check)
    if verbose:
        print_header(["It.", "Err", "Dual"])

    while True:
        if not known:
            # marginals (unless known), error and dual at the iterate
            with rec.products():
                if log_r is None:
                    log_r = engine.log_marginals(g_check)
                    n_passes += 1
                err = marginal_error(nx, log_r, a_s, active)
                phi_check = dual_objective(nx, g_check, a_s, nx.logsumexp(log_r[0]), active)
            rec.record(it, (g_check, log_r, g_tilde, theta, phi_check), err, phi_check)
            if rec.due(it):
                action, it_c, state = rec.check()
                if action == "redo":
                    # back to the last accepted check (new arrays: the engines' caches are stale)
                    if state is None:
                        it, (g_check, g_tilde), log_r, theta = 0, start, None, 1.0
                    else:
                        it, (g_check, log_r, g_tilde, theta, phi_check) = it_c, state
                        known = True
                    g_check, g_tilde = fresh(g_check), fresh(g_tilde)
                    continue
                if action == "stop":
                    it, g_check = it_c, state[0]
                    break
        known = False
        if not rec.on:
            phi_check = rec.duals[-1]

        with rec.products():
            # 1. coupling point (finite parts; free blocks keep g_check's)
            g_bar = step(g_check, lambda i: finite(g_check[i], i) * (1.0 - theta) + g_tilde[i] * theta)
            # 2. gradient of the dual at the coupling point
            log_rb = engine.log_marginals(step(g_bar, lambda i: masked(g_bar[i], i)))
            log_zb = nx.logsumexp(log_rb[0])
            grad = {i: finite(nx.exp(log_rb[i] - log_zb) - a_s[i], i) for i in active}
            # 3. estimate-sequence step; 4. gradient step
            g_tilde = step(g_tilde, lambda i: g_tilde[i] - grad[i] / (L * theta))
            g_hat = step(g_bar, lambda i: masked(g_bar[i] - grad[i] / L, i))
            # 5. monotone safeguard
            log_rh = engine.log_marginals(g_hat)
            phi_hat = dual_objective(nx, g_hat, a_s, nx.logsumexp(log_rh[0]), active)
        n_passes += 2
        if rec.on:
            accepted = phi_hat < phi_check  # a device boolean: both sequences selected by it
            g_check = [nx.where(accepted, x, y) for x, y in zip(g_hat, g_check)]
            log_r = [nx.where(accepted, x, y) for x, y in zip(log_rh, log_r)]
        else:
            accepted = to_float(nx, phi_hat) < phi_check
            if accepted:
                g_check, log_r = g_hat, log_rh
        # 6. greedy Sinkhorn step
        g_check, p = greedy_step(nx, g_check, a_s, log_a, log_r, positive, active, on_device=rec.on)
        rec.step(it, blocks=p, accepted=accepted)
        # 7. the marginals of the new iterate are taken at the top of the loop
        log_r = None
        it += 1
        # 8. theta_{t+1}^2 = (1 - theta_{t+1}) theta_t^2
        theta = theta * (math.sqrt(theta * theta + 4.0) - theta) / 2.0

    info = {
        "err": rec.errs,
        "dual": rec.duals,
        "blocks": [active[int(p)] for p in rec.steps["blocks"]],
        "niter": it,
        "converged": rec.converged,
        "n_accepted": int(sum(rec.steps["accepted"])),
        "n_passes": n_passes,
        "L": L,
    }
    if rec.on:
        info["n_redone"] = rec.n_redone
    return g_check, info
