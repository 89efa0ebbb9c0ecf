"""Rounding onto the exact transport polytope (ot_multimarginal.rounding)."""

import numpy as np
import pytest
from oracles import axes_except as _axes_except
from oracles import dense_pairwise_cost, textbook_round
from ot.backend import NumpyBackend

from ot_multimarginal.marginals.dense import DenseEngine
from ot_multimarginal.rounding import (
    RoundedState,
    cost_contract,
    rank_one_cost,
    round_dense,
    round_to_feasible,
    rounded_linear_cost,
)
from ot_multimarginal.sinkhorn import make_engine, solve_potentials

SHAPES = {2: (4, 5), 3: (3, 4, 5), 4: (2, 3, 4, 3)}


def dense_rounded(state, nx):
    """The parts of a RoundedState as NumPy float64: (g, errs, s)."""
    g = [nx.np(x) for x in state.g]
    errs = [nx.np(e) for e in state.errs]
    s = float(nx.np(state.s))
    return g, errs, s


def random_weights(rng, n, zeros=False):
    a = rng.rand(n) + 0.1
    if zeros:
        a[rng.choice(n, size=max(1, n // 3), replace=False)] = 0.0
    return a / a.sum()


def marg_errors(X, a_s):
    k = X.ndim
    return sum(np.abs(X.sum(axis=_axes_except(j, k)) - a_s[j]).sum() for j in range(k))


def check_guarantees(Y, X, a_s, tol):
    k = X.ndim
    assert np.all(Y >= 0)
    for j in range(k):
        np.testing.assert_allclose(Y.sum(axis=_axes_except(j, k)), a_s[j], rtol=0, atol=tol)
    E = marg_errors(X, a_s)
    assert np.abs(Y - X).sum() <= 2 * E + tol


def _problem(rng, k, zeros=False):
    shape = SHAPES[k]
    M = rng.rand(*shape)
    a_s = [random_weights(rng, n, zeros and i % 2 == 0) for i, n in enumerate(shape)]
    return M, a_s


def _gibbs_dense(M, g, reg):
    k = M.ndim
    L = -M / reg
    for j, gj in enumerate(g):
        shape = [1] * k
        shape[j] = -1
        L = L + gj.reshape(shape)
    return np.exp(L)


def _rounded_dense(M, reg, g, errs, s):
    Y = _gibbs_dense(M, g, reg)
    if s > 0:
        R = errs[0]
        for e in errs[1:]:
            R = np.multiply.outer(R, e)
        Y = Y + R / s ** (M.ndim - 1)
    return Y


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("zeros", [False, True])
def test_round_random_gibbs(nx, k, zeros):
    """Guarantees on Gibbs tensors at random log-scalings (mass far from 1)."""
    rng = np.random.RandomState(k + 10 * zeros)
    M, a_s = _problem(rng, k, zeros)
    reg = 0.3
    tol = nx.tol(1e-12)
    for trial in range(3):
        g_np = [rng.randn(n) + (trial - 1.0) for n in M.shape]
        engine = DenseEngine(nx.array(M), reg, nx.backend)
        state = round_to_feasible(engine, [nx.array(x) for x in g_np], [nx.array(a) for a in a_s])
        assert isinstance(state, RoundedState)
        g2, errs, s = dense_rounded(state, nx)
        for x in g2:
            assert not np.any(np.isnan(x))
        assert all(np.all(e >= 0) for e in errs)
        X = _gibbs_dense(M, g_np, reg)
        Y = _rounded_dense(M, reg, g2, errs, s)
        check_guarantees(Y, X, a_s, tol if not nx.float32 else 1e-5)
        if zeros:
            for j, a in enumerate(a_s):
                assert np.all(np.isneginf(g2[j][a == 0]))


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("niter", [1, 3])
def test_round_sinkhorn_early(k, zeros, niter):
    """Sinkhorn iterates stopped early; factored == textbook dense rounding to 1e-12."""
    rng = np.random.RandomState(100 + k)
    M, a_s = _problem(rng, k, zeros)
    reg = 0.2
    engine, a_v = make_engine(a_s, M, reg)
    g, _ = solve_potentials(engine, a_v, numItermax=niter, stopThr=0.0, warn=False)
    X = np.exp(engine.log_plan(g))
    state = round_to_feasible(engine, g, a_v)
    Y = _rounded_dense(M, reg, state.g, state.errs, float(state.s))
    check_guarantees(Y, X, a_s, 1e-12)
    Yt = textbook_round(X, a_s)
    np.testing.assert_allclose(Y, Yt, rtol=0, atol=1e-12)
    assert abs(float(rounded_linear_cost(engine, state)) - float((M * Yt).sum())) < 1e-12
    # the rank-one part is really there (the iterate is not feasible)
    assert float(state.s) > 1e-8


@pytest.mark.parametrize("k", [2, 3, 4])
def test_round_dense_matches_textbook(nx, k):
    rng = np.random.RandomState(7 + k)
    M, a_s = _problem(rng, k, zeros=True)
    X = rng.rand(*M.shape) * (rng.rand(*M.shape) > 0.2) * 2.0 / np.prod(M.shape)
    Y = nx.np(round_dense(nx.array(X), [nx.array(a) for a in a_s]))
    Yt = textbook_round(X, a_s)
    tol = 1e-5 if nx.float32 else 1e-13
    np.testing.assert_allclose(Y, Yt, rtol=0, atol=tol)
    check_guarantees(Y, X, a_s, tol)


def test_zero_marginal_entry_gets_rank_one_mass():
    """An entry with r_j(X) = 0 < a_j is filled by the rank-one part."""
    M = np.random.RandomState(0).rand(3, 4)
    engine = DenseEngine(M, 0.5, NumpyBackend())
    a_s = [np.full(3, 1 / 3), np.full(4, 0.25)]
    g = [np.array([0.0, -np.inf, 0.0]), np.zeros(4)]
    state = round_to_feasible(engine, g, a_s)
    Y = _rounded_dense(M, 0.5, state.g, state.errs, float(state.s))
    np.testing.assert_allclose(Y.sum(axis=1), a_s[0], atol=1e-14)
    np.testing.assert_allclose(Y.sum(axis=0), a_s[1], atol=1e-14)
    assert not any(np.isnan(x).any() for x in state.g)


def test_dtype_device_preserved(nx):
    if not nx.is_torch:
        pytest.skip("torch only")
    rng = np.random.RandomState(0)
    M, a_s = _problem(rng, 3)
    engine, a_v = make_engine([nx.array(a) for a in a_s], nx.array(M), 0.3)
    g, _ = solve_potentials(engine, a_v, numItermax=2, stopThr=0.0, warn=False)
    state = round_to_feasible(engine, g, a_v)
    for x in list(state.g) + list(state.errs) + [state.s, rounded_linear_cost(engine, state)]:
        assert x.dtype == nx.dtype
        assert x.device.type == nx.device.type


def test_rank_one_cost_zero_and_errors():
    M = np.random.RandomState(0).rand(3, 4)
    engine = DenseEngine(M, 0.5, NumpyBackend())
    assert float(rank_one_cost(engine, [np.zeros(3), np.zeros(4)], 0.0)) == 0.0
    with pytest.raises(ValueError):
        round_to_feasible(engine, [np.zeros(3), np.zeros(4)], [np.full(3, 1 / 3)])
    with pytest.raises(ValueError):
        round_to_feasible(engine, [np.zeros(3), np.zeros(4)], [np.full(3, 1 / 3), np.full(5, 0.2)])


class _HiddenCostEngine(DenseEngine):
    """A dense engine that hides its cost tensor: only log_plan is left."""

    def __init__(self, M, reg, nx):
        super().__init__(M, reg, nx)
        self._Mh = M

    def __getattribute__(self, name):
        if name == "M":
            raise AttributeError(name)
        return super().__getattribute__(name)

    def log_plan(self, g):
        from ot_multimarginal._backend import outer_sum

        return outer_sum(self.nx, g) - self._Mh / self.reg

    def cost_inputs(self):
        raise NotImplementedError


def _pairwise_problem(rng, shape, edges):
    mats = [rng.rand(shape[a], shape[b]) for a, b in edges]
    return dense_pairwise_cost(shape, edges, mats), mats


def test_cost_contract_paths():
    """Dense M, pairwise edges/matrices, and the log_plan fallback all agree."""
    nxb = NumpyBackend()
    rng = np.random.RandomState(3)
    shape = (3, 4, 2, 3)
    edges = [(0, 1), (1, 2), (3, 1)]
    M, mats = _pairwise_problem(rng, shape, edges)
    vecs = [rng.rand(n) for n in shape]
    R = vecs[0]
    for v in vecs[1:]:
        R = np.multiply.outer(R, v)
    ref = (M * R).sum()
    dense = DenseEngine(M, 0.4, nxb)
    assert abs(cost_contract(dense, vecs) - ref) < 1e-12
    pair = DenseEngine(M, 0.4, nxb)
    pair.edges, pair.matrices = edges, mats
    assert abs(cost_contract(pair, vecs) - ref) < 1e-12
    hidden = _HiddenCostEngine(M, 0.4, nxb)
    assert abs(cost_contract(hidden, vecs) - ref) < 1e-12


@pytest.mark.parametrize("graph, shape", [("chain", (3, 4, 5)), ("circle", (3, 4, 2, 3)), ("complete", (2, 3, 4, 2))])
def test_round_structured_matches_textbook(graph, shape):
    """Rounding through graph engines (no tensor formed) == dense textbook rounding."""
    from ot_multimarginal.costs.graph import PairwiseCost, graph_edges

    rng = np.random.RandomState(11)
    edges = graph_edges(graph, len(shape))
    cost = PairwiseCost.from_matrices([rng.rand(shape[a], shape[b]) for a, b in edges], graph)
    a_s = [random_weights(rng, n, zeros=(i == 0)) for i, n in enumerate(shape)]
    reg = 0.3
    engine, a_v = make_engine(a_s, cost, reg)
    g, _ = solve_potentials(engine, a_v, numItermax=2, stopThr=0.0, warn=False)
    M = cost.to_dense()
    X = _gibbs_dense(M, g, reg)
    state = round_to_feasible(engine, g, a_v)
    Y = _rounded_dense(M, reg, state.g, state.errs, float(state.s))
    Yt = textbook_round(X, a_s)
    np.testing.assert_allclose(Y, Yt, rtol=0, atol=1e-12)
    check_guarantees(Y, X, a_s, 1e-12)
    assert abs(float(rounded_linear_cost(engine, state)) - float((M * Yt).sum())) < 1e-12
