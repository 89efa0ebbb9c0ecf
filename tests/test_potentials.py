# -*- coding: utf-8 -*-
"""The potentials type: its conversions and answers against the plain formulas on the dense tensor."""

import numpy as np
import pytest
from oracles import dense_pairwise_cost

import ot_multimarginal as om
from ot_multimarginal.potentials import Potentials
from ot_multimarginal.sinkhorn import make_engine


def _dense_plan(C, phi, a_s, reg):
    """``exp((⊕φ - C)/ε) · ⊗a`` by broadcasting (NumPy, independent of the package)."""
    k = C.ndim
    S = -C / reg
    W = np.ones(C.shape)
    for i, (p, a) in enumerate(zip(phi, a_s)):
        sh = [1] * k
        sh[i] = -1
        S = S + np.asarray(p).reshape(sh) / reg
        W = W * np.asarray(a).reshape(sh)
    return np.exp(S) * W


def _problem(rng, kind, shift):
    shape = (3, 4, 5)
    edges = [(0, 1), (1, 2), (0, 2)]
    mats = [rng.rand(shape[a], shape[b]) + shift for a, b in edges]
    C = dense_pairwise_cost(shape, edges, mats)
    M = om.PairwiseCost(edges, mats, shape=shape) if kind == "pairwise" else C
    a_s = [rng.rand(n) + 0.2 for n in shape]
    a_s[1][2] = 0.0  # a zero weight
    a_s = [a / a.sum() for a in a_s]
    return C, M, a_s


@pytest.mark.parametrize("kind", ["dense", "pairwise"])
@pytest.mark.parametrize("shift", [0.0, -7.0])  # -7: the engines remove a cost offset
@pytest.mark.parametrize("free", [(), (0,)])
def test_potentials_answer_for_the_plan_of_their_formula(kind, shift, free):
    rng = np.random.RandomState(0)
    C, M, a_s = _problem(rng, kind, shift)
    reg = 0.3
    engine, a_used = make_engine(a_s, M, reg)
    assert (engine.cost_offset != 0.0) == (shift != 0.0)
    phi = [rng.randn(n) for n in C.shape]
    pot = Potentials(engine, phi, a_used, free=free)
    ref_phi = [
        np.zeros(n) if i in free else np.where(a > 0, p, 0.0) for i, (p, a, n) in enumerate(zip(phi, a_s, C.shape))
    ]
    P = _dense_plan(C, ref_phi, a_s, reg)
    # the plan, dense or factored
    plan = pot.plan()
    dense = plan.to_dense() if kind == "pairwise" else plan
    np.testing.assert_allclose(dense, P, rtol=1e-10, atol=1e-300)
    # round trip: potentials -> log-scalings -> potentials
    back = Potentials.from_scalings(engine, pot.log_scalings, a_used, free)
    for p, q in zip(back, ref_phi):
        np.testing.assert_allclose(p, q, rtol=1e-10, atol=1e-10)
    # the value <C,P> + reg KL(P || ⊗a) and the dual sum <a,φ> - reg log ||P||
    W = _dense_plan(np.zeros_like(C), [np.zeros(n) for n in C.shape], a_s, reg)
    pos = P > 0
    kl = np.sum(P[pos] * np.log(P[pos] / W[pos])) - P.sum() + 1.0
    np.testing.assert_allclose(pot.value(), np.sum(C * P) + reg * kl, rtol=1e-9)
    np.testing.assert_allclose(pot.linear_cost(), np.sum(C * P), rtol=1e-9)
    lin = sum(np.sum(a * p) for i, (a, p) in enumerate(zip(a_s, ref_phi)) if i not in free)
    np.testing.assert_allclose(pot.dual(), lin - reg * np.log(P.sum()), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(pot.log_partition(once=True), np.log(P.sum()), rtol=1e-10)
    # marginals, pairwise marginals, densities
    for i in range(3):
        np.testing.assert_allclose(pot.marginal(i), P.sum(axis=tuple(j for j in range(3) if j != i)), rtol=1e-10)
    np.testing.assert_allclose(pot.pairwise_marginal(2, 0), P.sum(axis=1).T, rtol=1e-10)
    idx = np.array([[0, 0, 0], [2, 3, 4], [1, 1, 1]])
    with np.errstate(divide="ignore"):
        ref = np.log(P[tuple(idx.T)] / W[tuple(idx.T)])
    got = pot.log_density(idx)
    np.testing.assert_allclose(got[np.isfinite(ref)], ref[np.isfinite(ref)], rtol=1e-10)
    # normalisation: mass one, only the first prescribed potential moves, by a constant
    nrm = pot.normalized()
    np.testing.assert_allclose(np.exp(nrm.log_mass()), 1.0, rtol=1e-12)
    j0 = 1 if free else 0
    assert nrm.first_prescribed == j0
    for i, (p, q) in enumerate(zip(nrm, ref_phi)):
        d = np.asarray(p) - q
        if i == j0:
            ok = a_s[i] > 0
            np.testing.assert_allclose(d[ok], -reg * np.log(P.sum()), rtol=1e-10)
        else:
            np.testing.assert_allclose(d, 0.0, atol=1e-12)


def test_sinkhorn_log_holds_potentials_and_takes_them_back(nx):
    rng = np.random.RandomState(1)
    C = rng.rand(4, 5, 3) - 2.0  # a cost offset
    a_s = [rng.rand(n) + 0.1 for n in C.shape]
    a_s = [a / a.sum() for a in a_s]
    v, log = om.emot_sinkhorn2(
        [nx.from_numpy(a) for a in a_s], nx.from_numpy(C), 0.2, log=True, stopThr=1e-12, numItermax=5000
    )
    pot = log["potentials"]
    assert isinstance(pot, Potentials) and isinstance(pot, list) and len(pot) == 3
    assert log["cost_offset"] == pot.cost_offset != 0.0
    np.testing.assert_allclose(nx.np(pot.value()), nx.np(v), rtol=1e-10)
    np.testing.assert_allclose(nx.np(pot.dual()), nx.np(v), rtol=1e-8)  # strong duality at the optimum
    P = _dense_plan(C, [nx.np(p) for p in pot], a_s, 0.2)
    np.testing.assert_allclose(nx.np(pot.plan()), P, rtol=1e-9)
    # a warm start from the Potentials is at the optimum already
    _, log2 = om.emot_sinkhorn2(
        [nx.from_numpy(a) for a in a_s], nx.from_numpy(C), 0.2, log=True, stopThr=1e-10, warmstart=pot
    )
    assert log2["niter"] <= 10


def test_neural_estimator_gives_potentials():
    pytest.importorskip("torch")
    from ot_multimarginal.neural import NeuralEMOT

    rng = np.random.RandomState(0)
    X_s = [rng.randn(30, 2) for _ in range(3)]
    est = NeuralEMOT(reg=1.0, graph="chain", max_iter=20, eval_every=0, random_state=0).fit(X_s)
    pot = est.dual_potentials()
    assert isinstance(pot, Potentials) and isinstance(pot[0], np.ndarray)
    np.testing.assert_allclose(float(pot.dual()), float(est.value_), rtol=1e-10)  # the exact evaluation
    np.testing.assert_allclose(float(pot.log_partition()), est.log_partition_, rtol=1e-10)
    import ot

    C = dense_pairwise_cost((30, 30, 30), [(0, 1), (1, 2)], [ot.dist(X_s[0], X_s[1]), ot.dist(X_s[1], X_s[2])])
    P = est.plan()
    np.testing.assert_allclose(float(P.mass), 1.0, rtol=1e-10)
    ref = _dense_plan(C, list(pot), [np.full(30, 1 / 30)] * 3, 1.0)
    np.testing.assert_allclose(P.to_dense(), ref / ref.sum(), rtol=1e-8)
    # the density of the (0, 2) pair at the training points is the plan's pairwise marginal over a_0 ⊗ a_2
    D = est.pairwise_plan(0, 2, X_s[0], X_s[2])
    np.testing.assert_allclose(D / 900.0, P.pairwise_marginal(0, 2), rtol=1e-8)


@pytest.mark.parametrize("free", [(), (1,)])
def test_float_log_weights_stand_for_equal_weights(free):
    rng = np.random.RandomState(2)
    C = rng.rand(3, 4, 5) - 1.0
    engine, a_used = make_engine(None, C, 0.4)
    phi = [rng.randn(n) for n in C.shape]
    arrays = Potentials(engine, phi, a_used, free=free)
    floats = Potentials(engine, phi, log_a=[-np.log(n) for n in C.shape], free=free)
    for x, y in zip(arrays.log_scalings, floats.log_scalings):
        np.testing.assert_allclose(x, y, rtol=1e-13)
    for name in ("value", "dual", "log_partition", "linear_term"):
        np.testing.assert_allclose(getattr(floats, name)(), getattr(arrays, name)(), rtol=1e-12)
    np.testing.assert_allclose(floats.normalized().plan(), arrays.normalized().plan(), rtol=1e-12)
