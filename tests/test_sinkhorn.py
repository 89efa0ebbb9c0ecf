# -*- coding: utf-8 -*-
"""Dense multimarginal Sinkhorn against independent oracles."""

import warnings

import numpy as np
import ot
import pytest

import ot_multimarginal as om
from conftest import random_weights

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _problem(rng, shape, scale=1.0):
    a_s = [random_weights(rng, n) for n in shape]
    M = scale * rng.rand(*shape)
    return a_s, M


def _marginals(P):
    k = P.ndim
    return [P.sum(axis=tuple(j for j in range(k) if j != i)) for i in range(k)]


# ---------------------------------------------------------------- k = 2 vs POT
@pytest.mark.parametrize("mode", ["scaling", "log"])
def test_k2_plan_matches_pot_sinkhorn_log(nx, rng, mode):
    a, b = random_weights(rng, 7), random_weights(rng, 11)
    M = rng.rand(7, 11)
    G = ot.sinkhorn(a, b, M, 0.05, method="sinkhorn_log", stopThr=1e-12, numItermax=10000)
    P = om.emot_sinkhorn(
        [nx.array(a), nx.array(b)], nx.array(M), 0.05, stopThr=1e-12, numItermax=10000, mode=mode, warn=not nx.float32
    )
    np.testing.assert_allclose(nx.np(P), G, atol=nx.tol(1e-10))


def test_k2_value_matches_ot_solve(nx, rng):
    a, b = random_weights(rng, 6), random_weights(rng, 9)
    M = rng.rand(6, 9)
    ref = ot.solve(M, a, b, reg=0.1, tol=1e-12, max_iter=10000).value
    v = om.emot_sinkhorn2(
        [nx.array(a), nx.array(b)], nx.array(M), 0.1, stopThr=1e-12 if not nx.float32 else 1e-6, warn=False
    )
    np.testing.assert_allclose(float(nx.np(v)), ref, rtol=nx.tol(1e-9))


# ------------------------------------------------------------ k = 3, 4 marginals
@pytest.mark.parametrize("shape", [(5, 6, 7), (4, 3, 5, 2)])
def test_marginals_and_modes_agree(nx, rng, shape):
    a_s, M = _problem(rng, shape)
    thr = 1e-5 if nx.float32 else 1e-10
    Ps = []
    for mode in ("scaling", "log"):
        P, log = om.emot_sinkhorn(
            [nx.array(a) for a in a_s], nx.array(M), 0.05, stopThr=thr, numItermax=20000, mode=mode, log=True
        )
        assert log["converged"]
        Pn = nx.np(P)
        assert Pn.shape == shape and np.all(Pn >= 0)
        for r, a in zip(_marginals(Pn), a_s):
            np.testing.assert_allclose(r, a, atol=10 * thr)
        Ps.append(Pn)
    np.testing.assert_allclose(Ps[0], Ps[1], atol=nx.tol(1e-9))


def test_plan_is_gibbs_form_of_potentials(rng):
    a_s, M = _problem(rng, (4, 5, 6))
    reg = 0.2
    P, log = om.emot_sinkhorn(a_s, M, reg, log=True, stopThr=1e-12)
    phi = log["potentials"]
    S = phi[0][:, None, None] + phi[1][None, :, None] + phi[2][None, None, :]
    prod = a_s[0][:, None, None] * a_s[1][None, :, None] * a_s[2][None, None, :]
    np.testing.assert_allclose(P, np.exp((S - M) / reg) * prod, rtol=1e-10)
    # value = <M,P> + reg KL(P | ⊗a), computed here from the plan itself
    kl = np.sum(P * np.log(P / prod)) - P.sum() + 1
    np.testing.assert_allclose(log["value"], np.sum(M * P) + reg * kl, rtol=1e-10)
    np.testing.assert_allclose(log["value_linear"], np.sum(M * P), rtol=1e-10)
    # the dual value equals the primal value at convergence
    np.testing.assert_allclose(sum(np.dot(p, a) for p, a in zip(phi, a_s)), log["value"], rtol=1e-9)


def test_small_reg_is_finite_and_close_to_lp(rng):
    a_s, M = _problem(rng, (5, 4, 6))
    lp = om.emot_lp2(a_s, M)
    gaps = []
    for reg in (0.1, 0.01, 0.001):
        v, log = om.emot_sinkhorn2(a_s, M, reg, log=True, stopThr=1e-9, numItermax=200000)
        assert np.isfinite(v)
        gaps.append(abs(log["value_linear"] - lp))
    assert gaps[2] < gaps[0] and gaps[2] < 2e-3


@pytest.mark.parametrize("mode", ["scaling", "log"])
def test_tiny_reg_large_cost_no_overflow(nx, rng, mode):
    """reg = 1e-3 with costs in [0, 100]: finite, non-negative plan."""
    a_s, M = _problem(rng, (6, 5, 4), scale=100.0)
    P = om.emot_sinkhorn([nx.array(a) for a in a_s], nx.array(M), 1e-3, numItermax=300, mode=mode, warn=False)
    Pn = nx.np(P)
    assert np.all(np.isfinite(Pn)) and np.all(Pn >= 0)
    # float32 carries potentials of size |C|/reg = 1e5 with 7 digits: 1e-3 is its accuracy here
    assert abs(Pn.sum() - 1) < (1e-3 if nx.float32 else 1e-8)


def test_zero_weights_give_no_nan(rng):
    a_s, M = _problem(rng, (4, 5, 3))
    a_s[1][2] = 0.0
    a_s[1] /= a_s[1].sum()
    P, log = om.emot_sinkhorn(a_s, M, 0.1, log=True, stopThr=1e-10)
    assert np.all(np.isfinite(P))
    assert np.all(P[:, 2, :] == 0)
    assert all(np.all(np.isfinite(p)) for p in log["potentials"])
    np.testing.assert_allclose(_marginals(P)[1], a_s[1], atol=1e-9)


# ---------------------------------------------------------------- backends
def test_dtype_and_device_preserved(nx, rng):
    a_s, M = _problem(rng, (3, 4, 5))
    Mb = nx.array(M)
    P, log = om.emot_sinkhorn([nx.array(a) for a in a_s], Mb, 0.1, log=True, stopThr=1e-5)
    v = om.emot_sinkhorn2(None, Mb, 0.1, stopThr=1e-5)
    for x in [P, v] + log["potentials"]:
        assert type(x) is type(Mb) or (not nx.is_torch and np.ndim(x) == 0)
        if nx.is_torch:
            assert x.dtype == Mb.dtype and x.device == Mb.device


def test_backends_agree(nx, rng):
    a_s, M = _problem(rng, (4, 6, 5))
    ref = om.emot_sinkhorn2(a_s, M, 0.1, stopThr=1e-10)
    v = om.emot_sinkhorn2(
        [nx.array(a) for a in a_s], nx.array(M), 0.1, stopThr=1e-10 if not nx.float32 else 1e-5, warn=False
    )
    np.testing.assert_allclose(float(nx.np(v)), ref, rtol=nx.tol(1e-10))


def test_float32_torch_small_reg():
    if torch is None:
        pytest.skip("torch not installed")
    rng = np.random.RandomState(1)
    a_s, M = _problem(rng, (8, 9, 7))
    Mt = torch.tensor(M, dtype=torch.float32)
    P = om.emot_sinkhorn(None, Mt, 0.005, stopThr=1e-4, numItermax=5000)
    assert P.dtype == torch.float32 and torch.isfinite(P).all()
    ref = om.emot_sinkhorn(None, M, 0.005, stopThr=1e-10, numItermax=20000)
    assert np.abs(P.numpy() - ref).sum() < 5e-3


# ---------------------------------------------------------------- gradients
def _torch_or_skip(nx):
    if not nx.is_torch or nx.float32:
        pytest.skip("gradient checks run in torch float64")


@pytest.mark.parametrize("grad", ["envelope", "autodiff"])
def test_gradient_wrt_cost_is_plan(nx, rng, grad):
    _torch_or_skip(nx)
    a_s, M = _problem(rng, (4, 5, 3))
    Mt = nx.array(M, requires_grad=True)
    at = [nx.array(a) for a in a_s]
    v = om.emot_sinkhorn2(at, Mt, 0.1, stopThr=1e-12, grad=grad)
    v.backward()
    P = om.emot_sinkhorn(a_s, M, 0.1, stopThr=1e-12)
    np.testing.assert_allclose(nx.np(Mt.grad), P, atol=1e-8)


@pytest.mark.parametrize("grad", ["envelope", "autodiff"])
def test_gradient_wrt_weights_finite_differences(nx, rng, grad):
    _torch_or_skip(nx)
    a_s, M = _problem(rng, (4, 5, 3))
    at = [nx.array(a, requires_grad=True) for a in a_s]
    v, log = om.emot_sinkhorn2(at, nx.array(M), 0.1, stopThr=1e-13, numItermax=5000, grad=grad, log=True)
    v.backward()
    for i in range(3):
        gi = nx.np(at[i].grad)
        phi = nx.np(log["potentials"][i])
        np.testing.assert_allclose(gi - gi.mean(), phi - phi.mean(), atol=1e-7)
        # directional derivative along a mass-preserving direction e_p - e_q
        p, q = 0, 2
        h = 1e-6
        vals = []
        for t in (h, -h):
            b = [x.copy() for x in a_s]
            b[i][p] += t
            b[i][q] -= t
            vals.append(om.emot_sinkhorn2(b, M, 0.1, stopThr=1e-13, numItermax=5000))
        fd = (vals[0] - vals[1]) / (2 * h)
        np.testing.assert_allclose(gi[p] - gi[q], fd, rtol=1e-5, atol=1e-8)


def test_gradient_wrt_points_finite_differences(nx, rng):
    _torch_or_skip(nx)
    X_s = [rng.randn(n, 2) for n in (4, 5, 3)]
    Xt = [nx.array(X, requires_grad=True) for X in X_s]
    v = om.empirical_emot_sinkhorn2(Xt, 0.5, stopThr=1e-13, numItermax=5000)
    v.backward()
    h = 1e-6
    for i, (p, d) in enumerate([(1, 0), (2, 1), (0, 1)]):
        vals = []
        for t in (h, -h):
            Y = [x.copy() for x in X_s]
            Y[i][p, d] += t
            vals.append(om.empirical_emot_sinkhorn2(Y, 0.5, stopThr=1e-13, numItermax=5000))
        np.testing.assert_allclose(nx.np(Xt[i].grad)[p, d], (vals[0] - vals[1]) / (2 * h), rtol=1e-5, atol=1e-8)


def test_detach_gives_no_graph(nx, rng):
    _torch_or_skip(nx)
    a_s, M = _problem(rng, (3, 4, 3))
    Mt = nx.array(M, requires_grad=True)
    v = om.emot_sinkhorn2(None, Mt, 0.1, grad="detach")
    assert not v.requires_grad
    P = om.emot_sinkhorn(None, Mt, 0.1, grad="detach")
    assert not P.requires_grad


# ---------------------------------------------------------------- warm start, warnings
def test_warmstart_reduces_iterations(rng):
    a_s, M = _problem(rng, (6, 5, 7))
    _, log1 = om.emot_sinkhorn2(a_s, M, 0.01, stopThr=1e-9, log=True, numItermax=10000)
    _, log2 = om.emot_sinkhorn2(
        a_s, M * 1.001, 0.01, stopThr=1e-9, log=True, numItermax=10000, warmstart=log1["potentials"]
    )
    _, log3 = om.emot_sinkhorn2(a_s, M * 1.001, 0.01, stopThr=1e-9, log=True, numItermax=10000)
    assert log2["niter"] <= 0.8 * log3["niter"]
    _, log4 = om.emot_sinkhorn2(a_s, M, 0.01, stopThr=1e-9, log=True, warmstart=log1["potentials"])
    assert log4["niter"] == 0  # already converged: no sweep needed


def test_convergence_warning_and_warn_false(rng):
    a_s, M = _problem(rng, (4, 5, 3))
    with pytest.warns(UserWarning, match="did not converge"):
        om.emot_sinkhorn(a_s, M, 0.01, numItermax=2, stopThr=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        om.emot_sinkhorn(a_s, M, 0.01, numItermax=2, stopThr=0, warn=False)


def test_verbose_prints(rng, capsys):
    a_s, M = _problem(rng, (3, 3, 3))
    om.emot_sinkhorn(a_s, M, 0.5, verbose=True, stopThr=1e-8)
    out = capsys.readouterr().out
    assert "It." in out and "Err" in out


# ---------------------------------------------------------------- point clouds
def test_cost_tensor_convention_and_empirical(nx, rng):
    X_s = [rng.randn(n, 2) for n in (3, 4, 5)]
    C = nx.np(om.cost_tensor([nx.array(X) for X in X_s]))
    for idx in [(0, 0, 0), (2, 1, 3), (1, 3, 4)]:
        x = [X_s[i][idx[i]] for i in range(3)]
        ref = sum(np.sum((x[i] - x[j]) ** 2) for i in range(3) for j in range(i + 1, 3))
        np.testing.assert_allclose(C[idx], ref, rtol=nx.tol(1e-12))
    v1 = om.empirical_emot_sinkhorn2([nx.array(X) for X in X_s], 1.0, graph=None, stopThr=1e-6)
    v2 = om.emot_sinkhorn2(None, nx.array(C), 1.0, stopThr=1e-6)
    np.testing.assert_allclose(float(nx.np(v1)), float(nx.np(v2)), rtol=nx.tol(1e-10))


def test_cost_tensor_callables_and_dimensions(rng):
    X_s = [rng.randn(3, 2), rng.randn(4, 3), rng.randn(2, 1)]
    with pytest.raises(ValueError, match="same dimension"):
        om.cost_tensor(X_s)

    def norms(X, Y):
        return (np.sum(X**2, 1)[:, None] - np.sum(Y**2, 1)[None, :]) ** 2

    C = om.cost_tensor(X_s, metric=norms)
    assert C.shape == (3, 4, 2)
    np.testing.assert_allclose(
        C[1, 2, 0],
        sum(norms(X_s[i][[(1, 2, 0)[i]]], X_s[j][[(1, 2, 0)[j]]])[0, 0] for i, j in [(0, 1), (0, 2), (1, 2)]),
    )
    Y_s = [rng.randn(3, 2), rng.randn(4, 2), rng.randn(2, 2)]
    C2 = om.cost_tensor(Y_s, metric=["sqeuclidean", "euclidean", "cityblock"])
    ref = (
        ot.dist(Y_s[0], Y_s[1])[:, :, None]
        + ot.dist(Y_s[0], Y_s[2], "euclidean")[:, None, :]
        + ot.dist(Y_s[1], Y_s[2], "cityblock")[None]
    )
    np.testing.assert_allclose(C2, ref)
    with pytest.raises(ValueError, match="one per pair"):
        om.cost_tensor(Y_s, metric=["sqeuclidean"])


# ---------------------------------------------------------------- bad input
def test_bad_inputs_raise(rng):
    a_s, M = _problem(rng, (3, 4, 5))
    with pytest.raises(ValueError, match="reg"):
        om.emot_sinkhorn(a_s, M, 0.0)
    with pytest.raises(ValueError, match="reg"):
        om.emot_sinkhorn(a_s, M, -1.0)
    with pytest.raises(ValueError, match="at least 2"):
        om.emot_sinkhorn(None, rng.rand(4), 0.1)
    with pytest.raises(ValueError, match="a_s"):
        om.emot_sinkhorn(a_s[:2], M, 0.1)
    with pytest.raises(ValueError, match=r"a_s\[1\] has length 3"):
        om.emot_sinkhorn([a_s[0], a_s[0][:3] / a_s[0][:3].sum(), a_s[2]], M, 0.1)
    bad = a_s[1].copy()
    bad[0] = -0.1
    with pytest.raises(ValueError, match=r"a_s\[1\] has negative"):
        om.emot_sinkhorn([a_s[0], bad, a_s[2]], M, 0.1)
    with pytest.raises(ValueError, match=r"a_s\[2\].*sums to"):
        om.emot_sinkhorn([a_s[0], a_s[1], 2 * a_s[2]], M, 0.1)
    nan_w = a_s[0].copy()
    nan_w[1] = np.nan
    with pytest.raises(ValueError, match=r"a_s\[0\] contains NaN"):
        om.emot_sinkhorn([nan_w, a_s[1], a_s[2]], M, 0.1)
    M2 = M.copy()
    M2[0, 1, 2] = np.inf
    with pytest.raises(ValueError, match="M contains NaN or inf"):
        om.emot_sinkhorn(a_s, M2, 0.1)
    with pytest.raises(ValueError, match="Unknown method"):
        om.emot_sinkhorn(a_s, M, 0.1, method="nope")
    with pytest.raises(ValueError, match="grad"):
        om.emot_sinkhorn2(a_s, M, 0.1, grad="nope")
    with pytest.raises(TypeError, match="floating"):
        om.emot_sinkhorn(None, np.ones((2, 2, 2), dtype=int), 0.1)
    with pytest.raises(ValueError, match="warmstart"):
        om.emot_sinkhorn(a_s, M, 0.1, warmstart=[np.zeros(3)])
    with pytest.raises(ValueError, match="numItermax"):
        om.emot_sinkhorn(a_s, M, 0.1, numItermax=-1)


def test_mixed_backends_raise(rng):
    if torch is None:
        pytest.skip("torch not installed")
    a_s, M = _problem(rng, (3, 4, 5))
    with pytest.raises(TypeError, match="same library"):
        om.emot_sinkhorn([torch.tensor(a_s[0]), a_s[1], a_s[2]], M, 0.1)
    with pytest.raises(TypeError, match="same library"):
        om.cost_tensor([rng.randn(3, 2), torch.randn(3, 2, dtype=torch.float64)])


def test_memory_guard_raises_before_allocating(rng):
    X_s = [rng.randn(20000, 2) for _ in range(3)]  # 8e12 entries
    with pytest.raises(MemoryError, match="What scales: a PairwiseCost on a chain, tree, star or circle"):
        om.cost_tensor(X_s)
    with pytest.raises(MemoryError, match="memory budget"):
        om.emot_sinkhorn(None, rng.rand(20, 20, 20), 0.1, memory_budget=1000)


# ---------------------------------------------------------------- over-relaxation
def _dual(P_log_r, g, a_s):
    from scipy.special import logsumexp

    return logsumexp(P_log_r[0]) - sum(np.dot(gi, ai) for gi, ai in zip(g, a_s))


@pytest.mark.parametrize("relaxation", [1.5, 1.9, "auto"])
def test_overrelaxation_same_solution(rng, relaxation):
    X_s = [rng.randn(n, 2) for n in (20, 25, 30)]
    C = om.cost_tensor(X_s)
    P1 = om.emot_sinkhorn(None, C, 0.1, stopThr=1e-9, numItermax=50000)
    P2, log2 = om.emot_sinkhorn(None, C, 0.1, stopThr=1e-9, numItermax=50000, log=True, relaxation=relaxation)
    assert log2["converged"] and log2["n_relaxed_steps"] > 0
    np.testing.assert_allclose(P2, P1, atol=1e-9)


@pytest.mark.parametrize("relaxation", [1.5, "auto"])
def test_overrelaxation_cuts_sweeps_in_the_slow_linear_regime(relaxation):
    """k = 3, n = 60 Gaussian clouds, eps = 0.1: plain Sinkhorn needs 5490 sweeps to 1e-6.

    (Over-relaxation is not faster on every problem; it is monotone and convergent on all.)
    """
    rng = np.random.RandomState(0)
    C = om.cost_tensor([rng.randn(60, 2) for _ in range(3)])
    _, log1 = om.emot_sinkhorn2(None, C, 0.1, stopThr=1e-6, numItermax=20000, log=True)
    _, log2 = om.emot_sinkhorn2(None, C, 0.1, stopThr=1e-6, numItermax=20000, log=True, relaxation=relaxation)
    assert log1["converged"] and log2["converged"]
    assert log2["niter"] < 0.5 * log1["niter"]
    np.testing.assert_allclose(log2["value"], log1["value"], rtol=1e-6)


def test_overrelaxation_dual_is_monotone(rng):
    """The safeguard keeps the dual objective non-increasing, even for an aggressive omega."""
    from ot_multimarginal.sinkhorn import make_engine, solve_potentials

    X_s = [rng.randn(n, 2) for n in (8, 9, 7)]
    C = om.cost_tensor(X_s)
    engine, a_s = make_engine(None, C, 0.05)
    g, _ = solve_potentials(engine, a_s, numItermax=0, stopThr=0, warn=False)
    prev = np.inf
    for _ in range(60):
        phi = [gi - np.log(ai) for gi, ai in zip(g, a_s)]
        g, info = solve_potentials(
            engine, a_s, numItermax=1, stopThr=0, warn=False, relaxation=1.95, warmstart=[0.05 * p for p in phi]
        )
        d = _dual(engine.log_marginals(g), g, a_s)
        assert d <= prev + 1e-12 * abs(d)
        prev = d


def test_bad_relaxation_raises(rng):
    a_s, M = _problem(rng, (3, 4, 5))
    for bad in (0.5, 2.0, "fast"):
        with pytest.raises(ValueError, match="relaxation"):
            om.emot_sinkhorn(a_s, M, 0.1, relaxation=bad)


def test_float32_default_threshold_is_reachable():
    """stopThr=1e-9 (the default) is raised to float32's floor instead of always warning."""
    if torch is None:
        pytest.skip("torch not installed")
    rng = np.random.RandomState(2)
    M = torch.tensor(rng.rand(6, 5, 4), dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        P, log = om.emot_sinkhorn(None, M, 0.5, log=True)
    assert log["converged"] and 1e-9 < log["stopThr"] < 1e-5
    _, log64 = om.emot_sinkhorn(None, M.double(), 0.5, log=True)
    assert log64["stopThr"] == 1e-9


def test_warnings_point_at_the_callers_line(rng):
    """Non-convergence warnings are attributed to this file, whatever the depth of the call path."""
    import ot_multimarginal.approx as approx

    M = rng.rand(4, 5, 6)
    X_s = [rng.randn(n, 2) for n in (4, 5, 6)]
    calls = [
        lambda: om.emot_sinkhorn(None, M, 0.1, numItermax=1),
        lambda: om.emot_sinkhorn2(None, M, 0.1, numItermax=1),
        lambda: om.emot_sinkhorn2(None, M, 0.1, numItermax=1, method="sinkhorn_greedy"),
        lambda: om.empirical_emot_sinkhorn(X_s, 0.1, numItermax=1),
        lambda: om.empirical_emot_sinkhorn2(X_s, 0.1, numItermax=1),
        lambda: om.empirical_emot_sinkhorn2(X_s, 0.1, numItermax=1, graph="chain"),
        lambda: approx.emot_approx(None, M, 0.01, numItermax=1),
    ]
    for call in calls:
        with pytest.warns(UserWarning) as rec:
            call()
        assert [w.filename for w in rec] == [__file__]
