# -*- coding: utf-8 -*-
r"""Neural multimarginal Gromov–Wasserstein: :class:`NeuralMGW`, :func:`mgw_neural` and :func:`mgw_neural2` (torch).

The problem and the decomposition are those of :func:`ot_multimarginal.mgw_sinkhorn`
(:mod:`ot_multimarginal.gromov`): after centring and normalising the clouds,

.. math::
    \mathrm{MGW}_\varepsilon = \sum_E S_1^{ij}
    + \min_{A} \Big[\sum_E 32\|A_{ij}\|_F^2 + \mathrm{EMOT}_\varepsilon\Big(\sum_E c_{A_{ij}}\Big)\Big],
    \qquad c_A(x, y) = -4\|x\|^2\|y\|^2 - 32\,x^\top A y .

Here the inner EMOT is the neural estimator :class:`~ot_multimarginal.neural.NeuralEMOT`
(mini-batches: the work per step depends on the batch, not on n) with the
pairwise cost built from the current :math:`A_{ij}` (one callable metric per
edge), and the :math:`A_{ij}` are updated in closed form,
:math:`A_{ij} \leftarrow \tfrac12 E_{P_{ij}}[x_i x_j^\top]`, with :math:`P_{ij}`
the pairwise marginal of the neural plan: on the data when its engine fits
the budget, else averaged over mini-batches (the plan of each batch's
potentials). The alternation is the shared one of
:mod:`ot_multimarginal._gw_alternation` (:class:`~ot_multimarginal._gw_alternation.Alternation`
with rejection and damping) with a neural inner solver: each fit is a new
estimator warm-started from the networks of the last accepted step; steps that
do not lower the objective of their plan on the data are rejected and damped
(:class:`NeuralMGW`).

*Fused* GW (features ``Y_s``, weight ``alpha``; the convention of
:func:`~ot_multimarginal.mgw_sinkhorn` and POT's
``entropic_fused_gromov_wasserstein``) minimises
:math:`\alpha\sum_E G(P_{ij}) + (1-\alpha)\sum_E \langle M_{ij}, P_{ij}\rangle
+ \varepsilon\,\mathrm{KL}(P\|\otimes\mu_i)`, :math:`M_{ij} = c_F(f_i, f_j)`
the feature cost: the feature term is linear in the plan, so it enters the
linear cost of the decomposition, and the inner EMOT has the pairwise cost
:math:`\sum_E \alpha\, c_{A_{ij}}(x_i, x_j) + (1-\alpha)\, c_F(f_i, f_j)`
(:class:`~ot_multimarginal._gw_alternation.GWProblem`); the networks see
the augmented points :math:`(x, f)` (their potentials are functions of
both), and the :math:`A_{ij}` update is unchanged.
"""
# License: MIT License

import os
import pickle
import shutil
import time
import warnings
from types import SimpleNamespace
from typing import Any, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ot.backend import get_backend
from ot.utils import check_random_state

from .. import _gw_alternation as alternation
from .._deprecation import deprecated_attribute, renamed_kwargs
from .._gw_alternation import Alternation, GWProblem, InnerSolver, SinkhornInner, initial_candidates, prepare_clouds
from .._params import ParamsMixin
from .._typing import Array, Edges, LogDict, Weights
from .._validation import (
    check_auto_bool,
    check_bool,
    check_checkpoint_params,
    check_choice,
    check_metric,
    check_positive_int,
    check_reg,
    closest_name,
)
from ..costs.dense import pairwise_cost_matrix
from ..costs.pointcloud import PointCloudCost
from ..gromov import (
    NEWTON_MAX_POINTS,
    NORMALIZATIONS,
    SCREEN_MAX_POINTS,
    _check_features,
    gw_cross_moment,
    gw_separable_terms,
    match_from_plan,
    mgw_sinkhorn,
)
from ..marginals._pairwise import Precision, log_matmul
from ..potentials import Potentials, linear_term
from ._validation import (
    check_device,
    check_estimator_params,
    check_marginal_pair,
    check_query_points,
    check_save_path,
)
from .checkpoint import Checkpointer, _describe, data_digest, resume_payload
from .distributed import data_parallel
from .estimator import NeuralEMOT, _exp_of_query, _read_saved, _to_torch, _torch_dtype
from .evaluation import EXACT_ENTRIES, EXACT_FLOPS, dual_over_batches, exact_is_affordable, exact_work
from .sampling import derive_seed

__all__ = ["NeuralMGW", "mgw_neural", "mgw_neural2"]

_SAVED_KIND = "NeuralMGW"
_FITTED = (
    "A_used_",
    "A_",
    "edges_",
    "scales_",
    "means_",
    "S1_",
    "history_",
    "init_",
    "n_iter_",
    "converged_",
    "marginal_error_",
    "polished_",
    "timings_",
    "_plan_phi",
    "_plan_A",
    "_plan_separable",
    "polish_history_",
    "_is_numpy",
    "alpha_",
    "feature_dims_",
    "fused_",
    "value_quad_",
    "value_linear_",
)
# fitted attributes of the fused version, absent from the files of earlier versions: their plain-GW values
_FUSED_DEFAULTS = dict(alpha_=1.0, feature_dims_=None, fused_=False, value_quad_=None, value_linear_=None)
# n_init_points=None: the start screening's subsample (beyond NEWTON_MAX_POINTS points in all) has as many points per
# cloud, between SCREEN_MIN_POINTS and gromov.SCREEN_MAX_POINTS, as keep its engine's work per log-partition within
# SCREEN_WORK (that of k = 3 complete at 200 points; k = 2: 400 points). Measured, k = 2 n = 2000 box copies, seed 0:
# 40 points screened a start whose exact finish ended 0.9 % above mgw_sinkhorn's value (a mirrored matching); 400
# points, the same stationary point as mgw_sinkhorn.
SCREEN_MIN_POINTS = 40
# init_ where the start is the principal axes of all the points (NeuralMGW._principal_start)
PRINCIPAL_START = "screened:pca-pairs (axes of all the points)"
SCREEN_WORK = 200.0**3
POLISH_TOL = 1e-6  # marginal error of the inner solves of the exact finish
POLISH_STOP = 1e-5  # stopThr of the exact finish (mgw_sinkhorn's rule)
POLISH_OUTER = 100  # outer steps of the exact finish
POLISH_MAX_ITER = {"sinkhorn_newton": 200, "sinkhorn_log": 1000}
POLISH_FLOPS = 3e11  # beyond Newton's range, the work budget of each finishing solve (minutes on two cores) ...
POLISH_MIN_SWEEPS = 50  # ... and the fewest sweeps worth running (else no finish by default)
# beyond Newton's range, the work budget of the whole exact finish, shared by its starts (learned, screened, A = 0):
# each alternation's first solve always runs, further steps while its sweeps fit its share (log-domain k = 2 sweeps run
# at 1-2e9 engine operations a second on one core here: about 10-20 minutes in all at worst)
POLISH_ALT_FLOPS = 1e12
# a finish from the learned A that ends above the screening's objective by more than this (relative; both stop at
# POLISH_STOP, so less is the same stationary point) is followed by a finish from the screened A
POLISH_WORSE = 1e-6
# a step scored over batches whose objective has a larger relative standard error: its fit goes on (warm, another
# max_iter_inner iterations), at most RETRAIN_MAX times. Heavy-tailed batch values are the mark of under-trained
# potentials: k = 3, n = 10⁴ Gaussian copies, a first fit at 0.548 (se 0.093) whose value after training on was
# 1.137 (se 0.0075); well-trained fits there: 0.2-0.7 % (box copies 0.07 %)
RETRAIN_REL_SE = 0.01
RETRAIN_MAX = 3
QUERY_METHODS = ("auto", "exact", "sampled")
# method='auto' of the queries: the exact sum where the engine on (query points, other clouds) fits NeuralEMOT's
# exact-evaluation budget (the one of its pairwise_plan: QUERY_EXACT_FLOPS operations, QUERY_EXACT_ENTRIES entries)
QUERY_EXACT_FLOPS = 10 * EXACT_FLOPS
QUERY_EXACT_ENTRIES = 4 * EXACT_ENTRIES
QUERY_SAMPLES = 256  # default n_samples of method='sampled': draws of the third point per block of query points
QUERY_BLOCK = 64  # query points per block of method='sampled' (close in space: they share the block's draws) ...
QUERY_MIN_ESS = 0.125  # ... split while a point's effective sample size is below this fraction of n_samples


def _map_tensors(x, fn):
    """``x`` with ``fn`` applied to every tensor in it (through dicts, lists and tuples)."""
    if torch.is_tensor(x):
        return fn(x)
    if isinstance(x, dict):
        return {key: _map_tensors(v, fn) for key, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_map_tensors(v, fn) for v in x)
    return x


def _cpu(x):
    return _map_tensors(x, lambda t: t.detach().cpu())


def _plan_objective(pot, problem):
    r"""``(J, err, A)`` of a plan on the data: :math:`J = \alpha\sum_E G(P_{ij}) + (1-\alpha)\sum_E\langle M_{ij},
    P_{ij}\rangle + \varepsilon KL(P\|\otimes\mu)` (:meth:`GWProblem.objective`; plain GW: :math:`\alpha = 1`),
    the largest :math:`\ell_1` error of its marginals, and :math:`A_{ij} = \tfrac12 E_{P_{ij}}[x_i x_j^\top]`.

    ``pot``: potentials of mass one (:meth:`Potentials.normalized`) on the problem's (augmented) clouds.
    :math:`G` is :func:`gw_loss`, exact for any non-negative plan, so the objective of a plan whose marginals
    are off is still its own.
    """
    Ps = [pot.pairwise_marginal(i, j) for i, j in problem.edges]
    gw, lin, A_P = problem.terms(Ps)
    ent = float(pot.value() - pot.linear_cost())
    err = max(float(torch.sum(torch.abs(r - w))) for r, w in zip(pot.marginals(), problem.a_s))
    return problem.objective(gw, lin, ent), err, A_P


def _batch_dual(emot, data, weights, log_masses):
    r"""The NEMOT dual of ``emot``'s potentials, :math:`\sum_i\langle a_i,\varphi_i\rangle - \varepsilon\log
    \bar w`, with the mean :math:`\bar w` of the batches' :math:`w_b = \exp(\text{log-mass}_b)` (the
    combinatorial log-mean-exps), and its standard error (:func:`.evaluation.dual_over_batches`, as the fit's own
    held-out estimate)."""
    f_s = emot._potentials_on(data)
    first = float(linear_term(get_backend(*f_s), f_s, weights))
    L = torch.stack([torch.as_tensor(lm).reshape(()) for lm in log_masses]).detach().to("cpu", torch.float64)
    value, se, _ = dual_over_batches(first, L, float(emot.reg_))
    return float(value), se


def _without_separable(pot, problem, A):
    r"""Potentials of the cost :math:`\sum_E \alpha c_{A_{ij}} + (1-\alpha) M_{ij}` from those of the networks'
    cost (with the separable terms :math:`\alpha(h_x + h_y)` of :func:`gw_separable_terms`):
    :math:`\varphi_i - \alpha\sum_{e \ni i} h_e(x_i)`, the same plan."""
    phi = [p.clone() for p in pot]
    alpha, data = problem.alpha, problem.X_s
    if alpha == 0.0:  # no structure term: no separable terms were added
        return phi
    for (i, j), M in zip(problem.edges, A):
        hx, hy = gw_separable_terms(data[i], data[j], M)
        phi[i] = phi[i] - alpha * hx
        phi[j] = phi[j] - alpha * hy
    return phi


class _NeuralProblem(GWProblem):
    """The GW problem whose cost is the networks' one: :math:`c_A` plus the separable terms; the cost knows its A."""

    def cost(self, A, separable=True):
        pc = super().cost(A, separable=separable)
        pc.A = A
        return pc


class _StepScore(NamedTuple):
    """:meth:`NeuralMGW._score` of one fit: the step's objective, the marginal error of its plan (``None`` over
    batches), the next :math:`A_{ij}` (its plan's moments), where they were taken (``'data'`` or ``'batches'``), the
    plan (``None`` over batches) and the objective's standard error (0: exact)."""

    obj: float
    err: Optional[float]
    A_P: list
    where: str
    pot: Any
    se: float


class _NeuralFit:
    """What :class:`_NeuralInner` returns for one outer step: the fitted NeuralEMOT and its scoring.

    ``emot``: the fitted estimator; ``A``: the matrices of its cost; ``start``: the start it belongs to;
    after :meth:`_NeuralInner.evaluate`: ``pot`` (normalised Potentials of its plan on the data, or ``None``
    when the moments were taken over batches), ``err`` (marginal error, ``None`` over batches), ``where``.
    """

    def __init__(self, emot, A, start, pot=None, err=None, where=None):
        self.emot, self.A, self.start, self.pot, self.err, self.where = emot, A, start, pot, err, where


class _NeuralInner(InnerSolver):
    """Inner solves by :class:`~ot_multimarginal.neural.NeuralEMOT` fits (no marginal tolerance: ``tol_floor=None``).

    ``solve`` fits a new estimator for the cost of ``A`` (warm-started from a copy of the networks of the
    previous accepted fit); ``evaluate`` scores its plan with :meth:`NeuralMGW._score` (on the data where the
    engine fits the budget, else over batches).
    """

    tol_floor = None

    def __init__(self, problem, est, ctx):
        super().__init__(problem)
        self.est, self.ctx = est, ctx
        self.t = 0  # outer step (0-based) of the next solve
        self.start = None

    def solve(self, cost, warm_start=None, tol=None):
        c = self.ctx
        warm = None if warm_start is None else warm_start.emot
        emot = self.est._inner_fit(cost.A, warm, self.t, c.train, c.weights, c.edges, c.reg, c.seed, c.dev, c.t_start)
        self.last_log = dict(niter=int(getattr(emot, "n_iter_", 0)), converged=True, err=0.0, stopThr=None)
        self.t += 1
        return _NeuralFit(emot, cost.A, self.start)

    def evaluate(self, fit):
        c = self.ctx
        t = self.t - 1  # the outer step of this fit
        self.last_retrains = 0
        scored = []  # (score, estimator) of this step's fits
        while True:
            sc = self.est._score(fit.emot, fit.A, c.train, c.weights, c.edges, c.S1, c.gen)
            scored.append((sc, fit.emot))
            noisy = sc.where == "batches" and sc.se > RETRAIN_REL_SE * abs(sc.obj)
            if not noisy or self.last_retrains >= RETRAIN_MAX:
                break
            # heavy-tailed batch values (under-trained potentials): the fit goes on before the step is judged
            self.last_retrains += 1
            fit.emot = self.est._inner_fit(
                fit.A, fit.emot, t, c.train, c.weights, c.edges, c.reg, c.seed, c.dev, c.t_start, self.last_retrains
            )
            self.last_log["niter"] += int(getattr(fit.emot, "n_iter_", 0))
        # each fit's estimate is a dual value, below the step's objective where its potentials are under-trained:
        # the step keeps the highest (k = 3, n = 10⁴ Gaussian copies: trained on, one start's fits gave 1.092, 1.086,
        # 1.050, 1.135, each with a standard error under 4 %: the fits differ more than their batches)
        sc, fit.emot = max(scored, key=lambda p: p[0].obj if np.isfinite(p[0].obj) else -np.inf)
        fit.pot, fit.err, fit.where = sc.pot, sc.err, sc.where
        self.last_fit, self.last_where = fit, sc.where
        # over batches the marginals are unchecked (0: never a reason to reject); a non-finite objective: rejected
        marg = sc.err if sc.err is not None else 0.0
        obj = sc.obj if np.isfinite(sc.obj) else np.inf
        return dict(obj=obj, marg_err=marg, A_P=sc.A_P, err=sc.err, where=sc.where, obj_se=sc.se)


def _edge_cost(cost, u, v, Xu, Xv):
    """The edge matrix :math:`c_{uv}(X_u, X_v)` of the pairwise cost (``None`` where the graph has no edge u-v)."""
    for (a, b), m in zip(cost.edges, cost.metrics):
        if (a, b) in ((u, v), (v, u)):
            Xa, Xb = (Xu, Xv) if (a, b) == (u, v) else (Xv, Xu)
            C = (
                m(Xa, Xb)
                if callable(m)
                else pairwise_cost_matrix(get_backend(Xa, Xb), Xa, Xb, m, "edge %r" % ((a, b),))
            )
            return C if (a, b) == (u, v) else C.T
    return None


def _screen_points(k, edges):
    """``n_init_points=None``: the largest subsample size (per cloud, at most ``SCREEN_MAX_POINTS``, at least
    ``SCREEN_MIN_POINTS``) whose engine work per log-partition on the graph ``edges`` is at most ``SCREEN_WORK``."""
    cost = PointCloudCost(k, list(edges))
    lo, hi = SCREEN_MIN_POINTS, SCREEN_MAX_POINTS  # the work grows with m: bisection for the largest that fits
    while lo < hi:
        m = (lo + hi + 1) // 2
        lo, hi = (m, hi) if exact_work(cost, [m] * k)[0] <= SCREEN_WORK else (lo, m - 1)
    return lo


def _spatial_blocks(X, size):
    """Index tensors of blocks of at most ``size`` rows of ``X``, each compact in space (a k-d tree's leaves:
    recursive median splits along the coordinate of largest range)."""
    out, stack = [], [torch.arange(int(X.shape[0]), device=X.device)]
    while stack:
        idx = stack.pop()
        if idx.shape[0] <= size:
            out.append(idx)
            continue
        P = X[idx]
        dim = int(torch.argmax(P.max(0).values - P.min(0).values))
        order = torch.argsort(P[:, dim])
        h = idx.shape[0] // 2
        stack += [idx[order[h:]], idx[order[:h]]]
    return out[::-1]


def _sampled_pairwise_rows(emot, i, j, Ti, Tj, n_samples, generator, std=False):
    r"""The sampled estimate of the density of the pairwise plan ``(i, j)`` at query points (k = 3), by row blocks.

    With :math:`l` the third marginal and :math:`g_l = \varphi_l/\varepsilon + \log a_l` on its training cloud,

    .. math::
        D(x, y) = e^{(\varphi_i(x) + \varphi_j(y) - c_{ij}(x, y))/\varepsilon - \Lambda + Z(x)}
        \, E_{z \sim q_x}\big[e^{-c_{jl}(y, z)/\varepsilon}\big],
        \qquad q_x(z) = e^{g_l(z) - c_{il}(x, z)/\varepsilon - Z(x)},

    :math:`Z(x)` the exact normaliser (one row of ``n_l`` entries per query point). The query points are cut
    into blocks of :data:`QUERY_BLOCK` points close in space (:func:`_spatial_blocks`); each block draws
    ``n_samples`` i.i.d. points :math:`z_t` from the mixture :math:`\bar q = \frac1{|B|}\sum_{x \in B} q_x` of its
    points' conditionals and estimates, for every :math:`x` of the block,
    :math:`\frac1S\sum_t \frac{q_x(z_t)}{\bar q(z_t)} e^{-c_{jl}(y, z_t)/\varepsilon}`: unbiased (importance
    sampling; the weights are at most :math:`|B|`), one ``(S, m_j)`` exponential and one ``(|B|, S) @ (S, m_j)``
    product per block. A block where some point's effective sample size
    :math:`(\sum_t w_t)^2/\sum_t w_t^2` is below :data:`QUERY_MIN_ESS` times ``S`` (a point whose conditional the
    others' do not cover) is split in two and drawn again (a block of one point draws from its own conditional).
    The standard error is the sample standard deviation of the weighted draws over :math:`\sqrt S`.
    Yields ``(rows, D, se)`` per block (``rows``: the block's indices; ``se`` ``None`` unless ``std``).
    """
    k = len(emot.potentials_)
    (l,) = [v for v in range(k) if v not in (i, j)]
    cost, eps = emot.cost_, float(emot.reg_)
    dt = Ti.dtype
    Xl, wl = emot.X_fit_[l].to(dt), emot.a_fit_[l].to(dt)
    S = int(n_samples)
    nx, prec = get_backend(Ti), Precision(Ti)
    jl = any(tuple(e) in ((j, l), (l, j)) for e in cost.edges)
    with torch.no_grad():
        gl = emot._potentials_on_single(l, Xl) / eps + torch.log(wl)
        fi = emot._potentials_on_single(i, Ti) / eps
        fj = emot._potentials_on_single(j, Tj) / eps - float(emot.log_partition_)
        blocks = _spatial_blocks(Ti, QUERY_BLOCK)[::-1]
        while blocks:
            rows = blocks.pop()
            X = Ti[rows]
            C_il = _edge_cost(cost, i, l, X, Xl)
            U = gl[None, :].expand(X.shape[0], -1) if C_il is None else gl[None, :] - C_il / eps
            Z = torch.logsumexp(U, dim=1)
            rest = fi[rows, None] + fj[None, :] + Z[:, None]
            C_ij = _edge_cost(cost, i, j, X, Tj)
            if C_ij is not None:
                rest = rest - C_ij / eps
            se = None
            if not jl:  # no edge j-l: the sum over the third cloud is exp(Z(x)) itself
                L = rest
            else:
                logq = U - Z[:, None]  # the block's conditionals q_x (rows)
                mix = torch.logsumexp(logq, dim=0) - np.log(X.shape[0])  # their mixture
                t = torch.multinomial(torch.exp(mix - mix.max()), S, replacement=True, generator=generator)
                logw = logq[:, t] - mix[t][None, :] - np.log(S)  # (|B|, S): weights q_x / q-bar, over S
                ess = torch.exp(2.0 * torch.logsumexp(logw, 1) - torch.logsumexp(2.0 * logw, 1))
                if X.shape[0] > 1 and float(ess.min()) < QUERY_MIN_ESS * S:
                    # a point of the block far from the others' conditionals: split the block, draw again
                    blocks += [rows[b] for b in _spatial_blocks(X, (X.shape[0] + 1) // 2)[::-1]]
                    continue
                V = -_edge_cost(cost, l, j, Xl[t], Tj) / eps  # (S, m_j)
                L = rest + log_matmul(nx, logw, V, prec, addend=rest)
                if std:  # relative variance of the mean of the weighted draws (S - 1 degrees of freedom)
                    m2 = log_matmul(nx, 2.0 * logw + np.log(S), 2.0 * V, prec, addend=2.0 * rest)
                    rel = torch.clamp(torch.exp(m2 + 2.0 * rest - 2.0 * L) - 1.0, min=0.0) / max(S - 1, 1)
                    se = torch.sqrt(torch.where(torch.isfinite(L) & torch.isfinite(rel), rel, torch.zeros_like(rel)))
            D = _exp_of_query(L, "pairwise_plan", "query pairs")
            yield rows, D, (None if not std else (D * se if se is not None else torch.zeros_like(D)))


class NeuralMGW(ParamsMixin):
    r"""Neural estimator of multimarginal entropic Gromov–Wasserstein.

    Alternates a :class:`~ot_multimarginal.neural.NeuralEMOT` fit of the EMOT
    with the induced pairwise cost :math:`\sum_E c_{A_{ij}}` (each fit
    warm-started from the networks of the last accepted step) and the
    closed-form update :math:`A_{ij} \leftarrow \tfrac12 E_{P_{ij}}[x_i x_j^\top]`
    (module docstring), from a start screened by
    :func:`~ot_multimarginal.mgw_sinkhorn` on a subsample.

    The alternation is monotone by construction: every step is scored by the
    objective of its plan on the data,
    :math:`J(P) = \sum_E G(P_{ij}) + \varepsilon\,\mathrm{KL}(P\|\otimes\mu_i)`
    (the value of :func:`~ot_multimarginal.mgw_sinkhorn`), and by the
    :math:`\ell_1` errors of the plan's marginals; a step whose objective rises
    above the best so far, or whose plan has a marginal off by more than
    ``marginal_tol`` (a collapsed fit), is rejected and the update damped
    (:math:`A \leftarrow A_\star + \theta(A(P_\star) - A_\star)`,
    :math:`\theta = 1/2, 1/4`; a third rejection in a row stops the run); the
    best step is the one kept. Beyond the exact engine, where the objective is
    an estimate over batches with a standard error, an accepted step's update
    is damped by :math:`\theta = 1/2` once a step has been rejected, and the
    run converges when further steps no longer lower the objective by more
    than its noise (``tol``, ``n_iter_no_change``). This is the one alternation of
    :func:`~ot_multimarginal.mgw_sinkhorn`
    (:class:`~ot_multimarginal._gw_alternation.Alternation` with
    ``damping=2, marg_tol=marginal_tol``) with NeuralEMOT fits as inner solves.
    With ``init='auto'``, a first step whose plan collapsed is replaced by a
    step from :math:`A = 0`.

    **Fused GW** (``fit(X_s, a_s, Y_s)`` with features and ``alpha < 1``):
    the objective is

    .. math::
        J(P) = \alpha \sum_E G(P_{ij}) + (1 - \alpha) \sum_E \langle M_{ij}, P_{ij}\rangle
        + \varepsilon\,\mathrm{KL}(P\|\otimes\mu_i),
        \qquad M_{ij}[a, b] = c_F(f_{i,a}, f_{j,b}),

    that of :func:`~ot_multimarginal.mgw_sinkhorn` with ``Y_s`` (POT's
    ``entropic_fused_gromov_wasserstein`` for k = 2): each NeuralEMOT fit has
    the pairwise cost :math:`\sum_E \alpha\, c_{A_{ij}}(x_i, x_j) + (1-\alpha)\,
    c_F(f_i, f_j)` (the feature cost :math:`c_F` is ``feature_metric``; it is
    linear in the plan, so it joins the linear term of the decomposition),
    its networks take the points with their features, :math:`(x, f)`, and
    the :math:`A_{ij}` update is that of plain GW. ``alpha=0`` is one
    NeuralEMOT fit of the feature cost; ``alpha=1`` (or no features) is the
    plain GW fit, the features ignored. The queries at new points
    (:meth:`pairwise_plan`, :meth:`match`) then need their features
    ``Y_i``, ``Y_j``. Use it when the datasets carry comparable attributes
    (labels, colours, descriptors) that the structure alone cannot resolve
    (symmetric shapes); the features are not normalised, so scale them (or
    ``alpha``) so that both terms matter.

    Where the
    data fits the exact engines (``polish``), the alternation is then finished
    by the exact one of :func:`~ot_multimarginal.mgw_sinkhorn` (the shared
    alternation of :mod:`ot_multimarginal._gw_alternation` with Sinkhorn
    inner solves), started at the kept :math:`A_{ij}` and warm-started from its
    neural potentials: the value, the plans and the matchings returned are
    those of a converged coupling. The finish runs in float64 on the training
    device whatever the training dtype (in float32 its objective stalls at the
    dtype's resolution: measured, k = 3, n = 40, 100 unconverged alternation
    steps against 5), and its results are returned in the training dtype.
    Where the screening ran :func:`~ot_multimarginal.mgw_sinkhorn` on all the
    points (up to ``gromov.NEWTON_MAX_POINTS`` = 3000 in all), its objective is the bar: a finish from the
    learned :math:`A_{ij}` that ends above it by more than 1e-6 relative (a
    worse stationary point; less is the tolerance of both) is
    followed by a finish from the screened :math:`A_{ij}` (already converged:
    a few exact steps), and the lower objective is returned
    (``polish_history_``), so the value is never above the screening's by
    more than that. Beyond that size the screening ran on a subsample, so
    there is no bar on the data: where the exact finish runs, finishes from
    the screened :math:`A_{ij}` and from :math:`A = 0` (the product-plan
    start, which :func:`~ot_multimarginal.mgw_sinkhorn`'s default always
    runs) follow, each within the same work budget, and the lowest
    objective of a converged plan is returned (measured, k = 2, n = 2000,
    box copies: the learned and the screened :math:`A_{ij}` both ended in a
    mirrored basin 2.6 % above :func:`~ot_multimarginal.mgw_sinkhorn` on one
    seed in three; the product-plan start reached its value).

    Parameters
    ----------
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`, in the units of the
        normalised clouds (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    graph : str or list of pairs, optional
        Pairs whose GW losses are summed (default ``'complete'``).
    normalize : {'each', 'joint', None}, optional
        Centring and scaling of the clouds (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    alpha : float in [0, 1], optional
        Weight of the structure term of fused GW; ``1 - alpha`` weighs the
        feature cost (features given to :meth:`fit` as ``Y_s``). Default:
        0.5 with features (POT's default), 1 without (``alpha < 1`` without
        features is an error). ``alpha=0``: the EMOT of the feature cost;
        ``alpha=1``: plain GW.
    feature_metric : str or callable, optional
        The feature cost :math:`c_F`: a metric of :func:`ot.dist` on torch
        tensors (``'sqeuclidean'``, default, ``'euclidean'``, ``'cityblock'``,
        ``'minkowski'``, ``'cosine'``, ``'correlation'``) or a callable
        ``c(F_a, F_b)`` of two torch tensors returning the ``(n_a, n_b)``
        matrix (picklable for :meth:`save`). The networks' costs are
        evaluated on torch tensors, also for NumPy input.
    init : {'auto', 'zero', 'pca'} or list of arrays, optional
        The start of the :math:`A_{ij}`. ``'auto'``/``'pca'``: the candidates of
        :func:`~ot_multimarginal.mgw_sinkhorn` are screened by
        :func:`~ot_multimarginal.mgw_sinkhorn` itself on ``n_init_points``
        points per cloud (a random subset), and its :math:`A_{ij}` start the
        alternation (``'auto'``: if the first fit from it has a collapsed plan,
        the start :math:`A = 0` is tried too and the better kept). Beyond 3000
        points, where the subsample keeps a principal-axes start, the start is
        the principal-axes one of all the points (``init_`` then ends with
        ``'(axes of all the points)'``): the subsample's clouds are independent
        draws, so the rotation of its answer is arbitrary on nearly isotropic
        clouds.
        ``'zero'``: :math:`A = 0`; a list: one matrix per edge.
    n_init_points : int, optional
        Points per cloud of the screening subsample where the clouds have
        more than 3000 points in all. Default (``None``): as many (40 to
        400) as keep the screening's engine work per log-partition within
        that of k = 3 complete at 200 points (k = 2: 400; k = 3: 200;
        k = 4 complete: 52). Below 3000 points in all, the screening is
        :func:`~ot_multimarginal.mgw_sinkhorn` on all the points (the start
        is then that of the exact solver, and the result within the
        exact finish's tolerance of it).
    n_components, max_candidates : int, optional
        The principal-axes candidates (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    max_iter : int, optional
        Maximum number of outer steps (NeuralEMOT fits, rejected ones included;
        default 10; formerly ``n_outer``, deprecated).
    tol : float, optional
        Stop when an accepted step changes the objective by at most ``tol``
        (relative to the previous accepted step) and moves the :math:`A_{ij}`
        by at most ``tol`` (relative): the stopping rule of
        :func:`~ot_multimarginal.mgw_sinkhorn` (default 1e-3). Where the
        objective is an estimate over batches (beyond the exact engine), the
        run also stops, converged to the estimator's resolution
        (``convergence_ = 'noise'``), once ``n_iter_no_change`` steps in a
        row did not lower the best objective by more than two combined
        standard errors (nor ``tol``, relative) and one of them was within
        two standard errors of it: there the :math:`A_{ij}` of successive
        fits differ by more than ``tol`` even at a fixed point (measured,
        k = 3, n = 10⁴ box copies: refits for the same :math:`A_{ij}` agree
        on the objective within its standard error, 0.13 %, while their
        moments differ from it by 1–14 %).
    n_iter_no_change : int, optional
        See ``tol`` (default 3).
    max_iter_inner, max_iter_refit : int, optional
        Training steps of the first fit (default 300; formerly ``n_iter``) and
        of each warm-started refit (default 100; formerly ``n_iter_refit``):
        the ``max_iter`` of each :class:`~ot_multimarginal.neural.NeuralEMOT`.
    batch_size, lr, width, depth, estimator, dtype, device, distributed : optional
        Passed to every :class:`~ot_multimarginal.neural.NeuralEMOT` fit
        (``distributed``: each fit is data-parallel; the :math:`A_{ij}` updates
        are computed identically on every rank).
    n_moment_batches : int, optional
        Batches averaged for the cross-moments, and for the step's NEMOT
        value, when the plan on the data does
        not fit the exact engine (default 128; formerly 32: at k = 3,
        n = 10⁴ the moments of 32 batches were noisy enough that every step
        of one run on box copies was rejected, ending at its start, 3 % above
        where the run with 128 ends; moments are cheap next to a refit).
        A step whose estimated objective has a standard error above 1 % of
        it is trained on (``max_iter_inner`` more iterations, warm) and
        scored again, up to 3 times, before it is judged: heavy-tailed
        batch values are the mark of under-trained potentials, whose dual
        value is far below the objective (k = 3, n = 10⁴ Gaussian copies:
        0.548, standard error 0.093, against 1.14 after training on).
    marginal_tol : float, optional
        The largest :math:`\ell_1` error of a marginal of the neural plan on
        the data for a step to count (default 0.5; a collapsed plan has errors
        near 2). Checked where the data fits the exact engine.
    polish : {'auto', True, False}, optional
        Finish on the data with exact Sinkhorn solves warm-started from the
        kept step's neural potentials (``True``: always; ``'auto'``, default:
        where the data fits the exact engine): up to 3000 points in all, the
        exact alternation of :func:`~ot_multimarginal.mgw_sinkhorn` (Newton
        inner solves) run to convergence; above, the same alternation with
        exact log-domain solves, each with as many sweeps (at most 1000) as a
        budget of 3e11 engine operations allows, and by default only if that
        is at least 50 (k = 3 complete, n = 1500: none; k = 2: up to
        n = 20 000, where the fit's moments are taken on the data): the
        first solve (for the kept :math:`A_{ij}`) always, further steps
        while the sweeps of the finish fit 1e12 operations in all, shared by
        its starts (see above; k = 2, n = 2000: about 20 000 sweeps each;
        n = 10⁴: 830).
    random_state : int, optional
        Seed of the networks, the batches and the subsample (formerly ``seed``, deprecated).
    verbose : bool, optional
        Print the objective of each outer step.
    warn : bool, optional
        ``UserWarning`` when the alternation stops unconverged, when the
        returned plan's marginals are off by more than ``marginal_tol``, or
        when the polishing sweeps do not converge (default True).
    checkpoint_dir : str or path, optional
        Directory of the checkpoints of the alternation (Notes), written
        atomically by rank 0.
    checkpoint_every : int, optional
        Steps between the checkpoints of each inner fit (default 50; as in
        :class:`~ot_multimarginal.neural.NeuralEMOT`).
    resume : bool, optional
        Continue from the newest usable checkpoint in ``checkpoint_dir``
        (start afresh if it holds none): the same result as an uninterrupted
        run (bitwise on the CPU). A checkpoint of another problem raises a
        ``ValueError`` naming what differs.

    Attributes
    ----------
    value_ : float or tensor
        The objective :math:`J` of the returned plan (the polished one, else
        the best step's neural plan on the data; normalised units, the
        convention of :func:`~ot_multimarginal.mgw_sinkhorn`'s value). Where
        the data does not fit the exact engine: :math:`\sum_E S_1^{ij} +
        \sum_E 32\|A_{ij}\|^2 +` the NEMOT value (an estimate: the dual of
        the fitted potentials averaged over the ``n_moment_batches`` batches
        of the step's moments; its standard error is in the warning and
        ``history_['objective_se']``).
    A_ : dict
        Edge :math:`(i, j)` → :math:`A_{ij}` of the returned plan's cost (shape ``(d_i, d_j)``, normalised units).
    emot_ : NeuralEMOT
        The inner estimator of the best step (its potentials are those of the normalised clouds).
    plan_ : FactoredPlan or None
        The returned plan on the normalised clouds (polished, else neural; ``None`` beyond the exact engine).
    marginal_error_ : float or None
        The largest :math:`\ell_1` error of a marginal of ``plan_``.
    polished_ : bool
        Whether ``plan_`` is the polished plan.
    polish_history_ : dict or None
        The exact finish (``None`` without one): ``'objective'`` per step of
        the finish kept, ``'converged'``, ``'start'`` (``'learned'`` or
        ``'screened'``), ``'candidates'`` (the final objective of each finish
        run) and ``'screen_objective'`` (the screening's, where it ran on all
        the points, else ``None``).
    history_ : dict
        Per outer step: ``'objective'``, ``'objective_se'`` (its standard
        error: 0 on the data), ``'A_change'``, ``'marginal_error'``,
        ``'accepted'``, ``'theta'`` (damping of the step's :math:`A`),
        ``'moments'`` (``'data'`` or ``'batches'``), ``'retrains'`` (how
        many times the step's fit was trained on, ``max_iter_inner`` more
        iterations each, because its estimated objective's standard error
        exceeded 1 % of it: see ``n_moment_batches``).
    convergence_ : str or None
        How the run converged: ``'tol'`` (the stopping rule; with the exact
        finish: that of the finish), ``'noise'`` (beyond the exact engine: the
        objective stationary to its standard error, see ``tol``) or ``None``
        (unconverged).
    value_quad_, value_linear_ : float, tensor or None
        The split of ``value_`` at the returned plan (as ``log['value_quad']``
        and ``log['value_linear']`` of :func:`~ot_multimarginal.mgw_sinkhorn`):
        :math:`\alpha\sum_E G(P_{ij})` and
        :math:`(1-\alpha)\sum_E\langle M_{ij}, P_{ij}\rangle` (0 for plain
        GW); ``None`` beyond the exact engine.
    alpha_ : float
        The :math:`\alpha` used (1 without features).
    fused_ : bool
        Whether the features entered the fit (features given and ``alpha < 1``).
    feature_dims_ : list of int or None
        The feature dimensions :math:`f_i` of ``Y_s`` (``None`` without features).
    edges_, scales_, means_, init_, n_iter_, converged_, timings_
        The graph's edges, the normalisation (:math:`\tilde X_i = (X_i - \bar x_i)/s_i`),
        the start kept, outer steps done, whether the run converged (``convergence_``), seconds.

    Notes
    -----
    :meth:`save` writes the parameters, the fitted attributes and the inner
    estimator (its networks and training clouds); :meth:`load` rebuilds the
    inner cost from the saved :math:`A_{ij}`, so a loaded estimator gives the
    same values, plans and matches.

    With ``checkpoint_dir``, ``ckpt-<t>.pt`` holds the state after ``t``
    outer steps (the alternation's state, ``Alternation.state_dict()``: the
    next :math:`A_{ij}`, the history, the best step; the inner estimators of
    the best step and of the warm start; the moments' random stream; ``t = 0``: the
    screened start), the last two kept, and the inner fit of step ``t``
    writes its step checkpoints in ``outer-<t>/``
    (:class:`~ot_multimarginal.neural.NeuralEMOT`'s ``checkpoint_dir``). A
    job killed anywhere, during an inner fit included, resumes
    (``resume=True``, same seed) on the trajectory of the uninterrupted run.

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.neural import NeuralMGW
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(30, 2) - 0.5) * [4.0, 1.0]
    >>> Q, _ = np.linalg.qr(rng.randn(3, 3))
    >>> est = NeuralMGW(reg=0.5, max_iter=3, max_iter_inner=100, max_iter_refit=50, random_state=0)
    >>> est = est.fit([X, X @ Q[:2]])
    >>> est.A_[(0, 1)].shape, est.polished_
    ((2, 3), True)
    """

    @renamed_kwargs(n_outer="max_iter", n_iter="max_iter_inner", n_iter_refit="max_iter_refit", seed="random_state")
    def __init__(
        self,
        reg: float,
        graph: Union[str, Edges] = "complete",
        normalize: Optional[str] = "each",
        alpha: Optional[float] = None,
        feature_metric: Any = "sqeuclidean",
        init: Any = "auto",
        n_init_points: Optional[int] = None,
        n_components: int = 2,
        max_candidates: int = 16,
        max_iter: int = 10,
        tol: float = 1e-3,
        n_iter_no_change: int = 3,
        max_iter_inner: int = 300,
        max_iter_refit: int = 100,
        batch_size: Optional[int] = None,
        lr: float = 1e-2,
        width: Optional[int] = None,
        depth: int = 2,
        estimator: str = "combinatorial",
        dtype: Any = None,
        device: Any = None,
        distributed: Any = "auto",
        n_moment_batches: int = 128,
        marginal_tol: float = 0.5,
        polish: Any = "auto",
        random_state: Optional[int] = None,
        verbose: bool = False,
        warn: bool = True,
        checkpoint_dir: Optional[str] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
    ) -> None:
        self.reg = reg
        self.graph = graph
        self.normalize = normalize
        self.alpha = alpha
        self.feature_metric = feature_metric
        self.init = init
        self.n_init_points = n_init_points
        self.n_components = n_components
        self.max_candidates = max_candidates
        self.max_iter = max_iter
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.max_iter_inner = max_iter_inner
        self.max_iter_refit = max_iter_refit
        self.batch_size = batch_size
        self.lr = lr
        self.width = width
        self.depth = depth
        self.estimator = estimator
        self.dtype = dtype
        self.device = device
        self.distributed = distributed
        self.n_moment_batches = n_moment_batches
        self.marginal_tol = marginal_tol
        self.polish = polish
        self.random_state = random_state
        self.verbose = verbose
        self.warn = warn
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.resume = resume

    # ---- deprecated attribute names ---------------------------------------------------------------
    n_outer = deprecated_attribute("n_outer", "max_iter")
    n_iter = deprecated_attribute("n_iter", "max_iter_inner")
    n_iter_refit = deprecated_attribute("n_iter_refit", "max_iter_refit")
    seed = deprecated_attribute("seed", "random_state")

    # ---- fitting -------------------------------------------------------------------------------
    def _check_params(self):
        reg = check_reg(self.reg)
        check_choice("normalize", self.normalize, NORMALIZATIONS)
        for name, minimum in (
            ("n_iter_no_change", 1),
            ("n_components", 1),
            ("max_candidates", 1),
            ("max_iter", 1),
            ("max_iter_inner", 1),
            ("max_iter_refit", 1),
            ("n_moment_batches", 1),
        ):
            check_positive_int(name, getattr(self, name), minimum=minimum)
        tol = check_reg(self.tol, "tol")
        marginal_tol = check_reg(self.marginal_tol, "marginal_tol")
        polish = check_auto_bool(self.polish, "polish")
        check_bool("warn", self.warn)
        if self.n_init_points is not None:
            check_positive_int("n_init_points", self.n_init_points, minimum=2)
        if self.random_state is not None:
            check_positive_int("random_state", self.random_state, minimum=0)
        check_checkpoint_params(self.checkpoint_dir, self.checkpoint_every, self.resume)
        return reg, tol, marginal_tol, polish

    def _fingerprint(self, data, weights, edges, reg, seed, dt, features=None, alpha=1.0):
        """What a checkpoint of the alternation must agree on to be resumed (compared on resume)."""
        fp = {
            "k": len(data),
            "dims": [int(X.shape[1]) for X in data],
            "sizes": [int(X.shape[0]) for X in data],
            "data": data_digest(data),
            "weights": data_digest(weights),
            "graph": [list(e) for e in edges],
            "reg": reg,
            "seed": int(seed),
            "dtype (values)": str(dt),
            "init": self.init
            if isinstance(self.init, str)
            else "arrays "
            + data_digest([torch.as_tensor(np.asarray(M) if not torch.is_tensor(M) else M) for M in self.init]),
        }
        for name in (
            "normalize n_init_points n_components max_candidates max_iter tol max_iter_inner max_iter_refit "
            "batch_size lr width depth estimator n_moment_batches marginal_tol dtype n_iter_no_change"
        ).split():
            fp[name] = _describe(getattr(self, name))
        # the alternation's rule for estimated objectives (checkpoints of the rule without the look-ahead step,
        # whose state lacks its field, are refused by this key)
        fp["rejection rule"] = "look-ahead, then damped" if alternation.LOOKAHEAD else "damped"
        if features is not None:  # fused (the plain-GW fingerprint is unchanged)
            fp["features (Y_s)"] = data_digest(features)
            fp["alpha"] = alpha
            fp["feature_metric"] = _describe(self.feature_metric)
        return fp

    def _start(self, nx, Xn, a_s, edges, reg, seed, F=None, alpha=1.0):
        """The initial A_ij (normalised units, NumPy or torch like the clouds), the name of the start, and the
        objective of the screening's plan on the data (``None`` unless the screening ran on all the points: then
        :func:`~ot_multimarginal.mgw_sinkhorn`'s value, an alternative the exact finish compares against).

        ``F``: the features (fused; screened by the fused :func:`~ot_multimarginal.mgw_sinkhorn` on the same
        subsample)."""
        init = self.init
        if isinstance(init, str) and init in ("auto", "pca"):
            rng = check_random_state(derive_seed(seed, "mgw-init") % (2**32))
            # where the clouds are in the exact engines' range, the screening is mgw_sinkhorn on all the points
            everything = sum(int(X.shape[0]) for X in Xn) <= NEWTON_MAX_POINTS
            if everything:
                m_sub = None
            elif self.n_init_points is None:
                m_sub = _screen_points(len(Xn), edges)
            else:
                m_sub = int(self.n_init_points)
            sub, sub_F = [], []
            for v, (X, a) in enumerate(zip(Xn, a_s)):
                n = int(X.shape[0])
                m = n if everything else min(n, m_sub)
                p = np.asarray(nx.to_numpy(a), dtype=np.float64)
                idx = np.sort(rng.choice(n, size=m, replace=False, p=p / p.sum() if m < n else None))
                idx = nx.from_numpy(idx, type_as=X).long() if str(nx) == "torch" else idx
                sub.append(nx.detach(X)[idx])
                if F is not None:
                    sub_F.append(nx.detach(F[v])[idx])
            fused = dict(Y_s=sub_F, alpha=alpha, feature_metric=self.feature_metric) if F is not None else {}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a rough screening: its convergence does not matter
                _, lg = mgw_sinkhorn(
                    sub,
                    reg,
                    graph=edges,
                    normalize=None,
                    init=init,
                    n_components=self.n_components,
                    max_candidates=self.max_candidates,
                    random_state=rng,
                    stopThr=1e-5,
                    log=True,
                    warn=False,
                    **fused,
                )
            A = [lg["A"][e] for e in edges]
            if everything:
                return A, "screened:" + lg["init"], float(nx.to_numpy(nx.detach(lg["value"])))
            if alpha > 0.0 and str(lg["init"]).startswith("pca"):
                # the subsample picks the kind of start; a principal-axes one takes the axes of all the points
                return self._principal_start(nx, Xn, a_s, edges, reg, F, alpha, like=A[0]), PRINCIPAL_START, None
            return A, "screened:" + lg["init"], None
        check_positive_int("n_components", self.n_components, minimum=1)
        cands = initial_candidates(nx, init, Xn, a_s, edges, self.n_components, self.max_candidates, None)
        return cands[0][1], cands[0][0], None

    def _principal_start(self, nx, Xn, a_s, edges, reg, F, alpha, like):
        r"""The principal-axes start of all the points, where the subsample screening kept a principal-axes start.

        The subsample's clouds are independent draws (their rows do not correspond), so where a cloud is nearly
        isotropic each one's principal axes point anywhere: the subsample's alternation ends at a rotation of
        the A_ij that has nothing to do with the data's (k = 3, n = 1000, Gaussian copies: 38 % above
        mgw_sinkhorn's value, a stationary point the exact alternation does not leave). The axes of all the
        points are those of the data: :func:`~ot_multimarginal.gromov.pairwise_pca_start` on the full clouds
        (the covariances, O(n d^2); the signs picked on two-cloud problems of at most 400 points) was within
        0.5 % of mgw_sinkhorn's A_ij there, at its value. The subsample still chooses between the product-plan
        start and the principal axes (its objective ranks them; only their rotation is beyond it).
        """
        from .._gw_alternation import GWProblem, SinkhornInner, as_float64
        from ..gromov import _cast_to, pairwise_pca_start

        Xd = as_float64(nx, [nx.detach(X) for X in Xn])
        ad = [a / nx.sum(a) for a in as_float64(nx, [nx.detach(a) for a in a_s])]
        Fd = None if F is None else as_float64(nx, [nx.detach(Fi) for Fi in F])
        problem = GWProblem(nx, Xd, ad, edges, reg, alpha=alpha, F_s=Fd, feature_metric=self.feature_metric)
        A, _ = pairwise_pca_start(
            problem, lambda prob: SinkhornInner(prob, method="sinkhorn_newton", stopThr=1e-5), self.n_components, 2
        )
        return [_cast_to(nx, M, like) for M in A]

    def _inner_fit(self, A, warm, t, data, weights, edges, reg, seed, dev, t_start, retrain=0):
        """The NeuralEMOT fit of outer step ``t`` for the cost of ``A``: a new estimator built from the
        parameters (warm-started from a copy of ``warm``'s networks); no estimator is modified. ``retrain > 0``:
        the ``retrain``-th continuation of that step's fit (``max_iter_inner`` iterations, its own random stream)."""
        params = dict(
            graph=list(edges),
            metric=self._problem.cost(A, separable=True).metrics,  # c_A + separable terms (gromov)
            estimator=self.estimator,
            batch_size=self.batch_size,
            max_iter=int(self.max_iter_inner if warm is None or retrain else self.max_iter_refit),
            lr=self.lr,
            width=self.width,
            depth=self.depth,
            dtype=self.dtype,
            random_state=derive_seed(seed, "outer", t) if retrain == 0 else derive_seed(seed, "outer", t, retrain),
            device=dev,
            distributed=self.distributed,
            warn=False,  # the alternation reports, from the plan on the data
        )
        if retrain:  # not checkpointed: within the step, whose saved state holds the networks it keeps
            params.update(checkpoint_dir=None, resume=False)
        elif self.checkpoint_dir is not None:
            params.update(
                checkpoint_dir=os.path.join(self.checkpoint_dir, "outer-%d" % t),
                checkpoint_every=self.checkpoint_every,
                resume=bool(self.resume and t == t_start),
            )
        emot = NeuralEMOT(reg, **params) if warm is None else warm._warm_copy(**params)
        return emot.fit(data, weights)

    def _score(self, emot, A, data, weights, edges, S1, gen):
        """The :class:`_StepScore` of a fit: the step's objective, marginal error, next A_ij, where the moments were
        taken, the plan and the objective's standard error.

        ``data``: the clouds the networks see (the augmented :math:`[X_i | F_i]` when fused). On the data (its
        engine fits the budget): :math:`J(P) = \\alpha\\sum_E G(P_{ij}) + (1-\\alpha)\\sum_E\\langle M_{ij},
        P_{ij}\\rangle + \\varepsilon KL(P)` of the normalised neural plan, exact, and the largest l1 error of its
        marginals (standard error 0). Else an estimate from batches: :math:`\\alpha(\\sum S_1 + 32\\|A\\|^2) +`
        the NEMOT value, marginals unchecked (``None``). The NEMOT value is estimated afresh over the
        ``n_moment_batches`` batches of the moments (their log-partitions come with the pairwise plans), not
        taken from the fit's own held-out estimate: that one, over ``n_eval_batches`` (32) batches, is
        heavy-tailed where the potentials are under-trained (one batch can lower it by 0.2, standard error
        0.09 for a value near 1.14, Gaussian copies at n = 10⁴) and the lowest objective of the steps is
        kept, so a step of such an estimate would be kept for its noise.
        """
        problem = self._problem
        sizes = [int(X.shape[0]) for X in data]
        with torch.no_grad():
            if exact_is_affordable(emot.cost_, sizes, 10 * EXACT_FLOPS, 4 * EXACT_ENTRIES):
                pot = emot.dual_potentials(data, weights).normalized()
                return _StepScore(*_plan_objective(pot, problem), "data", pot, 0.0)
            b = int(emot.batch_size_)
            acc = [0.0 for _ in edges]
            log_masses = []
            for _ in range(int(self.n_moment_batches)):
                idx = [
                    torch.multinomial(w.detach().cpu(), min(b, w.shape[0]), replacement=False, generator=gen).to(
                        w.device
                    )
                    for w in weights
                ]
                Xb = [X[i] for X, i in zip(data, idx)]
                pot = emot.dual_potentials(Xb)
                log_masses.append(pot.log_mass())  # the batch's log-mean-exp of the dual's exponent
                pot = pot.normalized(log_masses[-1])
                for e, (i, j) in enumerate(edges):
                    Xi, Xj = Xb[i][:, : problem.dims[i]], Xb[j][:, : problem.dims[j]]  # the structure coordinates
                    acc[e] = acc[e] + gw_cross_moment(Xi, Xj, pot.pairwise_marginal(i, j))
            new_A = [M / float(self.n_moment_batches) for M in acc]
            value, se = _batch_dual(emot, data, weights, log_masses)
            obj = problem.alpha * (S1 + sum(32.0 * float((M * M).sum()) for M in A))
            obj += value - problem.separable_mean(A)  # the EMOT of alpha c_A (+ (1 - alpha) M) itself
            return _StepScore(obj, None, new_A, "batches", None, se)

    def fit(self, X_s: Sequence[Array], a_s: Weights = None, Y_s: Optional[Sequence[Array]] = None) -> "NeuralMGW":
        """Fit the alternation on the clouds ``X_s`` (weights ``a_s``, uniform by default).

        Parameters
        ----------
        X_s : list of k arrays of shape (n_i, d_i)
            NumPy arrays or torch tensors (one library); sizes and dimensions may differ.
        a_s : list of k weight vectors, optional
            Weights of the clouds' points (each summing to one); ``None``
            (or a ``None`` entry): uniform.
        Y_s : list of k arrays of shape (n_i, f_i), optional
            Features of the points (fused GW, weighted by ``1 - alpha``; the
            same library as ``X_s``, one row per point, not normalised).
            ``None`` (default): plain GW. The queries of a fused fit need the
            features of new points too (``Y_i``, ``Y_j``).

        Returns
        -------
        self : NeuralMGW
            The fitted estimator.
        """
        t0 = time.perf_counter()
        check_estimator_params(self)
        reg, tol, marginal_tol, polish = self._check_params()
        nx, Xn, a_s, means, scales = prepare_clouds(X_s, a_s, self.normalize)
        k = len(Xn)
        # features and alpha: the validation (and defaults) of mgw_sinkhorn
        F, alpha = _check_features(nx, Y_s, self.alpha, tuple(int(X.shape[0]) for X in Xn), Xn[0])
        fused = F is not None and alpha < 1.0  # alpha = 1: the features do not enter (plain GW, the same fit)
        edges = PointCloudCost(k, self.graph).edges  # the validated edge list (errors name graph)
        Xd = [nx.detach(X) for X in Xn]
        seed = (
            int(self.random_state) if self.random_state is not None else int(np.random.SeedSequence().entropy % (2**62))
        )
        is_numpy = str(nx) == "numpy"
        dev = (
            torch.device(self.device)
            if self.device is not None
            else (torch.device("cpu") if is_numpy else Xd[0].device)
        )
        dt = torch.float64 if is_numpy else Xd[0].dtype
        data = [_to_torch(X, dev, dt) for X in Xd]
        weights = [_to_torch(a, dev, dt) for a in a_s]
        Fd = [_to_torch(nx.detach(Fi), dev, dt) for Fi in F] if fused else None
        if fused:  # the feature cost is computed on torch tensors (also for NumPy input)
            check_metric(self.feature_metric, get_backend(data[0]), "feature_metric")
        ckpt, payload = None, None
        parallel = data_parallel(check_auto_bool(self.distributed, "distributed"), dev)
        if parallel is not None:  # one seed on every rank: the same start, batches of moments and A updates
            seed = int(parallel.broadcast_object(seed))
        if self.checkpoint_dir is not None:
            payload = resume_payload(self.checkpoint_dir, parallel) if self.resume else None
            if payload is not None and self.random_state is None:
                seed = int(payload["extra"]["seed"])
            ckpt = Checkpointer(
                self.checkpoint_dir,
                1,
                self._fingerprint(data, weights, edges, reg, seed, dt, Fd, alpha),
                extra={"seed": seed},
                is_main=parallel is None or parallel.is_main,
            )
        # the cost of each A; the networks see the augmented clouds Z_i = [X_i | F_i] when fused
        self._problem = _NeuralProblem(
            get_backend(data[0]), data, weights, edges, reg, alpha=alpha, F_s=Fd, feature_metric=self.feature_metric
        )
        S1 = self._problem.S1
        gen = torch.Generator().manual_seed(derive_seed(seed, "mgw-moments"))
        ctx = SimpleNamespace(
            data=data,
            train=self._problem.Z_s,
            weights=weights,
            edges=edges,
            reg=reg,
            seed=seed,
            dev=dev,
            S1=S1,
            gen=gen,
            t_start=0,
        )
        solver = _NeuralInner(self._problem, self, ctx)
        no_change = dict(n_iter_no_change=int(self.n_iter_no_change))
        if payload is not None:  # the state after `t_start` outer steps
            ckpt.check(payload)
            st = payload["trainer"]
            t_start, kept, history, s = st["t"], st["init"], st["history"], st["loop"]
            history.setdefault("retrains", [0] * len(history["objective"]))  # (a checkpoint of an earlier version)
            gen.set_state(st["generator"])
            alt_state = _map_tensors(st["alt"], lambda x: x.to(dev))
            fits = {}
            for name, f in st["fits"].items():  # the best fit and the warm start (the networks of each)
                emot = NeuralEMOT._from_saved_state(
                    f["emot"], dev, metric=self._problem.cost([M.to(dev) for M in f["A"]]).metrics
                )
                fits[name] = _NeuralFit(emot, [M.to(dev) for M in f["A"]], f["start"], None, f["err"], f["where"])
            alt = Alternation(
                self._problem, solver, alt_state["A"], name=kept, damping=2, marg_tol=marginal_tol, **no_change
            )
            alt.load_state_dict(alt_state, pot=fits.get("pot"), best_pot=fits.get("best"))
        else:
            A, kept, screen_obj = self._start(nx, Xd, a_s, edges, reg, seed, F if fused else None, alpha)
            A = [_to_torch(nx.detach(M), dev, dt) for M in A]
            t_start = 0
            history = {
                "objective": [],
                "objective_se": [],
                "A_change": [],
                "marginal_error": [],
                "accepted": [],
                "theta": [],
                "moments": [],
                "retrains": [],
            }
            # the fallback start A = 0 (init='auto', first fit collapsed) and the start of the next fit
            s = {"fallback": self.init == "auto" and kept != "zero", "start": kept}
            # the screened A: the exact finish's alternative (obj: mgw_sinkhorn's on all the points, or None where
            # the screening ran on a subsample)
            if kept.startswith("screened"):
                s["screen"] = dict(A=list(A), obj=screen_obj)
            alt = Alternation(self._problem, solver, A, name=kept, damping=2, marg_tol=marginal_tol, **no_change)
        ctx.t_start = solver.t = t_start
        solver.start = s["start"]

        def save_state(t):
            """Checkpoint the state after ``t`` outer steps; drop inner checkpoints no kept state needs."""
            best_fit = None if alt.best is None else alt.best["pot"]
            fits = {}
            for name, f in (("best", best_fit), ("pot", None if alt.pot is best_fit else alt.pot)):
                if f is not None:
                    fits[name] = dict(
                        emot=f.emot._state_dict_for_save(metric=None),
                        A=_cpu(f.A),
                        start=f.start,
                        err=f.err,
                        where=f.where,
                    )
            alt_state = alt.state_dict()
            if alt_state["best"] is not None:
                alt_state["best"] = dict(alt_state["best"], terms=None)
            state = {
                "t": t,
                "init": kept,
                "history": history,
                "loop": dict(s),
                "alt": _cpu(alt_state),
                "fits": fits,
                "generator": gen.get_state(),
            }
            if ckpt.save(SimpleNamespace(step_count=t, state_dict=lambda: state)) is not None:
                for old in range(t - 1):  # the previous state (also kept) resumes into outer-<t - 1>
                    shutil.rmtree(os.path.join(self.checkpoint_dir, "outer-%d" % old), ignore_errors=True)

        if ckpt is not None and payload is None:
            save_state(0)
        while alt.niter < int(self.max_iter) and not alt.converged and not alt.stopped:
            theta = alt.theta  # the damping of this step's A
            alt.run(alt.niter + 1, tol)  # one step, with the stopping rule of the shared alternation (stopThr=tol)
            err = solver.last_fit.err  # None: moments over batches, marginals unchecked
            for name, v in (
                ("objective", alt.history[-1]),
                ("objective_se", alt.obj_se[-1]),
                ("A_change", alt.A_change[-1]),
                ("marginal_error", err),
                ("accepted", alt.accepted[-1]),
                ("theta", theta),
                ("moments", solver.last_where),
                ("retrains", solver.last_retrains),
            ):
                history[name].append(v)
            if self.verbose:
                print(
                    "%3d  objective %.8e  A change %.2e  marginal error %s  theta %.3g  %s  (moments on the %s)"
                    % (
                        alt.niter,
                        alt.history[-1],
                        alt.A_change[-1],
                        "%.2e" % err if err is not None else "-",
                        theta,
                        "accepted" if alt.accepted[-1] else "rejected",
                        solver.last_where,
                    )
                )
            b = alt.best["pot"]
            collapsed = not np.isfinite(alt.best["obj"]) or (b.err is not None and b.err > marginal_tol)
            if collapsed and s["fallback"] and alt.niter == 1 < int(self.max_iter):
                # the first fit's plan collapsed: the start A = 0 replaces it (its first step accepted)
                s["fallback"], s["start"] = False, "zero (fallback)"
                alt.A, alt.best = self._problem.zero_A(), None
                solver.start = s["start"]
            if ckpt is not None:
                save_state(alt.niter)
        best = alt.best
        fit = best["pot"]
        best = dict(
            emot=fit.emot,
            A=best["A"],
            obj=best["obj"],
            err=fit.err,
            where=fit.where,
            pot=fit.pot,
            start=fit.start,
            A_change=alt.A_change[best["step"] - 1],
            step=best["step"],
        )
        s = dict(s, converged=alt.converged, converged_by=alt.converged_by, done=alt.converged or alt.stopped)
        self._finish(best, history, s, kept, data, weights, edges, reg, polish, marginal_tol, tol, is_numpy, dt, dev)
        self.alpha_, self.fused_ = alpha, fused
        self.feature_dims_ = None if F is None else [int(Fi.shape[1]) for Fi in F]
        self.edges_ = list(edges)
        self.scales_, self.means_ = scales, means
        self.S1_ = S1
        self.timings_ = {"total": time.perf_counter() - t0}
        return self

    def _finish(self, best, history, s, kept, data, weights, edges, reg, polish, marginal_tol, tol, is_numpy, dt, dev):
        """The returned plan (polished where the data fits the engine), the fitted attributes and the warnings."""
        emot = best["emot"]
        sizes = [int(X.shape[0]) for X in data]
        train = self._problem.Z_s  # the clouds of the networks (augmented when fused)
        pot, obj, err = best.get("pot"), best["obj"], best["err"]
        if pot is None and best["where"] == "data":  # resumed: the plan of the saved networks, recomputed
            with torch.no_grad():
                pot = emot.dual_potentials(train, weights).normalized()
        one = sum(sizes) > NEWTON_MAX_POINTS  # beyond Newton's range: log-domain solves within a work budget
        # the sweeps of each solve fit POLISH_FLOPS (k marginal updates of the engine's work per sweep)
        sweep_work = len(sizes) * exact_work(emot.cost_, sizes)[0]
        sweeps = int(min(POLISH_MAX_ITER["sinkhorn_log"], POLISH_FLOPS / sweep_work))
        do_polish = polish is True or (
            polish == "auto" and best["where"] == "data" and (not one or sweeps >= POLISH_MIN_SWEEPS)
        )
        polished, alt, A_plan, separable, finish = False, None, best["A"], True, None
        split = self._problem  # the problem whose terms split the value (the float64 one after the exact finish)
        if do_polish:
            with torch.no_grad():
                pr = self._problem

                def f64(x):  # the exact finish runs in float64 on the training device, whatever the training dtype
                    return x.to(torch.float64)

                problem = GWProblem(
                    get_backend(data[0]), [f64(X) for X in data], [f64(w) for w in weights], edges, reg,
                    alpha=pr.alpha, F_s=None if pr.F_s is None else [f64(F) for F in pr.F_s],
                    feature_metric=pr.feature_metric,
                )  # fmt: skip
                method = "sinkhorn_newton" if sum(sizes) <= NEWTON_MAX_POINTS else "sinkhorn_log"

                def solver():
                    return SinkhornInner(
                        problem,
                        method=method,
                        numItermax=max(sweeps, POLISH_MIN_SWEEPS) if one else POLISH_MAX_ITER[method],
                        stopThr=POLISH_TOL,
                        tol_start=POLISH_TOL if one else 1e-4,
                    )

                A0 = [f64(M) for M in best["A"]]
                alt = Alternation(problem, solver(), A0, name="polish")
                if pot is None:
                    pot = emot.dual_potentials(train, weights).normalized()
                # warm start of the first exact solve: the neural potentials (in float64)
                alt.pot = _without_separable([f64(p) for p in pot], problem, A0)

                # the exact alternation to convergence where Newton's inner solves run (as in mgw_sinkhorn); beyond,
                # the exact solve for the kept A (the plan converged for the learned A), then further exact steps
                # while the sweeps of the finish fit its share of POLISH_ALT_FLOPS
                screen = s.get("screen")
                share = POLISH_ALT_FLOPS / (2 + (screen is not None))  # beyond Newton's range: each start's budget

                def run(alt):
                    if not one:
                        return alt.run(POLISH_OUTER, POLISH_STOP).finish()
                    while alt.niter < POLISH_OUTER and not alt.converged and not alt.stopped:
                        alt.run(alt.niter + 1, POLISH_STOP)
                        if (sum(alt.inner_niter) + max(alt.inner_niter)) * sweep_work > share:
                            break  # the next step might not fit the budget
                    return alt.finish()

                b = run(alt)
                finish = dict(
                    start="learned",
                    candidates={"learned": b["obj"]},
                    screen_objective=None if screen is None else screen["obj"],
                )
                if one:
                    # no objective on the data to compare with (the screening ran on a subsample): finish from the
                    # screened A and from A = 0 (the product-plan start, which mgw_sinkhorn's default always runs)
                    # too, each within the same budget
                    extra = [] if screen is None else [("screened", screen["A"])]
                    extra.append(("zero", problem.zero_A()))
                elif (
                    screen is not None
                    and screen["obj"] is not None
                    and b["obj"] > screen["obj"] + POLISH_WORSE * abs(screen["obj"])
                ):
                    # the learned start ended in a worse stationary point than the screening's (mgw_sinkhorn on
                    # all the points, already run): finish from that one too
                    extra = [("screened", screen["A"])]
                else:
                    extra = []
                for name, A_start in extra:  # the lower objective of a converged plan is kept
                    alt2 = Alternation(problem, solver(), [f64(M.to(dev)) for M in A_start], name=name)
                    b2 = run(alt2)
                    finish["candidates"][name] = b2["obj"]
                    if b2["obj"] < b["obj"] and b2["terms"]["marg_err"] <= 10 * POLISH_TOL:
                        alt, b, finish["start"] = alt2, b2, name
                pot, obj, A_plan, err, separable = b["pot"], b["obj"], b["A"], b["terms"]["marg_err"], False
                split = problem
            polished = True
        self.emot_ = emot
        self.A_used_ = best["A"]
        self.A_ = {e: (M.cpu().numpy() if is_numpy else M.to(dt)) for e, M in zip(edges, A_plan)}
        self.polish_history_ = (
            None if alt is None else dict(objective=list(alt.history), converged=alt.converged, **finish)
        )
        self.marginal_error_ = err
        self.value_quad_ = self.value_linear_ = None
        if pot is not None:  # the split of the value (mgw_sinkhorn's value_quad / value_linear)
            with torch.no_grad():
                gw, lin, _ = split.terms([pot.pairwise_marginal(i, j) for i, j in edges])
            a = split.alpha
            self.value_quad_, self.value_linear_ = a * gw, (1.0 - a) * lin
            if not is_numpy:
                self.value_quad_, self.value_linear_ = (
                    torch.tensor(v, dtype=dt, device=dev) for v in (self.value_quad_, self.value_linear_)
                )
        if pot is not None and pot[0].dtype != dt:  # the polished plan in the training dtype: its potentials on
            with torch.no_grad():  # the engine of its cost in that dtype (the value and split are float64's)
                engine = self._problem.cost([M.to(dt) for M in A_plan], separable=separable)
                pot = Potentials(engine.pairwise_cost(train).make_engine(reg), [p.to(dt) for p in pot], weights)
        self.plan_ = None if pot is None else pot.plan()
        self._plan_phi = None if pot is None else [p.detach().cpu() for p in pot]
        self._plan_A, self._plan_separable = [M.detach().cpu().to(dt) for M in A_plan], separable
        self.polished_ = polished
        self.value_ = obj if is_numpy else torch.tensor(obj, dtype=dt, device=dev)
        self.history_ = history
        self.init_ = best["start"]
        self.n_iter_ = len(history["objective"])
        self.converged_ = bool(
            (
                alt.converged
                if sum(sizes) <= NEWTON_MAX_POINTS
                else alt.converged or (s["converged"] and err <= 10 * POLISH_TOL)
            )
            if polished
            else s["converged"]
        )
        self.convergence_ = None if not self.converged_ else "tol" if polished else s.get("converged_by") or "tol"
        self._is_numpy = is_numpy
        self._dev, self._dt = dev, dt
        if not self.warn:
            return
        if not self.converged_:
            why = (
                "the exact alternation that finishes it did not converge in %d steps" % POLISH_OUTER
                if polished and sum(sizes) <= NEWTON_MAX_POINTS
                else "the exact alternation that finishes it stopped after %d steps (work budget; its last solve at "
                "marginal error %.2e)" % (alt.niter, err)
                if polished and alt is not None
                else "the budget max_iter=%d ended" % int(self.max_iter)
                if not s["done"]
                else "the damped steps did not lower the objective (the inner fits are too noisy)"
                if best["step"] > 1
                else "no update lowered the first step's objective, so the A_ij returned are the start's (%s): "
                "the moments of the neural plan moved them away from it (n = 10⁴ isotropic Gaussian copies: every "
                "update 40-60 %% above, where the start was within 0.02 %% of the exact optimum at n = 1000)"
                % best["start"]
            )
            warnings.warn(
                "NeuralMGW: the alternation stopped unconverged after %d outer steps (%s; last A change %.2e, "
                "tol %.1e): the best step (%d) is returned; raise max_iter, or max_iter_refit / batch_size (less "
                "noisy fits), or use mgw_sinkhorn where the data fits it"
                % (self.n_iter_, why, best["A_change"], tol, best["step"]),
                UserWarning,
                stacklevel=3,
            )
        if err is not None and err > marginal_tol:
            warnings.warn(
                "NeuralMGW: the returned plan's marginals are off (largest l1 error %.3g > marginal_tol %.3g): the "
                "neural fit collapsed; raise max_iter_inner / max_iter_refit or batch_size, lower lr, or polish the "
                "plan (polish=True) / use mgw_sinkhorn" % (err, marginal_tol),
                UserWarning,
                stacklevel=3,
            )
        if err is None:
            se = history["objective_se"][best["step"] - 1]
            noisy = (
                ""
                if se <= RETRAIN_REL_SE * abs(best["obj"])
                else "; its standard error is %.1f %% of it even after %d trainings on: the potentials are "
                "under-trained and the estimate may be far below the objective (raise max_iter_inner or batch_size)"
                % (100 * se / abs(best["obj"]), history["retrains"][best["step"] - 1])
            )
            warnings.warn(
                "NeuralMGW: the clouds (sizes %s) are beyond the exact engine: the plan's marginals were not checked "
                "on the data and the value is an estimate (the NEMOT value of the best step, standard error %.2g): "
                "a dual value, below the objective of the plan for its A_ij where the potentials are under-trained "
                "(measured with the objective over batches at k = 3, n = 1000: 0.5-3.0 %% below; at n = 10⁴ fits for "
                "one A_ij differed by up to 8 %%: each step keeps its highest), and the lowest of the steps' "
                "estimates%s%s"
                % (
                    sizes,
                    se,
                    noisy,
                    ""
                    if self.convergence_ != "noise"
                    else "; converged to the estimator's resolution: %d steps in a row did not lower it by more than "
                    "two standard errors (the A_ij of the fits still moved by %.2g, above tol %.1e)"
                    % (int(self.n_iter_no_change), max(history["A_change"][-int(self.n_iter_no_change) :]), tol),
                ),
                UserWarning,
                stacklevel=3,
            )

    # ---- what the fit gives --------------------------------------------------------------------
    def _check_fitted(self):
        if getattr(self, "emot_", None) is None:
            raise RuntimeError("this NeuralMGW is not fitted yet: call fit(X_s) first")

    def _normalised(self, i, X, Y=None):
        """Points of cloud ``i`` in the coordinates of the networks (a torch tensor): the normalised ``X``, followed
        by the features ``Y`` when the fit was fused."""
        k = len(self.means_)
        if not isinstance(i, (int, np.integer)) or not 0 <= i < k:
            raise ValueError("marginal index must be in [0, %d), got %r" % (k, i))
        f = self.feature_dims_[i] if self.feature_dims_ is not None else 0
        d = int(self.emot_.potentials_[i].d) - (f if self.fused_ else 0)
        check_query_points(X, "X_%d" % i, d)
        is_np = isinstance(X, np.ndarray)
        T = _to_torch(np.asarray(X, dtype=np.float64) if is_np else X, self._dev, self._dt)
        if T.ndim != 2 or T.shape[1] != d:
            raise ValueError("X_%d must have shape (m, %d), got %s" % (i, d, tuple(T.shape)))
        mean, scale = (
            _to_torch(np.asarray(v, dtype=np.float64) if self._is_numpy else v, self._dev, self._dt)
            for v in (self.means_[i], self.scales_[i])
        )
        T = (T - mean[None, :]) / scale
        if Y is None:
            return T, is_np
        check_query_points(Y, "Y_%d" % i, f)
        if int(Y.shape[0]) != int(T.shape[0]):
            raise ValueError(
                "Y_%d must have one row per point of X_%d (%d rows), got %d" % (i, i, int(T.shape[0]), int(Y.shape[0]))
            )
        if not self.fused_:  # alpha = 1: the features do not enter the fit
            return T, is_np
        Yt = _to_torch(np.asarray(Y, dtype=np.float64) if isinstance(Y, np.ndarray) else Y, self._dev, self._dt)
        return torch.cat([T, Yt], dim=1), is_np

    def _query_points(self, i, j, X_i, X_j, Y_i, Y_j):
        """The networks' inputs at new points (``None, None`` for the training clouds); errors name the argument."""
        if (X_i is None) != (X_j is None):
            raise ValueError("give both X_i and X_j, or neither")
        if (Y_i is None) != (Y_j is None):
            raise ValueError("give both Y_i and Y_j, or neither")
        if X_i is None:
            if Y_i is not None:
                raise ValueError("Y_i and Y_j are the features of the new points X_i and X_j: give those too")
            return None, None, None
        if Y_i is not None and self.feature_dims_ is None:
            raise ValueError("Y_i and Y_j given, but this NeuralMGW was fitted without features (Y_s): leave them out")
        if Y_i is None and self.fused_:
            raise ValueError(
                "this NeuralMGW was fitted with features (Y_s, alpha=%g): give the features Y_i and Y_j of the new "
                "points X_i and X_j" % self.alpha_
            )
        Ti, is_np = self._normalised(i, X_i, Y_i)
        Tj, _ = self._normalised(j, X_j, Y_j)
        return Ti, Tj, is_np

    def _query(self, i, j, X_i, X_j, Y_i, Y_j, method, n_samples, random_state):
        """The validated query: ``(Ti, Tj, is_np, weights, method)``; ``Ti is None``: the plan ``plan_`` itself.

        ``weights``: ``None`` for new points (a density), else the training weights (the plan on the clouds).
        """
        method = check_choice("method", method, QUERY_METHODS)
        check_positive_int("n_samples", QUERY_SAMPLES if n_samples is None else n_samples, minimum=2)
        if random_state is not None:
            check_positive_int("random_state", random_state, minimum=0)
        k = len(self.means_)
        check_marginal_pair(i, j, k)
        Ti, Tj, is_np = self._query_points(i, j, X_i, X_j, Y_i, Y_j)
        weights = None
        if Ti is None:
            if self.plan_ is not None and method != "sampled":
                return None, None, self._is_numpy, None, "plan"
            emot = self.emot_
            Ti, Tj, is_np = emot.X_fit_[i].to(self._dt), emot.X_fit_[j].to(self._dt), self._is_numpy
            weights = (emot.a_fit_[i].to(self._dt), emot.a_fit_[j].to(self._dt))
        sizes = [int(X.shape[0]) for X in self.emot_.X_fit_]
        sizes[i], sizes[j] = int(Ti.shape[0]), int(Tj.shape[0])
        if method == "auto":
            fits = exact_is_affordable(self.emot_.cost_, sizes, QUERY_EXACT_FLOPS, QUERY_EXACT_ENTRIES)
            method = "exact" if fits or k != 3 else "sampled"
        if method == "sampled" and k != 3:
            raise ValueError(
                "method='sampled' sums over one other cloud by sampling: it needs k = 3 marginals, got k = %d "
                "(use method='exact')" % k
            )
        return Ti, Tj, is_np, weights, method

    def _generator(self, random_state, device):
        g = torch.Generator(device=device)  # the draws are made where the query points are
        return g.manual_seed(derive_seed(0 if random_state is None else int(random_state), "mgw-query"))

    def pairwise_plan(
        self,
        i: int,
        j: int,
        X_i: Optional[Array] = None,
        X_j: Optional[Array] = None,
        Y_i: Optional[Array] = None,
        Y_j: Optional[Array] = None,
        method: str = "auto",
        n_samples: Optional[int] = None,
        random_state: Optional[int] = None,
        return_std: bool = False,
    ) -> Any:
        r"""The pairwise plan on marginals ``(i, j)``, on the training clouds or at new points.

        The density of the pairwise marginal at :math:`(x, y)` sums the plan
        over the other clouds; for k = 3 (one other cloud :math:`l`, the
        networks' potentials :math:`\varphi`, log-partition :math:`\Lambda`):

        .. math::
            D(x, y) = e^{(\varphi_i(x) + \varphi_j(y) - c_{ij}(x, y))/\varepsilon - \Lambda}
            \sum_{z \in X_l} a_l(z)\, e^{(\varphi_l(z) - c_{il}(x, z) - c_{jl}(y, z))/\varepsilon} .

        ``method='exact'`` does that sum over the whole training cloud
        (:meth:`NeuralEMOT.pairwise_plan <ot_multimarginal.neural.NeuralEMOT.pairwise_plan>`: :math:`m_i m_j n_l`
        operations; a ``MemoryError`` beyond its budget). ``method='sampled'``
        (k = 3 only) estimates it by importance sampling from the conditional
        law of the third point given :math:`x`,
        :math:`q_x(z) \propto a_l(z) e^{(\varphi_l(z) - c_{il}(x, z))/\varepsilon}`
        (its normaliser computed exactly): blocks of up to 64 query points
        close in space share ``n_samples`` draws from the mixture of their
        conditionals, each point weighting them by :math:`q_x / \bar q`
        (blocks are split until every point's effective sample size is at
        least ``n_samples / 8``), and :math:`D(x, y)` is estimated by the
        weighted mean of :math:`e^{-c_{jl}(y, z)/\varepsilon}`: unbiased, in
        about :math:`m_i n_l + (m_i / 64) S m_j` exponentials and a
        :math:`m_i S m_j` matrix product, memory bounded by the block (it
        runs at any n). ``return_std=True`` gives the standard error of each
        entry (the weighted draws' sample standard deviation over
        :math:`\sqrt S`; it shrinks like :math:`1/\sqrt S`, and where the draws
        miss a rare heavy term it is underestimated with the entry). Near-ties
        may then be ordered otherwise than by the exact sum. ``method='auto'``
        (default): ``'exact'`` where the exact sum fits the budget of
        NeuralEMOT's exact evaluation (:data:`QUERY_EXACT_FLOPS` = 2e11
        operations and :data:`QUERY_EXACT_ENTRIES` = 4e8 entries as counted by
        :func:`~ot_multimarginal.neural.evaluation.exact_work`: k = 3 complete
        graph, about :math:`\max(m_i, m_j, n_l) \le 5800`), else ``'sampled'``
        (k = 3; for k > 3 ``'exact'``).

        Parameters
        ----------
        i, j : int
            Two different marginals.
        X_i, X_j : array-like of shape (m_i, d_i) and (m_j, d_j), optional
            New points (original coordinates; give both or neither).
        Y_i, Y_j : array-like of shape (m_i, f_i) and (m_j, f_j), optional
            Their features: needed (and only accepted) when the estimator was
            fitted with features ``Y_s``; ignored when it was fitted with
            ``alpha=1`` (the features did not enter).
        method : {'auto', 'exact', 'sampled'}, optional
            How the other clouds are summed (above). Without points, the
            returned plan ``plan_`` is used where there is one (the data fit
            the exact engine) unless ``method='sampled'``; beyond the engine
            (``plan_`` is ``None``) ``'auto'`` samples.
        n_samples : int, optional
            Draws of the third point per block of query points for
            ``'sampled'`` (default :data:`QUERY_SAMPLES` = 256).
        random_state : int, optional
            Seed of the draws (default 0: the same answer on every call).
        return_std : bool, optional
            Also return the standard error of each entry (zeros where exact).

        Returns
        -------
        P : array-like
            Without points: the plan on the training clouds, shape
            ``(n_i, n_j)``, summing to one: ``plan_`` (polished where the data
            fits the engine), or the sampled estimate of the networks' plan
            normalised to mass one (the density times :math:`a_i a_j^\top`).
            With points: the density with respect to
            :math:`\mu_i\otimes\mu_j` at every pair, shape ``(m_i, m_j)``.
            NumPy for NumPy input, torch otherwise.
        se : array-like, optional
            With ``return_std``: the standard error of each entry of ``P``.

        Raises
        ------
        ValueError
            For points of the wrong shape, only one of ``X_i``, ``X_j`` (or
            ``Y_i``, ``Y_j``), new points without their features after a fused
            fit (with features after a fit without them), an unknown
            ``method``, or ``method='sampled'`` with k > 3.
        MemoryError
            ``method='exact'`` beyond the exact budget.
        """
        self._check_fitted()
        check_bool("return_std", return_std)
        Ti, Tj, is_np, weights, method = self._query(i, j, X_i, X_j, Y_i, Y_j, method, n_samples, random_state)
        if method == "plan":
            P = self.plan_.pairwise_marginal(i, j)
            P = P.cpu().numpy() if self._is_numpy else P.to(self._dt)
            return (P, P * 0) if return_std else P
        if method == "exact":
            if weights is None:
                D = self.emot_.pairwise_plan(i, j, Ti, Tj)
            else:  # the networks' plan on the training clouds
                D = self.emot_.pairwise_plan(i, j)
            se = D * 0
        else:
            S = QUERY_SAMPLES if n_samples is None else int(n_samples)
            gen = self._generator(random_state, Ti.device)
            D = torch.empty((int(Ti.shape[0]), int(Tj.shape[0])), dtype=Ti.dtype, device=Ti.device)
            se = torch.empty_like(D) if return_std else None
            for rows, Db, sb in _sampled_pairwise_rows(self.emot_, i, j, Ti, Tj, S, gen, std=return_std):
                D[rows] = Db
                if return_std:
                    se[rows] = sb
            if weights is not None:  # the plan: density times a_i a_j^T, normalised to mass one
                P = D * weights[0][:, None] * weights[1][None, :]
                mass = P.sum()
                D = P / mass
                se = None if se is None else se * weights[0][:, None] * weights[1][None, :] / mass
        if torch.is_tensor(D) and is_np:
            D = D.cpu().numpy()
            se = None if se is None or not torch.is_tensor(se) else se.cpu().numpy()
        return (D, se) if return_std else D

    def match(
        self,
        i: int,
        j: int,
        X_i: Optional[Array] = None,
        X_j: Optional[Array] = None,
        soft: bool = False,
        Y_i: Optional[Array] = None,
        Y_j: Optional[Array] = None,
        method: str = "auto",
        n_samples: Optional[int] = None,
        random_state: Optional[int] = None,
    ) -> Any:
        """For each point of ``X_i`` its most likely partner in ``X_j`` (or the conditional law).

        Parameters
        ----------
        i, j : int
            Two different marginals.
        X_i, X_j : array-like, optional
            Points of marginals ``i`` and ``j`` (original coordinates);
            default: the training clouds (give both or neither).
        soft : bool, optional
            Return the conditional law of the partner instead of its index.
        Y_i, Y_j : array-like, optional
            The features of ``X_i`` and ``X_j`` (needed after a fit with
            features ``Y_s``; see :meth:`pairwise_plan`).
        method : {'auto', 'exact', 'sampled'}, optional
            How the other clouds are summed (:meth:`pairwise_plan`): with
            ``'sampled'`` (the default beyond the exact budget, k = 3) the
            matches are those of the sampled estimate of the plan, computed
            by blocks of query points (the ``(m_i, m_j)`` matrix is not kept
            unless ``soft``): near-ties may differ from the exact plan's.
        n_samples, random_state : optional
            The draws of ``'sampled'`` (:meth:`pairwise_plan`).

        Returns
        -------
        match : numpy.ndarray of int of shape (m_i,), or array of shape (m_i, m_j)
            Index in ``X_j`` of the most likely partner of each point of
            ``X_i``; with ``soft=True`` the conditional law (rows sum to one).
        """
        self._check_fitted()
        check_bool("soft", soft)
        Ti, Tj, is_np, weights, how = self._query(i, j, X_i, X_j, Y_i, Y_j, method, n_samples, random_state)
        if how != "sampled" or soft:
            P = self.pairwise_plan(i, j, X_i, X_j, Y_i, Y_j, method, n_samples, random_state)
            return match_from_plan(P, soft=soft)
        S = QUERY_SAMPLES if n_samples is None else int(n_samples)
        gen = self._generator(random_state, Ti.device)
        out = np.empty(int(Ti.shape[0]), dtype=np.int64)
        for rows, D, _ in _sampled_pairwise_rows(self.emot_, i, j, Ti, Tj, S, gen):
            if weights is not None:  # the plan's row: density times a_j (a_i scales the row)
                D = D * weights[1][None, :]
            out[rows.cpu().numpy()] = torch.argmax(D, dim=1).cpu().numpy()
        return out

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Save the fitted estimator (parameters, fitted attributes, inner estimator) with ``torch.save``.

        The fused settings (``alpha``, ``feature_metric``, the features of the
        training points) are saved too; a callable ``feature_metric`` must be
        picklable (a module-level function, not a lambda).

        Parameters
        ----------
        path : str or path-like
            The file to write.
        """
        self._check_fitted()
        if callable(self.feature_metric):
            try:
                pickle.dumps(self.feature_metric)
            except Exception as exc:
                raise ValueError(
                    "feature_metric=%r cannot be saved (%s): use a metric name or a module-level function"
                    % (self.feature_metric, exc)
                ) from exc
        params = dict(self.get_params(deep=False), dtype=str(self.dtype) if self.dtype is not None else None)
        if not isinstance(self.init, str):
            params["init"] = [_cpu(M) if torch.is_tensor(M) else np.asarray(M) for M in self.init]
        torch.save(
            {
                "kind": _SAVED_KIND,
                "params": params,
                "emot": self.emot_._state_dict_for_save(metric=None),
                "fitted": _cpu({n: getattr(self, n) for n in _FITTED}),
                "value": _cpu(self.value_),
                "values_dtype": str(self._dt),
            },
            check_save_path(path),
        )

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], device: Any = None) -> "NeuralMGW":
        """Load an estimator saved by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The file written by :meth:`save`.
        device : str or torch.device, optional
            Where to put the networks, clouds and :math:`A_{ij}` (default: the CPU).

        Returns
        -------
        estimator : NeuralMGW
            The fitted estimator, ready for :meth:`pairwise_plan` and :meth:`match`.

        Raises
        ------
        ValueError
            When ``path`` is not a file of :meth:`NeuralMGW.save` (a
            :class:`~ot_multimarginal.neural.NeuralEMOT` file included).
        """
        state, device = _read_saved(path, _SAVED_KIND), check_device(device)
        params = dict(state["params"], dtype=_torch_dtype(state["params"]["dtype"]))
        if device is not None:
            params["device"] = device
        est = cls(**params)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        for n, v in dict(_FUSED_DEFAULTS, **_map_tensors(state["fitted"], lambda t: t.to(dev))).items():
            setattr(est, n, v)
        est._dev, est._dt = dev, _torch_dtype(state["values_dtype"])
        est.value_ = _map_tensors(state["value"], lambda t: t.to(dev))
        X, w = [Z.to(dev) for Z in state["emot"]["X_fit"]], [a.to(dev) for a in state["emot"]["a_fit"]]
        F = None
        if est.fused_:  # the networks' clouds are [X_i | F_i]: split them back
            f = est.feature_dims_
            X, F = [Z[:, : Z.shape[1] - fi] for Z, fi in zip(X, f)], [Z[:, Z.shape[1] - fi :] for Z, fi in zip(X, f)]
        problem = GWProblem(
            get_backend(X[0]), X, w, est.edges_, state["emot"]["fitted"]["reg_"], alpha=est.alpha_, F_s=F,
            feature_metric=est.feature_metric,
        )  # fmt: skip
        metric = problem.cost([M.to(X[0]) for M in est.A_used_], separable=True).metrics
        est.emot_ = NeuralEMOT._from_saved_state(state["emot"], dev, metric=metric)
        est.plan_ = None
        if est._plan_phi is not None:  # the returned plan: its potentials on the engine of its cost
            data, weights = est.emot_.X_fit_, est.emot_.a_fit_
            A = [M.to(data[0]) for M in est._plan_A]
            engine = problem.cost(A, separable=est._plan_separable).pairwise_cost(data).make_engine(est.emot_.reg_)
            est.plan_ = Potentials(engine, [p.to(data[0]) for p in est._plan_phi], weights).plan()
        return est


_RENAMED = dict(n_outer="numItermax", tol="stopThr", n_iter="numItermaxInner", seed="random_state")
_OWN = (
    "X_s",
    "reg",
    "a_s",
    "graph",
    "normalize",
    "Y_s",
    "alpha",
    "feature_metric",
    "init",
    "numItermax",
    "stopThr",
    "numItermaxInner",
    "random_state",
    "verbose",
    "log",
    "warn",
)


def _fit(
    X_s,
    reg,
    a_s,
    graph,
    normalize,
    Y_s,
    alpha,
    feature_metric,
    init,
    numItermax,
    stopThr,
    numItermaxInner,
    random_state,
    verbose,
    warn,
    kw,
):
    """The fitted :class:`NeuralMGW` of a functional call (its own names in its errors)."""
    caller = kw.pop("_caller")
    check_positive_int("numItermax", numItermax, minimum=1)
    check_positive_int("numItermaxInner", numItermaxInner, minimum=1)
    check_reg(stopThr, "stopThr")
    own = {"max_iter": "numItermax", "tol": "stopThr", "max_iter_inner": "numItermaxInner"}
    passed_on = tuple(n for n in NeuralMGW._get_param_names() if n not in own and n not in _OWN)
    for key in kw:
        if key in own:
            raise TypeError("%s() got the NeuralMGW name %r: use %s" % (caller, key, own[key]))
        if key not in passed_on and key not in NeuralMGW.__init__.__renamed_kwargs__:
            close = closest_name(key, _OWN + passed_on)
            raise TypeError(
                "%s() got an unexpected keyword argument %r%s. Keywords passed on to NeuralMGW: %s"
                % (caller, key, " (did you mean %r?)" % close if close else "", ", ".join(passed_on))
            )
    est = NeuralMGW(
        reg,
        graph=graph,
        normalize=normalize,
        alpha=alpha,
        feature_metric=feature_metric,
        init=init,
        max_iter=numItermax,
        tol=stopThr,
        max_iter_inner=numItermaxInner,
        random_state=random_state,
        verbose=verbose,
        warn=warn,
        **kw,
    )
    return est.fit(X_s, a_s, Y_s)


def _log(est):
    try:
        plans = {}
        for i, j in est.edges_:
            P = est.pairwise_plan(i, j, method="exact")  # beyond the engine: no plans (the log stays cheap)
            plans[(i, j)], plans[(j, i)] = P, P.T
    except MemoryError:
        plans = None
    h = est.history_
    return dict(
        value=est.value_,
        value_quad=est.value_quad_,
        value_linear=est.value_linear_,
        alpha=est.alpha_,
        A=dict(est.A_),
        pairwise_plans=plans,
        estimator=est,
        objective=list(h["objective"]),
        accepted=list(h["accepted"]),
        err=list(h["marginal_error"]),
        marginal_error=est.marginal_error_,
        polished=est.polished_,
        init=est.init_,
        edges=list(est.edges_),
        niter=est.n_iter_,
        converged=bool(est.converged_),
        convergence=est.convergence_,
        objective_se=list(h["objective_se"]),
    )


_DOC = r"""Multimarginal entropic Gromov–Wasserstein by neural potentials (mini-batches; torch): %(what)s.

    The problem, the value's convention and ``normalize`` are those of
    :func:`~ot_multimarginal.mgw_sinkhorn`; the inner EMOT is solved by
    :class:`~ot_multimarginal.neural.NeuralEMOT`, so the work per step depends on
    the batch size, not on the number of points. The alternation is monotone
    (a step that raises the objective of its plan on the data, or whose plan's
    marginals are off, is rejected and damped; the best step is kept) and,
    where the data fits an exact engine, the plan is polished by exact
    Sinkhorn sweeps from the neural potentials (see :class:`NeuralMGW`).
    %(pair)s

    With features ``Y_s`` (*fused* GW) the objective is

    .. math::
        \alpha \sum_{(i, j) \in E} G(P_{ij}) + (1 - \alpha) \sum_{(i, j) \in E} \langle M_{ij}, P_{ij}\rangle
        + \varepsilon\,\mathrm{KL}(P \,\|\, \mu_1 \otimes \cdots \otimes \mu_k),

    :math:`M_{ij}` the feature cost ``feature_metric`` between ``Y_s[i]`` and
    ``Y_s[j]`` (the convention of :func:`~ot_multimarginal.mgw_sinkhorn`, POT's
    ``entropic_fused_gromov_wasserstein`` for k = 2): the feature cost enters
    the linear cost of the decomposition, each NeuralEMOT fit has the pairwise
    cost :math:`\sum_E \alpha\, c_{A_{ij}} + (1 - \alpha) M_{ij}` and its
    networks see the points with their features.

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Point clouds (NumPy or torch, one library; sizes and dimensions may differ).
    reg : float
        Entropic regularisation, in the units of the normalised clouds.
    a_s : list of k weight vectors, optional
        Weights of the points (uniform when ``None``).
    graph : str or list of pairs, optional
        Pairs whose GW losses are summed (default ``'complete'``).
    normalize : {'each', 'joint', None}, optional
        Centring and scaling of the clouds (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
        The features ``Y_s`` are not normalised.
    Y_s : list of k arrays of shape (n_i, f_i), optional
        Features of the points (fused GW): row ``a`` of ``Y_s[i]`` describes
        point ``a`` of ``X_s[i]`` (same library as ``X_s``). ``None``
        (default): plain GW. The estimator's queries at new points then need
        their features (``Y_i``, ``Y_j`` of :meth:`NeuralMGW.pairwise_plan`).
    alpha : float in [0, 1], optional
        Weight of the structure term; ``1 - alpha`` weighs the feature cost.
        Default: 0.5 with ``Y_s`` (POT's default), 1 without (``alpha < 1``
        without ``Y_s`` is an error). ``alpha=0``: the EMOT of the feature
        cost (one NeuralEMOT fit); ``alpha=1``: plain GW (the features ignored).
    feature_metric : str or callable, optional
        The feature cost: a metric of :func:`ot.dist` on torch tensors
        (default ``'sqeuclidean'``) or a callable ``c(F_a, F_b)`` of two torch
        tensors returning the ``(n_a, n_b)`` matrix (see :class:`NeuralMGW`).
    init : {'auto', 'zero', 'pca'} or list of arrays, optional
        Start of the :math:`A_{ij}` (see :class:`NeuralMGW`; ``'auto'``/``'pca'``
        screen the starts by the fused :func:`~ot_multimarginal.mgw_sinkhorn`
        when ``Y_s`` is given).
    numItermax : int, optional
        Maximum number of outer steps (NeuralEMOT fits; ``max_iter`` of :class:`NeuralMGW`;
        formerly ``n_outer``, deprecated).
    stopThr : float, optional
        Stop when an accepted step changes the objective by at most ``stopThr``
        (relative) and moves the :math:`A_{ij}` by at most ``stopThr``
        (relative; ``tol`` of :class:`NeuralMGW`; formerly ``tol``).
    numItermaxInner : int, optional
        Training steps of the first NeuralEMOT fit (``max_iter_inner``; formerly ``n_iter``);
        the refits take ``max_iter_refit`` (a keyword of :class:`NeuralMGW`).
    random_state : int, optional
        Seed of the networks, the batches and the subsample (formerly ``seed``).
    verbose : bool, optional
        Print the objective of each outer step.
    log : bool, optional
        Also return a dict: ``value``, ``value_quad`` and ``value_linear``
        (its split at the returned plan, :math:`\alpha\sum_E G(P_{ij})` and
        :math:`(1-\alpha)\sum_E\langle M_{ij}, P_{ij}\rangle`, as in
        :func:`~ot_multimarginal.mgw_sinkhorn`; ``None`` beyond the exact
        engine), ``alpha``, ``A`` (edge → :math:`A_{ij}`),
        ``pairwise_plans`` (edge → the returned plan on the data, both
        orientations; ``None`` when the data's engine does not fit the
        budget), ``estimator`` (the fitted :class:`NeuralMGW`), ``objective``
        (per outer step), ``accepted`` (per step), ``err`` (the largest
        marginal :math:`\ell_1` error of each step's plan), ``marginal_error``
        (of the returned plan), ``polished``, ``init``, ``edges``, ``niter``,
        ``converged``, ``convergence`` (``'tol'``, ``'noise'`` or ``None``:
        ``convergence_`` of :class:`NeuralMGW`), ``objective_se`` (per step:
        the standard error of the objective, 0 on the data).
    warn : bool, optional
        ``UserWarning`` when the alternation stops unconverged or the returned
        plan's marginals are off (see :class:`NeuralMGW`).
    **kwargs
        Other parameters of :class:`NeuralMGW` (``max_iter_refit``,
        ``batch_size``, ``lr``, ``marginal_tol``, ``polish``, ...).

    Returns
    -------
    %(returns)s
    log : dict
        Returned if ``log=True`` (see ``log`` above).

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.neural import %(name)s
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(20, 2) - 0.5) * [4.0, 1.0]
    >>> Q, _ = np.linalg.qr(rng.randn(3, 3))
    >>> %(example)s
    """


@renamed_kwargs(**_RENAMED)
def mgw_neural(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    normalize: Optional[str] = "each",
    Y_s: Optional[Sequence[Array]] = None,
    alpha: Optional[float] = None,
    feature_metric: Any = "sqeuclidean",
    init: Any = "auto",
    numItermax: int = 10,
    stopThr: float = 1e-3,
    numItermaxInner: int = 300,
    random_state: Optional[int] = None,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    **kwargs: Any,
) -> Union["NeuralMGW", Tuple["NeuralMGW", LogDict]]:
    kwargs["_caller"] = "mgw_neural"
    est = _fit(
        X_s, reg, a_s, graph, normalize, Y_s, alpha, feature_metric, init, numItermax, stopThr, numItermaxInner,
        random_state, verbose, warn, kwargs,
    )  # fmt: skip
    return (est, _log(est)) if log else est


@renamed_kwargs(**_RENAMED)
def mgw_neural2(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    normalize: Optional[str] = "each",
    Y_s: Optional[Sequence[Array]] = None,
    alpha: Optional[float] = None,
    feature_metric: Any = "sqeuclidean",
    init: Any = "auto",
    numItermax: int = 10,
    stopThr: float = 1e-3,
    numItermaxInner: int = 300,
    random_state: Optional[int] = None,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    **kwargs: Any,
) -> Union[Any, Tuple[Any, LogDict]]:
    kwargs["_caller"] = "mgw_neural2"
    est = _fit(
        X_s, reg, a_s, graph, normalize, Y_s, alpha, feature_metric, init, numItermax, stopThr, numItermaxInner,
        random_state, verbose, warn, kwargs,
    )  # fmt: skip
    return (est.value_, _log(est)) if log else est.value_


mgw_neural.__doc__ = _DOC % dict(
    name="mgw_neural",
    what="the fitted estimator",
    pair=":func:`mgw_neural2` returns the value.",
    returns="estimator : NeuralMGW\n        The fitted estimator: ``value_``, ``A_``, ``plan_``, "
    ":meth:`~NeuralMGW.match`,\n        :meth:`~NeuralMGW.pairwise_plan` (also at new points).",
    example="est = mgw_neural([X, X @ Q[:2]], 0.5, numItermax=2, random_state=0, warn=False)\n    >>> "
    "est.match(0, 1).shape\n    (20,)",
)
mgw_neural2.__doc__ = _DOC % dict(
    name="mgw_neural2",
    what="the value",
    pair=":func:`mgw_neural` returns the fitted estimator.",
    returns="value : float (NumPy input) or tensor\n        The MGW value (the convention of "
    ":func:`~ot_multimarginal.mgw_sinkhorn`).",
    example="v = mgw_neural2([X, X @ Q[:2]], 0.5, numItermax=2, random_state=0, warn=False)\n"
    "    >>> bool(v > 0)\n    True",
)
