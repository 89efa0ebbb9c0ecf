# -*- coding: utf-8 -*-
"""The contraction engine's one-shot log-partition on complete graphs (the scaled split product).

Against brute force over the dense tensor (float64 log-sum-exp): values on
every backend, gradients (custom autograd function) in the log-scalings and
the cost matrices on torch; k = 4 and 5, unequal sizes, mixed edge
orientations, ``-inf`` log-scalings, shifted costs, reg in {1, 0.1, 0.01};
that the split product is taken where it is certified and that the exact
log-domain fallback answers where it is not.
"""

import numpy as np
import pytest

from ot_multimarginal.marginals import ContractionEngine
from ot_multimarginal.marginals._split_product import complete_split

# complete graphs, unequal sizes, edges in both orientations
CASES = {
    4: ((5, 4, 6, 3), [(0, 1), (2, 0), (0, 3), (1, 2), (3, 1), (2, 3)]),
    5: ((4, 3, 5, 3, 4), [(0, 1), (0, 2), (3, 0), (0, 4), (1, 2), (1, 3), (4, 1), (2, 3), (2, 4), (4, 3)]),
}


def _problem(k, seed=0, shift=None, scale=1.0):
    """Squared distances of random points in [0, 1]^2 (range ~1), one matrix per edge, and log-scalings."""
    shape, edges = CASES[k]
    rng = np.random.RandomState(seed)
    pts = [rng.rand(n, 2) * scale for n in shape]
    mats = [((pts[a][:, None, :] - pts[b][None, :, :]) ** 2).sum(-1) for a, b in edges]
    if shift is not None:
        mats = [M + s for M, s in zip(mats, shift)]
    g = [rng.randn(n) - np.log(n) for n in shape]
    return shape, edges, mats, g


def _brute(shape, edges, mats, g, reg):
    """``log Σ exp(⊕g - C/reg)`` over the dense tensor (float64)."""
    k = len(shape)
    L = np.zeros(shape)
    for i, v in enumerate(g):
        sh = [1] * k
        sh[i] = -1
        L = L + np.reshape(v, sh)
    for (a, b), M in zip(edges, mats):
        sh = [1] * k
        sh[a], sh[b] = shape[a], shape[b]
        L = L - np.reshape(M if a < b else M.T, sh) / reg
    m = L.max()
    return float(np.log(np.exp(L - m).sum()) + m)


def _tol(nx, value):
    return (1e-5 * max(1.0, abs(value)), 1e-5) if nx.float32 else (1e-12 * max(1.0, abs(value)), 1e-12)


@pytest.mark.parametrize("k", [4, 5])
@pytest.mark.parametrize("reg", [1.0, 0.1, 0.01])
def test_split_log_partition_matches_brute_force(nx, k, reg):
    shape, edges, mats, g = _problem(k)
    eng = ContractionEngine(shape, edges, [nx.array(M) for M in mats], reg, nx)
    got = float(nx.np(eng.log_partition_once([nx.array(v) for v in g])))
    ref = _brute(shape, edges, mats, g, reg)
    atol, _ = _tol(nx, ref)
    np.testing.assert_allclose(got, ref, atol=atol, rtol=0)
    # certified in float64 at every reg here, and in float32 where the kernels' range fits its exponents
    if not nx.float32 or reg >= 0.1:
        assert eng.n_split == 1


@pytest.mark.parametrize("k", [4, 5])
def test_split_log_partition_on_shifted_costs(nx, k):
    """A constant on any edge, of either sign and any size, moves the log-partition by -constant/reg exactly."""
    reg = 0.1
    shift = [100.0, -3.0] + [0.0] * (len(CASES[k][1]) - 2)
    shape, edges, mats, g = _problem(k, seed=1, shift=shift)
    eng = ContractionEngine(shape, edges, [nx.array(M) for M in mats], reg, nx)
    got = float(nx.np(eng.log_partition_once([nx.array(v) for v in g])))
    ref = _brute(shape, edges, [M - s for M, s in zip(mats, shift)], g, reg) - sum(shift) / reg
    np.testing.assert_allclose(got, ref, atol=_tol(nx, ref)[0], rtol=0)
    assert eng.n_split == 1


def test_split_log_partition_with_infinite_log_scalings(nx):
    """``-inf`` log-scalings (zero weights) on outer and inner nodes, and a node with no mass at all."""
    shape, edges, mats, g = _problem(4, seed=2)
    split = complete_split(shape, edges)
    o, o2, S = split[0], split[1], split[2]
    g[o][1] = g[o2][0] = g[S[0]][2] = g[S[1]][0] = -np.inf
    eng = ContractionEngine(shape, edges, [nx.array(M) for M in mats], 0.5, nx)
    got = float(nx.np(eng.log_partition_once([nx.array(v) for v in g])))
    ref = _brute(shape, edges, mats, g, 0.5)
    np.testing.assert_allclose(got, ref, atol=_tol(nx, ref)[0], rtol=0)
    g[S[1]][:] = -np.inf
    eng = ContractionEngine(shape, edges, [nx.array(M) for M in mats], 0.5, nx)
    assert float(nx.np(eng.log_partition_once([nx.array(v) for v in g]))) == -np.inf


@pytest.mark.parametrize("k", [4, 5])
@pytest.mark.parametrize("reg", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_split_log_partition_gradients_match_brute_force(k, reg, dtype):
    """The custom backward: gradients in the log-scalings (the marginals) and the cost matrices (-P_e/reg)."""
    torch = pytest.importorskip("torch")
    dt = getattr(torch, dtype)
    shift = [7.0, -2.0] + [0.0] * (len(CASES[k][1]) - 2)
    shape, edges, mats, g = _problem(k, seed=3, shift=shift)

    def grads(dtype_, fn):
        M = [torch.tensor(x, dtype=dtype_, requires_grad=True) for x in mats]
        G = [torch.tensor(x, dtype=dtype_, requires_grad=True) for x in g]
        v = fn(M, G)
        v.backward()
        return float(v.detach()), [t.grad.double().numpy() for t in G + M]

    def split(M, G):
        eng = ContractionEngine(shape, edges, M, reg, _torch_nx())
        out = eng.log_partition_once(G)
        assert eng.n_split == (1 if dtype == "float64" or reg >= 0.1 else eng.n_split)
        return out

    def brute(M, G):
        L = torch.zeros(shape, dtype=torch.float64)
        for i, v in enumerate(G):
            sh = [1] * k
            sh[i] = -1
            L = L + v.reshape(sh)
        for (a, b), C in zip(edges, M):
            sh = [1] * k
            sh[a], sh[b] = shape[a], shape[b]
            L = L - (C if a < b else C.T).reshape(sh) / reg
        return torch.logsumexp(L.reshape(-1), 0)

    v, gv = grads(dt, split)
    r, gr = grads(torch.float64, brute)
    atol = 1e-5 * max(1.0, abs(r)) if dtype == "float32" else 1e-12 * max(1.0, abs(r))
    np.testing.assert_allclose(v, r, atol=atol, rtol=0)
    for a, b in zip(gv, gr):
        scale = max(np.abs(b).max(), 1e-300)
        np.testing.assert_allclose(a / scale, b / scale, atol=2e-5 if dtype == "float32" else 1e-11, rtol=0)


def test_split_falls_back_to_the_log_domain_where_the_scaled_product_underflows():
    """float32, reg = 0.01 on costs spanning thousands of nats: the bound fails, the exact elimination answers."""
    torch = pytest.importorskip("torch")
    shape, edges, mats, g = _problem(4, seed=4, scale=6.0)
    M = [torch.tensor(x, dtype=torch.float32, requires_grad=True) for x in mats]
    G = [torch.tensor(x, dtype=torch.float32, requires_grad=True) for x in g]
    eng = ContractionEngine(shape, edges, M, 0.01, _torch_nx())
    v = eng.log_partition_once(G)
    assert eng.n_split == 0
    ref = _brute(shape, edges, mats, g, 0.01)
    np.testing.assert_allclose(float(v.detach()), ref, rtol=1e-6)
    v.backward()
    for t in G + M:
        assert torch.isfinite(t.grad).all()


def test_complete_split_only_for_complete_graphs():
    assert complete_split((3, 3, 3, 3), [(0, 1), (1, 2), (2, 3), (3, 0)]) is None
    assert complete_split((3, 3, 3, 3), [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]) is None
    o, o2, S, inner, outer, w = complete_split((2, 5, 3, 4), CASES[4][1])
    assert (o, o2, S) == (1, 3, [2, 0])  # the two largest outside, the largest inner node chunked
    assert len(inner) + len(outer) + 1 == 6


def _torch_nx():
    from ot.backend import TorchBackend

    return TorchBackend()
