# -*- coding: utf-8 -*-
"""Free nodes: marginals that are not prescribed (e.g. the centre of a barycenter star).

Oracles are independent of the package: closed forms (k = 2), a plain NumPy
log-domain Sinkhorn on the dense tensor that updates the prescribed blocks
only, the brute-force primal ⟨C,P⟩ + ε KL(P|⊗a) of a dense plan,
``ot.lp.barycenter`` / ``ot.emd2`` for the LP, finite differences for
gradients and the textbook rounding of ``tests/oracles.py``.
"""

import warnings

import numpy as np
import ot
import pytest
from oracles import axes_except, dense_pairwise_cost, textbook_round
from scipy.special import logsumexp

import ot_multimarginal as om
from ot_multimarginal.rounding import round_dense

METHODS = ["sinkhorn_log", "sinkhorn_greedy", "sinkhorn_accelerated"]


# ---------------------------------------------------------------- oracles
def random_weights(rng, n, low=0.2):
    a = rng.rand(n) + low
    return a / a.sum()


def _log_plan(C, a_s, phi, eps):
    k = C.ndim
    L = -C / eps
    for i in range(k):
        sh = [1] * k
        sh[i] = -1
        with np.errstate(divide="ignore"):
            L = L + (phi[i] / eps + np.log(a_s[i])).reshape(sh)
    return L


def numpy_free_sinkhorn(C, a_s, eps, free, n_sweeps=20000, tol=1e-14):
    """Plain cyclic log-domain Sinkhorn over the prescribed blocks; phi = 0 on free nodes."""
    k = C.ndim
    prescribed = [i for i in range(k) if i not in free]
    phi = [np.zeros(n) for n in C.shape]
    for _ in range(n_sweeps):
        for i in prescribed:
            lr = logsumexp(_log_plan(C, a_s, phi, eps), axis=axes_except(i, k))
            phi[i] = phi[i] + eps * (np.log(a_s[i]) - lr)
        P = np.exp(_log_plan(C, a_s, phi, eps))
        err = sum(np.abs(P.sum(axis=axes_except(i, k)) - a_s[i]).sum() for i in prescribed)
        if err < tol:
            break
    return np.exp(_log_plan(C, a_s, phi, eps)), phi


def primal_value(C, P, a_s, eps):
    """⟨C,P⟩ + ε KL(P | ⊗a), KL(P|Q) = Σ P log(P/Q) − Σ P + Σ Q, from the dense plan."""
    Q = a_s[0]
    for a in a_s[1:]:
        Q = np.multiply.outer(Q, a)
    pos = P > 0
    kl = np.sum(P[pos] * np.log(P[pos] / Q[pos])) - P.sum() + Q.sum()
    return float(np.sum(C * P) + eps * kl)


def _marginal(P, i):
    return P.sum(axis=axes_except(i, P.ndim))


def _weights(rng, shape):
    return [random_weights(rng, n) for n in shape]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(*args, **kwargs)


def _thr(nx):
    return 1e-7 if nx.float32 else 1e-13


# ------------------------------------------- 1. k = 2, closed form
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("free_node", [0, 1])
def test_two_marginals_closed_form(nx, rng, method, free_node):
    a, b = random_weights(rng, 5), random_weights(rng, 7)
    C = rng.rand(5, 7)
    eps = 0.2
    # node 1 free: P_ij = a_i b_j e^{-C_ij/eps} / sum_l b_l e^{-C_il/eps}; node 0 free: transpose
    Cf, pres, ref = (C, a, b) if free_node == 1 else (C.T, b, a)
    K = ref[None, :] * np.exp(-Cf / eps)
    P_ref = pres[:, None] * K / K.sum(axis=1, keepdims=True)
    v_ref = float(np.sum(pres * -eps * np.log(K.sum(axis=1))))
    if free_node == 0:
        P_ref = P_ref.T
    assert abs(primal_value(C, P_ref, [a, b], eps) - v_ref) < 1e-12  # the closed forms agree

    P, log = om.emot_sinkhorn(
        [nx.array(a), nx.array(b)], nx.array(C), eps, method=method, free=[free_node], stopThr=_thr(nx), log=True
    )
    np.testing.assert_allclose(nx.np(P), P_ref, atol=nx.tol(1e-13))
    v = om.emot_sinkhorn2(
        [nx.array(a), nx.array(b)], nx.array(C), eps, method=method, free=(free_node,), stopThr=_thr(nx)
    )
    assert abs(float(nx.np(v)) - v_ref) < nx.tol(1e-12)
    assert log["free"] == (free_node,)
    # phi = 0 on the free node; log['marginals'] holds both (the free one is the plan's)
    assert np.all(nx.np(log["potentials"][free_node]) == 0.0)
    np.testing.assert_allclose(nx.np(log["marginals"][free_node]), _marginal(P_ref, free_node), atol=nx.tol(1e-13))
    # the free marginal differs from its reference weights (the test means something)
    assert np.abs(_marginal(P_ref, free_node) - (b if free_node == 1 else a)).sum() > 1e-2


# ------------------------------------------- 2. dense tensor vs PairwiseCost vs NumPy oracle
def _pairwise_case(name, rng):
    if name == "star_free_centre":
        shape = (6, 4, 5, 3)
        mats = [rng.rand(6, n) for n in shape[1:]]
        cost = om.PairwiseCost.star(mats, center=0, free=[0])
    elif name == "chain_free_middle":
        shape = (4, 6, 3, 5)
        mats = [rng.rand(shape[t], shape[t + 1]) for t in range(3)]
        cost = om.PairwiseCost.chain(mats, free=[1])
    else:  # complete k = 3, one free node
        shape = (4, 6, 5)
        mats = [rng.rand(shape[a], shape[b]) for a, b in [(0, 1), (0, 2), (1, 2)]]
        cost = om.PairwiseCost.complete(mats, free=[2])
    return shape, cost, mats


def _to_nx_cost(nx, cost, mats):
    return om.PairwiseCost(cost.edges, [nx.array(M) for M in mats], shape=cost.shape, free=cost.free)


@pytest.mark.parametrize("case", ["star_free_centre", "chain_free_middle", "complete_k3_free"])
def test_dense_vs_pairwise_vs_oracle(nx, rng, case):
    shape, cost_np, mats = _pairwise_case(case, rng)
    free = cost_np.free
    a_s = _weights(rng, shape)
    eps = 0.3
    C = dense_pairwise_cost(shape, cost_np.edges, mats)
    P_ref, phi_ref = numpy_free_sinkhorn(C, a_s, eps, free)
    v_ref = primal_value(C, P_ref, a_s, eps)

    cost = _to_nx_cost(nx, cost_np, mats)
    a_nx = [nx.array(a) for a in a_s]
    Pd, logd = om.emot_sinkhorn2(a_nx, nx.array(C), eps, free=free, stopThr=_thr(nx), numItermax=5000, log=True)
    Ps = om.emot_sinkhorn(a_nx, cost, eps, stopThr=_thr(nx), numItermax=5000)  # free from the cost
    Pd_plan = om.emot_sinkhorn(a_nx, nx.array(C), eps, free=free, stopThr=_thr(nx), numItermax=5000)
    vs = om.emot_sinkhorn2(a_nx, cost, eps, stopThr=_thr(nx), numItermax=5000)

    assert Ps.free == free and logd["free"] == free
    tol = nx.tol(1e-10)
    np.testing.assert_allclose(nx.np(Pd_plan), P_ref, atol=tol)
    np.testing.assert_allclose(nx.np(Ps.to_dense()), P_ref, atol=tol)
    for i in range(len(shape)):
        if i not in free:
            np.testing.assert_allclose(nx.np(Ps.marginal(i)), a_s[i], atol=tol)
            np.testing.assert_allclose(_marginal(nx.np(Pd_plan), i), a_s[i], atol=tol)
        else:
            # free marginal: the plan's, and really not the reference weights
            np.testing.assert_allclose(nx.np(logd["marginals"][i]), _marginal(P_ref, i), atol=tol)
            assert np.abs(_marginal(P_ref, i) - a_s[i]).sum() > 1e-3
            assert np.all(nx.np(logd["potentials"][i]) == 0.0)
        np.testing.assert_allclose(
            nx.np(logd["potentials"][i]) - nx.np(logd["potentials"][i]).mean(),
            phi_ref[i] - phi_ref[i].mean(),
            atol=nx.tol(1e-9),
        )
    vtol = nx.tol(1e-8) * (1 if not nx.float32 else 10)
    assert abs(float(nx.np(Pd)) - v_ref) < vtol
    assert abs(float(nx.np(vs)) - v_ref) < vtol
    # emot_value's formula is the primal value at the returned (dense) plan itself
    assert abs(primal_value(C, nx.np(Pd_plan), a_s, eps) - float(nx.np(Pd))) < vtol


def test_free_override_and_empirical(rng):
    X_s = [rng.randn(n, 2) for n in (5, 4, 6)]
    a_s = _weights(rng, (5, 4, 6))
    cost = om.PairwiseCost.from_point_clouds(X_s, graph="star", center=0, free=[0])
    assert cost.free == (0,) and "free=(0,)" in repr(cost)
    v_attr = om.emot_sinkhorn2(a_s, cost, 0.5, stopThr=1e-13)
    v_expl = om.emot_sinkhorn2(a_s, cost, 0.5, free=[0], stopThr=1e-13)
    v_none = om.emot_sinkhorn2(a_s, cost, 0.5, free=(), stopThr=1e-13)  # explicit () overrides
    v_all = om.emot_sinkhorn2(a_s, om.PairwiseCost.from_point_clouds(X_s, graph="star"), 0.5, stopThr=1e-13)
    assert abs(v_attr - v_expl) < 1e-12
    assert abs(v_none - v_all) < 1e-12
    assert v_attr < v_none - 1e-3  # fewer constraints, smaller value
    # the point-cloud calls: star graph (structured) and graph=None (dense, all pairs)
    v_emp = om.empirical_emot_sinkhorn2(X_s, 0.5, a_s=a_s, graph="star", free=[0], stopThr=1e-13)
    assert abs(v_emp - v_attr) < 1e-10
    v_dense = om.empirical_emot_sinkhorn2(X_s, 0.5, a_s=a_s, graph=None, free=[0], stopThr=1e-13)
    P_ref, _ = numpy_free_sinkhorn(om.cost_tensor(X_s), a_s, 0.5, (0,))
    assert abs(v_dense - primal_value(om.cost_tensor(X_s), P_ref, a_s, 0.5)) < 1e-10
    P = om.empirical_emot_sinkhorn(X_s, 0.5, a_s=a_s, graph="complete", free=[0], stopThr=1e-13)
    np.testing.assert_allclose(P.to_dense(), P_ref, atol=1e-10)


def test_warmstart_ignores_free_potentials(rng):
    C = rng.rand(4, 5, 6)
    a_s = _weights(rng, C.shape)
    _, log = om.emot_sinkhorn(a_s, C, 0.3, free=[1], stopThr=1e-12, log=True)
    bogus = list(log["potentials"])
    bogus[1] = bogus[1] + rng.rand(5)  # a warm start that is not zero on the free node
    P2, log2 = om.emot_sinkhorn(a_s, C, 0.3, free=[1], stopThr=1e-12, warmstart=bogus, log=True)
    assert log2["niter"] <= 10
    assert np.all(log2["potentials"][1] == 0.0)


# ------------------------------------------- 3. LP: free centre of a star vs ot.lp.barycenter
def _barycenter_problem(rng, n=7, lambdas=(0.2, 0.5, 0.3)):
    x = np.linspace(0, 1, n)
    M = (x[:, None] - x[None, :]) ** 2
    A = np.stack([random_weights(rng, n, low=0.05) for _ in lambdas], axis=1)  # (n, n_hists)
    return x, M, A, np.asarray(lambdas)


def test_lp_free_centre_is_the_fixed_support_barycenter(nx, rng):
    x, M, A, lam = _barycenter_problem(rng)
    n, m = A.shape
    b, blog = ot.lp.barycenter(A, M, weights=lam, log=True)
    bary_value = float(blog["fun"])  # the LP optimum of POT's barycenter program
    b = np.maximum(b, 0.0)
    assert abs(sum(lam[j] * ot.emd2(b / b.sum(), A[:, j], M) for j in range(m)) - bary_value) < 1e-7
    shape = (n,) * (m + 1)
    edges = [(0, j + 1) for j in range(m)]
    C = dense_pairwise_cost(shape, edges, [lam[j] * M for j in range(m)])
    a_s = [nx.array(np.ones(n) / n)] + [nx.array(A[:, j]) for j in range(m)]
    P, log = om.emot_lp(a_s, nx.array(C), free=[0], log=True)
    v = om.emot_lp2(a_s, nx.array(C), free=[0])
    assert abs(float(nx.np(v)) - bary_value) < nx.tol(1e-8)
    Pn = nx.np(P)
    for j in range(m):
        np.testing.assert_allclose(_marginal(Pn, j + 1), A[:, j], atol=nx.tol(1e-9))
    # the centre's marginal is a barycenter: its objective is the optimal value
    r0 = _marginal(Pn, 0)
    val_r0 = sum(lam[j] * ot.emd2(r0 / r0.sum(), A[:, j], M) for j in range(m))
    assert abs(val_r0 - bary_value) < nx.tol(1e-7)
    assert log["free"] == (0,) and np.all(nx.np(log["duals"][0]) == 0.0)
    # dual feasibility and strong duality with u_0 = 0
    u = [nx.np(d) for d in log["duals"]]
    S = sum(u[j + 1].reshape([n if t == j + 1 else 1 for t in range(m + 1)]) for j in range(m))
    assert np.all(S <= C + 1e-9)
    assert abs(sum(float(A[:, j] @ u[j + 1]) for j in range(m)) - bary_value) < nx.tol(1e-8)
    # without free nodes the value is larger (the centre's uniform weights are imposed)
    assert float(nx.np(om.emot_lp2(a_s, nx.array(C)))) > bary_value + 1e-4


def test_entropic_value_tends_to_lp(nx, rng):
    x, M, A, lam = _barycenter_problem(rng)
    n, m = A.shape
    lp = float(ot.lp.barycenter(A, M, weights=lam, log=True)[1]["fun"])
    cost = om.PairwiseCost.star([nx.array(lam[j] * M) for j in range(m)], center=0, free=[0])
    a_s = [None] + [nx.array(A[:, j]) for j in range(m)]
    gaps = []
    regs = [0.1, 0.01, 0.002] if not nx.float32 else [0.1, 0.01]
    for reg in regs:
        v = _quiet(om.emot_sinkhorn2, a_s, cost, reg, stopThr=1e-10, numItermax=20000)
        gaps.append(float(nx.np(v)) - lp)
    # KL(P|⊗a) >= 0 at mass one: value >= LP, and the bias is at most reg * sum(log n_i)
    for reg, gap in zip(regs, gaps):
        assert -nx.tol(1e-7) <= gap <= reg * (m + 1) * np.log(n) + nx.tol(1e-7)
    assert all(g1 > g2 for g1, g2 in zip(gaps, gaps[1:]))
    assert gaps[-1] < (0.1 if len(regs) == 3 else 0.5) * gaps[0]  # 0.128 -> 0.036 -> 0.0088 here


def test_lp_gradient_free_weights_zero(rng):
    torch = pytest.importorskip("torch")
    x, M, A, lam = _barycenter_problem(rng, n=5)
    n, m = A.shape
    C = dense_pairwise_cost((n,) * (m + 1), [(0, j + 1) for j in range(m)], [lam[j] * M for j in range(m)])
    a_s = [torch.tensor(np.ones(n) / n, requires_grad=True)] + [
        torch.tensor(A[:, j], requires_grad=True) for j in range(m)
    ]
    v = om.emot_lp2(a_s, torch.tensor(C), free=[0])
    v.backward()
    assert torch.all(a_s[0].grad == 0)
    assert float(a_s[1].grad.abs().max()) > 0


# ------------------------------------------- 4. greedy / accelerated = cyclic
@pytest.mark.parametrize("structured", [False, True])
def test_methods_agree_with_free_nodes(nx, rng, structured):
    shape = (5, 4, 6, 3)
    mats = [rng.rand(5, n) for n in shape[1:]]
    a_s = [nx.array(a) for a in _weights(rng, shape)]
    if structured:
        M = om.PairwiseCost.star([nx.array(X) for X in mats], center=0, free=[0])
        free = None
    else:
        M = nx.array(dense_pairwise_cost(shape, [(0, 1), (0, 2), (0, 3)], mats))
        free = [0]
    out = {}
    for method in METHODS:
        P, log = om.emot_sinkhorn(
            a_s, M, 0.3, method=method, free=free, stopThr=_thr(nx) * 10, numItermax=20000, log=True
        )
        assert log["converged"] and log["free"] == (0,)
        assert np.all(nx.np(log["potentials"][0]) == 0.0)
        if method != "sinkhorn_log":
            assert 0 not in log["blocks"] and set(log["blocks"]) == {1, 2, 3}
            assert all(d2 <= d1 + nx.tol(1e-12) for d1, d2 in zip(log["dual"], log["dual"][1:]))
        out[method] = nx.np(P.to_dense() if structured else P)
    for method in METHODS[1:]:
        np.testing.assert_allclose(out[method], out["sinkhorn_log"], atol=nx.tol(1e-9))


def test_relaxation_with_free_nodes(rng):
    C = rng.rand(5, 6, 4)
    a_s = _weights(rng, C.shape)
    P1 = om.emot_sinkhorn(a_s, C, 0.05, free=[2], stopThr=1e-12, numItermax=20000)
    P2, log = om.emot_sinkhorn(a_s, C, 0.05, free=[2], stopThr=1e-12, numItermax=20000, relaxation=1.5, log=True)
    assert log["n_relaxed_steps"] > 0
    np.testing.assert_allclose(P1, P2, atol=1e-10)


# ------------------------------------------- 5. gradients
def _fd(fun, x, d, h=1e-5):
    return (fun(x + h * d) - fun(x - h * d)) / (2 * h)


def _sum_zero_direction(rng, n):
    d = rng.randn(n)
    return d - d.mean()


@pytest.mark.parametrize("free", [(1,), (0, 2)])
def test_gradients_envelope_fd_autodiff(nx, rng, free):
    if not nx.is_torch or nx.float32:
        pytest.skip("gradient checks run in torch float64")
    import torch

    shape = (4, 5, 3)
    C = rng.rand(*shape)
    a_s = _weights(rng, shape)
    eps = 0.4

    def value_np(a_list, Cm):
        return float(om.emot_sinkhorn2(a_list, Cm, eps, free=free, stopThr=1e-14, numItermax=20000))

    grads = {}
    for grad in ("envelope", "autodiff"):
        at = [torch.tensor(a, requires_grad=True) for a in a_s]
        Ct = torch.tensor(C, requires_grad=True)
        v = om.emot_sinkhorn2(at, Ct, eps, free=free, grad=grad, stopThr=1e-14, numItermax=20000)
        v.backward()
        grads[grad] = ([a.grad.numpy() for a in at], Ct.grad.numpy())
    for i in range(len(shape)):
        d = _sum_zero_direction(rng, shape[i])

        def f(ai, i=i):
            return value_np([ai if j == i else a_s[j] for j in range(len(shape))], C)

        fd = _fd(f, a_s[i], d)
        for grad in ("envelope", "autodiff"):
            g = grads[grad][0][i]
            assert abs(float(g @ d) - fd) < 1e-7, (grad, i, float(g @ d), fd)
        # envelope (centred) = autodiff centred
        ge, ga = grads["envelope"][0][i], grads["autodiff"][0][i]
        np.testing.assert_allclose(ge, ga - ga.mean(), atol=1e-8)
        assert abs(ge.mean()) < 1e-12
    # the free node's gradient is -eps r_i / a_i (centred), and not zero
    _, log = om.emot_sinkhorn2(a_s, C, eps, free=free, stopThr=1e-14, log=True)
    for i in free:
        expected = -eps * log["marginals"][i] / a_s[i]
        np.testing.assert_allclose(grads["envelope"][0][i], expected - expected.mean(), atol=1e-10)
        assert np.abs(grads["envelope"][0][i]).max() > 1e-3
    D = rng.randn(*shape)
    fdC = _fd(lambda Cm: value_np(a_s, Cm), C, D)
    for grad in ("envelope", "autodiff"):
        assert abs(float(np.sum(grads[grad][1] * D)) - fdC) < 1e-7


def test_gradient_free_centre_weights_structured(nx, rng):
    if not nx.is_torch or nx.float32:
        pytest.skip("gradient checks run in torch float64")
    import torch

    shape = (6, 4, 5)
    mats = [rng.rand(6, 4), rng.rand(6, 5)]
    a_s = _weights(rng, shape)
    a_s[0][2] = 0.0  # a zero reference weight on the free centre: the derivative is still finite
    a_s[0] /= a_s[0].sum()
    eps = 0.3

    def value_np(a0):
        cost = om.PairwiseCost.star(mats, center=0, free=[0])
        return float(om.emot_sinkhorn2([a0] + a_s[1:], cost, eps, stopThr=1e-14, numItermax=20000))

    at = [torch.tensor(a, requires_grad=True) for a in a_s]
    mt = [torch.tensor(X, requires_grad=True) for X in mats]
    v = om.emot_sinkhorn2(at, om.PairwiseCost.star(mt, center=0, free=[0]), eps, stopThr=1e-14, numItermax=20000)
    v.backward()
    g0 = at[0].grad.numpy()
    assert np.all(np.isfinite(g0))
    for _ in range(2):
        d = _sum_zero_direction(rng, shape[0])
        d[2] = abs(d[2]) + 0.1  # stay in the simplex: one-sided difference where a_0 = 0
        d -= np.where(np.arange(shape[0]) == 2, 0.0, (d.sum()) / (shape[0] - 1))
        h = 1e-6
        fd = (value_np(a_s[0] + h * d) - value_np(a_s[0])) / h
        assert abs(float(g0 @ d) - fd) < 1e-5
    # dense path gives the same gradient
    at2 = [torch.tensor(a, requires_grad=True) for a in a_s]
    C = torch.tensor(dense_pairwise_cost(shape, [(0, 1), (0, 2)], mats))
    om.emot_sinkhorn2(at2, C, eps, free=[0], stopThr=1e-14, numItermax=20000).backward()
    np.testing.assert_allclose(at2[0].grad.numpy(), g0, atol=1e-9)


# ------------------------------------------- 6. rounding
def test_rounding_structured_with_free_nodes(nx, rng):
    shape = (6, 4, 5, 3)
    mats = [rng.rand(6, n) * 2 for n in shape[1:]]
    a_s = _weights(rng, shape)
    free = (0,)
    cost = om.PairwiseCost.star([nx.array(X) for X in mats], center=0, free=list(free))
    a_nx = [nx.array(a) for a in a_s]
    P = _quiet(om.emot_sinkhorn, a_nx, cost, 0.2, numItermax=2, stopThr=0)  # far from converged
    assert P.free == free and "free=(0,)" in repr(P)
    assert float(nx.np(P.marginal_error())) > 1e-3
    Y = P.round()
    assert Y.free == free and Y.is_rounded
    for i in range(1, 4):
        np.testing.assert_allclose(nx.np(Y.marginal(i)), a_s[i], atol=nx.tol(1e-12), rtol=0)
    assert float(nx.np(Y.marginal_error())) < nx.tol(1e-12) * 4
    # oracle: textbook rounding (free axis: current marginal, normalised) of the dense Gibbs tensor
    X = nx.np(P.to_dense())
    Y_ref = textbook_round(X, a_s, free)
    np.testing.assert_allclose(nx.np(Y.to_dense()), Y_ref, atol=nx.tol(1e-13))
    np.testing.assert_allclose(nx.np(Y.marginal(0)), _marginal(Y_ref, 0), atol=nx.tol(1e-13))
    # the cost of the rounded plan without forming the tensor
    C = dense_pairwise_cost(shape, cost.edges, mats)
    assert abs(float(nx.np(Y.linear_cost())) - float(np.sum(C * Y_ref))) < nx.tol(1e-12)
    # the free marginal really differs from the reference weights
    assert np.abs(_marginal(Y_ref, 0) - a_s[0]).sum() > 1e-2


def test_rounding_dense_with_free_nodes(nx, rng):
    C = rng.rand(4, 5, 3)
    a_s = _weights(rng, C.shape)
    a_nx = [nx.array(a) for a in a_s]
    P, log = _quiet(om.emot_sinkhorn, a_nx, nx.array(C), 0.1, free=[1], numItermax=2, stopThr=0, log=True)
    Y = round_dense(P, a_nx, free=log["free"])
    Y_ref = textbook_round(nx.np(P), a_s, (1,))
    np.testing.assert_allclose(nx.np(Y), Y_ref, atol=nx.tol(1e-14))
    for i in (0, 2):
        np.testing.assert_allclose(_marginal(nx.np(Y), i), a_s[i], atol=nx.tol(1e-12), rtol=0)
    assert np.all(nx.np(Y) >= 0)


# ------------------------------------------- 7. bad values
BAD = [
    ([3], ValueError, "outside"),
    ([-1], ValueError, "outside"),
    ([1, 1], ValueError, "more than once"),
    ([0, 1, 2], ValueError, "at least one"),
    ([1.0], TypeError, "integer"),
    (["a"], TypeError, "integer"),
    ([True], TypeError, "integer"),
    (1, TypeError, "sequence"),
    ("0", TypeError, "sequence"),
]


@pytest.mark.parametrize("free, exc, words", BAD, ids=[repr(b[0]) for b in BAD])
def test_bad_free(free, exc, words):
    rng = np.random.RandomState(0)
    C = rng.rand(3, 4, 5)
    calls = [
        lambda: om.emot_sinkhorn(None, C, 0.1, free=free),
        lambda: om.emot_sinkhorn2(None, C, 0.1, free=free),
        lambda: om.emot_lp(None, C, free=free),
        lambda: om.emot_lp2(None, C, free=free),
        lambda: om.empirical_emot_sinkhorn([rng.rand(n, 2) for n in (3, 4, 5)], 0.1, free=free),
        lambda: om.PairwiseCost.chain([rng.rand(3, 4), rng.rand(4, 5)], free=free),
        lambda: om.PairwiseCost.from_point_clouds([rng.rand(n, 2) for n in (3, 4, 5)], free=free),
    ]
    for call in calls:
        with pytest.raises(exc, match="free") as info:
            call()
        assert words in str(info.value)


def test_free_valid_forms(rng):
    C = rng.rand(3, 4, 5)
    v1 = om.emot_sinkhorn2(None, C, 0.5, free=np.array([2, 0]), stopThr=1e-12)
    v2 = om.emot_sinkhorn2(None, C, 0.5, free=(0, 2), stopThr=1e-12)
    v3 = om.emot_sinkhorn2(None, C, 0.5, free=range(0, 3, 2), stopThr=1e-12)
    assert v1 == v2 == v3
    _, log = om.emot_sinkhorn2(None, C, 0.5, free=[2, 0], log=True)
    assert log["free"] == (0, 2)


def test_approx_refuses_free_nodes(rng):
    C = rng.rand(3, 4, 5)
    with pytest.raises(ValueError, match="free nodes"):
        om.emot_approx(None, C, 0.1, free=[0])
    cost = om.PairwiseCost.star([rng.rand(3, 4), rng.rand(3, 5)], free=[0])
    with pytest.raises(ValueError, match="free nodes"):
        om.emot_approx(None, cost, 0.1)
    # an explicit free=() overrides the cost's free nodes
    P, c = om.emot_approx(None, cost, 0.5, free=())
    np.testing.assert_allclose(P.marginal(0), np.ones(3) / 3, atol=1e-12)
