# -*- coding: utf-8 -*-
"""A failure on one rank of a data-parallel fit ends every rank promptly, with the error (issue 24).

Before: rank 0 raised (its ``checkpoint_dir`` could not be created) and then waited in the exit barrier, while
rank 1 waited in a broadcast: both hung until gloo's 30-minute timeout.
"""

import os
import sys
import time

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_neural_distributed import BASE, DATA, _free_port, _kill, _start, _tail  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        not dist.is_available() or not dist.is_gloo_available(), reason="torch.distributed with gloo is needed"
    ),
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX process groups"),
]

FOLLOW = 30.0  # seconds every rank may take to end after the first traceback (before: gloo's 30 minutes)
START = 240.0  # the ranks' start (imports on a loaded machine)


def test_failure_on_rank_0_ends_every_rank_with_the_error(tmp_path):
    """Rank 0 cannot create its checkpoint_dir (rank 1, which writes none, goes on into training)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    kw = dict(BASE, batch_size=8, dtype="float64", checkpoint_every=2)
    config = {
        "out": str(tmp_path),
        "data": DATA,
        "cases": {"case": kw},
        "rank_kwargs": {
            "0": {"checkpoint_dir": str(blocker / "checkpoints")},  # its parent is a file
            "1": {"checkpoint_dir": str(tmp_path / "ok")},
        },
    }
    port = _free_port()
    procs = [_start(config, tmp_path, r, 2, port) for r in range(2)]
    try:
        t0 = time.monotonic()
        first = None
        while any(p.poll() is None for p in procs):
            now = time.monotonic()
            if first is None and any(p.poll() is not None or "Traceback" in _tail(p) for p in procs):
                first = now  # a rank failed (its traceback is out) or ended
            if first is not None and now - first > FOLLOW:
                raise AssertionError(
                    "a rank ended but the other still runs after %.0f s:\n%s"
                    % (FOLLOW, "\n".join(_tail(p) for p in procs))
                )
            if now - t0 > START + FOLLOW:
                raise AssertionError("the ranks did not end:\n" + "\n".join(_tail(p) for p in procs))
            time.sleep(0.1)
        codes = [p.returncode for p in procs]
        assert all(c != 0 for c in codes), codes
        log0 = _tail(procs[0])
        # the failing rank reports the error itself (torchrun shows the first failure)
        assert "checkpoint" in log0 and ("NotADirectoryError" in log0 or "FileExistsError" in log0), log0
    finally:
        _kill(procs)
