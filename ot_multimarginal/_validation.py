# -*- coding: utf-8 -*-
"""One place for argument checks and their messages.

Every public call goes through these helpers so that bad input always gives a
``ValueError`` or ``TypeError`` that names the argument and what was expected.
"""
# License: MIT License

import os

import numpy as np
from ot.backend import get_backend

__all__ = [
    "backend_of",
    "check_reg",
    "check_k",
    "check_cost_tensor",
    "check_weights",
    "check_iteration_args",
    "check_free",
    "default_memory_budget",
    "check_dense_size",
    "check_choice",
]


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype")


def backend_of(**named):
    """The POT backend shared by the named arrays (``None`` entries ignored).

    Lists of arrays are allowed as values (their entries are named ``arg[i]``).
    Raises ``TypeError`` naming the arguments when they mix array libraries.
    """
    flat = []
    for name, val in named.items():
        if val is None:
            continue
        if isinstance(val, (list, tuple)):
            for i, v in enumerate(val):
                if v is not None and _is_array(v):
                    flat.append(("%s[%d]" % (name, i), v))
        elif _is_array(val):
            flat.append((name, val))
    if not flat:
        raise TypeError(
            "expected at least one NumPy array or torch tensor among %s"
            % ", ".join(named)
        )
    kinds = {}
    for name, v in flat:
        kinds.setdefault(type(v).__module__.split(".")[0], []).append(name)
    if len(kinds) > 1:
        desc = "; ".join("%s: %s" % (lib, ", ".join(n)) for lib, n in kinds.items())
        raise TypeError(
            "all arrays must come from the same library (NumPy or torch), got " + desc
        )
    try:
        return get_backend(*[v for _, v in flat])
    except ValueError as e:  # POT raises ValueError for unknown/mixed types
        raise TypeError(str(e)) from None


def check_reg(reg, name="reg"):
    """``reg`` must be a finite positive number."""
    try:
        r = float(reg)
    except (TypeError, ValueError):
        raise TypeError("%s must be a positive float, got %r" % (name, reg)) from None
    if not np.isfinite(r) or r <= 0:
        raise ValueError("%s must be a finite number > 0, got %r" % (name, reg))
    return r


def check_k(k, name="the number of marginals k"):
    if k < 2:
        raise ValueError("%s must be at least 2, got %d" % (name, k))


def check_finite(nx, x, name):
    if bool(nx.any(~nx.isfinite(nx.detach(x)))):
        raise ValueError("%s contains NaN or inf values" % name)


def check_cost_tensor(nx, M, k=None, name="M"):
    """A floating array with ``k`` dimensions (if given) and finite entries."""
    if not _is_array(M):
        raise TypeError("%s must be a NumPy array or torch tensor, got %s" % (name, type(M).__name__))
    if not nx.is_floating_point(M):
        raise TypeError("%s must have a floating dtype, got %s" % (name, M.dtype))
    if k is not None and M.ndim != k:
        raise ValueError(
            "%s must have one axis per marginal: expected %d dimensions, got shape %s"
            % (name, k, tuple(M.shape))
        )
    check_k(M.ndim, "%s.ndim (the number of marginals)" % name)
    check_finite(nx, M, name)


def check_weights(nx, a_s, shape, type_as, name="a_s", rtol=None):
    """Validated list of k weight vectors (uniform where ``None``).

    Weights are cast to the dtype and device of ``type_as``. They must be
    1-D, of length ``shape[i]``, finite, non-negative, and sum to one (to
    ``rtol``: 1e-7 in float64, 1e-4 in float32); they are returned divided by
    their sum, so that all masses are exactly equal.
    """
    k = len(shape)
    if a_s is None:
        a_s = [None] * k
    if not isinstance(a_s, (list, tuple)):
        raise TypeError("%s must be a list of k weight vectors (or None), got %s" % (name, type(a_s).__name__))
    if len(a_s) != k:
        raise ValueError("%s must have one entry per marginal: expected %d, got %d" % (name, k, len(a_s)))
    out = []
    masses = []
    for i, (a, n) in enumerate(zip(a_s, shape)):
        nm = "%s[%d]" % (name, i)
        if a is None:
            out.append(nx.ones((n,), type_as=type_as) / n)
            masses.append(1.0)
            continue
        if isinstance(a, (list, tuple)):
            a = nx.from_numpy(np.asarray(a, dtype=np.float64), type_as=type_as)
        if not _is_array(a):
            raise TypeError("%s must be an array, got %s" % (nm, type(a).__name__))
        if a.ndim != 1:
            raise ValueError("%s must be 1-D, got shape %s" % (nm, tuple(a.shape)))
        if a.shape[0] != n:
            raise ValueError("%s has length %d but axis %d of the cost has size %d" % (nm, a.shape[0], i, n))
        an = nx.to_numpy(nx.detach(a))
        if not np.all(np.isfinite(an)):
            raise ValueError("%s contains NaN or inf values" % nm)
        if np.any(an < 0):
            raise ValueError("%s has negative entries (min %g); weights must be >= 0" % (nm, an.min()))
        m = float(an.sum())
        if m <= 0:
            raise ValueError("%s has zero total mass" % nm)
        masses.append(m)
        if a.dtype != type_as.dtype or nx.device_type(a) != nx.device_type(type_as):
            a = a + nx.zeros((n,), type_as=type_as)  # cast keeping autograd
        out.append(a)
    if rtol is None:
        rtol = 1e-4 if nx.bitsize(type_as) <= 32 else 1e-7
    for i, m in enumerate(masses):
        if abs(m - 1.0) > rtol:
            raise ValueError(
                "weights must be probability vectors: %s[%d] sums to %.10g, expected 1 "
                "(normalise it, e.g. a / a.sum())" % (name, i, m)
            )
    # renormalise within the tolerance so that every marginal has exactly the
    # same mass (rounding onto the transport polytope needs it)
    return [a / nx.sum(a) for a in out]


def check_free(free, k, name="free"):
    """Validated free nodes: a sorted tuple of distinct node indices in ``[0, k)``.

    ``free`` lists the marginals that are *not* prescribed (see
    :func:`ot_multimarginal.emot_sinkhorn`). ``None`` means none (``()``).
    Entries must be integers (``TypeError`` otherwise, ``bool`` included),
    in ``[0, k)``, without repetition, and at least one node must stay
    prescribed (``ValueError`` otherwise).
    """
    if free is None:
        return ()
    if isinstance(free, (str, bytes)) or not hasattr(free, "__iter__") or (hasattr(free, "ndim") and free.ndim != 1):
        raise TypeError(
            "%s must be a sequence of node indices (e.g. [0] or (1, 3)), got %r" % (name, free)
        )
    nodes = list(free)
    for v in nodes:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError("%s must hold integer node indices, got %r in %r" % (name, v, free))
    nodes = [int(v) for v in nodes]
    bad = [v for v in nodes if not 0 <= v < k]
    if bad:
        raise ValueError(
            "%s holds node %d, outside [0, %d): expected indices of the k=%d marginals" % (name, bad[0], k, k)
        )
    dup = sorted(set(v for v in nodes if nodes.count(v) > 1))
    if dup:
        raise ValueError("%s lists node(s) %s more than once: expected distinct node indices" % (name, dup))
    if len(nodes) == k:
        raise ValueError(
            "%s=%r leaves every one of the k=%d marginals free: at least one must be prescribed "
            "(the problem would have no constraint and no fixed mass)" % (name, tuple(nodes), k)
        )
    return tuple(sorted(nodes))


def check_choice(value, choices, name):
    """``value`` must be one of ``choices`` (compared with ``==``; ``None`` allowed if listed)."""
    if isinstance(value, (list, tuple, dict)) or not any(value is c or (c is not None and value == c) for c in choices):
        raise ValueError("%s must be one of %s, got %r" % (name, ", ".join(repr(c) for c in choices), value))
    return value


def check_iteration_args(numItermax, stopThr):
    if not isinstance(numItermax, (int, np.integer)) or numItermax < 0:
        raise ValueError("numItermax must be a non-negative integer, got %r" % (numItermax,))
    if not np.isfinite(stopThr) or stopThr < 0:
        raise ValueError("stopThr must be a finite number >= 0, got %r" % (stopThr,))


def default_memory_budget(nx=None, type_as=None):
    """Bytes the dense solvers may use: half the available memory.

    On CUDA, half the free memory of the tensor's device; on the host, half of
    what the OS reports as available (``MemAvailable``), or 4 GiB if unknown.
    """
    if nx is not None and type_as is not None and str(nx) == "torch" and type_as.is_cuda:
        import torch

        free, _ = torch.cuda.mem_get_info(type_as.device)
        return free // 2
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def _fmt_bytes(b):
    for unit in ["B", "KiB", "MiB", "GiB", "TiB", "PiB"]:
        if b < 1024 or unit == "PiB":
            return "%.1f %s" % (b, unit)
        b /= 1024.0


def check_dense_size(shape, itemsize, n_buffers, memory_budget, what="the dense cost tensor", nx=None, type_as=None):
    """Raise ``MemoryError`` before allocating ``n_buffers`` tensors of ``shape``.

    ``memory_budget=None`` uses :func:`default_memory_budget`.
    """
    entries = 1
    for n in shape:
        entries *= int(n)
    need = entries * itemsize * n_buffers
    budget = default_memory_budget(nx, type_as) if memory_budget is None else memory_budget
    if need > budget:
        raise MemoryError(
            "%s of shape %s needs about %s (%d buffers of %s entries), over the memory "
            "budget of %s. Use a graph-structured cost (ot_multimarginal.PairwiseCost, "
            "e.g. graph='complete', 'chain', 'tree', 'circle'), which never forms the tensor, "
            "or raise memory_budget."
            % (what, tuple(int(n) for n in shape), _fmt_bytes(need), n_buffers, entries, _fmt_bytes(budget))
        )
    return need
