# -*- coding: utf-8 -*-
"""The graph engines (tree, cycle, contraction) against the dense engine.

Every query of the engine protocol is compared, at random log-scalings with
``-inf`` entries (clamped nodes), with the dense log-domain engine on the
tensor the same pairwise cost builds: log-marginals (also along a cyclic
sweep, which exercises the caches), log-partition, pairwise marginals of any
two nodes, edge pairwise marginals, ⟨C, B(g)⟩, the dense log-plan and the
cost gradients.
"""

import numpy as np
import pytest
from oracles import dense_pairwise_cost

from conftest import wide_range_logs
from ot_multimarginal.marginals import ContractionEngine, CycleEngine, DenseEngine, TreeEngine
from ot_multimarginal.marginals.contraction import elimination_plan
from ot_multimarginal.marginals.cycle import cycle_order

# (name, shape, edges): every kind of graph, unequal sizes
GRAPHS = {
    "pair": ((4, 3), [(0, 1)]),
    "chain": ((3, 4, 5, 2), [(0, 1), (1, 2), (2, 3)]),
    "chain_reversed_edges": ((3, 4, 5, 2), [(1, 0), (2, 1), (3, 2)]),
    "star": ((4, 3, 2, 5), [(0, 1), (0, 2), (0, 3)]),
    "tree": ((3, 4, 2, 3, 2), [(2, 0), (0, 1), (1, 3), (1, 4)]),
    "forest": ((3, 4, 2, 3, 2), [(0, 1), (3, 2)]),
    "triangle": ((3, 4, 5), [(0, 1), (1, 2), (2, 0)]),
    "circle": ((3, 4, 2, 5), [(0, 1), (1, 2), (2, 3), (3, 0)]),
    "circle_shuffled": ((3, 4, 2, 5, 3), [(0, 2), (4, 2), (1, 4), (3, 1), (0, 3)]),
    "complete4": ((3, 2, 4, 3), [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]),
    "cycle_chord": ((3, 4, 2, 3, 2), [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (3, 4)]),
    "cycle_plus_component": ((3, 2, 4, 2, 3), [(0, 1), (1, 2), (2, 0), (3, 4)]),
}
TREES = ["pair", "chain", "chain_reversed_edges", "star", "tree", "forest"]
CYCLES = ["triangle", "circle", "circle_shuffled"]


def log_close(a, b, atol):
    """Equal log-arrays (``-inf`` where both are ``-inf``)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    assert a.shape == b.shape
    assert not np.any(np.isnan(a))
    both = np.isneginf(a) & np.isneginf(b)
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(b))
    np.testing.assert_allclose(np.where(both, 0.0, a), np.where(both, 0.0, b), atol=atol, rtol=0)


def make_problem(name, rng, scale=1.0):
    shape, edges = GRAPHS[name]
    mats = [scale * rng.rand(shape[a], shape[b]) for a, b in edges]
    return shape, edges, mats


def random_g(rng, shape, reg, clamp=True):
    g = [rng.randn(n) * 2.0 - 0.5 / reg * rng.rand() for n in shape]
    if clamp:
        g[0][1] = -np.inf
        g[-1][0] = -np.inf
    return g


def engine_classes(name):
    out = [ContractionEngine]
    if name in TREES:
        out.append(TreeEngine)
    if name in CYCLES:
        out.append(CycleEngine)
    return out


def _check_engine(eng, de, g, nx, atol):
    k = eng.k
    gb = [nx.array(v) for v in g]
    # a sweep: marginal i, then a new g_i (the caches must follow)
    for i in range(k):
        log_close(nx.np(eng.log_marginal(gb, i)), de.log_marginal(g, i), atol)
        g = list(g)
        g[i] = g[i] + 0.3
        gb = list(gb)
        gb[i] = nx.array(g[i])
    for a, b in zip(eng.log_marginals(gb), de.log_marginals(g)):
        log_close(nx.np(a), b, atol)
    np.testing.assert_allclose(float(nx.np(eng.log_partition(gb))), float(de.log_partition(g)), atol=atol, rtol=0)
    # the one-shot path (tree: log-domain messages, cycle: log products, complete graph: the split product)
    once = type(eng)(eng.shape, eng.edges, eng.matrices, eng.reg, eng.nx)
    np.testing.assert_allclose(float(nx.np(once.log_partition_once(gb))), float(de.log_partition(g)), atol=atol, rtol=0)
    for i in range(k):
        for j in range(k):
            if i != j:
                log_close(nx.np(eng.log_pairwise_marginal(gb, i, j)), de.log_pairwise_marginal(g, i, j), atol)
    for L, (a, b) in zip(eng.edge_log_pairwise_marginals(gb), eng.edges):
        log_close(nx.np(L), de.log_pairwise_marginal(g, a, b), atol)
    log_close(nx.np(eng.log_plan(gb)), de.log_plan(g), atol)
    return g, gb


@pytest.mark.parametrize("name", sorted(GRAPHS))
@pytest.mark.parametrize("reg", [1.0, 1e-3])
def test_engines_match_dense_numpy(name, reg, rng):
    """All engines that accept the graph, at ε = 1 and ε = 1e-3 with costs in [0, 1]."""
    from ot.backend import NumpyBackend

    from conftest import NX

    nx = NX(NumpyBackend())
    shape, edges, mats = make_problem(name, rng)
    atol = 1e-12 / reg
    for cls in engine_classes(name):
        eng = cls(shape, edges, mats, reg, nx.backend)
        # the same centred Gibbs tensor (the engines' cost offsets differ by default)
        de = DenseEngine(
            dense_pairwise_cost(shape, edges, mats), reg, nx.backend, mode="log", cost_offset=eng.cost_offset
        )
        g = random_g(rng, shape, reg)
        g, gb = _check_engine(eng, de, g, nx, atol)
        # linear cost and cost gradients (moderate values so that the mass is finite)
        g = [v - np.max(v) for v in g]
        lc = eng.linear_cost(g)
        P = np.exp(de.log_plan(g))
        C = dense_pairwise_cost(shape, edges, mats)
        np.testing.assert_allclose(lc, np.sum(C * P), rtol=1e-10, atol=1e-300)
        grads = eng.cost_gradients(g)
        for G, (a, b) in zip(grads, edges):
            Pab = np.exp(de.log_pairwise_marginal(g, a, b) - de.log_mass(g))
            np.testing.assert_allclose(G, Pab, rtol=1e-9, atol=1e-300)


@pytest.mark.parametrize("name", ["chain", "star", "forest", "triangle", "circle_shuffled", "cycle_chord"])
def test_engines_match_dense_backends(name, nx, rng):
    """Same on every backend (float32: finite and close)."""
    reg = 0.1
    shape, edges, mats = make_problem(name, rng)
    atol = 2e-3 if nx.float32 else 1e-11
    for cls in engine_classes(name):
        eng = cls(shape, edges, [nx.array(M) for M in mats], reg, nx.backend)
        de = DenseEngine(
            dense_pairwise_cost(shape, edges, mats), reg, nx_numpy(), mode="log", cost_offset=eng.cost_offset
        )
        g = random_g(rng, shape, reg)
        _check_engine(eng, de, g, nx, atol)


def nx_numpy():
    from ot.backend import NumpyBackend

    return NumpyBackend()


@pytest.mark.parametrize("mode", ["scaled", "log"])
@pytest.mark.parametrize("reg", [0.05, 1e-3])
def test_cycle_modes(mode, reg, rng):
    """Scaled products (with their fallbacks at tiny ε) and log-domain products agree with dense."""
    nx = nx_numpy()
    shape, edges = (5, 6, 4, 5), [(0, 1), (1, 2), (2, 3), (3, 0)]
    mats = [rng.rand(shape[a], shape[b]) * 3 for a, b in edges]
    de = DenseEngine(dense_pairwise_cost(shape, edges, mats), reg, nx, mode="log")
    eng = CycleEngine(shape, edges, mats, reg, nx, mode=mode)
    g = [np.log(np.full(n, 1.0 / n)) for n in shape]
    for _sweep in range(6):
        for i in range(4):
            lr = eng.log_marginal(g, i)
            log_close(lr, de.log_marginal(g, i), 1e-12 / reg)
            g = list(g)
            g[i] = g[i] + np.log(1.0 / shape[i]) - lr
    if mode == "scaled" and reg < 0.01:
        assert eng.n_fallbacks >= 1  # the scaled products cannot resolve ε = 1e-3 here


def test_cycle_order_and_errors():
    assert cycle_order(4, [(0, 1), (1, 2), (2, 3), (3, 0)]) == [0, 1, 2, 3]
    assert cycle_order(4, [(0, 3), (3, 1), (1, 2), (2, 0)]) == [0, 2, 1, 3]
    with pytest.raises(ValueError, match="single cycle"):
        cycle_order(4, [(0, 1), (1, 2), (2, 0), (0, 3)])
    with pytest.raises(ValueError, match="single cycle"):
        cycle_order(6, [(0, 1), (1, 2), (2, 0), (3, 4), (4, 5), (5, 3)])
    nx = nx_numpy()
    rng = np.random.RandomState(0)
    shape, edges, mats = make_problem("chain", rng)
    with pytest.raises(ValueError, match="cycle"):
        CycleEngine(shape, edges, mats, 0.1, nx)
    shape, edges, mats = make_problem("circle", rng)
    with pytest.raises(ValueError, match="acyclic"):
        TreeEngine(shape, edges, mats, 0.1, nx)
    with pytest.raises(ValueError, match="mode"):
        CycleEngine(shape, edges, mats, 0.1, nx, mode="fast")


def test_pairwise_marginal_arguments():
    nx = nx_numpy()
    rng = np.random.RandomState(0)
    shape, edges, mats = make_problem("chain", rng)
    eng = TreeEngine(shape, edges, mats, 0.1, nx)
    g = [np.zeros(n) for n in shape]
    with pytest.raises(ValueError, match="different"):
        eng.log_pairwise_marginal(g, 1, 1)
    with pytest.raises(ValueError, match="node"):
        eng.log_pairwise_marginal(g, 0, 7)
    with pytest.raises(ValueError, match="log-scalings"):
        eng.log_marginal(g[:2], 0)


def test_elimination_plan_complete_graph():
    """k = 3 complete graph: one matrix product, then one reduction, per marginal."""
    steps, final, peak = elimination_plan((5, 5, 5), [(0, 1), (1, 2), (0, 2)], (0,))
    assert len(steps) == 2
    assert steps[0]["G2"] and steps[0]["dims"] == (1, 5, 5, 5)
    assert not steps[1]["G2"]
    assert peak == 25
    # complete graph on 5 nodes: memory n^3 (treewidth 4 minus the kept node), never n^5
    E = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    _, _, peak = elimination_plan((4,) * 5, E, (0,))
    assert peak <= 4**4


def test_contraction_memory_budget():
    nx = nx_numpy()
    E = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    mats = [np.zeros((20, 20)) for _ in E]
    with pytest.raises(MemoryError, match="contraction") as info:
        ContractionEngine((20,) * 5, E, mats, 0.1, nx, memory_budget=10**5)
    # issue 15: the advice is what scales, not graph='complete' again
    msg = str(info.value)
    assert "treewidth 4" in msg and "chain, tree, star or circle" in msg and "emot_neural" in msg
    assert "graph='complete'" not in msg and "ot_multimarginal.costs.graph" in msg


def test_detached_and_repr(rng):
    nx = nx_numpy()
    for name in ["chain", "triangle", "cycle_chord"]:
        shape, edges, mats = make_problem(name, rng)
        for cls in engine_classes(name):
            eng = cls(shape, edges, mats, 0.5, nx)
            d = eng.detached()
            assert type(d) is type(eng) and d.shape == eng.shape and d.edges == eng.edges
            assert cls.__name__ in repr(eng)
            g = random_g(rng, shape, 0.5)
            log_close(d.log_marginal(g, 0), eng.log_marginal(g, 0), 1e-12)
            assert len(eng.cost_inputs()) == len(edges)


def test_log_plan_memory_guard(rng):
    nx = nx_numpy()
    shape, edges, mats = make_problem("chain", rng)
    eng = TreeEngine(shape, edges, mats, 0.5, nx, memory_budget=100)
    with pytest.raises(MemoryError):
        eng.log_plan([np.zeros(n) for n in shape])


def test_large_tree_without_tensor(rng):
    """A chain of 30 nodes (10^30 entries): marginals sum to the same mass."""
    nx = nx_numpy()
    k, n = 30, 10
    edges = [(t, t + 1) for t in range(k - 1)]
    mats = [rng.rand(n, n) for _ in edges]
    eng = TreeEngine((n,) * k, edges, mats, 0.01, nx)
    g = [rng.randn(n) for _ in range(k)]
    logZ = [float(nx.logsumexp(lr)) for lr in eng.log_marginals(g)]
    np.testing.assert_allclose(logZ, logZ[0], atol=1e-9)
    ct = ContractionEngine((n,) * k, edges, mats, 0.01, nx)
    np.testing.assert_allclose(float(ct.log_partition(g)), logZ[0], atol=1e-9)


@pytest.mark.parametrize("k, scale", [(3, 10.0), (4, 30.0)])
def test_cycle_scaled_recomputes_missed_entries(k, scale):
    """Wide cost range: the scaled products miss a few entries, recomputed exactly in the log domain.

    k = 3 takes the triangle's through-products, k = 4 the prefix/suffix products.
    """
    nx = nx_numpy()
    rng = np.random.RandomState(0)
    n, reg = 12, 0.02
    shape = (n, n + 1, n - 1, n)[:k]
    edges = [(i, (i + 1) % k) for i in range(k)]
    mats = [rng.rand(shape[a], shape[b]) * scale for a, b in edges]
    eng = CycleEngine(shape, edges, mats, reg, nx, mode="scaled")
    de = DenseEngine(dense_pairwise_cost(shape, edges, mats), reg, nx, mode="log")
    g = [np.log(np.full(m, 1.0 / m)) for m in shape]
    for _sweep in range(10):
        for i in range(k):
            lr = eng.log_marginal(g, i)
            log_close(lr, de.log_marginal(g, i), 1e-11 / reg)
            g = list(g)
            g[i] = g[i] + np.log(1.0 / shape[i]) - lr
    assert eng.n_exact_entries > 0


@pytest.mark.parametrize("k", [3, 5])
def test_cycle_products_per_sweep(k):
    """Cyclic sweeps cost 1.5 matrix products on a triangle, about 2(k - 2) on longer cycles."""
    nx = nx_numpy()
    rng = np.random.RandomState(1)
    shape = (9, 10, 11, 8, 7)[:k]
    edges = [(i, (i + 1) % k) for i in range(k)]
    mats = [rng.rand(shape[a], shape[b]) for a, b in edges]
    eng = CycleEngine(shape, edges, mats, 0.5, nx, mode="scaled")
    de = DenseEngine(dense_pairwise_cost(shape, edges, mats), 0.5, nx)
    g = [np.log(np.full(m, 1.0 / m)) for m in shape]
    sweeps = 20
    for sweep in range(sweeps + 1):
        if sweep == 1:
            start = eng.n_products
        for i in range(k):
            lr = eng.log_marginal(g, i)
            log_close(lr, de.log_marginal(g, i), 1e-12)
            g = list(g)
            g[i] = g[i] + np.log(1.0 / shape[i]) - lr
    per_sweep = (eng.n_products - start) / sweeps
    assert eng.n_fallbacks == 0
    if k == 3:
        assert per_sweep == 1.5
    else:
        assert per_sweep <= 2 * (k - 2)


@pytest.mark.parametrize("k", [4, 5])
def test_contraction_reuses_factors_across_updates(nx, k):
    """Complete graph: memoised elimination factors follow the updated log-scalings exactly."""
    rng = np.random.RandomState(3)
    shape = (5, 6, 4, 5, 3)[:k]
    edges = [(i, j) for i in range(k) for j in range(i + 1, k)]
    mats = [rng.rand(shape[a], shape[b]) for a, b in edges]
    eng = ContractionEngine(shape, edges, [nx.array(m) for m in mats], 0.2, nx.backend)
    de = DenseEngine(dense_pairwise_cost(shape, edges, mats), 0.2, nx_numpy())
    g = [np.log(np.full(m, 1.0 / m)) for m in shape]
    gb = [nx.array(x) for x in g]
    for _sweep in range(3):
        for i in range(k):
            lr = nx.np(eng.log_marginal(gb, i))
            ld = de.log_marginal(g, i)
            np.testing.assert_allclose(lr, ld, rtol=0, atol=nx.tol(1e-11) * 10)
            g = list(g)
            g[i] = g[i] + np.log(1.0 / shape[i]) - ld
            gb = list(gb)
            gb[i] = nx.array(g[i])
    assert eng.n_reused > 0
    # all marginals at once, after the sweeps: still exact
    for i, lr in enumerate(eng.log_marginals(gb)):
        np.testing.assert_allclose(nx.np(lr), de.log_marginal(g, i), rtol=0, atol=nx.tol(1e-11) * 10)


def test_triangle_float32_takes_scaled_products(nx):
    """Triangles use the scaled through-products in float32 too ('auto'), checked against float64."""
    if not nx.float32:
        pytest.skip("float32 only")
    rng = np.random.RandomState(4)
    shape = (30, 25, 20)
    edges = [(0, 1), (1, 2), (2, 0)]
    X = [rng.randn(m, 2) for m in shape]
    mats = [((X[a][:, None, :] - X[b][None, :, :]) ** 2).sum(-1) for a, b in edges]
    reg = 0.1
    eng = CycleEngine(shape, edges, [nx.array(m) for m in mats], reg, nx.backend)
    de = DenseEngine(dense_pairwise_cost(shape, edges, mats), reg, nx_numpy())
    g = [np.log(np.full(m, 1.0 / m)) for m in shape]
    gb = [nx.array(x) for x in g]
    for _sweep in range(30):
        for i in range(3):
            lr = nx.np(eng.log_marginal(gb, i))
            ld = de.log_marginal(g, i)
            # float32 log-marginals: a few ulps of the log of each entry
            np.testing.assert_allclose(lr, ld, rtol=0, atol=1e-4 * max(1.0, np.abs(ld).max()))
            g = list(g)
            g[i] = g[i] + np.log(1.0 / shape[i]) - ld
            gb = list(gb)
            gb[i] = nx.array(g[i])
    assert eng._mode == "scaled" and eng.n_fallbacks == 0
    assert eng.n_products <= 1.5 * 30 + 2


# ---- the skip of negligible underflowed entries (pairwise_marginal, log_matmul's addend) ----
def _spread_triangle(nx, n=40, scale=3.0, seed=1):
    """A triangle whose log-kernels span thousands of nats: most products underflow."""
    r = np.random.RandomState(seed)
    X = [r.randn(n, 2) * scale for _ in range(3)]
    edges = [(0, 1), (1, 2), (2, 0)]
    mats = [((X[a][:, None] - X[b][None]) ** 2).sum(-1) for a, b in edges]
    return (n, n, n), edges, [nx.array(M) for M in mats]


@pytest.mark.parametrize("reg", [0.05, 0.01])
def test_pairwise_marginal_skip_matches_exact(nx, reg, monkeypatch):
    """Skipping the provably negligible entries changes no row or column sum (and no entry) beyond eps^2-level.

    Compared at the same log-scalings with the skip turned off (``OT_MULTIMARGINAL_NO_SKIP=1``), on
    strongly underflowing products (spread clouds, small reg), in float64 and float32; the skip must
    actually have dropped entries (counted through :func:`negligible_entries`).
    """
    from ot_multimarginal.marginals import _pairwise

    shape, edges, mats = _spread_triangle(nx)
    r = np.random.RandomState(2)
    g = [nx.array(r.randn(n) * 3.0) for n in shape]
    eng = CycleEngine(shape, edges, mats, reg, nx.backend, mode="log")  # the log-domain products, with their skip
    skipped = []
    orig = _pairwise.negligible_entries

    def counting(*args):
        out = orig(*args)
        skipped.append(0 if out is None else int(nx.np(out).sum()))
        return out

    monkeypatch.setattr(_pairwise, "negligible_entries", counting)
    rtol = 1e-12 if not nx.float32 else 1e-4  # float32: exact log-domain entries differ by |log| * eps between paths
    for i, j in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]:
        L = nx.np(eng.log_pairwise_marginal(g, i, j))
        gg = list(g)
        gg[i] = g[i] - float(L.max())  # pairwise marginal of maximum ~1: every entry of interest representable
        monkeypatch.setenv("OT_MULTIMARGINAL_NO_SKIP", "1")
        exact = nx.np(eng.pairwise_marginal(gg, i, j))
        monkeypatch.setenv("OT_MULTIMARGINAL_NO_SKIP", "0")
        fast = eng.pairwise_marginal(gg, i, j)
        assert nx.is_torch == (not isinstance(fast, np.ndarray))
        fast = nx.np(fast)
        assert exact.shape == fast.shape == (shape[i], shape[j])
        assert np.all(np.isfinite(fast)) and np.all(fast <= exact * (1 + 1e-5) + 1e-300)
        for ax in (0, 1):
            s_e, s_f = exact.sum(ax), fast.sum(ax)
            pos = s_e > 0
            np.testing.assert_allclose(s_f[pos], s_e[pos], rtol=rtol, atol=0)
        # every entry to eps^2-level of its row maximum
        scale = exact.max(1, keepdims=True)
        assert np.all(np.abs(fast - exact) <= rtol * scale)
    assert sum(skipped) > 0


def test_log_pairwise_marginal_stays_exact_with_skip(rng):
    """``log_pairwise_marginal`` (log values, compared entry by entry elsewhere) never skips."""
    from ot.backend import NumpyBackend

    from conftest import NX

    nx = NX(NumpyBackend())
    shape, edges, mats = _spread_triangle(nx, n=12)
    g = [rng.randn(n) for n in shape]
    eng = CycleEngine(shape, edges, mats, 0.01, nx.backend)
    de = DenseEngine(dense_pairwise_cost(shape, edges, mats), 0.01, nx.backend, mode="log", cost_offset=eng.cost_offset)
    for i, j in [(0, 1), (0, 2), (2, 1)]:
        log_close(eng.log_pairwise_marginal(g, i, j), de.log_pairwise_marginal(g, i, j), 1e-9)


@pytest.mark.parametrize("reg", [0.5, 0.05])
def test_triangle_pairwise_marginal_scaled_matches_exact(nx, reg, monkeypatch):
    """The triangle's pairwise marginals from the scaled through-products (and their repaired entries) against the
    exact log-domain ones, at log-scalings near and far from balance; and the linear cost with the skip."""
    shape, edges, mats = _spread_triangle(nx, n=30, scale=2.0, seed=3)
    r = np.random.RandomState(4)
    eng = CycleEngine(shape, edges, mats, reg, nx.backend)
    rtol = 1e-12 if not nx.float32 else 1e-4  # float32: the log-domain reference itself errs by |log| * eps
    for spread in (0.0, 3.0, 30.0):
        g = [nx.array(r.randn(n) * spread) for n in shape]
        for i, j in [(0, 1), (2, 0), (1, 2)]:
            L = nx.np(eng.log_pairwise_marginal(g, i, j))
            gg = list(g)
            gg[i] = g[i] - float(L.max())
            exact = nx.np(nx.exp(eng.log_pairwise_marginal(gg, i, j)))  # exp in the working dtype
            fast = nx.np(eng.pairwise_marginal(gg, i, j))
            tiny = np.finfo(np.float32 if nx.float32 else np.float64).tiny
            for ax in (0, 1):
                s_e, s_f = exact.sum(ax), fast.sum(ax)
                full = s_e >= tiny / rtol  # sums in the dtype's normal range, to rtol
                np.testing.assert_allclose(s_f[full], s_e[full], rtol=rtol, atol=0)
            assert np.all(np.abs(fast - exact) <= rtol * exact.max(1, keepdims=True))
        monkeypatch.setenv("OT_MULTIMARGINAL_NO_SKIP", "1")
        lc_exact = float(nx.np(eng.linear_cost(g)))
        monkeypatch.setenv("OT_MULTIMARGINAL_NO_SKIP", "0")
        np.testing.assert_allclose(float(nx.np(eng.linear_cost(g))), lc_exact, rtol=rtol, atol=0)


# ---- log_matmul in float32 beyond its exponent range: the product again in float64 ----
def test_log_matmul_float32_repairs_through_float64(monkeypatch):
    """float32 ``log_matmul`` whose scaled product mostly underflows: every entry equals the float64
    log-sum-exp to float32 rounding (gradient too, torch), with no ``p x q x r`` log-sum-exp formed (the product
    is redone in float64, O(n^2) exponentials) and the result in float32; NumPy float32 the same."""
    torch = pytest.importorskip("torch")
    from ot.backend import NumpyBackend, TorchBackend

    from ot_multimarginal.marginals import _pairwise
    from ot_multimarginal.marginals._pairwise import Precision, log_matmul

    rng = np.random.RandomState(0)
    L1, L2 = wide_range_logs(rng)
    ref = np.array([[np.logaddexp.reduce(L1[a] + L2[:, c]) for c in range(L2.shape[1])] for a in range(L1.shape[0])])
    P32 = np.exp(L1 - L1.max(1, keepdims=True)).astype(np.float32) @ np.exp(L2 - L2.max(0, keepdims=True)).astype(
        np.float32
    )
    assert np.mean(P32 < L1.shape[1] * Precision(np.zeros(1, np.float32)).factor) > 0.5  # the case: mostly underflow
    sizes = []
    orig = _pairwise.logsumexp

    def counting(nx, X, axis):
        sizes.append(int(np.prod(X.shape)))
        return orig(nx, X, axis)

    monkeypatch.setattr(_pairwise, "logsumexp", counting)
    full = L1.shape[0] * L1.shape[1] * L2.shape[1]
    # NumPy float32
    nx = NumpyBackend()
    a1, a2 = L1.astype(np.float32), L2.astype(np.float32)
    out = log_matmul(nx, a1, a2, Precision(a1))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, ref, rtol=4 * np.finfo(np.float32).eps, atol=0)
    assert max(sizes, default=0) < full / 4
    # torch float32, with autograd against the float64 reference gradient
    nx = TorchBackend()
    t1 = torch.tensor(L1, dtype=torch.float32, requires_grad=True)
    t2 = torch.tensor(L2, dtype=torch.float32, requires_grad=True)
    sizes.clear()
    out = log_matmul(nx, t1, t2, Precision(t1))
    assert out.dtype == torch.float32 and max(sizes, default=0) < full / 4
    np.testing.assert_allclose(out.detach().numpy(), ref, rtol=4 * np.finfo(np.float32).eps, atol=0)
    w = torch.tensor(rng.randn(*ref.shape), dtype=torch.float32)
    (out * w).sum().backward()
    d1 = torch.tensor(L1, requires_grad=True)
    d2 = torch.tensor(L2, requires_grad=True)
    (torch.logsumexp(d1[:, :, None] + d2[None], 1) * w.double()).sum().backward()
    for got, want in ((t1.grad, d1.grad), (t2.grad, d2.grad)):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6 * float(want.abs().max()))
