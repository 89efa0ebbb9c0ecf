# -*- coding: utf-8 -*-
"""Thread counts of the matrix products: BLAS (through threadpoolctl) and torch's intra-op pool.

The engines' products are small (an ``n × n`` kernel times a vector or a
matrix, ``n`` in the hundreds), and a second BLAS thread only pays for them
on an idle core: on a busy machine it slowed the engines down (measurements:
``bench/results/bench_threads.md``). :func:`blas_threads` sets both
knobs for a block of code and restores the caller's settings on exit;
the solvers' ``blas_threads='auto'`` uses it with one thread when the
engine's products are below the size where more threads were measured to
help (:data:`AUTO_SINGLE_THREAD_FLOPS`).

threadpoolctl limits are process-wide (every thread of the process sees
them while the block runs); torch's intra-op threads are a separate pool
(:func:`torch.set_num_threads`), set too when torch is already imported
(this module never imports torch).
"""
# License: MIT License

from __future__ import annotations

import contextlib
import sys
from typing import Iterator, Optional

from threadpoolctl import threadpool_limits

__all__ = ["blas_threads", "engine_threads", "fit_threads", "AUTO_SINGLE_THREAD_FLOPS"]

# A sweep's largest matrix product below this many flops runs on one thread under 'auto'
# (bench/results/bench_threads*.md: below it a second thread gained little on one size and lost on the others)
AUTO_SINGLE_THREAD_FLOPS = 2 * 400**3


@contextlib.contextmanager
def blas_threads(n: Optional[int]) -> Iterator[None]:
    """Run a block with ``n`` BLAS threads and ``n`` torch intra-op threads, then restore both.

    Parameters
    ----------
    n : int or None
        Number of threads (``None``: leave the settings as they are).

    Raises
    ------
    ValueError
        If ``n`` is not a positive int or None.

    See Also
    --------
    ot_multimarginal.emot_sinkhorn : its ``blas_threads=`` option applies this to a solve
        (``'auto'``: one thread for small products).

    Examples
    --------
    >>> import numpy as np
    >>> import ot_multimarginal as om
    >>> M = np.random.RandomState(0).rand(20, 20, 20)
    >>> with om.blas_threads(1):
    ...     P = om.emot_sinkhorn(None, M, 0.1)
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError("blas_threads must be a positive int or None, got %r" % (n,))
    torch = sys.modules.get("torch")
    old_torch = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=n, user_api="blas"):
        if torch is not None and old_torch != n:
            torch.set_num_threads(n)
        try:
            yield
        finally:
            if torch is not None and old_torch != n:
                torch.set_num_threads(old_torch)


def _largest_product_flops(engine):
    """Flops of the largest matrix product of a sweep of ``engine`` (an estimate from its shape and kind)."""
    shape = list(engine.shape)
    n = max(shape)
    if hasattr(engine, "edges"):  # pairwise engines: n × n kernels times n × n products (cycle) or vectors
        return 2 * n**3 if type(engine).__name__ != "TreeEngine" else 2 * n * n
    total = 1
    for m in shape:
        total *= m
    return 2 * total  # dense: the tensor times a vector, along one axis


def engine_threads(engine, blas_threads="auto"):
    """The context manager for a solve on ``engine``: ``blas_threads`` as given, or the 'auto' rule.

    ``'auto'``: one thread when the largest product of a sweep is under
    :data:`AUTO_SINGLE_THREAD_FLOPS` (and on CUDA tensors, where it does not
    matter, the settings are left alone); ``None``: leave them alone;
    an int: that many threads.
    """
    if blas_threads == "auto":
        type_as = getattr(engine, "type_as", None)
        if getattr(type_as, "is_cuda", False):
            return blas_threads_ctx(None)
        small = _largest_product_flops(engine) < AUTO_SINGLE_THREAD_FLOPS
        return blas_threads_ctx(1 if small else None)
    return blas_threads_ctx(blas_threads)


blas_threads_ctx = blas_threads


def fit_threads(num_threads="auto", device=None, X_s=None):
    """The thread context of a neural fit (``num_threads=`` of the neural estimators).

    ``'auto'``: one torch intra-op (and BLAS) thread for CPU training, the
    settings left alone on CUDA (``device``, else the clouds' device). A
    step's products are small (``b × b`` kernels, small MLPs): a second
    thread only adds synchronisation, and on a busy machine it
    oversubscribes the cores (measured by ``bench/bench_neural_data.py
    --threads``, small and large batches). ``None``: leave the settings alone; a positive
    int: that many. The caller's torch and BLAS thread counts are restored
    on exit, also on errors (:func:`blas_threads`).

    Raises
    ------
    ValueError
        If ``num_threads`` is not ``'auto'``, ``None`` or a positive int.
    """
    if isinstance(num_threads, str) and num_threads == "auto":
        first = X_s[0] if isinstance(X_s, (list, tuple)) and len(X_s) else None  # X_s is checked by the fit
        dev = device if device is not None else getattr(first, "device", "cpu")
        return blas_threads_ctx(None if str(dev).startswith("cuda") else 1)
    if num_threads is not None and (
        isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1
    ):
        raise ValueError("num_threads must be 'auto', None or a positive int, got %r" % (num_threads,))
    return blas_threads_ctx(num_threads)
