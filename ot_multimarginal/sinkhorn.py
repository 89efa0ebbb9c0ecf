# -*- coding: utf-8 -*-
r"""Entropic multimarginal optimal transport: the public Sinkhorn calls.

Validation, choice of engine (dense tensor or graph-structured cost), the
loop (a strategy from :mod:`ot_multimarginal.strategies`), and the value,
gradients and ``log`` dict of a finished solve.
"""
# License: MIT License

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Tuple, Union

from ._typing import Array, Cost, LogDict, Nodes, Weights

if TYPE_CHECKING:  # pragma: no cover
    from .plans import FactoredPlan

from ._backend import dtype_info, safe_log
from ._threads import engine_threads
from ._validation import (
    backend_of,
    check_array,
    check_choice,
    check_cost_tensor,
    check_finite_result,
    check_free,
    check_iteration_args,
    check_memory_budget,
    check_method,
    check_not_pot_signature,
    check_reg,
    check_solver_call,
    check_solver_kwargs,
    check_warmstart,
    check_weights,
)
from .marginals.dense import DenseEngine
from .potentials import Potentials
from .strategies import STRATEGIES
from .strategies._common import NonFiniteIterate, warn_not_converged
from .unbalanced import check_unbalanced_method, make_penalties, unbalanced_value, weight_gradients

__all__ = [
    "emot_sinkhorn",
    "emot_sinkhorn2",
    "make_engine",
    "solve_potentials",
    "resolve_free",
]

_GRAD_PLAN = ("autodiff", "detach")
_GRAD_VALUE = ("envelope", "autodiff", "detach")


def _is_structured(M):
    return hasattr(M, "make_engine")


def make_engine(a_s, M, reg, mode="scaling", memory_budget=None, detach=False, unbalanced=False):
    """Validate ``(a_s, M, reg)`` and build the engine for ``M``.

    Returns ``(engine, a_s)`` with the weights as validated backend arrays
    (``unbalanced``: each keeps its own mass, see :mod:`ot_multimarginal.unbalanced`).
    ``M`` is either a dense cost tensor or a structured cost object (one with
    a ``make_engine`` method, such as :class:`ot_multimarginal.PairwiseCost`).
    """
    check_not_pot_signature(a_s, M, reg)
    reg = check_reg(reg)
    memory_budget = check_memory_budget(memory_budget)
    mode = check_choice("mode", mode, ("scaling", "log"))
    if _is_structured(M):
        nx = backend_of(a_s=a_s, M=M.type_as)
        shape = tuple(M.shape)
        type_as = M.type_as
    else:
        nx = backend_of(a_s=a_s, M=check_array("M", M, "the cost tensor, or a PairwiseCost"))
        # the memory guard runs before the finiteness scan of a (possibly huge, broadcast) M
        check_cost_tensor(nx, M, memory_budget=memory_budget, n_buffers=DenseEngine.n_buffers)
        shape = tuple(M.shape)
        type_as = M
    a_s = check_weights(nx, a_s, shape, type_as, mass="any" if unbalanced else 1.0)
    if detach:
        a_s = [nx.detach(a) for a in a_s]
    if _is_structured(M):
        engine = M.make_engine(reg, memory_budget=memory_budget)
    else:
        engine = DenseEngine(M, reg, nx, mode=mode, memory_budget=memory_budget)
    if detach:
        engine = engine.detached()
    return engine, a_s


def resolve_free(M, free, k):
    """The validated free nodes of a solve: ``free``, else the cost's own ``M.free``, else none.

    An explicit ``free`` (even ``()``) overrides the ``free`` attribute of a
    structured cost such as :class:`~ot_multimarginal.PairwiseCost`.
    """
    if free is None:
        free = getattr(M, "free", None) if _is_structured(M) else None
    return check_free(free, k)


def _initial_scalings(engine, a_s, log_a, warmstart, free=(), rescale=True):
    nx = engine.nx
    if warmstart is None:
        return list(log_a)
    if not isinstance(warmstart, (list, tuple)) or len(warmstart) != engine.k:
        raise ValueError("warmstart must be a list of %d potentials (log['potentials'] of a previous solve)" % engine.k)
    for i, phi in enumerate(warmstart):
        if tuple(phi.shape) != (engine.shape[i],):
            raise ValueError("warmstart[%d] must have shape (%d,), got %s" % (i, engine.shape[i], tuple(phi.shape)))
    phi = [nx.detach(p) + nx.zeros(la.shape, type_as=la) for p, la in zip(warmstart, log_a)]
    pot = Potentials(engine, phi, a_s, free, log_a)
    # potentials of another cost (an outer loop's previous solve) can put the plan's mass at e^{±1000}:
    # normalise it to one (the exact dual minimisation along the first prescribed block); not for
    # unbalanced problems, whose mass is part of the answer
    return (pot.normalized() if rescale else pot).log_scalings


def solve_potentials(
    engine,
    a_s,
    method="sinkhorn_log",
    numItermax=1000,
    stopThr=1e-9,
    verbose=False,
    warn=True,
    warmstart=None,
    free=(),
    blas_threads="auto",
    unbalanced=None,
    **kwargs,
):
    r"""Run the loop ``method`` on ``engine``: the part every public call shares.

    ``free`` (node indices, see :func:`~ot_multimarginal._validation.check_free`)
    are the marginals left free: the loop updates the other blocks only
    (passed to the strategy as ``blocks``), and a free block keeps
    :math:`g_i = \log a_i` (:math:`\varphi_i = 0`).

    The loop runs inside :func:`~ot_multimarginal._threads.engine_threads`
    (``blas_threads``: ``'auto'``, an int or ``None``).

    ``unbalanced`` (a :class:`~ot_multimarginal.unbalanced.MarginalPenalties`,
    cyclic method only) replaces the marginal constraints by KL penalties.

    Returns ``(g, info)``: the log-scalings and the loop's info dict
    (``info['free']``: the free nodes).
    """
    method = check_method(method, STRATEGIES)
    check_solver_kwargs("solve_potentials", method, kwargs, STRATEGIES[method], own=("stop_rule",))
    if unbalanced is not None:
        check_unbalanced_method(method)
        kwargs["unbalanced"] = unbalanced
    numItermax, stopThr = check_iteration_args(numItermax, stopThr)
    warmstart = check_warmstart(engine.nx, warmstart, engine.shape, engine.type_as)
    free = check_free(free, engine.k)
    blocks = tuple(i for i in range(engine.k) if i not in free)
    nx = engine.nx
    # a positive threshold below what the dtype can resolve (float32 with the default 1e-9)
    # would never be reached: use the dtype's floor instead (stopThr=0 still means "run all")
    eps, _ = dtype_info(nx, engine.type_as)
    floor = 10.0 * engine.k * eps
    if 0 < stopThr < floor:
        stopThr = floor
    log_a = [safe_log(nx, a) for a in a_s]
    g0 = _initial_scalings(engine, a_s, log_a, warmstart, free, rescale=unbalanced is None)
    try:
        with engine_threads(engine, blas_threads):
            g, info = STRATEGIES[method](
                engine, a_s, log_a, g0, numItermax, stopThr, verbose=verbose, blocks=blocks, **kwargs
            )
    except NonFiniteIterate as e:
        raise FloatingPointError(
            "%s: the iterations produced NaN or inf (%s). With reg=%g the kernel may be too "
            "peaked for this dtype: use float64, a larger reg, or rescale the cost." % (method, e, engine.reg)
        ) from None
    info["method"] = method
    info["stopThr"] = stopThr
    info["free"] = free
    if warn and not info["converged"]:
        warn_not_converged(method, info["err"][-1], stopThr, info["niter"], eps, floor, info["err"])
    return g, info


def solve_detached(a_s, M, reg, method, numItermax, stopThr, warmstart=None, **kwargs):
    r"""The potentials of a balanced solve without a plan or a log: ``(Potentials, info)``, no warning.

    For internal loops that need only the potentials (GW inner solves, the neural ``refine``):
    :func:`emot_sinkhorn`'s log would compute the value and :math:`\langle C, P\rangle` by log-domain
    products, more than a whole Newton solve at k = 3, n >= 300.
    """
    engine, a_s = make_engine(a_s, M, reg, detach=True)
    g, info = solve_potentials(
        engine, a_s, method, numItermax, stopThr, warn=False, warmstart=warmstart, free=(), **kwargs
    )
    return Potentials.from_scalings(engine, g, a_s), info


def _log_dict(pot, info, value=None, value_linear=None, log_r=None, penalties=None):
    nx = pot.nx
    if value is None:
        value, log_r = pot.value(log_marginals=True)
        value_linear = pot.linear_cost()
    out = dict(info)
    out.update(
        # the log keeps the potentials, not the solve's buffers (a dense kernel is the size of the tensor)
        potentials=Potentials.from_scalings(
            pot.engine.without_caches(), pot.log_scalings, pot.a_s, pot.free, pot.log_a
        ),
        cost_offset=pot.cost_offset,
        log_scalings=pot.log_scalings,
        value=value,
        value_linear=value_linear,
        marginals=[nx.exp(lr) for lr in log_r],
    )
    if hasattr(pot.engine, "n_absorptions"):
        out["n_absorptions"] = pot.engine.n_absorptions
    if penalties is not None:
        out["reg_m"] = penalties.reg_m
    return out


_COMMON_PARAMS = r"""
    a_s : list of k array-like of shape (n_i,), or None
        Weights of the k marginals, each summing to one. ``None`` (or a
        ``None`` entry) means uniform. For a free node (``free``) the weights
        are the reference measure of the KL term only, not a constraint.
    M : array-like of shape (n_1, ..., n_k), or a structured cost
        Cost tensor :math:`C`, or a cost object such as
        :class:`~ot_multimarginal.PairwiseCost` (pairwise costs on a graph),
        in which case the tensor is never formed.
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`.
    method : str, optional
        Loop around the marginalisation engine: ``'sinkhorn_log'`` (cyclic
        block updates in the log domain, default; ``relaxation=`` turns on
        safeguarded over-relaxation, see ``**kwargs``)%s. POT's name
        ``'sinkhorn'`` is accepted for the cyclic method.
    numItermax : int, optional
        Maximum number of iterations (sweeps over the k blocks for the cyclic method).
    stopThr : float, optional
        Stop when :math:`\sum_i \|P_i - a_i\|_1 \le` ``stopThr`` (sum of the L1
        marginal errors; checked every 10 sweeps by the cyclic method, every
        iteration by the greedy and accelerated ones, which in sync-free mode
        read the errors every ``check_every`` iterations and still stop at the
        first iterate below the threshold). A positive value below
        the dtype's resolution, 10·k·eps (3.6e-6 for k = 3 in float32), is
        raised to it, so float32 does not always warn; ``log['stopThr']`` is
        the threshold used.
    verbose : bool, optional
        Print the error during the iterations: columns ``It.`` and ``Err``
        (the stopping error); the greedy and accelerated methods add
        ``Dual``, Lin et al.'s dual objective
        :math:`\phi(g) = \log\|B(g)\|_1 - \sum_i\langle g_i, a_i\rangle`
        with :math:`B(g) = \exp(\oplus_i g_i - C/\varepsilon)` and
        :math:`g_i = \varphi_i/\varepsilon + \log a_i` (the log-scalings).
        It never increases; at the optimum it equals
        :math:`-\mathrm{value}/\varepsilon + \sum_i H(a_i)`
        (:math:`H(a) = -\sum_j a_j\log a_j`), so its decrease shows the
        progress of the dual.
    log : bool, optional
        Also return a dict with the solve's details (see Returns).
    warn : bool, optional
        Emit a ``UserWarning`` if the error is still above ``stopThr`` at the end.
    warmstart : list of k arrays, optional
        Dual potentials from a previous solve (``log['potentials']``).
"""

_ENGINE_PARAMS = r"""    mode : {'scaling', 'log'}, optional
        How the dense engine computes marginals: stabilised scaling (matrix
        products on an absorbed kernel, log-domain fallback; default) or
        plain log-sum-exp. Ignored for structured costs.
    memory_budget : int, optional
        Bytes the dense tensors may take; default half the available memory
        (of the GPU for CUDA tensors). Larger problems raise ``MemoryError``
        at once, before allocating.
    free : sequence of int, optional
        Nodes whose marginal is *not* prescribed (see Notes), e.g. the centre
        of a star whose plan's marginal is a barycenter. Distinct indices in
        ``[0, k)``, at least one node prescribed. ``None`` (default): the
        cost's own ``free`` attribute for a structured cost
        (:attr:`PairwiseCost.free <ot_multimarginal.PairwiseCost>`), else
        none; an explicit value (``()`` included) overrides it.
    blas_threads : 'auto', int or None, optional
        Threads of the loop's matrix products, BLAS (through threadpoolctl)
        and torch's intra-op pool alike, restored on return (see
        :func:`ot_multimarginal.blas_threads`). ``'auto'`` (default): one
        thread when a sweep's largest product is small (about
        :math:`2\cdot 400^3` flops, below which a second thread was measured
        to slow most sizes down), else the process's settings; an int: that many; ``None``:
        leave the settings alone. The limits are process-wide while the
        loop runs.
    reg_m : float or sequence of k floats, optional
        Unbalanced EMOT (POT's name): the marginal constraints become KL
        penalties :math:`\sum_i \rho_i\,\mathrm{KL}(r_i(P)\,\|\,a_i)`
        (see Notes), one :math:`\rho_i > 0` per marginal or one for all;
        ``inf`` keeps marginal ``i`` a constraint, so balanced, penalised
        and ``free`` nodes mix. The weights then keep their own masses
        (balanced ones must share theirs). ``None`` (default): balanced.
        Cyclic method only (``ValueError`` otherwise), without
        ``relaxation``; the plan's marginals are in ``log['marginals']``. See
        :mod:`ot_multimarginal.unbalanced`.
    **kwargs
        Options of the chosen ``method``'s loop (a name that is not one
        raises a ``TypeError`` listing the valid ones):

        - ``relaxation`` (``'sinkhorn_log'``): float in [1, 2) or ``'auto'``.
          Over-relaxation factor ω of the block updates
          :math:`g_i \leftarrow g_i + \omega(\log a_i - \log r_i)`
          (default 1: plain Sinkhorn). A relaxed step is taken only when it
          keeps at least a tenth of the plain step's decrease of the dual, so
          the dual still decreases monotonically; ``'auto'`` sets
          :math:`\omega = 2/(1+\sqrt{1-\rho})` (capped at 1.9) from the
          linear rate ρ of the first 30 plain sweeps. In the slow linear regime
          of small ε it can cut the sweeps 3–5× (see
          :mod:`ot_multimarginal.strategies.cyclic`); ``log['relaxation']`` is
          the ω used.
        - ``check_every`` (``'sinkhorn_log'``, and ``'sinkhorn_greedy'``,
          ``'sinkhorn_accelerated'`` in sync-free mode): int >= 1, sweeps
          (iterations) between two checks of the stopping error (default 10).
        - ``sync_free`` (``'sinkhorn_log'``, ``'sinkhorn_greedy'``,
          ``'sinkhorn_accelerated'``): bool or None. Torch only: no host
          synchronisation between two checks of the stopping error, one per
          check (``None``, the default: on a non-CPU device, e.g. a GPU,
          where each synchronisation makes the host wait for the device's
          queue; NumPy reads as it goes). The engines' underflow and range
          tests, the greedy block choice and the accelerated safeguard stay
          on the device; a failed engine test is caught at the check and the
          iterations since the previous check are redone on the checked
          path (``log['n_redone']``), so the iterates are the same, to
          rounding. The greedy step then writes every candidate block (the
          chosen one with its update), so engines that reuse work between
          passes when a single block changes (the tree messages, the dense
          engine's contraction) redo it: up to twice the work of a pass on
          the CPU (see :mod:`ot_multimarginal.strategies._deferred`).
        - ``print_every`` (``'sinkhorn_greedy'``, ``'sinkhorn_accelerated'``):
          int >= 1, iterations between two rows of the ``verbose`` output
          (default 10).
        - ``L`` (``'sinkhorn_accelerated'``): float, the smoothness constant
          of the dual used for the gradient steps (default: the number of
          prescribed marginals, the proven bound; see
          :mod:`ot_multimarginal.strategies.accelerated`).
        - ``damping`` (``'sinkhorn_newton'``): float >= 0, the
          Levenberg–Marquardt factor added to the Newton system (default
          1e-4; see :mod:`ot_multimarginal.strategies.newton`).
"""

_FREE_NOTES = r"""
    Notes
    -----
    **Free nodes.** With a set :math:`F` of free nodes (``free``) the problem is

    .. math::
        \min_{P \ge 0}\ \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P \,\|\, a_1\otimes\cdots\otimes a_k)
        \quad\text{s.t.}\quad r_i(P) = a_i \ \ (i \notin F),

    where :math:`r_i(P)` is the i-th marginal and
    :math:`\mathrm{KL}(P\|Q) = \sum P\log(P/Q) - \sum P + \sum Q`. For
    :math:`i \in F`, :math:`a_i` is only the reference measure of the
    entropy; the i-th marginal of the solution is free (for a star whose
    centre is free, it is the entropic multimarginal barycenter of the other
    nodes on the centre's support). The dual,

    .. math::
        \max_{\varphi}\ \sum_{i \notin F}\langle \varphi_i, a_i\rangle
        - \varepsilon \sum_I \Big(\prod_i a_{i, I_i}\Big)
        e^{(\sum_{i \notin F}\varphi_{i, I_i} - C_I)/\varepsilon} + \varepsilon,

    has :math:`\varphi_i \equiv 0` for :math:`i \in F`: the log-scaling :math:`g_i = \log a_i` is never
    updated, the loops update the prescribed blocks only, and the stopping
    error sums over the prescribed marginals. The plan is
    :math:`P = \exp((\oplus_{i\notin F}\varphi_i - C)/\varepsilon)\cdot\otimes_i a_i`;
    the value is still
    :math:`\sum_{i\notin F}\langle r_i, \varphi_i\rangle - \varepsilon(\|P\|_1 - 1)`.
    ``log['marginals']`` holds all k marginals of :math:`P` (on a free node:
    the solution's own marginal).

    **Unbalanced EMOT** (``reg_m`` = :math:`\rho`). The problem becomes

    .. math::
        \min_{P \ge 0}\ \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P \,\|\, \otimes_i a_i)
        + \sum_{i} \rho_i\,\mathrm{KL}(r_i(P) \,\|\, a_i)

    (generalised KL, mass terms included; :math:`\rho_i = \infty`: the
    constraint :math:`r_i(P) = a_i`; a free node: no term). The cyclic
    loop takes the scaled block step
    :math:`\varphi_i \leftarrow \rho_i/(\rho_i+\varepsilon)\,(\varphi_i + \varepsilon\log(a_i/r_i))`
    in the log domain, on any engine. ``value`` is this objective at the
    plan; for k = 2 it is ``ot.unbalanced.sinkhorn_unbalanced(...,
    reg_type='kl', log=True)[1]['total_cost']`` (= ``ot.solve(...,
    unbalanced=rho).value``, whose KL terms have no mass terms) plus
    :math:`\varepsilon(\|a\|_1\|b\|_1 - m) + \sum_{i:\rho_i<\infty}\rho_i(\|a_i\|_1 - m)`,
    :math:`m = \|P\|_1`; ``value_linear`` is
    ``ot.unbalanced.sinkhorn_unbalanced2``'s default (linear) value. Unlike
    the balanced value, it is not invariant under constant shifts of the
    cost (a dearer transport moves less mass).

    **Constant shifts.** Adding a constant :math:`c` to the cost (for a
    pairwise cost: to any edge matrix) leaves the plan unchanged and adds
    :math:`c\|P\|_1` to the value and to ``value_linear`` (:math:`\|P\|_1 = 1`
    up to the solver's tolerance) and :math:`c` to the first prescribed
    potential. The engines remove a constant :math:`c_0` from the cost before
    dividing by :math:`\varepsilon` (``log['cost_offset']``; the minimum of
    the tensor or of each edge matrix, 0 for a non-negative cost whose minimum
    is at most its range), so costs of any sign and size, such as
    Gromov-Wasserstein or inner-product costs, neither overflow nor lose
    precision (see :mod:`ot_multimarginal.marginals.base`).
"""

_LOG_DOC = r"""
    log : dict
        Returned if ``log=True``: ``potentials`` (k dual vectors
        :math:`\varphi_i`, with :math:`P = \exp((\oplus_i\varphi_i - C)/\varepsilon)\cdot\otimes_i a_i`),
        ``cost_offset`` (the constant :math:`c_0` the engine removed from the
        cost, see Notes), ``log_scalings`` (:math:`g_i = \varphi_i/\varepsilon + \log a_i`,
        :math:`c_0` taken off the first prescribed potential: those of the
        centred cost :math:`C - c_0`, what the engines and
        :class:`~ot_multimarginal.plans.FactoredPlan` take), ``err``
        (history of the stopping error), ``niter``, ``converged``, ``value``,
        ``value_linear`` (:math:`\langle C,P\rangle`), ``marginals`` (all k,
        free nodes included), ``free`` (the tuple of free nodes) and ``method``.
"""

_METHODS_DOC = (
    ", ``'sinkhorn_greedy'`` (update the block with the largest marginal divergence, Lin et al. 2022),"
    " ``'sinkhorn_accelerated'`` (estimate-sequence acceleration, monotone dual; fewer"
    " iterations at small reg, 3 passes each) and ``'sinkhorn_newton'`` (damped Newton on the dual with the"
    " pairwise marginals as Hessian, one dense solve of size sum(n_i) per iteration: tens of iterations where"
    " the others need thousands, at small reg relative to the cost's range; up to a few thousand points in all;"
    " ``damping=`` the Levenberg-Marquardt factor, see :mod:`ot_multimarginal.strategies.newton`)"
)


def emot_sinkhorn(
    a_s: Weights,
    M: Cost,
    reg: float,
    method: str = "sinkhorn_log",
    numItermax: int = 1000,
    stopThr: float = 1e-9,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    warmstart: Optional[Sequence[Array]] = None,
    grad: str = "autodiff",
    mode: str = "scaling",
    memory_budget: Optional[int] = None,
    free: Nodes = None,
    blas_threads: Union[str, int, None] = "auto",
    reg_m: Any = None,
    **kwargs: Any,
) -> Union[Array, FactoredPlan, Tuple[Union[Array, FactoredPlan], LogDict]]:
    method = check_solver_call(
        "emot_sinkhorn", a_s, M, reg, method, STRATEGIES, kwargs, log=log, verbose=verbose, warn=warn
    )
    grad = check_choice("grad (of emot_sinkhorn)", grad, _GRAD_PLAN)
    if reg_m is not None:
        check_unbalanced_method(method)
    engine, a_s = make_engine(a_s, M, reg, mode, memory_budget, detach=(grad == "detach"), unbalanced=reg_m is not None)
    free = resolve_free(M, free, engine.k)
    pen = make_penalties(reg_m, engine, a_s, free, method)
    g, info = solve_potentials(
        engine, a_s, method, numItermax, stopThr, verbose, warn, warmstart, free, blas_threads, unbalanced=pen, **kwargs
    )
    pot = Potentials.from_scalings(engine, g, a_s, free)
    plan = pot.plan() if pen is None else engine.plan(g, None, free)  # no rounding onto unbalanced marginals
    if log:
        if pen is None:
            return plan, _log_dict(pot, info)
        return plan, _log_dict(pot, info, *unbalanced_value(engine, g, a_s, pen), penalties=pen)
    return plan


emot_sinkhorn.__doc__ = (
    r"""Entropic multimarginal OT plan.

    Solves

    .. math::
        P^\star = \mathop{\arg\min}_{P \in \Pi(a_1, \dots, a_k)}
        \langle C, P\rangle + \varepsilon\, \mathrm{KL}(P \,\|\, a_1\otimes\cdots\otimes a_k)

    where :math:`\Pi(a_1, \dots, a_k)` is the set of non-negative tensors of
    shape :math:`(n_1, \dots, n_k)` whose i-th marginal (sum over every other
    axis) is :math:`a_i`. The dual potentials :math:`\varphi_i` give
    :math:`P = \exp((\oplus_i \varphi_i - C)/\varepsilon)\cdot(\otimes_i a_i)`; the
    cyclic method updates them one block at a time in the log domain
    (multimarginal Sinkhorn, Benamou et al. 2015), so nothing overflows or
    underflows at small :math:`\varepsilon`. Some marginals may be left
    free (``free``, see Notes).

    .. note:: Backend-generic: NumPy in, NumPy out; torch in, torch out
        (same dtype and device).

    Parameters
    ----------
    """
    + (_COMMON_PARAMS % _METHODS_DOC)
    + r"""    grad : {'autodiff', 'detach'}, optional
        ``'autodiff'`` (default) differentiates through the unrolled
        iterations (torch); ``'detach'`` cuts the graph.
"""
    + _ENGINE_PARAMS
    + r"""
    Returns
    -------
    P : array-like of shape (n_1, ..., n_k), or FactoredPlan
        The plan (same backend, dtype and device as ``M``). For structured
        costs, a factored plan that never forms the tensor (it knows the
        free nodes: :meth:`FactoredPlan.round` rounds the prescribed marginals).
    """
    + _LOG_DOC
    + _FREE_NOTES
    + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import emot_sinkhorn
    >>> M = np.random.RandomState(0).rand(3, 4, 5)
    >>> P = emot_sinkhorn(None, M, reg=0.1)
    >>> P.shape
    (3, 4, 5)
    >>> bool(np.allclose(P.sum(axis=(0, 1)), 1 / 5))
    True
    >>> P = emot_sinkhorn(None, M, reg=0.1, free=[1])  # marginal 1 left free
    >>> bool(np.allclose(P.sum(axis=(1, 2)), 1 / 3) and np.allclose(P.sum(axis=(0, 1)), 1 / 5))
    True

    References
    ----------
    .. [1] J.-D. Benamou, G. Carlier, M. Cuturi, L. Nenna, G. Peyré, Iterative
       Bregman projections for regularized transportation problems, SIAM J.
       Sci. Comput. 37(2), 2015.
    .. [2] T. Lin, N. Ho, M. Cuturi, M. I. Jordan, On the complexity of
       approximating multimarginal optimal transport, JMLR 23(65), 2022.

    See Also
    --------
    emot_sinkhorn2 : the value, differentiable.
    emot_lp : the exact (unregularised) problem.
    """
)


def emot_sinkhorn2(
    a_s: Weights,
    M: Cost,
    reg: float,
    method: str = "sinkhorn_log",
    numItermax: int = 1000,
    stopThr: float = 1e-9,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    warmstart: Optional[Sequence[Array]] = None,
    grad: str = "envelope",
    mode: str = "scaling",
    memory_budget: Optional[int] = None,
    free: Nodes = None,
    blas_threads: Union[str, int, None] = "auto",
    reg_m: Any = None,
    **kwargs: Any,
) -> Union[Array, Tuple[Array, LogDict]]:
    method = check_solver_call(
        "emot_sinkhorn2", a_s, M, reg, method, STRATEGIES, kwargs, log=log, verbose=verbose, warn=warn
    )
    grad = check_choice("grad (of emot_sinkhorn2)", grad, _GRAD_VALUE)
    if reg_m is not None:
        check_unbalanced_method(method)
    engine, a_s_used = make_engine(a_s, M, reg, mode, memory_budget, unbalanced=reg_m is not None)
    free = resolve_free(M, free, engine.k)
    solved = engine
    if grad in ("envelope", "detach"):
        solved = engine.detached()
        a_s_used = [engine.nx.detach(a) for a in a_s_used]
    pen = make_penalties(reg_m, solved, a_s_used, free, method)
    g, info = solve_potentials(
        solved,
        a_s_used,
        method,
        numItermax,
        stopThr,
        verbose,
        warn,
        warmstart,
        free,
        blas_threads,
        unbalanced=pen,
        **kwargs,
    )
    pot = Potentials.from_scalings(solved, g, a_s_used, free)
    if pen is None:
        value, log_r = pot.value(log_marginals=True)
        value_linear = pot.linear_cost()
    else:
        value, value_linear, log_r = unbalanced_value(solved, g, a_s_used, pen)
    check_finite_result(
        engine.nx,
        value,
        "the EMOT value",
        "With reg=%g the problem may be beyond this dtype: use float64, a larger reg, or rescale "
        "the cost." % engine.reg,
    )
    if grad == "envelope":
        value = _attach_envelope(engine, pot, a_s, value, pen)
    if log:
        return value, _log_dict(pot, info, value, value_linear, log_r, penalties=pen)
    return value


def _free_weight_gradient(engine, g, i):
    r""":math:`-\varepsilon\, r_i(P)/a_i`: the derivative of the value in a free node's reference weights.

    Computed as :math:`-\varepsilon \exp(\log r_i(B(g')))` with :math:`g'_i = 0`
    (one engine pass), which is :math:`r_i/a_i` where :math:`a_i > 0` and its
    limit (the derivative there) where :math:`a_i = 0`.
    """
    nx = engine.nx
    gz = list(g)
    gz[i] = nx.zeros(g[i].shape, type_as=g[i])
    return -engine.reg * nx.exp(engine.log_marginal(gz, i))


def _attach_envelope(engine, pot, a_s_in, value, penalties=None):
    """Gradients of the value by the envelope theorem (exact at the optimum).

    ``∂value/∂C`` is the plan (for structured costs: each edge's pairwise
    marginal) and ``∂value/∂a_i`` the centred potential ``φ_i - mean(φ_i)``
    for a prescribed node; for a free node ``i`` (``a_i`` only in the KL
    reference ``⊗a``) it is ``-ε r_i/a_i``, centred the same way.
    ``engine`` holds the caller's (differentiable) cost, ``solved`` its
    detached copy used for the solve (``pot.engine``, with the solved potentials
    ``pot``; the centring removes the cost offset carried by one potential).
    With ``penalties`` (an unbalanced solve) the weight gradients are those of
    :func:`~ot_multimarginal.unbalanced.weight_gradients`, not centred.
    """
    nx = engine.nx
    if str(nx) != "torch":
        return value
    g = pot.log_scalings
    inputs = list(engine.cost_inputs())
    grads = list(pot.engine.cost_gradients(g))
    if penalties is not None and any(getattr(a, "requires_grad", False) for a in (a_s_in or [])):
        for a, d in zip(a_s_in, weight_gradients(pot.engine, g, pot.a_s, pot, penalties)):
            if getattr(a, "requires_grad", False):
                inputs.append(a)
                grads.append(d)
    for i, (a, p) in enumerate(zip(a_s_in if a_s_in is not None and penalties is None else [], pot)):
        if getattr(a, "requires_grad", False):
            d = _free_weight_gradient(pot.engine, g, i) if i in pot.free else p
            inputs.append(a)
            grads.append(d - nx.mean(d))
    keep = [(x, gr) for x, gr in zip(inputs, grads) if getattr(x, "requires_grad", False)]
    if not keep:
        return value
    return nx.set_gradients(value, tuple(x for x, _ in keep), tuple(gr for _, gr in keep))


emot_sinkhorn2.__doc__ = (
    r"""Entropic multimarginal OT value.

    Returns

    .. math::
        \mathrm{EMOT}_\varepsilon = \min_{P \in \Pi(a_1, \dots, a_k)}
        \langle C, P\rangle + \varepsilon\, \mathrm{KL}(P \,\|\, a_1\otimes\cdots\otimes a_k)

    (regularised value, entropic term included; for k = 2 it equals
    ``ot.solve(M, a, b, reg=reg).value``). ``log['value_linear']`` holds
    :math:`\langle C, P\rangle` alone. The value is exact under constant
    shifts of the cost: :math:`C + c` gives the same plan and the value plus
    :math:`c\|P\|_1` (:math:`\|P\|_1 = 1` up to the solver's tolerance),
    for costs of any sign and size (see Notes).

    .. note:: **Value convention.** :func:`ot.sinkhorn2` returns the linear
        part :math:`\langle C, P\rangle` only; this function returns the
        regularised value. POT's number is ``log['value_linear']``:
        ``v, log = emot_sinkhorn2(a_s, M, reg, log=True); log['value_linear']``.

    .. note:: Backend-generic. With torch inputs that require gradients the
        value is differentiable with respect to the cost and the weights.

    Parameters
    ----------
    """
    + (_COMMON_PARAMS % _METHODS_DOC)
    + r"""    grad : {'envelope', 'autodiff', 'detach'}, optional
        ``'envelope'`` (default): solve without building a graph, then attach
        the envelope-theorem gradients :math:`\partial/\partial C = P` and
        :math:`\partial/\partial a_i = \varphi_i - \mathrm{mean}(\varphi_i)`
        for a prescribed node, :math:`-\varepsilon\, r_i/a_i` (centred the
        same way) for a free one, whose :math:`a_i` enters only the KL
        reference (exact at convergence, memory-light). ``'autodiff'``: differentiate
        through the unrolled iterations. ``'detach'``: no gradient.
"""
    + _ENGINE_PARAMS
    + r"""
    Returns
    -------
    value : backend scalar
        The EMOT value (same dtype and device as ``M``).
    """
    + _LOG_DOC
    + _FREE_NOTES
    + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import emot_sinkhorn2
    >>> M = np.random.RandomState(0).rand(3, 4, 5)
    >>> v = emot_sinkhorn2(None, M, reg=0.1)
    >>> bool(0 < v < M.max())
    True

    See Also
    --------
    emot_sinkhorn : the plan.
    emot_lp2 : the exact (unregularised) value.
    """
)
