"""The factored plan (ot_multimarginal.plans.FactoredPlan) against the dense tensor."""

import numpy as np
import pytest
from oracles import dense_pairwise_cost
from ot.backend import NumpyBackend
from scipy.stats import chisquare

from ot_multimarginal._backend import outer_sum
from ot_multimarginal.marginals.dense import DenseEngine
from ot_multimarginal.plans import FactoredPlan, cost_at
from ot_multimarginal.rounding import RoundedState
from ot_multimarginal.sinkhorn import make_engine, solve_potentials

SHAPES = {2: (4, 5), 3: (3, 4, 5), 4: (2, 3, 4, 3)}


def _axes_except(j, k):
    return tuple(i for i in range(k) if i != j)


def _weights(rng, n, zeros=False):
    a = rng.rand(n) + 0.2
    if zeros:
        a[1] = 0.0
    return a / a.sum()


def _solve(nx, k, niter=2, reg=0.3, zeros=False, seed=0):
    """An early-stopped Sinkhorn iterate on a random dense problem."""
    rng = np.random.RandomState(seed + k)
    shape = SHAPES[k]
    M = rng.rand(*shape)
    a_s = [_weights(rng, n, zeros and i == 0) for i, n in enumerate(shape)]
    engine, a_v = make_engine([nx.array(a) for a in a_s], nx.array(M), reg)
    g, _ = solve_potentials(engine, a_v, numItermax=niter, stopThr=0.0, warn=False)
    return M, a_s, engine, a_v, g


def _dense_of(plan, nx, M):
    """The plan's dense tensor computed here in NumPy from its parts."""
    g = [nx.np(x) for x in plan.g]
    D = np.exp(outer_sum(NumpyBackend(), g) - (M - plan.engine.cost_offset) / plan.reg)  # B(g) is centred
    if plan.rounded is not None and float(nx.np(plan.rounded.s)) > 0:
        errs = [nx.np(e) for e in plan.rounded.errs]
        R = errs[0]
        for e in errs[1:]:
            R = np.multiply.outer(R, e)
        D = D + R / float(nx.np(plan.rounded.s)) ** (M.ndim - 1)
    return D


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("rounded", [False, True])
def test_plan_matches_dense(nx, k, rounded):
    M, a_s, engine, a_v, g = _solve(nx, k)
    plan = FactoredPlan(engine, g, a_v)
    if rounded:
        plan = plan.round()
    assert plan.is_rounded == rounded
    assert plan.shape == M.shape and plan.k == k and plan.nx is engine.nx
    D = _dense_of(plan, nx, M)
    tol = nx.tol(1e-13)
    rtol = 1e-4 if nx.float32 else 1e-12
    np.testing.assert_allclose(nx.np(plan.to_dense()), D, rtol=rtol, atol=tol)
    for i in range(k):
        np.testing.assert_allclose(nx.np(plan.marginal(i)), D.sum(axis=_axes_except(i, k)), rtol=rtol, atol=tol)
        for j in range(k):
            if i == j:
                continue
            ref = D.sum(axis=tuple(a for a in range(k) if a not in (i, j)))
            if i > j:
                ref = ref.T
            np.testing.assert_allclose(nx.np(plan.pairwise_marginal(i, j)), ref, rtol=rtol, atol=tol)
    assert abs(float(nx.np(plan.linear_cost())) - (M * D).sum()) <= max(tol, rtol)
    assert abs(float(nx.np(plan.value_linear)) - (M * D).sum()) <= max(tol, rtol)
    assert abs(float(nx.np(plan.mass)) - D.sum()) <= max(tol, rtol)
    rng = np.random.RandomState(1)
    idx = np.stack([rng.randint(n, size=25) for n in M.shape], axis=1)
    np.testing.assert_allclose(nx.np(plan.density(idx)), D[tuple(idx.T)], rtol=rtol, atol=tol)
    # __getitem__: one tuple, and broadcast integer arrays
    one = tuple(int(x) for x in idx[0])
    np.testing.assert_allclose(float(nx.np(plan[one])), D[one], rtol=rtol, atol=tol)
    np.testing.assert_allclose(float(nx.np(plan.density(idx[0]))), D[one], rtol=rtol, atol=tol)
    key = (np.arange(2)[:, None],) + tuple(np.zeros((1, 3), dtype=int) for _ in range(k - 1))
    np.testing.assert_allclose(nx.np(plan[key]), D[key], rtol=rtol, atol=tol)
    if rounded:
        for i in range(k):
            np.testing.assert_allclose(nx.np(plan.marginal(i)), a_s[i], rtol=0, atol=nx.tol(1e-12))
        assert float(nx.np(plan.marginal_error())) <= nx.tol(1e-12) * k * 10


def test_unrounded_plan_is_gibbs_tensor_as_is(nx):
    """No renormalisation: the plan equals exp(engine.log_plan(g)) entrywise."""
    M, a_s, engine, a_v, g = _solve(nx, 3, niter=1)
    plan = FactoredPlan(engine, g, a_v)
    ref = nx.np(engine.nx.exp(engine.log_plan(g)))
    np.testing.assert_allclose(nx.np(plan.to_dense()), ref, rtol=nx.tol(1e-13), atol=0)


def test_rounding_guarantee_via_plan():
    M, a_s, engine, a_v, g = _solve(NumpyNX(), 4, niter=1)
    plan = FactoredPlan(engine, g, a_v)
    X = plan.to_dense()
    Y = plan.round().to_dense()
    E = sum(np.abs(X.sum(axis=_axes_except(j, 4)) - a_s[j]).sum() for j in range(4))
    assert E > 1e-6
    assert np.abs(Y - X).sum() <= 2 * E
    assert float(plan.marginal_error()) == pytest.approx(E, rel=1e-12)
    assert float(plan.round().marginal_error()) < 1e-14


class NumpyNX:
    """Minimal stand-in for the conftest NX helper on NumPy (for tests without the fixture)."""

    backend = NumpyBackend()
    float32 = False
    is_torch = False

    def array(self, x):
        return np.asarray(x, dtype=np.float64)

    def np(self, x):
        return np.asarray(x, dtype=np.float64)

    def tol(self, t):
        return t


def _chi2(samples, P):
    counts = np.zeros(P.size)
    np.add.at(counts, np.ravel_multi_index(tuple(samples.T), P.shape), 1)
    p = P.reshape(-1) / P.sum()
    support = p > 0
    assert counts[~support].sum() == 0, "samples in cells of zero mass"
    exp = p[support] * len(samples)
    assert exp.min() > 5, "chi-square needs expected counts > 5"
    return chisquare(counts[support], exp).pvalue


@pytest.mark.parametrize("method, k", [("sequential", 2), ("sequential", 3), ("sequential", 4), ("dense", 3)])
@pytest.mark.parametrize("rounded", [False, True])
def test_sampling_chi_square(method, k, rounded):
    nxh = NumpyNX()
    # no iteration for the rounded case: g = log a, mass about 1/2, a large rank-one part
    M, a_s, engine, a_v, g = _solve(nxh, k, niter=0 if rounded else 1, reg=0.8)
    plan = FactoredPlan(engine, g, a_v)
    if rounded:
        plan = plan.round()
        assert 0.1 < float(plan.rounded.s) < 0.9  # the mixture is really exercised
    P = plan.to_dense()
    assert P.size == {2: 20, 3: 60, 4: 72}[k]
    samples = plan.sample(20000, random_state=0, method=method)
    assert samples.dtype == np.int64 and samples.shape == (20000, k)
    assert _chi2(samples, P) > 1e-3
    # the same seed gives the same samples
    np.testing.assert_array_equal(samples[:50], plan.sample(20000, random_state=0, method=method)[:50])


def test_sampling_detects_wrong_law():
    """The chi-square check has power: samples of another plan fail it."""
    nxh = NumpyNX()
    _, _, engine, a_v, g = _solve(nxh, 3, niter=1, reg=0.8)
    _, _, engine2, a_v2, g2 = _solve(nxh, 3, niter=1, reg=0.8, seed=5)
    P = FactoredPlan(engine, g, a_v).to_dense()
    other = FactoredPlan(engine2, g2, a_v2).sample(20000, random_state=0)
    assert _chi2(other, P) < 1e-3


@pytest.mark.parametrize("method", ["sequential", "dense"])
def test_sampling_zero_weights(method):
    nxh = NumpyNX()
    M, a_s, engine, a_v, g = _solve(nxh, 3, niter=5, reg=0.8, zeros=True)
    for plan in (FactoredPlan(engine, g, a_v), FactoredPlan(engine, g, a_v).round()):
        samples = plan.sample(3000, random_state=1, method=method)
        assert not np.any(samples[:, 0] == 1)  # a_s[0][1] == 0
        assert samples.min() >= 0 and np.all(samples.max(axis=0) < np.array(M.shape))


def test_sampling_torch(nx):
    M, a_s, engine, a_v, g = _solve(nx, 3, niter=1, reg=0.8)
    plan = FactoredPlan(engine, g, a_v).round()
    for method in ("sequential", "dense"):
        s = plan.sample(500, random_state=np.random.RandomState(0), method=method)
        assert isinstance(s, np.ndarray) and s.dtype == np.int64 and s.shape == (500, 3)
    assert plan.sample(0).shape == (0, 3)


def test_torch_dtype_device(nx):
    if not nx.is_torch:
        pytest.skip("torch only")
    M, a_s, engine, a_v, g = _solve(nx, 3)
    for plan in (FactoredPlan(engine, g, a_v), FactoredPlan(engine, g, a_v).round()):
        outs = [
            plan.marginal(0),
            plan.pairwise_marginal(2, 0),
            plan.density(np.array([[0, 1, 2], [2, 3, 4]])),
            plan[0, 0, 0],
            plan.linear_cost(),
            plan.mass,
            plan.to_dense(),
        ]
        for x in outs:
            assert x.dtype == nx.dtype and x.device.type == nx.device.type


def test_torch_gradient_through_plan(nx):
    """The plan's quantities stay differentiable in the potentials (torch)."""
    if not nx.is_torch or nx.float32:
        pytest.skip("torch float64 only")
    M, a_s, engine, a_v, g = _solve(nx, 3)
    g = [x.detach().clone().requires_grad_(True) for x in g]
    plan = FactoredPlan(engine, g, a_v).round()
    plan.linear_cost().backward()
    assert all(x.grad is not None and bool(x.grad.isfinite().all()) for x in g)


class _PairwiseEngine(DenseEngine):
    """A dense engine on a pairwise cost that exposes ``edges``/``matrices`` and hides ``M``."""

    def __init__(self, shape, edges, mats, reg):
        M = dense_pairwise_cost(shape, edges, mats)
        super().__init__(M, reg, NumpyBackend(), mode="log")  # log mode: marginals go through log_plan
        self._Mh = M
        self.edges = edges
        self.matrices = mats
        self.calls = 0

    def __getattribute__(self, name):
        if name == "M":
            raise AttributeError(name)
        return super().__getattribute__(name)

    def log_plan(self, g):
        self.calls += 1
        return outer_sum(self.nx, g) - self._Mh / self.reg

    def linear_cost(self, g):
        return np.sum(self._Mh * np.exp(self.log_plan(g)))

    def cost_inputs(self):
        return tuple(self.matrices)


def test_structured_fallbacks():
    """cost_at and the rank-one cost through edges/matrices; sequential sampling by default."""
    rng = np.random.RandomState(4)
    shape = (3, 4, 2, 3)
    edges = [(0, 1), (1, 2), (3, 1)]
    mats = [rng.rand(shape[a], shape[b]) for a, b in edges]
    eng = _PairwiseEngine(shape, edges, mats, 0.5)
    a_v = [_weights(rng, n) for n in shape]
    g, _ = solve_potentials(eng, a_v, numItermax=1, stopThr=0.0, warn=False)
    plan = FactoredPlan(eng, g, a_v).round()
    D = _dense_of(plan, NumpyNX(), eng._Mh)
    idx = np.stack([rng.randint(n, size=30) for n in shape], axis=1)
    eng.calls = 0
    np.testing.assert_allclose(cost_at(eng, idx), eng._Mh[tuple(idx.T)], atol=1e-14)
    np.testing.assert_allclose(plan.density(idx), D[tuple(idx.T)], rtol=1e-12)
    assert eng.calls == 0  # no dense pass for entries
    assert abs(plan.linear_cost() - (eng._Mh * D).sum()) < 1e-12
    s = plan.sample(200, random_state=0)  # 'auto' -> sequential (no M)
    assert s.shape == (200, 4)
    np.testing.assert_allclose(plan.to_dense(), D, rtol=1e-12)


def test_sample_gibbs_hook():
    """An engine's own sampler is used by 'auto' for the Gibbs part (not for the rank-one part)."""
    M, a_s, engine, a_v, g = _solve(NumpyNX(), 3)
    calls = []

    def hook(g_, n, rng):
        calls.append(n)
        return np.zeros((n, 3), dtype=np.int64)

    engine.sample_gibbs = hook
    plan = FactoredPlan(engine, g, a_v)
    assert np.all(plan.sample(7, random_state=0) == 0) and calls == [7]
    assert plan.sample(7, random_state=0, method="dense").any()
    del engine.sample_gibbs
    with pytest.raises(ValueError, match="sample_gibbs"):
        plan.sample(3, method="engine")


def test_cost_at_hook_preferred():
    M, a_s, engine, a_v, g = _solve(NumpyNX(), 3)
    seen = []

    def hook(idx):
        seen.append(idx.dtype)
        return engine.M[tuple(idx.T)]

    engine.cost_at = hook
    plan = FactoredPlan(engine, g, a_v)
    plan.density([[0, 0, 0], [1, 2, 3]])
    assert seen == [np.int64]


def test_zero_rank_one_part():
    """A RoundedState with s = 0 adds nothing."""
    M, a_s, engine, a_v, g = _solve(NumpyNX(), 3)
    st = RoundedState(g=list(g), errs=[np.zeros(n) for n in M.shape], s=np.float64(0.0))
    plan = FactoredPlan(engine, None, a_v, rounded=st)
    np.testing.assert_allclose(plan.to_dense(), np.exp(engine.log_plan(g)), rtol=1e-14)
    assert plan.linear_cost() == pytest.approx(engine.linear_cost(g), rel=1e-14)
    assert plan.sample(10, random_state=0).shape == (10, 3)


def test_errors_and_repr():
    M, a_s, engine, a_v, g = _solve(NumpyNX(), 3)
    plan = FactoredPlan(engine, g)
    r = repr(plan)
    assert "FactoredPlan" in r and "(3, 4, 5)" in r and "DenseEngine" in r
    with pytest.raises(ValueError, match="a_s"):
        plan.round()
    with pytest.raises(ValueError, match="a_s"):
        plan.marginal_error()
    rp = FactoredPlan(engine, g, a_v).round()
    assert rp.round() is rp
    assert "rounded=True" in repr(rp)
    with pytest.raises(ValueError, match="rounded.g"):
        FactoredPlan(engine, [x + 1.0 for x in rp.g], a_v, rounded=rp.rounded)
    with pytest.raises(ValueError):
        FactoredPlan(engine, g[:2])
    with pytest.raises(ValueError):
        FactoredPlan(engine, [g[0], g[1], g[2][:3]])
    with pytest.raises(ValueError):
        FactoredPlan(engine, None)
    with pytest.raises(IndexError):
        plan.density([[0, 0, 5]])
    with pytest.raises(IndexError):
        plan.density([[0, -1, 0]])
    with pytest.raises(ValueError):
        plan.density([[0, 0]])
    with pytest.raises(TypeError):
        plan.density([[0.0, 1.0, 2.0]])
    with pytest.raises(IndexError):
        plan[0, :, 0]
    with pytest.raises(IndexError):
        plan[0, 0]
    with pytest.raises(ValueError):
        plan.pairwise_marginal(1, 1)
    with pytest.raises(IndexError):
        plan.marginal(3)
    with pytest.raises(ValueError):
        plan.sample(-1)
    with pytest.raises(ValueError):
        plan.sample(5, method="gibbs")
    with pytest.raises(MemoryError):
        plan.to_dense(memory_budget=100)
    assert plan.marginal(-1).shape == (5,)


# ---- graph-structured engines (PairwiseCost) ---------------------------------

GRAPH_CASES = [
    ("chain", (3, 4, 5)),
    ("star", (3, 4, 2, 3)),
    ("circle", (3, 4, 2, 3)),
    ("complete", (2, 3, 4, 2)),
]


def _graph_problem(nx, graph, shape, niter=1, reg=0.5, seed=0):
    from ot_multimarginal.costs.graph import PairwiseCost, graph_edges

    rng = np.random.RandomState(seed)
    k = len(shape)
    edges = graph_edges(graph, k)
    mats = [nx.array(rng.rand(shape[a], shape[b])) for a, b in edges]
    cost = PairwiseCost.from_matrices(mats, graph)
    a_s = [_weights(rng, n, zeros=(i == 1)) for i, n in enumerate(shape)]
    engine, a_v = make_engine([nx.array(a) for a in a_s], cost, reg)
    g, _ = solve_potentials(engine, a_v, numItermax=niter, stopThr=0.0, warn=False)
    return cost, a_s, engine, a_v, g


@pytest.mark.parametrize("graph, shape", GRAPH_CASES)
@pytest.mark.parametrize("rounded", [False, True])
def test_structured_plan_matches_dense(nx, graph, shape, rounded):
    cost, a_s, engine, a_v, g = _graph_problem(nx, graph, shape)
    assert not hasattr(engine, "M")
    plan = engine.plan(g)
    assert isinstance(plan, FactoredPlan)
    plan = FactoredPlan(engine, g, a_v)
    if rounded:
        plan = plan.round()
    M = nx.np(cost.to_dense())
    k = len(shape)
    D = _dense_of(plan, nx, M)
    tol = nx.tol(1e-13)
    rtol = 1e-4 if nx.float32 else 1e-11
    np.testing.assert_allclose(nx.np(plan.to_dense()), D, rtol=rtol, atol=tol)
    for i in range(k):
        ref = D.sum(axis=_axes_except(i, k))
        np.testing.assert_allclose(nx.np(plan.marginal(i)), ref, rtol=rtol, atol=tol)
        if rounded:
            np.testing.assert_allclose(nx.np(plan.marginal(i)), a_s[i], rtol=0, atol=nx.tol(1e-12))
    for i, j in [(0, k - 1), (k - 1, 1), (1, 2)]:
        ref = D.sum(axis=tuple(a for a in range(k) if a not in (i, j)))
        ref = ref.T if i > j else ref
        np.testing.assert_allclose(nx.np(plan.pairwise_marginal(i, j)), ref, rtol=rtol, atol=tol)
    assert abs(float(nx.np(plan.linear_cost())) - (M * D).sum()) <= max(tol, rtol)
    rng = np.random.RandomState(2)
    idx = np.stack([rng.randint(n, size=20) for n in shape], axis=1)
    np.testing.assert_allclose(nx.np(plan.density(idx)), D[tuple(idx.T)], rtol=rtol, atol=tol)
    np.testing.assert_allclose(nx.np(cost_at(engine, idx)), M[tuple(idx.T)], rtol=rtol, atol=tol)


@pytest.mark.parametrize(
    "graph, shape",
    [
        ("chain", (3, 4, 5)),
        ("circle", (3, 4, 2, 3)),
        ("complete", (2, 3, 4, 2)),
        ("circle", (2, 3, 2, 3, 2)),
        ("complete", (2, 3, 2, 2, 3)),
    ],
)
@pytest.mark.parametrize("rounded", [False, True])
@pytest.mark.parametrize("method", ["auto", "elimination", "sequential"])
def test_structured_sampling_chi_square(graph, shape, rounded, method):
    """Exact samples: 'auto' (the tree engine's forward sampler on a chain, elimination otherwise), the
    vectorised elimination sampler and the per-prefix sequential one, against the dense plan."""
    nxh = NumpyNX()
    cost, a_s, engine, a_v, g = _graph_problem(nxh, graph, shape, niter=0 if rounded else 1, reg=0.8)
    plan = FactoredPlan(engine, g, a_v)
    if rounded:
        plan = plan.round()
        assert float(plan.rounded.s) > 0.05
    if method == "auto" and graph != "chain":
        assert plan._elimination_factors() is not None  # 'auto' takes the vectorised path
    samples = plan.sample(20000, random_state=0, method=method)
    assert samples.shape == (20000, len(shape)) and samples.dtype == np.int64
    assert not np.any(samples[:, 1] == 1)  # a_s[1][1] == 0
    assert _chi2(samples, plan.to_dense()) > 1e-3


def test_tiny_rank_one_part_float32(nx):
    """A rank-one part of mass 1e-12 in k = 5: no s^{k-1} underflow (float32 included)."""
    rng = np.random.RandomState(0)
    shape = (2, 3, 2, 3, 2)
    M = rng.rand(*shape)
    engine, a_v = make_engine(None, nx.array(M), 0.5)
    g = [nx.array(np.full(n, -40.0)) for n in shape]  # Gibbs part negligible (< 1e-80)
    s = 1e-12
    errs_np = [_weights(rng, n) * s for n in shape]
    st = RoundedState(g=g, errs=[nx.array(e) for e in errs_np], s=nx.array(s))
    plan = FactoredPlan(engine, g, rounded=st)
    R = errs_np[0] / s
    for e in errs_np[1:]:
        R = np.multiply.outer(R, e / s)
    R = R * s  # (⊗ err)/s^4 computed stably
    rtol = 1e-5 if nx.float32 else 1e-12
    for i in range(5):
        np.testing.assert_allclose(nx.np(plan.marginal(i)), errs_np[i], rtol=rtol)
    np.testing.assert_allclose(nx.np(plan.pairwise_marginal(3, 1)), np.outer(errs_np[3], errs_np[1]) / s, rtol=rtol)
    idx = np.array([[0, 1, 0, 2, 1], [1, 0, 1, 1, 0]])
    np.testing.assert_allclose(nx.np(plan.density(idx)), R[tuple(idx.T)], rtol=rtol)
    np.testing.assert_allclose(nx.np(plan.to_dense()), R, rtol=rtol)
    np.testing.assert_allclose(float(nx.np(plan.mass)), s, rtol=rtol)
    np.testing.assert_allclose(float(nx.np(plan.linear_cost())), (M * R).sum(), rtol=rtol)


def test_elimination_sampling_small_reg_and_too_large():
    """The elimination tables are in the log domain (reg = 0.002 on a circle: the kernel underflows in
    exp, the samples still follow the plan), and a graph whose tables would not fit is refused."""
    nxh = NumpyNX()
    cost, a_s, engine, a_v, g = _graph_problem(nxh, "circle", (3, 4, 3, 4), niter=0, reg=0.8)
    C = cost.to_dense()
    reg = 0.002
    plan = FactoredPlan(cost.make_engine(reg), g, a_v)
    with np.errstate(divide="ignore"):
        L = -C / reg + sum(np.log(a).reshape([-1 if t == i else 1 for t in range(4)]) for i, a in enumerate(a_v))
    assert L.max() - np.sort(L[np.isfinite(L)])[0] > 745  # exp(-C/reg) underflows in float64 (ratio of the extremes)
    P = np.exp(L - L.max())
    P /= P.sum()
    N = 20000
    samples = plan.sample(N, random_state=3, method="elimination")
    freq = np.zeros(P.size)
    np.add.at(freq, np.ravel_multi_index(tuple(samples.T), P.shape), 1.0 / N)
    p = P.reshape(-1)
    assert freq[p == 0].sum() == 0
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / N) + 1e-12)

    from ot_multimarginal import _elimination

    big = (5, 5, 5, 5)
    log_g = [np.zeros(n) for n in big]
    edges = [(a, b) for a in range(4) for b in range(a + 1, 4)]
    mats = [np.zeros((5, 5)) for _ in edges]
    assert _elimination.elimination_factors(big, edges, mats, log_g, max_entries=100) is None
    assert _elimination.elimination_factors(big, edges, mats, log_g, max_entries=5**4) is not None
