# -*- coding: utf-8 -*-
r"""Unbalanced EMOT: KL penalties on the marginals instead of constraints.

The problem (``reg_m`` = :math:`\rho`, one value per marginal)

.. math::
    \min_{P \ge 0}\ \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P \,\|\, \otimes_i a_i)
    + \sum_i \rho_i\,\mathrm{KL}(r_i(P) \,\|\, a_i),
    \qquad \mathrm{KL}(p\|q) = \sum p\log\frac{p}{q} - \sum p + \sum q,

with :math:`\rho_i = \infty` a constraint :math:`r_i(P) = a_i` (a balanced
node) and a free node (``free``) the limit :math:`\rho_i = 0` (no term). Its
dual is

.. math::
    \max_\varphi\ -\sum_i \rho_i \langle a_i, e^{-\varphi_i/\rho_i} - 1\rangle
    - \varepsilon\,\langle \otimes_i a_i, e^{(\oplus_i\varphi_i - C)/\varepsilon} - 1\rangle

(the term of a balanced node is :math:`\langle a_i, \varphi_i\rangle`, the
limit :math:`\rho_i\to\infty`; see :func:`dual_marginal_term`), with
:math:`P = e^{(\oplus\varphi - C)/\varepsilon}\cdot\otimes_i a_i` as in the
balanced case. The exact maximisation over block :math:`i` (Chizat, Peyré,
Schmitzer and Vialard 2018; Beier, von Lindheim, Neumayer and Steidl 2023
for k marginals) is the balanced update, scaled:

.. math::
    \varphi_i \leftarrow \frac{\rho_i}{\rho_i + \varepsilon}
    \Big(\varphi_i + \varepsilon\log\frac{a_i}{r_i(P)}\Big),

and at the optimum :math:`r_i(P) = a_i\,e^{-\varphi_i/\rho_i}` (the stopping
error, :meth:`MarginalPenalties.error`, is the change of the marginals that
the next block updates would make; for a balanced node it is the usual
marginal error :math:`\|r_i - a_i\|_1`).

**Convergence.** A block update contracts the potential of a penalised node
by :math:`\lambda_i = \rho_i/(\rho_i + \varepsilon)`. When no marginal is
balanced, the total mass of the plan converges at a rate of about
:math:`1 - \varepsilon/\rho` per sweep: a very large finite ``reg_m`` (above
:math:`10^3\varepsilon`, say) is slow, use ``inf`` (a constraint) instead. A sweep costs
what a balanced one costs: the engine's marginals, plus O(n_i) per block.

Unlike the balanced problem, the unbalanced one is *not* invariant under
constant shifts of the cost (a larger cost moves less mass), so the
engines' cost offset :math:`c_0` (see :mod:`ot_multimarginal.marginals.base`)
enters the update of the node that carries it.
"""
# License: MIT License

import math

import numpy as np

from ._backend import safe_log, to_float
from ._validation import _is_array, _is_real_number, describe

__all__ = ["MarginalPenalties", "check_reg_m", "dual_marginal_term", "kl_divergence", "unbalanced_value"]


def check_reg_m(reg_m, k, name="reg_m"):
    r"""Validated marginal penalties: a tuple of k floats in :math:`(0, \infty]`.

    Parameters
    ----------
    reg_m : float or sequence of float
        A number (the same for every marginal) or a sequence (list, tuple,
        1-D array) of k numbers; ``float('inf')`` makes that marginal a
        constraint.
    k : int
        The number of marginals.
    name : str, optional
        The argument's name in the error messages (default ``'reg_m'``).

    Returns
    -------
    reg_m : tuple of float
        k values in :math:`(0, \infty]`.

    Raises
    ------
    ValueError
        On zero, negative or NaN values, or a wrong length (for a marginal
        without any term, use ``free=``).
    TypeError
        On something that is not a number or a sequence of numbers.
    """
    if _is_real_number(reg_m) and not (_is_array(reg_m) and getattr(reg_m, "ndim", 0) > 0):
        values = [reg_m] * k
    elif isinstance(reg_m, (list, tuple)) or (_is_array(reg_m) and getattr(reg_m, "ndim", 0) == 1):
        values = list(reg_m)
        if len(values) != k:
            raise ValueError(
                "%s must be a number or hold one value per marginal: expected %d values, got %d"
                % (name, k, len(values))
            )
    else:
        raise TypeError(
            "%s must be a positive number or a sequence of k=%d of them (inf: balanced), got %s"
            % (name, k, describe(reg_m))
        )
    out = []
    for i, v in enumerate(values):
        if not _is_real_number(v):
            raise TypeError("%s[%d] must be a positive number (inf: balanced), got %s" % (name, i, describe(v)))
        r = float(v.item() if _is_array(v) else v)
        if math.isnan(r) or r <= 0:
            raise ValueError(
                "%s[%d] must be > 0 (or inf for a balanced marginal; free= for no term at all), got %r" % (name, i, r)
            )
        out.append(r)
    return tuple(out)


def kl_divergence(nx, p, q, log_p=None):
    r"""Generalised KL :math:`\sum p\log(p/q) - \sum p + \sum q` of non-negative vectors (0 log 0 = 0).

    Parameters
    ----------
    nx : Backend
        The POT backend of the arrays.
    p, q : array-like
        Non-negative arrays of the same shape (``q > 0`` where ``p > 0``).
    log_p : array-like, optional
        ``log p`` when already at hand (e.g. a log-marginal).

    Returns
    -------
    kl : backend scalar
        The divergence (differentiable on torch).
    """
    log_p = safe_log(nx, p) if log_p is None else log_p
    pos = p > 0
    zero = nx.zeros(p.shape, type_as=p)
    ratio = nx.where(pos, log_p - safe_log(nx, nx.where(pos, q, p + 1.0)), zero)
    return nx.sum(p * ratio) - nx.sum(p) + nx.sum(q)


def dual_marginal_term(phi, a, rho):
    r"""The term of node ``i`` in the unbalanced dual: :math:`-\rho\langle a, e^{-\varphi/\rho} - 1\rangle`.

    For ``rho = inf`` (a balanced node) its limit :math:`\langle a, \varphi\rangle`.
    The neural path maximises it with ``a`` the (normalised) empirical
    weights, or as a mean over a batch with ``a = None``.

    Parameters
    ----------
    phi : array-like of shape (n,)
        The potential at the points (NumPy or torch).
    a : array-like of shape (n,) or None
        The weights of the points; ``None``: the mean over the points.
    rho : float
        The penalty :math:`\rho > 0`, ``inf`` for a balanced node.

    Returns
    -------
    term : scalar
        The node's term of the dual (differentiable on torch).
    """
    if math.isinf(rho):
        return (phi * a).sum() if a is not None else phi.mean()
    t = (-phi / rho).exp() - 1.0 if hasattr(phi, "exp") else np.exp(-phi / rho) - 1.0
    return -rho * ((t * a).sum() if a is not None else t.mean())


class MarginalPenalties:
    r"""The KL marginal penalties of one unbalanced solve, node by node.

    Built by the solvers from the validated ``reg_m`` (:func:`check_reg_m`),
    the engine (for :math:`\varepsilon` and the cost offset) and the free
    nodes; the cyclic loop asks it for the block update and the stopping
    error. In the engine's log-scalings
    :math:`g_i = \varphi_i/\varepsilon + \log a_i - o_i` (:math:`o_i = c_0/\varepsilon`
    on the first non-free node, 0 elsewhere), the update reads

    .. math::
        g_i \leftarrow \lambda_i\,(g_i - \log r_i + o_i) + \log a_i - o_i,
        \qquad \lambda_i = \frac{\rho_i}{\rho_i + \varepsilon},

    the plain Sinkhorn step for :math:`\lambda_i = 1` (:math:`\rho_i = \infty`).

    Parameters
    ----------
    reg_m : tuple of k floats
        The validated penalties (:func:`check_reg_m`).
    engine : GibbsEngine
        The solve's engine (its ``reg`` and ``cost_offset``).
    free : tuple of int, optional
        The free nodes (no term; their ``reg_m`` entry is ignored).
    """

    def __init__(self, reg_m, engine, free=()):
        from .marginals.base import cost_offset_of

        self.reg = float(engine.reg)
        self.free = tuple(free)
        self.rho = tuple(float("inf") if i in self.free else r for i, r in enumerate(reg_m))
        self.reg_m = tuple(reg_m)
        self.lam = tuple(1.0 if math.isinf(r) else r / (r + self.reg) for r in self.rho)
        self.tau = tuple(0.0 if math.isinf(r) else self.reg / r for r in self.rho)
        first = min(i for i in range(len(reg_m)) if i not in self.free)
        self.offset = tuple(cost_offset_of(engine) / self.reg if i == first else 0.0 for i in range(len(reg_m)))
        self._const = {}  # per-node constant vectors of the fast paths, from log a_i (fixed during a solve)

    @property
    def penalised(self):
        """The nodes with a finite penalty (neither balanced nor free)."""
        return tuple(i for i, r in enumerate(self.rho) if not math.isinf(r) and i not in self.free)

    def update(self, nx, i, g_i, log_a_i, log_r_i, positive_i, all_positive_i):
        """The exact dual maximisation over block ``i`` (zero weights stay at ``-inf``).

        Parameters
        ----------
        nx : Backend
            The POT backend.
        i : int
            The block.
        g_i, log_a_i, log_r_i : array-like of shape (n_i,)
            The log-scaling, the log-weights and the log-marginal of the plan at ``g``.
        positive_i : array-like of bool
            ``a_i > 0``.
        all_positive_i : bool
            No zero weight on the block (no masks needed).

        Returns
        -------
        g_i : array-like of shape (n_i,)
            The updated log-scaling.
        """
        lam, o = self.lam[i], self.offset[i]
        if all_positive_i:
            if lam == 1.0:
                return g_i - log_r_i + log_a_i
            return lam * (g_i - log_r_i + o) + log_a_i - o
        zero = nx.zeros(g_i.shape, type_as=g_i)
        step = nx.where(positive_i, g_i, zero) - nx.where(positive_i, log_r_i, zero)
        new = (
            lam * (step + o) + nx.where(positive_i, log_a_i, zero) - o
            if lam != 1.0
            else step + nx.where(positive_i, log_a_i, zero)
        )
        return nx.where(positive_i, new, log_a_i)

    def _constants(self, i, log_a_i):
        """``(log a_i + (λ_i - 1) o_i, (1 + τ_i) log a_i - τ_i o_i)``, computed once per node."""
        if i not in self._const:
            lam, tau, o = self.lam[i], self.tau[i], self.offset[i]
            self._const[i] = (log_a_i + (lam - 1.0) * o, (1.0 + tau) * log_a_i - tau * o)
        return self._const[i]

    def update_shifted(self, nx, i, g_i, shift_i, log_a_i, log_r_i, positive_i, all_positive_i):
        r""":meth:`update` of ``g_i + shift_i``, returned without the shift (``shift_i``: a scalar or ``None``).

        The cyclic loop keeps the translation steps' shifts aside; on a block
        without zero weights this is
        :math:`\lambda_i(g_i - \log r_i) + \log a_i + (\lambda_i - 1)(o_i + s_i)`, three or four
        vector operations, as cheap as the balanced step.

        Parameters
        ----------
        nx : Backend
            The POT backend.
        i : int
            The block.
        g_i : array-like of shape (n_i,)
            The stored log-scaling.
        shift_i : backend scalar or None
            The pending shift of the block.
        log_a_i, log_r_i : array-like of shape (n_i,)
            The log-weights and the log-marginal of the plan.
        positive_i : array-like of bool
            ``a_i > 0``.
        all_positive_i : bool
            No zero weight on the block.

        Returns
        -------
        g_i : array-like of shape (n_i,)
            The updated log-scaling, without the shift.
        """
        lam = self.lam[i]
        if all_positive_i:
            if lam == 1.0:
                return g_i - log_r_i + log_a_i
            new = lam * (g_i - log_r_i) + self._constants(i, log_a_i)[0]
            return new if shift_i is None else new + (lam - 1.0) * shift_i
        gi = g_i if shift_i is None else g_i + shift_i
        new = self.update(nx, i, gi, log_a_i, log_r_i, positive_i, all_positive_i)
        return new if shift_i is None else new - shift_i

    def translate(self, nx, g, log_a, positive, all_positive=None, shift=None):
        r"""The exact dual maximisation over translations :math:`\varphi_i + t_i`, :math:`\sum_i t_i = 0`.

        Such translations leave the plan unchanged, so only the marginal
        terms of the dual move; their maximiser is explicit (Séjourné,
        Vialard and Peyré 2022, "translation-invariant Sinkhorn", here for k
        marginals): with :math:`A_i = \langle a_i, e^{-\varphi_i/\rho_i}\rangle`,
        :math:`t_i = \rho_i\log(A_i/\mu)` on the penalised nodes, where
        :math:`\mu` is the common mass of the balanced nodes (which share
        :math:`-\sum t_i` equally), or, without any balanced node,
        :math:`\log\mu = \sum_i\rho_i\log A_i/\sum_i\rho_i`. This is the
        direction along which the block updates contract only by
        :math:`\lambda_i = \rho_i/(\rho_i+\varepsilon)`: one step every few
        sweeps (O(n) work, no engine pass; the cyclic loop takes one every 10)
        removes the slow convergence at :math:`\rho \gg \varepsilon`. Returns the shifts of the
        log-scalings, ``{i: t_i / ε}`` (backend scalars that sum to zero; the
        loop keeps them aside, so that the engines' caches, keyed on the
        log-scalings they were given, stay valid). ``all_positive[i]``: node
        ``i`` has no zero weight (no masks needed); ``shift``: the pending
        shifts (``g_i + shift_i`` are the log-scalings; ``None`` entries: 0).

        Parameters
        ----------
        nx : Backend
            The POT backend.
        g, log_a : list of k arrays
            The (stored) log-scalings and the log-weights.
        positive : list of k arrays of bool
            ``a_i > 0``.
        all_positive : list of bool, optional
            Blocks without zero weights.
        shift : list of k backend scalars or None, optional
            The pending shifts.

        Returns
        -------
        shifts : dict
            ``{i: t_i / ε}`` for the nodes that move.
        """
        pen = self.penalised
        bal = [i for i in range(len(g)) if i not in self.free and i not in pen]
        if not pen or (len(pen) == 1 and not bal):
            return {}
        log_A = {}
        for i in pen:
            s_i = None if shift is None else shift[i]
            if all_positive is not None and all_positive[i]:
                x = self._constants(i, log_a[i])[1] - self.tau[i] * g[i]
                log_A[i] = _log_sum_exp(nx, x) if s_i is None else _log_sum_exp(nx, x) - self.tau[i] * s_i
                continue
            gi = g[i] if s_i is None else g[i] + s_i
            zero = nx.zeros(gi.shape, type_as=gi)
            phi = nx.where(positive[i], gi, zero) - nx.where(positive[i], log_a[i], zero) + self.offset[i]
            log_A[i] = _log_sum_exp(nx, nx.where(positive[i], log_a[i] - self.tau[i] * phi, log_a[i]))
        if bal:
            log_mu = _log_sum_exp(nx, log_a[bal[0]])
        else:
            log_mu = sum(self.rho[i] * log_A[i] for i in pen) / sum(self.rho[i] for i in pen)
        t = {i: self.rho[i] * (log_A[i] - log_mu) for i in pen}
        for i in bal:
            t[i] = -sum(t[j] for j in pen) / len(bal)
        return {i: ti / self.reg for i, ti in t.items()}  # backend scalars: no device synchronisation

    def error(self, nx, log_r, g, log_a, positive, blocks):
        r"""Stopping error: how much the next block updates would move the marginals.

        :math:`\sum_{i\in\text{blocks}}\|r_i - r_i e^{-(g_i - g_i^+)}\|_1` with
        :math:`g_i^+` the block update (:meth:`update`) at ``g``: for a balanced
        node :math:`\|r_i - a_i\|_1`, for a penalised one
        :math:`\|r_i - r_i (a_i e^{-\varphi_i/\rho_i}/r_i)^{\lambda_i}\|_1`,
        which vanishes exactly at the optimality condition
        :math:`r_i = a_i e^{-\varphi_i/\rho_i}` and, unlike that residual written
        directly, loses no precision at small :math:`\rho_i` (where
        :math:`e^{-\varphi_i/\rho_i}` amplifies rounding by :math:`\varepsilon/\rho_i`).

        Parameters
        ----------
        nx : Backend
            The POT backend.
        log_r, g, log_a : list of k arrays
            The log-marginals of the plan, the log-scalings and the log-weights.
        positive : list of k arrays of bool
            ``a_i > 0``.
        blocks : tuple of int
            The non-free blocks.

        Returns
        -------
        err : backend scalar
            The error.
        """
        err = 0.0
        for i in blocks:
            new = self.update(nx, i, g[i], log_a[i], log_r[i], positive[i], False)
            zero = nx.zeros(g[i].shape, type_as=g[i])
            d = nx.where(positive[i], g[i], zero) - nx.where(positive[i], new, zero)
            r = nx.exp(log_r[i])
            err = err + nx.sum(nx.where(positive[i], nx.abs(r - r * nx.exp(-d)), zero))
        return err


def _log_sum_exp(nx, x):
    """``log Σ exp(x)`` of a vector with a finite maximum: cheaper than ``nx.logsumexp`` on NumPy (scipy's)."""
    m = nx.detach(nx.max(x))
    return m + nx.log(nx.sum(nx.exp(x - m)))


def unbalanced_value(engine, g, a_s, penalties):
    r"""Value and parts of the plan :math:`P = B(g)` of an unbalanced solve.

    Returns ``(value, value_linear, log_r)`` with

    .. math::
        \text{value} = \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P\|\otimes_i a_i)
        + \sum_{i\ \text{penalised}} \rho_i\,\mathrm{KL}(r_i(P)\|a_i)

    (generalised KL, mass terms included), the balanced value of
    :func:`ot_multimarginal.sinkhorn.emot_value` plus
    :math:`\varepsilon(\prod_i\|a_i\|_1 - 1)` (the mass of the KL reference)
    plus the penalties. The balanced nodes' constraint and the free nodes
    add nothing.

    Parameters
    ----------
    engine : GibbsEngine
        The engine of the solve (:mod:`ot_multimarginal.marginals`).
    g : list of k arrays
        The engine's log-scalings at the solution.
    a_s : list of k arrays
        The weights (each with its own mass).
    penalties : MarginalPenalties
        The solve's penalties.

    Returns
    -------
    value : backend scalar
        The unbalanced objective at :math:`P = B(g)`.
    value_linear : backend scalar
        :math:`\langle C, P\rangle`.
    log_r : list of k arrays
        The log-marginals of :math:`P`.
    """
    from .sinkhorn import emot_value

    nx = engine.nx
    value, value_linear, log_r = emot_value(engine, g, a_s)
    ref_mass = 1.0
    for a in a_s:
        ref_mass = ref_mass * nx.sum(a)
    value = value + engine.reg * (ref_mass - 1.0)
    for i in penalties.penalised:
        value = value + penalties.rho[i] * kl_divergence(nx, nx.exp(log_r[i]), a_s[i], log_r[i])
    return value, value_linear, log_r


def weight_gradients(engine, g, a_s, phi, penalties):
    r"""Envelope gradients of the unbalanced value in the weights, one per node.

    :math:`\partial/\partial a_i` of the dual at its optimum: the node's own
    term (:math:`\varphi_i` balanced, :math:`\rho_i(1 - e^{-\varphi_i/\rho_i})`
    penalised, 0 free) minus :math:`\varepsilon\, r_i/a_i` plus
    :math:`\varepsilon\prod_{j\ne i}\|a_j\|_1` (the reference measure). Not
    centred: the masses are part of an unbalanced problem.
    """
    nx = engine.nx
    masses = [nx.sum(a) for a in a_s]
    out = []
    for i, (a, p) in enumerate(zip(a_s, phi)):
        pos = a > 0
        one = nx.ones(a.shape, type_as=a)
        zero = 0.0 * one
        gi = list(g)
        gi[i] = nx.where(pos, g[i] - safe_log(nx, nx.where(pos, a, one)), zero)
        ratio = nx.where(pos, nx.exp(engine.log_marginal(gi, i)), zero)  # r_i / a_i
        other = 1.0
        for j, m in enumerate(masses):
            if j != i:
                other = other * m
        if i in penalties.free:
            own = zero
        elif math.isinf(penalties.rho[i]):
            own = p
        else:
            own = penalties.rho[i] * (1.0 - nx.exp(-p / penalties.rho[i]))
        out.append(own - engine.reg * ratio + engine.reg * other)
    return out


def check_balanced_masses(nx, a_s, reg_m, free, name="a_s"):
    """The balanced (``reg_m = inf``, not free) nodes of an unbalanced problem must share one mass."""
    bal = [i for i, r in enumerate(reg_m) if math.isinf(r) and i not in free]
    if len(bal) < 2:
        return
    m = [to_float(nx, nx.sum(a_s[i])) for i in bal]
    rtol = 1e-4 if nx.bitsize(a_s[0]) <= 32 else 1e-7
    for i, mi in zip(bal[1:], m[1:]):
        if abs(mi - m[0]) > rtol * m[0]:
            raise ValueError(
                "the balanced marginals (reg_m = inf) must have the same total mass: %s[%d] sums to %.10g but "
                "%s[%d] to %.10g (give them a finite reg_m, or rescale)" % (name, i, mi, name, bal[0], m[0])
            )


def check_unbalanced_method(method):
    """Unbalanced problems (``reg_m``) are solved by the cyclic loop only."""
    if method != "sinkhorn_log":
        raise ValueError(
            "reg_m (unbalanced EMOT) is solved by method='sinkhorn_log' (or 'sinkhorn') only, got method=%r" % (method,)
        )


def make_penalties(reg_m, engine, a_s, free, method):
    """Validate ``reg_m`` for a solve on ``engine`` and build its :class:`MarginalPenalties` (``None`` if balanced)."""
    if reg_m is None:
        return None
    check_unbalanced_method(method)
    reg_m = check_reg_m(reg_m, engine.k)
    check_balanced_masses(engine.nx, a_s, reg_m, free)
    return MarginalPenalties(reg_m, engine, free)
