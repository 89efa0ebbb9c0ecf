# -*- coding: utf-8 -*-
r"""Dual potentials on an engine: the one place that converts potentials and log-scalings.

Every solver of the package ends with dual potentials :math:`\varphi_1, \dots,
\varphi_k` of

.. math::
    \min_P \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P\,\|\,\otimes_j a_j),
    \qquad P = \exp\big((\oplus_j\varphi_j - C)/\varepsilon\big)\cdot(\otimes_j a_j),

while the engines (:mod:`ot_multimarginal.marginals`) answer questions about
the centred Gibbs tensor :math:`B(g) = \exp(\oplus_j g_j - (C - c_0)/\varepsilon)`
of log-scalings :math:`g`. :class:`Potentials` holds the convention that
links them (documented in :mod:`ot_multimarginal.marginals.base`) once:

- :math:`g_j = \varphi_j/\varepsilon + \log a_j`, except on the first
  prescribed node :math:`j_0`, which carries the engine's cost offset
  :math:`c_0`: :math:`g_{j_0} = (\varphi_{j_0} - c_0)/\varepsilon + \log a_{j_0}`
  (so that :math:`P = B(g)` with the true cost);
- an entry of zero weight has :math:`\varphi = 0` and :math:`g = -\infty`;
- a free node has :math:`\varphi_j = 0`, :math:`g_j = \log a_j`;
- :meth:`Potentials.normalized` shifts :math:`\varphi_{j_0}` by
  :math:`-\varepsilon\log\|P\|_1` (the plan gets mass one; the exact dual
  minimisation along that direction).

A :class:`Potentials` *is* the list of the k potentials :math:`\varphi_j`
(it subclasses :class:`list`: ``log['potentials'][i]``, iteration and
``warmstart=log['potentials']`` work as with a plain list), with the engine,
the weights and the free nodes attached; it answers the value, the dual,
the plan (dense, or :class:`~ot_multimarginal.FactoredPlan` for structured
costs), marginals, pairwise marginals and densities. Treat it as read-only
(build a new one with :meth:`Potentials.with_potentials`).

Produced by :func:`~ot_multimarginal.emot_sinkhorn` / :func:`~ot_multimarginal.emot_sinkhorn2`
(``log['potentials']``) and :meth:`ot_multimarginal.neural.NeuralEMOT.dual_potentials`;
consumed by the ``warmstart`` of the Sinkhorn calls and by the neural
estimator's plan, pairwise plans and dual.
"""
# License: MIT License

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, List, Optional, Sequence, Tuple, Union

from ._typing import Array

if TYPE_CHECKING:  # pragma: no cover
    from .plans import FactoredPlan

from ._backend import safe_log
from ._validation import check_free
from .marginals.base import cost_offset_of

__all__ = ["Potentials"]


class Potentials(list):
    r"""The dual potentials :math:`\varphi_1, \dots, \varphi_k` of a plan on an engine.

    A list of k backend arrays (``self[i]`` of shape ``(n_i,)``) with the
    engine, the weights and the free nodes that give them a meaning (see the
    module docstring for the convention).

    Parameters
    ----------
    engine : GibbsEngine
        The engine of the cost (:func:`ot_multimarginal.sinkhorn.make_engine`,
        ``PairwiseCost.make_engine``, ...); gives ``reg``, the cost offset and
        every question on the plan.
    phi : list of k arrays of shape (n_i,)
        The potentials :math:`\varphi_i` (backend of the engine). Entries of
        zero weight and free nodes are set to 0.
    a_s : list of k arrays of shape (n_i,), optional
        The weights :math:`a_i` (default: uniform, or ``exp(log_a)``).
    free : sequence of int, optional
        Free nodes (marginal not prescribed, :math:`\varphi_i = 0`).
    log_a : list of k arrays of shape (n_i,) or floats, optional
        ``log a_i`` (``-inf`` at zero weights) when already computed; a
        float for weights that are all equal (e.g. ``-log b`` on a batch).

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import emot_sinkhorn2
    >>> M = np.random.RandomState(0).rand(3, 4, 5)
    >>> v, log = emot_sinkhorn2(None, M, 0.1, log=True)
    >>> pot = log["potentials"]
    >>> bool(np.isclose(pot.value(), v)), bool(np.isclose(pot.dual(), v))
    (True, True)
    >>> pot.plan().shape
    (3, 4, 5)
    """

    def __init__(
        self,
        engine: Any,
        phi: Sequence[Any],
        a_s: Optional[Sequence[Any]] = None,
        free: Sequence[int] = (),
        log_a: Optional[Sequence[Any]] = None,
    ) -> None:
        nx = engine.nx
        k = engine.k
        phi = list(phi)
        if len(phi) != k:
            raise ValueError("phi must hold %d potentials (one per marginal), got %d" % (k, len(phi)))
        if log_a is None:
            if a_s is None:
                a_s = [nx.ones((n,), type_as=engine.type_as) / n for n in engine.shape]
            log_a = [safe_log(nx, a) for a in a_s]
        free = check_free(tuple(free), k)
        log_a = list(log_a)
        # the convention: 0 on free nodes and at zero weights
        phi = [
            nx.zeros((engine.shape[i],), type_as=engine.type_as)
            if i in free
            else p
            if isinstance(la, float)
            else nx.where(nx.isfinite(la), p, nx.zeros(la.shape, type_as=la))
            for i, (p, la) in enumerate(zip(phi, log_a))
        ]
        super().__init__(phi)
        self.engine = engine
        self.free = free
        self.log_a = log_a
        self._a_s = None if a_s is None else list(a_s)
        self._g = None

    # ---- construction ------------------------------------------------------
    @classmethod
    def from_scalings(
        cls,
        engine: Any,
        g: Sequence[Any],
        a_s: Optional[Sequence[Any]] = None,
        free: Sequence[int] = (),
        log_a: Optional[Sequence[Any]] = None,
    ) -> Potentials:
        r"""The potentials of an engine's log-scalings ``g`` (those of the centred :math:`B(g)`).

        :math:`\varphi_i = \varepsilon(g_i - \log a_i)`, plus :math:`c_0` on
        the first prescribed node; 0 at zero weights and on free nodes. The
        given ``g`` are kept as :attr:`log_scalings` (no round trip).

        Parameters
        ----------
        engine : GibbsEngine
            The engine whose log-scalings ``g`` are.
        g : list of k arrays of shape (n_i,)
            The log-scalings (of the centred :math:`B(g)`, see :mod:`ot_multimarginal.marginals.base`).
        a_s : list of k arrays of shape (n_i,), optional
            The weights (default: uniform, or ``exp(log_a)``).
        free : sequence of int, optional
            Free nodes.
        log_a : list of k arrays of shape (n_i,), optional
            ``log a_i`` when already computed.

        Returns
        -------
        potentials : Potentials
            The potentials of ``g``.
        """
        nx = engine.nx
        if log_a is None:
            if a_s is None:
                a_s = [nx.ones((n,), type_as=engine.type_as) / n for n in engine.shape]
            log_a = [safe_log(nx, a) for a in a_s]
        log_a = [_as_array(nx, la, n, engine.type_as) for la, n in zip(log_a, engine.shape)]
        free = check_free(tuple(free), engine.k)
        first = _first_prescribed(engine.k, free)
        offset = cost_offset_of(engine)
        phi = []
        for i, (gi, la) in enumerate(zip(g, log_a)):
            ok = nx.isfinite(la)
            zero = nx.zeros(la.shape, type_as=la)
            p = engine.reg * (gi - nx.where(ok, la, zero))
            if i == first and offset != 0.0:
                p = p + offset
            phi.append(nx.where(ok, p, zero) if i not in free else zero)
        out = cls(engine, phi, a_s, free, log_a)
        out._g = list(g)
        return out

    def with_potentials(self, phi: Sequence[Any]) -> Potentials:
        """The same engine, weights and free nodes with other potentials ``phi``.

        Parameters
        ----------
        phi : list of k arrays of shape (n_i,)
            The new potentials.

        Returns
        -------
        potentials : Potentials
            A new object (this one is unchanged).
        """
        return type(self)(self.engine, phi, self._a_s, self.free, self.log_a)

    # ---- attributes ----------------------------------------------------------
    @property
    def nx(self):
        """POT backend of the engine."""
        return self.engine.nx

    @property
    def reg(self) -> float:
        """The entropic regularisation ε."""
        return self.engine.reg

    @property
    def k(self) -> int:
        """Number of marginals."""
        return self.engine.k

    @property
    def cost_offset(self) -> float:
        r"""The constant :math:`c_0` the engine removed from its cost (carried by :math:`\varphi_{j_0}`)."""
        return cost_offset_of(self.engine)

    @property
    def first_prescribed(self) -> int:
        """The node :math:`j_0` whose potential carries the cost offset (the first one not free)."""
        return _first_prescribed(self.k, self.free)

    @property
    def a_s(self):
        """The weights :math:`a_i`."""
        if self._a_s is None:
            nx, ref = self.nx, self.engine.type_as
            self._a_s = [
                nx.zeros((n,), type_as=ref) + math.exp(la) if isinstance(la, float) else nx.exp(la)
                for n, la in zip(self.engine.shape, self.log_a)
            ]
        return list(self._a_s)

    @property
    def log_scalings(self):
        r"""The engine's log-scalings :math:`g` (of the centred :math:`B(g)`, which is the plan :math:`P`)."""
        if self._g is None:
            self._g = self._scalings(self.cost_offset)
        return list(self._g)

    def _scalings(self, offset):
        nx = self.nx
        first = self.first_prescribed
        g = []
        for i, (p, la) in enumerate(zip(self, self.log_a)):
            if i in self.free:
                g.append(_as_array(self.nx, la, self.engine.shape[i], self.engine.type_as))
                continue
            if i == first and offset != 0.0:
                p = p - offset
            g.append(p / self.reg + la if isinstance(la, float) else nx.where(nx.isfinite(la), p / self.reg + la, la))
        return g

    # ---- derived potentials --------------------------------------------------
    def normalized(self, log_mass: Optional[Array] = None) -> Potentials:
        r"""The potentials whose plan has mass one: :math:`\varphi_{j_0} - \varepsilon\log\|P\|_1`.

        The shift is a detached constant; potentials whose plan has no
        finite mass are returned as they are.

        Parameters
        ----------
        log_mass : backend scalar, optional
            :meth:`log_mass` when the caller has it already (not recomputed).

        Returns
        -------
        potentials : Potentials
            A new object (this one is unchanged).
        """
        nx = self.nx
        g = self.log_scalings
        lm = self.engine.log_mass(g) if log_mass is None else log_mass
        if not bool(nx.isfinite(lm)):
            return self
        j0 = self.first_prescribed
        g[j0] = g[j0] - nx.detach(lm)
        return type(self).from_scalings(self.engine, g, self._a_s, self.free, self.log_a)

    # ---- what the potentials answer -----------------------------------------
    def log_mass(self) -> Array:
        r"""Compute :math:`\log\|P\|_1 = \log \sum_I \exp((\oplus\varphi - C)/\varepsilon)\prod_j a_{j,I_j}`.

        Returns
        -------
        log_mass : backend scalar
            The log-mass of the plan.
        """
        return self.engine.log_mass(self.log_scalings)

    def log_partition(self, once: bool = False) -> Array:
        r""":math:`\log \mathbb E_{\otimes a}[\exp((\oplus\varphi - C)/\varepsilon)]` (equal to :meth:`log_mass`).

        Differentiable in the potentials and the cost. ``once=True`` takes
        the engine's stateless path (:meth:`GibbsEngine.log_partition_once
        <ot_multimarginal.marginals.base.GibbsEngine.log_partition_once>`,
        for an engine asked once, e.g. on a mini-batch).

        Parameters
        ----------
        once : bool, optional
            Use the engine's stateless path.

        Returns
        -------
        log_partition : backend scalar
            The log-partition, differentiable.
        """
        g = self._scalings(0.0)  # of the uncentred tensor: the engine removes the offset itself
        return self.engine.log_partition_once(g) if once else self.engine.log_partition(g)

    def linear_term(self) -> Array:
        r"""Compute :math:`\sum_i \langle a_i, \varphi_i\rangle` over the prescribed nodes (zero weights add 0).

        Returns
        -------
        term : backend scalar
            The first term of the dual.
        """
        return linear_term(self.nx, self, self.a_s, self.free)

    def dual(self, once: bool = False, log_partition: bool = False) -> Union[Array, Tuple[Array, Array]]:
        r"""The dual in log form, :math:`\sum_i\langle a_i,\varphi_i\rangle - \varepsilon\log\|P\|_1`.

        A lower bound of the EMOT value for *any* potentials (weak duality),
        equal to it at the optimum; differentiable in the potentials
        (``once``: see :meth:`log_partition`).

        Parameters
        ----------
        once : bool, optional
            Use the engine's stateless path for the log-partition.
        log_partition : bool, optional
            Also return the log-partition.

        Returns
        -------
        dual : backend scalar
            The dual, differentiable in the potentials.
        log_partition : backend scalar
            Only with ``log_partition=True``.
        """
        lp = self.log_partition(once)
        d = self.linear_term() - self.reg * lp
        return (d, lp) if log_partition else d

    def value(self, log_marginals: bool = False) -> Union[Array, Tuple[Array, List[Array]]]:
        r"""The value :math:`\langle C,P\rangle + \varepsilon\,\mathrm{KL}(P\|\otimes a)` of the plan of the potentials.

        Computed as :math:`\sum_i\langle r_i(P), \varphi_i\rangle - \varepsilon(\|P\|_1 - 1)`
        (exact for every plan of the form above, with :math:`r_i(P)` its
        marginals; free nodes drop out), the offset :math:`c_0` carried as
        :math:`c_0\|P\|_1`.

        Parameters
        ----------
        log_marginals : bool, optional
            Also return the k log-marginals of :math:`P` (computed on the way).

        Returns
        -------
        value : backend scalar
            The value.
        log_r : list of k arrays
            Only with ``log_marginals=True``.
        """
        nx = self.nx
        engine = self.engine
        g = self.log_scalings
        log_r = engine.log_marginals(g)
        offset = self.cost_offset
        j0 = self.first_prescribed
        mass = nx.exp(nx.logsumexp(log_r[0]))
        value = -engine.reg * (mass - 1.0)
        for i, (lr, p) in enumerate(zip(log_r, self)):
            if i == j0 and offset != 0.0:
                p = p - offset  # the potential of the centred cost: the offset enters once, as c_0 ||P||_1
            value = value + nx.sum(nx.exp(lr) * p)
        if offset != 0.0:
            value = value + offset * mass
        return (value, log_r) if log_marginals else value

    def linear_cost(self) -> Array:
        r"""Compute :math:`\langle C, P\rangle` with the true cost.

        Returns
        -------
        cost : backend scalar
            The linear part of the value.
        """
        return self.engine.linear_cost(self.log_scalings)

    def plan(self) -> Union[Array, FactoredPlan]:
        """Build the plan :math:`P`.

        Returns
        -------
        plan : array of shape (n_1, ..., n_k) or FactoredPlan
            A dense tensor, or a :class:`~ot_multimarginal.FactoredPlan` for structured costs.
        """
        return self.engine.plan(self.log_scalings, self.a_s, self.free)

    def marginal(self, i: int) -> Array:
        """Compute the i-th marginal :math:`r_i(P)`.

        Parameters
        ----------
        i : int
            The axis.

        Returns
        -------
        r : array of shape (n_i,)
            The marginal.
        """
        return self.nx.exp(self.engine.log_marginal(self.log_scalings, i))

    def marginals(self) -> List[Array]:
        """Compute all k marginals of :math:`P`.

        Returns
        -------
        marginals : list of k arrays of shape (n_i,)
            The marginals.
        """
        return [self.nx.exp(lr) for lr in self.engine.log_marginals(self.log_scalings)]

    def log_pairwise_marginal(self, i: int, j: int) -> Array:
        """Compute the ``log`` of the ``(n_i, n_j)`` marginal of :math:`P` on axes ``i`` and ``j``.

        Parameters
        ----------
        i, j : int
            Two different axes.

        Returns
        -------
        L : array of shape (n_i, n_j)
            The log pairwise marginal.
        """
        return self.engine.log_pairwise_marginal(self.log_scalings, i, j)

    def pairwise_marginal(self, i: int, j: int) -> Array:
        """Compute the ``(n_i, n_j)`` marginal of :math:`P` on axes ``i`` and ``j``.

        Parameters
        ----------
        i, j : int
            Two different axes.

        Returns
        -------
        P_ij : array of shape (n_i, n_j)
            The pairwise marginal.
        """
        return self.nx.exp(self.log_pairwise_marginal(i, j))

    def log_density(self, idx: Any) -> Array:
        r""":math:`\log dP/d(\otimes a) = (\sum_i\varphi_i[I_i] - C_I)/\varepsilon` at index tuples.

        Parameters
        ----------
        idx : NumPy int array of shape (m, k)
            The index tuples.

        Returns
        -------
        log_density : array of shape (m,)
            The log-density of the plan w.r.t. :math:`\otimes_i a_i`.
        """
        from .plans import _backend_index, cost_at

        nx = self.nx
        s = 0.0
        for i, p in enumerate(self):
            s = s + p[_backend_index(nx, idx[:, i], p)]
        return (s - cost_at(self.engine, idx)) / self.reg

    def __repr__(self):
        return "Potentials(%s, reg=%g, free=%s)" % (list.__repr__(self), self.reg, self.free)


def linear_term(nx, phi, a_s, free=()):
    r""":math:`\sum_{i\notin F} \langle a_i, \varphi_i\rangle`, 0 at zero weights (whatever :math:`\varphi_i` is there).

    The first term of the dual; for potentials known on points without an
    engine (a Monte-Carlo dual) as well as for :meth:`Potentials.linear_term`.
    """
    out = 0.0
    for i, (p, a) in enumerate(zip(phi, a_s)):
        if i not in free:
            out = out + nx.sum(a * nx.where(a > 0, p, nx.zeros(a.shape, type_as=a)))
    return out


def _first_prescribed(k, free):
    return min((i for i in range(k) if i not in free), default=0)


def _as_array(nx, la, n, type_as):
    """``log a_i`` as an array of shape ``(n,)`` (a float stands for equal weights)."""
    return nx.zeros((n,), type_as=type_as) + la if isinstance(la, float) else la
