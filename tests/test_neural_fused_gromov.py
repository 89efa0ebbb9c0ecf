# -*- coding: utf-8 -*-
"""Neural multimarginal fused Gromov-Wasserstein (mgw_neural / NeuralMGW with Y_s, alpha) against the exact oracles.

Oracles: mgw_sinkhorn with the same features (equal to POT's entropic FGW, tests/test_fused_gromov.py), POT's
``entropic_fused_gromov_wasserstein`` itself (k = 2), emot_sinkhorn2 on the feature cost (alpha = 0) and the plain
GW fit (alpha = 1).
"""

import warnings

import numpy as np
import ot
import pytest

torch = pytest.importorskip("torch")

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.neural import mgw_neural, mgw_neural2  # noqa: E402

FAST = dict(numItermaxInner=200, max_iter_refit=60, numItermax=4, random_state=0, warn=False)
SMALL = dict(max_iter_inner=60, max_iter_refit=30, max_iter=3, tol=1e-12, random_state=0, warn=False)


def _rotation(t):
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _clusters(seed, m=10, dims=(2, 3)):
    """Three clusters at 120 degrees (the structure alone cannot tell them apart), one-hot labels as features,
    copies moved by a random isometry, rows shuffled (the example plot_mgw_fused.py)."""
    rng = np.random.RandomState(seed)
    cluster = rng.randn(m, 2) * [0.35, 0.15] + [2.0, 0.0]
    X = np.vstack([cluster @ _rotation(2 * np.pi * c / 3).T for c in range(3)])
    labels = np.repeat(np.arange(3), m)
    X_s, Y_s, perms = [], [], []
    for d in dims:
        Q, _ = np.linalg.qr(rng.randn(d, d))
        Z = np.c_[X, np.zeros((len(X), d - 2))] @ Q + rng.randn(d) + 0.03 * rng.randn(len(X), d)
        perm = rng.permutation(len(X))
        X_s.append(Z[perm])
        Y_s.append(np.eye(3)[labels[perm]])
        perms.append(perm)
    return X_s, Y_s, perms


def _accuracy(match, perms, edges):
    hits = []
    for i, j in edges:
        truth = np.argsort(perms[j])[perms[i]]
        hits.append(np.mean(match(i, j) == truth))
    return float(np.mean(hits))


def _random(seed=0, sizes=(9, 8), dims=(2, 3), f=2):
    rng = np.random.RandomState(seed)
    return [rng.randn(n, d) for n, d in zip(sizes, dims)], [rng.randn(n, f) for n in sizes]


# ---- the limits alpha = 1 and alpha = 0 ---------------------------------------------------------------
def test_alpha_1_is_the_gw_fit_whatever_the_features():
    X_s, Y_s = _random(1)
    v0, l0 = mgw_neural2(X_s, 0.5, init="zero", log=True, **FAST)
    v1, l1 = mgw_neural2(X_s, 0.5, Y_s=Y_s, alpha=1.0, init="zero", log=True, **FAST)
    assert v1 == v0 and l1["objective"] == l0["objective"]  # the same fit, to the bit
    assert l1["alpha"] == l0["alpha"] == 1.0 and l1["value_linear"] == 0.0
    np.testing.assert_array_equal(l1["pairwise_plans"][(0, 1)], l0["pairwise_plans"][(0, 1)])
    est = l1["estimator"]
    assert not est.fused_ and est.feature_dims_ == [2, 2]
    # the features of new points are accepted (their shape checked) and do not change anything
    np.testing.assert_array_equal(
        est.pairwise_plan(0, 1, X_s[0][:3], X_s[1][:4], Y_s[0][:3], Y_s[1][:4]),
        est.pairwise_plan(0, 1, X_s[0][:3], X_s[1][:4]),
    )
    # Y_s without alpha: POT's default alpha = 0.5
    assert mgw_neural(X_s, 0.5, Y_s=Y_s, init="zero", **dict(FAST, numItermax=1)).alpha_ == 0.5


@pytest.mark.parametrize("polish", [False, True])
def test_alpha_0_is_the_emot_of_the_feature_cost(polish):
    rng = np.random.RandomState(2)
    X_s = [rng.randn(60, 2), rng.randn(50, 3), rng.randn(55, 1)]
    Y_s = [rng.randn(60, 2), rng.randn(50, 2), rng.randn(55, 2)]
    C = om.PairwiseCost.from_point_clouds(Y_s, graph="chain")
    ref = om.emot_sinkhorn2(None, C, 1.0, stopThr=1e-12)
    exact = om.mgw_sinkhorn2(X_s, 1.0, Y_s=Y_s, alpha=0.0, graph="chain", stopThrInner=1e-12)
    v, log = mgw_neural2(X_s, 1.0, Y_s=Y_s, alpha=0.0, graph="chain", polish=polish, log=True, **FAST)
    assert abs(exact - ref) <= 1e-10 * abs(ref)
    assert log["niter"] == 1 and log["converged"]  # the cost does not depend on A: one fit is the answer
    assert log["value_quad"] == 0.0 and 0.0 < log["value_linear"] <= v + 1e-12  # the rest: eps KL >= 0
    # the neural plan on the data (measured, random_state 0-4: -0.5% to +1.1%, marginal errors 0.03-0.07) vs
    # its exact finish
    assert abs(v - ref) <= (1e-7 if polish else 0.02) * abs(ref), (v, ref)


# ---- fused: k = 2 against POT and mgw_sinkhorn, accuracy --------------------------------------------------
def test_k2_fused_value_equals_pot_after_the_exact_finish():
    """normalize=None, init='zero' (POT's start): the polished value is POT's FGW value plus eps KL(T | p q)."""
    X_s, Y_s = _random(3, sizes=(7, 6))
    X_s = [X - X.mean(0) for X in X_s]
    alpha, eps = 0.5, 2.0
    p, q = ot.unif(7), ot.unif(6)
    M, C1, C2 = ot.dist(Y_s[0], Y_s[1]), ot.dist(X_s[0], X_s[0]), ot.dist(X_s[1], X_s[1])
    _, lp = ot.gromov.entropic_fused_gromov_wasserstein2(
        M, C1, C2, p, q, "square_loss", epsilon=eps, alpha=alpha, max_iter=1000, tol=1e-14, log=True,
        stopThr=1e-14, numItermax=20000,
    )  # fmt: skip
    T = lp["T"]
    pot_value = lp["fgw_dist"] + eps * np.sum(T * np.log(T / np.outer(p, q)))
    v, log = mgw_neural2(X_s, eps, Y_s=Y_s, alpha=alpha, normalize=None, init="zero", log=True, **FAST)
    assert log["polished"] and abs(v - pot_value) <= 1e-6 * abs(pot_value), (v, pot_value)
    np.testing.assert_allclose(log["pairwise_plans"][(0, 1)], T, atol=1e-6)
    assert abs(log["value_linear"] - lp["lin_loss"]) <= 1e-6 * abs(lp["lin_loss"])
    assert abs(log["value_quad"] - lp["quad_loss"]) <= 1e-6 * abs(lp["quad_loss"])


def test_k2_fused_neural_value_and_matching_near_mgw_sinkhorn():
    """The neural plan itself (no exact finish, start A = 0): value within 1.5% of mgw_sinkhorn's fused value,
    matching accuracy at least that of the structure alone and within a few points of the exact fused plan's."""
    X_s, Y_s, perms = _clusters(1)
    edges = [(0, 1)]
    _, ref = om.mgw_sinkhorn2(X_s, 0.2, Y_s=Y_s, alpha=0.5, init="zero", log=True)
    v, log = mgw_neural2(
        X_s, 0.2, Y_s=Y_s, alpha=0.5, init="zero", polish=False, log=True, **dict(FAST, numItermaxInner=400)
    )
    assert abs(v - ref["value"]) <= 0.015 * abs(ref["value"]), (v, ref["value"])
    acc_ref = _accuracy(lambda i, j: om.match_from_plan(ref["pairwise_plans"][(i, j)]), perms, edges)
    gw = mgw_neural(X_s, 0.2, init="zero", polish=False, **dict(FAST, numItermaxInner=400))
    acc_gw = _accuracy(gw.match, perms, edges)
    acc = _accuracy(log["estimator"].match, perms, edges)
    assert acc >= acc_gw and acc >= acc_ref - 0.05, (acc, acc_gw, acc_ref)
    assert acc >= 0.5 and acc_gw <= 0.4  # the structure alone cannot tell the clusters apart


@pytest.mark.slow
def test_k3_fused_matching_accuracy():
    """k = 3 (dims 2, 3, 2), reg 0.05: fused neural >= GW-only neural, within a few points of mgw_sinkhorn fused."""
    X_s, Y_s, perms = _clusters(0, dims=(2, 3, 2))
    edges = [(0, 1), (0, 2), (1, 2)]
    P, ref = om.mgw_sinkhorn(X_s, 0.05, Y_s=Y_s, alpha=0.5, random_state=0, log=True)
    acc_ref = _accuracy(lambda i, j: om.match_from_plan(ref["pairwise_plans"][(i, j)]), perms, edges)
    kw = dict(FAST, polish=False)
    acc_gw = _accuracy(mgw_neural(X_s, 0.05, **kw).match, perms, edges)
    est = mgw_neural(X_s, 0.05, Y_s=Y_s, alpha=0.5, **kw)
    acc = _accuracy(est.match, perms, edges)
    assert acc >= acc_gw + 0.3 and acc >= acc_ref - 0.1, (acc, acc_gw, acc_ref)
    polished = mgw_neural(X_s, 0.05, Y_s=Y_s, alpha=0.5, **FAST)
    assert abs(float(polished.value_) - ref["value"]) <= 1e-6 * abs(ref["value"])


def test_torch_input_and_new_points_with_features():
    X_s, Y_s = _random(4, sizes=(10, 9))
    Xt, Yt = [torch.tensor(X) for X in X_s], [torch.tensor(Y) for Y in Y_s]
    est = om.NeuralMGW(0.5, alpha=0.3, init="zero", polish=False, **SMALL).fit(Xt, None, Yt)
    assert isinstance(est.value_, torch.Tensor) and est.value_.dtype == torch.float64
    assert est.fused_ and est.alpha_ == 0.3 and est.feature_dims_ == [2, 2]
    assert 0.0 < est.value_quad_ and 0.0 < est.value_linear_ and est.value_quad_ + est.value_linear_ <= est.value_
    # the density at the training points (original coordinates and their features) is the data plan times n_i n_j
    D = est.pairwise_plan(0, 1, Xt[0], Xt[1], Yt[0], Yt[1])
    torch.testing.assert_close(D / (10 * 9), est.pairwise_plan(0, 1), atol=1e-8, rtol=1e-6)
    # other features at the same points: another density (the features enter the networks)
    D2 = est.pairwise_plan(0, 1, Xt[0], Xt[1], Yt[0] + 1.0, Yt[1])
    assert not torch.allclose(D, D2)
    hard = est.match(0, 1, X_s[0][:4], X_s[1], Y_i=Y_s[0][:4], Y_j=Y_s[1])
    assert hard.shape == (4,) and hard.dtype == np.int64


# ---- bad input ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        (dict(Y_s="first"), ValueError, "Y_s must be a list of 2"),
        (dict(Y_s="short"), ValueError, "Y_s must be a list of 2"),
        (dict(Y_s="rows"), ValueError, r"Y_s\[1\] must have one row per point of X_s\[1\]"),
        (dict(alpha=1.5), ValueError, "alpha must be in"),
        (dict(alpha=-0.1), ValueError, "alpha must be in"),
        (dict(alpha="0.5"), TypeError, "alpha must be a float"),
        (dict(Y_s=None, alpha=0.5), ValueError, "no features were given: pass Y_s"),
        (dict(feature_metric="hamming"), ValueError, "feature_metric"),
        (dict(Y_s="torch"), TypeError, "Y_s must come from the same library as X_s"),
    ],
)
def test_bad_input(kwargs, exc, msg):
    X_s, Y_s = _random(5, sizes=(6, 5))
    choice = kwargs.pop("Y_s", "good")
    Y = {
        "good": Y_s,
        "first": Y_s[0],
        "short": Y_s[:1],
        "rows": [Y_s[0], Y_s[1][:4]],
        "torch": [torch.tensor(Y) for Y in Y_s],
        None: None,
    }[choice]
    with pytest.raises(exc, match=msg):
        mgw_neural(X_s, 1.0, Y_s=Y, init="zero", numItermaxInner=5, **kwargs)
    with pytest.raises(exc, match=msg):  # the estimator: the same checks, the same messages
        om.NeuralMGW(1.0, init="zero", max_iter_inner=5, **kwargs).fit(X_s, None, Y)


def test_queries_need_the_features_of_a_fused_fit():
    X_s, Y_s = _random(6, sizes=(6, 5))
    fused = om.NeuralMGW(1.0, alpha=0.5, init="zero", max_iter_inner=5, max_iter_refit=5, max_iter=1,
                         random_state=0, warn=False).fit(X_s, None, Y_s)  # fmt: skip
    plain = om.NeuralMGW(1.0, init="zero", max_iter_inner=5, max_iter_refit=5, max_iter=1, random_state=0,
                         warn=False).fit(X_s)  # fmt: skip
    X0, X1, Y0, Y1 = X_s[0][:3], X_s[1][:2], Y_s[0][:3], Y_s[1][:2]
    with pytest.raises(ValueError, match="fitted with features .*give the features Y_i and Y_j"):
        fused.pairwise_plan(0, 1, X0, X1)
    with pytest.raises(ValueError, match="fitted with features"):
        fused.match(0, 1, X0, X1)
    with pytest.raises(ValueError, match="give both Y_i and Y_j"):
        fused.pairwise_plan(0, 1, X0, X1, Y0)
    with pytest.raises(ValueError, match=r"Y_1 must have shape \(m, 2\)"):
        fused.pairwise_plan(0, 1, X0, X1, Y0, np.ones((2, 3)))
    with pytest.raises(ValueError, match="Y_0 must have one row per point of X_0"):
        fused.pairwise_plan(0, 1, X0, X1, Y0[:2], Y1)
    with pytest.raises(ValueError, match="features of the new points X_i and X_j: give those too"):
        fused.pairwise_plan(0, 1, Y_i=Y0, Y_j=Y1)
    with pytest.raises(ValueError, match="fitted without features"):
        plain.pairwise_plan(0, 1, X0, X1, Y0, Y1)
    assert fused.pairwise_plan(0, 1, X0, X1, Y0, Y1).shape == (3, 2)
    assert plain.pairwise_plan(0, 1, X0, X1).shape == (3, 2)


# ---- persistence --------------------------------------------------------------------------------------


def _sq_cityblock(A, B):  # a module-level callable feature metric (picklable)
    return torch.cdist(A, B, p=1) ** 2


@pytest.mark.parametrize("polish, metric", [(True, "sqeuclidean"), (False, "cityblock"), (False, _sq_cityblock)])
def test_save_load_round_trip_keeps_the_fused_settings(tmp_path, polish, metric):
    X_s, Y_s = _random(7, sizes=(9, 8))
    est = om.NeuralMGW(0.5, alpha=0.4, feature_metric=metric, init="zero", polish=polish, **SMALL)
    est.fit(X_s, None, Y_s)
    est.save(tmp_path / "fused.pt")
    est2 = om.NeuralMGW.load(tmp_path / "fused.pt")
    assert est2.alpha == 0.4 and est2.alpha_ == 0.4 and est2.fused_ and est2.feature_dims_ == [2, 2]
    assert est2.feature_metric == metric
    assert est2.value_ == est.value_ and est2.value_linear_ == est.value_linear_
    new_X, new_Y = [X[:5] + 0.01 for X in X_s], [Y[:5] - 0.02 for Y in Y_s]
    np.testing.assert_allclose(est2.pairwise_plan(0, 1), est.pairwise_plan(0, 1), rtol=1e-12, atol=1e-300)
    np.testing.assert_array_equal(
        est2.pairwise_plan(0, 1, new_X[0], new_X[1], new_Y[0], new_Y[1]),
        est.pairwise_plan(0, 1, new_X[0], new_X[1], new_Y[0], new_Y[1]),
    )
    np.testing.assert_array_equal(est2.match(0, 1), est.match(0, 1))
    with pytest.raises(ValueError, match="fitted with features"):
        est2.match(0, 1, new_X[0], new_X[1])


def test_save_refuses_an_unpicklable_feature_metric(tmp_path):
    X_s, Y_s = _random(8, sizes=(6, 5))
    est = om.NeuralMGW(1.0, alpha=0.5, feature_metric=lambda A, B: torch.cdist(A, B), init="zero", **SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X_s, None, Y_s)
    with pytest.raises(ValueError, match="feature_metric=.* cannot be saved"):
        est.save(tmp_path / "x.pt")


def test_moments_over_batches_fused(monkeypatch):
    """Beyond the exact engine (forced here): the objective estimate alpha (S1 + 32|A|^2) + NEMOT value - separable
    terms is near the objective of the plan on the data."""
    from ot_multimarginal.neural import gromov

    X_s, Y_s, _ = _clusters(2)
    kw = dict(alpha=0.5, init="zero", polish=False, **SMALL)
    data = om.NeuralMGW(0.2, **kw).fit(X_s, None, Y_s)
    monkeypatch.setattr(gromov, "exact_is_affordable", lambda *a, **k: False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # beyond the engine: unchecked marginals
        batches = om.NeuralMGW(0.2, n_moment_batches=4, **kw).fit(X_s, None, Y_s)
    assert set(batches.history_["moments"]) == {"batches"} and set(data.history_["moments"]) == {"data"}
    assert batches.value_quad_ is None and batches.marginal_error_ is None
    assert abs(batches.value_ - data.value_) <= 0.1 * abs(data.value_), (batches.value_, data.value_)


def test_killed_fused_run_resumes_to_the_bit_and_other_features_raise(tmp_path, monkeypatch):
    """The checkpoints of a fused run: a job killed after the 2nd fit resumes on the uninterrupted trajectory; a
    checkpoint of other features, alpha or feature metric is refused with what differs."""
    from test_neural_gromov import _assert_same_fit

    X_s, Y_s = _random(9, sizes=(9, 8))
    kw = dict(SMALL, alpha=0.5, init="zero", polish=False)
    ref = om.NeuralMGW(0.5, **kw).fit(X_s, None, Y_s)
    ckpt = dict(kw, checkpoint_dir=str(tmp_path / "ckpt"))
    score, calls = om.NeuralMGW._score, {"n": 0}

    class Killed(Exception):
        pass

    def killing_score(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise Killed
        return score(self, *args)

    monkeypatch.setattr(om.NeuralMGW, "_score", killing_score)
    with pytest.raises(Killed):
        om.NeuralMGW(0.5, **ckpt).fit(X_s, None, Y_s)
    monkeypatch.setattr(om.NeuralMGW, "_score", score)
    _assert_same_fit(om.NeuralMGW(0.5, resume=True, **ckpt).fit(X_s, None, Y_s), ref)
    with pytest.raises(ValueError, match=r"features \(Y_s\): "):
        om.NeuralMGW(0.5, resume=True, **ckpt).fit(X_s, None, [Y_s[0] + 1.0, Y_s[1]])
    with pytest.raises(ValueError, match=r"alpha: 0\.5 \(checkpoint\) vs 0\.25 \(now\)"):
        om.NeuralMGW(0.5, resume=True, **dict(ckpt, alpha=0.25)).fit(X_s, None, Y_s)
    with pytest.raises(ValueError, match=r"feature_metric: "):
        om.NeuralMGW(0.5, resume=True, **dict(ckpt, feature_metric="euclidean")).fit(X_s, None, Y_s)


@pytest.mark.parametrize("as_torch", [False, True])
def test_screened_start_on_a_subsample_takes_the_features(monkeypatch, as_torch):
    """init='auto' beyond the exact range (forced): the fused mgw_sinkhorn screens the starts on a subsample of
    the points with their features; float32 torch input stays float32."""
    from ot_multimarginal.neural import gromov

    X_s, Y_s, _ = _clusters(3)
    if as_torch:
        X_s, Y_s = [torch.tensor(X, dtype=torch.float32) for X in X_s], [torch.tensor(Y) for Y in Y_s]
    monkeypatch.setattr(gromov, "NEWTON_MAX_POINTS", 20)
    calls = []
    sinkhorn = gromov.mgw_sinkhorn

    def spy(sub, reg, **kw):
        calls.append(([int(X.shape[0]) for X in sub], [int(Y.shape[0]) for Y in kw["Y_s"]], kw["alpha"]))
        return sinkhorn(sub, reg, **kw)

    monkeypatch.setattr(gromov, "mgw_sinkhorn", spy)
    est = om.NeuralMGW(0.2, alpha=0.5, n_init_points=12, polish=False, **SMALL).fit(X_s, None, Y_s)
    assert calls == [([12, 12], [12, 12], 0.5)] and est.init_.startswith("screened:")
    if as_torch:
        assert est.value_.dtype == torch.float32 and est.pairwise_plan(0, 1).dtype == torch.float32
