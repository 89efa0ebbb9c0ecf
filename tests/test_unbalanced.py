# -*- coding: utf-8 -*-
"""Unbalanced EMOT (``reg_m``): KL penalties on the marginals.

Oracles independent of the package: POT's two-marginal
``ot.unbalanced.sinkhorn_unbalanced`` (``reg_type='kl'`` and ``'entropy'``)
and ``ot.solve``; a plain NumPy log-domain unbalanced Sinkhorn on the dense
tensor written here; the brute-force primal objective of a dense plan; the
closed-form limits ρ → ∞ (the balanced solve) and ρ → 0 (the Gibbs tensor
:math:`e^{-C/\\varepsilon}\\otimes a`); finite differences for gradients.
"""

import math
import warnings

import numpy as np
import ot
import pytest
from oracles import axes_except
from scipy.special import logsumexp

import ot_multimarginal as om

INF = float("inf")


# ---------------------------------------------------------------- oracles
def _log_plan(C, a_s, phi, eps):
    k = C.ndim
    L = -C / eps
    for i in range(k):
        sh = [1] * k
        sh[i] = -1
        L = L + (phi[i] / eps + np.log(a_s[i])).reshape(sh)
    return L


def numpy_unbalanced_sinkhorn(C, a_s, eps, rho, free=(), n_sweeps=20000, tol=1e-14):
    """Cyclic log-domain unbalanced Sinkhorn on the dense tensor: phi_i <- rho/(rho+eps) (phi_i + eps log(a/r))."""
    k = C.ndim
    phi = [np.zeros(n) for n in C.shape]
    for _ in range(n_sweeps):
        old = [p.copy() for p in phi]
        for i in range(k):
            if i in free:
                continue
            lr = logsumexp(_log_plan(C, a_s, phi, eps), axis=axes_except(i, k))
            lam = 1.0 if math.isinf(rho[i]) else rho[i] / (rho[i] + eps)
            phi[i] = lam * (phi[i] + eps * (np.log(a_s[i]) - lr))
        if max(np.abs(p - q).max() for p, q in zip(phi, old)) < tol:
            break
    return np.exp(_log_plan(C, a_s, phi, eps)), phi


def gkl(p, q):
    """Generalised KL, Σ p log(p/q) − Σ p + Σ q."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    pos = p > 0
    return float(np.sum(p[pos] * np.log(p[pos] / q[pos])) - p.sum() + q.sum())


def primal_value(C, P, a_s, eps, rho, free=()):
    """⟨C,P⟩ + ε KL(P|⊗a) + Σ_i ρ_i KL(P_i|a_i) (finite ρ, non-free nodes), from the dense plan."""
    Q = a_s[0]
    for a in a_s[1:]:
        Q = np.multiply.outer(Q, a)
    v = float(np.sum(C * P)) + eps * gkl(P, Q)
    for i in range(C.ndim):
        if i not in free and not math.isinf(rho[i]):
            v += rho[i] * gkl(P.sum(axis=axes_except(i, C.ndim)), a_s[i])
    return v


def _problem(rng, shape, masses=None):
    C = rng.rand(*shape)
    a_s = []
    for i, n in enumerate(shape):
        a = rng.rand(n) + 0.2
        a_s.append(a / a.sum() * (1.0 if masses is None else masses[i]))
    return C, a_s


def _pot_pair(rho):
    return (rho, rho) if np.ndim(rho) == 0 else tuple(rho)


# ---------------------------------------------------------------- k = 2: POT
@pytest.mark.parametrize("rho", [0.7, (0.5, 2.0), (INF, 0.4), (0.3, INF)])
def test_k2_equals_pot_sinkhorn_unbalanced_kl(nx, rho):
    """Plan, value and linear value equal POT's ``sinkhorn_unbalanced(reg_type='kl')`` (unequal masses)."""
    rng = np.random.RandomState(0)
    n, m, eps = 6, 7, 0.3
    M, (a, b) = _problem(rng, (n, m), masses=(1.0, 1.0 if INF in _pot_pair(rho) else 1.6))
    G, lp = ot.unbalanced.sinkhorn_unbalanced(
        a, b, M, eps, rho, reg_type="kl", numItermax=100000, stopThr=1e-15, log=True
    )
    ab, bb, Mb = nx.array(a), nx.array(b), nx.array(M)
    tol = nx.tol(1e-8)
    P, log = om.emot_sinkhorn([ab, bb], Mb, eps, reg_m=rho, stopThr=nx.tol(1e-12), numItermax=100000, log=True)
    v = om.emot_sinkhorn2([ab, bb], Mb, eps, reg_m=rho, stopThr=nx.tol(1e-12), numItermax=100000)
    assert log["converged"]
    assert type(P) is type(Mb) and nx.np(P).shape == (n, m)
    np.testing.assert_allclose(nx.np(P), G, atol=tol, rtol=0)
    # linear part: POT's sinkhorn_unbalanced2 (returnCost='linear')
    lin2 = ot.unbalanced.sinkhorn_unbalanced2(a, b, M, eps, rho, reg_type="kl", numItermax=100000, stopThr=1e-15)
    np.testing.assert_allclose(float(nx.np(log["value_linear"])), float(lin2), atol=tol, rtol=0)
    # value: POT's total_cost uses KL without mass terms; ours is the generalised KL, whose difference is
    # eps (|a||b| - m) + sum_i rho_i (|a_i| - m), m the plan's mass (balanced marginals: no term)
    mass = G.sum()
    corr = eps * (a.sum() * b.sum() - mass)
    corr += sum(r * (w.sum() - mass) for r, w in zip(_pot_pair(rho), (a, b)) if not math.isinf(r))
    np.testing.assert_allclose(float(nx.np(v)), float(lp["total_cost"]) + corr, atol=tol, rtol=0)
    # and the brute-force primal of POT's plan
    np.testing.assert_allclose(float(nx.np(v)), primal_value(M, G, [a, b], eps, _pot_pair(rho)), atol=tol, rtol=0)
    # the marginals of the solution are in the log
    np.testing.assert_allclose(nx.np(log["marginals"][0]), G.sum(1), atol=tol, rtol=0)
    assert log["reg_m"] == tuple(float(r) for r in _pot_pair(rho))


def test_k2_pot_entropy_is_kl_with_shifted_cost():
    """POT's reg_type='entropy' (reference 1) is reg_type='kl' on the cost M + ε(log a ⊕ log b)."""
    rng = np.random.RandomState(1)
    eps, rho = 0.25, 0.8
    M, (a, b) = _problem(rng, (5, 6), masses=(1.0, 0.7))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = ot.unbalanced.sinkhorn_unbalanced(a, b, M, eps, rho, reg_type="entropy", numItermax=100000, stopThr=1e-15)
    P = om.emot_sinkhorn(
        [a, b], M + eps * (np.log(a)[:, None] + np.log(b)[None, :]), eps, reg_m=rho, stopThr=1e-13, numItermax=100000
    )
    np.testing.assert_allclose(P, G, atol=1e-10)


def test_k2_ot_solve_value_convention():
    """``ot.solve(..., unbalanced=rho, unbalanced_type='KL').value`` is POT's total (KL without mass terms)."""
    rng = np.random.RandomState(2)
    eps, rho = 0.4, 1.3
    M, (a, b) = _problem(rng, (4, 5))
    res = ot.solve(M, a, b, reg=eps, unbalanced=rho, unbalanced_type="KL", max_iter=100000, tol=1e-15)
    v, log = om.emot_sinkhorn2([a, b], M, eps, reg_m=rho, stopThr=1e-13, numItermax=100000, log=True)
    mass = float(res.plan.sum())
    np.testing.assert_allclose(float(res.value), float(v) - (eps + 2 * rho) * (1.0 - mass), atol=1e-9)
    np.testing.assert_allclose(float(res.value_linear), float(log["value_linear"]), atol=1e-9)


# ---------------------------------------------------------------- limits
def test_large_rho_recovers_balanced(nx):
    rng = np.random.RandomState(3)
    eps = 0.5
    C, a_s = _problem(rng, (3, 4, 5))
    Cb, ab = nx.array(C), [nx.array(a) for a in a_s]
    P0, log0 = om.emot_sinkhorn(ab, Cb, eps, stopThr=nx.tol(1e-12), log=True)
    # rho = inf everywhere: the same iterations as the balanced solve
    P1, log1 = om.emot_sinkhorn(ab, Cb, eps, reg_m=INF, stopThr=nx.tol(1e-12), log=True)
    np.testing.assert_allclose(nx.np(P1), nx.np(P0), atol=nx.tol(1e-12))
    np.testing.assert_allclose(float(nx.np(log1["value"])), float(nx.np(log0["value"])), atol=nx.tol(1e-12))
    # rho large: O(eps/rho) from the balanced plan (the mass converges at about 1 - eps/rho per sweep)
    d = []
    for rho in (10.0, 100.0):
        P = om.emot_sinkhorn(ab, Cb, eps, reg_m=rho, stopThr=nx.tol(1e-11), numItermax=20000)
        d.append(np.abs(nx.np(P) - nx.np(P0)).max())
    assert d[1] < 3e-4 and d[1] < 0.2 * d[0]


def test_small_rho_gives_the_gibbs_tensor(nx):
    """ρ → 0: no marginal term left, P = exp(-C/ε) ⊗ a (the unconstrained minimiser)."""
    rng = np.random.RandomState(4)
    eps = 0.5
    C, a_s = _problem(rng, (3, 4, 5))
    P = om.emot_sinkhorn([nx.array(a) for a in a_s], nx.array(C), eps, reg_m=1e-9, stopThr=nx.tol(1e-12))
    triv = np.exp(-C / eps) * np.einsum("i,j,k->ijk", *a_s)
    np.testing.assert_allclose(nx.np(P), triv, atol=nx.tol(1e-8))


# ---------------------------------------------------------------- k >= 3, mixed nodes
@pytest.mark.parametrize(
    "rho,free",
    [
        ((0.5, 0.5, 0.5, 0.5), ()),
        ((INF, 0.3, 2.0, INF), ()),
        ((0.5, INF, 0.8, 1.0), (0,)),
        ((INF, 0.4, INF, 0.7), (2,)),
    ],
)
def test_dense_k4_mixed_equals_numpy_oracle(rho, free):
    rng = np.random.RandomState(5)
    eps = 0.4
    masses = [1.0 if math.isinf(r) or i in free else 0.6 + 0.3 * i for i, r in enumerate(rho)]
    C, a_s = _problem(rng, (3, 4, 3, 5), masses)
    P0, phi0 = numpy_unbalanced_sinkhorn(C, a_s, eps, rho, free)
    v, log = om.emot_sinkhorn2(a_s, C, eps, reg_m=rho, free=free, stopThr=1e-13, numItermax=20000, log=True)
    P = om.emot_sinkhorn(a_s, C, eps, reg_m=rho, free=free, stopThr=1e-13, numItermax=20000)
    np.testing.assert_allclose(P, P0, atol=1e-10)
    np.testing.assert_allclose(float(v), primal_value(C, P0, a_s, eps, rho, free), atol=1e-9)
    bal = [i for i in range(4) if math.isinf(rho[i]) and i not in free]
    for i in range(4):
        p, q = log["potentials"][i], phi0[i]
        if i in bal and len(bal) > 1:  # balanced potentials: unique up to constants that sum to zero
            p, q = p - p.mean(), q - q.mean()
        np.testing.assert_allclose(p, q, atol=1e-8)
        np.testing.assert_allclose(log["marginals"][i], P0.sum(axis=axes_except(i, 4)), atol=1e-10)
    if len(bal) > 1:
        np.testing.assert_allclose(
            sum(log["potentials"][i].mean() for i in bal), sum(phi0[i].mean() for i in bal), atol=1e-8
        )


def test_cost_offset_is_not_shift_invariant():
    """A constant added to the cost moves mass out (unlike EMOT): the engine's offset is handled exactly."""
    rng = np.random.RandomState(6)
    eps, rho = 0.3, 0.5
    C, a_s = _problem(rng, (3, 4, 5))
    for shift in (0.0, 5.0, -3.0):
        P0, _ = numpy_unbalanced_sinkhorn(C + shift, a_s, eps, (rho,) * 3)
        P, log = om.emot_sinkhorn(a_s, C + shift, eps, reg_m=rho, stopThr=1e-13, log=True)
        np.testing.assert_allclose(P, P0, atol=1e-10, rtol=1e-8)
        np.testing.assert_allclose(float(log["value"]), primal_value(C + shift, P0, a_s, eps, (rho,) * 3), atol=1e-9)


@pytest.mark.parametrize("rho", [(20.0, 20.0, 20.0), (INF, 20.0, 10.0)])
def test_large_rho_over_eps_converges_fast(rho):
    """The translation step keeps the loop fast at rho >> eps (plain unbalanced Sinkhorn contracts by ~1 - eps/rho)."""
    rng = np.random.RandomState(11)
    eps = 0.1
    C, a_s = _problem(rng, (3, 4, 5), masses=(1.0, 1.3, 0.8))
    P0, _ = numpy_unbalanced_sinkhorn(C, a_s, eps, rho, n_sweeps=200000, tol=1e-14)
    P, log = om.emot_sinkhorn(a_s, C, eps, reg_m=rho, stopThr=1e-12, log=True)
    assert log["converged"] and log["niter"] < 1000
    np.testing.assert_allclose(P, P0, atol=1e-9)


def test_warmstart_from_the_solution_stops_at_once():
    rng = np.random.RandomState(12)
    C, a_s = _problem(rng, (3, 4, 5), masses=(1.0, 1.5, 0.7))
    rho = (0.5, 2.0, 1.0)
    _, log = om.emot_sinkhorn2(a_s, C + 3.0, 0.3, reg_m=rho, stopThr=1e-12, log=True)
    v, log2 = om.emot_sinkhorn2(a_s, C + 3.0, 0.3, reg_m=rho, stopThr=1e-10, warmstart=log["potentials"], log=True)
    assert log2["niter"] == 0 and log2["converged"]
    np.testing.assert_allclose(float(v), float(log["value"]), atol=1e-10)


# ---------------------------------------------------------------- graph engines
def _pairwise(rng, shape, edges):
    return om.PairwiseCost(edges, [rng.rand(shape[a], shape[b]) + (a == 0) * 2.0 for a, b in edges], shape=shape)


@pytest.mark.parametrize(
    "edges",
    [
        [(0, 1), (1, 2), (2, 3)],  # chain: tree engine
        [(0, 1), (0, 2), (0, 3)],  # star: tree engine
        [(0, 1), (1, 2), (2, 3), (3, 0)],  # circle: cycle engine
        [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)],  # complete: contraction engine
    ],
    ids=["chain", "star", "circle", "complete"],
)
def test_graph_engines_equal_dense(nx, edges):
    rng = np.random.RandomState(7)
    eps = 0.5
    shape = (3, 4, 3, 4)
    rho = (0.6, INF, 1.5, 0.3)
    masses = (0.8, 1.0, 1.0, 1.3)
    _, a_s = _problem(rng, shape, masses)
    cost = _pairwise(rng, shape, edges)
    ab = [nx.array(a) for a in a_s]
    costb = om.PairwiseCost(edges, [nx.array(m) for m in cost.matrices], shape=shape)
    Cd = nx.array(cost.to_dense())
    vd, logd = om.emot_sinkhorn2(ab, Cd, eps, reg_m=rho, stopThr=nx.tol(1e-12), log=True)
    vg, logg = om.emot_sinkhorn2(ab, costb, eps, reg_m=rho, stopThr=nx.tol(1e-12), log=True)
    tol = nx.tol(1e-9)
    np.testing.assert_allclose(float(nx.np(vg)), float(nx.np(vd)), atol=tol)
    np.testing.assert_allclose(float(nx.np(logg["value_linear"])), float(nx.np(logd["value_linear"])), atol=tol)
    for i in range(4):
        np.testing.assert_allclose(nx.np(logg["marginals"][i]), nx.np(logd["marginals"][i]), atol=tol)
    plan = om.emot_sinkhorn(ab, costb, eps, reg_m=rho, stopThr=nx.tol(1e-12))
    assert isinstance(plan, om.FactoredPlan)
    Pd = om.emot_sinkhorn(ab, Cd, eps, reg_m=rho, stopThr=nx.tol(1e-12))
    np.testing.assert_allclose(nx.np(plan.to_dense()), nx.np(Pd), atol=tol)
    np.testing.assert_allclose(nx.np(plan.pairwise_marginal(0, 2)), nx.np(Pd).sum(axis=(1, 3)), atol=tol)


def test_empirical_calls_take_reg_m():
    rng = np.random.RandomState(8)
    X_s = [rng.randn(n, 2) for n in (5, 6, 4)]
    rho = (0.5, INF, 2.0)
    v = om.empirical_emot_sinkhorn2(X_s, 1.0, reg_m=rho, stopThr=1e-12)
    v2 = om.emot_sinkhorn2(None, om.empirical_cost(X_s), 1.0, reg_m=rho, stopThr=1e-12)
    vc = om.empirical_emot_sinkhorn2(X_s, 1.0, reg_m=rho, graph="chain", stopThr=1e-12)
    vc2 = om.emot_sinkhorn2(None, om.empirical_cost(X_s, graph="chain").to_dense(), 1.0, reg_m=rho, stopThr=1e-12)
    np.testing.assert_allclose(v, v2, atol=1e-12)
    np.testing.assert_allclose(vc, vc2, atol=1e-9)
    P = om.empirical_emot_sinkhorn(X_s, 1.0, reg_m=rho, graph="circle", stopThr=1e-12)
    assert isinstance(P, om.FactoredPlan)


# ---------------------------------------------------------------- gradients
def test_gradients_envelope_match_autodiff_and_finite_differences():
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(9)
    eps = 0.5
    rho = (0.7, INF, 1.2)
    C, a_s = _problem(rng, (3, 4, 5), masses=(0.8, 1.0, 1.0))

    def run(grad):
        Ct = torch.tensor(C, requires_grad=True)
        at = [torch.tensor(a, requires_grad=True) for a in a_s]
        v = om.emot_sinkhorn2(at, Ct, eps, reg_m=rho, grad=grad, stopThr=1e-13, numItermax=5000)
        v.backward()
        return float(v.detach()), Ct.grad.numpy(), [a.grad.numpy() for a in at]

    v_env, gC_env, ga_env = run("envelope")
    v_ad, gC_ad, ga_ad = run("autodiff")
    np.testing.assert_allclose(v_env, v_ad, atol=1e-12)
    np.testing.assert_allclose(gC_env, gC_ad, atol=1e-8)
    # penalised nodes: the full gradient (masses are free); the balanced node 1 shares its
    # mass with no other balanced node, so its gradient too is exact
    for i in range(3):
        np.testing.assert_allclose(ga_env[i], ga_ad[i], atol=1e-7)
    # finite differences of the NumPy value in one cost entry and one weight entry
    h = 1e-6

    def val(Cx, ax):
        return float(om.emot_sinkhorn2(ax, Cx, eps, reg_m=rho, stopThr=1e-14, numItermax=10000))

    Cp, Cm = C.copy(), C.copy()
    Cp[1, 2, 3] += h
    Cm[1, 2, 3] -= h
    np.testing.assert_allclose((val(Cp, a_s) - val(Cm, a_s)) / (2 * h), gC_env[1, 2, 3], atol=1e-6)
    ap = [a.copy() for a in a_s]
    am = [a.copy() for a in a_s]
    ap[0][1] += h
    am[0][1] -= h
    np.testing.assert_allclose((val(C, ap) - val(C, am)) / (2 * h), ga_env[0][1], atol=1e-6)


def test_gradients_on_a_graph_cost_envelope_match_autodiff():
    """Pairwise costs: the envelope gradient of each edge matrix is the edge's pairwise marginal."""
    torch = pytest.importorskip("torch")
    rng = np.random.RandomState(13)
    shape = (3, 4, 3, 4)
    edges = [(0, 1), (1, 2), (2, 3), (3, 0)]
    mats = [rng.rand(shape[a], shape[b]) for a, b in edges]
    _, a_s = _problem(rng, shape, masses=(1.0, 0.8, 1.2, 1.0))
    rho = (0.5, 1.0, 2.0, INF)

    def run(grad):
        Ms = [torch.tensor(m, requires_grad=True) for m in mats]
        at = [torch.tensor(a, requires_grad=True) for a in a_s]
        v = om.emot_sinkhorn2(
            at, om.PairwiseCost(edges, Ms, shape=shape), 0.5, reg_m=rho, grad=grad, stopThr=1e-13, numItermax=5000
        )
        v.backward()
        return [m.grad.numpy() for m in Ms], [a.grad.numpy() for a in at]

    gM_env, ga_env = run("envelope")
    gM_ad, ga_ad = run("autodiff")
    for x, y in zip(gM_env + ga_env, gM_ad + ga_ad):
        np.testing.assert_allclose(x, y, atol=1e-7)


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "bad,err",
    [
        (-1.0, ValueError),
        (float("nan"), ValueError),
        (0.0, ValueError),
        ((1.0, 2.0), ValueError),
        ((1.0, 2.0, 3.0, 4.0), ValueError),
        ((1.0, -2.0, 3.0), ValueError),
        ("a", TypeError),
        ({"x": 1}, TypeError),
    ],
)
def test_reg_m_validation(bad, err):
    C = np.random.RandomState(0).rand(3, 4, 5)
    with pytest.raises(err, match="reg_m"):
        om.emot_sinkhorn(None, C, 0.5, reg_m=bad)
    with pytest.raises(err, match="reg_m"):
        om.emot_sinkhorn2(None, C, 0.5, reg_m=bad)


def test_reg_m_other_methods_and_options_refused():
    C = np.random.RandomState(0).rand(3, 4, 5)
    with pytest.raises(ValueError, match="reg_m.*sinkhorn_log"):
        om.emot_sinkhorn2(None, C, 0.5, reg_m=1.0, method="sinkhorn_greedy")
    with pytest.raises(ValueError, match="relaxation.*reg_m"):
        om.emot_sinkhorn2(None, C, 0.5, reg_m=1.0, relaxation=1.5)
    # balanced marginals of different masses: infeasible
    a = np.ones(3) / 3
    b = np.ones(4) / 2
    with pytest.raises(ValueError, match="same total mass"):
        om.emot_sinkhorn2([a, b, None], C, 0.5, reg_m=(INF, INF, 1.0))
    # unbalanced weights keep their masses (no renormalisation), balanced calls still require one
    v, log = om.emot_sinkhorn2([a, b, None], C, 0.5, reg_m=(1.0, 1.0, 1.0), log=True)
    assert np.isfinite(v) and log["converged"]
    with pytest.raises(ValueError, match="probability"):
        om.emot_sinkhorn2([a, b, None], C, 0.5)


def test_non_convergence_warns():
    C = np.random.RandomState(0).rand(3, 4, 5)
    with pytest.warns(UserWarning, match="did not converge"):
        om.emot_sinkhorn2(None, C, 0.01, reg_m=10.0, numItermax=2, stopThr=1e-12)


# ---------------------------------------------------------------- neural
def _clouds():
    rng = np.random.RandomState(10)
    return [rng.randn(60, 2) + 0.5 * i for i in range(3)]


@pytest.mark.parametrize("rho", [(1.0, 1.0, 1.0), (INF, 0.5, 2.0)])
def test_neural_exact_dual_at_sinkhorn_potentials_is_the_value(rho):
    """Strong duality: the neural objective's exact unbalanced dual at Sinkhorn's potentials is Sinkhorn's value."""
    torch = pytest.importorskip("torch")
    from ot_multimarginal.costs.pointcloud import make_cost
    from ot_multimarginal.neural.objectives import exact_dual

    X_s = _clouds()
    v, log = om.empirical_emot_sinkhorn2(X_s, 1.0, graph="chain", reg_m=rho, stopThr=1e-12, log=True)
    Xt = [torch.tensor(X) for X in X_s]
    ft = [torch.tensor(p) for p in log["potentials"]]
    at = [torch.full((60,), 1.0 / 60, dtype=torch.float64) for _ in X_s]
    d = exact_dual(make_cost(3, "chain"), Xt, ft, 1.0, at, om.unbalanced.check_reg_m(rho, 3))
    np.testing.assert_allclose(float(d), float(v), atol=1e-9)
    # any other potentials give less (weak duality)
    d2 = exact_dual(make_cost(3, "chain"), Xt, [f + 0.1 for f in ft], 1.0, at, om.unbalanced.check_reg_m(rho, 3))
    assert float(d2) < float(v)


@pytest.mark.parametrize("rho", [pytest.param((1.0, 1.0, 1.0), marks=pytest.mark.slow), (INF, 0.5, 2.0)])
def test_neural_within_one_percent_of_sinkhorn(rho):
    pytest.importorskip("torch")
    X_s = _clouds()
    v_s, log_s = om.empirical_emot_sinkhorn2(X_s, 1.0, graph="chain", reg_m=rho, stopThr=1e-10, log=True)
    v_n, log = om.emot_neural2(
        X_s, 1.0, graph="chain", reg_m=rho, numItermax=600, batch_size=60, random_state=0, log=True
    )
    assert log["value_method"] == "exact"
    assert float(v_n) <= float(v_s) + 1e-9  # a certified lower bound
    assert abs(float(v_n) - float(v_s)) < 0.01 * abs(float(v_s))
    # the plan of the trained potentials has the solution's mass and marginals (to the training's accuracy)
    P = log["estimator"].plan()
    for i in range(3):
        r = log_s["marginals"][i]
        assert np.abs(P.marginal(i) - r).sum() < 0.05 * r.sum()
    np.testing.assert_allclose(float(P.mass), float(log_s["marginals"][0].sum()), rtol=0.01)


def test_neural_reg_m_validation():
    pytest.importorskip("torch")
    with pytest.raises(ValueError, match="reg_m"):
        om.emot_neural2(_clouds(), 1.0, reg_m=(1.0, -1.0, 1.0), numItermax=1)
    with pytest.raises(ValueError, match="reg_m"):
        om.emot_neural2(_clouds(), 1.0, reg_m=(1.0, 1.0), numItermax=1)
