# -*- coding: utf-8 -*-
r"""What the graph engines share: stabilised log-domain products and the plan plumbing.

A pairwise cost :math:`C(x_1, \dots, x_k) = \sum_{(a,b) \in E} C_{ab}[x_a, x_b]`
gives a Gibbs tensor that is a product of one factor per node,
:math:`e^{g_i}`, and one per edge, :math:`K_{ab} = e^{-C_{ab}/\varepsilon}`.
Every marginal is a sum of products of these factors, computed by the
engines (:mod:`.tree`, :mod:`.cycle`, :mod:`.contraction`) as matrix-vector
or matrix-matrix products, never over the :math:`\prod_i n_i` tensor.

Two stabilised primitives keep them exact in the log domain at small
:math:`\varepsilon` and in float32:

:func:`log_matmul`
    :math:`\log(e^{L_1} e^{L_2})` as a matrix product of max-shifted
    exponentials (``O(n^2)`` exponentials for ``O(n^3)`` flops); the entries
    whose product underflows (all terms below ``q·tiny/eps``) are recomputed
    by an exact log-sum-exp; in float32, when many do, the product is first
    redone in float64 (its ~320-nat exponent range instead of ~70: at
    ``reg = 0.1`` on a neural training batch, most float32 products underflow,
    and an ``O(n^3)`` log-sum-exp cost 4× the whole rest of the step). Each
    entry is therefore correct to a few ulps of the working dtype whatever
    the dynamic range.

:class:`EdgeKernel`
    messages :math:`m[y] = \log\sum_x e^{A[x,y] + h[x]}` as a matrix-vector
    product with an *absorbed* kernel
    :math:`K = \exp(A + \alpha\oplus\beta - c)` (Schmitzer's stabilised
    scaling): :math:`\alpha, \beta` are recent message contexts on both sides
    of the edge, so :math:`K` is close to the edge's pairwise marginal and a
    message needs no exponential of the matrix. The kernel is absorbed again
    when a product underflows and the contexts have moved; what still
    underflows is recomputed by log-sum-exp.

Both read one certificate on the host (is the scaled product above its
error bound?); inside :func:`~ot_multimarginal._backend.deferred_checks`
(torch: a training step of :mod:`ot_multimarginal.neural`, the sync-free
sweeps of :mod:`ot_multimarginal.strategies.cyclic`) they leave it on the
device for the caller, which reads them all at once and redoes the work on
the checked path (or warns) when one failed.

The absorbed shifts are detached constants: gradients (torch) flow through
the cost matrices and the log-scalings only, and are exact.

Each edge matrix is centred before the division by :math:`\varepsilon`: the
kernels are those of :math:`C_e - c_e`, :math:`c_e = \min C_e` (or 0, see
:func:`.base.default_offset`; the engine's
``edge_offsets``; ``cost_offset`` is their sum, see :mod:`.base`), so a
constant part of any edge, of either sign and any size, changes nothing
in the iterations.
"""
# License: MIT License

import math
import os

import numpy as np

from .._backend import _DEFERRED, defer_check, outer_sum
from .._validation import cast_like, check_dense_size
from .base import GibbsEngine, default_offsets

__all__ = ["PairwiseEngine", "EdgeKernel", "log_matmul", "Precision", "logsumexp", "amax", "flush", "flushed_exp"]

# entries gathered at once by the log-sum-exp fallbacks
_CHUNK = 1 << 21


class Precision:
    """Underflow constants of the working dtype (of the array ``x``).

    ``flush``: entries of the exponentiated factors below ``sqrt(tiny)`` are
    set to zero before a product, so that no product of two factors is
    subnormal (subnormal operands slow matrix products down a hundredfold);
    ``tiny`` itself for float32, whose exponent range is too narrow for that.
    ``factor``: a sum of ``q`` such products, each of factors in ``[0, 1]``,
    is then accurate to ``eps`` relative when it is at least
    ``q * factor = q * flush / eps`` (each flushed term costs at most
    ``flush``); smaller sums are recomputed in the log domain.
    """

    def __init__(self, x):
        name = str(x.dtype).replace("torch.", "")
        try:
            fi = np.finfo(np.dtype(name))
        except TypeError:  # pragma: no cover - exotic dtypes (bfloat16)
            fi = np.finfo(np.float32)
        self.eps = float(fi.eps)
        self.flush = float(np.sqrt(fi.tiny))
        if self.flush / self.eps > 1e-100:
            # narrow exponent range (float32): flushing at sqrt(tiny) would
            # send sums below ~1e-12 to the log domain; flush subnormals only
            self.flush = float(fi.tiny)
        self.factor = self.flush / self.eps


def flush(nx, X, prec):
    """``X`` with entries below ``prec.flush`` set to zero.

    ``X`` must be a fresh temporary: on NumPy it is modified in place (one
    comparison and a sparse write instead of a full ``where`` pass); on torch
    a ``where`` keeps the autograd graph.
    """
    if str(nx) == "numpy":
        X[X < prec.flush] = 0.0
        return X
    if str(nx) == "torch":  # one op (in place unless X takes part in autograd)
        import torch.nn.functional as F

        return F.threshold(X, prec.flush, 0.0) if X.requires_grad else F.threshold_(X, prec.flush, 0.0)
    return nx.where(X >= prec.flush, X, nx.zeros((), type_as=X))


def flushed_exp(nx, X, prec):
    """``exp(X)`` with entries below ``prec.flush`` set to zero (``X <= 0`` expected)."""
    return flush(nx, nx.exp(X), prec)


def amax(nx, X, axis, keepdims=False):
    """Max along ``axis``; on torch ``amax`` (``torch.max(x, dim)``, which POT's
    backend calls, also computes indices and can be far slower)."""
    if str(nx) == "torch":
        return X.amax(dim=axis, keepdim=keepdims)
    return nx.max(X, axis=axis, keepdims=keepdims)


def logsumexp(nx, X, axis):
    """Log-sum-exp along one ``axis`` (``-inf`` slices give ``-inf``, no warning)."""
    if str(nx) != "numpy":
        return nx.logsumexp(X, axis=axis)
    m = np.max(X, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.log(np.sum(np.exp(X - m), axis=axis)) + np.squeeze(m, axis=axis)


def index_array(nx, idx, like):
    """Integer indices (NumPy, or torch already) usable on arrays of ``like``'s backend and device."""
    if str(nx) == "torch":
        import torch

        if isinstance(idx, torch.Tensor):  # already torch indices (found on the device)
            return idx.to(device=like.device, dtype=torch.long)
        return torch.as_tensor(np.asarray(idx), dtype=torch.long, device=like.device)
    return np.asarray(idx)


def finite_max(nx, L, axis):
    """Detached max of ``L`` along ``axis`` (kept), ``0`` where a slice is all ``-inf``."""
    m = amax(nx, nx.detach(L), axis, keepdims=True)
    if str(nx) in ("numpy", "torch"):  # one op
        mod = np if str(nx) == "numpy" else _torch()
        return mod.nan_to_num(m, nan=0.0, posinf=0.0, neginf=0.0)
    return nx.where(nx.isfinite(m), m, nx.zeros(m.shape, type_as=m))


def _torch():
    import torch

    return torch


def _swap_last(nx, X):
    if X.ndim == 2:
        return X.T
    axes = tuple(range(X.ndim - 2)) + (X.ndim - 1, X.ndim - 2)
    return nx.transpose(X, axes)


def log_matmul(nx, L1, L2, prec, E1=None, r1=None, E2=None, c2=None, addend=None, summed=False):
    r"""Stabilised :math:`\log(e^{L_1} e^{L_2})` for ``(..., p, q) @ (..., q, r)``.

    ``L1``, ``L2`` are log-matrices (``-inf`` allowed), with at most one
    leading batch axis. ``E1 = exp(L1 - r1)`` (``r1`` its detached row maxima)
    and ``E2 = exp(L2 - c2)`` (column maxima) may be passed when cached.
    ``prec`` is the :class:`Precision` of the dtype. Entries whose product
    falls below ``q * prec.factor`` are recomputed by log-sum-exp, so every
    entry is accurate (``-inf`` only where the true sum is zero); in float32
    (NumPy, or torch off ``mps``), when they would cost more exponentials than
    the two factors, the product is redone in float64 first (differentiably)
    and rounded back.

    ``addend`` (2-D, the shape of the result): the caller keeps only
    :math:`W = \log(e^{L_1} e^{L_2}) + R`, ``R = addend`` (e.g. the log of a
    pairwise marginal, whose other factors are ``R``). An underflowed entry
    is then *not* recomputed when a bound proves it negligible in ``W``
    (:func:`negligible_entries`): its value in ``W`` is below
    ``SKIP_REL / n`` times the largest accurate entry of its row *and*
    below ``SKIP_REL / m`` times that of its column (``m × n`` the shape), so that
    every row and column sum of :math:`e^W` is unchanged to ``SKIP_REL``
    relative (``eps**2`` of the dtype). Such an entry is returned as a
    lower bound of its true value (possibly ``-inf``). ``summed=True``: the
    caller only sums :math:`e^W` over all entries (a log-partition), so an
    entry is negligible when its bound is below ``SKIP_REL / (m n)`` times
    the largest accurate entry of ``W`` (the total then unchanged to
    ``SKIP_REL``), whatever its row and column. The environment
    variable ``OT_MULTIMARGINAL_NO_SKIP=1`` turns the skip off (exact entries
    everywhere, for comparisons).
    """
    if E1 is None:
        r1 = finite_max(nx, L1, -1)
        E1 = flushed_exp(nx, L1 - r1, prec)
    if E2 is None:
        c2 = finite_max(nx, L2, -2)
        E2 = flushed_exp(nx, L2 - c2, prec)
    P = E1 @ E2
    shift = r1 + c2  # the scale of P's entries in the log domain (detached maxima), formed once
    q = L1.shape[-1]
    ok = P >= q * prec.factor
    # rows of L1 or columns of L2 that are all -inf give exact zeros
    fr = fc = None
    skippable = addend is not None and P.ndim == 2 and skip_enabled()
    if _deferrable(nx):
        fr = nx.isfinite(amax(nx, nx.detach(L1), -1, keepdims=True))
        fc = nx.isfinite(amax(nx, nx.detach(L2), -2, keepdims=True))
        # unrepaired: an entry that underflowed to zero is -inf (a lower bound) with a zero gradient, not NaN
        pos, low = _lower_log(nx, P, shift)
        missed = (~ok) & fr & fc
        if skippable:
            # entries the skip bound proves negligible need no repair: the certificate is about the others
            missed = missed & ~_negligible_mask(nx, P, ok, missed, low, shift, addend, q, prec, summed)
        if defer_check(nx, ~nx.any(missed), "log_matmul"):  # no host sync (see _backend.deferred_checks)
            return nx.where(pos, low, nx.full(P.shape, -np.inf, type_as=P))
    if not bool(nx.any(~ok)):
        return shift + nx.log(P)
    out = shift + nx.log(nx.where(ok, P, nx.ones(P.shape, type_as=P)))
    if fr is None:
        fr = nx.isfinite(amax(nx, nx.detach(L1), -1, keepdims=True))
        fc = nx.isfinite(amax(nx, nx.detach(L2), -2, keepdims=True))
    bad = (~ok) & fr & fc
    S = nx.full(P.shape, -np.inf, type_as=P)
    if skippable:
        skip = negligible_entries(nx, P, ok, bad, out, shift, addend, q, prec, summed)
        if skip is not None:
            bad = bad & ~skip
            # a lower bound of the true value (-inf where the product is exactly zero; no log(0) in autograd)
            pos, low = _lower_log(nx, P, shift)
            S = nx.where(skip & pos, low, S)
    if bool(nx.any(bad)):
        # the entries to repair: found where the mask is (a GPU keeps its indices; NumPy indices otherwise)
        idx = bad.nonzero(as_tuple=True) if str(nx) == "torch" else np.nonzero(nx.to_numpy(bad))
        wide = _widened(nx, P)
        if wide is not None and len(idx[0]) * q > _numel(L1) + _numel(L2):
            # a narrow dtype (float32) whose exponent range the scaled product left: the product again in
            # float64 (O(n^2) exponentials and a float64 matrix product instead of an O(n^3) log-sum-exp;
            # its own underflows, far fewer, recomputed there), rounded back
            L1w, L2w = wide(L1), wide(L2)
            addw = wide(addend) if addend is not None else None
            full = log_matmul(nx, L1w, L2w, Precision(L1w), addend=addw, summed=summed)
            return nx.where(ok, out, cast_like(nx, full, P))
        if P.ndim == 2 and 4 * len(idx[0]) > P.shape[0] * P.shape[1]:
            # many entries: the whole product in the log domain, rows in chunks
            p, r = P.shape
            step = max(1, _CHUNK // max(q * r, 1))
            rows = [logsumexp(nx, L1[s : s + step, :, None] + L2[None, :, :], 1) for s in range(0, p, step)]
            full = rows[0] if len(rows) == 1 else nx.concatenate(rows, axis=0)
            return nx.where(ok, out, full)
        L2t = _swap_last(nx, L2)
        vals = []
        nb = len(idx[0])
        step = max(1, _CHUNK // max(q, 1))
        for s in range(0, nb, step):
            sel = tuple(index_array(nx, ix[s : s + step], P) for ix in idx)
            rows = L1[sel[:-1]]
            cols = L2t[sel[:-2] + sel[-1:]]
            vals.append(logsumexp(nx, rows + cols, 1))
        vals = vals[0] if len(vals) == 1 else nx.concatenate(vals, axis=0)
        S[tuple(index_array(nx, ix, P) for ix in idx)] = vals
    return nx.where(ok, out, S)


def _lower_log(nx, P, shift):
    """``(P > 0, shift + log P)`` with ``log 1`` where ``P == 0``: the log of a scaled product as a lower bound
    of its true value, without a ``log(0)`` in autograd (callers put ``-inf`` where the mask is false)."""
    pos = P > 0
    return pos, shift + nx.log(nx.where(pos, P, nx.ones(P.shape, type_as=P)))


def _numel(X):
    return int(np.prod(X.shape))


def _widened(nx, X):
    """A cast to float64 (differentiable on torch) when ``X`` is float32 or narrower on NumPy or torch
    (not on Apple's ``mps``, which has no float64); ``None`` otherwise."""
    if str(nx) == "torch":
        import torch

        if X.dtype in (torch.float32, torch.float16, torch.bfloat16) and X.device.type != "mps":
            return lambda Y: Y.to(torch.float64)
    elif str(nx) == "numpy" and X.dtype.kind == "f" and X.dtype.itemsize < 8:
        return lambda Y: np.asarray(Y, dtype=np.float64)
    return None


def skip_enabled():
    """Whether :func:`log_matmul` may skip provably negligible entries (``OT_MULTIMARGINAL_NO_SKIP`` unset or 0)."""
    return os.environ.get("OT_MULTIMARGINAL_NO_SKIP", "0") in ("", "0")


def negligible_entries(nx, P, ok, bad, out, shift, addend, q, prec, summed=False):
    r"""Mask of the underflowed entries of :func:`log_matmul` that are negligible in ``out + addend``.

    ``P`` is the scaled product (``ok`` where accurate, ``bad`` where to
    recompute), ``out`` its log (accurate where ``ok``) and ``shift = r1 + c2``.
    A flushed term of the product is below ``prec.flush`` and the rest is
    exact to rounding, so the true scaled sum is at most
    ``P (1 + 2 q eps) + q flush``: the bound ``u`` on an entry of
    ``W = out + addend``. An entry is negligible when ``u`` is below
    ``log(SKIP_REL / n_cols)`` plus the largest accurate entry of ``W`` in
    its row and below ``log(SKIP_REL / n_rows)`` plus that of its column
    (rows or columns with no accurate entry skip nothing); with ``summed``,
    when it is below ``log(SKIP_REL / (n_rows n_cols))`` plus the largest
    accurate entry of ``W``. Returns ``None`` when nothing is skipped.
    """
    skip = _negligible_mask(nx, P, ok, bad, out, shift, addend, q, prec, summed)
    if not bool(nx.any(skip)):
        return None
    return skip


def _negligible_mask(nx, P, ok, bad, out, shift, addend, q, prec, summed=False):
    """The mask of :func:`negligible_entries`, left on the device (no host read: usable in a deferred check)."""
    m, n = int(P.shape[0]), int(P.shape[1])
    Pd = nx.detach(P)
    R = nx.detach(addend)
    W = nx.where(ok, nx.detach(out) + R, nx.full(P.shape, -np.inf, type_as=Pd))
    rel = math.log(prec.eps) * 2.0  # SKIP_REL = eps**2
    if summed:
        lim = nx.max(W) + (rel - math.log(m * n))
    else:
        row = amax(nx, W, 1, keepdims=True) + (rel - math.log(n))
        col = amax(nx, W, 0, keepdims=True) + (rel - math.log(m))
        lim = nx.minimum(row, col)
    with np.errstate(divide="ignore"):
        u = nx.detach(shift) + nx.log(Pd * (1.0 + 2.0 * q * prec.eps) + q * prec.flush) + R
    return bad & (u < lim)


def _deferrable(nx):
    """Whether a certificate would be deferred now (:func:`~ot_multimarginal._backend.deferred_checks`)."""
    return str(nx) == "torch" and getattr(_DEFERRED, "checks", None) is not None


def log_matvec_exact(nx, A_cols, h):
    """``logsumexp(A_cols + h[:, None], axis=0)`` in chunks (fallback of :class:`EdgeKernel`)."""
    n, m = A_cols.shape
    step = max(1, _CHUNK // max(n, 1))
    if m <= step:
        return logsumexp(nx, A_cols + h[:, None], 0)
    parts = [logsumexp(nx, A_cols[:, s : s + step] + h[:, None], 0) for s in range(0, m, step)]
    return nx.concatenate(parts, axis=0)


def centred_log_kernel(C, offset, reg):
    """``-(C - offset)/reg``: the offset removed before the division (exact for a constant part of ``C``)."""
    return -(C - offset) / reg if offset != 0.0 else -C / reg


def edge_offsets(nx, matrices, cost_offset=None):
    """The constants removed from the edge matrices.

    ``None``: each one's minimum (0 for a non-negative matrix whose minimum is
    at most its range, :func:`.base.default_offset`); a sequence: one per
    edge; a number: split evenly.
    """
    if cost_offset is None:
        return default_offsets(nx, matrices)
    if isinstance(cost_offset, (list, tuple)):
        if len(cost_offset) != len(matrices):
            raise ValueError(
                "cost_offset must be a number or one offset per edge (%d), got %d" % (len(matrices), len(cost_offset))
            )
        return [float(c) for c in cost_offset]
    return [float(cost_offset) / len(matrices)] * len(matrices)


class EdgeKernel:
    r"""Messages across one edge with an absorbed, stabilised kernel.

    For the edge ``(a, b)`` with cost ``C`` (shape ``(n_a, n_b)``), centred by
    the constant ``offset``, and ``A = -(C - offset)/reg``, :meth:`message` returns
    ``log Σ_x exp(A[x, y] + h[x])`` (``forward=True``, from ``a`` to ``b``)
    or ``log Σ_y exp(A[x, y] + h[y])`` (from ``b`` to ``a``).

    The kernel ``K = exp(A + α[:, None] + β[None, :] - c)`` absorbs the last
    contexts ``α`` (side ``a``) and ``β`` (side ``b``) seen by messages in
    each direction (``c`` makes ``max K = 1``), so that near a fixed point
    ``K`` is the normalised pairwise marginal of the edge and the products
    ``Kᵀ exp(h - α - s)`` neither overflow nor underflow.
    """

    def __init__(self, C, reg, nx, prec, A=None, offset=0.0):
        self.C = C
        self.offset = float(offset)
        self.reg = reg
        self.nx = nx
        self.prec = prec
        self.A = A
        self.shape = tuple(int(n) for n in C.shape)
        self.K = None
        self.alpha = None
        self.beta = None
        self.c = None
        self.ctx = [None, None]
        self.n_absorptions = 0
        # drift (in log units) of the contexts beyond which an underflow
        # triggers a new absorption rather than a log-domain fallback
        self.drift_tol = 1.0

    def release(self):
        """Drop the absorbed kernel (rebuilt, with fresh absorptions, by the next message)."""
        self.K = self.alpha = self.beta = self.c = None
        self.ctx = [None, None]

    def log_kernel(self):
        """``-(C - offset)/reg`` (computed on demand unless given: it is needed only to absorb and in fallbacks)."""
        if self.A is not None:
            return self.A
        return centred_log_kernel(self.C, self.offset, self.reg)

    # ---- absorption ------------------------------------------------------
    def _fill(self, v, S, axis, other):
        """Finite version of the context ``v`` (``-inf`` entries re-levelled)."""
        nx = self.nx
        fin = nx.isfinite(v)
        if not bool(nx.any(~fin)):
            return v
        # slice maxima of S + other along the summed axis
        M = amax(nx, S + (other[None, :] if axis == 0 else other[:, None]), 1 - axis)
        zero = nx.zeros(v.shape, type_as=v)
        if bool(nx.any(fin)):
            level = nx.max(nx.where(fin, v + M, zero - np.inf))
        else:
            level = 0.0
        return nx.where(fin, v, level - M)

    def _absorb(self):
        nx = self.nx
        A = nx.detach(self.log_kernel())
        ha, hb = self.ctx
        if ha is None and hb is None:
            ha = nx.zeros((self.shape[0],), type_as=A)
        if hb is None:
            alpha = self._fill(ha, A, 0, nx.zeros((self.shape[1],), type_as=A))
            beta = -logsumexp(nx, A + alpha[:, None], 0)
        elif ha is None:
            beta = self._fill(hb, A, 1, nx.zeros((self.shape[0],), type_as=A))
            alpha = -logsumexp(nx, A + beta[None, :], 1)
        else:
            alpha = ha
            beta = self._fill(hb, A, 1, nx.where(nx.isfinite(ha), ha, nx.zeros(ha.shape, type_as=ha)))
            alpha = self._fill(ha, A, 0, beta)
        S = A + alpha[:, None] + beta[None, :]
        c = nx.max(S)
        if getattr(self.C, "requires_grad", False):
            self.K = flushed_exp(nx, self.log_kernel() + (alpha[:, None] + beta[None, :] - c), self.prec)
        else:
            self.K = flushed_exp(nx, S - c, self.prec)
        self.alpha, self.beta, self.c = alpha, beta, c
        self.n_absorptions += 1

    def _drift(self):
        nx = self.nx
        tot = 0.0
        for v, ref in zip(self.ctx, (self.alpha, self.beta)):
            if v is None:
                continue
            d = v - ref
            fin = nx.isfinite(d)
            if bool(nx.any(fin)):
                tot += float(nx.max(nx.abs(nx.where(fin, d, nx.zeros(d.shape, type_as=d)))))
        return tot

    # ---- messages --------------------------------------------------------
    def message(self, h, forward):
        """Log-message across the edge from the context ``h`` (see the class doc)."""
        nx = self.nx
        hd = nx.detach(h)
        self.ctx[0 if forward else 1] = hd
        if self.K is None:
            self._absorb()
        n_out = self.shape[1] if forward else self.shape[0]
        n_in = self.shape[0] if forward else self.shape[1]
        for attempt in range(2):
            shift_in = self.alpha if forward else self.beta
            shift_out = self.beta if forward else self.alpha
            d = hd - shift_in
            s = nx.max(d)
            fin = nx.isfinite(s)
            s0 = nx.where(fin, s, nx.zeros((), type_as=s))  # the product is computed before s is read
            u = flushed_exp(nx, h - (shift_in + s0), self.prec)
            y = nx.dot(u, self.K) if forward else nx.dot(self.K, u)
            ok = y >= n_in * self.prec.factor
            if attempt == 0 and _deferrable(nx):
                # sync-free sweeps (strategies.cyclic): the certificate "no mass, or every entry accurate" stays
                # on the device; a context with no mass gives y = 0, i.e. -inf entries, without a branch
                if defer_check(nx, ~fin | ~nx.any(~ok), "EdgeKernel.message"):
                    pos = y > 0
                    out = ((self.c + s0) - shift_out) + nx.log(nx.where(pos, y, nx.ones(y.shape, type_as=y)))
                    return nx.where(pos, out, nx.full(y.shape, -np.inf, type_as=y))
            # one host synchronisation for both questions: any mass at all, every entry accurate?
            has_mass, all_ok = (bool(v) for v in nx.to_numpy(nx.stack([fin, ~nx.any(~ok)])))
            if not has_mass:  # all -inf: the subtree has no mass
                return nx.full((n_out,), -np.inf, type_as=h)
            base = (self.c + s) - shift_out
            if all_ok:
                return base + nx.log(y)
            if attempt == 0 and self._drift() > self.drift_tol:
                self._absorb()
                continue
            break
        out = base + nx.log(nx.where(ok, y, nx.ones(y.shape, type_as=y)))
        idx = np.nonzero(nx.to_numpy(~ok))[0]
        A = self.log_kernel()
        ii = index_array(nx, idx, y)
        if forward:
            vals = log_matvec_exact(nx, A[:, ii], h)
        else:
            vals = log_matvec_exact(nx, A[ii, :].T, h)
        S = nx.full(y.shape, -np.inf, type_as=y)
        S[ii] = vals
        return nx.where(ok, out, S)


class PairwiseEngine(GibbsEngine):
    """Common part of the engines of pairwise costs on a graph.

    Parameters
    ----------
    shape : tuple of k ints
    edges : list of pairs ``(a, b)``
    matrices : list of arrays, ``matrices[e]`` of shape ``(n_a, n_b)`` (the costs ``C_ab``)
    reg : float
    nx : Backend
    memory_budget : int or None
        Bytes the dense fallbacks (:meth:`log_plan`, :meth:`plan`) may take.
    cost_offset : float, sequence of floats, or None
        Constants removed from the edge matrices (see :mod:`.base`): one per
        edge, or a number split evenly between the edges; ``None`` (default):
        each edge matrix's minimum (or 0, :func:`.base.default_offset`), so
        that every centred kernel is ``<= 1``.
        ``edge_offsets`` holds them, ``cost_offset`` their sum.

    Subclasses implement :meth:`log_marginal` and :meth:`log_pairwise_marginal`;
    :meth:`iter_edge_log_pairwise_marginals` may be overridden to share work.
    """

    def __init__(self, shape, edges, matrices, reg, nx, memory_budget=None, cost_offset=None):
        self.shape = tuple(int(n) for n in shape)
        self.edges = [tuple(int(v) for v in e) for e in edges]
        self.matrices = list(matrices)
        if not self.edges or len(self.edges) != len(self.matrices):
            raise ValueError(
                "a pairwise engine needs one matrix per edge and at least one edge, got %d edges and %d matrices"
                % (len(self.edges), len(self.matrices))
            )
        self.reg = float(reg)
        self.nx = nx
        self.type_as = self.matrices[0] if self.matrices else None
        self.memory_budget = memory_budget
        self.prec = Precision(self.type_as)
        self.n_absorptions = 0
        self._logK = [None] * len(self.matrices)
        self.edge_offsets = edge_offsets(nx, self.matrices, cost_offset)
        self.cost_offset = float(sum(self.edge_offsets))

    # ---- helpers ------------------------------------------------------
    _cache_log_kernels = True

    def _log_kernel(self, e):
        """``-(C_e - c_e)/reg``, centred (cached unless the engine keeps only its kernels)."""
        if not self._cache_log_kernels:
            return centred_log_kernel(self.matrices[e], self.edge_offsets[e], self.reg)
        if self._logK[e] is None:
            self._logK[e] = centred_log_kernel(self.matrices[e], self.edge_offsets[e], self.reg)
        return self._logK[e]

    def release_caches(self):
        self._logK = [None] * len(self.matrices)
        for kernel in getattr(self, "kernels", ()):
            kernel.release()

    def _oriented_log_kernel(self, e, a):
        """``-(C_e - c_e)/reg`` with rows indexed by node ``a`` (one end of edge ``e``)."""
        A = self._log_kernel(e)
        return A if self.edges[e][0] == a else A.T

    def _check_pair(self, i, j):
        k = self.k
        for name, v in (("i", i), ("j", j)):
            if not (0 <= int(v) < k):
                raise ValueError("%s must be a node in [0, %d), got %r" % (name, k, v))
        if i == j:
            raise ValueError("a pairwise marginal needs two different nodes, got i = j = %d" % i)

    # ---- protocol -----------------------------------------------------
    def log_plan(self, g):
        """The dense ``log B(g)`` (raises ``MemoryError`` when over the memory budget)."""
        nx = self.nx
        check_dense_size(
            self.shape, nx.bitsize(self.type_as) // 8, 2, self.memory_budget, "the dense plan", nx, self.type_as
        )
        L = outer_sum(nx, list(g))
        k = self.k
        for e, (a, b) in enumerate(self.edges):
            sh = [1] * k
            sh[a], sh[b] = self.shape[a], self.shape[b]
            A = self._log_kernel(e)
            if a > b:
                A = A.T
            L = L + nx.reshape(A, tuple(sh))
        return L

    def plan(self, g, a_s=None, free=()):
        """A :class:`~ot_multimarginal.plans.FactoredPlan` with target weights ``a_s`` and free nodes ``free``.

        The tensor is never formed.
        """
        from ..plans import FactoredPlan

        return FactoredPlan(self, list(g), a_s, free=free)

    def edge_log_pairwise_marginals(self, g):
        """``[log P_e]`` for every edge ``e = (a, b)``, each of shape ``(n_a, n_b)``."""
        return list(self.iter_edge_log_pairwise_marginals(g))

    def iter_edge_log_pairwise_marginals(self, g):
        """The same, one edge at a time (the engines share work between edges)."""
        for a, b in self.edges:
            yield self.log_pairwise_marginal(g, a, b)

    def iter_edge_log_pairwise_marginals_for_sums(self, g):
        """:meth:`iter_edge_log_pairwise_marginals` for consumers that only sum the exponentials.

        Every row and column sum of each ``exp(L_e)`` is exact to ``eps**2``
        relative; engines may return the entries negligible next to their
        row's and column's largest as lower bounds (see
        :meth:`.base.GibbsEngine.pairwise_marginal`). Default: the exact ones.
        """
        return self.iter_edge_log_pairwise_marginals(g)

    def linear_cost(self, g):
        """``Σ_e ⟨C_e - c_e, P_e⟩ + c_0 ‖B(g)‖₁`` over the pairwise marginals ``P_e`` of ``B(g)``.

        One mass for the offset: edge offsets of opposite signs cancel in
        ``c_0 = Σ_e c_e`` exactly, not through masses computed edge by edge.
        """
        nx = self.nx
        total = mass = 0.0
        pairs = self.iter_edge_log_pairwise_marginals_for_sums(g)
        for e, (C, c, L) in enumerate(zip(self.matrices, self.edge_offsets, pairs)):
            P = nx.exp(L)
            total = total + nx.sum((C - c) * P if c != 0.0 else C * P)
            if e == 0:
                mass = nx.sum(P)
        return total + self.cost_offset * mass if self.cost_offset != 0.0 else total

    def cost_inputs(self):
        return tuple(self.matrices)

    def cost_gradients(self, g):
        """Each edge's pairwise marginal of ``B(g)/‖B(g)‖₁`` (``= ∂value/∂C_e`` at the optimum)."""
        nx = self.nx
        logZ = self.log_mass(g)
        return tuple(nx.exp(L - logZ) for L in self.iter_edge_log_pairwise_marginals(g))

    def _init_kwargs(self):
        return {}

    def rebind(self, matrices):
        """The same engine (graph, sizes, ``reg``, options) on new edge matrices of the same shapes.

        For repeated one-shot use on fresh costs of one graph (the mini-batches
        of :mod:`ot_multimarginal.neural`): no validation pass, and the
        graph-only structures that are cached by graph and sizes (the
        contraction engine's elimination plans) are reused. The edge offsets
        (:mod:`.base`) are this engine's: they are only a constant removed
        before the division by ``reg`` and added back to the log-partition,
        so any value is exact, and keeping them spares the host
        synchronisation that computing new ones would take (on a GPU).
        """
        matrices = list(matrices)
        if len(matrices) != len(self.matrices) or any(
            tuple(M.shape) != tuple(O.shape) for M, O in zip(matrices, self.matrices)
        ):
            raise ValueError(
                "rebind needs %d matrices of shapes %s, got shapes %s"
                % (len(self.matrices), [tuple(O.shape) for O in self.matrices], [tuple(M.shape) for M in matrices])
            )
        return type(self)(
            self.shape,
            self.edges,
            matrices,
            self.reg,
            self.nx,
            self.memory_budget,
            cost_offset=list(self.edge_offsets),
            **self._init_kwargs(),
        )

    def detached(self):
        nx = self.nx
        return type(self)(
            self.shape,
            self.edges,
            [nx.detach(C) for C in self.matrices],
            self.reg,
            nx,
            self.memory_budget,
            cost_offset=list(self.edge_offsets),
            **self._init_kwargs(),
        )

    def __repr__(self):
        return "%s(k=%d, shape=%s, %d edges, reg=%g)" % (
            type(self).__name__,
            self.k,
            self.shape,
            len(self.edges),
            self.reg,
        )
