"""Pieces of the neural training loop: engine rebinding and one-shot log-partitions, the batch sampler, checkpoints."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ot_multimarginal import PairwiseCost  # noqa: E402
from ot_multimarginal.neural import BatchSampler, NeuralEMOT  # noqa: E402


def _mats(k, n, graph, seed, dtype=torch.float64, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    X = [torch.randn(n, 2, generator=g, dtype=dtype) * scale for _ in range(k)]
    return X, PairwiseCost.from_point_clouds(X, graph=graph)


@pytest.mark.parametrize("graph,k", [("chain", 4), ("circle", 3), ("circle", 5), ("complete", 4), ("star", 4)])
def test_rebind_equals_a_fresh_engine(graph, k):
    _, C1 = _mats(k, 6, graph, 0)
    _, C2 = _mats(k, 6, graph, 1)
    eng = C1.make_engine(0.3)
    g = [torch.randn(6, generator=torch.Generator().manual_seed(i), dtype=torch.float64) for i in range(k)]
    reb = eng.rebind(C2.matrices)
    fresh = C2.make_engine(0.3)
    assert type(reb) is type(fresh)
    np.testing.assert_allclose(float(reb.log_partition(g)), float(fresh.log_partition(g)), rtol=1e-13)
    for i in range(k):
        np.testing.assert_allclose(reb.log_marginal(g, i).numpy(), fresh.log_marginal(g, i).numpy(), rtol=1e-12)
    with pytest.raises(ValueError, match="rebind"):
        eng.rebind(C2.matrices[:-1])


@pytest.mark.parametrize("shift", [0.0, -50.0])
@pytest.mark.parametrize("k", [3, 4, 6])
@pytest.mark.parametrize("dtype,reg", [(torch.float64, 1.0), (torch.float32, 0.02)])
def test_cycle_log_partition_once_matches_log_partition(k, dtype, reg, shift):
    """The one-shot path is the uncentred log-partition too (the engines centre shifted costs, issue 18)."""
    _, C = _mats(k, 7, "circle", 2, dtype, scale=2.0)
    C = PairwiseCost(C.edges, [M + shift for M in C.matrices])
    g = [torch.randn(7, generator=torch.Generator().manual_seed(10 + i), dtype=dtype) for i in range(k)]
    a = C.make_engine(reg).log_partition_once(g)
    C64 = PairwiseCost(C.edges, [M.double() for M in C.matrices])
    b = C64.make_engine(reg).log_partition([x.double() for x in g])
    assert torch.isfinite(a)
    np.testing.assert_allclose(float(a), float(b), rtol=1e-12 if dtype == torch.float64 else 2e-6)


def test_sampler_state_and_ranks():
    s = BatchSampler([10, 7, 5], 4, seed=3)
    first = [s.sample() for _ in range(3)]
    state = s.state_dict()
    after = [s.sample() for _ in range(4)]
    t = BatchSampler([10, 7, 5], 4, seed=3)
    t.load_state_dict(state)
    again = [t.sample() for _ in range(4)]
    for x, y in zip(after, again):
        for a, b in zip(x, y):
            assert torch.equal(a, b)
    # without replacement within an epoch: no index repeats inside a batch
    for batch in first + after:
        for idx in batch:
            assert len(set(idx.tolist())) == 4
    other = BatchSampler([10, 7, 5], 4, seed=3, rank=1, world_size=2)
    assert not all(torch.equal(a, b) for a, b in zip(BatchSampler([10, 7, 5], 4, seed=3).sample(), other.sample()))
    w = torch.tensor([0.0, 0.0, 1.0, 0.0])
    ws = BatchSampler([4, 4], 3, weights=[w, None], seed=0)
    assert ws.replace == [True, False]
    assert ws.sample()[0].tolist() == [2, 2, 2]
    with pytest.raises(ValueError, match="batch_size=8"):
        BatchSampler([10, 7], 8)


def test_trainer_checkpoint_resumes_to_the_bit():
    rng = np.random.RandomState(0)
    X_s = [rng.rand(60, 2) for _ in range(3)]
    est = NeuralEMOT(1.0, random_state=0, max_iter=10, eval_every=5).fit(X_s)
    tr = est.trainer_
    tr.n_iter = 10**6
    state = tr.state_dict()
    import copy

    state = copy.deepcopy(state)
    ref = [tr.step() for _ in range(5)]
    est2 = NeuralEMOT(1.0, random_state=7, max_iter=10, eval_every=5).fit(X_s)  # another run, then restored
    tr2 = est2.trainer_
    tr2.load_state_dict(state)
    tr2.n_iter = 10**6
    assert [tr2.step() for _ in range(5)] == ref


def test_adam_is_torch_adam():
    """Oracle: torch.optim.Adam on the same networks and gradients, to the bit in float64 (fused and multi-tensor)."""
    import copy

    from ot_multimarginal.neural.training import Adam

    for fused in (True, False):
        torch.manual_seed(0)
        m1 = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1)).double()
        m2 = copy.deepcopy(m1)
        o1 = torch.optim.Adam(m1.parameters(), lr=1e-2, **({"fused": True} if fused else {"foreach": True}))
        o2 = Adam(m2.parameters(), 1e-2)
        o2.fused = fused and o2.fused
        for t in range(30):
            x = torch.randn(16, 3, dtype=torch.float64)
            for m, o in ((m1, o1), (m2, o2)):
                o.zero_grad(set_to_none=True)
                (m(x) ** 2).mean().backward()
                o.step()
            if t == 10:
                for o in (o1, o2):
                    o.param_groups[0]["lr"] = 3e-3
        for a, b in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(a, b), fused
    o3 = Adam(copy.deepcopy(m2).parameters(), 1.0)
    o3.load_state_dict(o2.state_dict())
    assert o3.n_steps == 30 and o3.param_groups[0]["lr"] == 3e-3 and float(o3._steps[0]) == 30.0
    with pytest.raises(ValueError, match="torch.optim.Adam"):
        o3.load_state_dict(o1.state_dict())
