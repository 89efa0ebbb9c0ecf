# -*- coding: utf-8 -*-
r"""One-shot log-partition of a complete graph: one chunked matrix product of scaled edge kernels.

On the complete graph every elimination order of
:mod:`.contraction` forms a factor with :math:`k - 1` axes, and its log-domain
steps pay several passes of exponentials, logs, shifts and additions over
such :math:`n^{k-1}`-sized factors for every :math:`n^{k}` multiply-adds. For
the *total mass* alone (the mini-batch losses of :mod:`ot_multimarginal.neural`)
this module takes one matrix product instead. With two *outer* nodes
:math:`o, o'` and the others :math:`S`,

.. math::
    Z = \sum_{x_o, x_{o'}} W[x_o, x_{o'}] \, P[x_o, x_{o'}], \qquad
    P = E_0 E_1 = \sum_{x_S} E_0[x_o, x_S] \, E_1[x_S, x_{o'}],

where :math:`E_0` is the product of the kernels of the edges inside
:math:`\{o\} \cup S` (with the scalings :math:`e^{g_s}`, :math:`s \in S`,
folded into the edges :math:`(o, s)`), :math:`E_1` that of the edges
:math:`(s, o')`, and :math:`W` holds :math:`e^{g_o}`, :math:`e^{g_{o'}}`, the
kernel of the edge :math:`(o, o')` and the shifts. Every edge kernel is
exponentiated once (``O(n^2)`` exponentials), *max-shifted*: the edges
:math:`(o, s)` by their row maxima (per :math:`x_o`), the edges
:math:`(s, o')` by their column maxima (per :math:`x_{o'}`), the edges inside
:math:`S` by their maximum; the shifts go to :math:`W`, itself normalised
by its maximum. Every factor is then in :math:`[0, 1]`.

:math:`E_0` and :math:`E_1` are never formed whole: the product runs over
chunks of the first node of :math:`S`, each chunk of
:math:`E_0` and :math:`E_1` built by broadcast multiplications small enough
to stay in cache, and accumulated into :math:`P` by one matrix product
(``n^k`` multiply-adds in all, about ``(|E| - 2) n^{k-1}`` multiplications in
cache, ``O(n^2 + chunk)`` memory). On torch the gradient (a custom autograd
function) rebuilds the chunks and takes two more products per chunk,
:math:`G E_1^\top` and :math:`E_0^\top G`; the gradient of each log-kernel is
a sum of :math:`(G E_1^\top) \circ E_0` (or :math:`(E_0^\top G) \circ E_1`)
over the axes it lacks — no division, exact also where a factor is zero.

**Exactness.** Exponentials below the dtype's flush threshold
(:class:`._pairwise.Precision`) are set to zero and products of factors may
fall below it; each of the :math:`q = \prod_{s \in S} n_s` terms of an entry
of :math:`P` is then off by at most ``m · flush`` (``m`` factors per term),
so :math:`Z` is accurate to the working precision when
:math:`Z\,\mathrm{eps} \ge q\, m\, \mathrm{flush} \sum W` (the scaled
:math:`Z` and :math:`W`). The caller checks this one inequality (a single host
synchronisation) and otherwise takes the exact log-domain contraction: the
scaling is global, so at a small ε in float32 a batch whose dominant
tuples lie far from every factor's maximum falls back; the values and
gradients returned are never those of an underflowed product.
"""
# License: MIT License

import numpy as np

from .._backend import defer_check
from ._pairwise import finite_max, flushed_exp

__all__ = ["complete_split", "split_log_mass"]

# entries of a chunk of E_0 (and of E_1): the operands of a chunk's product stay in cache (L2/L3);
# 2^18 measured best of 2^13..2^20 for k = 4, b = 64..256 (float32, one thread)
_CHUNK_ENTRIES = 1 << 18


def complete_split(shape, edges):
    """The split of a complete graph, or ``None`` when ``edges`` is not one complete graph on ``k >= 3`` nodes.

    Returns ``(o, o2, S, inner, outer, w_edge)``: the outer nodes (the two
    largest), the others (largest first: the chunked one), the edges inside
    ``{o} ∪ S`` as ``(e, u, v)`` (``u`` before ``v`` on the axes of
    :math:`E_0`: ``o`` first, then ``S`` in order), the edges ``(e, s)``
    between ``S`` and ``o2``, and the index of the edge ``(o, o2)`` (in ``W``).
    """
    k = len(shape)
    pairs = [(min(a, b), max(a, b)) for a, b in edges]
    if k < 3 or len(set(pairs)) != len(pairs) or len(pairs) != k * (k - 1) // 2:
        return None
    order = sorted(range(k), key=lambda v: (-shape[v], v))
    o, o2 = order[0], order[1]
    S = order[2:]
    pos = {o: 0}
    pos.update({s: j + 1 for j, s in enumerate(S)})
    inner, outer, w_edge = [], [], None
    for e, (a, b) in enumerate(pairs):
        if {a, b} == {o, o2}:
            w_edge = e
        elif o2 in (a, b):
            outer.append((e, a if b == o2 else b))
        else:
            u, v = (a, b) if pos[a] < pos[b] else (b, a)
            inner.append((e, u, v))
    return o, o2, S, inner, outer, w_edge


def _oriented(A, edge, u):
    """The matrix ``A`` of ``edge`` with rows indexed by its end ``u``."""
    return A if edge[0] == u else A.T


class _Layout:
    """Axes of the chunks: :math:`E_0` on ``(o, S...)``, :math:`E_1` on ``(S..., o2)``; chunks over ``S[0]``."""

    def __init__(self, shape, o, o2, S, scopes0, scopes1):
        self.n0, self.n1 = shape[o], shape[o2]
        self.Sn = [shape[s] for s in S]
        self.q = int(np.prod(self.Sn))
        pos0 = {o: 0}
        pos0.update({s: j + 1 for j, s in enumerate(S)})
        pos1 = {s: j for j, s in enumerate(S)}
        pos1[o2] = len(S)
        self.full0 = [self.n0] + self.Sn
        self.full1 = self.Sn + [self.n1]
        self.ax0 = [(pos0[u], pos0[v]) for u, v in scopes0]  # u before v
        self.ax1 = [(pos1[s], pos1[o2]) for _, s in scopes1]
        rest = int(np.prod(self.Sn[1:])) if len(self.Sn) > 1 else 1
        per = max(self.n0, self.n1) * rest  # entries of a chunk per value of S[0]
        self.step = max(1, min(self.Sn[0], _CHUNK_ENTRIES // max(per, 1)))

    def chunks(self):
        return [(s, min(self.Sn[0], s + self.step)) for s in range(0, self.Sn[0], self.step)]

    @staticmethod
    def _view(nx, E, axes, full, chunk_axis, lo, hi):
        """``E`` (2-D, rows on ``axes[0]``) on the axes ``full`` of a chunk, sliced on ``chunk_axis``."""
        a, b = axes
        if a == chunk_axis:
            E = E[lo:hi]
        elif b == chunk_axis:
            E = E[:, lo:hi]
        sh = [1] * len(full)
        sh[a], sh[b] = E.shape[0], E.shape[1]
        return nx.reshape(E, tuple(sh))

    @staticmethod
    def _product(nx, views, full):
        X = views[0]
        for V in views[1:]:
            if tuple(X.shape) == full:
                X *= V  # a fresh full-size chunk: in place
            else:
                X = X * V
        if tuple(X.shape) != full:
            X = X * nx.ones(full, type_as=X)
        return X

    def chunk(self, nx, E0, E1, lo, hi):
        """``(E_0, E_1)`` of the chunk ``S[0] in [lo, hi)`` as ``(n0, m)`` and ``(m, n1)`` matrices."""
        f0 = list(self.full0)
        f0[1] = hi - lo
        f1 = list(self.full1)
        f1[0] = hi - lo
        X0 = self._product(nx, [self._view(nx, E, ax, f0, 1, lo, hi) for E, ax in zip(E0, self.ax0)], tuple(f0))
        X1 = self._product(nx, [self._view(nx, E, ax, f1, 0, lo, hi) for E, ax in zip(E1, self.ax1)], tuple(f1))
        return nx.reshape(X0, (self.n0, -1)), nx.reshape(X1, (-1, self.n1)), tuple(f0), tuple(f1)


def _matmul_into(nx, P, A, B):
    """``P += A @ B`` (in place: one buffer for the accumulation)."""
    if str(nx) == "torch":
        return P.addmm_(A, B)
    P += A @ B
    return P


def _split_product(nx, layout, E0, E1):
    """:math:`P = E_0 E_1`, in chunks."""
    P = nx.zeros((layout.n0, layout.n1), type_as=E0[0])
    for lo, hi in layout.chunks():
        A0, A1, _, _ = layout.chunk(nx, E0, E1, lo, hi)
        P = _matmul_into(nx, P, A0, A1)
    return P


def _reduce_to(nx, H, axes, chunk_axis, lo, hi, grad):
    """Add the sum of ``H`` over every axis but ``axes`` (as ``(rows, cols)``) to ``grad`` (sliced on the chunk)."""
    a, b = axes
    others = tuple(i for i in range(H.ndim) if i not in axes)
    R = nx.sum(H, axis=others) if others else H  # rows: axis a (a < b)
    if a == chunk_axis:
        grad[lo:hi] += R
    elif b == chunk_axis:
        grad[:, lo:hi] += R
    else:
        grad += R


def _split_product_backward(nx, layout, E0, E1, G):
    """Gradients of ``<G, E_0 E_1>`` with respect to the *log* of every factor (torch)."""
    g0 = [nx.zeros(E.shape, type_as=E) for E in E0]
    g1 = [nx.zeros(E.shape, type_as=E) for E in E1]
    for lo, hi in layout.chunks():
        A0, A1, f0, f1 = layout.chunk(nx, E0, E1, lo, hi)
        H0 = (G @ A1.T).mul_(A0).reshape(f0)
        H1 = (A0.T @ G).mul_(A1).reshape(f1)
        for grad, ax in zip(g0, layout.ax0):
            _reduce_to(nx, H0, ax, 1, lo, hi, grad)
        for grad, ax in zip(g1, layout.ax1):
            _reduce_to(nx, H1, ax, 0, lo, hi, grad)
    return g0, g1


_FUNCTION = None


def _autograd_function():
    """The torch autograd function of :math:`P = E_0 E_1` on log-factors (built on first use)."""
    global _FUNCTION
    if _FUNCTION is not None:
        return _FUNCTION
    import torch
    from ot.backend import get_backend

    class SplitProduct(torch.autograd.Function):
        @staticmethod
        def forward(ctx, layout, prec, n_first, *logs):
            nx = get_backend(logs[0])
            E = [flushed_exp(nx, L, prec).contiguous() for L in logs]
            ctx.layout, ctx.n_first = layout, n_first
            ctx.save_for_backward(*E)
            return _split_product(nx, layout, E[:n_first], E[n_first:])

        @staticmethod
        @torch.autograd.function.once_differentiable
        def backward(ctx, G):
            E = ctx.saved_tensors
            nx = get_backend(G)
            g0, g1 = _split_product_backward(nx, ctx.layout, E[: ctx.n_first], E[ctx.n_first :], G.contiguous())
            return (None, None, None) + tuple(g0) + tuple(g1)

    _FUNCTION = SplitProduct
    return _FUNCTION


def split_log_mass(nx, shape, edges, log_kernel, g, prec, split):
    r"""``log Σ_I exp(⊕g + Σ_e A_e)`` for a complete graph (``A_e = log_kernel(e)``), or ``None``.

    ``split`` is :func:`complete_split` of the graph. ``None`` means that the
    scaled product cannot certify the working precision (see the module
    docstring): the caller takes the log domain instead.
    """
    o, o2, S, inner, outer, w_edge = split
    # the shifts: per x_o (rows), per x_o2 (cols) and one constant, all detached
    rows = nx.zeros((shape[o], 1), type_as=g[o])
    cols = nx.zeros((1, shape[o2]), type_as=g[o])
    const = 0.0
    L0, L1 = [], []
    for e, u, v in inner:
        A = _oriented(log_kernel(e), edges[e], u)
        if u == o:  # edge (o, s): the scaling of s folded in, shifted per row
            A = A + g[v][None, :]
            r = finite_max(nx, A, 1)
            rows = rows + r
        else:  # inside S: one shift
            r = finite_max(nx, nx.reshape(A, (-1,)), 0)
            const = const + r
        L0.append(A - r)
    for e, s in outer:
        A = _oriented(log_kernel(e), edges[e], s)
        c = finite_max(nx, A, 0)
        cols = cols + c
        L1.append(A - c)
    W = _oriented(log_kernel(w_edge), edges[w_edge], o) + g[o][:, None] + g[o2][None, :] + (rows + cols + const)
    mW = finite_max(nx, nx.reshape(W, (-1,)), 0)
    w = nx.exp(W - mW)
    layout = _Layout(shape, o, o2, S, [(u, v) for _, u, v in inner], outer)
    if str(nx) == "torch":
        P = _autograd_function().apply(layout, prec, len(L0), *L0, *L1)
    else:
        E = [flushed_exp(nx, L, prec) for L in L0 + L1]
        P = _split_product(nx, layout, E[: len(L0)], E[len(L0) :])
    Z = nx.sum(w * P)
    m = len(L0) + len(L1)
    # one host synchronisation (deferred in a training step, see _backend.deferred_checks):
    # is the scaled sum above its error bound?
    ok = nx.detach(Z) * prec.eps >= (layout.q * m * prec.flush) * nx.sum(nx.detach(w))
    if defer_check(nx, ok, "split_log_mass"):
        return nx.log(Z) + nx.reshape(mW, ())
    if not bool(nx.to_numpy(ok)):
        return None
    return nx.log(Z) + nx.reshape(mW, ())
