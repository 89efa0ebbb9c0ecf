"""Exactness under constant shifts of the cost (issue 18).

EMOT is invariant to adding a constant ``o`` to the cost (the plan is the
same, the value grows by ``o``), and for a pairwise cost to adding a constant
to any edge matrix. Every engine removes a constant ``c_0`` from its cost
before dividing by ε (``engine.cost_offset``, see
:mod:`ot_multimarginal.marginals.base`); these tests check that nothing of a
shift is lost on the way.

**Reference.** The shifted cost as the dtype stores it is ``fl(C + o)``; the
reference solve is on ``fl(C + o) - o``, computed exactly in the dtype
(Sterbenz: both operands lie within a factor 2 of each other), that is the
cost the engine actually received minus the constant. In float64 this is
``C`` up to 1e-10 (``o = 1e6``); in float32 the shift by 1e6 rounds ``C``
to multiples of 1/16 (``ulp(1e6) = 0.0625``), information lost at input that
no solver can recover: what float32 can promise, and what is asserted, is
exactness on the cost received.

**The table** (:func:`test_exact_table`): dense ``(3, 4, 5)``; chain and star
``k = 4`` (tree engine); circle ``k = 3`` and ``k = 4`` (cycle engine);
complete ``k = 4`` (contraction engine); ``n = 4`` per graph node. Full cross
product of the three methods, the three backends (NumPy, torch float64,
float32), the offsets ``{-1e6, -1e3, -80, +80, +1e6}`` (offset 0 is the
reference), on the whole tensor or on every edge, plus (graphs) a mixed
vector of different offsets per edge, and ``reg`` in ``{1e-3, 0.1, 10}``.
The base costs have a zero entry (per edge), so the engine removes exactly
the offset and the centred cost *is* the reference cost: the iterations are
the same whether converged or not, so a fixed small number of iterations
(``stopThr=0``) checks the ε = 1e-3 rows at no cost. Asserted:

- plan and log-scalings equal to the reference's (to a few ulps);
- value and ``log['value_linear']``: ``v(C + o) - v(C) = o ‖P‖₁`` (the value is
  the primal objective of the returned plan, whose mass is 1 up to the
  solver's tolerance), with error at most
  ``8 eps (|v(C)| + |v(C + o)|) + 16 eps (1 + E/reg) |o|``, ``eps`` the
  dtype's resolution, ``E`` the number of cost arrays (each of range 1): the
  engines' log-domain quantities, of size up to ``E/reg``, are exact to a few
  ulps, so ``‖P‖₁`` to about ``eps E/reg`` relative;
- potentials: the first one moves by ``o`` (to ``8 eps |o|``), the others are
  unchanged;
- no warning of any kind (overflow included), everything finite.

:func:`test_converged_table` takes base costs *without* a zero (the engine then
removes ``min C + o``, not ``o``: other iterates, same fixed point) on
converged solves (reg 0.3 and 3; all methods on the dense tensor, the
cyclic one on the graphs: the exact table covers every method on every
engine) and asserts agreement to the solver's tolerance,
with the potentials compared up to their gauge (per-block constants summing
to ``o``). The LP, the rounding, :class:`FactoredPlan` (density, sampling,
marginals, linear cost), ``log_partition`` with autograd, warm starts and the
envelope gradients are checked on shifted costs as well.
"""

import warnings

import numpy as np
import pytest

from ot_multimarginal import PairwiseCost, emot_lp, emot_lp2, emot_sinkhorn, emot_sinkhorn2
from ot_multimarginal.plans import FactoredPlan
from ot_multimarginal.rounding import round_dense, round_to_feasible, rounded_linear_cost
from ot_multimarginal.sinkhorn import make_engine, solve_potentials

METHODS = ["sinkhorn_log", "sinkhorn_greedy", "sinkhorn_accelerated"]
OFFSETS = [-1e6, -1e3, -80.0, 80.0, 1e6]
MIXED = (1e6, -80.0, 0.0, -1e3, 80.0, -1e6)  # per edge, cycled
# kind -> (graph, number of matrices); 'dense' is the (3, 4, 5) tensor
KINDS = {
    "dense": None,
    "chain": ("chain", 3),
    "star": ("star", 3),
    "circle3": ("circle", 3),
    "circle4": ("circle", 4),
    "complete4": ("complete", 6),
}
N_ITER = {"sinkhorn_log": 5, "sinkhorn_greedy": 10, "sinkhorn_accelerated": 4}


def _eps(nx):
    return float(np.finfo(np.float32 if nx.float32 else np.float64).eps)


def _base(kind, seed, zero_min=True, low=0.0):
    """NumPy base cost arrays in [low, low + 1] (a dense tensor or edge matrices).

    With a zero entry each if ``zero_min``."""
    rng = np.random.RandomState(seed)
    shapes = [(3, 4, 5)] if KINDS[kind] is None else [(4, 4)] * KINDS[kind][1]
    out = []
    for sh in shapes:
        x = low + rng.rand(*sh)
        if zero_min:
            x.flat[rng.randint(x.size)] = 0.0
        out.append(x)
    return out


def _edge_offsets(kind, offset):
    m = 1 if KINDS[kind] is None else KINDS[kind][1]
    if offset == "mixed":
        return [MIXED[e % len(MIXED)] for e in range(m)]
    return [float(offset)] * m


def _costs(kind, arrays, offsets, nx):
    """``(shifted, reference, total offset)``: ``fl(C + o)`` and ``fl(C + o) - o`` (exact) in the backend's dtype."""
    shifted, ref = [], []
    for x, o in zip(arrays, offsets):
        xo = nx.array(x) + o  # rounded in the working dtype
        shifted.append(xo)
        ref.append(xo - o)  # exact (Sterbenz)
    total = float(sum(offsets))
    if KINDS[kind] is None:
        return shifted[0], ref[0], total
    graph = KINDS[kind][0]
    return PairwiseCost.from_matrices(shifted, graph), PairwiseCost.from_matrices(ref, graph), total


def _cases(kind, offsets):
    """``offsets`` without ``'mixed'`` for the dense tensor (it has no edges)."""
    return [o for o in offsets if not (o == "mixed" and KINDS[kind] is None)]


def _solved_pair(kind, arrays, offset, nx, reg, niter):
    """``total`` and ``[(engine, a_s, g)]`` for the reference and the shifted cost, ``niter`` iterations each."""
    C, Cq, total = _costs(kind, arrays, _edge_offsets(kind, offset), nx)
    out = []
    for cost in (Cq, C):
        engine, a_s = make_engine(None, cost, reg)
        g, _ = solve_potentials(engine, a_s, numItermax=niter, stopThr=0, warn=False)
        out.append((engine, a_s, g))
    return total, out


def _dense_plan(nx, P):
    return nx.np(P.to_dense() if isinstance(P, FactoredPlan) else P)


def _solve(C, reg, method, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (overflow, non-finite) fails the test
        return emot_sinkhorn(None, C, reg, method=method, log=True, **kw)


def _np_log(nx, log):
    out = {key: float(nx.np(log[key])) for key in ("value", "value_linear")}
    for key in ("potentials", "log_scalings", "marginals"):
        out[key] = [nx.np(x) for x in log[key]]
    out["mass"] = float(np.sum(out["marginals"][0]))
    return out


def _shift_bound(eps, values, offset, cond):
    """What a difference of two values that should differ by ``offset * mass`` may err by.

    See :func:`_check_values`."""
    return 8 * eps * sum(abs(v) for v in values) + 16 * eps * cond * abs(offset)


def _check_values(r, s, total, eps, cond, extra=0.0, label=None):
    """``s`` (shifted) against ``r`` (reference): value and value_linear move by ``total * mass``.

    The mass is the plan's as the engine computes it, to the engine's
    accuracy: its log-domain quantities, of size up to ``cond`` (about the
    cost's range over reg), are exact to a few ulps, so the mass to about
    ``eps * cond`` relative: hence ``16 eps cond |total|``.
    """
    for key in ("value", "value_linear"):
        want = r[key] + total * s["mass"]
        bound = _shift_bound(eps, (r[key], s[key]), total, cond) + extra
        assert abs(s[key] - want) <= bound, (label, key, s[key], want, bound, s["mass"])


# ------------------------------------------------------------------ the table
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_exact_table(nx, kind, method):
    """Every engine, method, backend, offset and reg: the shifted solve is the reference solve, moved by the offset."""
    eps = _eps(nx)
    arrays = _base(kind, seed=1)
    offsets = _cases(kind, OFFSETS + ["mixed"])
    for reg in (1e-3, 0.1, 10.0):
        for offset in offsets:
            per_edge = _edge_offsets(kind, offset)
            C, Cq, total = _costs(kind, arrays, per_edge, nx)  # Cq depends on the offset (input rounding)
            kw = dict(numItermax=N_ITER[method], stopThr=0.0, warn=False)
            P_r, log_r = _solve(Cq, reg, method, **kw)
            Pr, r = _dense_plan(nx, P_r), _np_log(nx, log_r)
            P, log = _solve(C, reg, method, **kw)
            Pd, s = _dense_plan(nx, P), _np_log(nx, log)
            label = (kind, method, reg, offset)
            assert np.all(np.isfinite(Pd)) and np.isfinite(s["value"]), label
            assert log["cost_offset"] == pytest.approx(total, rel=1e-15, abs=0), label
            # plan and log-scalings: the same iterations
            np.testing.assert_allclose(Pd, Pr, rtol=16 * eps, atol=1e-300, err_msg=str(label))
            for gs, gr in zip(s["log_scalings"], r["log_scalings"]):
                np.testing.assert_allclose(gs, gr, rtol=16 * eps, atol=16 * eps, err_msg=str(label))
            # potentials: the first one carries the offset
            for i, (ps, pr) in enumerate(zip(s["potentials"], r["potentials"])):
                np.testing.assert_allclose(
                    ps,
                    pr + (total if i == 0 else 0.0),
                    rtol=0,
                    atol=8 * eps * (np.max(np.abs(pr)) + abs(total)) + 1e-300,
                    err_msg=str(label),
                )
            _check_values(r, s, total, eps, cond=1 + len(arrays) / reg, label=label)


@pytest.mark.parametrize(
    "kind,methods",
    [
        ("dense", METHODS),
        ("chain", ["sinkhorn_log"]),
        ("star", ["sinkhorn_log"]),
        ("circle3", ["sinkhorn_log"]),
        ("circle4", ["sinkhorn_log"]),
        ("complete4", ["sinkhorn_log"]),
    ],
)
def test_converged_table(nx, kind, methods):
    """Base costs without a zero (the engine removes ``min C + o``): same plan and value to the solver's tolerance."""
    eps = _eps(nx)
    arrays = _base(kind, seed=2, zero_min=False, low=0.2)
    # solver tolerance: stopThr on the L1 marginal error (float32: its floor)
    stop = 1e-10
    tol_plan = 1e-4 if nx.float32 else 1e-7
    for method in methods:
        for reg in (0.3, 3.0):
            for offset in (-1e6, -80.0, 1e6) + (("mixed",) if KINDS[kind] else ()):
                C, Cq, total = _costs(kind, arrays, _edge_offsets(kind, offset), nx)
                P_r, log_r = _solve(Cq, reg, method, numItermax=3000, stopThr=stop)
                P, log = _solve(C, reg, method, numItermax=3000, stopThr=stop)
                label = (kind, method, reg, offset)
                assert log["converged"] and log_r["converged"], label
                Pd, Pr = _dense_plan(nx, P), _dense_plan(nx, P_r)
                np.testing.assert_allclose(Pd, Pr, rtol=0, atol=tol_plan * Pr.max(), err_msg=str(label))
                s, r = _np_log(nx, log), _np_log(nx, log_r)
                scale = max(1.0, abs(r["value"]))
                _check_values(
                    r, s, total, eps, cond=1 + len(arrays) / reg, extra=(1e-3 if nx.float32 else 1e-7) * scale
                )
                # potentials up to their gauge: per-block constants summing to the offset
                d = [ps - pr for ps, pr in zip(s["potentials"], r["potentials"])]
                spread_tol = (1e-3 if nx.float32 else 1e-6) * scale + 8 * eps * abs(total)
                for di in d:
                    assert np.ptp(di) <= spread_tol, (label, np.ptp(di))
                assert abs(sum(float(np.mean(di)) for di in d) - total) <= len(d) * spread_tol, label
                assert abs(s["mass"] - 1.0) <= (1e-5 if nx.float32 else 1e-9), label


@pytest.mark.parametrize("mode", ["scaling", "log"])
@pytest.mark.parametrize("offset", [-80.0, 1e6])
def test_dense_modes_issue_example(nx, mode, offset):
    """The issue's example: a cost in [0, 1] shifted by -80 at reg 0.1 (raised FloatingPointError), both dense modes."""
    M = nx.array(np.random.RandomState(3).rand(4, 5, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v0, log0 = emot_sinkhorn2(None, M, 0.1, mode=mode, log=True)
        v, log = emot_sinkhorn2(None, M + offset, 0.1, mode=mode, log=True)
    assert log["converged"]
    mass = float(nx.np(log["marginals"][0]).sum())
    err = abs(float(nx.np(v)) - float(nx.np(v0)) - offset * mass)
    assert err <= (1e-3 if nx.float32 else 1e-7) * max(1.0, abs(offset)) * (0.1 if not nx.float32 else 1.0)


# ------------------------------------------------------------------ LP
@pytest.mark.parametrize("offset", [-1e6, -80.0, 80.0, 1e3])
def test_lp_shift(nx, offset):
    """emot_lp / emot_lp2: the same plan, the value moved by the offset (dense tensor and a pairwise cost's tensor)."""
    rng = np.random.RandomState(4)
    for C in (
        nx.array(rng.rand(3, 4, 3)),
        PairwiseCost.circle([nx.array(rng.rand(3, 3)) for _ in range(3)]).to_dense(),
    ):
        Co = C + offset
        Cq = Co - offset
        P_r, log_r = emot_lp(None, Cq, log=True)
        P, log = emot_lp(None, Co, log=True)
        v_r, v = float(nx.np(emot_lp2(None, Cq))), float(nx.np(emot_lp2(None, Co)))
        np.testing.assert_allclose(nx.np(P), nx.np(P_r), atol=1e-9)
        assert abs(v - v_r - offset) <= 1e-9 * (1 + abs(offset)) + 8 * _eps(nx) * abs(offset)
        assert abs(float(nx.np(log["value"])) - v) <= 1e-12 * (1 + abs(v))


# ------------------------------------------------------------------ rounding and factored plans
@pytest.mark.parametrize("kind", ["dense", "chain", "circle4", "complete4"])
def test_rounding_shift(nx, kind):
    """round_to_feasible, FactoredPlan.round() and round_dense on shifted costs: the reference's rounded plan."""
    eps = _eps(nx)
    arrays = _base(kind, seed=5)
    for offset in _cases(kind, (-1e6, -80.0, 1e6, "mixed")):
        total, pair = _solved_pair(kind, arrays, offset, nx, 0.05, 3)
        out = [(e, a, g, round_to_feasible(e, g, a), FactoredPlan(e, g, a).round()) for e, a, g in pair]
        (_, a_s, _, st_r, Y_r), (engine, _, g, st, Y) = out
        np.testing.assert_allclose(nx.np(Y.to_dense()), nx.np(Y_r.to_dense()), rtol=16 * eps, atol=1e-300)
        for i in range(len(a_s)):
            np.testing.assert_allclose(nx.np(Y.marginal(i)), nx.np(a_s[i]), atol=16 * eps)
        lin, lin_r = float(nx.np(rounded_linear_cost(engine, st))), float(nx.np(rounded_linear_cost(out[0][0], st_r)))
        # the rounded plan has mass 1: its cost moves by the offset itself
        bound = _shift_bound(eps, (lin, lin_r), total, 1 + len(arrays) / 0.05)
        assert abs(lin - lin_r - total) <= bound, (kind, offset, lin - lin_r - total, bound)
        assert abs(float(nx.np(Y.linear_cost())) - lin) <= 8 * eps * (abs(lin) + 1)
        if KINDS[kind] is None:
            X = engine.plan(g)
            np.testing.assert_allclose(
                nx.np(round_dense(X, a_s)),
                nx.np(round_dense(out[0][0].plan(out[0][2]), a_s)),
                rtol=16 * eps,
                atol=1e-300,
            )


@pytest.mark.parametrize("kind", ["dense", "chain", "circle4", "complete4"])
def test_factored_plan_shift(nx, kind):
    """FactoredPlan on a shifted cost: density, samples (every method), marginals and linear cost as the reference."""
    eps = _eps(nx)
    arrays = _base(kind, seed=6)
    rng = np.random.RandomState(0)
    for offset in _cases(kind, (-1e6, 1e6, "mixed")):
        total, pair = _solved_pair(kind, arrays, offset, nx, 0.02, 20)
        ref, plan = [FactoredPlan(e, g, a) for e, a, g in pair]
        idx = np.stack([rng.randint(n, size=50) for n in plan.shape], axis=1)
        np.testing.assert_allclose(nx.np(plan.density(idx)), nx.np(ref.density(idx)), rtol=64 * eps, atol=1e-300)
        for i in range(plan.k):
            np.testing.assert_allclose(nx.np(plan.marginal(i)), nx.np(ref.marginal(i)), rtol=16 * eps, atol=1e-300)
        np.testing.assert_allclose(
            nx.np(plan.pairwise_marginal(0, 1)), nx.np(ref.pairwise_marginal(0, 1)), rtol=64 * eps, atol=1e-300
        )
        lin, lin_r = float(nx.np(plan.linear_cost())), float(nx.np(ref.linear_cost()))
        mass = float(nx.np(plan.mass))
        bound = _shift_bound(eps, (lin, lin_r), total, 1 + len(arrays) / 0.02)
        assert abs(lin - lin_r - total * mass) <= bound, (kind, offset, lin - lin_r - total * mass, bound)
        methods = ["sequential", "auto"] + (["dense"] if plan.k * 4 <= 16 or KINDS[kind] is None else [])
        for method in methods:
            a = plan.sample(200, random_state=7, method=method)
            b = ref.sample(200, random_state=7, method=method)
            # the same laws to a few ulps: the same draws but for a rare tie at a CDF boundary
            assert np.mean(np.all(a == b, axis=1)) >= 0.99, (kind, offset, method)


# ------------------------------------------------------------------ engine level: log_partition, autograd
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_log_partition_true_and_differentiable(nx, kind):
    """``log_partition``: log-mass of the uncentred tensor; ``log_marginal``, ``log_mass``: of the centred one."""
    eps = _eps(nx)
    arrays = _base(kind, seed=8)
    reg = 0.5
    rng = np.random.RandomState(1)
    for offset in _cases(kind, (-1e3, 80.0, "mixed")):
        C, Cq, total = _costs(kind, arrays, _edge_offsets(kind, offset), nx)
        eng, _ = make_engine(None, C, reg)
        eng_r, _ = make_engine(None, Cq, reg)
        assert eng.cost_offset == pytest.approx(total, rel=1e-15) and eng_r.cost_offset == 0.0
        g = [nx.array(rng.randn(n)) for n in eng.shape]
        lp, lp_r = float(nx.np(eng.log_partition(g))), float(nx.np(eng_r.log_partition(g)))
        assert abs(lp - (lp_r - total / reg)) <= 8 * eps * (abs(lp) + abs(total / reg)), (kind, offset)
        assert abs(float(nx.np(eng.log_mass(g))) - lp_r) <= 16 * eps * (1 + abs(lp_r))
        for i in range(eng.k):
            np.testing.assert_allclose(
                nx.np(eng.log_marginal(g, i)), nx.np(eng_r.log_marginal(g, i)), rtol=0, atol=64 * eps * (1 + abs(lp_r))
            )
        if not nx.is_torch or nx.float32:
            continue
        # autograd on g and on the cost arrays (the offset is a detached constant)
        grads = []
        for cost in (C, Cq):
            ins = list(cost.matrices) if KINDS[kind] else [cost]
            leaves = [x.detach().clone().requires_grad_(True) for x in ins]
            gl = [x.detach().clone().requires_grad_(True) for x in g]
            if KINDS[kind]:
                c = PairwiseCost.from_matrices(leaves, KINDS[kind][0])
                e = c.make_engine(reg)
            else:
                e, _ = make_engine(None, leaves[0], reg)
            e.log_partition(gl).backward()
            grads.append([x.grad.numpy() for x in gl + leaves])
        for a, b in zip(*grads):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------ warm start and envelope gradients
@pytest.mark.parametrize("kind", ["dense", "chain", "circle3", "complete4"])
def test_warmstart_maps_potentials_back(nx, kind):
    """Potentials of a shifted solve warm-start it at its own fixed point (the offset is taken off again)."""
    arrays = _base(kind, seed=9)
    eps = _eps(nx)
    # the offset round-trips through the first potential, at its resolution ulp(offset)/reg in g:
    # 2e-10 for 1e6 in float64, but 0.3 in float32 (ulp(1e6) = 0.0625), so float32 stops at 80
    for offset in (-80.0, 80.0) if nx.float32 else (-1e6, -80.0, 1e6):
        C, _, total = _costs(kind, arrays, _edge_offsets(kind, offset), nx)
        _, log = emot_sinkhorn(None, C, 0.2, log=True, stopThr=1e-7 if nx.float32 else 1e-10)
        _, log2 = emot_sinkhorn(None, C, 0.2, log=True, warmstart=log["potentials"], numItermax=1, warn=False)
        res = 8 * eps * abs(total) / 0.2
        assert log2["err"][0] <= (1e-5 if nx.float32 else 1e-10) + 10 * res, (kind, offset, log2["err"])
        for a, b in zip(log2["log_scalings"], log["log_scalings"]):
            np.testing.assert_allclose(nx.np(a), nx.np(b), rtol=0, atol=res + (1e-4 if nx.float32 else 1e-8))


@pytest.mark.parametrize("kind", ["dense", "chain", "circle4"])
def test_envelope_gradient_shift(kind):
    """emot_sinkhorn2's gradients with respect to the cost do not see the offset (torch float64)."""
    torch = pytest.importorskip("torch")
    arrays = _base(kind, seed=10)
    grads = []
    for offset in (0.0, -80.0, 1e6):
        leaves = [torch.tensor(x + offset, dtype=torch.float64, requires_grad=True) for x in arrays]
        C = leaves[0] if KINDS[kind] is None else PairwiseCost.from_matrices(leaves, KINDS[kind][0])
        emot_sinkhorn2(None, C, 0.2, stopThr=1e-11).backward()
        grads.append([x.grad.numpy() for x in leaves])
    for other in grads[1:]:
        for a, b in zip(other, grads[0]):
            np.testing.assert_allclose(a, b, atol=1e-8)
