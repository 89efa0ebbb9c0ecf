"""Data-parallel NEMOT on torch.distributed (2 CPU ranks, gloo on the loopback) and checkpoints that survive
a killed job (SIGKILL, truncated files, mismatched problems).

The ranks are separate Python processes started here with the ``torchrun`` environment (RANK, WORLD_SIZE,
MASTER_ADDR, MASTER_PORT: the library initialises the gloo group itself, as under ``torchrun``), on a free
port, with a deadline; every process is killed on failure or timeout.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

from ot_multimarginal.neural import NeuralEMOT  # noqa: E402
from ot_multimarginal.neural.checkpoint import (  # noqa: E402
    Checkpointer,
    CheckpointError,
    read_checkpoint,
    write_checkpoint,
)
from ot_multimarginal.neural.sampling import BatchSampler  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from neural_distributed_worker import make_data, make_mgw_data, mgw_result, result  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is needed"
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups and SIGKILL"),
]

DATA = {"n": 48, "d": 2, "k": 3, "seed": 0}
BASE = {"reg": 1.0, "max_iter": 10, "eval_every": 5, "random_state": 1, "patience": None, "dtype": "float64"}
CASES = {
    "combinatorial": {"graph": "complete", "estimator": "combinatorial"},
    "aligned": {"graph": "chain", "estimator": "aligned"},
    "ustat": {"graph": "circle", "estimator": "ustat"},
}
# NeuralMGW: A = 0 start, moments over batches (n_moment_batches), float64 networks
MGW = {
    "reg": 1.0,
    "init": "zero",
    "max_iter": 2,
    "max_iter_inner": 8,
    "max_iter_refit": 4,
    "n_moment_batches": 2,
    "dtype": "float64",
}
B = 16  # global batch: 8 points per marginal on each of the 2 ranks
TIMEOUT = 240


def _kwargs(case, **extra):
    kw = dict(BASE, **CASES.get(case, {}), **extra)
    kw["dtype"] = getattr(torch, kw["dtype"])
    return kw


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(rank=None, world=None, port=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = "1"
    for v in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(v, None)
    if rank is not None:
        env.update(
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            LOCAL_WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
        )
        if any(name == "lo" for _, name in socket.if_nameindex()):
            env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def _start(config, tmp_path, rank=None, world=None, port=None):
    path = tmp_path / ("config-%s.json" % rank)
    path.write_text(json.dumps(config))
    log = open(tmp_path / ("log-%s.txt" % rank), "wb")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "neural_distributed_worker.py"), str(path)],
        env=_env(rank, world, port),
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        start_new_session=True,
    )
    proc.log_path = tmp_path / ("log-%s.txt" % rank)
    return proc


def _kill(procs):
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:  # pragma: no cover
                pass
        p.wait()


def _tail(p):
    return p.log_path.read_text(errors="replace")[-3000:]


def _run_ranks(config, tmp_path, world=2, timeout=TIMEOUT, tries=2):
    """Start ``world`` ranks, wait for all (deadline ``timeout`` s); kill them all on failure.

    A port taken between choosing it and binding it (another process was faster) is retried once.
    """
    for attempt in range(tries):
        try:
            return _run_ranks_once(config, tmp_path, world, timeout)
        except AssertionError as e:
            if attempt + 1 == tries or "address already in use" not in str(e).lower():
                raise


def _run_ranks_once(config, tmp_path, world, timeout):
    procs = []
    try:
        port = _free_port()
        procs = [_start(config, tmp_path, r, world, port) for r in range(world)]
        deadline = time.monotonic() + timeout
        while any(p.poll() is None for p in procs):
            if time.monotonic() > deadline:
                raise AssertionError(
                    "the ranks did not finish in %d s:\n%s" % (timeout, "\n".join(_tail(p) for p in procs))
                )
            if any(p.poll() not in (None, 0) for p in procs):
                break
            time.sleep(0.1)
        failed = [p for p in procs if p.poll() not in (None, 0)]
        assert not failed, "a rank failed:\n" + "\n".join(_tail(p) for p in failed)
    finally:
        _kill(procs)


def _one_process(case, **extra):
    kw = _kwargs(case, **extra)
    kw.setdefault("batch_size", B)
    return result(NeuralEMOT(**kw).fit(make_data(**DATA)))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """One launch of 2 ranks training every case (and a resumed run); the results of each rank."""
    tmp = tmp_path_factory.mktemp("ranks")
    cases = {name: dict(BASE, batch_size=B // 2, **kw) for name, kw in CASES.items()}
    cases["local"] = dict(BASE, batch_size=B // 2, distributed_loss="local", max_iter=1, eval_every=0)
    cases["resume"] = dict(
        BASE, batch_size=B // 2, checkpoint_dir=str(tmp / "ckpt"), checkpoint_every=4, resume_after_dropping_last=True
    )
    # NeuralMGW; without a seed, each rank would screen its own start and draw its own moment batches
    cases["mgw"] = dict(MGW, batch_size=B // 2, random_state=1, mgw=True)
    cases["mgw-noseed"] = dict(MGW, batch_size=B // 2, random_state=None, init="auto", n_init_points=12, mgw=True)
    _run_ranks({"out": str(tmp), "data": DATA, "cases": cases}, tmp)
    out = {
        (name, r): torch.load(str(tmp / ("%s-rank%d.pt" % (name, r))), weights_only=False)
        for name in list(cases) + ["resume-uninterrupted"]
        for r in range(2)
    }
    out["ckpt"] = tmp / "ckpt"
    return out


def test_gromov_estimator_two_ranks_match_one_process(two_ranks):
    """NeuralMGW under torchrun: identical on both ranks (also with seed=None) and equal to one process."""
    from ot_multimarginal.neural import NeuralMGW

    for name in ("mgw", "mgw-noseed"):
        r0, r1 = two_ranks[(name, 0)], two_ranks[(name, 1)]
        assert r0["world_size"] == 2
        assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
        assert all(torch.equal(r0["A"][e], r1["A"][e]) for e in r0["A"]) and r0["value"] == r1["value"]
    r0 = two_ranks[("mgw", 0)]
    one = mgw_result(
        NeuralMGW(**dict(MGW, batch_size=B, random_state=1, dtype=torch.float64)).fit(make_mgw_data(**DATA))
    )
    np.testing.assert_allclose(r0["objective"], one["objective"], rtol=1e-9)
    assert _max_diff(r0["state"], one["state"]) < 1e-8
    assert max(float((r0["A"][e] - torch.as_tensor(one["A"][e])).abs().max()) for e in one["A"]) < 1e-9


def _max_diff(s1, s2):
    return max(float((s1[k] - s2[k]).abs().max()) for k in s1)


@pytest.mark.parametrize("case", sorted(CASES))
def test_two_ranks_match_one_process(two_ranks, case):
    r0, r1 = two_ranks[(case, 0)], two_ranks[(case, 1)]
    assert r0["world_size"] == 2
    # the returned model is identical on every rank, to the bit
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    assert r0["value"] == r1["value"] and r0["batch_dual"] == r1["batch_dual"]
    # 2 ranks with 8 points each = 1 process with 16 points: the same batches, losses, gradients, steps
    one = _one_process(case)
    np.testing.assert_allclose(r0["batch_dual"], one["batch_dual"], rtol=1e-10)
    np.testing.assert_allclose(r0["eval_value"], one["eval_value"], rtol=1e-10)
    assert _max_diff(r0["state"], one["state"]) < 1e-9
    assert r0["value"] == pytest.approx(one["value"], rel=1e-10)


def _brute_force_dual_at_zero(X_s, idx, reg):
    """The batch dual of zero potentials over all tuples of the batch (complete graph, sqeuclidean)."""
    Xb = [X[i.numpy()] for X, i in zip(X_s, idx)]
    C = sum(
        ((Xb[a][:, None, :] - Xb[c][None, :, :]) ** 2)
        .sum(-1)
        .reshape([Xb[a].shape[0] if j == a else (Xb[c].shape[0] if j == c else 1) for j in range(3)])
        for a in range(3)
        for c in range(a + 1, 3)
    )
    z = -C / reg
    return -reg * (np.log(np.mean(np.exp(z - z.max()))) + z.max())


def test_local_loss_is_the_mean_of_the_ranks_duals(two_ranks):
    r0, r1 = two_ranks[("local", 0)], two_ranks[("local", 1)]
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    X_s = make_data(**DATA)
    idx = BatchSampler([X.shape[0] for X in X_s], B, seed=BASE["random_state"]).sample()  # the first global batch
    halves = [_brute_force_dual_at_zero(X_s, [i[s] for i in idx], 1.0) for s in (slice(0, 8), slice(8, 16))]
    whole = _brute_force_dual_at_zero(X_s, idx, 1.0)
    # potentials start at zero: the first logged dual is the mean of the two ranks' own duals (not the global one)
    assert r0["batch_dual"][0] == pytest.approx(np.mean(halves), rel=1e-12)
    assert abs(np.mean(halves) - whole) > 1e-6
    one = _one_process("combinatorial", max_iter=1, eval_every=0)
    assert one["batch_dual"][0] == pytest.approx(whole, rel=1e-12)


def test_distributed_resume_from_the_previous_checkpoint(two_ranks):
    for r in range(2):
        a, b = two_ranks[("resume", r)], two_ranks[("resume-uninterrupted", r)]
        assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])
        assert a["value"] == b["value"] and a["batch_dual"] == b["batch_dual"]


def test_two_rank_checkpoint_resumes_in_one_process(two_ranks, tmp_path):
    # the global loss does not depend on how the global batch is split: 2 ranks' checkpoint, 1 process's run
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    step8 = Checkpointer(str(two_ranks["ckpt"]), 1, {}).path(8)
    (ckpt / os.path.basename(step8)).write_bytes(open(step8, "rb").read())
    resumed = result(
        NeuralEMOT(
            **_kwargs("combinatorial", batch_size=B, checkpoint_dir=str(ckpt), checkpoint_every=4, resume=True)
        ).fit(make_data(**DATA))
    )
    one = _one_process("combinatorial")
    assert resumed["batch_dual"][:8] == two_ranks[("resume", 0)]["batch_dual"][:8]  # history from the checkpoint
    np.testing.assert_allclose(resumed["batch_dual"], one["batch_dual"], rtol=1e-10)
    assert _max_diff(resumed["state"], one["state"]) < 1e-9


# ---- checkpoints (one process) -----------------------------------------------------------------
def test_killed_job_resumes_on_the_same_trajectory(tmp_path):
    ckpt = tmp_path / "ckpt"
    kw = dict(BASE, batch_size=B, max_iter=12, checkpoint_dir=str(ckpt), checkpoint_every=3)
    config = {
        "out": str(tmp_path),
        "data": DATA,
        "cases": {"run": kw},
        "hang_after_step": 6,
        "threads": torch.get_num_threads(),
    }
    proc = _start(config, tmp_path)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (tmp_path / "ready").exists():
            assert proc.poll() is None, "the training process ended early:\n" + _tail(proc)
            assert time.monotonic() < deadline, "no checkpoint after %d s:\n%s" % (TIMEOUT, _tail(proc))
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # killed mid-run, after its checkpoint at step 6
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        _kill([proc])
    steps = [s for s, _ in Checkpointer(str(ckpt), 1, {}).checkpoints()]
    assert steps == [6, 3]
    kwr = _kwargs("combinatorial", batch_size=B, max_iter=12, checkpoint_dir=str(ckpt), checkpoint_every=3, resume=True)
    X_s = make_data(**DATA)
    resumed = NeuralEMOT(**kwr).fit(X_s)
    plain = NeuralEMOT(**_kwargs("combinatorial", batch_size=B, max_iter=12)).fit(X_s)
    a, b = result(resumed), result(plain)
    assert all(torch.equal(a["state"][k], b["state"][k]) for k in a["state"])  # bitwise on the CPU
    assert a["value"] == b["value"] and a["batch_dual"] == b["batch_dual"]
    assert [s for s, _ in Checkpointer(str(ckpt), 1, {}).checkpoints()] == [12, 9]


def _fit_with_checkpoints(ckpt, **extra):
    kw = _kwargs("combinatorial", batch_size=B, max_iter=8, checkpoint_dir=str(ckpt), checkpoint_every=4)
    kw.update(extra)
    return NeuralEMOT(**kw).fit(make_data(**DATA))


def test_truncated_checkpoint_is_detected_and_the_previous_one_used(tmp_path):
    ckpt = tmp_path / "ckpt"
    first = result(_fit_with_checkpoints(ckpt))
    (s8, p8), (s4, p4) = Checkpointer(str(ckpt), 1, {}).checkpoints()
    assert (s8, s4) == (8, 4)
    raw = open(p8, "rb").read()
    with open(p8, "wb") as fh:
        fh.write(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        read_checkpoint(p8)
    with pytest.warns(UserWarning, match="truncated.*previous checkpoint"):
        again = result(_fit_with_checkpoints(ckpt, resume=True))
    assert all(torch.equal(first["state"][k], again["state"][k]) for k in first["state"])
    assert first["value"] == again["value"]
    read_checkpoint(p8)  # rewritten whole by the resumed run
    # a flipped byte is caught by the checksum
    raw = bytearray(open(p4, "rb").read())
    raw[-10] ^= 0xFF
    open(p4, "wb").write(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupted"):
        read_checkpoint(p4)


def test_no_usable_checkpoint_is_an_error(tmp_path):
    ckpt = tmp_path / "ckpt"
    _fit_with_checkpoints(ckpt)
    for _, p in Checkpointer(str(ckpt), 1, {}).checkpoints():
        open(p, "wb").write(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(CheckpointError, match="no usable checkpoint"):
            _fit_with_checkpoints(ckpt, resume=True)


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"reg": 0.5}, r"reg: 1\.0 \(checkpoint\) vs 0\.5 \(now\)"),
        ({"graph": "chain"}, r"graph: "),
        ({"estimator": "aligned"}, r"estimator: 'combinatorial' \(checkpoint\) vs 'aligned'"),
        ({"batch_size": 8}, r"batch_size \(global\): 16 \(checkpoint\) vs 8"),
    ],
)
def test_mismatched_checkpoint_names_what_differs(tmp_path, change, expected):
    ckpt = tmp_path / "ckpt"
    _fit_with_checkpoints(ckpt)
    before = sorted(os.listdir(ckpt))
    with pytest.raises(ValueError, match=expected):
        _fit_with_checkpoints(ckpt, resume=True, **change)
    assert sorted(os.listdir(ckpt)) == before  # the good checkpoints are kept


def test_other_data_do_not_resume(tmp_path):
    ckpt = tmp_path / "ckpt"
    _fit_with_checkpoints(ckpt)
    kw = _kwargs("combinatorial", batch_size=B, max_iter=8, checkpoint_dir=str(ckpt), checkpoint_every=4, resume=True)
    with pytest.raises(ValueError, match=r"k: 3 \(checkpoint\) vs 4 \(now\)"):
        NeuralEMOT(**kw).fit(make_data(**dict(DATA, k=4)))
    X_s = make_data(**DATA)
    X_s[1] = X_s[1] + 1e-3
    with pytest.raises(ValueError, match=r"data: "):
        NeuralEMOT(**kw).fit(X_s)


def test_resume_without_checkpoint_starts_afresh(tmp_path):
    a = result(_fit_with_checkpoints(tmp_path / "new", resume=True))
    b = result(NeuralEMOT(**_kwargs("combinatorial", batch_size=B, max_iter=8)).fit(make_data(**DATA)))
    assert a["value"] == b["value"]


def test_write_is_atomic(tmp_path, monkeypatch):
    path = str(tmp_path / "ckpt-000000001.pt")
    write_checkpoint(path, {"x": torch.arange(3)})

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(path, {"x": torch.arange(5)})
    assert torch.equal(read_checkpoint(path)["x"], torch.arange(3))  # the previous file is intact
    assert os.listdir(tmp_path) == ["ckpt-000000001.pt"]  # no temporary file left


# ---- parameters -------------------------------------------------------------------------------
def test_distributed_parameters():
    X_s = make_data(**DATA)
    with pytest.raises(ValueError, match="distributed=True needs an initialised process group"):
        NeuralEMOT(1.0, distributed=True, max_iter=2).fit(X_s)
    with pytest.raises(ValueError, match="distributed must be 'auto', True or False"):
        NeuralEMOT(1.0, distributed="yes", max_iter=2).fit(X_s)
    with pytest.raises(ValueError, match="distributed_loss must be one of"):
        NeuralEMOT(1.0, distributed_loss="mean", max_iter=2).fit(X_s)
    with pytest.raises(ValueError, match="resume=True needs checkpoint_dir"):
        NeuralEMOT(1.0, resume=True, max_iter=2).fit(X_s)
    with pytest.raises(ValueError, match="checkpoint_every"):
        NeuralEMOT(1.0, checkpoint_dir="x", checkpoint_every=0, max_iter=2).fit(X_s)
    est = NeuralEMOT(1.0, max_iter=2, batch_size=8, eval_every=0).fit(X_s)  # no process group: one process
    assert est.world_size_ == 1


@pytest.mark.skipif(
    not (torch.cuda.is_available() and torch.cuda.device_count() >= 2 and dist.is_nccl_available()),
    reason="torchrun with NCCL needs two GPUs",
)
def test_two_gpu_ranks_with_nccl_match_one_gpu_process(tmp_path):
    """``torchrun`` on two GPUs: the library initialises NCCL itself (device='cuda' becomes cuda:LOCAL_RANK)."""
    cases = {"nccl": dict(BASE, batch_size=B // 2, device="cuda", **CASES["combinatorial"])}
    _run_ranks({"out": str(tmp_path), "data": DATA, "cases": cases}, tmp_path)
    r0, r1 = (
        torch.load(str(tmp_path / ("nccl-rank%d.pt" % r)), map_location="cpu", weights_only=False) for r in range(2)
    )
    assert r0["world_size"] == 2
    assert all(torch.equal(r0["state"][k], r1["state"][k]) for k in r0["state"])
    one = _one_process("combinatorial", device="cuda")
    np.testing.assert_allclose(r0["batch_dual"], one["batch_dual"], rtol=1e-8)
    assert r0["value"] == pytest.approx(one["value"], rel=1e-8)
