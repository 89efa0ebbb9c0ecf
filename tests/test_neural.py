"""emot_neural / NeuralEMOT: accuracy against the exact structured Sinkhorn, plan, options, errors."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.neural import NeuralEMOT, emot_neural, emot_neural2  # noqa: E402


def uniform_clouds(k, n, d, seed=0, sizes=None):
    """The paper's synthetic data: uniform on [-1/sqrt(d), 1/sqrt(d)]^d."""
    rng = np.random.RandomState(seed)
    sizes = sizes or [n] * k
    return [(rng.rand(m, d) * 2 - 1) / np.sqrt(d) for m in sizes]


def sinkhorn_value(X_s, reg, graph, a_s=None):
    return float(om.empirical_emot_sinkhorn2(X_s, reg, a_s=a_s, graph=graph, stopThr=1e-9, numItermax=20000))


# ---- accuracy (default settings) ------------------------------------------------------------
@pytest.mark.parametrize(
    "graph,k,n,d,reg,bound",
    [
        ("complete", 3, 300, 2, 1.0, 0.005),
        ("complete", 3, 200, 10, 0.1, 0.01),
        ("circle", 5, 300, 2, 0.5, 0.005),
    ],
)
def test_accuracy_against_sinkhorn(graph, k, n, d, reg, bound):
    X_s = uniform_clouds(k, n, d)
    ref = sinkhorn_value(X_s, reg, graph)
    v, log = emot_neural2(X_s, reg, graph=graph, random_state=0, log=True)
    assert isinstance(v, float)
    assert log["value_method"] == "exact" and log["lower_bound"]
    # weak duality: the exact dual of any potentials is below the EMOT value (up to Sinkhorn's tolerance)
    assert v <= ref + 1e-7 * abs(ref)
    assert abs(v - ref) <= bound * abs(ref), (v, ref)


def test_chain_with_thousands_of_points():
    X_s = uniform_clouds(4, 2000, 2, seed=1)
    ref = sinkhorn_value(X_s, 0.5, "chain")
    v, log = emot_neural2(X_s, 0.5, graph="chain", random_state=0, log=True)
    assert log["value_method"] == "exact"
    assert v <= ref + 1e-7 * abs(ref)
    assert abs(v - ref) <= 0.005 * abs(ref), (v, ref)


# ---- the plan -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    X_s = uniform_clouds(3, 120, 2, seed=2, sizes=[120, 100, 90])
    est = NeuralEMOT(0.5, graph="circle", random_state=0).fit(X_s)
    return est, X_s


def test_plan_density_integrates_to_one(fitted):
    est, X_s = fitted
    grids = np.meshgrid(*[np.arange(X.shape[0]) for X in X_s], indexing="ij")
    pts = [X[g.reshape(-1)] for X, g in zip(X_s, grids)]
    dens = est.plan_density(*pts)
    assert dens.shape == (np.prod([X.shape[0] for X in X_s]),)
    np.testing.assert_allclose(dens.mean(), 1.0, rtol=1e-9)


def test_plan_log_density_is_the_log_and_stays_finite_far_away(fitted):
    est, X_s = fitted
    pts = [X[:7] for X in X_s]
    np.testing.assert_allclose(est.plan_log_density(*pts), np.log(est.plan_density(*pts)), rtol=1e-12, atol=1e-12)
    far = [np.full((3, X.shape[1]), 1e3) + 10.0 * i for i, X in enumerate(X_s)]
    z = est.plan_log_density(*far)
    assert z.shape == (3,) and np.all(np.isfinite(z))
    if z.max() > 709.0:  # beyond float64's exp: plan_density says so and points to the log
        with pytest.warns(UserWarning, match="overflows.*plan_log_density"):
            est.plan_density(*far)


def test_exact_density_wrt_the_product_is_unbounded_for_gaussians():
    """Why the learned density is not capped: the exact one (closed form, k = 2, 1-d) grows on the diagonal."""
    reg = 1.0
    # standard 1-d Gaussians, cost (x - y)^2: the entropic plan is Gaussian with the correlation rho whose x y
    # coefficient matches the cost's, rho / (1 - rho^2) = 2 / reg
    rho = (-1.0 + np.sqrt(1.0 + 16.0 / reg**2)) / (4.0 / reg)
    assert abs(rho / (1 - rho**2) - 2.0 / reg) < 1e-12
    t = np.array([0.0, 5.0, 50.0])
    log_ratio = -0.5 * np.log(1 - rho**2) - (2 * t**2 - 2 * rho * t**2) / (2 * (1 - rho**2)) + t**2
    np.testing.assert_allclose(log_ratio - log_ratio[0], t**2 * rho / (1 + rho), rtol=1e-9)
    assert log_ratio[-1] > 709.0  # exp overflows float64 at t = 50 for the exact plan too


def test_plan_is_a_factored_plan_close_to_sinkhorn(fitted):
    est, X_s = fitted
    P = est.plan()
    assert isinstance(P, om.FactoredPlan)
    np.testing.assert_allclose(float(P.mass), 1.0, rtol=1e-10)
    S = om.empirical_emot_sinkhorn(X_s, 0.5, graph="circle", stopThr=1e-10)
    for i, j in [(0, 1), (1, 2), (0, 2)]:
        Pn = P.pairwise_marginal(i, j)
        Ps = S.pairwise_marginal(i, j)
        # total variation between the pairwise marginals of the neural and the Sinkhorn plans
        assert 0.5 * np.abs(Pn - Ps).sum() < 0.05
    np.testing.assert_allclose(est.pairwise_plan(0, 1), P.pairwise_marginal(0, 1))
    # density of the (0, 1) marginal at the data points, times the weights: the same matrix
    D = est.pairwise_plan(0, 1, X_s[0], X_s[1])
    np.testing.assert_allclose(D / (X_s[0].shape[0] * X_s[1].shape[0]), P.pairwise_marginal(0, 1), rtol=1e-8)
    idx = P.sample(50, random_state=0)
    assert idx.shape == (50, 3) and (idx >= 0).all()
    Y = P.round()
    for i, X in enumerate(X_s):
        np.testing.assert_allclose(Y.marginal(i), np.full(X.shape[0], 1.0 / X.shape[0]), atol=1e-12)


def test_warmstart_sinkhorn_from_neural_potentials(fitted):
    est, X_s = fitted
    cost = om.PairwiseCost.from_point_clouds(X_s, graph="circle")
    ref = om.emot_sinkhorn2(None, cost, 0.5, stopThr=1e-10)
    _, log_cold = om.emot_sinkhorn2(None, cost, 0.5, stopThr=1e-8, log=True)
    v, log_warm = om.emot_sinkhorn2(None, cost, 0.5, stopThr=1e-8, log=True, warmstart=est.data_potentials())
    np.testing.assert_allclose(v, ref, rtol=1e-7)
    # the neural potentials start Sinkhorn far closer to the solution than zero potentials
    assert log_warm["err"][1] < 0.1 * log_cold["err"][1]
    assert log_warm["niter"] < log_cold["niter"]
    # and the neural plan's marginals are already close (L1)
    P = est.plan()
    for i, X in enumerate(X_s):
        assert np.abs(P.marginal(i) - 1.0 / X.shape[0]).sum() < 0.05


def test_potential_matches_data_potentials(fitted):
    est, X_s = fitted
    for i, X in enumerate(X_s):
        np.testing.assert_allclose(est.potential(i, X), est.data_potentials()[i])


# ---- inputs ---------------------------------------------------------------------------------
def test_weighted_unequal_sizes_and_dimensions():
    rng = np.random.RandomState(4)
    X_s = [rng.rand(80, 2), rng.rand(60, 3), rng.rand(70, 2)]
    a_s = [rng.rand(X.shape[0]) + 0.2 for X in X_s]
    a_s = [a / a.sum() for a in a_s]

    def proj(X, Y):  # a cost between spaces of different dimensions (first coordinates)
        return ((X[:, None, :1] - Y[None, :, :1]) ** 2).sum(-1)

    metric = [proj, proj]
    ref = float(om.empirical_emot_sinkhorn2(X_s, 0.5, a_s=a_s, graph="chain", metric=metric, stopThr=1e-10))
    v = emot_neural2(X_s, 0.5, a_s=a_s, graph="chain", metric=metric, random_state=0)
    assert v <= ref + 1e-8
    assert abs(v - ref) < 0.01 * abs(ref)


def test_torch_float32_input_gives_torch_value():
    X_s = [torch.tensor(X, dtype=torch.float32) for X in uniform_clouds(3, 100, 2, seed=5)]
    v = emot_neural2(X_s, 1.0, random_state=0, numItermax=100)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.ndim == 0
    ref = sinkhorn_value([X.double().numpy() for X in X_s], 1.0, "complete")
    assert abs(float(v) - ref) < 0.01 * ref


def test_seed_reproducible_to_the_bit():
    X_s = uniform_clouds(3, 80, 2, seed=6)
    v1 = emot_neural2(X_s, 1.0, random_state=3, numItermax=60)
    v2 = emot_neural2(X_s, 1.0, random_state=3, numItermax=60)
    v3 = emot_neural2(X_s, 1.0, random_state=4, numItermax=60)
    assert v1 == v2
    assert v1 != v3
    est = emot_neural(X_s, 1.0, random_state=3, numItermax=60)  # the plan call: the fitted estimator
    assert isinstance(est, NeuralEMOT) and est.value_ == v1


def test_save_load_round_trip(tmp_path, fitted):
    est, X_s = fitted
    path = os.path.join(tmp_path, "nemot.pt")
    est.save(path)
    est2 = NeuralEMOT.load(path)
    assert est2.value_ == est.value_
    for i, X in enumerate(X_s):
        np.testing.assert_array_equal(est2.potential(i, X), est.potential(i, X))
    np.testing.assert_allclose(est2.value(X_s), est.value_, rtol=1e-12)


def test_warm_start_continues_from_fitted_potentials():
    X_s = uniform_clouds(3, 100, 2, seed=7)
    est = NeuralEMOT(1.0, random_state=0, max_iter=40, warm_start=True).fit(X_s)
    v1 = est.value_
    f1 = est.potential(0, X_s[0])
    est.fit(X_s)
    assert est.value_ >= v1 - 1e-3 * abs(v1)
    cold = NeuralEMOT(1.0, random_state=0, max_iter=40).fit(X_s)
    assert not np.allclose(est.potential(0, X_s[0]), f1)
    np.testing.assert_allclose(cold.value_, v1)


def test_early_stopping_stops_and_keeps_best():
    X_s = uniform_clouds(3, 100, 2, seed=8)
    est = NeuralEMOT(1.0, random_state=0, max_iter=2000, eval_every=10, patience=2, tol=1e-2).fit(X_s)
    assert est.stopped_early_ and est.n_iter_ < 2000
    h = est.history_
    assert len(h["eval_value"]) >= 3


def test_log_dict_contents():
    X_s = uniform_clouds(3, 60, 2, seed=9)
    v, log = emot_neural2(X_s, 1.0, random_state=0, numItermax=50, log=True)
    assert isinstance(log["estimator"], NeuralEMOT)
    assert log["value"] == v and log["value_se"] == 0.0
    assert len(log["history"]["batch_dual"]) == log["niter"] == 50
    assert log["held_out_se"] > 0 and np.isfinite(log["held_out_value"])
    assert set(log["timings"]) >= {"train", "held_out", "final_evaluation", "total"}


def test_monte_carlo_value_when_data_does_not_fit():
    X_s = uniform_clouds(3, 150, 2, seed=10)
    est = NeuralEMOT(1.0, random_state=0, max_iter=150, evaluation="mc", n_eval_batches=64, batch_size=64).fit(X_s)
    assert est.value_method_ == "mc" and est.value_se_ > 0
    exact = est.value(X_s)  # evaluation='mc' too: compare with the exact dual of the same potentials
    from ot_multimarginal.neural.objectives import exact_dual

    Xt = [torch.tensor(X) for X in X_s]
    w = [torch.full((X.shape[0],), 1.0 / X.shape[0], dtype=torch.float64) for X in X_s]
    f = [torch.tensor(est.potential(i, X)) for i, X in enumerate(X_s)]
    ex = float(exact_dual(est.cost_, Xt, f, 1.0, w))
    assert abs(est.value_ - ex) < 5 * est.value_se_ + 1e-3 * abs(ex)
    assert np.isfinite(exact)


def test_aligned_estimator_warns_on_wide_costs():
    rng = np.random.RandomState(11)
    X_s = [rng.randn(200, 2) * 3 for _ in range(5)]
    with pytest.warns(UserWarning, match="aligned"):
        # refine=False: the 30-step fit is far off and 300 refine sweeps of the log-domain cycle engine take 2 min
        NeuralEMOT(0.1, graph="circle", estimator="aligned", random_state=0, max_iter=30, refine=False).fit(X_s)


def test_callable_cost_aligned_and_combinatorial():
    X_s = uniform_clouds(3, 60, 2, seed=12)

    def c(x, y, z):
        return ((x - y) ** 2).sum(1) + ((y - z) ** 2).sum(1) + ((x - z) ** 2).sum(1)

    ref = sinkhorn_value(X_s, 1.0, "complete")
    v = emot_neural2(X_s, 1.0, cost=c, batch_size=32, random_state=0)
    assert v <= ref + 1e-8 and abs(v - ref) < 0.01 * ref


def test_non_finite_loss_raises_a_clear_error():
    X_s = uniform_clouds(3, 50, 2, seed=13)
    calls = []

    def metric(X, Y):  # finite when the cost is first checked, then overflowing (an unstable outer model)
        calls.append(1)
        C = ((X[:, None, :] - Y[None, :, :]) ** 2).sum(-1)
        return C if len(calls) <= 6 else C * float("inf")

    with pytest.raises(FloatingPointError, match="reg=.*too small.*lr"):
        emot_neural2(X_s, 1.0, metric=metric, random_state=0, numItermax=5)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        (dict(reg=0.0), ValueError, "reg"),
        (dict(reg=1.0, estimator="bogus"), ValueError, "estimator"),
        (dict(reg=1.0, graph="bogus"), ValueError, "graph"),
        (dict(reg=1.0, batch_size=0), ValueError, "batch_size"),
        (dict(reg=1.0, batch_size=1000), ValueError, "batch_size"),
        (dict(reg=1.0, numItermax=0), ValueError, "numItermax"),
        (dict(reg=1.0, lr=-1.0), ValueError, "lr"),
        (dict(reg=1.0, batch_size=2.5), TypeError, "batch_size"),
    ],
)
def test_bad_parameters(kwargs, exc, match):
    X_s = uniform_clouds(3, 20, 2)
    with pytest.raises(exc, match=match):
        emot_neural2(X_s, **kwargs)


def test_bad_inputs():
    X_s = uniform_clouds(3, 20, 2)
    with pytest.raises(ValueError, match="at least 2"):
        emot_neural2(X_s[:1], 1.0)
    bad = [X.copy() for X in X_s]
    bad[1][0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        emot_neural2(bad, 1.0)
    with pytest.raises(ValueError, match="2-D"):
        emot_neural2([X_s[0], X_s[1][:, 0], X_s[2]], 1.0)
    with pytest.raises(ValueError, match="same dimension"):
        emot_neural2([X_s[0], np.ones((20, 3)), X_s[2]], 1.0, numItermax=2)
    with pytest.raises(TypeError, match="same library"):
        emot_neural2([X_s[0], torch.tensor(X_s[1]), X_s[2]], 1.0)
    with pytest.raises(ValueError, match="a_s"):
        emot_neural2(X_s, 1.0, a_s=[np.ones(20), None, None])
    with pytest.raises(RuntimeError, match="not fitted"):
        NeuralEMOT(1.0).potential(0, X_s[0])


def test_torch_value_is_differentiable_in_the_points():
    """The exact value is the dual of the potentials on the inputs: autograd gives its gradient in the points."""
    X_s = [torch.tensor(X, requires_grad=True) for X in uniform_clouds(3, 40, 2, seed=14)]
    v = emot_neural2(X_s, 1.0, random_state=0, numItermax=30)
    assert v.requires_grad
    v.backward()
    assert all(X.grad is not None and torch.isfinite(X.grad).all() for X in X_s)


def test_ustat_estimator_trains():
    X_s = uniform_clouds(3, 60, 2, seed=15)
    ref = sinkhorn_value(X_s, 1.0, "complete")
    v = emot_neural2(X_s, 1.0, estimator="ustat", batch_size=24, random_state=0, numItermax=150)
    assert v <= ref + 1e-8 and abs(v - ref) < 0.02 * ref


def test_value_on_new_points_is_a_lower_bound():
    X_s = uniform_clouds(3, 80, 2, seed=16)
    est = NeuralEMOT(1.0, random_state=0, max_iter=100).fit(X_s)
    Y_s = uniform_clouds(3, 70, 2, seed=17)
    ref = sinkhorn_value(Y_s, 1.0, "complete")
    v = est.value(Y_s)
    assert v <= ref + 1e-8 and abs(v - ref) < 0.05 * ref


def test_shifted_cost_gives_shifted_value_and_same_plan():
    """A constant added to every edge cost (engines centre it, issue 18): the value moves by it, the plan does not."""
    import ot

    X_s = uniform_clouds(3, 60, 2, seed=3)
    shift, reg = -60.0, 0.5
    ref = sinkhorn_value(X_s, reg, "circle")
    est = NeuralEMOT(reg, graph="circle", metric=lambda X, Y: ot.dist(X, Y) + shift, random_state=0).fit(X_s)
    target = ref + 3 * shift
    assert est.value_ <= target + 1e-7 * abs(target)  # still a certified lower bound
    assert abs(est.value_ - target) <= 0.01 * abs(ref), (est.value_, target)
    P = est.plan()
    assert abs(float(P.mass) - 1.0) < 1e-8
    P01 = P.pairwise_marginal(0, 1)
    # the plan on new points (here the same points) agrees with the factored plan, offset included
    np.testing.assert_allclose(
        est.pairwise_plan(0, 1, X_s[0], X_s[1]) / X_s[0].shape[0] / X_s[1].shape[0], P01, rtol=1e-6, atol=1e-12
    )
    S01 = om.empirical_emot_sinkhorn(X_s, reg, graph="circle", stopThr=1e-9, numItermax=20000).pairwise_marginal(0, 1)
    assert 0.5 * np.abs(P01 - S01).sum() <= 0.05
