# -*- coding: utf-8 -*-
"""Multimarginal entropic Gromov–Wasserstein: decomposition, POT, invariances, recovery, bad input."""

import warnings

import numpy as np
import ot
import pytest

from ot_multimarginal import emot_sinkhorn, match_from_plan, mgw_sinkhorn, mgw_sinkhorn2
from ot_multimarginal.costs import cost_tensor
from ot_multimarginal.gromov import gw_cross_moment, gw_linear_cost, gw_loss, gw_moment_term

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


# ---- helpers ------------------------------------------------------------------------------------
def brute_gw(X, Y, P):
    """sum_{abcd} (|x_a - x_c|^2 - |y_b - y_d|^2)^2 P_ab P_cd by the 4-index tensor."""
    L = (ot.dist(X, X)[:, None, :, None] - ot.dist(Y, Y)[None, :, None, :]) ** 2
    return np.einsum("abcd,ab,cd->", L, P, P)


def centred(X, w):
    return X - w @ X


def random_coupling(rng, p, q):
    """An exact coupling of (p, q) that is not an optimum of anything GW: converged Sinkhorn of a random cost."""
    P = ot.sinkhorn(p, q, rng.rand(len(p), len(q)), 0.3, method="sinkhorn_log", stopThr=1e-15, numItermax=100000)
    return P


def weights(rng, n):
    a = rng.rand(n) + 0.3
    return a / a.sum()


def box(rng, n, sides=(4.0, 1.0)):
    """An anisotropic 2-D shape (uniform in a rectangle): no symmetric ambiguity beyond the reflections."""
    return (rng.rand(n, 2) - 0.5) * np.asarray(sides)


def isometric_copy(rng, X, d, shift=3.0):
    """X embedded in R^d by a random orthogonal map, translated, rows permuted. Returns (Y, perm)."""
    Q, _ = np.linalg.qr(rng.randn(d, d))
    Y = np.c_[X, np.zeros((len(X), d - X.shape[1]))] @ Q + shift * rng.randn(d)
    perm = rng.permutation(len(X))
    return Y[perm], perm


def accuracy(P, perm_i, perm_j):
    """Share of the points of X_i matched to their true partner in X_j (rows permuted by perm_i, perm_j)."""
    truth = np.argsort(perm_j)[perm_i]
    return float((match_from_plan(P) == truth).mean())


def unit(X, w=None):
    w = np.full(len(X), 1.0 / len(X)) if w is None else w
    Xc = centred(X, w)
    return Xc / np.sqrt(w @ (Xc**2).sum(1))


# ---- the decomposition (random couplings, not optima) ----------------------------------------
def test_gw_loss_equals_brute_force_any_matrix(rng, nx):
    # not centred, not a coupling, different dimensions
    X, Y, P = rng.randn(6, 2) + 1.0, rng.randn(5, 4) - 2.0, rng.rand(6, 5)
    ref = brute_gw(X, Y, P)
    val = nx.np(gw_loss(nx.array(X), nx.array(Y), nx.array(P)))
    np.testing.assert_allclose(val, ref, rtol=nx.tol(1e-11))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_decomposition_k2_random_couplings(seed):
    rng = np.random.RandomState(seed)
    n, m = 7, 6
    p, q = weights(rng, n), weights(rng, m)
    X, Y = centred(rng.randn(n, 3), p), centred(rng.randn(m, 2) * [2.0, 0.5], q)
    P = random_coupling(rng, p, q)
    G = brute_gw(X, Y, P)
    A = gw_cross_moment(X, Y, P)
    S1 = gw_moment_term(X, Y, p, q)
    decomposed = S1 + 32 * np.sum(A * A) + np.sum(gw_linear_cost(X, Y, A) * P)
    assert abs(decomposed - G) <= 1e-10 * max(1.0, abs(G))
    # for any A: G = S1 + 32|A|^2 + <c_A, P> - 32 |A - A_P|^2 (A_P is the minimiser)
    B = rng.randn(3, 2)
    other = S1 + 32 * np.sum(B * B) + np.sum(gw_linear_cost(X, Y, B) * P) - 32 * np.sum((B - A) ** 2)
    assert abs(other - G) <= 1e-10 * max(1.0, abs(G))
    assert other + 32 * np.sum((B - A) ** 2) > G  # the bound is strict away from A_P


@pytest.mark.parametrize("graph, k", [("complete", 3), ("circle", 4)])
def test_decomposition_each_edge_k_ge_3(graph, k):
    from ot_multimarginal.costs.graph import graph_edges

    rng = np.random.RandomState(k)
    sizes, dims = (4, 5, 3, 4)[:k], (2, 3, 1, 4)[:k]
    a_s = [weights(rng, n) for n in sizes]
    X_s = [centred(rng.randn(n, d), a) for n, d, a in zip(sizes, dims, a_s)]
    # a random k-way coupling: converged Sinkhorn of a random dense cost
    Pk = emot_sinkhorn(a_s, rng.rand(*sizes), 0.5, stopThr=1e-14, numItermax=100000)
    for i, j in graph_edges(graph, k):
        axes = tuple(t for t in range(k) if t not in (i, j))
        Pij = Pk.sum(axis=axes) if i < j else Pk.sum(axis=axes).T
        G = brute_gw(X_s[i], X_s[j], Pij)
        A = gw_cross_moment(X_s[i], X_s[j], Pij)
        dec = (
            gw_moment_term(X_s[i], X_s[j], a_s[i], a_s[j])
            + 32 * np.sum(A * A)
            + np.sum(gw_linear_cost(X_s[i], X_s[j], A) * Pij)
        )
        assert abs(dec - G) <= 1e-10 * max(1.0, abs(G)), (i, j)
        assert abs(gw_loss(X_s[i], X_s[j], Pij) - G) <= 1e-10 * max(1.0, abs(G))


# ---- k = 2 against POT --------------------------------------------------------------------------
def _pot_problem(seed=0, n=15):
    rng = np.random.RandomState(seed)
    X = unit(box(rng, n))
    Y, perm = isometric_copy(rng, X, 3, shift=1.0)
    Y = unit(Y + 0.1 * rng.randn(*Y.shape))
    return X, Y


@pytest.mark.parametrize("eps, seed", [(5.0, 0), (5.0, 2)])
def test_k2_plan_and_values_equal_pot(eps, seed):
    X, Y = _pot_problem(seed)
    n = len(X)
    p = q = ot.unif(n)
    C1, C2 = ot.dist(X, X), ot.dist(Y, Y)
    v, log = mgw_sinkhorn2(
        [X, Y],
        eps,
        normalize=None,
        init="zero",
        stopThr=1e-14,
        stopThrInner=1e-13,
        numItermax=300,
        numItermaxInner=20000,
        log=True,
        warn=False,
    )
    T, lt = ot.gromov.entropic_gromov_wasserstein(
        C1, C2, p, q, "square_loss", epsilon=eps, tol=1e-13, max_iter=300, stopThr=1e-13, numItermax=20000, log=True
    )
    P = log["pairwise_plans"][(0, 1)]
    np.testing.assert_allclose(P, T, atol=1e-9)
    np.testing.assert_allclose(log["pairwise_plans"][(1, 0)], T.T, atol=1e-9)
    # value_quad = entropic_gromov_wasserstein2 (G(T), no entropy)
    assert abs(log["value_quad"] - lt["gw_dist"]) <= 1e-9 * abs(lt["gw_dist"])
    # value = G + eps KL(P | p x q) = solve_gromov(...).value - eps (sum p log p + sum q log q)
    sg = ot.solve_gromov(C1, C2, a=p, b=q, reg=eps, tol=1e-13, max_iter=300)
    # (solve_gromov's inner Sinkhorn keeps its own default iteration cap: agreement to its accuracy)
    assert abs(v - (sg.value + eps * np.log(n * n))) <= 1e-6 * abs(v)
    assert log["converged"]


def test_k2_joint_normalisation_is_pot_with_scaled_eps():
    rng = np.random.RandomState(3)
    X = box(rng, 12) * 3.0 + 5.0
    Y, _ = isometric_copy(rng, X, 4)
    Y = Y + 0.1 * rng.randn(*Y.shape)
    eps = 3.0
    v, log = mgw_sinkhorn2(
        [X, Y],
        eps,
        normalize="joint",
        init="zero",
        stopThr=1e-14,
        stopThrInner=1e-13,
        numItermax=300,
        numItermaxInner=20000,
        log=True,
        warn=False,
    )
    s = float(log["scales"][0])
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    assert np.isclose(s**2, 0.5 * ((Xc**2).sum(1).mean() + (Yc**2).sum(1).mean()))
    T, lt = ot.gromov.entropic_gromov_wasserstein(
        ot.dist(X, X),
        ot.dist(Y, Y),
        epsilon=eps * s**4,
        tol=1e-13,
        max_iter=300,
        stopThr=1e-13,
        numItermax=20000,
        log=True,
    )
    np.testing.assert_allclose(log["pairwise_plans"][(0, 1)], T, atol=1e-9)
    assert abs(log["value_quad"] * s**4 - lt["gw_dist"]) <= 1e-8 * lt["gw_dist"]
    assert abs(log["value_original"] - v * s**4) <= 1e-12 * abs(v * s**4)


def test_k2_small_eps_where_pot_underflows():
    """POT's non-log Sinkhorn loses the plan's mass at small eps; ours stays a coupling at a GW fixed point."""
    X, Y = _pot_problem(seed=1, n=12)
    n = len(X)
    p = q = ot.unif(n)
    C1, C2 = ot.dist(X, X), ot.dist(Y, Y)
    eps = 0.05
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        T = ot.gromov.entropic_gromov_wasserstein(C1, C2, p, q, "square_loss", epsilon=eps)
    assert T.sum() < 1e-50  # the case this test is about: POT's plan underflowed (mass 2e-104, no error)
    v, log = mgw_sinkhorn2([X, Y], eps, normalize=None, init="zero", stopThr=1e-10, stopThrInner=1e-11, log=True)
    P = log["pairwise_plans"][(0, 1)]
    assert np.isfinite(v) and log["converged"]
    np.testing.assert_allclose(P.sum(1), p, atol=1e-10)
    np.testing.assert_allclose(P.sum(0), q, atol=1e-10)
    # a fixed point of POT's map P = Sinkhorn(grad G(P), eps): log P + grad/eps = f(a) + g(b) (no solve needed),
    # checked by least squares on the entries that float64 holds (others are below 1e-308)
    constC, hC1, hC2 = ot.gromov.init_matrix(C1, C2, p, q, "square_loss")
    grad = ot.gromov.gwggrad(constC, hC1, hC2, P)
    rows, cols = np.nonzero(P > 1e-250)
    assert len(rows) >= 3 * n
    design = np.zeros((len(rows), 2 * n))
    design[np.arange(len(rows)), rows] = 1.0
    design[np.arange(len(rows)), n + cols] = 1.0
    target = np.log(P[rows, cols]) + grad[rows, cols] / eps
    fg = np.linalg.lstsq(design, target, rcond=None)[0]
    assert np.abs(design @ fg - target).max() <= 1e-6 * np.abs(grad / eps).max()  # grad/eps reaches ~1e3


# ---- invariances ---------------------------------------------------------------------------------
def _three(rng, n=14):
    X = box(rng, n)
    X1, _ = isometric_copy(rng, X, 3)
    X2, _ = isometric_copy(rng, X, 2)
    noise = [0.05 * rng.randn(*Z.shape) for Z in (X, X1, X2)]
    return [X + noise[0], X1 + noise[1], X2 + noise[2]]


@pytest.mark.parametrize("transform", ["rotate", "reflect", "translate", "embed"])
def test_invariance_to_isometries_of_one_dataset(transform):
    rng = np.random.RandomState(5)
    X_s = _three(rng, n=10)
    kw = dict(init="zero", stopThr=1e-10, stopThrInner=1e-9, numItermaxInner=20000, log=True, warn=False)
    v0, log0 = mgw_sinkhorn2(X_s, 2.0, **kw)
    Z = X_s[1]
    if transform == "rotate":
        Q, _ = np.linalg.qr(rng.randn(3, 3))
        Z = Z @ (Q if np.linalg.det(Q) > 0 else -Q)
    elif transform == "reflect":
        Z = Z * np.array([1.0, -1.0, 1.0])
    elif transform == "translate":
        Z = Z + np.array([10.0, -3.0, 7.0])
    else:
        Q, _ = np.linalg.qr(rng.randn(6, 6))
        Z = np.c_[Z, np.zeros((len(Z), 3))] @ Q
    v1, log1 = mgw_sinkhorn2([X_s[0], Z, X_s[2]], 2.0, **kw)
    assert abs(v1 - v0) <= 1e-7 * abs(v0)
    for e in log0["edges"]:
        np.testing.assert_array_equal(
            match_from_plan(log0["pairwise_plans"][e]), match_from_plan(log1["pairwise_plans"][e])
        )
        np.testing.assert_allclose(log0["pairwise_plans"][e], log1["pairwise_plans"][e], atol=1e-7)


# ---- recovery --------------------------------------------------------------------------------------
def _recovery_problem(seed, n, noise):
    rng = np.random.RandomState(seed)
    X = box(rng, n)
    X_s, perms = [], []
    for d in (2, 3, 5):
        Q, _ = np.linalg.qr(rng.randn(d, d))
        Y = np.c_[X, np.zeros((n, d - 2))] @ Q + 3 * rng.randn(d)
        perm = rng.permutation(n)
        Y = Y[perm]
        X_s.append(Y + noise * rng.randn(*Y.shape))
        perms.append(perm)
    return X_s, perms


def test_recovery_isometric_copies_in_dims_2_3_5():
    X_s, perms = _recovery_problem(140, 40, 0.0)  # the n = 40 case of bench/bench_mgw.py
    v, log = mgw_sinkhorn2(X_s, 0.1, init="zero", log=True)  # default tolerances: no warning (errors in CI)
    assert log["converged"]
    for i, j in log["edges"]:
        acc = accuracy(log["pairwise_plans"][(i, j)], perms[i], perms[j])
        assert acc >= 0.95, ((i, j), acc)
    obj, tol = np.asarray(log["objective"]), np.asarray(log["inner_tol"])
    assert np.all(np.diff(obj) <= 10 * np.maximum(tol[1:], tol[:-1]) * np.abs(obj[1:]))  # monotone to the inner tol


def test_recovery_with_noise_reports_accuracy(capsys):
    X_s, perms = _recovery_problem(1, 40, 0.05)
    v, log = mgw_sinkhorn2(X_s, 0.1, init="zero", log=True)
    accs = [accuracy(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) for e in log["edges"]]
    with capsys.disabled():
        print("\n[mgw recovery, noise 0.05, n=40, reg=0.1] accuracy per edge:", ["%.2f" % a for a in accs])
    assert min(accs) >= 0.5  # far above chance (1/20)


def test_objective_is_monotone_and_auto_keeps_best_start():
    rng = np.random.RandomState(2)
    X_s = _three(rng, n=8)[:2]
    v, log = mgw_sinkhorn2(
        X_s,
        2.0,
        init="auto",
        n_screen=2,
        max_candidates=3,
        stopThrInner=1e-9,
        stopThr=1e-13,
        numItermax=20,
        numItermaxInner=20000,
        log=True,
        warn=False,
    )
    obj, tol = np.asarray(log["objective"]), np.asarray(log["inner_tol"])
    # monotone for exact inner solves: an increase is bounded by the inner solves' marginal errors
    assert np.all(np.diff(obj) <= 10 * np.maximum(tol[1:], tol[:-1]) * np.abs(obj[1:]))
    tight = tol[1:] <= 1e-9
    assert tight.sum() >= 2 and np.all(np.diff(obj)[tight] <= 1e-8 * np.abs(obj[1:][tight]))
    names = [c[0] for c in log["candidates"]]
    assert names[0] == "zero" and len(names) == 1 + 3  # A = 0 and 3 of the 4 sign choices (2 axes, 1 free node)
    best = min(log["candidates"], key=lambda c: c[1])
    assert log["init"] == best[0]
    assert v <= best[1] * (1 + 1e-8)


# ---- backends, weights, different sizes -------------------------------------------------------------
def test_backends_weights_and_sizes(nx):
    rng = np.random.RandomState(4)
    X_s = [rng.randn(8, 2), rng.randn(6, 3), rng.randn(7, 1)]
    a_s = [weights(rng, len(X)) for X in X_s]
    kw = dict(init="zero", stopThrInner=1e-7, numItermaxInner=20000, log=True, warn=False)
    v_ref, log_ref = mgw_sinkhorn2(X_s, 2.0, a_s=a_s, **kw)
    plan, log = mgw_sinkhorn([nx.array(X) for X in X_s], 2.0, a_s=[nx.array(a) for a in a_s], **kw)
    v = log["value"]
    assert log["plan"] is plan
    if nx.is_torch:
        assert isinstance(v, torch.Tensor) and v.dtype == nx.dtype and v.device == nx.device
        assert log["A"][(0, 1)].dtype == nx.dtype
    assert abs(nx.np(v) - v_ref) <= nx.tol(1e-6) * 10 * abs(v_ref)
    for e in log["edges"]:
        P = nx.np(log["pairwise_plans"][e])
        i, j = e
        np.testing.assert_allclose(P.sum(1), a_s[i], atol=nx.tol(1e-6) * 10)
        np.testing.assert_allclose(P, log_ref["pairwise_plans"][e], atol=nx.tol(1e-6) * 10)
        assert tuple(log["A"][e].shape) == (X_s[i].shape[1], X_s[j].shape[1])
    assert log["plan"].shape == (8, 6, 7)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_value_differentiable_in_clouds():
    rng = np.random.RandomState(6)
    X = torch.tensor(rng.randn(8, 2), requires_grad=True)
    Y = torch.tensor(rng.randn(7, 3))
    v = mgw_sinkhorn2([X, Y], 2.0, init="zero", warn=False)
    v.backward()
    assert X.grad is not None and torch.isfinite(X.grad).all()
    # GW is translation invariant: the gradient sums to zero over the points
    assert torch.allclose(X.grad.sum(0), torch.zeros(2, dtype=X.dtype), atol=1e-8)


def test_match_from_plan():
    P = np.array([[0.1, 0.3, 0.0], [0.2, 0.0, 0.1], [0.0, 0.0, 0.3]])
    np.testing.assert_array_equal(match_from_plan(P), [1, 0, 2])
    S = match_from_plan(P, soft=True)
    np.testing.assert_allclose(S.sum(1), 1.0)
    np.testing.assert_allclose(S[0], [0.25, 0.75, 0.0])
    with pytest.raises(ValueError, match="2-D"):
        match_from_plan(np.ones(3))


# ---- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        (dict(reg=-1.0), ValueError, "reg"),
        (dict(normalize="unit"), ValueError, "normalize"),
        (dict(init="random"), ValueError, "init"),
        (dict(init=[np.zeros((2, 2))]), ValueError, "init"),
        (dict(init=[np.zeros((3, 3))]), ValueError, r"init\[0\]"),
        (dict(graph="circle", X_s="two"), ValueError, "circle"),
        (dict(graph=[(0, 0)]), ValueError, "self-loop"),
        (dict(a_s=[np.ones(3) / 3, None]), ValueError, r"a_s\[0\]"),
        (dict(n_screen=0), ValueError, "n_screen"),
        (dict(numItermax=-1), ValueError, "numItermax"),
    ],
)
def test_bad_input(kwargs, exc, msg):
    rng = np.random.RandomState(0)
    X_s = [rng.randn(5, 2), rng.randn(4, 3)]
    if kwargs.get("X_s") == "two":
        kwargs = dict(kwargs)
        del kwargs["X_s"]
    kwargs.setdefault("reg", 1.0)
    reg = kwargs.pop("reg")
    with pytest.raises(exc, match=msg):
        mgw_sinkhorn2(X_s, reg, **kwargs)


def test_bad_clouds():
    rng = np.random.RandomState(0)
    with pytest.raises(TypeError, match="X_s"):
        mgw_sinkhorn2(rng.randn(5, 2), 1.0)
    with pytest.raises(ValueError, match="at least 2"):
        mgw_sinkhorn2([rng.randn(5, 2)], 1.0)
    with pytest.raises(ValueError, match=r"X_s\[1\].*2-D"):
        mgw_sinkhorn2([rng.randn(5, 2), rng.randn(5)], 1.0)
    with pytest.raises(ValueError, match=r"X_s\[1\].*zero spread"):
        mgw_sinkhorn2([rng.randn(5, 2), np.ones((4, 3))], 1.0)
    with pytest.raises(TypeError, match="real"):
        mgw_sinkhorn2([rng.randn(5, 2), np.ones((4, 3), dtype=complex)], 1.0)
    # integer clouds are cast to float64 (as ot.dist does), mixed float dtypes to the widest
    Xi = rng.randint(0, 5, size=(4, 3))
    X0 = rng.randn(5, 2)
    v_int = mgw_sinkhorn2([X0, Xi], 1.0, init="zero")
    assert v_int.dtype == np.float64 and np.isclose(v_int, mgw_sinkhorn2([X0, Xi.astype(float)], 1.0, init="zero"))
    assert mgw_sinkhorn2([X0, Xi.astype(np.float32)], 1.0, init="zero").dtype == np.float64
    with pytest.raises(ValueError, match="NaN"):
        mgw_sinkhorn2([rng.randn(5, 2), np.full((4, 3), np.nan)], 1.0)


def test_pairwise_cost_of_gw_is_the_dense_sum():
    """The EMOT solved inside is the pairwise sum of c_A on the graph (the same cost as cost_tensor with callables)."""
    rng = np.random.RandomState(8)
    X_s = [unit(rng.randn(4, 2)), unit(rng.randn(3, 3)), unit(rng.randn(5, 2))]
    v, log = mgw_sinkhorn2(
        X_s,
        2.0,
        init="zero",
        normalize=None,
        stopThrInner=1e-12,
        numItermaxInner=50000,
        log=True,
        warn=False,
        stopThr=1e-12,
    )
    A = log["A"]
    metrics = [lambda U, V, e=e: gw_linear_cost(U, V, A[e]) for e in log["edges"]]
    C = cost_tensor([X - X.mean(0) for X in X_s], metric=metrics)
    P = emot_sinkhorn(None, C, 2.0, stopThr=1e-12, numItermax=50000)
    for e in log["edges"]:
        axes = tuple(t for t in range(3) if t not in e)
        Pe = P.sum(axis=axes) if e[0] < e[1] else P.sum(axis=axes).T
        # the last A is half the cross-moment of the last plan: one more solve moves it by the outer tolerance only
        np.testing.assert_allclose(Pe, log["pairwise_plans"][e], atol=1e-5)


# ---- the one alternation (ot_multimarginal._gw_alternation) -----------------------------------------
def _gw_problem(seed=0, alpha=1.0, features=False, reg=0.5):
    from ot.backend import get_backend

    from ot_multimarginal._gw_alternation import GWProblem

    rng = np.random.RandomState(seed)
    X_s = [unit(rng.randn(9, 2)), unit(rng.randn(8, 3))]
    a_s = [ot.unif(9), ot.unif(8)]
    F_s = [rng.randn(9, 2), rng.randn(8, 2)] if features else None
    return GWProblem(get_backend(X_s[0]), X_s, a_s, [(0, 1)], reg, alpha=alpha, F_s=F_s)


def test_alternation_objective_is_the_plan_objective_and_monotone():
    from ot_multimarginal._gw_alternation import Alternation, SinkhornInner

    pr = _gw_problem(alpha=0.6, features=True)
    run = Alternation(pr, SinkhornInner(pr, stopThr=1e-11), pr.zero_A(), "zero").run(50, 1e-10)
    assert run.converged and run.niter >= 3
    P = run.solver.pairwise_plans(run.best["pot"])[0]
    X, Y = pr.X_s
    p, q = pr.a_s
    M = ot.dist(*pr.F_s)
    kl = np.sum(P * np.log(P / np.outer(p, q)))
    phi = 0.6 * brute_gw(X, Y, P) + 0.4 * np.sum(M * P) + 0.5 * kl  # the objective, by hand
    assert abs(run.best["obj"] - phi) <= 1e-9 * abs(phi)
    np.testing.assert_allclose(run.best["A_P"][0], 0.5 * X.T @ P @ Y, atol=1e-14)
    h = np.asarray(run.history)
    assert np.all(np.diff(h) <= 1e-9 * np.abs(h[1:]))
    assert run.err[-1] <= 1e-10 and all(run.accepted)
    assert run.marg_err[-1] <= 1e-10


def test_alternation_damping_rejects_a_rising_step_and_keeps_the_best():
    """An inexact inner solver (here: a wrong cost from the third solve on) is rejected, damped, then stopped."""
    from ot_multimarginal._gw_alternation import Alternation, SinkhornInner

    pr = _gw_problem(seed=1)
    bad = [np.full((2, 3), 0.4)]

    class Unreliable(SinkhornInner):
        calls = 0

        def solve(self, cost, warm_start=None, tol=None):
            Unreliable.calls += 1
            if Unreliable.calls >= 3:
                cost = self.problem.cost(bad)  # a plan that has nothing to do with the A asked for
            return super().solve(cost, warm_start, tol)

    run = Alternation(pr, Unreliable(pr), pr.zero_A(), "zero", damping=2).run(20, 1e-12)
    assert run.stopped and not run.converged
    assert run.accepted == [True, True, False, False, False]
    assert run.best["step"] == 2 and run.best["obj"] == min(run.history)
    assert max(run.history[2:]) > run.best["obj"]
    # the damped steps went back towards the best iterate: A = A_best + theta (A_P_best - A_best), theta = 1/4
    b = run.best
    np.testing.assert_allclose(run.A[0], b["A"][0] + 0.25 * (b["A_P"][0] - b["A"][0]))


def test_run_starts_never_drops_the_product_plan_start():
    from ot_multimarginal._gw_alternation import SinkhornInner, run_starts

    pr = _gw_problem(seed=2, reg=0.3)
    rng = np.random.RandomState(0)
    starts = [("zero", pr.zero_A())] + [("r%d" % t, [0.5 * rng.randn(2, 3)]) for t in range(6)]
    best, screened = run_starts(pr, lambda: SinkhornInner(pr), starts, 100, 1e-8, n_screen=1)
    steps = dict((name, n) for name, _, n in screened)
    assert steps["zero"] > 4  # run to convergence, though it may rank low after one step
    assert sorted(steps.values())[:3] == [1, 1, 1]  # three of the six others dropped after one step
    assert best.best["obj"] == min(obj for _, obj, _ in screened)


def test_problem_cost_on_augmented_clouds():
    from ot_multimarginal.gromov import gw_separable_terms

    pr = _gw_problem(seed=3, alpha=0.3, features=True)
    A = [np.random.RandomState(0).randn(2, 3) * 0.1]
    X, Y = pr.X_s
    C = pr.cost(A).pairwise_cost(pr.Z_s).matrices[0]
    np.testing.assert_allclose(C, 0.3 * gw_linear_cost(X, Y, A[0]) + 0.7 * ot.dist(*pr.F_s), rtol=1e-12)
    Cs = pr.cost(A, separable=True).pairwise_cost(pr.Z_s).matrices[0]
    hx, hy = gw_separable_terms(X, Y, A[0])
    np.testing.assert_allclose(Cs - C, 0.3 * (hx[:, None] + hy[None, :]), rtol=1e-12, atol=1e-12)
    assert np.isclose(pr.separable_mean(A), 0.3 * (pr.a_s[0] @ hx + pr.a_s[1] @ hy))
    # a batch of rows gives the rows of the matrix
    C2 = pr.cost(A).matrices([pr.Z_s[0][:4], pr.Z_s[1][2:5]])[0]
    np.testing.assert_allclose(C2, C[:4, 2:5], rtol=1e-12)


def test_float32_runs_the_float64_iterations():
    """Inner solves in float64 for float32 input: the same steps, the value in float32 (issue #22: no stalls)."""
    rng = np.random.RandomState(11)
    X_s = [rng.randn(10, 2), rng.randn(10, 3)]
    v64, l64 = mgw_sinkhorn2(X_s, 0.1, log=True)
    v32, l32 = mgw_sinkhorn2([X.astype(np.float32) for X in X_s], 0.1, log=True)
    assert v32.dtype == np.float32 and l32["pairwise_plans"][(0, 1)].dtype == np.float32
    assert l32["niter"] == l64["niter"] and l32["inner_niter"] == l64["inner_niter"] and l32["converged"]
    assert abs(float(v32) - float(v64)) <= 1e-5 * abs(float(v64))
    P = mgw_sinkhorn([X.astype(np.float32) for X in X_s], 0.1, init="zero")
    assert P.pairwise_marginal(0, 1).dtype == np.float32


def _triangle_problem(n=12, reg=0.2, seed=3):
    from ot.backend import get_backend

    from ot_multimarginal._gw_alternation import GWProblem

    rng = np.random.RandomState(seed)
    Z = rng.randn(n, 2) * [2.0, 0.7]
    X_s = []
    for d in (2, 3, 4):
        Q, _ = np.linalg.qr(rng.randn(d, d))
        E = np.zeros((n, d))
        E[:, :2] = Z
        X_s.append(unit(E @ Q.T)[rng.permutation(n)])
    return GWProblem(get_backend(X_s[0]), X_s, [ot.unif(n)] * 3, [(0, 1), (0, 2), (1, 2)], reg)


def test_entropy_from_pairwise_plans_is_the_log_domain_one():
    """The entropy term from the pairwise plans (scaled products) equals value - <C, P> by the log-domain products."""
    from ot_multimarginal._gw_alternation import Alternation, SinkhornInner

    pr = _triangle_problem()
    solver = SinkhornInner(pr, stopThr=1e-10)
    run = Alternation(pr, solver, pr.zero_A(), "zero").run(3, 1e-12)
    pot = run.best["pot"]
    fast = solver.entropy(pot, solver.pairwise_plans(pot))
    exact = float(pot.value()) - float(pot.linear_cost())  # the oracle: log-domain <C, P>
    assert abs(fast - exact) <= 1e-10 * max(1.0, abs(exact))
    assert fast > 0.0  # a KL term of a plan that is not the product


def test_far_warm_start_goes_through_the_short_continuation():
    """A warm start whose marginals are far off (another A) still gives a solve converged to the tolerance."""
    from ot_multimarginal._gw_alternation import WARM_MAX_ERROR, SinkhornInner

    pr = _triangle_problem(reg=0.1)
    solver = SinkhornInner(pr, stopThr=1e-9)
    pot0 = solver.solve(pr.cost(pr.zero_A()))
    rng = np.random.RandomState(0)
    A1 = [0.3 * rng.randn(pr.dims[i], pr.dims[j]) for i, j in pr.edges]
    from ot_multimarginal._gw_alternation import Potentials

    pc = pr.cost(A1).pairwise_cost(pr.Z_s)
    far = Potentials(pc.make_engine(pr.reg), list(pot0), pr.a_s).normalized()
    assert solver.marginal_error(far) * pr.k > WARM_MAX_ERROR  # the case: the gate sends it through the continuation
    pot = solver.solve(pr.cost(A1), warm_start=pot0, tol=1e-9)
    assert solver.last_log["converged"] and solver.marginal_error(pot) <= 1e-8
    cold = solver.solve(pr.cost(A1), tol=1e-9)  # the oracle: the cold solve (full continuation)
    np.testing.assert_allclose(solver.evaluate(pot)["obj"], solver.evaluate(cold)["obj"], rtol=1e-8)


# ---- k >= 3 default start: the principal-axes signs picked edge by edge (issue #22, speed) ------------------
def _copies_problem(graph_edges_, k=3, n=20, reg=0.2, seed=5):
    """GWProblem of k isometric copies of an anisotropic 2-D cloud (distinct variances) and the true A per edge."""
    from ot.backend import get_backend

    from ot_multimarginal._gw_alternation import GWProblem

    rng = np.random.RandomState(seed)
    Z = rng.randn(n, 2) * [2.0, 0.7]
    X_s, inv = [], []
    for d in (2, 3, 4, 5)[:k]:
        Q, _ = np.linalg.qr(rng.randn(d, d))
        E = np.zeros((n, d))
        E[:, :2] = Z
        p = rng.permutation(n)
        X_s.append(unit(E @ Q.T + rng.randn(d))[p])
        inv.append(np.argsort(p))  # point z of Z is row inv[z] of X_s[i]
    truth = []
    for i, j in graph_edges_:
        P = np.zeros((n, n))
        P[inv[i], inv[j]] = 1.0 / n
        truth.append(gw_cross_moment(X_s[i], X_s[j], P))
    return GWProblem(get_backend(X_s[0]), X_s, [ot.unif(n)] * k, graph_edges_, reg), truth


@pytest.mark.parametrize(
    "k, edges", [(3, [(0, 1), (0, 2), (1, 2)]), (4, [(0, 1), (1, 2), (2, 3)]), (4, [(1, 2), (0, 3), (2, 3)])]
)
def test_pairwise_pca_start_finds_the_true_alignment(k, edges):
    """On isometric copies the principal-axes start with the right signs is the A of the true matching.

    The signs are chosen per edge of a spanning tree on two-cloud problems and multiplied along its paths (chain
    and a graph whose BFS tree from node 0 runs 0-3-2-1); of the 2^(2(k-1)) sign choices exactly one is right.
    """
    from ot_multimarginal._gw_alternation import SinkhornInner
    from ot_multimarginal.gromov import _pca_candidates, _spanning_tree, pairwise_pca_start

    pr, truth = _copies_problem(edges, k=k)
    tree = _spanning_tree(pr.edges, k)
    assert len(tree) == k - 1 and sorted(set(v for e in tree for v in e)) == list(range(k))
    A, info = pairwise_pca_start(pr, lambda prob: SinkhornInner(prob, stopThr=1e-9), 2, 2)
    assert [d["edge"] for d in info] == tree
    for Ae, Te in zip(A, truth):
        np.testing.assert_allclose(Ae, Te, atol=1e-10 * np.abs(Te).max())
    # the oracle discriminates: every other sign choice is far from the truth
    cands = _pca_candidates(pr.nx, pr.X_s, pr.a_s, pr.edges, 2, 10**6, None)
    dist = [max(np.abs(Ae - Te).max() / np.abs(Te).max() for Ae, Te in zip(C, truth)) for C in cands]
    assert len(cands) == 4 ** (k - 1) and sum(d < 1e-8 for d in dist) == 1 and sorted(dist)[1] > 0.1


def test_pairwise_pca_start_screens_large_clouds_on_a_subset(monkeypatch):
    """Clouds above SCREEN_MAX_POINTS: the sign screen runs on a fixed random subset of each cloud (smaller
    two-cloud problems) and still finds the true alignment (oracle: the A of the true matching)."""
    import ot_multimarginal.gromov as G
    from ot_multimarginal._gw_alternation import SinkhornInner

    edges = [(0, 1), (0, 2), (1, 2)]
    pr, truth = _copies_problem(edges, n=60)
    sizes = []

    def factory(prob):
        sizes.append(prob.shape)
        return SinkhornInner(prob, stopThr=1e-9)

    monkeypatch.setattr(G, "SCREEN_MAX_POINTS", 40)
    A, info = G.pairwise_pca_start(pr, factory, 2, 2)
    assert sizes and all(s == (40, 40) for s in sizes)
    for Ae, Te in zip(A, truth):
        np.testing.assert_allclose(Ae, Te, atol=1e-10 * np.abs(Te).max())
    monkeypatch.setattr(G, "SCREEN_MAX_POINTS", 10**6)
    sizes.clear()
    A_full, info_full = G.pairwise_pca_start(pr, factory, 2, 2)
    assert all(s == (60, 60) for s in sizes)
    assert [d["signs"].tolist() for d in info] == [d["signs"].tolist() for d in info_full]


def test_default_k3_starts_and_merge_into_the_same_fixed_point():
    """Default at k = 3: two starts ('zero' and the pairwise-signed principal axes); 'zero' stops once it reaches
    the other's fixed point. Oracle: every start of init='pca' (all 16 sign choices) and init='zero' run alone."""
    X_s, perms = _recovery_problem(3, 24, 0.0)
    kw = dict(log=True, warn=False)
    v, log = mgw_sinkhorn2(X_s, 0.1, **kw)
    assert [c[0] for c in log["candidates"]] == ["zero", "pca-pairs"]
    v_zero, log_zero = mgw_sinkhorn2(X_s, 0.1, init="zero", **kw)
    v_pca, log_pca = mgw_sinkhorn2(X_s, 0.1, init="pca", **kw)
    assert float(v) <= min(float(v_zero), float(v_pca)) * (1 + 1e-9)
    for i, j in log["edges"]:
        assert accuracy(log["pairwise_plans"][(i, j)], perms[i], perms[j]) >= 0.95


def test_run_starts_merge_stops_a_start_at_a_fixed_point_already_reached():
    """merge > 0: the protected start runs last, its first solve warm from the finished finalist's potentials, and
    stops once its A is within merge of a converged finalist's."""
    from ot_multimarginal._gw_alternation import SinkhornInner, run_starts

    edges = [(0, 1), (0, 2), (1, 2)]
    pr, truth = _copies_problem(edges, n=16, reg=0.1)
    starts = [("zero", pr.zero_A()), ("true", truth)]
    solvers = []

    class Counting(SinkhornInner):
        def solve(self, *args, **kwargs):
            pot = super().solve(*args, **kwargs)
            self.niters.append(self.last_log["niter"])
            return pot

    def factory():
        solvers.append(Counting(pr, stopThr=1e-9))
        solvers[-1].niters = []
        return solvers[-1]

    full, s_full = run_starts(pr, factory, starts, 100, 1e-7)
    zero_full = solvers[0].niters
    merged, s_merged = run_starts(pr, factory, starts, 100, 1e-7, merge=1e-3)
    zero_merged = solvers[2].niters
    assert zero_merged[0] < zero_full[0]  # the first solve warm (the same cost A = 0)
    steps_full, steps_merged = dict((a, c) for a, _, c in s_full), dict((a, c) for a, _, c in s_merged)
    assert full.best["obj"] == pytest.approx(dict((a, b) for a, b, _ in s_full)["zero"], rel=1e-9)  # same point
    assert steps_merged["zero"] < steps_full["zero"] and steps_merged["true"] == steps_full["true"]
    assert merged.name == "true" and merged.best["obj"] == pytest.approx(full.best["obj"], rel=1e-9)
