# -*- coding: utf-8 -*-
"""PairwiseCost: construction, validation, and solves against the dense solver."""

import warnings

import numpy as np
import pytest

from ot_multimarginal import emot_sinkhorn, emot_sinkhorn2, empirical_emot_sinkhorn2
from ot_multimarginal.costs import PairwiseCost, cost_tensor, graph_edges
from ot_multimarginal.marginals import ContractionEngine, CycleEngine, TreeEngine
from ot_multimarginal.sinkhorn import make_engine, solve_potentials

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def rand_mats(rng, shape, edges, scale=1.0):
    return [scale * rng.rand(shape[a], shape[b]) for a, b in edges]


def random_weights(rng, n):
    a = rng.rand(n) + 0.2
    return a / a.sum()


# ---- construction ------------------------------------------------------------
def test_named_graphs_edges():
    assert graph_edges("chain", 4) == [(0, 1), (1, 2), (2, 3)]
    assert graph_edges("circle", 3) == [(0, 1), (1, 2), (2, 0)]
    assert graph_edges("star", 4, center=2) == [(2, 0), (2, 1), (2, 3)]
    assert graph_edges("complete", 4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert graph_edges("tree", 3, edges=[(0, 2), (2, 1)]) == [(0, 2), (2, 1)]
    assert graph_edges([(0, 1), [1, 2]], 3) == [(0, 1), (1, 2)]


@pytest.mark.parametrize(
    "graph, k, kind, engine",
    [
        ("chain", 4, "chain", TreeEngine),
        ("star", 5, "star", TreeEngine),
        ("circle", 5, "circle", CycleEngine),
        ("complete", 3, "complete", CycleEngine),  # the triangle is a cycle
        ("complete", 4, "complete", ContractionEngine),
    ],
)
def test_from_matrices_kinds_and_engines(graph, k, kind, engine, rng):
    shape = tuple(rng.randint(2, 5, size=k))
    edges = graph_edges(graph, k)
    C = PairwiseCost.from_matrices(rand_mats(rng, shape, edges), graph)
    assert C.shape == shape and C.k == k and C.edges == edges and C.graph_kind == kind
    assert isinstance(C.make_engine(0.1), engine)
    assert C.nx is not None and C.type_as is C.matrices[0]
    assert "PairwiseCost" in repr(C)


def test_named_constructors(rng):
    shape = (3, 4, 2, 5)
    C = PairwiseCost.chain(rand_mats(rng, shape, graph_edges("chain", 4)))
    assert C.shape == shape and C.is_tree
    C = PairwiseCost.circle(rand_mats(rng, shape, graph_edges("circle", 4)))
    assert C.is_cycle and C.engine_kind() == "cycle"
    C = PairwiseCost.star(rand_mats(rng, shape, graph_edges("star", 4, center=1)), center=1)
    assert C.edges[0] == (1, 0) and C.graph_kind == "star"
    E = [(0, 2), (2, 1), (2, 3)]
    C = PairwiseCost.tree(E, rand_mats(rng, shape, E))
    assert C.graph_kind == "tree" and C.engine_kind() == "tree"
    C = PairwiseCost.complete(rand_mats(rng, shape, graph_edges("complete", 4)))
    assert C.engine_kind() == "contraction"
    # detected kinds
    E = [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2)]
    C = PairwiseCost(E, rand_mats(rng, shape, E))
    assert C.graph_kind == "graph" and C.engine_kind() == "contraction"
    E = [(0, 1), (2, 3)]
    C = PairwiseCost(E, rand_mats(rng, shape, E))
    assert C.graph_kind == "forest" and C.n_components == 2 and C.engine_kind() == "tree"


def test_isolated_node_needs_shape(rng):
    E = [(0, 2)]
    mats = [rng.rand(3, 4)]
    with pytest.raises(ValueError, match="no edge.*shape"):
        PairwiseCost(E, mats)
    C = PairwiseCost(E, mats, shape=(3, 5, 4))
    assert C.shape == (3, 5, 4) and C.engine_kind() == "tree"
    # the isolated node is independent: value = 2-marginal value + 0
    v = emot_sinkhorn2(None, C, 0.2)
    vd = emot_sinkhorn2(None, C.to_dense(), 0.2)
    np.testing.assert_allclose(v, vd, rtol=1e-10)


@pytest.mark.parametrize(
    "edges, mats_shapes, err, match",
    [
        ([(0, 1), (1, 2), (2, 0)], None, ValueError, "graph='tree'.*cycle"),
        ([(0, 1), (1, 1)], None, ValueError, "self-loop"),
        ([(0, 1), (1, 0)], None, ValueError, "duplicates"),
        ([(0, 1), (1, 2)], [(3, 4), (5, 2)], ValueError, r"matrices\[1\].*node 1 size 5"),
        ([(0, 1), (-1, 2)], None, ValueError, "negative"),
        ([(0, 1), (1, 2.0)], None, TypeError, "integers"),
        ([(0, 1, 2)], None, ValueError, "pair"),
    ],
)
def test_validation_errors(edges, mats_shapes, err, match, rng):
    if mats_shapes is None:
        mats_shapes = [(3, 3)] * len(edges)
    mats = [rng.rand(*s) for s in mats_shapes]
    with pytest.raises(err, match=match):
        PairwiseCost.tree(edges, mats) if "tree" in match else PairwiseCost(edges, mats)


def test_validation_errors_more(rng):
    with pytest.raises(ValueError, match="missing node"):
        PairwiseCost([(0, 3)], [rng.rand(3, 3)], shape=(3, 3))
    with pytest.raises(ValueError, match="one matrix per edge"):
        PairwiseCost([(0, 1), (1, 2)], [rng.rand(3, 3)])
    with pytest.raises(ValueError, match="2-D"):
        PairwiseCost([(0, 1)], [rng.rand(3)])
    bad = rng.rand(3, 3)
    bad[1, 1] = np.nan
    with pytest.raises(ValueError, match=r"matrices\[1\].*NaN or inf"):
        PairwiseCost([(0, 1), (1, 2)], [rng.rand(3, 3), bad])
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        PairwiseCost([(0, 1)], [bad])
    with pytest.raises(TypeError, match="floating"):
        PairwiseCost([(0, 1)], [np.ones((2, 2), dtype=int)])
    with pytest.raises(TypeError, match="dtype"):
        PairwiseCost([(0, 1), (1, 2)], [rng.rand(2, 2), rng.rand(2, 2).astype(np.float32)])
    with pytest.raises(ValueError, match="empty"):
        PairwiseCost([], [])
    with pytest.raises(ValueError, match="complete.*k\\(k-1\\)/2"):
        PairwiseCost.from_matrices([rng.rand(2, 2)] * 2, "complete")
    with pytest.raises(ValueError, match="circle"):
        PairwiseCost.from_matrices([rng.rand(2, 2)] * 2, "circle")
    with pytest.raises(ValueError, match="graph must be one of"):
        PairwiseCost.from_matrices([rng.rand(2, 2)], "ring")
    with pytest.raises(TypeError, match="graph must be"):
        PairwiseCost.from_matrices([rng.rand(2, 2)], 3)
    with pytest.raises(ValueError, match="center"):
        graph_edges("star", 3, center=5)
    with pytest.raises(ValueError, match="edges="):
        graph_edges("tree", 3)
    with pytest.raises(ValueError, match="graph_kind='circle'"):
        PairwiseCost([(0, 1), (1, 2)], [rng.rand(2, 2)] * 2, graph_kind="circle")
    C = PairwiseCost.chain([rng.rand(2, 2)] * 2)
    with pytest.raises(ValueError, match="engine must be"):
        C.make_engine(0.1, engine="magic")
    with pytest.raises(ValueError, match="reg"):
        C.make_engine(-1.0)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_mixed_backends(rng):
    with pytest.raises(TypeError, match="same library"):
        PairwiseCost([(0, 1), (1, 2)], [rng.rand(2, 2), torch.rand(2, 2, dtype=torch.float64)])
    X = [rng.randn(3, 2), torch.randn(3, 2, dtype=torch.float64)]
    with pytest.raises(TypeError):
        PairwiseCost.from_point_clouds(X, graph="chain")


def test_to_dense_matches_cost_tensor(nx, rng):
    X = [nx.array(rng.randn(n, 2)) for n in (3, 4, 5, 2)]
    C = PairwiseCost.from_point_clouds(X, graph="complete")
    np.testing.assert_allclose(nx.np(C.to_dense()), nx.np(cost_tensor(X)), rtol=1e-6 if nx.float32 else 1e-12)
    with pytest.raises(MemoryError, match="What scales"):
        C.to_dense(memory_budget=100)
    # per-edge metrics and callables, in the order of the edges
    D = PairwiseCost.from_point_clouds(
        X, graph="chain", metric=["sqeuclidean", "euclidean", lambda x, y: nx.ones((x.shape[0], y.shape[0]), type_as=x)]
    )
    np.testing.assert_allclose(nx.np(D.matrices[2]), 1.0)
    np.testing.assert_allclose(nx.np(D.matrices[1]) ** 2, nx.np(C.matrices[3]), rtol=1e-5 if nx.float32 else 1e-10)
    idx = np.array([[0, 1, 2, 1], [2, 3, 4, 0]])
    T = nx.np(C.to_dense())
    np.testing.assert_allclose(nx.np(C.cost_at(idx)), [T[tuple(i)] for i in idx], rtol=1e-6 if nx.float32 else 1e-12)


def test_from_point_clouds_errors(rng):
    X = [rng.randn(3, 2), rng.randn(4, 2), rng.randn(2, 2)]
    with pytest.raises(ValueError, match="one per edge"):
        PairwiseCost.from_point_clouds(X, graph="chain", metric=["sqeuclidean"])
    with pytest.raises(ValueError, match="missing node"):
        PairwiseCost.from_point_clouds(X, graph=[(0, 1), (1, 3)])
    with pytest.raises(ValueError, match="dimension"):
        PairwiseCost.from_point_clouds([rng.randn(3, 2), rng.randn(3, 3)], graph="chain")
    C = PairwiseCost.from_point_clouds(X, graph="tree", edges=[(0, 2), (2, 1)])
    assert C.edges == [(0, 2), (2, 1)]


# ---- solves against the dense solver ------------------------------------------
GRAPH_CASES = {
    "chain": ((4, 3, 5, 3), "chain"),
    "star": ((4, 3, 5, 3), "star"),
    "tree": ((4, 3, 5, 3, 2), [(3, 0), (0, 1), (1, 2), (1, 4)]),
    "circle": ((4, 3, 5, 3), "circle"),
    "triangle": ((4, 3, 5), "complete"),
    "complete4": ((4, 3, 3, 2), "complete"),
    "cycle_chord": ((4, 3, 2, 3, 2), [(0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (3, 4)]),
}


def _solve_both(C, a_s, reg, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v, log = emot_sinkhorn2(a_s, C, reg, log=True, **kw)
        vd, logd = emot_sinkhorn2(a_s, C.to_dense(), reg, log=True, **kw)
    return v, log, vd, logd


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_solve_matches_dense(name, rng):
    shape, graph = GRAPH_CASES[name]
    edges = graph_edges(graph, len(shape))
    C = PairwiseCost(edges, rand_mats(rng, shape, edges), graph_kind=graph if isinstance(graph, str) else None)
    a_s = [random_weights(rng, n) for n in shape]
    v, log, vd, logd = _solve_both(C, a_s, 0.1, stopThr=1e-11, numItermax=5000)
    assert log["converged"] and log["niter"] == logd["niter"]
    np.testing.assert_allclose(v, vd, rtol=1e-8)
    np.testing.assert_allclose(log["value_linear"], logd["value_linear"], rtol=1e-8)
    for p, pd in zip(log["potentials"], logd["potentials"]):
        np.testing.assert_allclose(p - p.mean(), pd - pd.mean(), atol=1e-8)
    # the plan: factored, same entries as the dense plan
    engine, a_used = make_engine(a_s, C, 0.1)
    g, _ = solve_potentials(engine, a_used, stopThr=1e-11, numItermax=5000)
    Pd = emot_sinkhorn(a_s, C.to_dense(), 0.1, stopThr=1e-11, numItermax=5000)
    np.testing.assert_allclose(np.exp(engine.log_plan(g)), Pd, atol=1e-12, rtol=1e-8)
    P = emot_sinkhorn(a_s, C, 0.1, stopThr=1e-11, numItermax=5000)
    if hasattr(P, "to_dense"):
        np.testing.assert_allclose(P.to_dense(), Pd, atol=1e-12, rtol=1e-8)
    else:
        np.testing.assert_allclose(P, Pd, atol=1e-12, rtol=1e-8)


@pytest.mark.parametrize("name", ["chain", "circle", "triangle", "cycle_chord"])
def test_solve_small_reg(name, rng):
    """ε = 1e-3 with costs in [0, 1]: still the dense solver's value (log-domain stability)."""
    shape, graph = GRAPH_CASES[name]
    shape = tuple(min(n, 3) for n in shape)
    edges = graph_edges(graph, len(shape))
    C = PairwiseCost(edges, rand_mats(rng, shape, edges))
    a_s = [random_weights(rng, n) for n in shape]
    v, log, vd, logd = _solve_both(C, a_s, 1e-3, stopThr=1e-9, numItermax=3000)
    assert np.isfinite(v) and log["niter"] == logd["niter"]
    np.testing.assert_allclose(v, vd, rtol=1e-8)
    for p, pd in zip(log["potentials"], logd["potentials"]):
        np.testing.assert_allclose(p - p.mean(), pd - pd.mean(), atol=1e-8)


@pytest.mark.parametrize("graph", ["complete", "chain", "circle"])
def test_empirical_graph_matches_dense(graph, nx, rng):
    X = [nx.array(rng.randn(n, 2)) for n in (5, 4, 6)]
    kw = dict(stopThr=1e-5 if nx.float32 else 1e-10, numItermax=5000, warn=False)
    v = empirical_emot_sinkhorn2(X, 1.0, graph=graph, **kw)
    if graph == "complete":
        vd = empirical_emot_sinkhorn2(X, 1.0, graph=None, **kw)
    else:
        vd = emot_sinkhorn2(None, PairwiseCost.from_point_clouds(X, graph=graph).to_dense(), 1.0, **kw)
    assert np.isfinite(nx.np(v))
    np.testing.assert_allclose(nx.np(v), nx.np(vd), rtol=1e-4 if nx.float32 else 1e-8)


@pytest.mark.skipif(torch is None, reason="torch not installed")
@pytest.mark.parametrize("grad", ["envelope", "autodiff"])
@pytest.mark.parametrize("name", ["chain", "triangle", "cycle_chord"])
def test_gradients_are_pairwise_marginals(name, grad, rng):
    """d value / d C_e = the dense gradient marginalised onto the edge."""
    shape, graph = GRAPH_CASES[name]
    edges = graph_edges(graph, len(shape))
    mats = [torch.tensor(M, requires_grad=True) for M in rand_mats(rng, shape, edges)]
    a_s = [torch.tensor(random_weights(rng, n)) for n in shape]
    kw = dict(stopThr=1e-12, numItermax=3000, grad=grad)
    v = emot_sinkhorn2(a_s, PairwiseCost(edges, mats), 0.2, **kw)
    v.backward()
    T = PairwiseCost(edges, [M.detach() for M in mats]).to_dense().requires_grad_(True)
    vd = emot_sinkhorn2(a_s, T, 0.2, **kw)
    vd.backward()
    np.testing.assert_allclose(v.item(), vd.item(), rtol=1e-10)
    k = len(shape)
    for (a, b), M in zip(edges, mats):
        G = T.grad.sum(dim=tuple(i for i in range(k) if i not in (a, b)))
        if a > b:
            G = G.T
        np.testing.assert_allclose(M.grad.numpy(), G.numpy(), atol=1e-9, rtol=1e-7)


@pytest.mark.skipif(torch is None, reason="torch not installed")
def test_gradient_wrt_points_complete_graph(rng):
    X = [torch.tensor(rng.randn(n, 2), requires_grad=True) for n in (4, 5, 3)]
    v = empirical_emot_sinkhorn2(X, 0.5, graph="complete", stopThr=1e-12)
    gs = torch.autograd.grad(v, X)
    Xd = [x.detach().clone().requires_grad_(True) for x in X]
    vd = empirical_emot_sinkhorn2(Xd, 0.5, graph=None, stopThr=1e-12)
    gd = torch.autograd.grad(vd, Xd)
    for a, b in zip(gs, gd):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-8)


def test_float32_torch_small_reg_is_finite(rng):
    if torch is None:
        pytest.skip("torch not installed")
    for graph in ["chain", "circle", "complete"]:
        k = 4
        shape = (6, 5, 7, 4)
        edges = graph_edges(graph, k)
        mats = [torch.tensor(M, dtype=torch.float32) for M in rand_mats(rng, shape, edges)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v, log = emot_sinkhorn2(None, PairwiseCost(edges, mats), 1e-2, log=True, numItermax=40)
        assert v.dtype == torch.float32 and torch.isfinite(v)
        assert all(torch.isfinite(p).all() for p in log["potentials"])
