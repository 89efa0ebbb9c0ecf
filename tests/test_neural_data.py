"""emot_neural on data that is not the paper's cube: float32 costs under translation, scale and translation
invariance of the defaults, the convergence warning, the thread policy (issue 21), one point-cloud cost (issue 23)."""

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist

torch = pytest.importorskip("torch")

import ot  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.costs.pointcloud import TRANSLATION_INVARIANT, PointCloudCost  # noqa: E402
from ot_multimarginal.neural import NeuralEMOT, emot_neural2  # noqa: E402

SCIPY_NAMES = {
    "sqeuclidean": "sqeuclidean",
    "euclidean": "euclidean",
    "cityblock": "cityblock",
    "minkowski": "minkowski",
    "chebyshev": "chebyshev",
    "cosine": "cosine",
    "correlation": "correlation",
}


def _far_clouds(shift, dtype, n=(40, 50, 30), d=3, seed=0):
    rng = np.random.RandomState(seed)
    return [(rng.randn(m, d) + shift).astype(dtype) for m in n]


# ---- one point-cloud cost, stable in float32 ------------------------------------------------------------
@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine", "correlation"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_float32_edge_costs_of_translated_clouds_match_float64(metric, backend):
    """Every built-in metric on float32 clouds 1e4 from the origin: the float64 values on the same points."""
    X = _far_clouds(1e4, np.float32)
    to = (lambda A: torch.from_numpy(A)) if backend == "torch" else (lambda A: A)
    mats = PointCloudCost(3, "circle", metric).matrices([to(A) for A in X])
    for (a, b), M in zip([(0, 1), (1, 2), (2, 0)], mats):
        M = np.asarray(M)
        assert M.dtype == np.float32
        ref = cdist(X[a].astype(np.float64), X[b].astype(np.float64), SCIPY_NAMES[metric])
        scale = np.median(np.abs(ref)) + 1e-30
        err = np.max(np.abs(M - ref)) / scale
        assert err < 1e-4, (metric, backend, err)
    if metric == "sqeuclidean":  # the expansion of ot.dist cancels there: the check can fail
        naive = np.asarray(ot.dist(to(X[0]), to(X[1])))
        ref = cdist(X[0].astype(np.float64), X[1].astype(np.float64), "sqeuclidean")
        assert np.max(np.abs(naive - ref)) / np.median(ref) > 1e-2


def test_translation_invariant_metric_names():
    X = _far_clouds(0.0, np.float64, n=(5, 6))
    for metric in TRANSLATION_INVARIANT:
        M0 = PointCloudCost(2, "chain", metric).matrices(X)[0]
        M1 = PointCloudCost(2, "chain", metric).matrices([A + 7.5 for A in X])[0]
        np.testing.assert_allclose(M1, M0, rtol=1e-9, atol=1e-9, err_msg=metric)


def test_one_cost_for_from_point_clouds_cost_tensor_and_neural():
    """PairwiseCost.from_point_clouds, cost_tensor and the neural cost are one computation."""
    X = _far_clouds(0.0, np.float64, n=(4, 5, 6))
    C = om.PairwiseCost.from_point_clouds(X, graph="complete")
    pc = PointCloudCost(3, "complete")
    for M, N in zip(C.matrices, pc.matrices(X)):
        np.testing.assert_array_equal(M, N)
    np.testing.assert_allclose(C.to_dense(), om.cost_tensor(X), rtol=1e-12)
    idx = np.array([[1, 2, 3], [0, 4, 5]])
    np.testing.assert_allclose(pc.at_tuples([A[i] for A, i in zip(X, idx.T)]), C.cost_at(idx), rtol=1e-12)
    assert not hasattr(__import__("ot_multimarginal.neural", fromlist=["x"]), "costs")


def test_empirical_value_in_float32_does_not_move_under_translation():
    X = _far_clouds(0.0, np.float32, n=(30, 30, 30), d=2, seed=3)
    ref = om.empirical_emot_sinkhorn2([A.astype(np.float64) for A in X], 1.0, graph="chain", stopThr=1e-9)
    far = [torch.from_numpy(A.astype(np.float64) + 1e4).float() for A in X]
    v = float(om.empirical_emot_sinkhorn2(far, 1.0, graph="chain", stopThr=1e-6))
    assert abs(v - ref) < 1e-3 * abs(ref), (v, ref)


# ---- the defaults: scale and translation invariance -------------------------------------------------------
def _gauss(k=3, n=300, d=2, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(n, d) * rng.uniform(1, 2, d) + rng.uniform(-2, 2, d) for _ in range(k)]


def test_scale_and_translation_invariance_of_a_short_fit_in_float32():
    """The parameterisation: a fixed-length fit on data x 1000 (reg x 1e6) or data + 1e4 gives the same value.

    In float64 training the scaled fit is the same fit to rounding (1e-10 measured); in float32 the rounding
    of the scaled costs moves an unconverged 100-step trajectory by 0.07-0.15% (fused or multi-tensor Adam).
    """
    X = _gauss(n=100, seed=5)
    kw = dict(graph="chain", random_state=0, numItermax=100, patience=None)
    v0 = float(emot_neural2(X, 0.5, **kw))
    v_scaled = float(emot_neural2([A * 1000.0 for A in X], 0.5e6, **kw)) / 1e6
    v_shift = float(emot_neural2([A + 1e4 for A in X], 0.5, **kw))
    assert abs(v_scaled - v0) <= 3e-3 * abs(v0), (v_scaled, v0)
    assert abs(v_shift - v0) <= 1e-3 * abs(v0), (v_shift, v0)
    kw.update(dtype=torch.float64, numItermax=30)
    v0 = float(emot_neural2(X, 0.5, **kw))
    v_scaled = float(emot_neural2([A * 1000.0 for A in X], 0.5e6, **kw)) / 1e6
    assert abs(v_scaled - v0) <= 1e-8 * abs(v0), (v_scaled, v0)


@pytest.mark.slow
@pytest.mark.parametrize("as_torch", [False, True])
def test_scale_and_translation_invariance_in_float32(as_torch):
    """data x 1000 (reg x 1e6) and data + 1e4 give the same value to 0.5% with the defaults, in float32."""
    X = _gauss(n=150)
    reg = 0.5
    conv = (lambda A: torch.from_numpy(A).float()) if as_torch else (lambda A: A)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        v0 = float(emot_neural2([conv(A) for A in X], reg, graph="chain", random_state=0))
        v_scaled = float(emot_neural2([conv(A * 1000.0) for A in X], reg * 1e6, graph="chain", random_state=0)) / 1e6
        v_shift = float(emot_neural2([conv(A + 1e4) for A in X], reg, graph="chain", random_state=0))
    assert abs(v_scaled - v0) <= 5e-3 * abs(v0), (v_scaled, v0)
    assert abs(v_shift - v0) <= 5e-3 * abs(v0), (v_shift, v0)


def test_translated_fit_has_the_shift_and_same_potentials_up_to_it():
    X = _gauss(n=200, seed=1)
    est = NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=60, warn=False).fit([A + 1e4 for A in X])
    assert est.shift_ is not None and abs(float(est.shift_.mean()) - 1e4) < 5
    f = est.potential(0, X[0] + 1e4)
    assert np.all(np.isfinite(f))
    # a callable (not translation-invariant) metric: no shift
    est2 = NeuralEMOT(
        0.5, graph="chain", metric=lambda A, B: ot.dist(A, B), random_state=0, max_iter=5, warn=False
    ).fit(X)
    assert est2.shift_ is None


# ---- the stopping rule -----------------------------------------------------------------------------------
def test_warning_when_the_budget_ends_before_convergence():
    X = _gauss(n=150, seed=2)
    with pytest.warns(UserWarning, match=r"max_iter=30 .*ended before the held-out dual converged.*raise max_iter"):
        est = NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=30, eval_every=10).fit(X)
    assert not est.converged_ and est.n_iter_ == 30
    with pytest.warns(UserWarning, match=r"max_iter=200 .*ended before the held-out dual converged.*still improving"):
        est = NeuralEMOT(
            0.5, graph="chain", random_state=0, max_iter=200, eval_every=10, patience=5, tol=0.0, lr=1e-4
        ).fit(X)  # a slow rate: still improving when the budget ends
    assert not est.converged_ and est.n_iter_ == 200


@pytest.mark.slow
def test_no_warning_when_the_default_budget_suffices():
    X = _gauss(n=150, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est = NeuralEMOT(0.5, graph="chain", random_state=0).fit(X)  # the default budget suffices
    assert est.converged_ and est.stopped_early_ and est.n_iter_ < 2000
    # the converged value: within 0.5% of the exact structured Sinkhorn value, and below it
    ref = om.empirical_emot_sinkhorn2(X, 0.5, graph="chain", stopThr=1e-8)
    assert est.value_ <= ref + 1e-7 * abs(ref)
    assert ref - est.value_ <= 5e-3 * abs(ref), (est.value_, ref)


# ---- the marginal check of the exact evaluation (heavy tails) ---------------------------------------------
def test_plan_marginal_kl_is_the_gain_of_one_exact_block_step():
    """Oracle: φ_i <- φ_i - ε log(r_i/a_i) raises the dual, brute-forced on the dense tensor, by ε KL(a_i || r_i)."""
    from ot_multimarginal.neural.evaluation import plan_marginal_kl

    rng = np.random.RandomState(0)
    X = [torch.from_numpy(rng.randn(m, 2)) for m in (5, 6, 7)]
    a = [torch.from_numpy(rng.dirichlet(np.ones(m))) for m in (5, 6, 7)]
    f = [torch.from_numpy(rng.randn(m)) for m in (5, 6, 7)]
    reg = 0.7
    C = torch.from_numpy(om.cost_tensor([A.numpy() for A in X]))
    A = a[0][:, None, None] * a[1][None, :, None] * a[2][None, None, :]

    def dual(f):  # brute force: Σ <a_i, f_i> - ε log Σ_I ⊗a exp((⊕f - C)/ε)
        S = f[0][:, None, None] + f[1][None, :, None] + f[2][None, None, :]
        return sum(float(ai @ fi) for ai, fi in zip(a, f)) - reg * float(
            torch.log((A * torch.exp((S - C) / reg)).sum())
        )

    S = f[0][:, None, None] + f[1][None, :, None] + f[2][None, None, :]
    P = A * torch.exp((S - C) / reg)
    P = P / P.sum()
    r = [P.sum((1, 2)), P.sum((0, 2)), P.sum((0, 1))]
    kl = plan_marginal_kl(om.Potentials(PointCloudCost(3, "complete").engine(X, reg), f, a), a)
    for i in range(3):
        assert abs(kl[i] - float((a[i] * torch.log(a[i] / r[i])).sum())) < 1e-10
        g = list(f)
        g[i] = f[i] - reg * torch.log(r[i] / a[i])
        assert abs(dual(g) - dual(f) - reg * kl[i]) < 1e-9


def test_gap_estimate_of_a_fit_is_certified_and_close_to_the_true_gap():
    """value_ + reg max KL <= the exact EMOT (certified); reg sum KL estimates the gap (exact Sinkhorn as oracle)."""
    X = _gauss(n=120, seed=6)
    est = NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=80, patience=None, refine=False).fit(X)
    ref = float(om.empirical_emot_sinkhorn2(X, 0.5, graph="chain", stopThr=1e-10, numItermax=10000))
    gap = ref - est.value_
    assert est.value_method_ == "exact" and len(est.marginal_kl_) == 3
    assert est.value_ + 0.5 * max(est.marginal_kl_) <= ref + 1e-9 * abs(ref)
    assert gap > 0 and 0.5 * gap <= est.gap_estimate_ <= 2.0 * gap, (gap, est.gap_estimate_)
    assert est.marginal_kl_se_ == [0.0] * 3 and est.refine_sweeps_ == 0 and est.value_networks_ is None
    unbalanced = NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=5, reg_m=10.0, warn=False).fit(X)
    assert unbalanced.marginal_kl_ is None and unbalanced.gap_estimate_ is None and unbalanced.marginal_kl_se_ is None


def test_warning_when_the_plan_misses_its_marginals_after_convergence():
    """A fit that stops early (a rate too small to move: a plateau at once) on wide data: the marginal check warns."""
    X = _gauss(n=100, seed=7)
    kw = dict(graph="chain", random_state=0, lr=1e-7, eval_every=5, patience=1, refine=False)
    with pytest.warns(UserWarning, match=r"misses its marginals on the data .*below the optimum .*refine=True"):
        est = NeuralEMOT(0.5, **kw).fit(X)
    assert est.converged_ and est.n_iter_ <= 25
    assert est.gap_estimate_ > 5e-3 * abs(est.value_)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        NeuralEMOT(0.5, **dict(kw, warn=False)).fit(X)


def test_refine_lifts_a_poor_fit_to_the_exact_value_and_stays_a_lower_bound():
    """refine='auto' (default) on the same poor fit: exact Sinkhorn sweeps on the data, oracle the exact solver."""
    X = _gauss(n=100, seed=7)
    kw = dict(graph="chain", random_state=0, lr=1e-7, eval_every=5, patience=1)
    ref = float(om.empirical_emot_sinkhorn2(X, 0.5, graph="chain", stopThr=1e-10, numItermax=10000))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the plan now meets its marginals: no warning
        est = NeuralEMOT(0.5, **kw).fit(X)
    poor = NeuralEMOT(0.5, **dict(kw, refine=False, warn=False)).fit(X)
    assert est.refine_sweeps_ >= 10 and float(est.value_networks_) == pytest.approx(float(poor.value_), rel=1e-12)
    assert est.value_networks_ < ref - 5e-3 * abs(ref)  # the networks alone: far below
    assert ref - 5e-3 * abs(ref) <= est.value_ <= ref + 1e-9 * abs(ref)  # refined: within 0.5%, a lower bound
    assert est.gap_estimate_ <= 5e-3 * abs(est.value_)
    # the refined potentials are those of the value, the plan and data_potentials; the networks are unchanged
    f = est.data_potentials()
    pot = om.Potentials(
        PointCloudCost(3, "chain").engine([torch.from_numpy(A) for A in X], 0.5), [torch.from_numpy(g) for g in f]
    )
    assert float(pot.dual()) == pytest.approx(est.value_, rel=1e-10)
    assert np.allclose(pot.normalized().plan().marginal(1), 1.0 / 100, atol=0.05 / 100)
    assert np.allclose(est.potential(1, X[1]), poor.potential(1, X[1]))
    assert np.allclose(est.plan().marginal(1), poor.plan().marginal(1))  # the plan: the networks'
    assert est.log_partition_ == pytest.approx(poor.log_partition_, rel=1e-12)
    assert not np.allclose(est.potential(1, X[1]), f[1], atol=1e-3)


def test_refine_warns_when_its_budget_ends_while_the_dual_still_rises(monkeypatch):
    import ot_multimarginal.neural.estimator as E

    monkeypatch.setattr(E, "REFINE_MAX_SWEEPS", 10)
    X = _gauss(n=100, seed=7)
    with pytest.warns(UserWarning, match=r"refine budget \(10 exact Sinkhorn sweeps.*still rose"):
        est = NeuralEMOT(0.5, graph="chain", random_state=0, lr=1e-7, eval_every=5, patience=1).fit(X)
    assert est.refine_sweeps_ == 10 and est.value_ > est.value_networks_


def test_refine_survives_save_and_load(tmp_path):
    X = _gauss(n=60, seed=7)
    est = NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=5, patience=None, refine=True, warn=False).fit(X)
    assert est.refine_sweeps_ > 0
    est.save(tmp_path / "e.pt")
    back = NeuralEMOT.load(tmp_path / "e.pt")
    assert back.refine_sweeps_ == est.refine_sweeps_ and back.value_networks_ == est.value_networks_
    assert back.refine_start_ == est.refine_start_ in ("given", "zero") and back.handed_over_ == est.handed_over_
    for f, g in zip(est.data_potentials(), back.data_potentials()):
        assert np.allclose(f, g, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="refine"):
        NeuralEMOT(0.5, refine="yes").fit(X)
    # a refit without refine: the data potentials are the networks' again (no stale correction)
    est.set_params(refine=False, warm_start=True).fit(X)
    assert est.refine_sweeps_ == 0 and est.value_networks_ is None
    assert np.allclose(est.data_potentials()[0], est.potential(0, X[0]), rtol=1e-12, atol=1e-12)


# ---- the marginal check of the Monte-Carlo evaluation ------------------------------------------------------
def test_monte_carlo_marginal_check_estimates_the_exact_kl():
    """Oracle: the exact KL of the plan's marginals on the data (plan_marginal_kl) of the same potentials."""
    from ot_multimarginal.neural.evaluation import evaluate_dual, plan_marginal_kl

    rng = np.random.RandomState(1)
    X = [torch.from_numpy(rng.randn(400, 2)) for _ in range(3)]
    a = [torch.full((400,), 1.0 / 400, dtype=torch.float64) for _ in range(3)]
    cost = PointCloudCost(3, "chain")
    for scale in (0.0, 0.3):  # the product coupling (potentials 0), and potentials off by a quadratic
        f = [scale * (A**2).sum(1) for A in X]
        exact = plan_marginal_kl(om.Potentials(cost.engine(X, 1.0), f, a), a)
        out = evaluate_dual(cost, X, f, a, 1.0, "mc", 128, 32, torch.Generator().manual_seed(0), marginal_kl=True)
        assert out[2] == "mc"
        kl, se = out[4], out[5]
        assert len(kl) == 3 and all(s > 0 for s in se)
        for e, m, s in zip(exact, kl, se):
            assert abs(m - e) <= 4 * s + 0.1 * e + 1e-3, (exact, kl, se)
    # unbalanced and callable costs have no check
    out = evaluate_dual(cost, X, f, a, 1.0, "mc", 64, 4, None, reg_m=(1.0,) * 3, marginal_kl=True)
    assert out[4] is None and out[5] is None


def test_monte_carlo_marginal_check_warns_on_a_poor_fit():
    X = _gauss(n=100, seed=7)
    kw = dict(graph="chain", random_state=0, lr=1e-7, eval_every=5, patience=1, evaluation="mc")
    with pytest.warns(UserWarning, match=r"misses its marginals \(Monte-Carlo estimate .*standard error"):
        est = NeuralEMOT(0.5, **kw).fit(X)
    assert est.value_method_ == "mc" and est.refine_sweeps_ == 0 and len(est.marginal_kl_se_) == 3
    exact = NeuralEMOT(0.5, **dict(kw, evaluation="exact", refine=False, warn=False)).fit(X)
    assert est.gap_estimate_ == pytest.approx(exact.gap_estimate_, rel=0.3)


@pytest.mark.slow
def test_heavy_tails_within_half_a_percent_with_the_defaults():
    """Student t (3 degrees of freedom), complete k = 3, n = 300, reg = 0.5 x median cost; oracle: exact Sinkhorn.

    The networks alone are 0.8% low (they cannot hold the exact potentials at the isolated tail points); the
    default refine sweeps on the data bring the certified value within 0.5%, without a warning.
    """
    rng = np.random.RandomState(0)
    X = [rng.standard_t(3, (300, 3)) for _ in range(3)]
    reg = 0.5 * float(np.median([np.median(ot.dist(X[a], X[b])) for a, b in ((0, 1), (0, 2), (1, 2))]))
    ref = float(om.empirical_emot_sinkhorn2(X, reg, stopThr=1e-9, numItermax=20000))
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        est = NeuralEMOT(reg, random_state=0).fit(X)
    assert est.refine_sweeps_ > 0 and est.value_networks_ < ref - 5e-3 * abs(ref)
    assert ref - 5e-3 * abs(ref) <= est.value_ <= ref + 1e-9 * abs(ref)


def test_no_warning_without_a_stopping_rule_or_when_asked():
    X = _gauss(n=100, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=10, patience=None).fit(X)
        NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=10, warn=False).fit(X)


# ---- the thread policy -----------------------------------------------------------------------------------
def test_thread_policy_restores_the_callers_threads_also_on_errors():
    X = _gauss(n=60, seed=4)
    old = torch.get_num_threads()
    seen = []

    def metric(A, B):
        seen.append(torch.get_num_threads())
        return ot.dist(A, B)

    try:
        torch.set_num_threads(2)
        NeuralEMOT(0.5, graph="chain", metric=metric, random_state=0, max_iter=3, warn=False).fit(X)
        assert set(seen) == {1}  # 'auto': one thread for small batches
        assert torch.get_num_threads() == 2
        seen.clear()
        NeuralEMOT(0.5, graph="chain", metric=metric, random_state=0, max_iter=3, num_threads=None, warn=False).fit(X)
        assert set(seen) == {2}
        with pytest.raises(ValueError, match="estimator"):
            NeuralEMOT(0.5, estimator="bogus", num_threads=1).fit(X)
        assert torch.get_num_threads() == 2

        def boom(A, B):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError, match="boom"):
            NeuralEMOT(0.5, graph="chain", metric=boom, num_threads=1).fit(X)
        assert torch.get_num_threads() == 2
        with pytest.raises(ValueError, match="num_threads"):
            NeuralEMOT(0.5, num_threads=0).fit(X)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def _outlier_clouds(offset):
    rng = np.random.RandomState(7)
    X = [rng.randn(100, 2) for _ in range(3)]
    X[1][0] = offset  # one point far out: the networks extrapolate badly to it
    return X


def test_training_hands_over_to_refine_when_the_networks_do_worse_on_the_data_than_zero_potentials():
    """An outlier the batches rarely hold: training stops early and refine finishes; oracle: exact Sinkhorn."""
    X = _outlier_clouds(60.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (slow here: the dual of any potentials is a lower bound)
        _, log = om.empirical_emot_sinkhorn2(X, 0.5, graph="chain", stopThr=1e-9, numItermax=2000, log=True)
    lower = float(log["potentials"].dual())  # a certified lower bound of the exact value
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the refine converged: no budget warning
        est = NeuralEMOT(0.5, graph="chain", random_state=0).fit(X)
    # stopped before the stopping rule could conclude (a plateau at each of 3 rates: 300 steps at least)
    assert est.handed_over_ and not est.converged_ and est.n_iter_ < est.trainer_.min_steps
    assert est.refine_sweeps_ > 0 and est.value_networks_ < lower - 5e-3 * abs(lower)
    assert lower - 5e-3 * abs(lower) <= est.value_ <= lower + 1e-4 * abs(lower)
    # well-behaved clouds: the networks beat zero potentials on the data, training runs its course
    good = NeuralEMOT(0.5, graph="chain", random_state=0, max_iter=150, warn=False).fit(_gauss(n=100))
    assert not good.handed_over_ and good.n_iter_ == 150


def test_refine_starts_from_zero_potentials_where_their_exact_dual_is_higher():
    from ot_multimarginal.neural.evaluation import refine_on_data

    X = [torch.from_numpy(A) for A in _gauss(n=60, seed=3)]
    a = [torch.full((60,), 1.0 / 60, dtype=torch.float64) for _ in X]
    cost = PointCloudCost(3, "chain")
    engine = cost.engine(X, 0.5)
    ref = float(om.empirical_emot_sinkhorn2(X, 0.5, graph="chain", stopThr=1e-11, numItermax=20000))
    bad = [100.0 * torch.sin(10 * A[:, 0]) for A in X]  # far worse than zero potentials
    for f0, start in ((bad, "zero"), ([torch.zeros(60, dtype=torch.float64)] * 3, "given")):
        f, value, _, kl, sweeps, _, taken = refine_on_data(cost, X, f0, a, 0.5, 1e-6, 300)
        assert taken == start and sweeps > 0
        assert float(om.Potentials(engine, f, a).dual()) == pytest.approx(float(value), rel=1e-12)
        assert ref - 1e-4 * abs(ref) <= float(value) <= ref + 1e-7 * abs(ref)
    _, _, _, _, _, _, taken = refine_on_data(cost, X, bad, a, 0.5, 1e-6, 300, zero_start=False)
    assert taken == "given"
