# -*- coding: utf-8 -*-
"""blas_threads: the thread counts of BLAS (threadpoolctl) and torch, set for a block and restored."""

import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

import ot_multimarginal as om
from ot_multimarginal._threads import AUTO_SINGLE_THREAD_FLOPS, engine_threads
from ot_multimarginal.sinkhorn import make_engine


def _blas_threads():
    return sorted(d["num_threads"] for d in threadpool_info() if d["user_api"] == "blas")


def _torch_threads():
    torch = sys.modules.get("torch")
    return None if torch is None else torch.get_num_threads()


def test_context_manager_sets_and_restores():
    before, torch_before = _blas_threads(), _torch_threads()
    with om.blas_threads(1):
        assert all(t == 1 for t in _blas_threads())
        if torch_before is not None:
            assert _torch_threads() == 1
    assert _blas_threads() == before and _torch_threads() == torch_before
    # restored on an exception too
    with pytest.raises(RuntimeError):
        with om.blas_threads(1):
            raise RuntimeError("boom")
    assert _blas_threads() == before and _torch_threads() == torch_before
    with om.blas_threads(None):
        assert _blas_threads() == before


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_bad_thread_counts(bad):
    with pytest.raises(ValueError, match="blas_threads"):
        with om.blas_threads(bad):
            pass


def test_auto_rule_by_size():
    """'auto': one thread for small products, the process's settings for large ones."""
    rng = np.random.RandomState(0)
    small, _ = make_engine(None, rng.rand(10, 10, 10), 0.1)
    before = _blas_threads()
    with engine_threads(small, "auto"):
        assert all(t == 1 for t in _blas_threads())
    assert _blas_threads() == before

    class Big:  # a sweep whose largest product is above the threshold
        shape = (2000, 2000, 2000)
        edges = [(0, 1), (1, 2), (2, 0)]

    assert 2 * 2000**3 > AUTO_SINGLE_THREAD_FLOPS
    with engine_threads(Big(), "auto"):
        assert _blas_threads() == before
    with engine_threads(Big(), 1):
        assert all(t == 1 for t in _blas_threads())


def test_solvers_take_blas_threads_and_restore():
    """The same numbers whatever the thread count; settings restored after each call."""
    rng = np.random.RandomState(1)
    M = rng.rand(6, 7, 8)
    before = _blas_threads()
    v = [float(om.emot_sinkhorn2(None, M, 0.2, blas_threads=t)) for t in ("auto", 1, 2, None)]
    np.testing.assert_allclose(v, v[0], rtol=1e-12)
    P, cost = om.emot_approx(None, M, 0.2, blas_threads=1)
    assert _blas_threads() == before
