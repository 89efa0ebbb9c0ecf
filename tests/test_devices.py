"""Device and dtype hygiene of the torch calls: tensors in, tensors out, on the same device, without a NumPy round trip.

Run on the CPU everywhere and, through the ``torch_device`` fixture (tests/conftest.py), on CUDA when a GPU is
present: the neural estimators (``emot_neural``, ``NeuralEMOT``, ``mgw_neural``, ``NeuralMGW``), the Sinkhorn GW
call ``mgw_sinkhorn`` and the structured Sinkhorn engines, saves and loads across devices. What goes to the host
is measured with the counter of :mod:`_host_sync`: only scalars and small matrices, never a cloud or a plan.
"""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _host_sync import HostSyncCounter  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.neural import NeuralEMOT, NeuralMGW, mgw_neural2  # noqa: E402

N = 24  # points per cloud: every array of that size copied to the host would be a round trip
DTYPES = [pytest.param(torch.float64, id="float64"), pytest.param(torch.float32, id="float32")]


def _clouds(device, dtype, k=3, dims=(2, 2, 2), seed=0):
    rng = np.random.RandomState(seed)
    return [torch.tensor(rng.randn(N, d) + 0.3 * i, dtype=dtype, device=device) for i, d in zip(range(k), dims)]


def _same(t, ref):
    assert isinstance(t, torch.Tensor), type(t)
    assert t.device.type == ref.device.type and t.dtype == ref.dtype, (t.device, t.dtype, ref.device, ref.dtype)


def _small_host_copies(s, limit=N):
    """Everything copied to the host by .numpy()/.tolist()/np.asarray is smaller than a cloud."""
    big = [n for n in s.host_numel if n >= limit]
    assert not big, "arrays of %s entries went to the host:\n%s" % (big, s.report(40))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("graph", ["chain", "circle", "complete"])
def test_neural_emot_keeps_device_and_dtype(torch_device, dtype, graph):
    X = _clouds(torch_device, dtype)
    with HostSyncCounter(torch_device) as s:
        est = NeuralEMOT(
            1.0, graph=graph, max_iter=6, batch_size=8, eval_every=3, patience=None, random_state=0, width=8
        ).fit(X)
        v = est.value()
        f = est.potential(1, X[1])
        P = est.pairwise_plan(0, 1)
        dens = est.plan_density(*[x[:5] for x in X])
    _small_host_copies(s)
    for t in (v, f, P, dens, *est.data_potentials()):
        _same(t, X[0])
    assert f.shape == (N,) and P.shape == (N, N) and dens.shape == (5,)
    # the function call: a tensor value on the same device and dtype
    _same(om.emot_neural2(X, 1.0, graph=graph, numItermax=3, batch_size=8, patience=None, random_state=0), X[0])


def test_neural_emot_save_load_across_devices(torch_device, tmp_path):
    X = _clouds(torch_device, torch.float64)
    est = NeuralEMOT(
        1.0, graph="chain", max_iter=5, batch_size=8, eval_every=0, patience=None, random_state=0, width=8
    ).fit(X)
    path = str(tmp_path / "emot.pt")
    est.save(path)
    targets = {"cpu", torch_device.type}
    for dev in sorted(targets):  # saved on torch_device, loaded on the CPU and on torch_device
        back = NeuralEMOT.load(path, device=dev)
        assert back.X_fit_[0].device.type == dev
        assert next(back.potentials_.parameters()).device.type == dev
        x = X[2].to(dev)
        torch.testing.assert_close(back.potential(2, x).cpu(), est.potential(2, X[2]).cpu(), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(back.value().cpu(), est.value().cpu())


@pytest.mark.parametrize("dtype", DTYPES)
def test_neural_mgw_keeps_device_and_dtype(torch_device, dtype, tmp_path):
    X = _clouds(torch_device, dtype, dims=(2, 3, 2))
    with HostSyncCounter(torch_device) as s:
        est = NeuralMGW(
            1.0,
            graph="chain",
            init="zero",
            max_iter=2,
            max_iter_inner=6,
            max_iter_refit=3,
            batch_size=8,
            n_moment_batches=2,
            random_state=0,
            width=8,
            warn=False,
        ).fit(X)
        P = est.pairwise_plan(0, 1)
    _small_host_copies(s)
    _same(est.value_, X[0])
    _same(P, X[0])
    assert P.shape == (N, N)
    path = str(tmp_path / "mgw.pt")
    est.save(path)
    back = NeuralMGW.load(path, device="cpu")
    torch.testing.assert_close(back.pairwise_plan(0, 1), P.cpu(), rtol=1e-5, atol=1e-7)
    kw = dict(graph="chain", init="zero", numItermax=1, numItermaxInner=3, batch_size=8, random_state=0, warn=False)
    _same(mgw_neural2(X, 1.0, **kw), X[0])


@pytest.mark.parametrize("dtype", DTYPES)
def test_mgw_sinkhorn_keeps_device_and_dtype(torch_device, dtype):
    X = _clouds(torch_device, dtype, dims=(2, 3, 2))
    with HostSyncCounter(torch_device, record_stack=False) as s:  # thousands of events: no stacks
        value, log = om.mgw_sinkhorn2(
            X, 0.5, graph="chain", numItermax=2, max_candidates=2, n_screen=1, random_state=0, log=True, warn=False
        )
    _small_host_copies(s, limit=N * 2)  # weights are validated on the host once per call (N entries)
    _same(value, X[0])
    P = log["plan"] if "plan" in log else None
    if P is not None and hasattr(P, "pairwise_marginal"):
        _same(P.pairwise_marginal(0, 1), X[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("graph", ["chain", "circle", "complete"])
def test_structured_sinkhorn_keeps_device_and_dtype(torch_device, dtype, graph):
    X = _clouds(torch_device, dtype, k=4, dims=(2, 2, 2, 2))
    C = om.PairwiseCost.from_point_clouds(X, graph=graph)
    a_s = [torch.full((N,), 1.0 / N, dtype=dtype, device=torch_device) for _ in X]
    with HostSyncCounter(torch_device) as s:
        v = om.emot_sinkhorn2(a_s, C, 1.0, numItermax=50, warn=False)
        P = om.emot_sinkhorn(a_s, C, 1.0, numItermax=50, warn=False)
        M01 = P.pairwise_marginal(0, 1)
    _small_host_copies(s, limit=N * 2)
    _same(v, X[0])
    _same(M01, X[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("graph", ["chain", "circle", "complete"])
def test_sync_free_sinkhorn_matches_the_checked_one_on_the_device(torch_device, dtype, graph):
    """``sync_free=True`` (the default on a GPU): same plan value and errors as the checked loop, same device."""
    X = _clouds(torch_device, dtype, k=4, dims=(2, 2, 2, 2))
    C = om.PairwiseCost.from_point_clouds(X, graph=graph)
    a_s = [torch.full((N,), 1.0 / N, dtype=dtype, device=torch_device) for _ in X]
    out = {}
    for sync_free in (False, True):
        v, log = om.emot_sinkhorn2(
            a_s, C, 0.5, method="sinkhorn_log", numItermax=60, warn=False, log=True, sync_free=sync_free
        )
        _same(v, X[0])
        out[sync_free] = (float(v), log["err"])
    rel = 1e-4 if dtype == torch.float32 else 1e-10
    assert out[True][0] == pytest.approx(out[False][0], rel=rel)
    assert out[True][1] == pytest.approx(out[False][1], rel=rel, abs=1e-6 if dtype == torch.float32 else 1e-14)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["sinkhorn_greedy", "sinkhorn_accelerated"])
@pytest.mark.parametrize("graph", ["chain", "circle"])
def test_sync_free_greedy_and_accelerated_match_the_checked_ones_on_the_device(torch_device, dtype, method, graph):
    """Sync-free greedy and accelerated loops (the default on a GPU): the checked plan value, errors and blocks,
    tensors on the same device; one host read per check beyond the solve's fixed setup."""
    X = _clouds(torch_device, dtype, k=4, dims=(2, 2, 2, 2))
    C = om.PairwiseCost.from_point_clouds(X, graph=graph)
    a_s = [torch.full((N,), 1.0 / N, dtype=dtype, device=torch_device) for _ in X]
    out = {}
    for sync_free in (False, True):
        v, log = om.emot_sinkhorn2(a_s, C, 0.5, method=method, numItermax=40, warn=False, log=True, sync_free=sync_free)
        _same(v, X[0])
        out[sync_free] = (float(v), log["err"], log["blocks"])
    rel = 1e-4 if dtype == torch.float32 else 1e-10
    assert out[True][0] == pytest.approx(out[False][0], rel=rel)
    assert out[True][1] == pytest.approx(out[False][1], rel=rel, abs=1e-6 if dtype == torch.float32 else 1e-14)
    assert out[True][2] == out[False][2]
    reads = []
    for n_iter in (10, 30):  # 20 more iterations, 2 more checks (check_every=10): 2 more host reads
        with HostSyncCounter(torch_device) as s:
            om.emot_sinkhorn2(a_s, C, 0.5, method=method, numItermax=n_iter, stopThr=0.0, warn=False, sync_free=True)
        reads.append(s.count)
    assert reads[1] - reads[0] == 2, s.report()
