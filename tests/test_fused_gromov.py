# -*- coding: utf-8 -*-
"""Multimarginal fused Gromov-Wasserstein (mgw_sinkhorn with Y_s, alpha): POT, the limits alpha = 0 and 1, backends."""

import numpy as np
import ot
import pytest

import ot_multimarginal as om
from ot_multimarginal import mgw_sinkhorn, mgw_sinkhorn2

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

TIGHT = dict(stopThr=1e-13, stopThrInner=1e-13, numItermax=500, numItermaxInner=20000, warn=False)


def _centred(X):
    return X - X.mean(0)


def _data(seed=0, n=12, m=10, f=2):
    rng = np.random.RandomState(seed)
    X, Y = _centred(rng.randn(n, 2)), _centred(rng.randn(m, 3) * [1.5, 1.0, 0.5])
    F, G = rng.randn(n, f), rng.randn(m, f)
    return X, Y, F, G


@pytest.mark.parametrize(
    "alpha, eps, n",
    [
        (0.5, 2.0, 7),
        pytest.param(0.5, 1.0, 12, marks=pytest.mark.slow),  # POT's non-log Sinkhorn: 3-9 s each
        pytest.param(0.2, 0.5, 12, marks=pytest.mark.slow),
        pytest.param(0.8, 2.0, 12, marks=pytest.mark.slow),
    ],
)
def test_k2_fused_plan_and_values_equal_pot(alpha, eps, n):
    """From the same start (the product plan), POT's entropic FGW iteration is the alternation: same plan."""
    X, Y, F, G = _data(n=n, m=n - 2)
    p, q = ot.unif(len(X)), ot.unif(len(Y))
    M, C1, C2 = ot.dist(F, G), ot.dist(X, X), ot.dist(Y, Y)
    _, l2 = ot.gromov.entropic_fused_gromov_wasserstein2(
        M, C1, C2, p, q, "square_loss", epsilon=eps, alpha=alpha, max_iter=1000, tol=1e-14, log=True,
        stopThr=1e-14, numItermax=20000,
    )  # fmt: skip
    T = l2["T"]
    v, log = mgw_sinkhorn2([X, Y], eps, Y_s=[F, G], alpha=alpha, normalize=None, init="zero", log=True, **TIGHT)
    assert log["converged"] and log["alpha"] == alpha
    P = log["pairwise_plans"][(0, 1)]
    np.testing.assert_allclose(P, T, atol=1e-11)
    # POT's split of its (unregularised) value: value_linear = (1 - alpha) <M, T>, value_quad = alpha GW(T)
    assert abs(log["value_linear"] - l2["lin_loss"]) <= 1e-9 * abs(l2["lin_loss"])
    assert abs(log["value_quad"] - l2["quad_loss"]) <= 1e-9 * abs(l2["quad_loss"])
    kl = np.sum(P * np.log(P / np.outer(p, q)))
    assert abs(v - (l2["fgw_dist"] + eps * kl)) <= 1e-9 * abs(v)


def test_alpha_0_is_emot_of_the_feature_cost():
    rng = np.random.RandomState(1)
    X_s = [rng.randn(7, 2), rng.randn(6, 3), rng.randn(5, 1)]
    Y_s = [rng.randn(7, 2), rng.randn(6, 2), rng.randn(5, 2)]
    v, log = mgw_sinkhorn2(X_s, 0.5, Y_s=Y_s, alpha=0.0, graph="chain", log=True, stopThrInner=1e-12)
    C = om.PairwiseCost.from_point_clouds(Y_s, graph="chain")
    ref, lg = om.emot_sinkhorn2(None, C, 0.5, stopThr=1e-12, log=True)
    assert abs(v - ref) <= 1e-10 * abs(ref) and log["niter"] == 1 and log["converged"]
    assert log["value_quad"] == 0.0
    assert abs(log["value_linear"] - lg["value_linear"]) <= 1e-10 * abs(ref)


def test_alpha_1_is_plain_gw_whatever_the_features():
    X, Y, F, G = _data(2)
    kw = dict(init="zero", stopThrInner=1e-12, stopThr=1e-10, log=True)
    v1, l1 = mgw_sinkhorn2([X, Y], 0.5, Y_s=[F, G], alpha=1.0, **kw)
    v0, l0 = mgw_sinkhorn2([X, Y], 0.5, **kw)
    assert abs(v1 - v0) <= 1e-12 * abs(v0) and l1["value_linear"] == 0.0
    np.testing.assert_allclose(l1["pairwise_plans"][(0, 1)], l0["pairwise_plans"][(0, 1)], atol=1e-14)


def test_features_change_the_matching_towards_the_labels():
    """Two copies of a symmetric shape (GW cannot tell x from -x): one-hot labels break the tie."""
    rng = np.random.RandomState(3)
    half = rng.randn(6, 2) * [2.0, 0.5]
    X = np.r_[half, -half]
    labels = np.r_[np.zeros(6), np.ones(6)].astype(int)
    perm = rng.permutation(12)
    Y = X[perm] @ np.array([[0.0, -1.0], [1.0, 0.0]])  # rotated, rows permuted
    F, G = np.eye(2)[labels], np.eye(2)[labels[perm]]
    truth = np.argsort(perm)
    P0 = mgw_sinkhorn([X, Y], 0.05, random_state=0).pairwise_marginal(0, 1)
    P1 = mgw_sinkhorn([X, Y], 0.05, Y_s=[F, G], alpha=0.9, random_state=0).pairwise_marginal(0, 1)
    right_class = lambda P: np.mean(labels[perm][om.match_from_plan(P)] == labels)  # noqa: E731
    assert right_class(P1) == 1.0 and np.mean(om.match_from_plan(P1) == truth) == 1.0
    assert right_class(P0) in (0.0, 1.0)  # GW alone: the shape or its mirror image, labels ignored


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_matches_numpy_and_differentiates_in_the_features(dtype):
    X, Y, F, G = _data(4, n=8, m=7)
    kw = dict(alpha=0.4, init="zero", stopThrInner=1e-11, log=True)
    v_np, l_np = mgw_sinkhorn2([X, Y], 0.5, Y_s=[F, G], **kw)
    dt = getattr(torch, dtype)
    Ft = torch.tensor(F, dtype=dt, requires_grad=True)
    Xt = [torch.tensor(X, dtype=dt), torch.tensor(Y, dtype=dt)]
    v, lg = mgw_sinkhorn2(Xt, 0.5, Y_s=[Ft, torch.tensor(G, dtype=dt)], **kw)
    assert isinstance(v, torch.Tensor) and v.dtype == dt
    tol = 1e-10 if dtype == "float64" else 1e-5
    assert abs(float(v) - v_np) <= tol * abs(v_np)
    v.backward()
    # envelope theorem: d value / dF = (1 - alpha) d<M(F), P>/dF at the plan, M the squared distances
    P = l_np["pairwise_plans"][(0, 1)]
    ref = 0.6 * 2 * (F * P.sum(1)[:, None] - P @ G)
    np.testing.assert_allclose(Ft.grad.numpy(), ref, atol=1e-8 if dtype == "float64" else 1e-4)
    plan = mgw_sinkhorn(Xt, 0.5, Y_s=[Ft.detach(), torch.tensor(G, dtype=dt)], alpha=0.4, init="zero")
    assert plan.pairwise_marginal(0, 1).dtype == dt


def test_feature_metric_callable_and_name():
    X, Y, F, G = _data(5, n=6, m=6)
    kw = dict(alpha=0.5, init="zero", stopThrInner=1e-12)
    v_name = mgw_sinkhorn2([X, Y], 1.0, Y_s=[F, G], feature_metric="euclidean", **kw)
    v_call = mgw_sinkhorn2([X, Y], 1.0, Y_s=[F, G], feature_metric=lambda U, V: ot.dist(U, V, "euclidean"), **kw)
    assert abs(v_name - v_call) <= 1e-12 * abs(v_name)


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        (dict(alpha=0.5), ValueError, "no features were given: pass Y_s"),
        (dict(Y_s="F", alpha=1.5), ValueError, r"alpha must be in \[0, 1\]"),
        (dict(Y_s="F", alpha="0.5"), TypeError, "alpha must be a float"),
        (dict(Y_s=[np.ones((5, 1))]), ValueError, "Y_s must be a list of 2 feature arrays"),
        (dict(Y_s=[np.ones((5, 1)), np.ones((3, 1))]), ValueError, r"Y_s\[1\] must have one row per point of X_s\[1\]"),
        (dict(Y_s=[np.ones((5, 1)), np.ones(4)]), ValueError, r"Y_s\[1\]"),
        (dict(Y_s="F", feature_metric="nope"), ValueError, "feature_metric"),
    ],
)
def test_bad_fused_arguments(kwargs, exc, msg):
    rng = np.random.RandomState(0)
    X_s = [rng.randn(5, 2), rng.randn(4, 3)]
    if kwargs.get("Y_s") == "F":
        kwargs = dict(kwargs, Y_s=[rng.randn(5, 2), rng.randn(4, 2)])
    with pytest.raises(exc, match=msg):
        mgw_sinkhorn2(X_s, 1.0, **kwargs)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_features_from_another_library_are_refused():
    rng = np.random.RandomState(0)
    X_s = [rng.randn(5, 2), rng.randn(4, 3)]
    with pytest.raises(TypeError, match="same library"):
        mgw_sinkhorn2(X_s, 1.0, Y_s=[torch.ones(5, 1), torch.ones(4, 1)], alpha=0.5)
