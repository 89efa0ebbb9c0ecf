# -*- coding: utf-8 -*-
"""The ε-approximation scheme of Lin, Ho, Cuturi, Jordan (ot_multimarginal/approx.py).

Oracles written here: the LP by scipy's HiGHS (unless ot_multimarginal.lp has
landed, then its emot_lp2 is used and cross-checked once) and the dense
rounding of the note §3.
"""

import math
import warnings

import numpy as np
import ot
import pytest
from oracles import textbook_round
from scipy import sparse
from scipy.optimize import linprog
from scipy.special import logsumexp

from conftest import random_weights
from ot_multimarginal import cost_tensor
from ot_multimarginal._backend import axes_except, outer_sum
from ot_multimarginal.approx import approx_parameters, emot_approx

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

try:
    from ot_multimarginal.lp import emot_lp2
except ImportError:  # pragma: no cover
    emot_lp2 = None

_NP = ot.backend.NumpyBackend()
METHODS = ["sinkhorn_greedy", "sinkhorn_accelerated", "sinkhorn_log"]
SHAPES = {"k3n8": (8, 8, 8), "k3n10": (10, 10, 10), "k4n6": (6, 6, 6, 6)}


# ------------------------------------------------------------------ oracles
def _lp_oracle(a_s, M):
    """min ⟨C, P⟩ over the transport polytope, HiGHS on the full LP."""
    shape = M.shape
    flat = np.arange(M.size).reshape(shape)
    rows, cols, b = [], [], []
    r0 = 0
    for i, n in enumerate(shape):
        idx = np.moveaxis(flat, i, 0).reshape(n, -1)
        for p in range(n):
            rows.append(np.full(idx.shape[1], r0 + p))
            cols.append(idx[p])
        b.append(a_s[i])
        r0 += n
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    A = sparse.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(r0, M.size))
    res = linprog(M.ravel(), A_eq=A, b_eq=np.concatenate(b), bounds=(0, None), method="highs")
    assert res.status == 0, res.message
    return res.fun


def _lp(a_s, M):
    if emot_lp2 is not None:
        return float(emot_lp2(a_s, M))
    return _lp_oracle(a_s, M)


def _marginals(P):
    k = P.ndim
    return [P.sum(axis=axes_except(i, k)) for i in range(k)]


def _problem(kind, shape, seed=0):
    """'unif': C ~ U[0,1] (LP* ≈ 0.02–0.05); 'sq': Σ_{a<b} |x_a − x_b|² on random points of [0,1]² (LP* ≈ 0.4–1)."""
    rng = np.random.RandomState(seed)
    a_s = [random_weights(rng, n, 0.1) for n in shape]
    if kind == "unif":
        M = rng.rand(*shape)
    else:
        M = cost_tensor([rng.rand(n, 2) for n in shape])
    return a_s, M


# -------------------------------------------------------------- guarantees
CASES = [(kind, name) for kind in ("unif", "sq") for name in SHAPES]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("kind,name", CASES, ids=["%s-%s" % c for c in CASES])
def test_certified_sandwich(kind, name, method):
    """Exact marginals; lower bound ≤ LP ≤ cost ≤ LP + ε; the plan is the rounding of B(g)."""
    shape = SHAPES[name]
    eps = 0.05 if kind == "unif" else 0.1
    a_s, M = _problem(kind, shape)
    P, cost, log = emot_approx(a_s, M, eps, method=method, log=True)
    lp = _lp(a_s, M)
    assert log["converged"] and log["method"] == method
    assert log["stop_reason"] in ("tolerance", "certified_gap")
    assert log["certified"] == (log["gap"] <= eps)
    assert isinstance(P, np.ndarray) and P.shape == shape and P.min() >= 0
    for r, a in zip(_marginals(P), a_s):
        np.testing.assert_allclose(r, a, rtol=0, atol=1e-12)
    assert abs(cost - np.sum(M * P)) <= 1e-12 * max(1.0, abs(cost))
    assert log["primal"] == pytest.approx(float(cost), abs=1e-15)
    assert log["lower_bound"] <= lp + 1e-9
    assert lp <= cost + 1e-9
    assert cost <= lp + eps
    assert log["gap"] == pytest.approx(log["primal"] - log["lower_bound"], abs=1e-15)
    assert log["gap"] >= cost - lp - 1e-9
    # parameters of Lin et al. (equal sizes: η = ε/(2k log n), ε' = ε/(8 osc C), osc C = max C − min C)
    k, n = len(shape), shape[0]
    assert log["reg"] == pytest.approx(eps / (2 * k * math.log(n)), rel=1e-14)
    assert log["cost_range"] == pytest.approx(M.max() - M.min(), rel=1e-14)
    assert log["eps_prime"] == pytest.approx(min(1.0, eps / (8 * (M.max() - M.min()))), rel=1e-14)
    assert log["stopThr"] == pytest.approx(log["eps_prime"] / 2, rel=1e-14)
    # stopped by Lin et al.'s tolerance, or earlier by the certificate
    assert log["err"][-1] <= log["stopThr"] or log["gap"] <= eps
    # the smoothed marginals and the returned plan
    d = log["eps_prime"] / (4 * k)
    for at, a in zip(log["smoothed_marginals"], a_s):
        np.testing.assert_allclose(at, (1 - d) * a + d / n, rtol=0, atol=1e-16)
        assert abs(at.sum() - 1) <= 1e-14 and at.min() >= d / n * (1 - 1e-12)
    g = log["log_scalings"]
    logB = outer_sum(_NP, g) - M / log["reg"]
    X = np.exp(logB - logsumexp(logB))
    np.testing.assert_allclose(P, textbook_round(X, a_s), rtol=0, atol=1e-13)
    # the certificate, recomputed: LB = −η φ(g; a) with the original weights
    phi = logsumexp(logB) - sum(np.dot(gi, a) for gi, a in zip(g, a_s))
    assert log["lower_bound"] == pytest.approx(-log["reg"] * phi, rel=1e-12, abs=1e-14)


def test_lp_oracle_agrees():
    """The in-test HiGHS oracle and ot_multimarginal.lp agree (when the latter exists)."""
    if emot_lp2 is None:
        pytest.skip("ot_multimarginal.lp not available")
    for kind in ("unif", "sq"):
        a_s, M = _problem(kind, (5, 6, 7), seed=1)
        assert float(emot_lp2(a_s, M)) == pytest.approx(_lp_oracle(a_s, M), abs=1e-9)


def test_lower_bound_at_any_iterate():
    """The certificate holds for unconverged iterates too (and the plan stays exactly feasible)."""
    a_s, M = _problem("sq", (6, 7, 8), seed=2)
    lp = _lp(a_s, M)
    for it in (0, 1, 5, 30):
        with pytest.warns(UserWarning, match="certified gap") as rec:
            P, cost, log = emot_approx(a_s, M, 0.1, method="sinkhorn_greedy", numItermax=it, log=True)
        assert not log["converged"] and log["niter"] == it and log["stop_reason"] == "numItermax"
        # the warning states the gap that was certified, and points at this line
        assert "%.3e" % log["gap"] in str(rec[0].message) and log["gap"] > 0.1
        assert rec[0].filename == __file__
        assert log["lower_bound"] <= lp <= cost + 1e-12
        for r, a in zip(_marginals(P), a_s):
            np.testing.assert_allclose(r, a, rtol=0, atol=1e-12)


def test_unequal_sizes_and_zero_weights():
    rng = np.random.RandomState(3)
    shape = (4, 6, 5)
    a_s = [random_weights(rng, n) for n in shape]
    a_s[1][[0, 4]] = 0.0
    a_s[2][2] = 0.0
    a_s = [a / a.sum() for a in a_s]
    M = rng.rand(*shape)
    eps = 0.1
    for method in METHODS:
        P, cost, log = emot_approx(a_s, M, eps, method=method, log=True)
        assert log["reg"] == pytest.approx(eps / (2 * sum(math.log(n) for n in shape)), rel=1e-14)
        assert np.all(np.isfinite(P)) and P.min() >= 0
        assert np.all(P[:, 0] == 0) and np.all(P[:, 4] == 0) and np.all(P[:, :, 2] == 0)
        for r, a in zip(_marginals(P), a_s):
            np.testing.assert_allclose(r, a, rtol=0, atol=1e-12)
        lp = _lp(a_s, M)
        assert log["lower_bound"] <= lp <= cost <= lp + eps


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_torch_matches_numpy():
    a_s, M = _problem("sq", (4, 5, 6), seed=4)
    P, cost, log = emot_approx(a_s, M, 0.1, method="sinkhorn_accelerated", log=True)
    a_t = [torch.tensor(a) for a in a_s]
    Pt, costt, logt = emot_approx(a_t, torch.tensor(M), 0.1, method="sinkhorn_accelerated", log=True)
    assert isinstance(Pt, torch.Tensor) and Pt.dtype == torch.float64
    assert torch.is_tensor(costt)
    assert logt["niter"] == log["niter"]
    np.testing.assert_allclose(Pt.numpy(), P, rtol=0, atol=1e-12)
    assert logt["lower_bound"] == pytest.approx(log["lower_bound"], abs=1e-12)


def test_structured_cost_gives_factored_plan():
    """A PairwiseCost: factored rounded plan, same numbers as the dense tensor of the same cost."""
    graph = pytest.importorskip("ot_multimarginal.costs.graph")
    from ot_multimarginal.plans import FactoredPlan

    rng = np.random.RandomState(5)
    X = [rng.rand(n, 2) for n in (5, 6, 7)]
    C = graph.PairwiseCost.from_point_clouds(X, graph="chain")
    Md = np.asarray(C.to_dense())
    a_s = [random_weights(rng, n) for n in (5, 6, 7)]
    Pf, cost, log = emot_approx(a_s, C, 0.1, method="sinkhorn_accelerated", log=True)
    Pd, cost_d, log_d = emot_approx(a_s, Md, 0.1, method="sinkhorn_accelerated", log=True)
    assert isinstance(Pf, FactoredPlan) and Pf.is_rounded
    # Σ_e osc(C_e) ≥ osc(C): the structured run may use a stricter tolerance
    assert log["cost_range"] >= Md.max() - Md.min() - 1e-12
    for r, a in zip(Pf.marginals, a_s):
        np.testing.assert_allclose(r, a, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Pf.to_dense(), textbook_round(_gibbs(log, Md), a_s), rtol=0, atol=1e-12)
    assert float(cost) == pytest.approx(np.sum(Md * Pf.to_dense()), abs=1e-12)
    lp = _lp(a_s, Md)
    assert log["lower_bound"] <= lp <= float(cost) <= lp + 0.1
    assert log_d["lower_bound"] <= lp <= float(cost_d) <= lp + 0.1


def _gibbs(log, M):
    logB = outer_sum(_NP, log["log_scalings"]) - M / log["reg"]
    return np.exp(logB - logsumexp(logB))


# -------------------------------------------------------------- validation
@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan"), float("inf")])
def test_eps_accuracy_must_be_positive(bad):
    a_s, M = _problem("unif", (3, 4, 5))
    with pytest.raises(ValueError, match="eps_accuracy"):
        emot_approx(a_s, M, bad)


def test_eps_accuracy_type_and_method():
    a_s, M = _problem("unif", (3, 4, 5))
    with pytest.raises(TypeError, match="eps_accuracy"):
        emot_approx(a_s, M, "small")
    with pytest.raises(ValueError, match="method"):
        emot_approx(a_s, M, 0.1, method="sinkhorn_nope")
    with pytest.raises(ValueError, match="a_s"):
        emot_approx([a_s[0], a_s[1]], M, 0.1)


def test_parameters():
    eta, ep, tol = approx_parameters((8, 8, 8), 0.1, 2.0)
    assert eta == pytest.approx(0.1 / (6 * math.log(8)))
    assert ep == pytest.approx(0.1 / 16) and tol == pytest.approx(ep / 2)
    # tiny costs: ε' is capped at 1 (any plan is then ε-optimal anyway)
    assert approx_parameters((4, 4), 0.1, 0.0)[1] == 1.0
    assert approx_parameters((4, 4), 0.1, 1e-3)[1] == 1.0


def test_zero_cost():
    """‖C‖∞ = 0: every plan is optimal; still exact marginals."""
    a_s, _ = _problem("unif", (3, 4, 5))
    P, cost, log = emot_approx(a_s, np.zeros((3, 4, 5)), 0.1, log=True)
    assert cost == 0 and log["converged"]
    for r, a in zip(_marginals(P), a_s):
        np.testing.assert_allclose(r, a, rtol=0, atol=1e-12)


# ------------------------------------------------- the accuracy target is met
def test_default_meets_target_unequal_clouds():
    """Issue 15: k = 3 point clouds of sizes 10–12, ε = 0.05 (greedy Sinkhorn stalled at cost − LP = 0.28 after
    10,000 iterations). The default meets the target, certifies it, and does not warn."""
    rng = np.random.RandomState(2)
    C = cost_tensor([rng.randn(n, 2) for n in (10, 11, 12)])
    lp = _lp([np.full(n, 1.0 / n) for n in C.shape], C)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P, cost, log = emot_approx(None, C, 0.05, log=True)
    assert log["method"] == "sinkhorn_log" and log["converged"] and log["certified"]
    assert log["lower_bound"] <= lp <= cost <= lp + 0.05
    assert log["niter"] < log["numItermax"]


@pytest.mark.parametrize("shift", [1e3, 10.0, 0.5, -0.5, -10.0, -1e3])
def test_constant_shift_of_the_cost(shift):
    """η, ε', the tolerance and the iteration cap use osc(C) = max C − min C: C + c gives the same plan and gap."""
    a_s, M = _problem("sq", (5, 6, 7), seed=6)
    P, cost, log = emot_approx(a_s, M, 0.1, log=True)
    Ps, costs, logs = emot_approx(a_s, M + shift, 0.1, log=True)
    for key in ("reg", "eps_prime", "stopThr", "cost_range", "numItermax", "niter"):
        assert logs[key] == pytest.approx(log[key], rel=1e-12), key
    np.testing.assert_allclose(Ps, P, rtol=0, atol=1e-10)
    tol = 1e-9 * max(1.0, abs(shift))  # the cost and the bound carry the shift
    assert float(costs) - shift == pytest.approx(float(cost), abs=tol)
    assert logs["gap"] == pytest.approx(log["gap"], abs=tol)
    assert logs["lower_bound"] - shift == pytest.approx(log["lower_bound"], abs=tol)


def test_iteration_bound_holds_for_greedy():
    """Greedy Sinkhorn reaches the tolerance within iteration_bound (checked on the loop alone, no certificate)."""
    from ot_multimarginal.approx import iteration_bound
    from ot_multimarginal.sinkhorn import make_engine, solve_potentials

    rng = np.random.RandomState(7)
    shape = (4, 5, 6)
    a_s = [random_weights(rng, n, 0.1) for n in shape]
    M = rng.rand(*shape) * 3.0 - 1.0
    eta, tol = 0.3, 1e-4
    engine, a_s = make_engine(a_s, M, eta)
    bound = iteration_bound(M.max() - M.min(), eta, tol, [a.max() / a.min() for a in a_s])
    _, info = solve_potentials(engine, a_s, "sinkhorn_greedy", numItermax=bound, stopThr=tol)
    assert info["converged"] and info["niter"] <= bound


def test_unknown_options_are_rejected():
    """reg is not an option (eps_accuracy sets it); a mistyped option names the method's valid ones."""
    a_s, M = _problem("unif", (3, 4, 5))
    with pytest.raises(TypeError, match="'reg'.*eps_accuracy"):
        emot_approx(a_s, M, 0.1, reg=1.0)
    with pytest.raises(TypeError, match="'relaxtion'.*relaxation"):
        emot_approx(a_s, M, 0.1, relaxtion="auto")
    with pytest.raises(TypeError, match="'relaxation'.*'sinkhorn_accelerated'.*L"):
        emot_approx(a_s, M, 0.1, method="sinkhorn_accelerated", relaxation="auto")
    # a valid option passes through to the loop
    _, _, log = emot_approx(a_s, M, 0.1, method="sinkhorn_accelerated", L=1.5, log=True)
    assert log["L"] == 1.5 and log["converged"]
