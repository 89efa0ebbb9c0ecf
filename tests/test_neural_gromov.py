# -*- coding: utf-8 -*-
"""Neural multimarginal Gromov-Wasserstein (mgw_neural, NeuralMGW) against mgw_sinkhorn."""

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_gromov import _recovery_problem, accuracy  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.gromov import gw_linear_cost, gw_separable_terms  # noqa: E402

FAST = dict(n_iter=200, n_iter_refit=60, n_outer=4, seed=0)


def test_separable_terms_make_the_cost_a_distortion(rng):
    X = rng.randn(7, 2)
    Q, _ = np.linalg.qr(rng.randn(3, 3))
    Y = X @ Q[:2]
    A = 0.5 * X.T @ Y / 7
    hx, hy = gw_separable_terms(X, Y, A)
    R = gw_linear_cost(X, Y, A) + hx[:, None] + hy[None, :]
    U, S, Vt = np.linalg.svd(A, full_matrices=False)
    u, v = X @ U * np.sqrt(S), Y @ Vt.T * np.sqrt(S)
    ref = 2 * ((X**2).sum(1)[:, None] - (Y**2).sum(1)[None, :]) ** 2 + 16 * ((u[:, None] - v[None]) ** 2).sum(-1)
    np.testing.assert_allclose(R, ref, atol=1e-10)
    assert R.min() > -1e-10 and np.abs(np.diag(R)).max() < 1e-10  # zero on the isometric match


def test_value_within_2_percent_and_matchings_of_mgw_sinkhorn():
    X_s, perms = _recovery_problem(140, 20, 0.0)
    v_ref, log_ref = om.mgw_sinkhorn(X_s, 0.2, init="zero", log=True)
    v, log = om.mgw_neural(X_s, 0.2, init="zero", log=True, **FAST)
    assert abs(v - v_ref) <= 0.02 * abs(v_ref), (v, v_ref)
    est = log["estimator"]
    for e in log["edges"]:
        same = np.mean(est.match(*e) == om.match_from_plan(log_ref["pairwise_plans"][e]))
        assert same >= 0.8, (e, same)  # the rest are near-ties of the blurrier neural plan
        assert accuracy(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) >= 0.8
        np.testing.assert_allclose(log["pairwise_plans"][e].sum(), 1.0, atol=1e-8)
        np.testing.assert_allclose(log["pairwise_plans"][e[::-1]], log["pairwise_plans"][e].T)
    assert len(log["objective"]) == est.n_outer_ <= 4
    assert set(log["A"]) == set(log["edges"]) and log["A"][(0, 2)].shape == (2, 5)


def test_same_matchings_on_the_recovery_problem():
    """The recovery problem of test_gromov (isometric copies in dimensions 2, 3, 5; n = 40, reg = 0.1).

    Where mgw_sinkhorn's plan is decisive (its top partner has at least twice the mass of the second), the
    neural plan picks the same partner; elsewhere a near-tie may flip (at most one point in 20 here).
    """
    X_s, perms = _recovery_problem(140, 40, 0.0)
    v_ref, log_ref = om.mgw_sinkhorn(X_s, 0.1, init="zero", log=True)
    v, log = om.mgw_neural(X_s, 0.1, init="zero", log=True, n_iter=1000, n_iter_refit=300, lr=3e-3, seed=0)
    assert abs(v - v_ref) <= 0.02 * abs(v_ref), (v, v_ref)
    est = log["estimator"]
    for e in log["edges"]:
        P = log_ref["pairwise_plans"][e]
        top2 = np.sort(P, axis=1)[:, -2:]
        decisive = top2[:, 1] >= 2 * top2[:, 0]
        same = est.match(*e) == om.match_from_plan(P)
        assert decisive.sum() >= 10 and same[decisive].all(), (e, decisive.sum(), same[decisive].mean())
        assert same.mean() >= 0.95, (e, same.mean())
        assert accuracy(log["pairwise_plans"][e], perms[e[0]], perms[e[1]]) >= 0.95


def test_estimator_at_new_points_torch_and_auto_init():
    rng = np.random.RandomState(3)
    X = (rng.rand(12, 2) - 0.5) * [4.0, 1.0]
    Q, _ = np.linalg.qr(rng.randn(3, 3))
    X_s = [torch.tensor(X), torch.tensor(X @ Q[:2] + 2.0)]
    est = om.NeuralMGW(0.5, n_iter=60, n_iter_refit=20, n_outer=2, n_init_points=8, seed=1).fit(X_s)
    assert est.init_.startswith("screened:")
    assert isinstance(est.value_, torch.Tensor) and est.value_.dtype == torch.float64
    P = est.pairwise_plan(0, 1)
    # the density at the training points themselves (original coordinates) is the data plan times n_i n_j
    D = est.pairwise_plan(0, 1, X_s[0], X_s[1])
    torch.testing.assert_close(D / (12 * 12), P, atol=1e-8, rtol=1e-6)
    soft = est.match(0, 1, soft=True)
    torch.testing.assert_close(soft.sum(1), torch.ones(12, dtype=torch.float64))
    hard = est.match(0, 1, X_s[0][:5], X_s[1])
    assert hard.shape == (5,) and hard.dtype == np.int64
    assert est.get_params()["n_outer"] == 2


@pytest.mark.parametrize(
    "kwargs, exc, msg",
    [
        (dict(reg=-1.0), ValueError, "reg"),
        (dict(n_outer=0), ValueError, "n_outer"),
        (dict(normalize="unit"), ValueError, "normalize"),
        (dict(init="random"), ValueError, "init"),
        (dict(tol=0.0), ValueError, "tol"),
        (dict(resume=True), ValueError, "resume=True needs checkpoint_dir"),
        (dict(checkpoint_dir="unused", checkpoint_every=0), ValueError, "checkpoint_every"),
    ],
)
def test_bad_input(kwargs, exc, msg):
    rng = np.random.RandomState(0)
    X_s = [rng.randn(6, 2), rng.randn(5, 3)]
    reg = kwargs.pop("reg", 1.0)
    with pytest.raises(exc, match=msg):
        om.mgw_neural(X_s, reg, init=kwargs.pop("init", "zero"), n_iter=5, **kwargs)


def test_unfitted_and_wrong_points():
    est = om.NeuralMGW(1.0)
    with pytest.raises(RuntimeError, match="not fitted"):
        est.match(0, 1)
    rng = np.random.RandomState(0)
    est = om.NeuralMGW(1.0, init="zero", n_iter=5, n_iter_refit=5, n_outer=1, seed=0).fit(
        [rng.randn(6, 2), rng.randn(5, 3)]
    )
    with pytest.raises(ValueError, match=r"X_1 must have shape \(m, 3\)"):
        est.pairwise_plan(0, 1, rng.randn(4, 2), rng.randn(4, 2))
    with pytest.raises(ValueError, match="both"):
        est.pairwise_plan(0, 1, rng.randn(4, 2))


# ---- persistence and checkpoints -----------------------------------------------------------------
SMALL = dict(n_iter=60, n_iter_refit=30, n_outer=3, tol=1e-12, seed=0)


class Killed(Exception):
    """Stands for a job killed at that point (nothing after it runs)."""


def _small_problem():
    X_s, _ = _recovery_problem(7, 20, 0.05)
    return X_s


def _state(est):
    return {k: v.clone() for k, v in est.emot_.potentials_.state_dict().items()}


def _assert_same_fit(a, b):
    assert a.value_ == b.value_ if not torch.is_tensor(a.value_) else torch.equal(a.value_, b.value_)
    assert a.history_ == b.history_ and a.init_ == b.init_ and a.n_outer_ == b.n_outer_
    for e in a.edges_:
        np.testing.assert_array_equal(np.asarray(a.A_[e]), np.asarray(b.A_[e]))
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)  # bitwise on the CPU


@pytest.mark.parametrize("as_torch", [False, True])
def test_save_load_round_trip(tmp_path, as_torch):
    X_s = _small_problem()
    if as_torch:
        X_s = [torch.tensor(X) for X in X_s]
    init = [np.eye(2, 3) * 0.1, np.eye(2, 5) * 0.1, np.eye(3, 5) * 0.1]
    est = om.NeuralMGW(0.5, init=[torch.tensor(M) for M in init] if as_torch else init, **SMALL).fit(X_s)
    path = tmp_path / "mgw.pt"
    est.save(path)
    est2 = om.NeuralMGW.load(path)
    assert type(est2.value_) is type(est.value_)
    assert est2.get_params().keys() == est.get_params().keys() and est2.n_outer == 3
    _assert_same_fit(est, est2)
    new = [X[:7] + 0.01 for X in X_s]
    for i, j in est.edges_:
        for args in ((), (new[i], new[j]), (X_s[i], X_s[j])):
            P, P2 = est.pairwise_plan(i, j, *args), est2.pairwise_plan(i, j, *args)
            assert type(P) is type(P2)
            np.testing.assert_array_equal(np.asarray(P), np.asarray(P2))
        np.testing.assert_array_equal(est.match(i, j), est2.match(i, j))
        np.testing.assert_array_equal(est.match(i, j, new[i], new[j]), est2.match(i, j, new[i], new[j]))


def test_load_rejects_other_files(tmp_path):
    X_s = _small_problem()
    emot = om.NeuralEMOT(1.0, max_iter=5, random_state=0).fit([X[:, :2] for X in X_s])
    emot.save(tmp_path / "emot.pt")
    with pytest.raises(ValueError, match="not a file of NeuralMGW.save"):
        om.NeuralMGW.load(tmp_path / "emot.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="cannot load"):
        om.NeuralMGW.load(tmp_path / "junk.pt")
    # and the other way round: NeuralEMOT.load names the estimator that wrote the file
    mgw = om.NeuralMGW(1.0, init="zero", n_outer=1, n_iter=5, seed=0).fit(X_s)
    mgw.save(tmp_path / "mgw.pt")
    with pytest.raises(
        ValueError, match=r"not a file of NeuralEMOT.save \(it is a NeuralMGW file: use NeuralMGW.load\)"
    ):
        om.NeuralEMOT.load(tmp_path / "mgw.pt")
    with pytest.raises(ValueError, match="cannot load"):
        om.NeuralEMOT.load(tmp_path / "junk.pt")


@pytest.fixture(scope="module")
def uninterrupted():
    """Reference runs without checkpoints: moments on the data, and over batches."""
    from ot_multimarginal.neural import gromov

    X_s = _small_problem()
    data = om.NeuralMGW(0.5, **SMALL).fit(X_s)
    mp = pytest.MonkeyPatch()
    mp.setattr(gromov, "exact_is_affordable", lambda *a, **k: False)
    try:
        batches = om.NeuralMGW(0.5, n_moment_batches=4, **SMALL).fit(X_s)
    finally:
        mp.undo()
    assert set(data.history_["moments"]) == {"data"} and set(batches.history_["moments"]) == {"batches"}
    return X_s, {"data": data, "batches": batches}


@pytest.mark.parametrize("moments, where", [("batches", "mid-fit"), ("data", "between")])
def test_killed_run_resumes_to_the_bit(tmp_path, monkeypatch, uninterrupted, moments, where):
    """A job killed in the 2nd alternation (in its inner fit after its step-10 checkpoint, or after the fit,
    before the outer checkpoint) resumes to the uninterrupted run's A_, value_ and networks."""
    from ot_multimarginal.neural import gromov
    from ot_multimarginal.neural.checkpoint import Checkpointer
    from ot_multimarginal.neural.training import Trainer

    X_s, ref = uninterrupted
    kw = dict(SMALL, checkpoint_dir=str(tmp_path / "ckpt"), checkpoint_every=10)
    if moments == "batches":
        monkeypatch.setattr(gromov, "exact_is_affordable", lambda *a, **k: False)
        kw["n_moment_batches"] = 4
    calls = {"step": 0, "moments": 0}
    step, cross = Trainer.step_async, gromov.NeuralMGW._cross_moments

    def killing_step(self):
        calls["step"] += 1
        if where == "mid-fit" and calls["step"] == 60 + 15:  # 2nd fit, step 15 (checkpoint at 10)
            raise Killed
        return step(self)

    def killing_moments(self, *args):
        calls["moments"] += 1
        if where == "between" and calls["moments"] == 2:  # 2nd fit done and checkpointed, A not updated
            raise Killed
        return cross(self, *args)

    monkeypatch.setattr(Trainer, "step_async", killing_step)
    monkeypatch.setattr(gromov.NeuralMGW, "_cross_moments", killing_moments)
    with pytest.raises(Killed):
        om.NeuralMGW(0.5, **kw).fit(X_s)
    inner = Checkpointer(str(tmp_path / "ckpt" / "outer-1"), 1, {}).checkpoints()
    assert [s for s, _ in inner] == ([10] if where == "mid-fit" else [30, 20])
    assert [s for s, _ in Checkpointer(str(tmp_path / "ckpt"), 1, {}).checkpoints()] == [1, 0]
    calls["step"] = 0
    resumed = om.NeuralMGW(0.5, resume=True, **kw).fit(X_s)
    assert calls["step"] == (30 - 10 if where == "mid-fit" else 0) + 30  # resumed, not refitted
    _assert_same_fit(resumed, ref[moments])
    assert [s for s, _ in Checkpointer(str(tmp_path / "ckpt"), 1, {}).checkpoints()] == [3, 2]
    assert sorted(os.listdir(tmp_path / "ckpt" / "outer-2")) and not (tmp_path / "ckpt" / "outer-0").exists()


def test_finished_run_resumes_without_fitting_and_mismatch_raises(tmp_path, monkeypatch):
    from ot_multimarginal.neural.training import Trainer

    X_s = _small_problem()
    kw = dict(SMALL, n_outer=2, checkpoint_dir=str(tmp_path / "ckpt"))
    first = om.NeuralMGW(0.5, **kw).fit(X_s)
    monkeypatch.setattr(Trainer, "step_async", lambda self: pytest.fail("a finished run does not train again"))
    _assert_same_fit(om.NeuralMGW(0.5, resume=True, **kw).fit(X_s), first)
    with pytest.raises(ValueError, match=r"reg: 0\.5 \(checkpoint\) vs 0\.25 \(now\)"):
        om.NeuralMGW(0.25, resume=True, **kw).fit(X_s)
    with pytest.raises(ValueError, match=r"n_iter_refit: 30 \(checkpoint\) vs 31"):
        om.NeuralMGW(0.5, resume=True, **dict(kw, n_iter_refit=31)).fit(X_s)
    with pytest.raises(ValueError, match=r"data: "):
        om.NeuralMGW(0.5, resume=True, **kw).fit([X_s[0] + 0.1 * np.arange(2)] + X_s[1:])
    with pytest.raises(ValueError, match=r"graph: .*k: 3 \(checkpoint\) vs 2 \(now\)"):
        om.NeuralMGW(0.5, resume=True, **kw).fit(X_s[:2])


_HANGING_RUN = """
import sys, time
sys.path.insert(0, %(tests)r)
import torch
torch.set_num_threads(%(threads)d)
import ot_multimarginal as om
from ot_multimarginal.neural.training import Trainer
from test_neural_gromov import SMALL, _small_problem
step, calls = Trainer.step_async, [0]
def hanging_step(self):
    calls[0] += 1
    if calls[0] == 60 + 30 + 13:  # 3rd fit, step 13 (checkpoint at 10)
        open(%(ready)r, "w").close()
        time.sleep(600)
    return step(self)
Trainer.step_async = hanging_step
om.NeuralMGW(0.5, checkpoint_dir=%(ckpt)r, checkpoint_every=10, **SMALL).fit(_small_problem())
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL")
def test_sigkilled_job_resumes_to_the_bit(tmp_path, uninterrupted):
    import signal
    import subprocess
    import sys
    import time

    X_s, ref = uninterrupted
    ckpt, ready = str(tmp_path / "ckpt"), str(tmp_path / "ready")
    code = _HANGING_RUN % dict(
        tests=os.path.dirname(os.path.abspath(__file__)), threads=torch.get_num_threads(), ready=ready, ckpt=ckpt
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(ready):
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # killed in the 3rd inner fit, after its step-10 checkpoint
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    resumed = om.NeuralMGW(0.5, checkpoint_dir=ckpt, checkpoint_every=10, resume=True, **SMALL).fit(X_s)
    _assert_same_fit(resumed, ref["data"])


def test_stops_only_at_a_fixed_point_of_A():
    """A flat objective while A still moves (leaving the A = 0 saddle) is not convergence: A must be stationary too."""
    X_s, perms = _recovery_problem(140, 300, 0.0)
    est = om.NeuralMGW(0.2, init="zero", tol=0.1, n_outer=4, n_iter=60, n_iter_refit=30, batch_size=32, seed=0).fit(X_s)
    obj, dA = est.history_["objective"], est.history_["A_change"]
    assert abs(obj[1] - obj[0]) <= 0.1 * abs(obj[1]) and dA[1] > 0.9  # the objective alone would stop here
    assert est.n_outer_ > 2 and obj[-1] < 0.2 * obj[1]  # it went on, out of the saddle
    stops = [t for t in range(1, len(obj)) if abs(obj[t] - obj[t - 1]) <= 0.1 * abs(obj[t]) and dA[t] <= 0.1**0.5]
    assert est.converged_ == bool(stops) and est.n_outer_ == (stops[0] + 1 if stops else 4)
