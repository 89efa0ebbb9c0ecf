"""Host synchronisations of the hot loops, counted on the CPU (what would make a GPU wait).

The counter (:mod:`_host_sync`) records ``.item()``/``float``/``bool`` of tensors, copies to the host and ops
whose output shape depends on the data. Targets held here: a sync-free training step of ``emot_neural`` on
chain, circle and complete graphs makes none (the batch duals and the engines' certificates are read once per
check); the engines' one-shot log-partitions make none inside ``deferred_checks``; a Sinkhorn sweep in the log
domain makes none and each error check one; sync-free Sinkhorn sweeps (``sync_free=True``, the default on a GPU)
make none on every engine (dense scaled, tree, cycle, triangle, contraction) and one per error check, and redo on
the checked path what their fast products got wrong (the same iterates).
"""

import contextlib
import os
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _host_sync import HostSyncCounter  # noqa: E402

from conftest import wide_range_logs  # noqa: E402
from ot_multimarginal import PairwiseCost  # noqa: E402
from ot_multimarginal._backend import deferred_checks, safe_log  # noqa: E402
from ot_multimarginal.neural import NeuralEMOT  # noqa: E402
from ot_multimarginal.sinkhorn import make_engine  # noqa: E402
from ot_multimarginal.strategies import STRATEGIES  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
# (graph, k): chain -> tree engine, circle -> cycle engine (log_matmul), complete k = 3 -> triangle (cycle),
# complete k = 4 -> the split product of the contraction engine
GRAPHS = [("chain", 3), ("circle", 4), ("complete", 3), ("complete", 4)]


# ---------------------------------------------------------------- the counter itself
def test_counter_sees_every_kind_of_synchronisation():
    x = torch.randn(6)
    with HostSyncCounter() as s:
        y = torch.exp(x) @ x + x.sum()  # device work only
        _ = torch.where(x > 0, x, 0 * x).logsumexp(0)
    assert s.count == 0, s.report()
    cases = [
        ("item", lambda: x[0].item()),
        ("item", lambda: float(x.sum())),
        ("item", lambda: bool(x.sum() > 0)),
        ("item", lambda: int(x.argmax())),
        ("item", lambda: torch.equal(x, x)),
        ("shape", lambda: x.nonzero()),
        ("shape", lambda: x[x > 0]),
        ("shape", lambda: torch.masked_select(x, x > 0)),
        ("shape", lambda: x.unique()),
        ("to_host", lambda: x.numpy()),
        ("to_host", lambda: x.tolist()),
        ("to_host", lambda: np.asarray(x)),
    ]
    for kind, f in cases:
        with HostSyncCounter() as s:
            f()
        assert s.count == 1 and s.events[0][0] == kind, (kind, s.report())
    # the Tensor methods are restored on exit
    assert "numpy" not in torch.Tensor.__dict__ and "tolist" not in torch.Tensor.__dict__
    assert y.shape == ()


# ---------------------------------------------------------------- neural training steps
def _chain_cost(*xs):
    return sum(((xs[i] - xs[i + 1]) ** 2).sum(1) for i in range(len(xs) - 1))


def _trainer(graph, k, device, sync_free=True, n=40, seed=0, dtype=torch.float32, **kw):
    rng = np.random.RandomState(seed)
    X = [torch.tensor(rng.randn(n, 2) + 0.2 * i, device=device) for i in range(k)]
    est = NeuralEMOT(
        0.5, graph=graph, max_iter=1, batch_size=12, eval_every=0, random_state=seed, width=8, dtype=dtype, **kw
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. the aligned estimator's reliability warning: not the point here
        est.fit(X)  # builds the engine templates, normalises the networks
    tr = est.trainer_
    tr.sync_free = sync_free
    tr.n_iter = 10**9
    return tr


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("graph,k", GRAPHS)
def test_training_step_makes_no_host_synchronisation(graph, k, device):
    tr = _trainer(graph, k, device)
    tr.step_async()
    tr.sync()
    n_before = len(tr.history["batch_dual"])
    with HostSyncCounter(device) as s:
        for _ in range(4):
            tr.step_async()
    assert s.count == 0, s.report()
    with HostSyncCounter(device) as s:
        tr.sync()  # the batch duals, their finiteness and the certificates: one read
    assert s.count == 1, s.report()
    assert len(tr.history["batch_dual"]) == n_before + 4
    assert all(np.isfinite(tr.history["batch_dual"]))


@pytest.mark.parametrize(
    "kw",
    [{"estimator": "aligned"}, {"estimator": "ustat"}, {"cost": _chain_cost}, {"reg_m": 1.0}],
    ids=["aligned", "ustat", "callable-cost", "unbalanced"],
)
def test_other_estimators_and_callable_costs_make_no_host_synchronisation(kw):
    tr = _trainer("circle", 3, "cpu", **kw)
    tr.step_async()
    with HostSyncCounter() as s:
        for _ in range(3):
            tr.step_async()
    assert s.count == 0, s.report()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the aligned estimator's reliability warning is not the point here
        tr.sync()
    assert np.all(np.isfinite(tr.history["batch_dual"]))


@pytest.mark.parametrize("graph,k", [("circle", 4), ("complete", 4)])
def test_run_reads_the_host_once_per_check(graph, k):
    """Between two checks (held-out evaluation, sync), the loop itself makes no host synchronisation."""
    tr = _trainer(graph, k, "cpu")
    tr.eval_every, tr.n_iter = 4, 12  # from step 1 (the fit)
    counter = HostSyncCounter()
    checks = {"evaluate": 0, "sync": 0, "hand_over": 0}

    def outside(name, f):  # a check counts once, whatever it does inside
        def wrapped(*a, **kw):
            checks[name] += 1
            with counter.paused():
                return f(*a, **kw)

        return wrapped

    tr.evaluate = outside("evaluate", tr.evaluate)
    tr.sync = outside("sync", tr.sync)
    if tr.hand_over is not None:  # emot_neural's hand-over test, asked after each held-out estimate: part of it
        tr.hand_over = outside("hand_over", tr.hand_over)
    with counter:
        tr.run()
    assert counter.count == 0, counter.report()
    assert checks["evaluate"] == 3  # steps 4, 8, 12
    assert checks["hand_over"] <= checks["evaluate"]
    assert checks["sync"] <= 3 + 1  # once per check, and at the end (a no-op then)


@pytest.mark.parametrize("graph,k", GRAPHS)
def test_sync_free_training_equals_the_checked_one(graph, k):
    """On the CPU the deferred checks change nothing: the same batch duals and networks, to the bit."""
    a, b = _trainer(graph, k, "cpu", sync_free=False), _trainer(graph, k, "cpu", sync_free=True)
    for tr in (a, b):
        tr.eval_every, tr.n_iter = 3, tr.step_count + 6
        tr.run()
    assert a.history["batch_dual"] == b.history["batch_dual"]
    assert a.history["eval_value"] == b.history["eval_value"]
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_sync_free_underflow_is_reported_once_a_fit():
    """A failed deferred certificate warns at the first check that reads it, not at every check after it."""
    tr = _trainer("circle", 3, "cpu")
    with pytest.warns(UserWarning, match="underflowed .* reported once a fit") as caught:
        for _ in range(3):
            tr.step_async()
            tr._checks.append((torch.tensor(False), "log_matmul"))  # as a product of these batches would
            tr.sync()
    assert sum("underflowed" in str(w.message) for w in caught) == 1


def test_sync_free_step_reports_a_non_finite_dual_at_the_check():
    tr = _trainer("chain", 3, "cpu")
    with torch.no_grad():
        next(tr.model.parameters()).fill_(float("nan"))
    tr.step_async()  # no error yet: nothing is read on the host
    with pytest.raises(FloatingPointError, match="not finite"):
        tr.sync()


# ---------------------------------------------------------------- engines
def _pairwise(graph, k, n=12, reg=0.3, dtype=torch.float64, scale=1.0, seed=1):
    rng = np.random.RandomState(seed)
    X = [torch.tensor(scale * rng.randn(n, 2), dtype=dtype) for _ in range(k)]
    return PairwiseCost.from_point_clouds(X, graph=graph).make_engine(reg), n


@pytest.mark.parametrize("graph,k", GRAPHS)
def test_log_partition_once_makes_no_host_synchronisation(graph, k):
    eng, n = _pairwise(graph, k)
    g = [torch.full((n,), -np.log(n), dtype=torch.float64) for _ in range(k)]
    expected = eng.log_partition_once(g)
    checks = []
    with HostSyncCounter() as s, deferred_checks(checks):
        got = eng.log_partition_once(g)
    assert s.count == 0, s.report()
    assert all(bool(ok) for ok, _ in checks)
    # the same value as the checked path, and as the dense tensor's log-sum-exp
    assert float(got) == pytest.approx(float(expected), rel=1e-12)
    assert float(got) == pytest.approx(
        float(torch.logsumexp(eng.log_plan(g).reshape(-1), 0) - eng.cost_offset / eng.reg), rel=1e-10
    )


def test_deferred_certificate_fails_where_the_checked_path_repairs():
    """A cycle at tiny ε in float32: the scaled product underflows, the deferred certificate says so."""
    eng, n = _pairwise("circle", 5, n=10, reg=2e-3, dtype=torch.float32, scale=3.0)
    g = [torch.full((n,), -float(np.log(n))) for _ in range(5)]
    checks = []
    with deferred_checks(checks):
        eng.log_partition_once(g)
    assert checks and not all(bool(ok) for ok, _ in checks)
    exact = eng.log_partition_once(g)  # outside: repaired, finite and equal to the log domain
    ref = torch.logsumexp(eng.log_plan([x.double() for x in g]).double().reshape(-1), 0) - eng.cost_offset / eng.reg
    assert float(exact) == pytest.approx(float(ref), rel=1e-4)


def test_deferred_underflowed_product_has_finite_gradients():
    """A sync-free float32 product whose scaled entries underflow to zero (unrepaired: the certificate fails)
    gives -inf there with zero gradients, not NaN: its log-sum-exp and gradients equal the float64 ones to float32
    rounding (a sync-free training step of the triangle at reg = 0.1 went NaN at its first update)."""
    from ot.backend import TorchBackend

    from ot_multimarginal.marginals._pairwise import Precision, log_matmul

    L1, L2 = wide_range_logs(np.random.RandomState(0), 30, 24, 20, noise=0.0)
    t1 = torch.tensor(L1, dtype=torch.float32, requires_grad=True)
    t2 = torch.tensor(L2, dtype=torch.float32, requires_grad=True)
    checks = []
    with deferred_checks(checks):
        out = log_matmul(TorchBackend(), t1, t2, Precision(t1))
    assert checks and not all(bool(ok) for ok, _ in checks) and bool(torch.isinf(out).any())
    loss = torch.logsumexp(out.reshape(-1), 0)
    loss.backward()
    d1 = torch.tensor(L1, requires_grad=True)
    d2 = torch.tensor(L2, requires_grad=True)
    ref = torch.logsumexp((d1[:, :, None] + d2[None]).reshape(-1), 0)
    ref.backward()
    assert float(loss) == pytest.approx(float(ref), rel=1e-6)
    for got, want in ((t1.grad, d1.grad), (t2.grad, d2.grad)):
        assert bool(torch.isfinite(got).all())
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5)


def _outlier_triangle(seed, dtype=torch.float32, spread=400.0):
    """Log-kernels of a triangle on 1-D points in [0, 0.3] with one outlier (u = 0.95) whose nearest v (in
    [0.9, 1]) are far from every w: the whole outlier row of the float32 scaled product underflows, and the closing
    edge makes it negligible (~e^-500) in the log-partition."""
    rng = np.random.RandomState(seed)
    u = np.r_[0.95, 0.3 * rng.rand(29)]
    v = np.r_[0.9 + 0.1 * rng.rand(4), 0.3 * rng.rand(20)]
    w = 0.3 * rng.rand(25)
    logs = [-spread * np.abs(x[:, None] - y[None]) for x, y in ((u, v), (v, w), (u, w))]
    return [torch.tensor(L, dtype=dtype) for L in logs]


@pytest.mark.parametrize("seed", [0, 1])
def test_deferred_certificate_of_a_log_partition_skips_negligible_rows(seed):
    """A product whose caller only sums ``e^(out + addend)`` (``summed=True``, the cycle's log-partition): an
    underflowed row negligible in the total passes the deferred certificate (the per-row bound of a pairwise
    marginal cannot certify a row with no accurate entry: a sync-free triangle at reg = 0.1 warned at every fit),
    and the total equals float64's to float32 rounding, deferred or checked."""
    from ot.backend import TorchBackend

    from ot_multimarginal.marginals._pairwise import Precision, log_matmul

    nx = TorchBackend()
    L1, L2, R = _outlier_triangle(seed)
    D1, D2, DR = (x.double() for x in (L1, L2, R))
    exact = torch.logsumexp((torch.logsumexp(D1[:, :, None] + D2[None], 1) + DR).reshape(-1), 0)
    for summed, certified in ((False, False), (True, True)):
        checks = []
        with deferred_checks(checks):
            out = log_matmul(nx, L1, L2, Precision(L1), addend=R, summed=summed)
        assert len(checks) == 1 and bool(checks[0][0]) == certified
        assert bool(torch.isinf(out[0]).all())  # the outlier row: underflowed, unrepaired (a lower bound)
        checked = log_matmul(nx, L1, L2, Precision(L1), addend=R, summed=summed)
        for got in (out, checked):
            assert float(torch.logsumexp((got + R).reshape(-1), 0)) == pytest.approx(float(exact), abs=1e-6)


def test_triangle_log_partition_passes_its_deferred_certificate_with_an_outlier():
    """The triangle engine's one-shot log-partition (a training batch) hands its closing edge to the product:
    the deferred certificate holds and the value is float64's to float32 rounding."""
    logs = _outlier_triangle(0)
    C = [-0.1 * L for L in logs]  # costs 40 |x - y| at reg = 0.1
    eng = PairwiseCost([(0, 1), (1, 2), (0, 2)], C).make_engine(0.1)
    eng64 = PairwiseCost([(0, 1), (1, 2), (0, 2)], [c.double() for c in C]).make_engine(0.1)
    g = [torch.zeros(c, dtype=torch.float32) for c in (30, 24, 25)]
    checks = []
    with deferred_checks(checks):
        got = eng.log_partition_once(g)
    assert checks and all(bool(ok) for ok, _ in checks)
    want = eng64.log_partition_once([x.double() for x in g])
    assert float(got) == pytest.approx(float(want), abs=1e-5)


# ---------------------------------------------------------------- Sinkhorn sweeps
def _sweeps(engine, a_s, n_sweeps, check_every):
    la = [safe_log(engine.nx, a) for a in a_s]
    g = list(la)
    with HostSyncCounter() as s:
        STRATEGIES["sinkhorn_log"](engine, a_s, la, g, n_sweeps, 0.0, check_every=check_every)
    return s


def test_log_domain_sweep_makes_no_host_synchronisation_and_a_check_one():
    rng = np.random.RandomState(0)
    M = torch.tensor(rng.rand(6, 7, 8))
    a_s = [torch.full((m,), 1.0 / m, dtype=torch.float64) for m in M.shape]
    engine, a_s = make_engine(a_s, M, 0.1, mode="log")
    # 10 more sweeps and 2 more checks cost exactly 2 more synchronisations
    base, more = _sweeps(engine, a_s, 10, 5), _sweeps(engine, a_s, 20, 5)
    assert more.count - base.count == 2, more.report()
    # fewer checks, fewer synchronisations: one per check
    assert _sweeps(engine, a_s, 20, 10).count == more.count - 2


def _dense(n=(6, 7, 8), reg=0.1, dtype=torch.float64, seed=0):
    rng = np.random.RandomState(seed)
    M = torch.tensor(rng.rand(*n), dtype=dtype)
    a_s = [torch.full((m,), 1.0 / m, dtype=dtype) for m in n]
    return make_engine(a_s, M, reg, mode="scaling")


def _graph(graph, k, n=12, reg=0.3, dtype=torch.float64, scale=1.0, seed=1):
    eng, n = _pairwise(graph, k, n=n, reg=reg, dtype=dtype, scale=scale, seed=seed)
    return eng, [torch.full((n,), 1.0 / n, dtype=dtype) for _ in range(k)]


# every engine's fast path: dense scaled kernel, tree messages (chain, star), cycle transfer matrices (scaled in
# float64, log domain in float32), the triangle's through-products, the contraction engine (complete k = 4)
ENGINES = {
    "dense-scaling": lambda **kw: _dense(**kw),
    "chain": lambda **kw: _graph("chain", 4, **kw),
    "star": lambda **kw: _graph("star", 5, **kw),
    "circle": lambda **kw: _graph("circle", 5, **kw),
    "circle-float32": lambda **kw: _graph("circle", 5, **{**kw, "dtype": torch.float32}),
    "triangle": lambda **kw: _graph("complete", 3, **kw),
    "complete4": lambda **kw: _graph("complete", 4, **kw),
}


def _run(make, n_sweeps, check_every, sync_free, counted=True, **kw):
    """A fresh engine, ``n_sweeps`` cyclic sweeps from ``log a``; returns ``(syncs, g, info)``."""
    engine, a_s = make()
    la = [safe_log(engine.nx, a) for a in a_s]
    with HostSyncCounter() if counted else contextlib.nullcontext() as s:
        g, info = STRATEGIES["sinkhorn_log"](
            engine, a_s, la, list(la), n_sweeps, 0.0, check_every=check_every, sync_free=sync_free, **kw
        )
    return s, g, info


@pytest.mark.parametrize("name", list(ENGINES))
def test_sync_free_sweep_makes_no_host_synchronisation_and_a_check_one(name):
    """Sync-free sweeps: 20 more sweeps and 4 more checks cost exactly 4 more synchronisations, on every engine."""
    make = ENGINES[name]
    base, _, info0 = _run(make, 5, 5, True)
    more, _, info = _run(make, 25, 5, True)
    assert info0["n_redone"] == 0 and info["n_redone"] == 0  # the fast path held: nothing was redone
    assert more.count - base.count == 4, more.report()
    # fewer checks, fewer synchronisations: one per check
    fewer, _, _ = _run(make, 25, 25, True)
    assert more.count - fewer.count == 4, fewer.report()
    # the checked path reads the host as it goes (at least once a sweep): what the sync-free sweeps save
    checked, _, info_c = _run(make, 25, 5, False)
    assert "n_redone" not in info_c
    assert checked.count - more.count >= 20, (checked.report(), more.report())


def test_sync_free_over_relaxed_steps_make_no_host_synchronisation():
    make = ENGINES["chain"]
    base, _, _ = _run(make, 5, 5, True, relaxation=1.5)
    more, g, info = _run(make, 25, 5, True, relaxation=1.5)
    assert more.count - base.count == 4, more.report()
    _, g_ref, info_ref = _run(make, 25, 5, False, counted=False, relaxation=1.5)
    assert info["n_relaxed_steps"] == info_ref["n_relaxed_steps"] > 0
    for x, y in zip(g, g_ref):
        assert torch.equal(x, y)


@pytest.mark.parametrize("name", list(ENGINES))
def test_sync_free_sweeps_give_the_iterates_of_the_checked_path(name):
    """Where the fast path holds, the same iterates and errors as the checked path (to rounding)."""
    make = ENGINES[name]
    _, g, info = _run(make, 30, 5, True, counted=False)
    _, g_ref, info_ref = _run(make, 30, 5, False, counted=False)
    assert info["err"] == pytest.approx(info_ref["err"], rel=1e-5 if "float32" in name else 1e-10)
    for x, y in zip(g, g_ref):
        tol = (1e-5 if x.dtype == torch.float32 else 1e-10) * (1.0 + float(y.abs().max()))
        assert float((x - y).abs().max()) <= tol


# tiny ε and a spread-out cost: the scaled products underflow and the scalings drift out of range, so the fast
# path fails its certificates; the sync-free loop must redo those sweeps on the checked path
REPAIRS = {
    "dense-float32": lambda: _dense(n=(8, 9, 10), reg=4e-3, dtype=torch.float32),
    "chain-float32": lambda: _graph("chain", 4, n=10, reg=2e-3, dtype=torch.float32, scale=3.0),
    "chain-float64": lambda: _graph("chain", 4, n=10, reg=2e-4, scale=3.0),
    "circle-float64": lambda: _graph("circle", 5, n=10, reg=5e-4, scale=3.0),
    "circle-float32": lambda: _graph("circle", 5, n=10, reg=2e-3, dtype=torch.float32, scale=3.0),
    "triangle-float32": lambda: _graph("complete", 3, n=10, reg=2e-3, dtype=torch.float32, scale=3.0),
    "complete4-float32": lambda: _graph("complete", 4, n=8, reg=2e-3, dtype=torch.float32, scale=3.0),
}


@pytest.mark.parametrize("name", list(REPAIRS))
def test_sync_free_sweeps_redo_what_the_fast_path_gets_wrong(name):
    make = REPAIRS[name]
    _, g, info = _run(make, 40, 5, True, counted=False)
    _, g_ref, info_ref = _run(make, 40, 5, False, counted=False)
    assert info["n_redone"] > 0  # the fast path failed somewhere (else this case tests nothing)
    assert all(bool(torch.isfinite(x).all()) for x in g)
    assert info["err"] == pytest.approx(info_ref["err"], rel=1e-4)
    for x, y in zip(g, g_ref):
        tol = (1e-5 if x.dtype == torch.float32 else 1e-10) * (1.0 + float(y.abs().max()))
        assert float((x - y).abs().max()) <= tol


def test_the_fast_path_alone_would_be_wrong_in_the_repair_cases():
    """The repair cases are real: the fast path's own results (certificates ignored) are not the checked ones."""
    engine, a_s = REPAIRS["chain-float32"]()
    la = [safe_log(engine.nx, a) for a in a_s]
    g = list(la)
    for _ in range(3):
        g = [engine.log_marginal(g, 0)] + g[1:]  # any g: the marginals of a few points
    checks = []
    with deferred_checks(checks):
        fast = engine.log_marginals(g)
    assert not all(bool(ok) for ok, _ in checks)
    exact = engine.log_marginals([x.clone() for x in g])
    assert any(not torch.allclose(x, y, rtol=1e-4, atol=1e-4) for x, y in zip(fast, exact))


def test_sync_free_sweeps_are_torch_only_and_on_a_gpu_by_default():
    from ot_multimarginal.strategies._deferred import use_sync_free as _use_sync_free

    engine, _ = _graph("chain", 3)
    assert not _use_sync_free(engine, None)  # a CPU tensor: read as it goes
    assert _use_sync_free(engine, True) and not _use_sync_free(engine, False)
    rng = np.random.RandomState(0)
    X = [rng.randn(8, 2) for _ in range(3)]
    np_engine = PairwiseCost.from_point_clouds(X, graph="chain").make_engine(0.3)
    assert not _use_sync_free(np_engine, True)  # NumPy: a read is free, the loop is unchanged
    a_s = [np.full(8, 1.0 / 8) for _ in range(3)]
    la = [np.log(a) for a in a_s]
    g, info = STRATEGIES["sinkhorn_log"](np_engine, a_s, la, list(la), 10, 0.0, sync_free=True)
    assert "n_redone" not in info and info["niter"] == 10
    if torch.cuda.is_available():
        engine, _ = _graph("chain", 3)
        assert _use_sync_free(
            type(engine)(engine.shape, engine.edges, [C.cuda() for C in engine.matrices], 0.3, engine.nx), None
        )


# ---------------------------------------------------------------- greedy and accelerated loops
GREEDY = ["sinkhorn_greedy", "sinkhorn_accelerated"]


def _run_loop(method, make, n_iter, sync_free, counted=True, stopThr=0.0, **kw):
    """A fresh engine, ``n_iter`` iterations of ``method`` from ``log a``; returns ``(syncs, g, info)``."""
    engine, a_s = make()
    la = [safe_log(engine.nx, a) for a in a_s]
    with HostSyncCounter() if counted else contextlib.nullcontext() as s:
        g, info = STRATEGIES[method](engine, a_s, la, list(la), n_iter, stopThr, sync_free=sync_free, **kw)
    return s, g, info


@pytest.mark.parametrize("name", ["dense-scaling", "chain", "circle", "complete4"])
@pytest.mark.parametrize("method", GREEDY)
def test_sync_free_greedy_and_accelerated_make_no_host_synchronisation_and_a_check_one(method, name):
    """20 more iterations and 2 more checks cost exactly 2 more synchronisations (block choice, safeguard,
    errors, duals and the engines' certificates all stay on the device between two checks)."""
    make = ENGINES[name]
    base, _, info0 = _run_loop(method, make, 10, True)
    more, _, info = _run_loop(method, make, 30, True)
    assert info0["n_redone"] == 0 and info["n_redone"] == 0
    assert info["niter"] == 30 and len(info["err"]) == len(info["dual"]) == 31 and len(info["blocks"]) == 30
    assert more.count - base.count == 2, more.report()
    # one per check: checking every 5 iterations instead of 10 costs 3 more over 30 iterations
    often, _, _ = _run_loop(method, make, 30, True, check_every=5)
    assert often.count - more.count == 3, often.report()
    # the checked path reads the host at every iteration (at least): what the sync-free loop saves
    checked, _, info_c = _run_loop(method, make, 30, False)
    assert "n_redone" not in info_c
    assert checked.count - more.count >= 30, (checked.report(), more.report())


@pytest.mark.parametrize("method", GREEDY)
def test_sync_free_greedy_and_accelerated_redo_what_the_fast_path_gets_wrong(method):
    """The repair case of the cyclic test: the sync-free loop redoes on the checked path, same iterates."""
    make = REPAIRS["chain-float32"]
    _, g, info = _run_loop(method, make, 40, True, counted=False, check_every=7)
    _, g_ref, info_ref = _run_loop(method, make, 40, False, counted=False)
    assert info["n_redone"] > 0  # the fast path failed somewhere (else this case tests nothing)
    assert info["blocks"] == info_ref["blocks"] and info["niter"] == info_ref["niter"] == 40
    # float32 at tiny reg: the potentials agree to rounding, the errors (differences of near-equal masses) to 1e-3
    assert info["err"] == pytest.approx(info_ref["err"], rel=1e-3)
    for x, y in zip(g, g_ref):
        assert float((x - y).abs().max()) <= 1e-5 * (1.0 + float(y.abs().max()))
