"""The neural estimators' batch losses against brute force over the dense b^k tensor (values and gradients)."""

import itertools
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ot_multimarginal.costs.pointcloud import PointCloudCost, TupleCost  # noqa: E402
from ot_multimarginal.neural.objectives import (  # noqa: E402
    aligned_log_mean_exp,
    batch_dual,
    combinatorial_log_mean_exp,
    exact_dual,
    ustat_log_mean_exp,
)


def _dense_cost(cost, X_s):
    """Σ_edges c_ab(x_a, x_b) over all tuples, from explicit loops over the edges (float64)."""
    k = len(X_s)
    shape = tuple(X.shape[0] for X in X_s)
    C = torch.zeros(shape, dtype=torch.float64)
    for (a, b), M in zip(cost.edges, [((X_s[a][:, None, :] - X_s[b][None, :, :]) ** 2).sum(-1) for a, b in cost.edges]):
        sh = [1] * k
        sh[a], sh[b] = shape[a], shape[b]
        C = C + (M if a < b else M.T).reshape(sh)
    return C


def _brute_lme(cost, X_s, f_s, reg, distinct=False):
    k = len(X_s)
    C = _dense_cost(cost, X_s)
    S = -C / reg
    for i, f in enumerate(f_s):
        sh = [1] * k
        sh[i] = -1
        S = S + f.reshape(sh) / reg
    if distinct:
        b = X_s[0].shape[0]
        mask = torch.ones(S.shape, dtype=torch.bool)
        for idx in itertools.product(range(b), repeat=k):
            if len(set(idx)) < k:
                mask[idx] = False
        S = torch.where(mask, S, torch.full_like(S, -math.inf))
        return torch.logsumexp(S.reshape(-1), 0) - sum(math.log(b - j) for j in range(k))
    return torch.logsumexp(S.reshape(-1), 0) - sum(math.log(s) for s in S.shape)


def _problem(k, b, d=2, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    X_s = [torch.randn(b + i % 2, d, generator=g, dtype=torch.float64) * scale for i in range(k)]
    f_s = [torch.randn(X.shape[0], generator=g, dtype=torch.float64, requires_grad=True) for X in X_s]
    return X_s, f_s


@pytest.mark.parametrize(
    "graph,k",
    [
        ("complete", 3),
        ("complete", 4),
        ("circle", 3),
        ("circle", 4),
        ("circle", 5),
        ("chain", 3),
        ("chain", 4),
        ("star", 4),
    ],
)
@pytest.mark.parametrize("reg", [1.0, 0.1])
def test_combinatorial_matches_brute_force(graph, k, reg):
    X_s, f_s = _problem(k, 5)
    cost = PointCloudCost(k, graph)
    got = combinatorial_log_mean_exp(cost, X_s, f_s, reg)
    gg = torch.autograd.grad(got, f_s)
    ref = _brute_lme(cost, X_s, f_s, reg)
    gr = torch.autograd.grad(ref, f_s)
    np.testing.assert_allclose(float(got.detach()), float(ref.detach()), rtol=1e-11, atol=1e-11)
    for a, r in zip(gg, gr):
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("graph,k", [("complete", 3), ("complete", 4), ("circle", 5), ("chain", 4)])
def test_batch_dual_float32_matches_float64_brute_force(graph, k):
    """float32 at reg=0.05: the engines stay finite and accurate where raw exp underflows."""
    X_s, f_s = _problem(k, 6, seed=1, scale=2.0)
    cost = PointCloudCost(k, graph)
    X32 = [X.float() for X in X_s]
    f32 = [f.detach().float().requires_grad_(True) for f in f_s]
    got = batch_dual(cost, X32, f32, 0.05)
    ref = sum(f.mean() for f in f_s) - 0.05 * _brute_lme(cost, X_s, f_s, 0.05)
    assert torch.isfinite(got)
    np.testing.assert_allclose(float(got.detach()), float(ref.detach()), rtol=2e-5, atol=2e-5)
    got.backward()
    ref.backward()
    for a, r in zip(f32, f_s):
        np.testing.assert_allclose(a.grad.numpy(), r.grad.numpy(), atol=1e-5)


def test_aligned_and_ustat_match_brute_force():
    k = 3
    X_s, f_s = _problem(k, 5)
    X_s = [X[:5] for X in X_s]
    f_s = [f.detach()[:5].requires_grad_(True) for f in f_s]
    cost = PointCloudCost(k, "complete")
    reg = 0.5
    # aligned: mean over rows r of exp((Σ f_i[r] - c(x_r))/reg)
    s = sum(f_s) - sum(((X_s[a] - X_s[b]) ** 2).sum(1) for a, b in cost.edges)
    ref = torch.logsumexp(s / reg, 0) - math.log(5)
    np.testing.assert_allclose(float(aligned_log_mean_exp(cost, X_s, f_s, reg)), float(ref), rtol=1e-12)
    got = ustat_log_mean_exp(cost, X_s, f_s, reg)
    ref = _brute_lme(cost, X_s, f_s, reg, distinct=True)
    np.testing.assert_allclose(float(got), float(ref), rtol=1e-10)
    gg = torch.autograd.grad(got, f_s)
    gr = torch.autograd.grad(ref, f_s)
    for a, r in zip(gg, gr):
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-8, atol=1e-12)


def test_ustat_on_a_chain_excludes_all_repeated_positions():
    X_s, f_s = _problem(3, 4)
    X_s = [X[:4] for X in X_s]
    f_s = [f.detach()[:4] for f in f_s]
    cost = PointCloudCost(3, "chain")
    np.testing.assert_allclose(
        float(ustat_log_mean_exp(cost, X_s, f_s, 1.0)),
        float(_brute_lme(cost, X_s, f_s, 1.0, distinct=True)),
        rtol=1e-10,
    )


def test_callable_cost_combinatorial_and_aligned():
    k = 3
    X_s, f_s = _problem(k, 4)

    def c(x, y, z):
        return ((x - y) ** 2).sum(1) + ((y - z) ** 2).sum(1) + ((x - z) ** 2).sum(1)

    tc = TupleCost(k, c)
    ref = _brute_lme(PointCloudCost(k, "complete"), X_s, f_s, 0.3)
    np.testing.assert_allclose(float(combinatorial_log_mean_exp(tc, X_s, f_s, 0.3)), float(ref), rtol=1e-12)
    Xa = [X[:4] for X in X_s]
    fa = [f[:4] for f in f_s]
    np.testing.assert_allclose(
        float(aligned_log_mean_exp(tc, Xa, fa, 0.3)),
        float(aligned_log_mean_exp(PointCloudCost(k, "complete"), Xa, fa, 0.3)),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="one value per tuple"):
        TupleCost(k, lambda x, y, z: x).at_tuples(Xa)
    with pytest.raises(ValueError, match="aligned"):
        TupleCost(k, c, max_tuples=10).tensor(X_s)


def test_exact_dual_is_weighted_dual():
    k = 3
    X_s, f_s = _problem(k, 4)
    g = torch.Generator().manual_seed(3)
    a_s = [torch.rand(X.shape[0], generator=g, dtype=torch.float64) + 0.1 for X in X_s]
    a_s = [a / a.sum() for a in a_s]
    reg = 0.7
    cost = PointCloudCost(k, "circle")
    C = _dense_cost(cost, X_s)
    S = -C / reg
    first = 0.0
    for i, (f, a) in enumerate(zip(f_s, a_s)):
        sh = [1] * k
        sh[i] = -1
        S = S + (f / reg + torch.log(a)).reshape(sh)
        first = first + (a * f).sum()
    ref = first - reg * torch.logsumexp(S.reshape(-1), 0)
    np.testing.assert_allclose(float(exact_dual(cost, X_s, f_s, reg, a_s)), float(ref), rtol=1e-12)


@pytest.mark.parametrize("k", [4, 5])
@pytest.mark.parametrize("reg", [1.0, 0.1, 0.01])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_combinatorial_complete_split_product_matches_brute_force(k, reg, dtype):
    """Complete graphs (the contraction engine's split product, or its log-domain fallback): values, gradients."""
    dt = getattr(torch, dtype)
    X_s, f_s = _problem(k, 5 if k == 4 else 4, seed=7, scale=0.5)
    f_s = [(f.detach() * 0.3).requires_grad_(True) for f in f_s]
    cost = PointCloudCost(k, "complete")
    Xd = [X.to(dt) for X in X_s]
    fd = [f.detach().to(dt).requires_grad_(True) for f in f_s]
    got = combinatorial_log_mean_exp(cost, Xd, fd, reg)
    gg = torch.autograd.grad(got, fd)
    ref = _brute_lme(cost, X_s, f_s, reg)
    gr = torch.autograd.grad(ref, f_s)
    tol = 1e-5 if dtype == "float32" else 1e-11
    np.testing.assert_allclose(float(got.detach()), float(ref.detach()), rtol=tol, atol=tol)
    for a, r in zip(gg, gr):
        # d lme / d f_i is the marginal of node i divided by reg
        np.testing.assert_allclose(a.double().numpy() * reg, r.numpy() * reg, atol=10 * tol)


def test_ustat_on_the_complete_graph_k4_matches_brute_force():
    X_s, f_s = _problem(4, 5, seed=2)
    X_s = [X[:5] for X in X_s]
    f_s = [f.detach()[:5].requires_grad_(True) for f in f_s]
    cost = PointCloudCost(4, "complete")
    got = ustat_log_mean_exp(cost, X_s, f_s, 0.5)
    ref = _brute_lme(cost, X_s, f_s, 0.5, distinct=True)
    np.testing.assert_allclose(float(got), float(ref), rtol=1e-10)
    for a, r in zip(torch.autograd.grad(got, f_s), torch.autograd.grad(ref, f_s)):
        np.testing.assert_allclose(a.numpy(), r.numpy(), rtol=1e-8, atol=1e-12)
