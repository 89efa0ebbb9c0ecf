# -*- coding: utf-8 -*-
r"""The one (fused) Gromov–Wasserstein alternation, written against an inner EMOT solver.

Problem (normalised clouds :math:`X_i`, weights :math:`a_i`, graph :math:`E`,
optional feature clouds :math:`F_i` with a feature metric, :math:`\alpha \in [0, 1]`):

.. math::
    \Phi(P) = \alpha \sum_E G_{ij}(P_{ij}) + (1 - \alpha) \sum_E \langle M_{ij}, P_{ij}\rangle
    + \varepsilon\,\mathrm{KL}(P \,\|\, \otimes_i a_i),
    \qquad M_{ij} = c_F(F_i, F_j),

the convention of POT's ``entropic_fused_gromov_wasserstein`` (:math:`\alpha = 1`
or no features: plain GW). With :math:`G(\pi) = S_1 + \min_A 32\|A\|^2 + \langle c_A, \pi\rangle`
(:mod:`ot_multimarginal.gromov`), each outer step

1. solves the EMOT of the pairwise point-cloud cost
   :math:`\sum_E \alpha\, c_{A_{ij}}(x_i, x_j) + (1 - \alpha)\, c_F(f_i, f_j)`
   (one :class:`~ot_multimarginal.costs.pointcloud.PointCloudCost` on the
   augmented clouds :math:`Z_i = [X_i \,|\, F_i]`, one callable metric per edge)
   with the inner solver, warm-started from the previous accepted potentials;
2. evaluates :math:`\Phi` at the plan of the returned
   :class:`~ot_multimarginal.Potentials` (the objective, exact for any plan:
   :func:`~ot_multimarginal.gromov.gw_loss` of the pairwise plans, the entropy
   from the potentials) and the plan's marginal error;
3. sets :math:`A_{ij} \leftarrow \tfrac12 E_{P_{ij}}[x_i x_j^\top]` (closed form).

With exact inner solves :math:`\Phi` decreases monotonically. Stopping rule
(one rule for every inner solver): ``err[t] = max(|Φ_t − Φ_{t−1}| / |Φ_t|,
max_e ‖A_e^{t+1} − A_e^t‖ / ‖A_e^{t+1}‖) <= stopThr`` with the inner solver at
its final tolerance. The lowest-objective iterate is the one returned. Where the
objective is an estimate with a standard error (the neural solver beyond the
exact engines), the run also stops, converged to the estimator's resolution,
when further steps no longer lower it by more than their noise
(:class:`Alternation`'s ``n_iter_no_change``).

The interface is documented for the helpers in ``/work/coord/gw_alternation_api.md``
(:class:`GWProblem`, :class:`InnerSolver`, :class:`Alternation`, :func:`run_starts`).
"""
# License: MIT License

import math

import numpy as np

from ._backend import dtype_info, to_float
from .costs.dense import pairwise_cost_matrix
from .costs.pointcloud import PointCloudCost
from .gromov import (  # noqa: F401 (prepare_clouds, initial_candidates: re-exported for the neural solver)
    gw_cross_moment,
    gw_linear_cost,
    gw_loss,
    gw_moment_term,
    gw_separable_terms,
    initial_candidates,
    prepare_clouds,
)
from .potentials import Potentials
from .sinkhorn import emot_sinkhorn, solve_detached

__all__ = [
    "GWProblem",
    "InnerSolver",
    "SinkhornInner",
    "Alternation",
    "run_starts",
    "rel_change",
    "zero_saddle_escape",
    "prepare_clouds",
    "initial_candidates",
]

CONTINUATION = (256.0, 64.0, 16.0, 4.0)  # eps-scaling of a cold Sinkhorn inner solve: reg * these, loose, then reg
# from a warm start whose marginals are far off (WARM_MAX_ERROR): 156 -> 112 Newton iterations (k = 3, n = 300)
CONTINUATION_WARM = (16.0, 4.0)
# the n_iter_no_change rule of Alternation (estimated objectives): a change within NOISE_Z combined standard errors
# is noise
NOISE_Z = 2.0
# with estimated objectives, after the first rejected step, an accepted step's update of A is damped by this much
# (A <- A + theta (A(P) - A)): the closed-form update carries the moments' noise in full
NOISY_THETA = 0.5
# with estimated objectives, the first rejection of a run of rejections is followed by the rejected step's own
# update (A <- A(P) of its plan, where the exact alternation would go next) before the damped ones: the step's
# objective is the one linearised at its A, above its plan's by 32 alpha sum |A - A(P)|^2, so a step to a better
# plan can score worse than the best (bench_mgw_refits: box copies, k = 3, n = 1000, an update 0.9 % better
# scored 1.5 % worse)
LOOKAHEAD = True
WARM_MAX_ERROR = 0.5  # a warm start whose marginals are off by more (L1, summed over the k marginals) goes through it


def rel_change(history):
    """``|h[-1] - h[-2]| / |h[-1]|`` (``inf`` with fewer than two entries)."""
    if len(history) < 2:
        return math.inf
    return abs(history[-1] - history[-2]) / max(abs(history[-1]), 1e-300)


def _linear_cost_from_pairwise(engine, edges, pairwise):
    r""":math:`\langle C, P\rangle = \sum_e \langle C_e, P_e\rangle` from the pairwise plans.

    ``None`` if the engine is not a pairwise one.

    The engine's edge matrices are those of the true cost (its ``edge_offsets`` only centre its
    kernels); ``pairwise[e]`` is the plan of ``edges[e]``, transposed where the engine's edge runs the other way.
    """
    mats = getattr(engine, "matrices", None)
    eng_edges = getattr(engine, "edges", None)
    if mats is None or eng_edges is None or len(mats) != len(edges):
        return None
    nx = engine.nx
    where = {tuple(e): t for t, e in enumerate(edges)}
    total = 0.0
    for (u, v), C in zip(eng_edges, mats):
        if (u, v) in where:
            P = pairwise[where[(u, v)]]
        elif (v, u) in where:
            P = pairwise[where[(v, u)]].T
        else:
            return None
        if tuple(P.shape) != tuple(C.shape):
            return None
        total += to_float(nx, nx.sum(C * P))
    return total


# ---- the problem ----------------------------------------------------------------------------------
class GWProblem:
    r"""The data of one (fused) multimarginal GW problem and its point-cloud cost.

    Parameters
    ----------
    nx : POT backend
    X_s : list of k arrays (n_i, d_i)
        Centred, normalised structure clouds (detached; the dtype the alternation runs in).
    a_s : list of k arrays (n_i,)
        Weights.
    edges : list of (i, j)
        The validated graph.
    reg : float
        :math:`\varepsilon`.
    alpha : float, optional
        Weight of the structure term (1: plain GW).
    F_s : list of k arrays (n_i, f_i), optional
        Feature clouds (same backend and dtype as ``X_s``); ``None``: no feature term.
    feature_metric : str or callable, optional
        Metric of :func:`ot.dist` (or callable ``c(F_a, F_b)``) of the feature cost :math:`M_{ij}`.

    Attributes
    ----------
    Z_s : list of k arrays (n_i, d_i + f_i)
        The augmented clouds the inner solvers see (``X_s`` when there are no features).
    S1 : float
        :math:`\sum_E S_1^{ij}`.
    dims : list of int
        :math:`d_i` (the structure coordinates are ``Z[:, :d_i]``).
    """

    def __init__(self, nx, X_s, a_s, edges, reg, alpha=1.0, F_s=None, feature_metric="sqeuclidean"):
        self.nx, self.X_s, self.a_s, self.edges, self.reg = nx, list(X_s), list(a_s), list(edges), float(reg)
        self.k = len(self.X_s)
        self.alpha = float(alpha)
        self.F_s = None if F_s is None else list(F_s)
        self.feature_metric = feature_metric
        self.dims = [int(X.shape[1]) for X in self.X_s]
        self.shape = tuple(int(X.shape[0]) for X in self.X_s)
        self.Z_s = (
            self.X_s if self.F_s is None else [nx.concatenate([X, F], axis=1) for X, F in zip(self.X_s, self.F_s)]
        )
        self.S1 = sum(to_float(nx, gw_moment_term(self.X_s[i], self.X_s[j], a_s[i], a_s[j])) for i, j in self.edges)
        self._M = None

    @property
    def fused(self):
        """True when a feature term enters (features given and alpha < 1)."""
        return self.F_s is not None and self.alpha < 1.0

    def zero_A(self):
        """The start :math:`A_{ij} = 0` (POT's product-plan start for k = 2)."""
        return [self.nx.zeros((self.dims[i], self.dims[j]), type_as=self.X_s[0]) for i, j in self.edges]

    def _split(self, Z, node):
        d = self.dims[node]
        return Z[:, :d], Z[:, d:]

    def edge_metric(self, e, A, separable=False):
        r"""The callable metric of edge ``e`` on augmented points: :math:`\alpha c_A + (1-\alpha) c_F` (+ separable).

        ``separable=True`` adds :math:`\alpha(h_x + h_y)` of
        :func:`~ot_multimarginal.gromov.gw_separable_terms` (changes the
        potentials, not the plan; for neural potentials): subtract
        :meth:`separable_mean` from the value.
        """
        i, j = self.edges[e]
        alpha, fused, fm = self.alpha, self.fused, self.feature_metric
        name = "features of edge %r" % ((i, j),)

        def metric(Za, Zb):
            Xa, Fa = self._split(Za, i)
            Xb, Fb = self._split(Zb, j)
            B = A
            if hasattr(A, "to") and hasattr(Za, "device") and (A.dtype != Za.dtype or A.device != Za.device):
                B = A.to(dtype=Za.dtype, device=Za.device)
            C = 0.0
            if alpha > 0.0:
                C = alpha * gw_linear_cost(Xa, Xb, B)
                if separable:
                    hx, hy = gw_separable_terms(Xa, Xb, B)
                    C = C + alpha * (hx[:, None] + hy[None, :])
            if fused:
                from ot.backend import get_backend

                C = C + (1.0 - alpha) * pairwise_cost_matrix(get_backend(Fa, Fb), Fa, Fb, fm, name)
            return C

        return metric

    def cost(self, A, separable=False):
        """The :class:`~ot_multimarginal.costs.pointcloud.PointCloudCost` of the current ``A`` (one per edge)."""
        return PointCloudCost(self.k, list(self.edges), [self.edge_metric(e, M, separable) for e, M in enumerate(A)])

    def separable_mean(self, A, Z_s=None, a_s=None):
        r""":math:`\alpha \sum_E E_{a_i} h_x + E_{a_j} h_y`: what ``separable=True`` adds to an EMOT value."""
        if self.alpha == 0.0:
            return 0.0
        X_s = self.X_s if Z_s is None else [self._split(Z, v)[0] for v, Z in enumerate(Z_s)]
        a_s = self.a_s if a_s is None else a_s
        total = 0.0
        for (i, j), M in zip(self.edges, A):
            hx, hy = gw_separable_terms(X_s[i], X_s[j], M)
            total += to_float(self.nx, self.nx.sum(a_s[i] * hx) + self.nx.sum(a_s[j] * hy))
        return self.alpha * total

    def feature_matrices(self):
        """The fixed feature costs :math:`M_{ij}` on the data (``None`` entries when not fused)."""
        if not self.fused:
            return [None] * len(self.edges)
        if self._M is None:
            self._M = [
                pairwise_cost_matrix(self.nx, self.F_s[i], self.F_s[j], self.feature_metric, "features of %r" % (e,))
                for e in self.edges
                for i, j in [e]
            ]
        return self._M

    def terms(self, pairwise):
        r"""Plan terms from the pairwise plans :math:`P_{ij}` (any non-negative matrices).

        Returns ``(gw, lin, A_P)``: :math:`\sum_E G_{ij}(P_{ij})` (unweighted),
        :math:`\sum_E\langle M_{ij}, P_{ij}\rangle` (0 without features) and the
        list of :math:`A_{P_{ij}} = \tfrac12 X_i^\top P_{ij} X_j`.
        """
        nx = self.nx
        gw = 0.0
        A_P = []
        for (i, j), P in zip(self.edges, pairwise):
            A_P.append(gw_cross_moment(self.X_s[i], self.X_s[j], P))
            if self.alpha > 0.0:
                gw += to_float(nx, gw_loss(self.X_s[i], self.X_s[j], P))
        lin = 0.0
        if self.fused:
            lin = sum(to_float(nx, nx.sum(M * P)) for M, P in zip(self.feature_matrices(), pairwise))
        return gw, lin, A_P

    def terms_A(self, pairwise):
        r"""The :math:`A_{P_{ij}} = \tfrac12 X_i^\top P_{ij} X_j` of the pairwise plans (one per edge)."""
        return [gw_cross_moment(self.X_s[i], self.X_s[j], P) for (i, j), P in zip(self.edges, pairwise)]

    def objective(self, gw, lin, ent):
        r""":math:`\Phi = \alpha\,\mathrm{gw} + (1-\alpha)\,\mathrm{lin} + \mathrm{ent}` (ent: ε KL)."""
        return self.alpha * gw + (1.0 - self.alpha) * lin + ent


# ---- the inner solvers ----------------------------------------------------------------------------
class InnerSolver:
    r"""What the alternation needs from an inner EMOT solver (subclass and implement :meth:`solve`).

    ``solve(cost, warm_start, tol) -> Potentials``: the potentials of the EMOT
    with the point-cloud cost ``cost`` (a
    :class:`~ot_multimarginal.costs.pointcloud.PointCloudCost` of the
    problem's augmented clouds ``problem.Z_s``), whose plan has mass one
    (:meth:`Potentials.normalized`). ``warm_start``: the Potentials of the
    previous *accepted* solve of this solver (``None`` at the first step);
    ``tol``: the marginal-error threshold asked for (loose early, tightened to
    :attr:`tol_floor`; a solver without a tolerance ignores it). After each
    solve, :attr:`last_log` holds at least ``niter``, ``converged``, ``err``
    (float: the solve's last stopping quantity), ``stopThr``.

    The other hooks have defaults that read the Potentials on the data;
    override them where the data's engine does not fit (mini-batches).
    """

    tol_start = 1e-4
    tol_floor = 1e-6

    def __init__(self, problem):
        self.problem = problem
        self.last_log = {}

    def solve(self, cost, warm_start=None, tol=None):  # pragma: no cover - interface
        raise NotImplementedError

    def pairwise_plans(self, pot):
        """The pairwise plans :math:`P_{ij}` for every edge (on the data).

        Through the engine's ``pairwise_marginal``: every row and column sum exact to the dtype's
        resolution squared, which is all :math:`G(P)` and :math:`A(P)` need (the returned plan itself,
        :meth:`plan`, stays exact).
        """
        engine, g = pot.engine, pot.log_scalings
        return [engine.pairwise_marginal(g, i, j) for i, j in self.problem.edges]

    def entropy(self, pot, pairwise=None):
        r""":math:`\varepsilon\,\mathrm{KL}(P\|\otimes a)` of the plan of ``pot`` (value minus linear cost).

        ``pairwise``: the plans of :meth:`pairwise_plans` (one per edge of the problem), when already
        computed. On a pairwise engine the linear cost is then
        :math:`\sum_E \langle C_e, P_e\rangle` over them, without the log-domain products of
        :meth:`Potentials.linear_cost` (measured: 1.3 s of an outer step's 3 s at k = 3, n = 300,
        :math:`O(n^3)` exponentials; the scaled pairwise marginals are ~1 matrix product each).
        """
        nx = pot.nx
        lin = None
        if pairwise is not None:
            lin = _linear_cost_from_pairwise(pot.engine, self.problem.edges, pairwise)
        if lin is None:
            lin = to_float(nx, pot.linear_cost())
        return to_float(nx, pot.value()) - lin

    def marginal_error(self, pot):
        r""":math:`\max_i \|r_i(P) - a_i\|_1` of the plan of ``pot``."""
        nx = pot.nx
        return max(to_float(nx, nx.sum(nx.abs(r - a))) for r, a in zip(pot.marginals(), self.problem.a_s))

    def evaluate(self, pot):
        """``dict(gw, lin, ent, obj, marg_err, A_P, pairwise)`` of the plan of ``pot`` (one place for the objective)."""
        pr = self.problem
        pairwise = self.pairwise_plans(pot)
        gw, lin, A_P = pr.terms(pairwise)
        ent = self.entropy(pot, pairwise)
        return dict(
            gw=gw,
            lin=lin,
            ent=ent,
            obj=pr.objective(gw, lin, ent),
            marg_err=self.marginal_error(pot),
            A_P=A_P,
            pairwise=pairwise,
        )

    def finish(self, pot, A):
        """Polish the kept iterate's potentials (``A``: the matrices of their cost); default: unchanged."""
        return pot

    def release(self, pot):
        """Drop what the engine of ``pot`` recomputes on demand, once the step has read the plan.

        An alternation holds its best iterate (and, in :func:`run_starts`, every live start holds its own):
        with their absorbed kernels that was up to 27 n x n arrays at k = 2 (tracemalloc, n = 600,
        ``init='auto'``); kept with their costs alone, a later query rebuilds the kernel (one exponential
        per entry).
        """
        release = getattr(getattr(pot, "engine", None), "release_caches", None)
        if release is not None:
            release()

    def plan(self, pot):
        """The plan returned to the user (dense or :class:`~ot_multimarginal.FactoredPlan`)."""
        return pot.plan()


class SinkhornInner(InnerSolver):
    """Exact inner solves by :func:`~ot_multimarginal.emot_sinkhorn` on the structured engines (log domain).

    A cold solve goes through a continuation in ε (``CONTINUATION``). ``kwargs``
    are passed to every solve.
    """

    def __init__(self, problem, method="sinkhorn_newton", numItermax=5000, stopThr=1e-6, tol_start=1e-4, **kwargs):
        super().__init__(problem)
        self.method, self.numItermax, self.kwargs = method, numItermax, kwargs
        self.tol_floor = float(stopThr)
        self.tol_start = max(float(stopThr), float(tol_start))

    def _emot(self, pc, reg, tol, warm):
        if not self.kwargs:  # the loop alone, without emot_sinkhorn's plan and log
            # log-domain sweeps over-relaxed (safeguarded, the rate measured on the first sweeps): k = 2, n = 1000
            # box copies, mgw_sinkhorn init='zero': 5460 -> 2300 sweeps in all, the same value to 1e-10
            opts = {"relaxation": "auto"} if self.method == "sinkhorn_log" else {}
            pot, info = solve_detached(self.problem.a_s, pc, reg, self.method, self.numItermax, tol, warm, **opts)
            return dict(info, potentials=pot)
        _, lg = emot_sinkhorn(
            self.problem.a_s,
            pc,
            reg,
            method=self.method,
            numItermax=self.numItermax,
            stopThr=tol,
            warmstart=warm,
            log=True,
            warn=False,
            grad="detach",
            **self.kwargs,
        )
        return lg

    def solve(self, cost, warm_start=None, tol=None):
        tol = self.tol_floor if tol is None else tol
        pc = cost.pairwise_cost(self.problem.Z_s)
        extra = 0
        warm = warm_start
        cold = warm is None
        short = False
        if not cold:
            # a warm start far from the new cost's marginals (the matching changed) is worse than a cold one: one
            # Newton solve from it took 105 iterations (101 s, k = 3, n = 300), the continuation from it 3.9 s
            eng = pc.make_engine(self.problem.reg)
            pw = Potentials(eng, list(warm), self.problem.a_s).normalized()
            cold = self.marginal_error(pw) * self.problem.k > WARM_MAX_ERROR
            # the short continuation from a warm start only in float64: in float32 (the neural solver's exact
            # finish) it cost 3x more Newton iterations than the full one (NeuralMGW, k = 3, n = 24: 9.8 s vs 3.1 s)
            short = dtype_info(eng.nx, eng.type_as)[0] < 1e-10
            # the check's engine is not the solve's: solving on it (its caches set by the normalised warm
            # potentials) took the same Newton iterations ~3x slower (k = 3, n = 300, init='zero': 3.0 s -> 8.9 s);
            # dropped here, so no two engines of the cost are held at once
            del pw, eng
        if cold:  # continuation in eps (measured: 58 -> 32 Newton iterations, k = 3, n = 40), from warm if given
            for factor in CONTINUATION_WARM if short else CONTINUATION:
                lg = self._emot(pc, self.problem.reg * factor, max(tol, 1e-3), warm)
                warm = list(lg["potentials"])
                extra += int(lg["niter"])
                lg = None  # its engine (an n x n kernel per edge) is not held through the next solve
        lg = self._emot(pc, self.problem.reg, tol, warm)
        err = lg["err"]
        self.last_log = dict(
            niter=int(lg["niter"]) + extra,
            converged=bool(lg["converged"]),
            err=float(err[-1]) if len(err) else 0.0,
            stopThr=float(tol),
            log=lg,
        )
        return lg["potentials"].normalized()


# ---- one alternation ------------------------------------------------------------------------------
class Alternation:
    r"""One alternation from one start ``A0``: its state, history and best iterate.

    Parameters
    ----------
    problem : GWProblem
    solver : InnerSolver
    A0 : list of arrays (d_i, d_j)
        The start (one matrix per edge).
    name : str, optional
        The start's name (logs).
    damping : int, optional
        0 (default; exact inner solves): every step is accepted. ``> 0``: a step
        whose objective rises above the best one (relative ``increase_tol``) or whose
        marginal error exceeds ``marg_tol`` is rejected; the next A is
        :math:`A_\text{best} + \theta (A_{P_\text{best}} - A_\text{best})`, θ halved at
        each rejection; after ``damping`` rejections in a row the run stops. With
        estimated objectives (``obj_se > 0``, ``LOOKAHEAD``) the first rejection of
        a run of rejections is followed by the rejected step's own update
        :math:`A_{P}` (where the exact alternation would go next; one more step
        before the run stops): an estimated step objective is the one linearised
        at its A, above its plan's by :math:`32\alpha\sum_E\|A - A_P\|^2`.
    increase_tol, marg_tol : float, optional
        See ``damping``.
    n_iter_no_change : int, optional
        Where the inner solver's objective is an estimate (``evaluate`` returns
        its standard error ``obj_se > 0``; with damping): the run also converges
        (``converged_by = 'noise'``) once ``n_iter_no_change`` steps in a row
        (default ``damping + 1``) did not lower the best objective by more than
        ``max(NOISE_Z`` combined standard errors, ``stopThr`` relative) and one
        of them was within ``NOISE_Z`` combined standard errors of it (each
        taken as the smaller of the two: an imprecise fit is no evidence): the
        objective is stationary to the estimator's resolution. Exact objectives
        (``obj_se = 0``) never stop this way. With estimated objectives, after
        the first rejection, the update of an accepted step is damped too
        (:math:`A \leftarrow A + \theta (A_P - A)`, :math:`\theta` = ``NOISY_THETA``).

    Attributes (read after :meth:`step`)
    ------------------------------------
    history : list of float
        :math:`\Phi` of every solve (accepted or not).
    err, A_change, marg_err, inner_niter, inner_tol, accepted : lists, one entry per step.
    best : dict
        ``obj``, ``A`` (the matrices of its cost), ``A_P`` (:math:`A` of its plan),
        ``pot``, ``terms`` (:meth:`InnerSolver.evaluate`), ``step`` (1-based).
    obj_se : list of float
        The standard error of each step's objective (0: exact).
    converged, stopped : bool
        The stopping rule met / the run cannot go on (rejections exhausted).
    theta : float
        The damping of the next step's :math:`A`.
    converged_by : str or None
        ``'tol'`` (the stopping rule), ``'noise'`` (see ``n_iter_no_change``) or ``None``.
    """

    def __init__(
        self, problem, solver, A0, name="given", damping=0, increase_tol=1e-10, marg_tol=math.inf, n_iter_no_change=None
    ):
        self.problem, self.solver, self.name = problem, solver, name
        self.A = list(A0)
        self.damping, self.increase_tol, self.marg_tol = int(damping), float(increase_tol), float(marg_tol)
        self.n_iter_no_change = int(damping) + 1 if n_iter_no_change is None else int(n_iter_no_change)
        self.obj_se = []
        self.converged_by = None
        self.theta = 1.0  # the damping of the next step's A (1: the closed-form update)
        self._theta_accepted = 1.0  # that of an accepted step's update (NOISY_THETA after a rejection, noisy runs)
        self._no_change = 0  # steps in a row without a significant improvement (estimated objectives)
        self._flat = False  # one of them within the noise of the best
        self.pot = None  # last accepted potentials (warm start)
        self.tol = solver.tol_start if solver.tol_floor is not None else None
        if problem.alpha == 0.0 and self.tol is not None:  # one solve is the answer: at the final tolerance
            self.tol = solver.tol_floor
        self.history, self.err, self.A_change, self.marg_err = [], [], [], []
        self.inner_niter, self.inner_tol, self.accepted = [], [], []
        self.best = None
        self.converged = False
        self.stopped = False
        self.merged = None  # run_starts(merge=...): the name of the run whose fixed point this one reached
        self._rejections = 0
        self._looked_ahead = 0  # whether this run of rejections has tried the rejected step's own update (LOOKAHEAD)
        self._last_obj = None
        self._last_rel = math.inf
        nx = problem.nx
        self.A_floor = 100.0 * dtype_info(nx, problem.X_s[0])[0]

    @property
    def niter(self):
        return len(self.history)

    @property
    def at_floor(self):
        return self.tol is None or self.solver.tol_floor is None or self.tol <= self.solver.tol_floor

    def _norm(self, M):
        nx = self.problem.nx
        return to_float(nx, nx.sqrt(nx.sum(M * M)))

    def step(self):
        """One outer step (solve, evaluate, A-update). Returns the objective of the new plan."""
        pr, solver = self.problem, self.solver
        A_used = self.A
        pot = solver.solve(pr.cost(A_used), warm_start=self.pot, tol=self.tol)
        ev = solver.evaluate(pot)
        ev.pop("pairwise", None)  # n x n each: what the caller needs of the kept plan is recomputed
        solver.release(pot)
        obj = ev["obj"]
        lg = solver.last_log
        self.history.append(obj)
        self.marg_err.append(ev["marg_err"])
        self.inner_niter.append(int(lg.get("niter", 0)))
        self.inner_tol.append(lg.get("stopThr", self.tol))
        A_new = ev["A_P"]
        change = max(
            (self._norm(A1 - A0) / max(self._norm(A1), 1e-300) for A0, A1 in zip(A_used, A_new)),
            default=0.0,
        )
        ok = True
        if self.damping > 0 and self.best is not None:
            ok = obj <= self.best["obj"] + self.increase_tol * abs(self.best["obj"]) and ev["marg_err"] <= self.marg_tol
        self.accepted.append(ok)
        self.A_change.append(change)
        se = float(ev.get("obj_se", 0.0) or 0.0)
        self.obj_se.append(se)
        if self._stationary_within_noise(obj, se, ev["marg_err"]):
            self.converged, self.converged_by = True, "noise"
        if not ok:
            self._rejections += 1
            self.err.append(math.inf)
            if se > 0.0:  # noisy objectives: the updates after accepted steps are damped from now on
                self._theta_accepted = NOISY_THETA
            if self.converged:  # within the noise (converged_by = 'noise')
                return obj
            if self._rejections > self.damping + self._looked_ahead:
                self.stopped = True
            elif se > 0.0 and LOOKAHEAD and self._rejections == 1:  # the rejected step's own update, once
                self._looked_ahead = 1
                self.theta = 1.0
                self.A = A_new
            else:  # damped: back towards the best iterate's A
                self.theta = theta = 0.5 ** (self._rejections - self._looked_ahead)
                b = self.best
                self.A = [Ab + theta * (Ap - Ab) for Ab, Ap in zip(b["A"], b["A_P"])]
            return obj
        self._rejections = self._looked_ahead = 0
        prev = self._last_obj
        # exact solves (damping=0): the last iterate (monotone up to the inner tolerance; near the fixed point the
        # objective is flat to rounding while the plan still moves); else the lowest objective
        if self.best is None or self.damping == 0 or obj <= self.best["obj"]:
            self.best = dict(obj=obj, A=A_used, A_P=A_new, pot=pot, terms=ev, step=len(self.history), se=se)
        self.theta = theta = self._theta_accepted
        A_next = A_new if theta == 1.0 else [A0 + theta * (A1 - A0) for A0, A1 in zip(A_used, A_new)]
        self.pot, self.A, self._last_obj = pot, A_next, obj
        self._last_rel = math.inf if prev is None else abs(obj - prev) / max(abs(obj), 1e-300)
        self.err.append(max(self._last_rel, change))
        if self.converged:  # within the noise (converged_by = 'noise')
            return obj
        if self.problem.alpha == 0.0:  # the cost does not depend on A: one solve is the answer
            self.converged = self.at_floor
        else:
            self.converged = (
                self.at_floor and self._last_rel <= self._stopThr and change <= max(self._stopThr, self.A_floor)
            )
        self.converged_by = "tol" if self.converged else None
        return obj

    def _stationary_within_noise(self, obj, se, marg_err):
        """The ``n_iter_no_change`` rule (estimated objectives only): update its counters with this step."""
        b = self.best
        if se <= 0.0 or self.damping == 0 or b is None or not math.isfinite(obj) or marg_err > self.marg_tol:
            self._no_change, self._flat = 0, False
            return False
        se_b = float(b.get("se", 0.0))
        noise = NOISE_Z * math.sqrt(se**2 + se_b**2)
        if obj < b["obj"] - max(noise, self._stopThr * abs(b["obj"])):  # a significant improvement
            self._no_change, self._flat = 0, False
            return False
        self._no_change += 1
        # within the noise: of the more precise of the two estimates (a poor fit's large standard error is no
        # evidence of stationarity: k = 3, n = 10^4 Gaussian copies, a fit 3 % above the best with se 3.7 %)
        self._flat = self._flat or abs(obj - b["obj"]) <= NOISE_Z * math.sqrt(2.0) * min(se, se_b)
        return self._no_change >= self.n_iter_no_change and self._flat

    _stopThr = 1e-6

    def tighten(self):
        """Inner tolerance: a tenth of the last relative change of the objective, never looser than before."""
        if self.tol is None or self.solver.tol_floor is None:
            return
        self.tol = max(self.solver.tol_floor, min(self.tol, 0.1 * self._last_rel))

    def run(self, numItermax, stopThr, verbose=False):
        """Step until converged, stopped or ``numItermax`` solves in all. Returns ``self``."""
        self._stopThr = float(stopThr)
        while self.niter < numItermax and not self.converged and not self.stopped:
            obj = self.step()
            if verbose:
                print(
                    "%-8s %4d  objective %.12e  err %.3e  marg. err %.1e  inner tol %s (%d iterations)%s"
                    % (
                        self.name,
                        self.niter,
                        obj,
                        self.err[-1],
                        self.marg_err[-1],
                        "%.1e" % self.inner_tol[-1] if self.inner_tol[-1] is not None else "-",
                        self.inner_niter[-1],
                        "" if self.accepted[-1] else "  rejected",
                    )
                )
            if not self.converged:
                self.tighten()
        return self

    _STATE = (
        "A tol history err A_change marg_err inner_niter inner_tol accepted converged stopped _rejections _last_obj "
        "_last_rel _stopThr obj_se converged_by _no_change _flat theta _theta_accepted _looked_ahead"
    ).split()

    def state_dict(self):
        """The loop's state (checkpoints): plain fields and arrays, without the Potentials.

        ``best`` is kept without ``pot``;
        ``pot_is_best`` says whether the warm start is the best iterate's potentials.
        Restore with :meth:`load_state_dict`, giving the Potentials rebuilt by the caller.
        """
        state = {n: getattr(self, n) for n in self._STATE}
        state["best"] = None
        if self.best is not None:
            state["best"] = {n: v for n, v in self.best.items() if n != "pot"}
        state["pot_is_best"] = self.best is not None and self.pot is self.best["pot"]
        return state

    def load_state_dict(self, state, pot=None, best_pot=None):
        """Restore :meth:`state_dict`'s fields; ``pot``: the warm start, ``best_pot``: the best iterate's Potentials."""
        for n in self._STATE:
            v = state[n]
            setattr(self, n, list(v) if isinstance(v, (list, tuple)) else v)
        self.best = None if state["best"] is None else dict(state["best"], pot=best_pot)
        self.pot = best_pot if state.get("pot_is_best") and pot is None else pot
        return self

    def finish(self):
        """Polish the best iterate with :meth:`InnerSolver.finish`; re-evaluate it. Returns ``self.best``."""
        b = self.best
        pot = self.solver.finish(b["pot"], b["A"])
        if pot is not b["pot"]:
            ev = self.solver.evaluate(pot)
            ev.pop("pairwise", None)
            self.solver.release(pot)
            self.best = dict(b, pot=pot, terms=ev, obj=ev["obj"], A_P=ev["A_P"])
        return self.best


# ---- many starts ----------------------------------------------------------------------------------
def run_starts(
    problem,
    solver_factory,
    starts,
    numItermax,
    stopThr,
    n_screen=2,
    protect=("zero",),
    verbose=False,
    escape=None,
    merge=0.0,
    **run_kwargs,
):
    r"""Successive halving over starts, then the finalists to convergence; the lowest objective wins.

    Every start runs ``n_screen`` steps; the better half (by objective) goes
    on for twice as many, and so on until at most one unprotected start is
    left. The starts named in ``protect`` (the product-plan start ``'zero'``,
    POT's default) are never dropped. The finalists run to convergence (or
    ``numItermax``); the one with the lowest final objective is returned.

    Parameters
    ----------
    problem : GWProblem
    solver_factory : callable
        ``solver_factory()`` -> a fresh :class:`InnerSolver` (one per start: solvers may keep state).
    starts : list of (name, A)
    numItermax, stopThr : int, float
        Outer budget per start and the stopping rule's threshold.
    n_screen : int, optional
        Steps of the first round.
    escape : callable, optional
        ``escape(run) -> [(suffix, A), ...]``, asked for every finalist once it
        has converged: starts near its stationary point (e.g. tiny
        :math:`\pm A` where the run ended at :math:`A = 0`, a saddle on
        symmetric clouds); the runs from them (named ``run.name + suffix``)
        join the finalists.
        :func:`zero_saddle_escape` is the one of :func:`~ot_multimarginal.mgw_sinkhorn`.
    merge : float, optional
        ``> 0``: the finalists run one after the other, the protected ones last, and a finalist whose
        :math:`A` comes within ``merge`` (relative Frobenius distance over all edges) of the best
        :math:`A_P` of a finalist already run, at an objective not below that finalist's, stops there
        (``run.merged`` names the other): the alternation contracts to the same fixed point, whose run
        is already done. A finalist not yet stepped starts its first inner solve warm from the
        potentials of the best one already run (its plan is the same to the inner tolerance).
        0 (default): every finalist runs to convergence, its first solve cold.
    run_kwargs
        Passed to :class:`Alternation` (``damping``, ``increase_tol``, ``marg_tol``).

    Returns
    -------
    best : Alternation
        The run kept (``best.best`` its best iterate).
    screened : list of (name, objective, steps)
        Every start's objective when it was dropped or finished.
    """
    runs = [Alternation(problem, solver_factory(), A, name, **run_kwargs) for name, A in starts]
    for r in runs:
        r._stopThr = float(stopThr)
    active = list(runs)
    budget = max(1, int(n_screen))

    def live(r):
        return not r.converged and not r.stopped and r.niter < numItermax

    def screen_obj(r):
        return r.best["obj"] if r.best is not None else math.inf

    while sum(1 for r in active if r.name not in protect) > 1:
        for r in active:
            while live(r) and r.niter < budget:
                r.step()
                if not r.converged:
                    r.tighten()
            if verbose:
                print("start %-8s objective after %d steps: %.10e" % (r.name, r.niter, screen_obj(r)))
        ranked = sorted((r for r in active if r.name not in protect), key=screen_obj)
        keep = ranked[: max(1, len(ranked) // 2)]
        for r in ranked[len(keep) :]:  # only their objectives are read again: their costs are not held
            r.pot = None
            if r.best is not None:
                r.best = dict(r.best, pot=None)
        active = [r for r in active if r.name in protect or r in keep]
        budget *= 2
        if not any(live(r) for r in active):
            break
    if merge > 0.0:
        done = []
        for r in sorted(active, key=lambda r: r.name in protect):  # the protected (product-plan) start last
            if r.niter == 0 and r.pot is None and done:
                # its first solve warm from a finished run's potentials (k = 3, n = 300: 41 -> 31 Newton iterations,
                # the same first plan to the inner tolerance: objective 12.1658784 both ways)
                r.pot = min(done, key=screen_obj).best["pot"]
            while live(r):
                r.step()
                if not r.converged:
                    r.tighten()
                if verbose:
                    print("%-8s %4d  objective %.12e  err %.3e" % (r.name, r.niter, r.history[-1], r.err[-1]))
                if r.converged or not r.accepted[-1]:
                    continue
                for f in done:
                    if screen_obj(f) <= r.history[-1] and _rel_dist(problem.nx, r.A, f.best["A_P"]) <= merge:
                        r.merged = f.name
                        break
                if r.merged is not None:
                    if verbose:
                        print("%-8s merged into %s (same fixed point)" % (r.name, r.merged))
                    break
            done.append(r)
    else:
        for r in active:
            r.run(numItermax, stopThr, verbose=verbose)
    if escape is not None:  # restarts from stationary points that may be saddles (A = 0 on symmetric clouds)
        for r in list(active):
            for name, A in escape(r):
                extra = Alternation(problem, solver_factory(), A, r.name + name, **run_kwargs)
                extra.run(numItermax, stopThr, verbose=verbose)
                active.append(extra)
                runs.append(extra)
    best = min(active, key=screen_obj)
    screened = [(r.name, screen_obj(r), r.niter) for r in runs]
    return best, screened


def _rel_dist(nx, A, B):
    r""":math:`\|A - B\| / \|B\|` over the lists of matrices (Frobenius)."""
    num = sum(to_float(nx, nx.sum((a - b) ** 2)) for a, b in zip(A, B))
    den = sum(to_float(nx, nx.sum(b**2)) for b in B)
    return math.sqrt(num / max(den, 1e-300))


def zero_saddle_escape(problem, rel=1e-6, size=1e-4, n_power=20, seed=0):
    r"""The ``escape`` of :func:`run_starts` for stationary points at :math:`A = 0`.

    A run from ``'zero'`` that ends with every :math:`\|A_{P,e}\| \le` ``rel`` times its bound
    :math:`\tfrac12\sqrt{M_2(X_i) M_2(X_j)}` sits at :math:`A = 0`, a stationary point of the alternation that
    is a saddle on symmetric clouds (:math:`x \mapsto -x`). POT's iteration leaves it through rounding noise,
    which grows along the fastest unstable direction of the map :math:`A \mapsto A(P(A))`. This finds that
    direction by ``n_power`` steps of the power method on the linearised map (finite differences of size
    ``rel`` times the bound, a fixed random start ``seed``: deterministic) and restarts from :math:`\pm` it
    (norm ``size`` times the bound).
    """
    nx = problem.nx
    bounds = []
    for i, j in problem.edges:
        m2 = [to_float(nx, nx.sum(problem.a_s[v] * nx.sum(problem.X_s[v] ** 2, axis=1))) for v in (i, j)]
        bounds.append(0.5 * math.sqrt(max(m2[0] * m2[1], 0.0)))
    total = math.sqrt(sum(b * b for b in bounds))

    def scaled(D, to):
        norm = math.sqrt(sum(to_float(nx, nx.sum(M * M)) for M in D))
        return [M * (to / max(norm, 1e-300)) for M in D]

    def escape(run):
        if run.best is None or run.name != "zero" or problem.alpha == 0.0:
            return []
        A0 = run.best["A_P"]
        if any(to_float(nx, nx.sqrt(nx.sum(M * M))) > rel * b for M, b in zip(A0, bounds)):
            return []
        rng = np.random.RandomState(seed)
        h = rel * total
        D = scaled([nx.from_numpy(rng.randn(*tuple(M.shape)), type_as=M) for M in A0], h)
        solver, pot, tol = run.solver, run.best["pot"], run.solver.tol_floor
        for _ in range(int(n_power)):  # power method on the linearised map, by finite differences
            pot = solver.solve(problem.cost([M + E for M, E in zip(A0, D)]), warm_start=pot, tol=tol)
            A1 = [problem.terms_A(P) for P in [solver.pairwise_plans(pot)]][0]
            D = scaled([M1 - M for M1, M in zip(A1, A0)], h)
        D = scaled(D, size * total)
        return [("+", [M + E for M, E in zip(A0, D)]), ("-", [M - E for M, E in zip(A0, D)])]

    return escape


def _cast(nx, a, like):
    if str(nx) == "numpy":
        return np.asarray(a, dtype=like.dtype)
    return a.to(dtype=like.dtype, device=like.device)


def as_float64(nx, arrs):
    """Arrays in float64 (same device); ``None`` kept."""
    out = []
    for a in arrs:
        if a is None:
            out.append(None)
        elif str(nx) == "numpy":
            out.append(np.asarray(a, dtype=np.float64))
        else:
            import torch

            out.append(a.to(dtype=torch.float64))
    return out


Potentials = Potentials  # re-exported for inner solvers: ``from ._gw_alternation import Potentials``
