# -*- coding: utf-8 -*-
r"""Rounding an approximate plan onto the exact transport polytope.

A Sinkhorn-type solver stopped early returns a plan :math:`X = B(g)` whose
marginals :math:`r_j(X)` are only close to the targets :math:`a_j`. The
rounding of Altschuler, Weed & Rigollet (2017, Algorithm 2), extended to k
marginals by Lin, Ho, Cuturi & Jordan (2022, Algorithm 4), turns it into a
plan :math:`Y` with *exactly* the marginals :math:`a_j`:

.. code-block:: text

    X' ← X
    for j = 1..k (each step uses the current X'):
        scale axis j of X' by z_j = min(1, a_j / r_j(X'))
    err_j ← a_j − r_j(X')          (≥ 0)
    s     ← ‖err_1‖₁
    Y     ← X' + (err_1 ⊗ … ⊗ err_k) / s^{k−1}      (nothing added if s = 0)

Guarantees: :math:`Y \ge 0`, :math:`r_j(Y) = a_j` and
:math:`\|Y - X\|_1 \le 2 \sum_j \|r_j(X) - a_j\|_1`, hence
:math:`|\langle C, Y\rangle - \langle C, X\rangle| \le 2\|C\|_\infty \sum_j \|r_j(X) - a_j\|_1`.

When the plan is a Gibbs tensor :math:`B(g) = \exp(\oplus_j g_j - C/\varepsilon)`
the scaling of axis j is the shift :math:`g_j \leftarrow g_j + \min(0, \log a_j - \log r_j)`,
so :func:`round_to_feasible` never forms the tensor: it costs k + 1
marginalisations of the engine (the same passes a Sinkhorn sweep makes) and
returns the rounded plan in factored form, a Gibbs part :math:`B(g')` plus a
rank-one part (see :class:`ot_multimarginal.plans.FactoredPlan`).

Exactness of the marginals needs every :math:`a_j` to have the same total
mass (1 for the validated weights of the public calls): the rank-one part has
marginals :math:`\mathrm{err}_j \prod_{l \ne j}\|\mathrm{err}_l\|_1 / s^{k-1}`,
which is :math:`\mathrm{err}_j` only when all :math:`\|\mathrm{err}_l\|_1`
agree, which they do exactly when the masses agree.

**Free nodes.** When some marginals are free (not prescribed, see
:func:`ot_multimarginal.emot_sinkhorn`), only the prescribed ones are
rounded: the scaling steps run over the prescribed axes, and on a free axis
``i`` the rank-one part uses the current free marginal made a probability
vector, :math:`\mathrm{err}_i = s\, r_i(X')/\|r_i(X')\|_1` (so that
:math:`\|\mathrm{err}_i\|_1 = s` like the others and the formula for
:math:`Y` is unchanged). The prescribed marginals of :math:`Y` are then
exact; a free marginal is whatever the plan gives.
"""
# License: MIT License

from __future__ import annotations

from collections import namedtuple
from typing import Any, Sequence

from ._backend import axes_except, expand_to, safe_log, to_float
from ._typing import Array
from ._validation import backend_of, check_free, check_log_scalings, check_plan_tensor, check_weights, describe

__all__ = [
    "RoundedState",
    "round_to_feasible",
    "round_dense",
    "rank_one_marginal_scale",
    "rank_one_cost",
    "rounded_linear_cost",
    "cost_contract",
    "outer_product",
]


RoundedState = namedtuple("RoundedState", ["g", "errs", "s"])
RoundedState.__doc__ = r"""A rounded plan in factored form: :math:`Y = B(g) + (\otimes_j\,\mathrm{err}_j)/s^{k-1}`.

The named tuple ``(g, errs, s)`` returned by :func:`round_to_feasible`;
:math:`B(g) = \exp(\oplus_j g_j - C/\varepsilon)` is the Gibbs tensor of
the engine. Pass it to :class:`~ot_multimarginal.FactoredPlan` as
``FactoredPlan(engine, state.g, a_s, rounded=state)`` (what
:meth:`FactoredPlan.round <ot_multimarginal.FactoredPlan.round>` does).

Parameters
----------
g : list of k arrays
    Log-scalings of the Gibbs part (the input ones, shifted down where a
    marginal was too large; ``-inf`` where the target weight is 0).
errs : list of k arrays
    The non-negative marginal deficits :math:`\mathrm{err}_j = (a_j - r_j(B(g)))_+`
    (on a free axis: :math:`s` times the normalised marginal :math:`r_j/\|r_j\|_1`).
s : backend scalar
    :math:`\|\mathrm{err}_1\|_1`, the mass of the rank-one part (0: no rank-one part).

See Also
--------
round_to_feasible : computes it.
"""
RoundedState.g.__doc__ = "Log-scalings of the Gibbs part (list of k arrays)."
RoundedState.errs.__doc__ = "Marginal deficits of the rank-one part (list of k non-negative arrays)."
RoundedState.s.__doc__ = "Mass of the rank-one part (backend scalar; 0: none)."


def _zeros_like(nx, x):
    return nx.zeros(x.shape, type_as=x)


def _check_a_s(engine, a_s):
    if not isinstance(a_s, (list, tuple)) or len(a_s) != engine.k:
        raise ValueError("a_s must be a list of %d weight vectors (one per marginal)" % engine.k)
    for i, (a, n) in enumerate(zip(a_s, engine.shape)):
        if tuple(a.shape) != (n,):
            raise ValueError("a_s[%d] must have shape (%d,), got %s" % (i, n, tuple(a.shape)))


def _free_axis_part(nx, r, s):
    """``s · r/‖r‖₁``: the rank-one part's vector on a free axis (uniform if ``r`` has no mass)."""
    total = nx.sum(r)
    if to_float(nx, total) > 0:
        return s * (r / total)
    return s * (nx.ones(r.shape, type_as=r) / r.shape[0])


def round_to_feasible(engine: Any, g: Sequence[Array], a_s: Sequence[Array], free: Sequence[int] = ()) -> RoundedState:
    r"""Round the plan :math:`B(g)` onto :math:`\Pi(a_1, \dots, a_k)`, in factored form.

    The k-marginal rounding of Altschuler et al. (2017) / Lin et al. (2022),
    done on the log-scalings: for :math:`j = 1..k` in turn,
    :math:`g_j \leftarrow g_j + \min(0, \log a_j - \log r_j(B(g)))` (with the
    current :math:`g`), then :math:`\mathrm{err}_j = (a_j - r_j(B(g)))_+` and
    :math:`s = \|\mathrm{err}_1\|_1`. The rounded plan is
    :math:`Y = B(g) + (\mathrm{err}_1 \otimes \dots \otimes \mathrm{err}_k)/s^{k-1}`.

    It costs k + 1 marginal passes of ``engine`` and never forms the tensor
    (for any engine: dense, tree, cycle, ...).

    Parameters
    ----------
    engine : GibbsEngine
        The engine of the cost (:func:`ot_multimarginal.sinkhorn.make_engine`).
    g : list of k arrays
        Log-scalings of the plan to round; :math:`B(g)` need not be normalised.
    a_s : list of k arrays
        Target weights (non-negative, all of the same total mass, e.g. the
        validated weights returned by ``make_engine``). Zero weights are
        allowed: the matching entries of ``g`` become ``-inf``. Entries of
        free nodes are not used (give the reference weights).
    free : sequence of int, optional
        Free nodes: their marginals are not rounded; the rank-one part uses
        their current marginal, normalised (see the module docstring).

    Returns
    -------
    state : RoundedState
        ``(g, errs, s)``: the rounded plan is
        ``FactoredPlan(engine, state.g, a_s, rounded=state)``
        (see :class:`~ot_multimarginal.FactoredPlan`), its cost
        ``ot_multimarginal.rounding.rounded_linear_cost``.

    Notes
    -----
    :math:`Y \ge 0`, its marginals are the :math:`a_j` (to rounding error,
    when the masses of the :math:`a_j` agree) and
    :math:`\|Y - B(g)\|_1 \le 2\sum_j \|r_j(B(g)) - a_j\|_1`.

    References
    ----------
    .. [1] J. Altschuler, J. Weed, P. Rigollet, Near-linear time approximation
       algorithms for optimal transport via Sinkhorn iteration, NeurIPS 2017.
    .. [2] T. Lin, N. Ho, M. Cuturi, M. I. Jordan, On the complexity of
       approximating multimarginal optimal transport, JMLR 23(65), 2022.
    """
    nx = engine.nx
    _check_a_s(engine, a_s)
    g = check_log_scalings(g, engine.shape)
    free = check_free(free, engine.k)
    prescribed = [j for j in range(engine.k) if j not in free]
    g = list(g)
    for j in prescribed:
        lr = engine.log_marginal(g, j)
        la = safe_log(nx, a_s[j])
        zero = _zeros_like(nx, lr)
        # min(0, log a_j - log r_j): only where the marginal is too large. Where
        # r_j = 0 nothing changes (z_j = 1); where a_j = 0 < r_j the shift is -inf.
        lr_safe = nx.where(nx.isfinite(lr), lr, zero)
        shift = nx.where(lr > la, la - lr_safe, zero)
        g[j] = g[j] + shift
    r = [nx.exp(lr) for lr in engine.log_marginals(g)]
    errs = _deficits(nx, r, a_s, prescribed, free)
    return RoundedState(g=g, errs=errs, s=nx.sum(errs[prescribed[0]]))


def _deficits(nx, r, a_s, prescribed, free):
    """``errs`` of the rounding from the marginals ``r`` after the scaling steps."""
    errs = list(r)
    for j in prescribed:
        d = a_s[j] - r[j]
        errs[j] = nx.where(d > 0, d, _zeros_like(nx, d))
    s = nx.sum(errs[prescribed[0]])
    for j in free:
        errs[j] = _free_axis_part(nx, r[j], s)
    return errs


def _has_rank_one(nx, s):
    return s is not None and float(nx.to_numpy(nx.detach(s))) > 0


def rank_one_marginal_scale(nx, errs, s, skip=()):
    r""":math:`\prod_{l \notin \text{skip}} \|\mathrm{err}_l\|_1 / s^{k-1}` (0 when ``s = 0``).

    The marginal of the rank-one part :math:`(\otimes_l\,\mathrm{err}_l)/s^{k-1}`
    on the axes ``skip`` is the outer product of their ``errs`` times this
    scalar (1 for one axis when the masses agree, :math:`1/s` for two).
    """
    k = len(errs)
    if not _has_rank_one(nx, s):
        return 0.0 * s
    # written with the ratios ‖err_l‖/s ≈ 1 so that nothing under- or overflows
    # (s^{k-1} alone underflows in float32 for small s)
    out = s ** (1 - len(skip)) if len(skip) != 1 else 1.0
    for l in range(k):
        if l not in skip:
            out = out * (nx.sum(errs[l]) / s)
    return out


def cost_contract(engine, vecs):
    r""":math:`\langle C, v_1 \otimes \dots \otimes v_k\rangle` for the cost of ``engine``.

    Used for the rank-one part of a rounded plan. In order of preference:

    - ``engine.contract_cost(vecs)`` if the engine defines it;
    - pairwise costs (engines with ``edges`` and ``matrices`` attributes, or
      ``edges`` and one matrix per edge in ``cost_inputs()``):
      :math:`\sum_{(a,b)} v_a^\top C_{ab} v_b \prod_{l\ne a,b} \mathbf 1^\top v_l`
      (each :math:`C_{ab}` centred by the engine's ``edge_offsets``, their sum
      times :math:`\prod_l \mathbf 1^\top v_l` added once);
    - a dense cost tensor (``engine.M``, or the single entry of
      ``cost_inputs()``): k matrix-vector products over the tensor;
    - otherwise the dense cost :math:`C = c_0 - \varepsilon \log B(0)` from
      ``engine.log_plan`` and ``engine.cost_offset`` (only for tensors that fit in memory).
    """
    nx = engine.nx
    k = engine.k
    if hasattr(engine, "contract_cost"):
        return engine.contract_cost(vecs)
    mats = _edge_matrices(engine)
    if mats is not None:
        sums = [nx.sum(v) for v in vecs]
        # edges centred by the engine's offsets, their sum added once: offsets of
        # opposite signs cancel exactly (see ot_multimarginal.marginals.base)
        offsets = getattr(engine, "edge_offsets", None) or [0.0] * len(mats)
        total = 0.0
        for (a, b), C, c in zip(engine.edges, mats, offsets):
            term = nx.sum(vecs[a] * nx.dot(C - c if c != 0.0 else C, vecs[b]))
            for l in range(k):
                if l != a and l != b:
                    term = term * sums[l]
            total = total + term
        c0 = float(sum(offsets))
        if c0 != 0.0:
            mass = sums[0]
            for v in sums[1:]:
                mass = mass * v
            total = total + c0 * mass
        return total
    M = _dense_cost(engine)
    T = M
    for j in reversed(range(k)):
        T = nx.dot(nx.reshape(T, (-1, engine.shape[j])), vecs[j])
    return nx.reshape(T, ())


def _edge_matrices(engine):
    """The per-edge cost matrices of a pairwise engine, or ``None``."""
    edges = getattr(engine, "edges", None)
    if edges is None:
        return None
    mats = getattr(engine, "matrices", None)
    if mats is None:
        try:
            mats = engine.cost_inputs()
        except NotImplementedError:
            return None
    mats = list(mats)
    edges = list(edges)
    if len(mats) != len(edges):
        return None
    for (a, b), C in zip(edges, mats):
        if tuple(C.shape) != (engine.shape[a], engine.shape[b]):
            return None
    return mats


def _dense_cost(engine):
    """The dense cost tensor of ``engine`` (``M``, the only cost input, or from ``log_plan``)."""
    M = getattr(engine, "M", None)
    if M is not None and tuple(M.shape) == tuple(engine.shape):
        return M
    try:
        inputs = engine.cost_inputs()
    except NotImplementedError:
        inputs = ()
    if len(inputs) == 1 and tuple(inputs[0].shape) == tuple(engine.shape):
        return inputs[0]
    nx = engine.nx
    zeros = [nx.zeros((n,), type_as=engine.type_as) for n in engine.shape]
    # log_plan is that of the centred cost C - c_0 (see ot_multimarginal.marginals.base)
    return -engine.reg * engine.log_plan(zeros) + getattr(engine, "cost_offset", 0.0)


def rank_one_cost(engine, errs, s):
    r""":math:`\langle C, \otimes_j\,\mathrm{err}_j\rangle / s^{k-1}` (0 when ``s = 0``)."""
    nx = engine.nx
    if not _has_rank_one(nx, s):
        return 0.0 * s
    return s * cost_contract(engine, [e / s for e in errs])


def rounded_linear_cost(engine, state):
    r""":math:`\langle C, Y\rangle` for the rounded plan ``state`` of :func:`round_to_feasible`.

    The Gibbs part's :math:`\langle C, B(g')\rangle` from the engine plus the
    rank-one part's :math:`\langle C, \otimes_j\,\mathrm{err}_j\rangle/s^{k-1}`
    (see :func:`cost_contract`); nothing of size :math:`\prod_j n_j` is
    formed for pairwise costs.
    """
    return engine.linear_cost(state.g) + rank_one_cost(engine, state.errs, state.s)


def round_dense(X: Array, a_s: Sequence[Array], nx: Any = None, free: Sequence[int] = ()) -> Array:
    r"""Round a dense tensor ``X`` onto the transport polytope :math:`\Pi(a_1, \dots, a_k)`.

    The rounding of :func:`round_to_feasible` (Altschuler et al. 2017,
    Lin et al. 2022) for plans not in factored form: for instance a weighted
    average of Gibbs tensors (the primal iterate of primal-dual accelerated
    methods), or the dense plan of :func:`~ot_multimarginal.emot_sinkhorn`.
    For :math:`j = 1..k` in turn, axis :math:`j` is scaled by
    :math:`\min(1, a_j / r_j)`; then the deficits
    :math:`\mathrm{err}_j = a_j - r_j \ge 0` are added back as the rank-one
    tensor :math:`(\otimes_j\,\mathrm{err}_j)/s^{k-1}`,
    :math:`s = \|\mathrm{err}_1\|_1`.

    Parameters
    ----------
    X : array-like, shape (n_1, ..., n_k)
        Non-negative, finite tensor (``ValueError`` otherwise).
    a_s : list of k arrays
        Target weights: non-negative, finite, of a common total mass (checked
        to 1e-7 relative, 1e-4 in float32; ``None`` entries: uniform of that
        mass); cast to the dtype of ``X``.
    nx : Backend, optional
        POT backend (guessed from ``X`` by default).
    free : sequence of int, optional
        Free nodes (``log['free']`` of the solve): only the other marginals
        are rounded; see the module docstring.

    Returns
    -------
    Y : array-like of shape (n_1, ..., n_k)
        The rounded plan, in the backend, dtype and device of ``X``:
        :math:`Y \ge 0`, :math:`r_j(Y) = a_j` (to rounding error) and
        :math:`\|Y - X\|_1 \le 2 \sum_j \|r_j(X) - a_j\|_1` (sums over
        the prescribed :math:`j` when some nodes are ``free``).

    Raises
    ------
    ValueError
        If ``X`` has negative or non-finite entries, or the weights do not
        match its shape or share one total mass.
    TypeError
        If ``X`` is not an array, or ``nx`` is not its backend.

    See Also
    --------
    round_to_feasible : the same on a plan in factored form, never dense.

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import round_dense
    >>> X = np.random.RandomState(0).rand(3, 4, 5)
    >>> X /= X.sum()
    >>> a_s = [np.full(n, 1.0 / n) for n in X.shape]
    >>> Y = round_dense(X, a_s)
    >>> bool(np.allclose(Y.sum(axis=(0, 1)), a_s[2]) and np.abs(Y - X).sum() <= 2 * sum(
    ...     np.abs(X.sum(axis=tuple(l for l in range(3) if l != j)) - a_s[j]).sum() for j in range(3)))
    True
    """
    if not (hasattr(X, "shape") and hasattr(X, "dtype")):
        raise TypeError("X must be a NumPy array or torch tensor (a dense plan), got %s" % describe(X))
    nx_X = backend_of(X=X, a_s=a_s)
    if nx is not None and str(nx) != str(nx_X):
        raise TypeError("nx must be the backend of X (%s), got %s" % (str(nx_X), describe(nx)))
    nx = nx_X
    check_plan_tensor(nx, X, "X")
    k = X.ndim
    # non-negative, finite, of one common mass (1 not required), cast to X's dtype
    a_s = check_weights(nx, a_s, tuple(X.shape), X, mass=None)
    free = check_free(free, k)
    prescribed = [j for j in range(k) if j not in free]
    Y = X
    for j in prescribed:
        r = nx.sum(Y, axis=axes_except(j, k))
        safe_r = nx.where(r > 0, r, nx.ones(r.shape, type_as=r))
        z = nx.where(r > a_s[j], a_s[j] / safe_r, nx.ones(r.shape, type_as=r))
        Y = Y * expand_to(nx, z, j, k)
    errs = _deficits(nx, [nx.sum(Y, axis=axes_except(j, k)) for j in range(k)], a_s, prescribed, free)
    s = nx.sum(errs[prescribed[0]])
    if not _has_rank_one(nx, s):
        return Y
    return Y + s * outer_product(nx, [e / s for e in errs])


def outer_product(nx, vecs):
    """The k-tensor ``v_1 ⊗ … ⊗ v_k`` (entry ``I`` is ``∏_i v_i[I_i]``)."""
    k = len(vecs)
    out = expand_to(nx, vecs[0], 0, k)
    for i in range(1, k):
        out = out * expand_to(nx, vecs[i], i, k)
    return out
