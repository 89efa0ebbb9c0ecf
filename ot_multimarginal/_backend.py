# -*- coding: utf-8 -*-
"""Small helpers on top of POT's backend that every engine needs.

Everything here works through ``nx`` (a :class:`ot.backend.Backend`), so the
same code serves NumPy and torch (CPU or CUDA) with autograd.
"""
# License: MIT License

import contextlib
import math
import threading

import numpy as np

__all__ = [
    "axes_except",
    "expand_to",
    "outer_sum",
    "flat_outer_product",
    "safe_log",
    "to_float",
    "dtype_info",
    "can_write_in_place",
    "exp_in_place",
    "deferred_checks",
    "defer_check",
]


def axes_except(i, k):
    """Tuple of the axes ``0..k-1`` without ``i``."""
    return tuple(j for j in range(k) if j != i)


def expand_to(nx, v, i, k):
    """Reshape the 1-D ``v`` so that it broadcasts along axis ``i`` of a k-tensor."""
    shape = [1] * k
    shape[i] = -1
    return nx.reshape(v, tuple(shape))


def outer_sum(nx, vecs):
    """The k-tensor ``⊕_i v_i`` (entry ``I`` is ``Σ_i v_i[I_i]``)."""
    k = len(vecs)
    out = expand_to(nx, vecs[0], 0, k)
    for i in range(1, k):
        out = out + expand_to(nx, vecs[i], i, k)
    return out


def flat_outer_product(nx, vecs):
    """Row-major flattening of ``v_1 ⊗ … ⊗ v_m`` (``None`` if ``vecs`` is empty)."""
    if len(vecs) == 0:
        return None
    out = vecs[0]
    for v in vecs[1:]:
        out = nx.reshape(out[:, None] * v[None, :], (-1,))
    return out


def safe_log(nx, x):
    """``log x`` with ``log 0 = -inf`` and no warning on NumPy.

    On an array that takes part in autograd, the log is taken of ``1`` where
    ``x = 0`` and then replaced by ``-inf``, so that the gradient there is 0
    rather than ``inf · 0 = NaN`` (which would spread to every entry).
    """
    if str(nx) == "numpy":
        with np.errstate(divide="ignore"):
            return np.log(x)
    if getattr(x, "requires_grad", False):
        pos = x > 0
        one = nx.ones(x.shape, type_as=x)
        return nx.where(pos, nx.log(nx.where(pos, x, one)), one * -np.inf)
    return nx.log(x)


def to_float(nx, x):
    """A Python float from a backend 0-d array (detached, on the host)."""
    return float(nx.to_numpy(nx.detach(x)) if not isinstance(x, float) else x)


def dtype_info(nx, x):
    """``(eps, log_max)`` of the floating dtype of ``x``.

    ``log_max`` is the largest ``t`` with ``exp(t)`` finite.
    """
    if str(nx) == "numpy":
        fi = np.finfo(np.asarray(x).dtype)
        return float(fi.eps), math.log(float(fi.max))
    import torch  # only reached when x is a torch tensor

    fi = torch.finfo(x.dtype)
    return float(fi.eps), math.log(float(fi.max))


def can_write_in_place(nx, *arrays):
    """Whether new arrays computed from ``arrays`` may be overwritten in place.

    True on NumPy, and on torch when no array takes part in autograd.
    """
    if str(nx) == "numpy":
        return True
    if str(nx) == "torch":
        return not any(getattr(x, "requires_grad", False) for x in arrays)
    return False


def exp_in_place(nx, X):
    """``exp(X)`` overwriting ``X`` (NumPy ``out=``, torch ``exp_``): no second buffer.

    Only call on arrays for which :func:`can_write_in_place` holds.
    """
    if str(nx) == "numpy":
        return np.exp(X, out=X)
    if str(nx) == "torch":
        return X.exp_()
    return nx.exp(X)


# ---- deferred certificates: no host synchronisation inside a training step ---------------------
_DEFERRED = threading.local()


@contextlib.contextmanager
def deferred_checks(checks):
    """Inside the block, the stabilised products defer their certificates to the list ``checks``.

    Some engine steps branch on a device value: "did the scaled product stay
    above its error bound?" (:func:`~ot_multimarginal.marginals._pairwise.log_matmul`,
    :func:`~ot_multimarginal.marginals._split_product.split_log_mass`), and
    repair the few entries that did not. On a GPU each such branch is a host
    synchronisation: Python waits for the device's whole queue. Inside this
    block (torch only) they take the scaled result and append the
    certificate instead, a pair ``(ok, what)`` with ``ok`` a 0-d boolean
    tensor left on the device; the caller reads all of them at once later
    (:meth:`ot_multimarginal.neural.Trainer.sync`) and warns when one failed.
    Outside the block (and on NumPy) the products read the certificate
    immediately and repair what needs it, as always.

    Parameters
    ----------
    checks : list
        Receives the ``(ok, what)`` pairs.
    """
    prev = getattr(_DEFERRED, "checks", None)
    _DEFERRED.checks = checks
    try:
        yield checks
    finally:
        _DEFERRED.checks = prev


def defer_check(nx, ok, what):
    """Append the certificate ``ok`` (0-d boolean, on the device) when :func:`deferred_checks` is active.

    Returns
    -------
    deferred : bool
        ``True``: the caller takes its unrepaired result and must not read
        ``ok`` now; ``False``: no deferral (NumPy, or outside the block).
    """
    checks = getattr(_DEFERRED, "checks", None)
    if checks is None or str(nx) != "torch":
        return False
    checks.append((nx.detach(ok), what))
    return True
