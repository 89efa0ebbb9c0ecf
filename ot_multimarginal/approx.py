# -*- coding: utf-8 -*-
r"""ε-approximation of the exact multimarginal OT problem (Lin, Ho, Cuturi, Jordan).

The recipe of Lin et al. (2022, Algorithm 2 and its accelerated variant)
turns an entropic solver into an approximation algorithm for the *linear
program*

.. math::
    \mathrm{LP}^\star = \min_{P \in \Pi(a_1, \dots, a_k)} \langle C, P\rangle :

1. :math:`\eta = \varepsilon / (2\sum_i \log n_i)` (:math:`\varepsilon/(2k\log n)`
   for equal sizes): the entropic bias :math:`\eta\,H(P) \le \varepsilon/2`;
2. :math:`\varepsilon' = \varepsilon / (8\,\mathrm{osc}(C))` with
   :math:`\mathrm{osc}(C) = \max C - \min C` (the range: every step is
   exact under constant shifts of the cost, where Lin et al.'s
   :math:`\|C\|_\infty` is not; the range is at most :math:`2\|C - c\|_\infty`
   for the centring constant, so the guarantee holds) and smoothed marginals
   :math:`\tilde a_i = (1 - \varepsilon'/(4k))\,a_i + \varepsilon'/(4k n_i)\,\mathbf 1`
   (bounded away from zero, :math:`\|\tilde a_i - a_i\|_1 \le \varepsilon'/(2k)`);
3. a Sinkhorn-type loop on :math:`(C, \eta, \tilde a)` until
   :math:`\sum_i\|r_i(B(g)) - \tilde a_i\|_1 \le \varepsilon'/2`;
   (or until the certified gap below is at most :math:`\varepsilon`, checked
   every few iterations, whichever comes first);
4. rounding of :math:`B(g)` onto :math:`\Pi(a_1, \dots, a_k)` with the
   **original** weights (:func:`ot_multimarginal.round_to_feasible`).

The returned plan has exactly the marginals :math:`a_i` and, when the loop
converged, :math:`\langle C, P\rangle \le \mathrm{LP}^\star + \varepsilon`.
The dual iterate also certifies a lower bound: for every :math:`g`,
:math:`\mathrm{LP}^\star \ge -\eta\,\phi(g; a)` with
:math:`\phi(g; a) = \log\|B(g)\|_1 - \sum_i\langle g_i, a_i\rangle` (original
weights), so ``log['gap']`` bounds the suboptimality of the plan without
solving the LP.
"""
# License: MIT License

from __future__ import annotations

import math
from typing import Any, Optional, Tuple, Union

from ._backend import to_float
from ._typing import Array, Cost, LogDict, Nodes, Weights
from ._validation import check_reg, check_solver_call
from ._warnings import warn_user
from .plans import FactoredPlan
from .rounding import round_to_feasible
from .sinkhorn import _is_structured, make_engine, resolve_free, solve_potentials
from .strategies import STRATEGIES
from .strategies._common import dual_objective

__all__ = ["emot_approx", "approx_parameters", "iteration_bound"]

_METHODS = ("sinkhorn_greedy", "sinkhorn_accelerated", "sinkhorn_log")
# engine passes per stopping check of each loop (the cyclic one checks every 10 sweeps of k passes)
_PASSES_PER_CHECK = {
    "sinkhorn_greedy": lambda k: 1,
    "sinkhorn_accelerated": lambda k: 3,
    "sinkhorn_log": lambda k: 10 * k,
}
# the certified gap costs about k + 3 passes; evaluate it after at least this many times as many loop passes
_GAP_CHECK_RATIO = 4


def _cost_range(engine, M):
    r""":math:`\mathrm{osc}(C) = \max C - \min C`, or an upper bound of it for structured costs.

    Dense: ``max M - min M``. Structured: ``M.cost_range`` (attribute or
    method) if the cost object defines it, else
    :math:`\sum_x (\max x - \min x)` over the engine's ``cost_inputs()``
    (an upper bound for costs that are sums of their inputs, such as
    pairwise costs on a graph). A larger value only makes the tolerance
    stricter, so an upper bound keeps the guarantee. Unlike
    :math:`\|C\|_\infty`, the range does not change when a constant is
    added to the cost, and neither does any step of :func:`emot_approx`.
    """
    nx = engine.nx
    if not _is_structured(M):
        return to_float(nx, nx.max(M)) - to_float(nx, nx.min(M))
    rng = getattr(M, "cost_range", None)
    if rng is not None:
        return float(rng() if callable(rng) else rng)
    return sum(to_float(nx, nx.max(x)) - to_float(nx, nx.min(x)) for x in engine.cost_inputs())


def approx_parameters(shape, eps_accuracy, cost_range):
    r"""Lin et al.'s parameters ``(eta, eps_prime, stopThr)`` for an ε-approximation.

    :math:`\eta = \varepsilon/(2\sum_i\log n_i)`,
    :math:`\varepsilon' = \min(1, \varepsilon/(8\,\mathrm{osc}(C)))` with
    :math:`\mathrm{osc}(C) = \max C - \min C` (``cost_range``; the cap only
    matters for costs whose range is below ε/8, where any plan is ε-optimal)
    and the tolerance :math:`\varepsilon'/2` of the loop.
    """
    eps = check_reg(eps_accuracy, "eps_accuracy")
    h_max = sum(math.log(n) for n in shape)
    eta = eps / (2.0 * h_max) if h_max > 0 else eps
    eps_prime = 1.0 if cost_range <= 0 else min(1.0, eps / (8.0 * cost_range))
    return eta, eps_prime, eps_prime / 2.0


def iteration_bound(cost_range, eta, stopThr, a_tilde_ratios):
    r"""Iterations after which greedy Sinkhorn is guaranteed to reach ``stopThr``.

    With :math:`R = \mathrm{osc}(C)/\eta + \max_i \log(\max\tilde a_i/\min\tilde a_i)`
    (``a_tilde_ratios``: the k ratios :math:`\max\tilde a_i/\min\tilde a_i`
    of the smoothed weights) and :math:`\delta` = ``stopThr``, the greedy
    loop stops after at most

    .. math::
        t \le 2 + 4k^2 R/\delta

    iterations (the argument of Altschuler et al. 2017 and Lin et al. 2022,
    written with the range of the cost). Proof:
    every block of every iterate and of the optimum has oscillation at most
    :math:`R` (each is :math:`\log\tilde a_i` or an exact block minimiser),
    so by convexity :math:`\phi(g) - \phi^\star \le E\,R` where :math:`E` is
    the marginal error; a greedy step decreases :math:`\phi` by at least
    :math:`E^2/(2k^2)` (Pinsker on the block of largest divergence). While
    :math:`E > \delta`, :math:`2k^2R/\delta` steps bring
    :math:`\phi - \phi^\star` below :math:`R\delta`, and at most as many
    more exhaust it. The bound depends on the cost only through its range.
    """
    k = len(a_tilde_ratios)
    R = cost_range / eta + max(math.log(r) for r in a_tilde_ratios)
    return int(math.ceil(2 + 4.0 * k * k * R / stopThr))


class _CertifiedGap:
    r"""The certified gap of the rounded plan at log-scalings ``g``, evaluated every ``every`` checks.

    Used as the loop's ``stop_rule``: stop once
    :math:`\langle C, \mathrm{round}(B(g))\rangle + \eta\,\phi(g; a) \le \varepsilon`.
    Each evaluation costs k + 1 engine passes (rounding), one for the
    partition function and the cost of the rounded plan. The last
    evaluation is kept (``self.last``) so the final plan is not recomputed.
    """

    def __init__(self, engine, M, a_s, eta, eps, every, memory_budget):
        self.engine, self.M, self.a_s, self.eta, self.eps = engine, M, a_s, eta, eps
        self.every, self.memory_budget = every, memory_budget
        self.calls = 0
        self.last = None

    def evaluate(self, g):
        engine, nx = self.engine, self.engine.nx
        log_r0 = engine.log_marginal(g, 0)
        log_z = nx.logsumexp(log_r0)  # log-mass of B(g), the tensor that is rounded
        # the dual bound needs the partition function of the cost as given (engine.log_partition: the same
        # number unless the engine centres its cost by a constant)
        log_part = engine.log_partition(g, log_r0)
        lower_bound = -self.eta * to_float(nx, dual_objective(nx, g, self.a_s, log_part))
        # normalise B(g) (exact block shift, keeps -inf entries) and round to a_s
        g_unit = [g[0] - log_z] + list(g[1:])
        state = round_to_feasible(engine, g_unit, self.a_s)
        factored = FactoredPlan(engine, state.g, self.a_s, rounded=state)
        if _is_structured(self.M):
            plan = factored
            cost = factored.linear_cost()
        else:
            plan = factored.to_dense(self.memory_budget)
            cost = nx.sum(self.M * plan)
        primal = to_float(nx, cost)
        self.last = dict(
            g=list(g),
            plan=plan,
            cost=cost,
            primal=primal,
            lower_bound=lower_bound,
            gap=primal - lower_bound,
            state=state,
        )
        return self.last

    def __call__(self, g, err):
        self.calls += 1
        if self.calls % self.every:
            return False
        return self.evaluate(g)["gap"] <= self.eps


def emot_approx(
    a_s: Weights,
    M: Cost,
    eps_accuracy: float,
    method: str = "sinkhorn_log",
    numItermax: Optional[int] = None,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    mode: str = "scaling",
    memory_budget: Optional[int] = None,
    free: Nodes = None,
    blas_threads: Union[str, int, None] = "auto",
    **kwargs: Any,
) -> Union[Tuple[Union[Array, FactoredPlan], Array], Tuple[Union[Array, FactoredPlan], Array, LogDict]]:
    r"""Solve the exact multimarginal OT problem to an additive accuracy ε, certified (Lin et al. 2022).

    Returns a plan :math:`P \in \Pi(a_1, \dots, a_k)` (marginals exact to
    rounding error) with

    .. math::
        \langle C, P\rangle \le \min_{Q \in \Pi(a_1, \dots, a_k)} \langle C, Q\rangle + \varepsilon

    by the recipe of Lin, Ho, Cuturi and Jordan: entropic regularisation
    :math:`\eta = \varepsilon/(2\sum_i\log n_i)`, marginals smoothed by
    :math:`\varepsilon' = \varepsilon/(8\,\mathrm{osc}(C))`
    (:math:`\mathrm{osc}(C) = \max C - \min C`), a Sinkhorn-type loop, then
    the rounding onto the exact transport polytope (original weights). The
    loop stops as soon as either

    - the marginal error is at most :math:`\varepsilon'/2` (Lin et al.'s
      tolerance, which implies the guarantee), or
    - the *certified gap* of the rounded plan, :math:`\langle C, P\rangle`
      minus a lower bound on the LP computed from the dual iterate, is at
      most :math:`\varepsilon` (checked every few iterations; it is usually
      reached long before the tolerance).

    The loop is stopped only at ``numItermax``, which defaults to the number
    of iterations the theory guarantees to be enough; if a smaller cap is
    reached first, the plan is still exactly feasible and the warning and
    ``log`` say which gap *was* certified.

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
        the units of the cost). It also sets the regularisation, which
        is therefore not a parameter here (``log['reg']`` reports it).
    method : {'sinkhorn_log', 'sinkhorn_greedy', 'sinkhorn_accelerated'}, optional
        The loop: cyclic Sinkhorn (default: the k blocks in turn, one
        engine marginal per block update), greedy multimarginal Sinkhorn
        (Lin et al., Algorithm 1: the block of largest divergence first,
        one pass of all k marginals per update) or accelerated
        multimarginal Sinkhorn (a numerically checked reconstruction of Lin
        et al.'s Algorithm 3, see
        :mod:`ot_multimarginal.strategies.accelerated`). All three stop on
        the same two rules. The cyclic loop usually reaches the certified
        target first (see the documentation's performance notes).
    numItermax : int, optional
        Maximum number of iterations of the loop (sweeps for the cyclic
        method). Default ``None``: the bound of ``ot_multimarginal.approx.iteration_bound``,
        after which greedy Sinkhorn is guaranteed to have reached the
        tolerance (for the other two methods the same number, a budget of
        the same order of work; in practice every method stops on the
        certified gap long before). If the cap is reached first the plan is
        exactly feasible but the guarantee is not established: ``log``
        reports the certified ``gap`` (an upper bound on
        :math:`\langle C, P\rangle - \mathrm{LP}^\star`), and a
        ``UserWarning`` is emitted if ``warn``.
    verbose : bool, optional
        Print the loop's progress (for the greedy and accelerated loops the
        columns are the marginal error ``Err`` with respect to the smoothed
        weights and ``Dual``, Lin et al.'s dual objective
        :math:`\phi(g) = \log\|B(g)\|_1 - \sum_i\langle g_i, \tilde a_i\rangle`
        with :math:`B(g) = \exp(\oplus_i g_i - C/\eta)`; it never increases,
        and :math:`-\eta\,\phi` evaluated with the original weights is the
        certified lower bound), then the final bounds.
    log : bool, optional
        Also return a dict of details (see Returns).
    warn : bool, optional
        Warn when the loop stops before the accuracy target is established.
    mode : {'scaling', 'log'}, optional
        How the dense engine computes marginals (see
        :func:`~ot_multimarginal.emot_sinkhorn`); ignored for structured costs.
    memory_budget : int, optional
        Bytes the dense tensors may take (see
        :func:`~ot_multimarginal.emot_sinkhorn`).
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
    blas_threads : 'auto', int or None, optional
        Threads of the loop's matrix products (see
        :func:`~ot_multimarginal.emot_sinkhorn`).
    **kwargs
        Options of the loop: ``relaxation``, ``check_every`` and
        ``sync_free`` for ``'sinkhorn_log'``; ``L``, ``print_every``,
        ``check_every`` and ``sync_free`` for ``'sinkhorn_accelerated'``;
        ``print_every``, ``check_every`` and ``sync_free`` for
        ``'sinkhorn_greedy'`` (see :func:`~ot_multimarginal.emot_sinkhorn`).
        Anything else (``reg`` included) raises ``TypeError``.

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
        (:math:`\langle C, P\rangle` as a float), ``value`` (the same as the
        second returned item, a backend scalar), ``gap`` (``primal -
        lower_bound`` ≥ the true suboptimality), ``converged`` (the
        guarantee :math:`\langle C, P\rangle - \mathrm{LP}^\star \le \varepsilon`
        holds: by the tolerance or by the certificate), ``certified``
        (``gap <= eps_accuracy``), ``stop_reason`` (``'tolerance'``,
        ``'certified_gap'`` or ``'numItermax'``), ``reg`` (η),
        ``eps_accuracy``, ``eps_prime``, ``stopThr`` (ε'/2),
        ``cost_range`` (the :math:`\mathrm{osc}(C)` used), ``numItermax``
        (the cap used), ``smoothed_marginals`` (the :math:`\tilde a_i`),
        ``niter``, ``err`` (error history of the loop, w.r.t. :math:`\tilde a`),
        ``method``, ``log_scalings`` (the loop's final :math:`g`) and
        ``rounded`` (the :class:`~ot_multimarginal.rounding.RoundedState`).

    Notes
    -----
    The guarantee (Lin et al. 2022): the entropic bias is at most
    :math:`\eta\sum_i\log n_i = \varepsilon/2`; the smoothing and the
    stopping tolerance leave a marginal error of at most :math:`\varepsilon'`
    with respect to the original weights, which the rounding repairs at a
    cost of at most :math:`2\varepsilon'\,\mathrm{osc}(C) = \varepsilon/4`,
    and the same for comparing with the optimum on the smoothed marginals.
    (Lin et al. state it with :math:`\|C\|_\infty`; every quantity involved
    is unchanged when a constant is added to :math:`C`, and for the
    centred cost :math:`\|C - c\|_\infty = \mathrm{osc}(C)/2`.) The lower
    bound :math:`\mathrm{LP}^\star \ge -\eta\,\phi(g; a)` holds for any
    log-scalings :math:`g`, converged or not, which is what makes the gap
    a certificate.

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
    >>> log['converged'], log['gap'] <= 0.1
    (True, True)

    References
    ----------
    .. [1] T. Lin, N. Ho, M. Cuturi, M. I. Jordan, On the complexity of
       approximating multimarginal optimal transport, JMLR 23(65), 2022.
    .. [2] J. Altschuler, J. Weed, P. Rigollet, Near-linear time approximation
       algorithms for optimal transport via Sinkhorn iteration, NeurIPS 2017.
    """
    eps = check_reg(eps_accuracy, "eps_accuracy")
    if "reg" in kwargs:
        raise TypeError(
            "emot_approx() got an unexpected keyword argument 'reg': the regularisation is set from "
            "eps_accuracy (reg = eps_accuracy / (2 sum_i log n_i), reported as log['reg']); to trade "
            "accuracy for speed, pass a larger eps_accuracy"
        )
    method = check_solver_call(
        "emot_approx",
        a_s,
        M,
        eps,
        method,
        {m: STRATEGIES[m] for m in _METHODS},
        kwargs,
        log=log,
        verbose=verbose,
        warn=warn,
    )
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
    cost_range = _cost_range(engine, M)
    eta, eps_prime, tol = approx_parameters(engine.shape, eps, cost_range)
    engine, _ = make_engine(a_s, M, eta, mode, memory_budget, detach=True)

    delta = eps_prime / (4.0 * k)
    a_tilde = [(1.0 - delta) * a + delta / n for a, n in zip(a_s, engine.shape)]
    if numItermax is None:
        ratios = [to_float(nx, nx.max(a)) / to_float(nx, nx.min(a)) for a in a_tilde]
        numItermax = iteration_bound(cost_range, eta, tol, ratios)
    every = max(1, int(math.ceil(_GAP_CHECK_RATIO * (k + 3) / _PASSES_PER_CHECK[method](k))))
    certifier = _CertifiedGap(engine, M, a_s, eta, eps, every, memory_budget)
    g, info = solve_potentials(
        engine,
        a_tilde,
        method,
        numItermax,
        tol,
        verbose,
        False,
        blas_threads=blas_threads,
        stop_rule=certifier,
        **kwargs,
    )

    last = certifier.last
    if last is None or not all(x is y for x, y in zip(last["g"], g)):
        last = certifier.evaluate(g)
    plan, cost, primal, lower_bound, gap = last["plan"], last["cost"], last["primal"], last["lower_bound"], last["gap"]
    certified = gap <= eps
    tolerance_met = info["err"][-1] <= info["stopThr"]
    converged = tolerance_met or certified
    stop_reason = "tolerance" if tolerance_met else ("certified_gap" if certified else "numItermax")
    if verbose:
        print(
            "lower bound %.8e | rounded cost %.8e | certified gap %.3e (target eps %.3e, %s)"
            % (lower_bound, primal, gap, eps, stop_reason)
        )
    if warn and not converged:
        warn_user(
            "emot_approx(method=%r) stopped at numItermax=%d before its accuracy target: the rounded plan is "
            "exactly feasible, with certified gap cost - lower_bound = %.3e > eps_accuracy = %.3e (marginal "
            "error %.3e > tolerance %.3e). Increase numItermax (None: the theoretical bound) or eps_accuracy."
            % (method, info["niter"], gap, eps, info["err"][-1], info["stopThr"])
        )
    if not log:
        return plan, cost
    out = dict(info)
    out.update(
        lower_bound=lower_bound,
        primal=primal,
        value=cost,
        gap=gap,
        converged=converged,
        certified=certified,
        stop_reason=stop_reason,
        reg=eta,
        eps_accuracy=eps,
        eps_prime=eps_prime,
        stopThr=tol,
        cost_range=cost_range,
        numItermax=numItermax,
        smoothed_marginals=a_tilde,
        log_scalings=g,
        rounded=last["state"],
    )
    return plan, cost, out
