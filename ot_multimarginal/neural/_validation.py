# -*- coding: utf-8 -*-
"""The torch-only argument checks of the neural estimators (the others are in :mod:`ot_multimarginal._validation`).

Every check raises a ``TypeError`` (wrong kind of object) or a ``ValueError``
(wrong value) whose message names the argument and says what to pass:
:func:`check_device`, :func:`check_train_dtype`, :func:`check_estimator_params`
(every constructor parameter of :class:`~ot_multimarginal.neural.NeuralEMOT`
and :class:`~ot_multimarginal.neural.NeuralMGW`, before any work),
:func:`check_query_points` (the points of ``potential``, ``plan_density``,
...), :func:`check_marginal_pair`, :func:`check_save_path` and :func:`check_load_path`.
"""
# License: MIT License

import math
import os

import numpy as np
import torch

from .._validation import (
    check_auto_bool,
    check_bool,
    check_checkpoint_params,
    check_choice,
    check_nonneg_float,
    check_positive_int,
    check_reg,
    describe,
)

__all__ = [
    "check_device",
    "check_train_dtype",
    "check_estimator_params",
    "check_query_points",
    "check_marginal_pair",
    "check_save_path",
    "check_load_path",
]

_DEVICE_HINTS = {"gpu": "cuda", "cuda0": "cuda:0", "nvidia": "cuda", "cpu0": "cpu", "metal": "mps"}


def check_device(device, name="device"):
    """``None`` or a device this process can use; returns a :class:`torch.device` (or ``None``).

    ``ValueError`` naming ``name`` for a name torch does not know (``'gpu'``:
    use ``'cuda'``), and for a CUDA (or MPS) device that is not there (no
    GPU in this torch build or machine, or an index beyond the visible GPUs).
    """
    if device is None:
        return None
    if isinstance(device, (bool, np.bool_)) or not isinstance(device, (str, torch.device, int, np.integer)):
        raise TypeError(
            "%s must be a torch device or its name ('cpu', 'cuda', 'cuda:1', ...), got %s" % (name, describe(device))
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        hint = _DEVICE_HINTS.get(str(device).strip().lower())
        raise ValueError(
            "%s=%r is not a torch device name: expected 'cpu', 'cuda', 'cuda:<index>' or 'mps'%s"
            % (name, device, " (did you mean %r?)" % hint if hint else "")
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                "%s=%r but CUDA is not available (torch.cuda.is_available() is False: no GPU, or a "
                "CPU-only torch build): use device='cpu' or None" % (name, str(device))
            )
        n = torch.cuda.device_count()
        if dev.index is not None and dev.index >= n:
            raise ValueError(
                "%s=%r but only %d CUDA device(s) are visible (cuda:0 to cuda:%d)" % (name, str(device), n, n - 1)
            )
    elif dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ValueError(
                "%s=%r but MPS is not available on this machine: use device='cpu' or None" % (name, str(device))
            )
    return dev


def check_train_dtype(dtype, name="dtype"):
    """``None`` or a floating torch dtype (the networks' parameters); returns it."""
    if dtype is None:
        return None
    if not isinstance(dtype, torch.dtype):
        raise TypeError(
            "%s must be a torch floating dtype (torch.float32 or torch.float64) or None, got %s"
            % (name, describe(dtype))
        )
    if not dtype.is_floating_point:
        raise TypeError(
            "%s must be a floating dtype (the networks' parameters are trained): torch.float32 or "
            "torch.float64, got %s" % (name, dtype)
        )
    return dtype


def _check_optional(check, name, value, *args, **kwargs):
    if value is not None:
        check(name, value, *args, **kwargs)


# the parameters shared by the neural estimators, and their checks (a parameter an estimator lacks is skipped)
_INTS = {
    "n_iter": 1,
    "max_iter": 1,
    "depth": 1,
    "n_eval_batches": 2,
    "eval_every": 0,
    "n_components": 1,
    "max_candidates": 1,
    "n_outer": 1,
    "n_iter_refit": 1,
    "n_moment_batches": 1,
}
_OPTIONAL_INTS = {
    "n_init_points": 2,
    "batch_size": 1,
    "width": 1,
    "patience": 1,
    "checkpoint_every": 1,
    "seed": 0,
    "random_state": 0,
}
_BOOLS = ("verbose", "warm_start", "resume")


def check_estimator_params(est):
    """Check every constructor parameter of a neural estimator, before any work; returns ``est``.

    Works from ``est.get_params()``: integers, the learning rate, ``tol``
    (a finite number >= 0), the boolean flags, ``replace`` (``None`` or a
    bool), ``estimator``, ``device`` (:func:`check_device`), ``dtype``
    (:func:`check_train_dtype`) and the checkpoint parameters. So
    :func:`~ot_multimarginal.neural.mgw_neural` refuses a bad ``batch_size``
    or ``lr`` at once, not after its start screening.
    """
    from .objectives import ESTIMATORS

    p = est.get_params()
    for nm, low in _INTS.items():
        if nm in p:
            check_positive_int(nm, p[nm], minimum=low)
    for nm, low in _OPTIONAL_INTS.items():
        if nm in p and p[nm] is not None and not (nm == "random_state" and not isinstance(p[nm], (int, np.integer))):
            check_positive_int(nm, p[nm], minimum=low)
    if "reg" in p:
        check_reg(p["reg"])
    if "lr" in p:
        check_reg(p["lr"], "lr")
    if p.get("grad_clip") is not None:
        check_reg(p["grad_clip"], "grad_clip")
    if "tol" in p:
        check_nonneg_float("tol", p["tol"])
    for nm in _BOOLS:
        if nm in p:
            check_bool(nm, p[nm])
    if p.get("replace") is not None:
        check_bool("replace", p["replace"])
    if "estimator" in p:
        check_choice("estimator", p["estimator"], ESTIMATORS)
    if "evaluation" in p:
        check_choice("evaluation", p["evaluation"], ("auto", "exact", "mc"))
    if "distributed" in p:
        check_auto_bool(p["distributed"], "distributed")
    if "refine" in p:
        check_auto_bool(p["refine"], "refine")
    if "distributed_loss" in p:
        check_choice("distributed_loss", p["distributed_loss"], ("global", "local"))
    check_device(p.get("device"))
    check_train_dtype(p.get("dtype"))
    if "checkpoint_dir" in p:
        check_checkpoint_params(p["checkpoint_dir"], p.get("checkpoint_every"), p.get("resume", False))
    return est


def check_query_points(x, name="x", d=None):
    """Points given to a fitted estimator's query: a finite NumPy array or torch tensor of shape ``(m, d)``.

    ``TypeError`` for anything else (a nested list included: pass
    ``np.asarray(x)``; boolean arrays and integer tensors: cast them), ``ValueError`` for another shape or NaN / inf
    entries. Returns ``x``.
    """
    if not (isinstance(x, np.ndarray) or torch.is_tensor(x)):
        raise TypeError(
            "%s must be a NumPy array or torch tensor of shape (m, %s), got %s (for a list, pass "
            "np.asarray(%s))" % (name, d if d is not None else "d", describe(x), name)
        )
    if (
        x.dtype == torch.bool
        or x.dtype == np.bool_
        or "complex" in str(x.dtype)
        or (torch.is_tensor(x) and not x.is_floating_point())
    ):
        raise TypeError(
            "%s must have a real floating dtype, got %s: cast it first (x.double() / x.astype(float))" % (name, x.dtype)
        )
    if x.ndim != 2 or (d is not None and int(x.shape[1]) != d):
        raise ValueError("%s must have shape (m, %s), got %s" % (name, d if d is not None else "d", tuple(x.shape)))
    if x.numel() if torch.is_tensor(x) else x.size:
        t = x.detach() if torch.is_tensor(x) else x
        hi, lo = float(t.max()), float(t.min())
        if not (math.isfinite(hi) and math.isfinite(lo)):
            raise ValueError("%s contains NaN or inf values" % name)
    return x


def check_marginal_pair(i, j, k):
    """Two different marginal indices ``i``, ``j`` in ``[0, k)`` (a ``ValueError`` naming the argument otherwise)."""
    for name, v in (("i", i), ("j", j)):
        if not isinstance(v, (int, np.integer)) or not 0 <= v < k:
            raise ValueError("%s must be a marginal index in [0, %d), got %r" % (name, k, v))
    if i == j:
        raise ValueError("i and j must be two different marginals, got i = j = %d" % i)


def check_save_path(path, name="path"):
    """A file path that ``torch.save`` can write: a ``TypeError`` or ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError("%s must be a file path (str or os.PathLike), got %s" % (name, describe(path)))
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError(
            "%s=%r is a directory: give a file name in it, e.g. %r" % (name, path, os.path.join(path, "estimator.pt"))
        )
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(
            "%s=%r: its directory %r does not exist; create it first (os.makedirs(%r, exist_ok=True))"
            % (name, path, parent, parent)
        )
    return path


def check_load_path(path, name="path"):
    """An existing file: a ``TypeError`` or ``ValueError`` naming ``name`` otherwise."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(
            "%s must be the path (str or os.PathLike) of a file written by save(), got %s" % (name, describe(path))
        )
    path = os.fspath(path)
    if os.path.isdir(path):
        raise ValueError("%s=%r is a directory, not a file written by save()" % (name, path))
    if not os.path.exists(path):
        raise ValueError("%s=%r: no such file" % (name, path))
    return path
