# -*- coding: utf-8 -*-
"""One place for argument checks and their messages.

Every public call goes through these helpers so that bad input always gives a
``TypeError`` (wrong kind of object or dtype) or ``ValueError`` (wrong shape,
value or range) whose message names the argument, the expected form and what
was received, a ``MemoryError`` (before any allocation) for problems over the
memory budget, and never a failure from deep inside NumPy, torch or POT.

The helpers are general so that every solver of the package (Sinkhorn, LP,
neural, Gromov-Wasserstein) checks its arguments the same way:
:func:`check_positive_int`, :func:`check_choice`, :func:`check_bool`,
:func:`check_point_clouds` (returns the clouds cast to a floating dtype),
:func:`check_metric`, :func:`check_memory_budget`, :func:`check_weights`,
:func:`check_warmstart`, :func:`check_solver_kwargs`, ...

**Mixed dtypes (one rule).** The cost sets the dtype and device: weights
(and warm starts) are cast to the dtype and device of the cost tensor, of
the matrices of a :class:`~ot_multimarginal.PairwiseCost` or of the point
clouds. Integer (and boolean) point clouds and weights are cast to the
default floating dtype (NumPy float64, torch's default dtype), as
:func:`ot.dist` would; point clouds of several floating dtypes are cast to
the widest. A cost tensor or edge matrix must already be floating
(``TypeError`` otherwise).
"""
# License: MIT License

import difflib
import inspect
import math
import numbers
import os
import warnings

import numpy as np
from ot.backend import get_backend

__all__ = [
    "describe",
    "backend_of",
    "check_array",
    "check_reg",
    "check_k",
    "check_finite",
    "check_cost_tensor",
    "check_weights",
    "check_iteration_args",
    "check_free",
    "check_positive_int",
    "check_shape",
    "check_nonneg_float",
    "check_bool",
    "check_choice",
    "check_memory_budget",
    "check_point_clouds",
    "check_metric",
    "check_warmstart",
    "check_method",
    "check_solver_kwargs",
    "check_forwarded_kwargs",
    "check_cloud_weights",
    "closest_name",
    "check_plan_tensor",
    "check_index_tuples",
    "check_log_scalings",
    "check_not_pot_signature",
    "warn_promise",
    "check_solver_call",
    "check_finite_result",
    "check_rounded_marginals",
    "cast_like",
    "default_memory_budget",
    "check_dense_size",
    "METHOD_ALIASES",
]


def describe(x, limit=60):
    """A short description of ``x`` for error messages (never a dump of a large array)."""
    if _is_array(x):
        lib = type(x).__module__.split(".")[0]
        kind = "torch tensor" if lib == "torch" else ("NumPy array" if lib == "numpy" else type(x).__name__)
        if getattr(x, "ndim", None) == 0 or tuple(x.shape) == ():
            try:
                return "a 0-d %s (%r, dtype %s)" % (kind, x.item(), x.dtype)
            except Exception:  # pragma: no cover - exotic array types
                pass
        return "a %s of shape %s and dtype %s" % (kind, tuple(int(n) for n in x.shape), x.dtype)
    r = repr(x)
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    if isinstance(x, (list, tuple)):
        return "a %s of length %d: %s" % (type(x).__name__, len(x), r)
    return "%s (%s)" % (r, type(x).__name__)


def _is_array(x):
    return hasattr(x, "shape") and hasattr(x, "dtype") and not isinstance(x, type)  # np.float64 is no array


def check_array(name, x, what="an array"):
    """``x`` if it is a NumPy array or torch tensor, else a ``TypeError`` naming ``name``."""
    if not _is_array(x):
        raise TypeError("%s must be a NumPy array or torch tensor (%s), got %s" % (name, what, describe(x)))
    return x


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
        raise TypeError("expected at least one NumPy array or torch tensor among %s" % ", ".join(named))
    kinds = {}
    for name, v in flat:
        kinds.setdefault(type(v).__module__.split(".")[0], []).append(name)
    if len(kinds) > 1:
        desc = "; ".join("%s: %s" % (lib, ", ".join(n)) for lib, n in kinds.items())
        raise TypeError("all arrays must come from the same library (NumPy or torch), got " + desc)
    try:
        return get_backend(*[v for _, v in flat])
    except ValueError as e:  # POT raises ValueError for unknown/mixed types
        raise TypeError(str(e)) from None


def _is_real_number(x):
    """A real scalar (Python, NumPy or 0-d/size-1 array), not a bool."""
    if isinstance(x, (bool, np.bool_)):
        return False
    if isinstance(x, numbers.Real):
        return True
    if _is_array(x) and int(np.prod(tuple(x.shape))) == 1 and "bool" not in str(x.dtype):
        return "complex" not in str(x.dtype)
    return False


def check_reg(reg, name="reg"):
    """``reg`` must be a finite positive number; returns it as a float."""
    if not _is_real_number(reg):
        raise TypeError("%s must be a positive float, got %s" % (name, describe(reg)))
    r = float(reg.item() if _is_array(reg) else reg)
    if not np.isfinite(r) or r <= 0:
        raise ValueError("%s must be a finite number > 0, got %r" % (name, r))
    return r


def check_nonneg_float(name, v, allow_inf=False):
    """A real number ``>= 0`` (finite unless ``allow_inf``); returns it as a float."""
    if not _is_real_number(v):
        raise TypeError("%s must be a number >= 0, got %s" % (name, describe(v)))
    r = float(v.item() if _is_array(v) else v)
    if math.isnan(r) or r < 0 or (not allow_inf and math.isinf(r)):
        raise ValueError("%s must be a %snumber >= 0, got %r" % (name, "" if allow_inf else "finite ", r))
    return r


def check_positive_int(name, v, minimum=1):
    """An integer ``>= minimum`` (Python or NumPy integer, not a bool); returns an ``int``.

    ``TypeError`` for a non-integer (``3.0`` included), ``ValueError`` below ``minimum``.
    """
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError("%s must be an integer >= %d, got %s" % (name, minimum, describe(v)))
    v = int(v)
    if v < minimum:
        raise ValueError("%s must be an integer >= %d, got %d" % (name, minimum, v))
    return v


def check_shape(shape, name="shape", min_len=2):
    """``None``, or a tuple of at least ``min_len`` integers >= 1; returns it as a tuple of ints."""
    if shape is None:
        return None
    if not isinstance(shape, (list, tuple)):
        raise TypeError("%s must be a tuple of k integers (n_0, ..., n_{k-1}), got %s" % (name, describe(shape)))
    shape = tuple(check_positive_int("%s[%d]" % (name, i), n) for i, n in enumerate(shape))
    if len(shape) < min_len:
        raise ValueError("%s must have at least %d entries (one per marginal), got %r" % (name, min_len, shape))
    return shape


def check_bool(name, v):
    """``True``/``False`` (NumPy bools and the integers 0 and 1 accepted); returns a ``bool``."""
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (numbers.Integral, np.integer)) and int(v) in (0, 1):
        return bool(v)
    raise TypeError("%s must be True or False, got %s" % (name, describe(v)))


def check_checkpoint_params(checkpoint_dir, checkpoint_every, resume):
    """The checkpoint parameters of the neural estimators.

    ``checkpoint_dir``: ``None`` or a path; ``checkpoint_every``: ``None`` or an integer >= 1;
    ``resume``: a bool, ``True`` only with a ``checkpoint_dir``.
    """
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(
            "checkpoint_dir must be a directory path (str or os.PathLike) or None, got %s" % describe(checkpoint_dir)
        )
    if checkpoint_every is not None:
        check_positive_int("checkpoint_every", checkpoint_every, minimum=1)
    if check_bool("resume", resume) and checkpoint_dir is None:
        raise ValueError("resume=True needs checkpoint_dir (the directory of the checkpoints to resume from)")


def check_choice(name, v, choices, aliases=None):
    """One of ``choices`` (strings); ``aliases`` maps other accepted names to a choice.

    Returns the canonical choice. ``ValueError`` lists the valid names (and the
    closest one, if the value looks like a typo); ``TypeError`` for a non-string.
    """
    aliases = aliases or {}
    if isinstance(v, str):
        if v in choices:
            return v
        if v in aliases:
            return aliases[v]
    elif v in choices and not isinstance(v, (bool, np.bool_)):  # e.g. None among the choices
        return v
    valid = [c for c in choices] + [a for a in aliases]
    names = ", ".join(repr(c) for c in valid)
    close = difflib.get_close_matches(v, [c for c in valid if isinstance(c, str)], n=1) if isinstance(v, str) else []
    hint = " (did you mean %r?)" % close[0] if close else ""
    if not isinstance(v, str) and not any(c is None for c in choices):
        raise TypeError("%s must be one of %s, got %s" % (name, names, describe(v)))
    raise ValueError("%s must be one of %s, got %r%s" % (name, names, v, hint))


def check_k(k, name="the number of marginals k"):
    if k < 2:
        raise ValueError("%s must be at least 2, got %d" % (name, k))


def check_finite(nx, x, name):
    """``ValueError`` if ``x`` holds NaN or inf.

    Done with a max and a min reduction (NaN propagates through both), so no
    temporary of the size of ``x`` is allocated.
    """
    if x.shape and int(np.prod(tuple(x.shape))) == 0:
        return
    xd = nx.detach(x)
    hi, lo = float(nx.to_numpy(nx.max(xd))), float(nx.to_numpy(nx.min(xd)))
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise ValueError("%s contains NaN or inf values" % name)


def _check_floating(nx, M, name):
    if not _is_array(M):
        raise TypeError("%s must be a NumPy array or torch tensor, got %s" % (name, describe(M)))
    if "complex" in str(M.dtype) or not nx.is_floating_point(M):
        raise TypeError(
            "%s must have a real floating dtype (float32 or float64), got %s; cast it first, e.g. "
            "M.astype(float) / M.double()" % (name, M.dtype)
        )


def check_cost_tensor(nx, M, k=None, name="M", memory_budget=None, n_buffers=None, what="the Gibbs kernel"):
    """A floating array with ``k`` dimensions (if given), no empty axis, and finite entries.

    With ``n_buffers``, the memory guard (:func:`check_dense_size`) runs
    before the finiteness scan, so a huge (e.g. ``np.broadcast_to``) input
    is refused before anything is read or allocated.
    """
    _check_floating(nx, M, name)
    if k is not None and M.ndim != k:
        raise ValueError(
            "%s must have one axis per marginal: expected %d dimensions, got shape %s" % (name, k, tuple(M.shape))
        )
    check_k(M.ndim, "%s.ndim (the number of marginals)" % name)
    if any(int(n) == 0 for n in M.shape):
        raise ValueError(
            "%s must have no empty axis (every marginal needs at least one point), got shape %s"
            % (name, tuple(int(n) for n in M.shape))
        )
    if n_buffers is not None:
        check_dense_size(tuple(M.shape), nx.bitsize(M) // 8, n_buffers, memory_budget, what, nx, M)
    check_finite(nx, M, name)


def check_not_pot_signature(a_s, M, reg, caller="emot_sinkhorn"):
    """Catch POT's two-marginal call ``f(a, b, M, reg)`` and say to pass ``[a, b]``."""
    if _is_array(a_s) and _is_array(M) and getattr(M, "ndim", None) == 1 and getattr(a_s, "ndim", None) == 1:
        if reg is None:
            call, pot = "%s([a, b], M)" % caller, "ot.emd(a, b, M)"
        else:
            call, pot = "%s([a, b], M, reg)" % caller, "ot.sinkhorn(a, b, M, reg)"
        raise TypeError(
            "%s takes the k weight vectors as one list a_s: got a 1-D array as a_s and a 1-D array as M, "
            "as in POT's two-marginal call %s. Call %s instead (M then the cost matrix)." % (caller, pot, call)
        )


def cast_like(nx, a, type_as):
    """``a`` with the dtype and device of ``type_as`` (keeps autograd on torch)."""
    if (
        a.dtype == type_as.dtype
        and nx.device_type(a) == nx.device_type(type_as)
        and getattr(a, "device", None) == getattr(type_as, "device", None)
    ):
        return a
    if str(nx) == "torch":
        return a.to(dtype=type_as.dtype, device=type_as.device)
    if str(nx) == "numpy":
        return np.asarray(a, dtype=type_as.dtype)
    return nx.from_numpy(nx.to_numpy(a), type_as=type_as)  # pragma: no cover - other backends


def _as_weight_array(nx, a, nm, type_as, clouds=None):
    """A weight entry as a backend array (lists and integer/boolean arrays cast), or ``None`` for uniform."""
    if a is None:
        return None
    if isinstance(a, (list, tuple)):
        if len(a) == 0:
            return None  # POT's convention: [] means uniform
        try:
            arr = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError("%s must be a 1-D array of numbers, got %s" % (nm, describe(a))) from None
        return nx.from_numpy(arr, type_as=type_as)
    if not _is_array(a):
        raise TypeError(
            "%s must be a 1-D array (or list) of non-negative numbers, or None for uniform, got %s" % (nm, describe(a))
        )
    if "bool" in str(a.dtype) or "complex" in str(a.dtype):
        raise TypeError(
            "%s must have a real dtype, got %s: pass the weights as numbers (integers are cast), e.g. %s "
            "for a boolean mask"
            % (
                nm,
                a.dtype,
                "mask.double() / mask.sum()" if "torch" in str(a.dtype) else "mask.astype(float) / mask.sum()",
            )
        )
    if type(a).__module__.split(".")[0] != type(type_as).__module__.split(".")[0]:
        backend_of(**{clouds or "the cost": type_as, nm: a})  # the TypeError of mixed array libraries
    if a.ndim == 1 and a.shape[0] == 0:
        return None
    return a


def check_weights(nx, a_s, shape, type_as, name="a_s", rtol=None, mass=1.0, clouds=None):
    """Validated list of k weight vectors (uniform where ``None`` or empty).

    ``a_s`` is ``None`` (all uniform) or a list of k entries, each ``None``
    or an empty list/array (uniform, as in POT), a list of numbers, or a 1-D
    array of the backend of the cost. Weights are cast to the dtype and device
    of ``type_as`` (integer weights included; boolean ones are refused). They
    must be 1-D, of length ``shape[i]``, finite, non-negative, and sum to one
    (to ``rtol``: 1e-7 in float64, 1e-4 in float32); they are returned
    divided by their sum, so that all masses are exactly equal.
    ``mass=None`` asks only for a common positive mass (that of the first
    given vector; uniform entries get it too) instead of one; ``mass='any'``
    (unbalanced problems) lets each vector keep its own positive mass (not
    renormalised; uniform entries get mass one). ``clouds``: the name of the
    point clouds the weights belong to (``'X_s'``), for the messages of
    point-cloud calls ("X_s[0] has 300 points"). A weight array of another
    library than ``type_as`` raises the ``TypeError`` of :func:`backend_of`.
    """
    k = len(shape)
    if a_s is None:
        a_s = [None] * k
    if not isinstance(a_s, (list, tuple)):
        raise TypeError("%s must be a list of k weight vectors (or None for uniform), got %s" % (name, describe(a_s)))
    if len(a_s) != k:
        raise ValueError("%s must have one entry per marginal: expected %d, got %d" % (name, k, len(a_s)))
    out = []
    masses = []
    for i, (a, n) in enumerate(zip(a_s, shape)):
        nm = "%s[%d]" % (name, i)
        a = _as_weight_array(nx, a, nm, type_as, clouds)
        if a is None:
            out.append(nx.ones((n,), type_as=type_as) / n)
            masses.append(None)
            continue
        if a.ndim != 1:
            raise ValueError("%s must be 1-D, got shape %s" % (nm, tuple(a.shape)))
        if a.shape[0] != n:
            raise ValueError(
                "%s has length %d but %s"
                % (
                    nm,
                    a.shape[0],
                    "%s[%d] has %d points" % (clouds, i, n) if clouds else "axis %d of the cost has size %d" % (i, n),
                )
            )
        # three reductions where the weights are (a GPU), one small copy to the host (NaN propagates)
        ad = nx.detach(a)
        lo, hi, m = (
            float(v) for v in np.asarray(nx.to_numpy(nx.stack([nx.min(ad), nx.max(ad), nx.sum(ad)])), dtype=np.float64)
        )
        if not (math.isfinite(lo) and math.isfinite(hi) and math.isfinite(m)):
            raise ValueError("%s contains NaN or inf values" % nm)
        if lo < 0:
            raise ValueError("%s has negative entries (min %g); weights must be >= 0" % (nm, lo))
        if m <= 0:
            raise ValueError("%s has zero total mass" % nm)
        masses.append(m)
        out.append(cast_like(nx, a, type_as))
    if isinstance(mass, str) and mass == "any":
        return out
    if rtol is None:
        rtol = 1e-4 if nx.bitsize(type_as) <= 32 else 1e-7
    given = [(i, m) for i, m in enumerate(masses) if m is not None]
    target = 1.0 if mass is not None or not given else given[0][1]
    for i, m in given:
        if abs(m - target) > rtol * target:
            if mass is not None:
                raise ValueError(
                    "weights must be probability vectors: %s[%d] sums to %.10g, expected 1 "
                    "(normalise it, e.g. a / a.sum())" % (name, i, m)
                )
            raise ValueError(
                "%s must all have the same total mass: %s[%d] sums to %.10g but %s[%d] to %.10g"
                % (name, name, i, m, name, given[0][0], target)
            )
    # renormalise within the tolerance so that every marginal has exactly the
    # same mass (rounding onto the transport polytope needs it)
    return [a / nx.sum(a) * target if target != 1.0 else a / nx.sum(a) for a in out]


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
        raise TypeError("%s must be a sequence of node indices (e.g. [0] or (1, 3)), got %s" % (name, describe(free)))
    nodes = list(free)
    for v in nodes:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise TypeError("%s must hold integer node indices, got %s in %s" % (name, describe(v), describe(free)))
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


def check_iteration_args(numItermax, stopThr):
    """``numItermax`` an integer >= 0, ``stopThr`` a finite number >= 0; returns them."""
    return check_positive_int("numItermax", numItermax, minimum=0), check_nonneg_float("stopThr", stopThr)


def check_memory_budget(memory_budget, name="memory_budget"):
    """``None`` (the default budget) or a number of bytes > 0; returns ``None`` or an ``int``."""
    if memory_budget is None:
        return None
    if not _is_real_number(memory_budget):
        raise TypeError(
            "%s must be a number of bytes (e.g. 2 * 2**30) or None, got %s" % (name, describe(memory_budget))
        )
    b = float(memory_budget.item() if _is_array(memory_budget) else memory_budget)
    if math.isnan(b) or b <= 0:
        raise ValueError("%s must be a number of bytes > 0 (or None), got %r" % (name, b))
    return b if math.isinf(b) else int(b)


# ---------------------------------------------------------------- point clouds and metrics
def _default_float_dtype(nx, X):
    if str(nx) == "torch":
        import torch  # only reached for torch tensors

        return torch.get_default_dtype()
    return np.float64


def _torch_float32():
    import torch  # only reached for torch tensors

    return torch.float32


def check_point_clouds(X_s, name="X_s", min_k=2):
    """Validate a list of k >= ``min_k`` point clouds of shape ``(n_i, d_i)``.

    Returns ``(nx, X_s)``: the backend and the clouds as a list, cast to one
    floating dtype (integer and boolean clouds to the default floating dtype,
    as :func:`ot.dist` computes; several floating dtypes to the widest),
    on their device, differentiable on torch; half-precision clouds (float16,
    bfloat16) are cast to float32, in which the uniform weights sum to one
    and the log-sums resolve the plan. Each cloud must be a 2-D
    NumPy array or torch tensor (one library for all) with at least one row
    and one column, and finite.
    """
    if not isinstance(X_s, (list, tuple)):
        raise TypeError("%s must be a list of k arrays of shape (n_i, d_i), got %s" % (name, describe(X_s)))
    if len(X_s) < min_k:
        raise ValueError(
            "%s must hold at least %d point clouds (len(%s) is the number of marginals), got %d"
            % (name, min_k, name, len(X_s))
        )
    for i, X in enumerate(X_s):
        if not _is_array(X):
            raise TypeError(
                "%s[%d] must be a NumPy array or torch tensor of shape (n_i, d_i), got %s" % (name, i, describe(X))
            )
    nx = backend_of(**{name: list(X_s)})
    dtypes = []
    for i, X in enumerate(X_s):
        if X.ndim != 2:
            raise ValueError(
                "%s[%d] must be a 2-D array (n_i, d_i) (one row per point), got shape %s" % (name, i, tuple(X.shape))
            )
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(
                "%s[%d] is empty: expected shape (n_i, d_i) with n_i, d_i >= 1, got %s" % (name, i, tuple(X.shape))
            )
        if "complex" in str(X.dtype):
            raise TypeError("%s[%d] must be real, got dtype %s" % (name, i, X.dtype))
        dtypes.append(X.dtype if nx.is_floating_point(X) else None)
        dev, dev0 = getattr(X, "device", None), getattr(X_s[0], "device", None)
        if str(dev) != str(dev0):
            raise TypeError(
                "%s[%d] is on device %s but %s[0] on %s: put the point clouds on one device"
                % (name, i, dev, name, dev0)
            )
    floats = [d for d in dtypes if d is not None]
    if floats:
        target = max(floats, key=lambda d: d.itemsize)
        if target.itemsize < 4:  # float16 / bfloat16: weights and log-sums need float32 at least
            target = np.float32 if str(nx) == "numpy" else _torch_float32()
    else:
        target = _default_float_dtype(nx, X_s[0])
    out = []
    for i, X in enumerate(X_s):
        if X.dtype != target:
            X = X.to(dtype=target) if str(nx) == "torch" else np.asarray(X, dtype=target)
        check_finite(nx, X, "%s[%d]" % (name, i))
        out.append(X)
    return nx, out


_BACKEND_METRICS = ("sqeuclidean", "euclidean", "cityblock", "minkowski", "cosine", "correlation")


def _numpy_metrics():
    try:
        from scipy.spatial.distance import _METRICS_NAMES

        names = list(_METRICS_NAMES)
    except ImportError:  # pragma: no cover - older/newer SciPy
        names = []
    return tuple(sorted(set(_BACKEND_METRICS) | set(names)))


def check_metric(metric, nx, name="metric"):
    """A metric name accepted by :func:`ot.dist` on backend ``nx``, or a callable.

    On NumPy every :func:`scipy.spatial.distance.cdist` name; on other backends
    the backend-generic ones (``'sqeuclidean'``, ``'euclidean'``,
    ``'cityblock'``, ``'minkowski'``, ``'cosine'``, ``'correlation'``).
    """
    if callable(metric):
        return metric
    valid = _numpy_metrics() if str(nx) == "numpy" else _BACKEND_METRICS
    if not isinstance(metric, str):
        raise TypeError(
            "%s must be a metric name of ot.dist or a callable metric(X, Y) -> (n_X, n_Y) matrix, got %s"
            % (name, describe(metric))
        )
    if metric not in valid:
        close = difflib.get_close_matches(metric, valid, n=1)
        raise ValueError(
            "%s=%r is not a metric of ot.dist on %s arrays%s; valid names: %s (or pass a callable "
            "metric(X, Y) returning the (n_X, n_Y) cost matrix)"
            % (name, metric, str(nx), " (did you mean %r?)" % close[0] if close else "", ", ".join(valid))
        )
    return metric


# ---------------------------------------------------------------- solver options
METHOD_ALIASES = {"sinkhorn": "sinkhorn_log"}
"""Other accepted ``method=`` names: POT's ``'sinkhorn'`` is the cyclic log-domain method."""

POT_METHODS = {
    "sinkhorn_stabilized": (
        "sinkhorn_log",
        "every method here works in the log domain, which is what POT's stabilised Sinkhorn is for",
    ),
    "sinkhorn_epsilon_scaling": (
        "sinkhorn_log",
        "the log-domain method; for a small reg, warm-start it from the "
        "potentials of a larger reg (warmstart=log['potentials'])",
    ),
    "sinkhorn_log": ("sinkhorn_log", ""),
    "greenkhorn": ("sinkhorn_greedy", "the greedy (Greenkhorn-like) method"),
}
"""POT's ``method=`` names that are not methods here: the method to use instead, and why."""


def closest_name(name, names):
    """The name of ``names`` closest to ``name`` (a case-insensitive match first, then :mod:`difflib`), or ``None``."""
    names = [n for n in names if isinstance(n, str)]
    if not isinstance(name, str):
        return None
    lower = {n.lower(): n for n in names}
    if name.lower() in lower:
        return lower[name.lower()]
    close = difflib.get_close_matches(name, names, n=1)
    return close[0] if close else None


def _signature_names(caller):
    """The parameter names of the public call ``caller`` (a name of ``ot_multimarginal``), if it is one."""
    try:
        import ot_multimarginal

        fn = getattr(ot_multimarginal, caller.split(".")[-1], None)
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError, ImportError):
        return ()
    return tuple(
        p for p, v in params.items() if v.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    )


def check_method(method, methods, name="method"):
    """The canonical method name (``'sinkhorn'`` is POT's name for ``'sinkhorn_log'``).

    ``ValueError`` ("Unknown method ...") lists the valid names.
    """
    aliases = {a: m for a, m in METHOD_ALIASES.items() if m in methods}
    if isinstance(method, str):
        if method in methods:
            return method
        if method in aliases:
            return aliases[method]
    valid = sorted(methods) + sorted(aliases)
    if isinstance(method, str) and method in POT_METHODS and POT_METHODS[method][0] in methods:
        use, why = POT_METHODS[method]
        hint = " (POT's %r: use %r, %s)" % (method, use, why)
    else:
        close = closest_name(method, valid)
        hint = " (did you mean %r?)" % close if close else ""
    raise ValueError(
        "Unknown method %s%s. Expected one of %s%s."
        % (
            repr(method) if isinstance(method, str) else describe(method),
            "" if name == "method" else " for %s" % name,
            valid,
            hint,
        )
    )


# positional arguments of every strategy, not options a user passes
_STRATEGY_POSITIONAL = (
    "engine",
    "a_s",
    "log_a",
    "g",
    "numItermax",
    "stopThr",
    "verbose",
    "blocks",
    "stop_rule",
    "unbalanced",
)


def strategy_options(strategy):
    """The keyword options of a strategy function (e.g. ``check_every``, ``relaxation``)."""
    params = inspect.signature(strategy).parameters
    return tuple(
        p
        for p in params
        if p not in _STRATEGY_POSITIONAL
        and params[p].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    )


def check_solver_kwargs(caller, method, kwargs, strategy, own=()):
    """Check the extra keywords of a public solver call against ``method``'s options.

    ``strategy`` is the loop chosen by ``method``; ``own`` the caller's other
    keyword names that may come through ``**kwargs`` (e.g. those of
    :func:`~ot_multimarginal.emot_sinkhorn` for the point-cloud calls). An
    unknown name raises a ``TypeError`` from ``caller`` with the valid names
    (and the closest one); the integer options ``check_every`` and
    ``print_every`` must be integers >= 1.
    """
    options = strategy_options(strategy)
    valid = tuple(options) + tuple(o for o in own if o not in options)
    _check_keywords(caller, kwargs, valid, "With method=%r the options are" % (method,))
    for key in ("check_every", "print_every"):
        if key in kwargs:
            check_positive_int(key, kwargs[key], minimum=1)
    return kwargs


def _check_keywords(caller, kwargs, valid, what):
    """``TypeError`` from ``caller`` for a keyword not in ``valid``, suggesting the closest name.

    The suggestion is searched among ``valid`` and the parameters of the
    public call ``caller`` itself (``stopthr`` -> ``stopThr``).
    """
    for key in kwargs:
        if key not in valid:
            close = closest_name(key, tuple(valid) + tuple(n for n in _signature_names(caller) if n not in valid))
            raise TypeError(
                "%s() got an unexpected keyword argument %r%s. %s: %s"
                % (
                    caller,
                    key,
                    " (did you mean %r?)" % close if close else "",
                    what,
                    ", ".join(valid) if valid else "none",
                )
            )


def check_forwarded_kwargs(caller, method, kwargs, auto=("sinkhorn_newton", "sinkhorn_log"), **flags):
    """Check, before any work, the keywords that ``caller`` forwards to its inner :func:`emot_sinkhorn` solves.

    ``method``: the inner ``method=`` (``'auto'``: any of ``auto``). Errors
    are reported as ``caller``'s own (``mgw_sinkhorn() got an unexpected
    keyword argument ...``), with the closest name. ``flags``: the caller's
    boolean flags (``verbose=..., log=...``), checked with :func:`check_bool`.
    """
    from .strategies import STRATEGIES  # not at import: the strategies import this module

    methods = auto if (isinstance(method, str) and method == "auto") else (check_method(method, STRATEGIES),)
    valid = []
    for m in methods:
        valid += [o for o in strategy_options(STRATEGIES[m]) if o not in valid]
    _check_keywords(caller, kwargs, tuple(valid), "Its options for the inner solves (method=%r) are" % (method,))
    for key in ("check_every", "print_every"):
        if key in kwargs:
            check_positive_int(key, kwargs[key], minimum=1)
    for nm, v in flags.items():
        check_bool(nm, v)
    return kwargs


def check_cloud_weights(a_s, X_s, name="a_s", clouds="X_s"):
    """Check the weights ``a_s`` of the point clouds ``X_s`` before any cost is built (point-cloud calls).

    The kind, library and length of every entry (``a_s[0] has length 299 but
    X_s[0] has 300 points``); the values (masses, signs) are checked by the
    solver, with :func:`check_weights`.
    """
    nx, X_s = check_point_clouds(X_s, clouds)
    if a_s is None:
        return
    if not isinstance(a_s, (list, tuple)):
        raise TypeError("%s must be a list of k weight vectors (or None for uniform), got %s" % (name, describe(a_s)))
    if len(a_s) != len(X_s):
        raise ValueError(
            "%s must have one entry per point cloud of %s: expected %d, got %d" % (name, clouds, len(X_s), len(a_s))
        )
    for i, (a, X) in enumerate(zip(a_s, X_s)):
        nm = "%s[%d]" % (name, i)
        a = _as_weight_array(nx, a, nm, X, clouds)
        if a is not None and a.ndim != 1:
            raise ValueError("%s must be 1-D, got shape %s" % (nm, tuple(a.shape)))
        if a is not None and int(a.shape[0]) != int(X.shape[0]):
            raise ValueError("%s has length %d but %s[%d] has %d points" % (nm, a.shape[0], clouds, i, X.shape[0]))


def check_warmstart(nx, warmstart, shape, type_as, name="warmstart"):
    """``None``, or k finite dual potentials of shapes ``(n_i,)`` (``log['potentials']``).

    Returns the potentials detached and cast to the dtype and device of ``type_as``.
    """
    if warmstart is None:
        return None
    k = len(shape)
    if not isinstance(warmstart, (list, tuple)):
        raise TypeError(
            "%s must be a list of %d potentials (log['potentials'] of a previous solve) or None, got %s"
            % (name, k, describe(warmstart))
        )
    if len(warmstart) != k:
        raise ValueError(
            "%s must be a list of %d potentials (log['potentials'] of a previous solve), got %d entries"
            % (name, k, len(warmstart))
        )
    lib = type(type_as).__module__.split(".")[0]
    out = []
    for i, (phi, n) in enumerate(zip(warmstart, shape)):
        nm = "%s[%d]" % (name, i)
        if not _is_array(phi):
            raise TypeError(
                "%s must be a %s of shape (%d,) (the potential of log['potentials']), got %s"
                % (nm, "torch tensor" if lib == "torch" else "NumPy array", n, describe(phi))
            )
        if type(phi).__module__.split(".")[0] != lib:
            raise TypeError("%s must come from the same library as the cost (%s), got %s" % (nm, lib, describe(phi)))
        if tuple(phi.shape) != (n,):
            raise ValueError("%s must have shape (%d,), got %s" % (nm, n, tuple(phi.shape)))
        if "bool" in str(phi.dtype) or "complex" in str(phi.dtype):
            raise TypeError("%s must have a real dtype, got %s" % (nm, phi.dtype))
        phi = cast_like(nx, nx.detach(phi), type_as)
        check_finite(nx, phi, nm)
        out.append(phi)
    return out


def check_index_tuples(idx, shape):
    """``idx`` as a NumPy int64 array of shape (m, k) (and whether it was one tuple).

    ``TypeError`` for non-integers, ``ValueError`` for a wrong shape, ``IndexError`` out of range.
    """
    k = len(shape)
    try:
        arr = np.asarray(idx.detach().cpu() if hasattr(idx, "detach") else idx)
    except (TypeError, ValueError):
        raise TypeError(
            "idx (index tuples) must be an integer array of shape (m, %d) or (%d,), got %s" % (k, k, describe(idx))
        ) from None
    single = arr.ndim == 1
    if single:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != k:
        raise ValueError(
            "idx (index tuples) must be an array of shape (m, %d) or (%d,), got shape %s" % (k, k, np.shape(arr))
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise TypeError("idx (index tuples) must be integers, got dtype %s" % arr.dtype)
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        hi = np.asarray(shape, dtype=np.int64)
        bad = (arr < 0) | (arr >= hi[None, :])
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise IndexError("idx: index %d out of range for axis %d of size %d (row %d)" % (arr[r, c], c, shape[c], r))
    return arr, single


def check_log_scalings(g, shape, name="g"):
    """A list of k arrays of shapes ``(n_i,)`` (log-scalings of a Gibbs tensor; ``-inf`` allowed).

    ``ValueError`` for NaN or ``+inf`` entries, and for a vector that is
    ``-inf`` everywhere (a plan of zero mass): no plan would be finite.
    """
    k = len(shape)
    if not isinstance(g, (list, tuple)):
        raise TypeError(
            "%s must be a list of %d log-scalings (arrays of shapes (n_i,)), got %s" % (name, k, describe(g))
        )
    if len(g) != k:
        raise ValueError("%s must be a list of %d log-scalings, got %d" % (name, k, len(g)))
    maxima = []
    for i, (gi, n) in enumerate(zip(g, shape)):
        if not _is_array(gi):
            raise TypeError("%s[%d] must be an array of shape (%d,), got %s" % (name, i, n, describe(gi)))
        if tuple(gi.shape) != (n,):
            raise ValueError("%s[%d] must have shape (%d,), got %s" % (name, i, n, tuple(gi.shape)))
        if n:
            # the maximum is NaN if any entry is NaN, +inf if any is +inf and -inf only if all are
            nxi = get_backend(gi)
            maxima.append((i, nxi.reshape(nxi.max(nxi.detach(gi)), (1,))))
    if not maxima:
        return list(g)
    nx = get_backend(*[m for _, m in maxima])
    tops = nx.to_numpy(nx.concatenate([m for _, m in maxima]))  # one host transfer of k scalars
    for (i, _), top in zip(maxima, np.asarray(tops, dtype=np.float64)):
        if np.isnan(top) or np.isposinf(top):
            raise ValueError(
                "%s[%d] contains NaN or +inf values (log-scalings may be -inf, not NaN or +inf): "
                "the solve that produced them failed; check its log['converged'] and err" % (name, i)
            )
        if np.isneginf(top):
            raise ValueError("%s[%d] is -inf everywhere: the plan would have zero mass" % (name, i))
    return list(g)


def check_plan_tensor(nx, X, name="X"):
    """A dense plan: a floating array with k >= 2 axes, none empty, finite and non-negative."""
    _check_floating(nx, X, name)
    check_k(X.ndim, "%s.ndim (the number of marginals)" % name)
    if any(int(n) == 0 for n in X.shape):
        raise ValueError("%s must have no empty axis, got shape %s" % (name, tuple(int(n) for n in X.shape)))
    check_finite(nx, X, name)
    m = float(nx.to_numpy(nx.min(nx.detach(X))))
    if m < 0:
        raise ValueError("%s must be non-negative (a plan), got a minimum entry of %g" % (name, m))


def check_solver_call(caller, a_s, M, reg, method, methods, kwargs, own=(), **flags):
    """The checks every public solver call makes first; returns the canonical method name.

    POT's two-marginal signature (:func:`check_not_pot_signature`), ``method``
    (:func:`check_method`, POT's ``'sinkhorn'`` accepted), the extra keywords
    against the chosen loop's options (:func:`check_solver_kwargs`), and the
    boolean flags given as keywords (``log=..., verbose=..., warn=...``).
    """
    check_not_pot_signature(a_s, M, reg, caller)
    method = check_method(method, methods)
    check_solver_kwargs(caller, method, kwargs, methods[method], own)
    for nm, v in flags.items():
        check_bool(nm, v)
    return method


def check_rounded_marginals(nx, err, k, type_as, reg, stacklevel=3):
    """Warn when a rounded plan misses its exact marginals by more than the dtype allows.

    ``err`` is the L1 marginal error of the rounded plan; the tolerance is
    ``1000 k eps`` of the dtype, at least 1e-9 (3.6e-4 for k = 3 in float32,
    1e-9 in float64).
    """
    dt = str(type_as.dtype).replace("torch.", "")
    eps = float(np.finfo(dt).eps)
    tol = max(1e3 * k * eps, 1e-9)
    e = float(nx.to_numpy(nx.detach(err))) if not isinstance(err, float) else err
    if not math.isfinite(e) or e > tol:
        fix = "use float64 (or a larger reg)" if eps > 1e-10 else "use a larger reg or rescale the cost"
        warn_promise(
            "round() promises exact marginals, but the rounded plan's marginals miss the weights (sum of L1 errors)",
            e,
            tol,
            "At reg=%g the plan's log-scalings are beyond what %s resolves: %s." % (reg, dt, fix),
            stacklevel=stacklevel,
        )


def check_finite_result(nx, x, what, hint=""):
    """``FloatingPointError`` when a computed result is NaN or inf (never a silent non-finite number)."""
    xd = nx.detach(x)
    hi, lo = float(nx.to_numpy(nx.max(xd))), float(nx.to_numpy(nx.min(xd)))
    if not (math.isfinite(hi) and math.isfinite(lo)):
        raise FloatingPointError("%s is not finite (max %r, min %r).%s" % (what, hi, lo, (" " + hint) if hint else ""))
    return x


def warn_promise(what, reached, tol, hint="", stacklevel=3):
    """``UserWarning`` when a promised figure is not met: says what was reached and the tolerance."""
    warnings.warn(
        "%s: reached %.3g, above the tolerance %.3g.%s" % (what, reached, tol, (" " + hint) if hint else ""),
        UserWarning,
        stacklevel=stacklevel + 1,
    )


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


SCALING_HINT = (
    "What scales: a PairwiseCost on a chain, tree, star or circle (ot_multimarginal.PairwiseCost, "
    "graph='chain'/'tree'/'star'/'circle'; a complete graph only for k = 3, where it is a circle), "
    "solved without the tensor up to n of several thousands; or the neural solver "
    "ot_multimarginal.emot_neural (samples, no tensor) for dense interactions among many marginals. "
    "The sizes each engine reaches are tabulated in ot_multimarginal.costs.graph"
)


def check_dense_size(
    shape, itemsize, n_buffers, memory_budget, what="the dense cost tensor", nx=None, type_as=None, hint=None
):
    """Raise ``MemoryError`` before allocating ``n_buffers`` tensors of ``shape``.

    ``memory_budget=None`` uses :func:`default_memory_budget`. ``hint``: the
    advice ending the message (default: what scales, :data:`SCALING_HINT`).
    """
    entries = 1
    for n in shape:
        entries *= int(n)
    need = entries * itemsize * n_buffers
    memory_budget = check_memory_budget(memory_budget)
    budget = default_memory_budget(nx, type_as) if memory_budget is None else memory_budget
    if need > budget:
        raise MemoryError(
            "%s of shape %s needs about %s (%d buffers of %s entries), over the memory "
            "budget of %s. %s; or raise memory_budget."
            % (
                what,
                tuple(int(n) for n in shape),
                _fmt_bytes(need),
                n_buffers,
                entries,
                _fmt_bytes(budget),
                SCALING_HINT if hint is None else hint,
            )
        )
    return need


def check_auto_bool(value, name):
    """``value`` must be ``'auto'``, ``True`` or ``False``."""
    if not (value is True or value is False or (isinstance(value, str) and value == "auto")):
        raise ValueError("%s must be 'auto', True or False, got %r" % (name, value))
    return value
