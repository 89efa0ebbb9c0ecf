# -*- coding: utf-8 -*-
"""Newton's method on the Sinkhorn dual (strategies/newton.py): same solutions as the cyclic loop, fewer iterations."""

import numpy as np
import ot
import pytest

import ot_multimarginal as om
from conftest import NX, random_weights
from ot_multimarginal.sinkhorn import make_engine, solve_potentials
from ot_multimarginal.strategies import STRATEGIES
from ot_multimarginal.strategies.newton import MAX_NEWTON_SIZE


def _clouds(seed, sizes, d=2):
    rng = np.random.RandomState(seed)
    return rng, [rng.randn(n, d) for n in sizes]


def test_registered():
    assert STRATEGIES["sinkhorn_newton"].__name__ == "newton_sinkhorn"


def _check_same_as_cyclic(nx, graph, sizes):
    rng, X_s = _clouds(len(sizes), sizes)
    a_s = [random_weights(rng, n) for n in sizes]
    reg = 0.1  # small against the cost's range: the cyclic loop needs hundreds of sweeps
    cost = om.PairwiseCost.from_point_clouds([nx.array(X) for X in X_s], graph=graph)
    A = [nx.array(a) for a in a_s]
    tight = nx.tol(1e-11)
    P1, l1 = om.emot_sinkhorn(A, cost, reg, stopThr=tight, numItermax=200000, log=True, warn=False)
    P2, l2 = om.emot_sinkhorn(A, cost, reg, method="sinkhorn_newton", stopThr=tight, numItermax=200, log=True)
    assert l2["converged"] and l2["niter"] < l1["niter"] / 5
    for i, j in cost.edges:
        np.testing.assert_allclose(
            nx.np(P2.pairwise_marginal(i, j)), nx.np(P1.pairwise_marginal(i, j)), atol=100 * tight
        )
    assert abs(nx.np(l2["value"]) - nx.np(l1["value"])) <= 100 * tight * max(1.0, abs(nx.np(l1["value"])))
    for i in range(len(sizes)):
        np.testing.assert_allclose(nx.np(l2["marginals"][i]), a_s[i], atol=100 * tight)


def test_same_plan_as_cyclic_triangle(nx):
    _check_same_as_cyclic(nx, "complete", (5, 6, 7))


@pytest.mark.parametrize(
    "graph, sizes", [("circle", (4, 5, 3, 4)), ("complete", (3, 4, 3, 4)), ("chain", (4, 5, 3, 4))]
)
def test_same_plan_as_cyclic_other_graphs(graph, sizes):
    _check_same_as_cyclic(NX(ot.backend.NumpyBackend()), graph, sizes)  # numpy: the backends are tested above


def test_dense_cost_zero_weights_and_monotone_dual(rng):
    M = rng.rand(4, 5, 6)
    a_s = [random_weights(rng, n) for n in M.shape]
    a_s[1][2] = 0.0
    a_s[1] /= a_s[1].sum()
    engine, a = make_engine(a_s, M, 0.02)
    g, info = solve_potentials(engine, a, "sinkhorn_newton", numItermax=100, stopThr=1e-12)
    assert info["converged"]
    P_ref = om.emot_sinkhorn(a_s, M, 0.02, stopThr=1e-12, numItermax=100000)
    np.testing.assert_allclose(np.exp(engine.log_plan(g)), P_ref, atol=1e-11)
    d = np.asarray(info["dual"])
    assert np.all(np.diff(d) <= 1e-12 * np.abs(d[1:]))  # the line search only accepts decreases
    assert np.isneginf(g[1][2])


def test_free_node_barycenter_as_cyclic(rng):
    _, X_s = _clouds(3, (6, 4, 5, 4))
    cost = om.PairwiseCost.from_point_clouds(X_s, graph="star")
    P1, l1 = om.emot_sinkhorn(None, cost, 1.0, free=[0], stopThr=1e-11, numItermax=100000, log=True)
    P2, l2 = om.emot_sinkhorn(None, cost, 1.0, free=[0], method="sinkhorn_newton", stopThr=1e-11, log=True)
    assert l2["converged"] and l2["niter"] < l1["niter"]
    np.testing.assert_allclose(l2["marginals"][0], l1["marginals"][0], atol=1e-9)  # the free (barycentric) marginal


def test_warm_start_of_another_cost_does_not_overflow():
    """Potentials of a cost shifted far away: the mass is rescaled before the first step (no inf error)."""
    _, X_s = _clouds(4, (6, 6, 6))
    cost = om.PairwiseCost.from_point_clouds(X_s, graph="complete")
    _, lg = om.emot_sinkhorn(None, cost, 0.01, method="sinkhorn_newton", stopThr=1e-10, log=True)
    far = [phi + 30.0 for phi in lg["potentials"]]  # plan mass e^{90/0.01}
    for method in ("sinkhorn_newton", "sinkhorn_log"):
        _, l2 = om.emot_sinkhorn(
            None, cost, 0.01, method=method, warmstart=far, stopThr=1e-9, numItermax=10000, log=True
        )
        assert l2["converged"] and l2["niter"] <= 20, (method, l2["niter"])


def test_too_large_for_a_dense_system():
    n = MAX_NEWTON_SIZE // 2 + 1
    cost = om.PairwiseCost([(0, 1)], [np.zeros((n, n))])
    with pytest.raises(ValueError, match="sinkhorn_log"):
        om.emot_sinkhorn(None, cost, 1.0, method="sinkhorn_newton")


@pytest.mark.parametrize("sizes, graph", [((6, 9, 7), "complete"), ((5, 4, 6, 5), "circle"), ((7, 5), "complete")])
def test_schur_direction_is_the_full_solve(sizes, graph):
    """The direction through the Schur complement (Cholesky) equals the dense solve of (H + mu I) d = -grad."""
    from ot_multimarginal.strategies.newton import _direction, _hessian

    rng, X_s = _clouds(7, sizes)
    a_s = [random_weights(rng, n) for n in sizes]
    cost = om.PairwiseCost.from_point_clouds(X_s, graph=graph)
    engine, a = make_engine(a_s, cost, 0.3)
    g = [np.log(ai) + 0.5 * rng.randn(len(ai)) for ai in a]  # off balance: a non-trivial gradient
    nx = engine.nx
    log_r = engine.log_marginals(g)
    blocks = list(range(len(sizes)))
    r = {i: np.exp(log_r[i]) for i in blocks}
    grad = np.concatenate([r[i] - a[i] for i in blocks])
    mu = 1e-6
    d = _direction(engine, g, r, blocks, list(sizes), grad, mu)
    H = _hessian(engine, g, r, blocks)
    ref = -np.linalg.solve(H + mu * np.eye(sum(sizes)), grad)
    assert d is not None
    np.testing.assert_allclose(nx.to_numpy(d), ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
