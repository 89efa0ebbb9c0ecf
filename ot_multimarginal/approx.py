# -*- coding: utf-8 -*-
r"""ε-approximation of the exact multimarginal OT problem (Lin, Ho, Cuturi, Jordan).

The recipe of Lin et al. (2022, Algorithm 2 and its accelerated variant)
turns an entropic solver into an approximation algorithm for the *linear
program*

.. math::
    \mathrm{LP}^\star = \min_{P \in \Pi(a_1, \dots, a_k)} \langle C, P\rangle :

1. :math:`\eta = \varepsilon / (2\sum_i \log n_i)` (:math:`\varepsilon/(2k\log n)`
   for equal sizes): the entropic bias :math:`\eta\,H(P) \le \varepsilon/2`;
2. :math:`\varepsilon' = \varepsilon / (8\|C\|_\infty)` and smoothed marginals
   :math:`\tilde a_i = (1 - \varepsilon'/(4k))\,a_i + \varepsilon'/(4k n_i)\,\mathbf 1`
   (bounded away from zero, :math:`\|\tilde a_i - a_i\|_1 \le \varepsilon'/(2k)`);
3. a Sinkhorn-type loop on :math:`(C, \eta, \tilde a)` until
   :math:`\sum_i\|r_i(B(g)) - \tilde a_i\|_1 \le \varepsilon'/2`;
4. rounding of :math:`B(g)` onto :math:`\Pi(a_1, \dots, a_k)` with the
   **original** weights (:func:`ot_multimarginal.rounding.round_to_feasible`).

The returned plan has exactly the marginals :math:`a_i` and, when the loop
converged, :math:`\langle C, P\rangle \le \mathrm{LP}^\star + \varepsilon`.
The dual iterate also certifies a lower bound: for every :math:`g`,
:math:`\mathrm{LP}^\star \ge -\eta\,\phi(g; a)` with
:math:`\phi(g; a) = \log\|B(g)\|_1 - \sum_i\langle g_i, a_i\rangle` (original
weights), so ``log['gap']`` bounds the suboptimality of the plan without
solving the LP.
"""
# License: MIT License

import math

from ._backend import to_float
from ._validation import check_reg, check_solver_call
from .plans import FactoredPlan
from .rounding import round_to_feasible
from .sinkhorn import _is_structured, make_engine, resolve_free, solve_potentials
from .strategies import STRATEGIES
from .strategies._common import dual_objective

__all__ = ["emot_approx", "approx_parameters"]

_METHODS = ("sinkhorn_greedy", "sinkhorn_accelerated", "sinkhorn_log")


def _cost_sup_norm(engine, M):
    r""":math:`\|C\|_\infty`, or an upper bound of it for structured costs.

    Dense: ``max |M|``. Structured: ``M.sup_norm`` (attribute or method) if the
    cost object defines it, else :math:`\sum_x \max|x|` over the engine's
    ``cost_inputs()`` (exact bound for costs that are sums of their inputs,
    such as pairwise costs on a graph). A larger value only makes the
    tolerance stricter, so an upper bound keeps the guarantee.
    """
    nx = engine.nx
    if not _is_structured(M):
        return to_float(nx, nx.max(nx.abs(M)))
    sup = getattr(M, "sup_norm", None)
    if sup is not None:
        return float(sup() if callable(sup) else sup)
    return sum(to_float(nx, nx.max(nx.abs(x))) for x in engine.cost_inputs())


def approx_parameters(shape, eps_accuracy, cost_sup_norm):
    r"""Lin et al.'s parameters ``(eta, eps_prime, stopThr)`` for an ε-approximation.

    :math:`\eta = \varepsilon/(2\sum_i\log n_i)`,
    :math:`\varepsilon' = \min(1, \varepsilon/(8\|C\|_\infty))` (the cap only
    matters for costs smaller than ε/8, where any plan is ε-optimal) and the
    tolerance :math:`\varepsilon'/2` of the loop.
    """
    eps = check_reg(eps_accuracy, "eps_accuracy")
    h_max = sum(math.log(n) for n in shape)
    eta = eps / (2.0 * h_max) if h_max > 0 else eps
    eps_prime = 1.0 if cost_sup_norm <= 0 else min(1.0, eps / (8.0 * cost_sup_norm))
    return eta, eps_prime, eps_prime / 2.0


def emot_approx(a_s, M, eps_accuracy, method="sinkhorn_greedy", numItermax=10000, verbose=False, log=False,
                warn=True, mode="scaling", memory_budget=None, free=None, **kwargs):
    r"""ε-approximate solution of the exact multimarginal OT problem (Lin et al. 2022).

    Returns a plan :math:`P \in \Pi(a_1, \dots, a_k)` (marginals exact to
    rounding error) with

    .. math::
        \langle C, P\rangle \le \min_{Q \in \Pi(a_1, \dots, a_k)} \langle C, Q\rangle + \varepsilon

    when the inner loop converges, by the recipe of Lin, Ho, Cuturi and
    Jordan: entropic regularisation :math:`\eta = \varepsilon/(2\sum_i\log n_i)`,
    marginals smoothed by :math:`\varepsilon' = \varepsilon/(8\|C\|_\infty)`,
    a Sinkhorn-type loop to tolerance :math:`\varepsilon'/2`, then the
    rounding onto the exact transport polytope (original weights).

    Parameters
    ----------
    a_s : list of k array-like of shape (n_i,), or None
        Weights of the marginals, each summing to one (``None``: uniform).
        Zero weights are allowed.
    M : array-like of shape (n_1, ..., n_k), or a structured cost
        Cost tensor, or a cost object with a ``make_engine`` method (then the
        tensor is never formed and the plan is a factored plan).
    eps_accuracy : float
        Target additive accuracy :math:`\varepsilon > 0` on the LP value (in
        the units of the cost).
    method : {'sinkhorn_greedy', 'sinkhorn_accelerated', 'sinkhorn_log'}, optional
        The loop: greedy multimarginal Sinkhorn (default; Lin et al.,
        Algorithm 1), accelerated multimarginal Sinkhorn (fewer iterations at
        small ε; a numerically checked reconstruction of Lin et al.'s
        Algorithm 3, see :mod:`ot_multimarginal.strategies.accelerated`) or
        cyclic Sinkhorn.
    numItermax : int, optional
        Maximum number of iterations of the loop. If it is reached the plan
        is still exactly feasible, but the ε guarantee does not hold
        (``log['converged']`` is False; a ``UserWarning`` is emitted if ``warn``).
    verbose : bool, optional
        Print the loop's progress.
    log : bool, optional
        Also return a dict of details (see Returns).
    warn : bool, optional
        Warn when the loop stops before its tolerance.
    mode, memory_budget
        As for :func:`ot_multimarginal.emot_sinkhorn` (dense engine).
    free : sequence of int, optional
        Free nodes are **not supported** here: a non-empty ``free`` (or a
        structured cost whose ``free`` attribute is non-empty, unless
        ``free=()`` overrides it) raises ``ValueError``. The accuracy
        guarantee and the certified lower bound assume every marginal is
        prescribed (with a free node the entropic bias
        :math:`-\eta\langle r_i, \log a_i\rangle` is not bounded by
        :math:`\eta\log n_i`). Use :func:`ot_multimarginal.emot_lp` (exact)
        or :func:`ot_multimarginal.emot_sinkhorn` with a small ``reg``
        followed by ``round()``.
    **kwargs
        Passed to the loop (e.g. ``L`` for ``'sinkhorn_accelerated'``).

    Returns
    -------
    P : array-like of shape (n_1, ..., n_k), or FactoredPlan
        The rounded plan: dense, same backend/dtype/device as ``M``, for a
        dense cost; :class:`ot_multimarginal.plans.FactoredPlan` (Gibbs part
        plus rank-one part, never formed) for a structured cost.
    cost : backend scalar
        :math:`\langle C, P\rangle`.
    log : dict
        Returned if ``log=True``: ``lower_bound`` (the certified bound
        :math:`-\eta\,\phi(g; a) \le \mathrm{LP}^\star`, a float), ``primal``
        (:math:`\langle C, P\rangle` as a float), ``gap`` (``primal -
        lower_bound`` ≥ the true suboptimality), ``reg`` (η), ``eps_prime``,
        ``stopThr`` (ε'/2), ``cost_sup_norm`` (the :math:`\|C\|_\infty` used),
        ``smoothed_marginals`` (the :math:`\tilde a_i`), ``niter``, ``err``
        (error history of the loop, w.r.t. :math:`\tilde a`), ``converged``,
        ``method``, ``log_scalings`` (the loop's final :math:`g`) and
        ``rounded`` (the :class:`~ot_multimarginal.rounding.RoundedState`).

    Notes
    -----
    The guarantee (Lin et al. 2022): the entropic bias is at most
    :math:`\eta\sum_i\log n_i = \varepsilon/2`; the smoothing and the
    stopping tolerance leave a marginal error of at most :math:`\varepsilon'`
    with respect to the original weights, which the rounding repairs at a
    cost of at most :math:`2\varepsilon'\|C\|_\infty = \varepsilon/4`, and the
    same for comparing with the optimum on the smoothed marginals. The lower
    bound holds for any log-scalings :math:`g`, converged or not.

    Small ε means small η: use float64 (float32 cannot resolve the
    tolerance :math:`\varepsilon'/2` for most problems).

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.approx import emot_approx
    >>> M = np.random.RandomState(0).rand(4, 5, 6)
    >>> P, cost, log = emot_approx(None, M, 0.1, log=True)
    >>> bool(np.allclose(P.sum(axis=(0, 1)), 1 / 6))
    True
    >>> bool(log['lower_bound'] <= cost <= log['lower_bound'] + log['gap'] + 1e-12)
    True

    References
    ----------
    .. [1] T. Lin, N. Ho, M. Cuturi, M. I. Jordan, On the complexity of
       approximating multimarginal optimal transport, JMLR 23(65), 2022.
    .. [2] J. Altschuler, J. Weed, P. Rigollet, Near-linear time approximation
       algorithms for optimal transport via Sinkhorn iteration, NeurIPS 2017.
    """
    eps = check_reg(eps_accuracy, "eps_accuracy")
    method = check_solver_call("emot_approx", a_s, M, eps, method, {m: STRATEGIES[m] for m in _METHODS}, kwargs,
                               log=log, verbose=verbose, warn=warn)
    # validate with a placeholder reg, then rebuild the engine at eta
    engine, a_s = make_engine(a_s, M, 1.0, mode, memory_budget, detach=True)
    nx = engine.nx
    k = engine.k
    free = resolve_free(M, free, k)
    if free:
        raise ValueError(
            "emot_approx does not support free nodes (free=%s): its accuracy guarantee and "
            "certified lower bound need every marginal prescribed. Use emot_lp(..., free=...) "
            "for the exact problem, or emot_sinkhorn(..., free=...) with a small reg and "
            "round() the plan (pass free=() to ignore a PairwiseCost's free nodes)." % (free,)
        )
    sup = _cost_sup_norm(engine, M)
    eta, eps_prime, tol = approx_parameters(engine.shape, eps, sup)
    engine, _ = make_engine(a_s, M, eta, mode, memory_budget, detach=True)

    delta = eps_prime / (4.0 * k)
    a_tilde = [(1.0 - delta) * a + delta / n for a, n in zip(a_s, engine.shape)]
    g, info = solve_potentials(engine, a_tilde, method, numItermax, tol, verbose, warn, **kwargs)

    # certified lower bound, with the ORIGINAL weights
    log_z = nx.logsumexp(engine.log_marginal(g, 0))
    lower_bound = -eta * to_float(nx, dual_objective(nx, g, a_s, log_z))

    # normalise B(g) (exact block shift, keeps -inf entries) and round to a_s
    g_unit = [g[0] - log_z] + list(g[1:])
    state = round_to_feasible(engine, g_unit, a_s)
    factored = FactoredPlan(engine, state.g, a_s, rounded=state)
    if _is_structured(M):
        plan = factored
        cost = factored.linear_cost()
    else:
        plan = factored.to_dense(memory_budget)
        cost = nx.sum(M * plan)
    primal = to_float(nx, cost)
    if verbose:
        print("lower bound %.8e | rounded cost %.8e | gap %.3e (target eps %.3e)"
              % (lower_bound, primal, primal - lower_bound, eps))
    if not log:
        return plan, cost
    out = dict(info)
    out.update(
        lower_bound=lower_bound,
        primal=primal,
        gap=primal - lower_bound,
        reg=eta,
        eps_accuracy=eps,
        eps_prime=eps_prime,
        stopThr=tol,
        cost_sup_norm=sup,
        smoothed_marginals=a_tilde,
        log_scalings=g,
        rounded=state,
    )
    return plan, cost, out
