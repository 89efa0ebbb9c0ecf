# -*- coding: utf-8 -*-
"""Tests of the exact multimarginal LP (ot_multimarginal.lp)."""

import tracemalloc

import numpy as np
import ot
import pytest
from scipy.optimize import linprog

from ot_multimarginal import lp as lp_module
from ot_multimarginal.lp import emot_lp, emot_lp2

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def random_weights(rng, n, low=0.2):
    a = rng.rand(n) + low
    return a / a.sum()


def _problem(seed, shape):
    rng = np.random.RandomState(seed)
    M = rng.rand(*shape)
    a_s = [random_weights(rng, n) for n in shape]
    return a_s, M


def _marginal(P, i):
    return P.sum(axis=tuple(j for j in range(P.ndim) if j != i))


def _outer_sum(us):
    k = len(us)
    out = 0.0
    for i, u in enumerate(us):
        shp = [1] * k
        shp[i] = -1
        out = out + np.reshape(u, shp)
    return out


def _dense_lp_value(a_s, M):
    """Independent formulation: dense equality matrix built entry by entry."""
    shape = M.shape
    N = M.size
    offsets = np.concatenate([[0], np.cumsum(shape)])
    A = np.zeros((offsets[-1], N))
    for j in range(N):
        I = np.unravel_index(j, shape)
        for i in range(len(shape)):
            A[offsets[i] + I[i], j] = 1.0
    b = np.concatenate(a_s)
    res = linprog(M.reshape(-1), A_eq=A, b_eq=b, bounds=(0, None), method="highs-ds")
    assert res.status == 0, res.message
    return res.fun


# ---------------------------------------------------------------- k = 2 vs POT


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_k2_matches_emd2(seed):
    rng = np.random.RandomState(seed)
    n1, n2 = 5 + seed, 7
    a, b = random_weights(rng, n1), random_weights(rng, n2)
    M = rng.rand(n1, n2)
    ref = ot.emd2(a, b, M)
    val = emot_lp2([a, b], M)
    P = emot_lp([a, b], M)
    np.testing.assert_allclose(val, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.sum(P * M), ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(P.sum(1), a, atol=1e-12)
    np.testing.assert_allclose(P.sum(0), b, atol=1e-12)


# ----------------------------------------------------------------- k = 3 and 4


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 3)], ids=["k3", "k4"])
@pytest.mark.parametrize("seed", [0, 1])
def test_plan_value_duals(shape, seed):
    a_s, M = _problem(seed, shape)
    P, log = emot_lp(a_s, M, log=True)
    val = emot_lp2(a_s, M)
    assert P.shape == shape
    assert P.min() >= 0
    for i, a in enumerate(a_s):
        np.testing.assert_allclose(_marginal(P, i), a, atol=1e-9)
    ref = _dense_lp_value(a_s, M)
    np.testing.assert_allclose(val, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.sum(P * M), ref, rtol=1e-9, atol=1e-12)
    # log contents and strong duality
    assert log["status"] == 0 and isinstance(log["message"], str)
    assert isinstance(log["niter"], int)
    np.testing.assert_allclose(log["value"], ref, rtol=1e-9, atol=1e-12)
    duals = log["duals"]
    assert len(duals) == len(shape)
    assert all(u.shape == (n,) for u, n in zip(duals, shape))
    dual_val = sum(np.dot(a, u) for a, u in zip(a_s, duals))
    np.testing.assert_allclose(dual_val, val, rtol=1e-9, atol=1e-12)
    assert np.all(_outer_sum(duals) <= M + 1e-8)
    # complementary slackness: the plan lives where the dual constraint is tight
    assert np.all(np.abs((M - _outer_sum(duals))[P > 1e-12]) < 1e-8)
    # the dropped rows: last dual of marginals 2..k is 0
    assert all(u[-1] == 0 for u in duals[1:])


def test_uniform_weights_none():
    _, M = _problem(4, (3, 2, 4))
    v_none = emot_lp2(None, M)
    v_entries = emot_lp2([None, np.ones(2) / 2, None], M)
    v_full = emot_lp2([np.ones(n) / n for n in M.shape], M)
    np.testing.assert_allclose(v_none, v_full, rtol=1e-12)
    np.testing.assert_allclose(v_entries, v_full, rtol=1e-12)
    P = emot_lp(None, M)
    np.testing.assert_allclose(_marginal(P, 2), np.ones(4) / 4, atol=1e-12)


def test_zero_weight_entries():
    a_s, M = _problem(5, (3, 4, 3))
    a_s[1] = np.array([0.0, 0.5, 0.0, 0.5])
    P = emot_lp(a_s, M)
    np.testing.assert_allclose(_marginal(P, 1), a_s[1], atol=1e-12)
    np.testing.assert_allclose(emot_lp2(a_s, M), _dense_lp_value(a_s, M), rtol=1e-9)


# ------------------------------------------------------- known answer by hand


def test_known_answer_k3():
    # cost 0 when all three indices agree, 1 otherwise: at most
    # min(0.3, 0.6, 0.5) + min(0.7, 0.4, 0.5) = 0.7 of the mass on the diagonal
    M = np.ones((2, 2, 2))
    M[0, 0, 0] = M[1, 1, 1] = 0.0
    a_s = [np.array([0.3, 0.7]), np.array([0.6, 0.4]), np.array([0.5, 0.5])]
    P, log = emot_lp(a_s, M, log=True)
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 0] = 0.3
    expected[1, 1, 1] = 0.4
    expected[1, 0, 0] = 0.2  # the rest is forced by the marginals
    expected[1, 0, 1] = 0.1
    np.testing.assert_allclose(P, expected, atol=1e-12)
    np.testing.assert_allclose(emot_lp2(a_s, M), 0.3, atol=1e-12)
    np.testing.assert_allclose(log["value"], 0.3, atol=1e-12)
    # uniform weights: everything on the diagonal, value 0
    P = emot_lp(None, M)
    expected = np.zeros((2, 2, 2))
    expected[0, 0, 0] = expected[1, 1, 1] = 0.5
    np.testing.assert_allclose(P, expected, atol=1e-12)


# ------------------------------------------------------------- backends


def test_backends_dtype_device(nx):
    a_s, M = _problem(6, (3, 4, 2))
    P_ref, log_ref = emot_lp(a_s, M, log=True)
    Mb = nx.array(M)
    ab = [nx.array(a) for a in a_s]
    P, log = emot_lp(ab, Mb, log=True)
    val = emot_lp2(ab, Mb)
    for x in [P, val, log["value"]] + list(log["duals"]):
        assert isinstance(x, torch.Tensor if nx.is_torch else np.ndarray)
        assert x.dtype == Mb.dtype
        if nx.is_torch:
            assert x.device == Mb.device
    assert tuple(P.shape) == M.shape
    tol = nx.tol(1e-10)
    np.testing.assert_allclose(nx.np(val), float(emot_lp2(a_s, M)), rtol=tol, atol=tol)
    np.testing.assert_allclose(nx.np(P) * 1.0, P_ref, atol=tol)
    for u, u_ref in zip(log["duals"], log_ref["duals"]):
        np.testing.assert_allclose(nx.np(u), u_ref, atol=1e-5 if nx.float32 else tol)


@needs_torch
def test_torch_float32_weights_renormalised():
    # float32 weights pass validation at 1e-4; the LP is solved with exact masses
    a_s, M = _problem(7, (4, 3, 3))
    Mt = torch.tensor(M, dtype=torch.float32)
    at = [torch.tensor(a, dtype=torch.float32) for a in a_s]
    P = emot_lp(at, Mt)
    assert P.dtype == torch.float32
    for i, a in enumerate(at):
        np.testing.assert_allclose(
            _marginal(P.double().numpy(), i), a.double().numpy() / a.double().sum().item(), atol=1e-6
        )


@needs_torch
def test_torch_gradients():
    a_s, M = _problem(8, (3, 4, 3))
    Mt = torch.tensor(M, requires_grad=True)
    at = [torch.tensor(a, requires_grad=True) for a in a_s]
    val = emot_lp2(at, Mt)
    assert val.requires_grad
    val.backward()
    P, log = emot_lp(a_s, M, log=True)
    np.testing.assert_allclose(Mt.grad.numpy(), P, atol=1e-12)
    for a, u in zip(at, log["duals"]):
        np.testing.assert_allclose(a.grad.numpy(), u - u.mean(), atol=1e-12)
    # finite differences along mass-preserving directions a_i + t (e_p - e_q)
    t = 1e-6
    for i, (p, q) in [(0, (0, 2)), (1, (3, 1)), (2, (1, 0))]:
        d = np.zeros(M.shape[i])
        d[p], d[q] = 1.0, -1.0
        plus = [a.copy() for a in a_s]
        minus = [a.copy() for a in a_s]
        plus[i] = plus[i] + t * d
        minus[i] = minus[i] - t * d
        fd = (emot_lp2(plus, M) - emot_lp2(minus, M)) / (2 * t)
        np.testing.assert_allclose(fd, np.dot(at[i].grad.numpy(), d), rtol=1e-6, atol=1e-7)


@needs_torch
def test_torch_gradients_partial():
    # only the inputs that require grad get a gradient; None weights are fine
    a_s, M = _problem(9, (2, 3, 2))
    Mt = torch.tensor(M)
    a1 = torch.tensor(a_s[1], requires_grad=True)
    val = emot_lp2([None, a1, None], Mt)
    val.backward()
    assert a1.grad is not None and a1.grad.shape == (3,)
    np.testing.assert_allclose(a1.grad.sum().item(), 0.0, atol=1e-12)
    # nothing requires grad: a plain tensor
    val = emot_lp2(None, torch.tensor(M))
    assert not val.requires_grad


# ------------------------------------------------------------- bad input


def _good():
    return _problem(10, (2, 3, 2))


@pytest.mark.parametrize("fn", [emot_lp, emot_lp2], ids=["lp", "lp2"])
def test_bad_inputs(fn):
    a_s, M = _good()
    with pytest.raises(TypeError, match="M"):
        fn(None, M.tolist())
    with pytest.raises(TypeError, match="M"):
        fn(None, np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="M"):
        fn(None, np.ones(3))
    bad = M.copy()
    bad[0, 1, 0] = np.nan
    with pytest.raises(ValueError, match="M contains NaN"):
        fn(a_s, bad)
    bad[0, 1, 0] = np.inf
    with pytest.raises(ValueError, match="M contains NaN or inf"):
        fn(a_s, bad)
    with pytest.raises(ValueError, match="a_s must have one entry per marginal"):
        fn(a_s[:2], M)
    with pytest.raises(TypeError, match="a_s must be a list"):
        fn(np.ones(3), M)
    with pytest.raises(ValueError, match=r"a_s\[1\] has length"):
        fn([a_s[0], np.ones(4) / 4, a_s[2]], M)
    with pytest.raises(ValueError, match=r"a_s\[0\] must be 1-D"):
        fn([np.ones((2, 1)) / 2, a_s[1], a_s[2]], M)
    with pytest.raises(ValueError, match=r"a_s\[2\] has negative"):
        fn([a_s[0], a_s[1], np.array([1.5, -0.5])], M)
    with pytest.raises(ValueError, match=r"a_s\[1\] contains NaN"):
        fn([a_s[0], np.array([np.nan, 0.5, 0.5]), a_s[2]], M)
    with pytest.raises(ValueError, match=r"a_s\[2\] sums to"):
        fn([a_s[0], a_s[1], np.array([0.5, 0.6])], M)
    with pytest.raises(ValueError, match="M must have no empty axis"):
        fn(None, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="max_variables"):
        fn(a_s, M, max_variables=0)
    with pytest.raises(ValueError, match="max_variables"):
        fn(a_s, M, max_variables=2.5)


@needs_torch
def test_mixed_backends_raise():
    a_s, M = _good()
    with pytest.raises(TypeError, match=r"a_s\[0\]"):
        emot_lp2([torch.tensor(a_s[0]), None, None], M)


def test_solver_failure_raises(monkeypatch):
    a_s, M = _good()

    class Fake:
        status = 2
        x = None
        message = "The problem is infeasible. (HiGHS Status 8: model_status is Infeasible)"

    monkeypatch.setattr(lp_module, "linprog", lambda *args, **kw: Fake())
    with pytest.raises(RuntimeError, match="infeasible"):
        emot_lp(a_s, M)
    with pytest.raises(RuntimeError, match="HiGHS"):
        emot_lp2(a_s, M)


# --------------------------------------------------------------- size refusal


def _forbid_solve(monkeypatch):
    def boom(*args, **kw):  # pragma: no cover - must not be reached
        raise AssertionError("the LP was built although it is too large")

    monkeypatch.setattr(lp_module, "linprog", boom)
    monkeypatch.setattr(lp_module, "_constraint_matrix", boom)


def test_size_refusal_before_allocation(monkeypatch):
    _forbid_solve(monkeypatch)
    # zero-stride views: 200**4 = 1.6e9 entries, no memory behind them
    M = np.broadcast_to(np.zeros(1), (200, 200, 200, 200))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"1600000000 variables.*max_variables=2000000.*emot_sinkhorn"):
            emot_lp2(None, M)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    # just over the limit
    with pytest.raises(ValueError, match="max_variables=59"):
        emot_lp(None, np.zeros((3, 4, 5)), max_variables=59)
    # the memory guard
    with pytest.raises(MemoryError, match="memory budget"):
        emot_lp(None, np.broadcast_to(np.zeros(1), (100, 100, 100)), max_variables=None, memory_budget=10**6)
    with pytest.raises(MemoryError):
        emot_lp2(None, np.zeros((3, 4, 5)), memory_budget=100)


@needs_torch
def test_size_refusal_torch(monkeypatch):
    _forbid_solve(monkeypatch)
    M = torch.zeros(1, dtype=torch.float64).expand(100, 100, 100, 100)
    with pytest.raises(ValueError, match="100000000 variables"):
        emot_lp(None, M)


def test_singleton_axes():
    # n_i = 1: the only row of such a marginal (i >= 2) is the dropped one
    a_s, M = _problem(12, (1, 3, 1))
    a_s[0] = a_s[2] = np.ones(1)
    P, log = emot_lp(a_s, M, log=True)
    np.testing.assert_allclose(P.ravel(), a_s[1], atol=1e-12)
    np.testing.assert_allclose(log["value"], np.dot(M.ravel(), a_s[1]), rtol=1e-12)
    dual_val = sum(np.dot(a, u) for a, u in zip(a_s, log["duals"]))
    np.testing.assert_allclose(dual_val, log["value"], rtol=1e-12)


def test_size_at_limit_solves():
    a_s, M = _problem(11, (3, 4, 5))
    P = emot_lp(a_s, M, max_variables=60)
    assert P.shape == (3, 4, 5)
