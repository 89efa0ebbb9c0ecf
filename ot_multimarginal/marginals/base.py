# -*- coding: utf-8 -*-
r"""The engine protocol: marginals of a Gibbs tensor given log-scalings.

Every solver in the package is a loop around one question: given the
log-scalings :math:`g_1, \dots, g_k` (one vector per marginal), what are the
marginals of the Gibbs tensor

.. math::
    B(g)_{i_1 \dots i_k} = \exp\Big(\sum_{j} g_j[i_j] - C_{i_1 \dots i_k}/\varepsilon\Big)\ ?

Each kind of cost (dense tensor, pairwise costs on a tree, a cycle, any
graph) answers it in its own way; the solvers never know which one they use.

**Constant shifts of the cost.** EMOT is invariant to adding a constant
:math:`c` to the cost (the plan is unchanged, the value grows by :math:`c`),
and for a pairwise cost to adding a constant to any one edge matrix. Every
engine therefore removes a constant :math:`c_0` from its cost before dividing
by :math:`\varepsilon` (a dense tensor: its minimum; a pairwise cost: the
minimum of each edge matrix, :math:`c_0 = \sum_e c_e`), exposed as
``engine.cost_offset`` (a Python float, a detached constant), and works with
the *centred* Gibbs tensor

.. math::
    B(g)_{i_1 \dots i_k} = \exp\Big(\sum_{j} g_j[i_j] - (C_{i_1 \dots i_k} - c_0)/\varepsilon\Big),

whose exponent at :math:`g_j = \log a_j` is at most :math:`\sum_j \log a_j`
(no overflow, whatever the sign or size of the cost), and whose kernel
keeps the cost's resolution (:math:`C - c_0` is exact before the division,
also in float32). A non-negative cost array whose minimum is at most its
range (a cost with a zero, a distance, a cost in [0, 1]) keeps
:math:`c_0 = 0` (:func:`default_offset`): it needs no centring, and its
log-scalings stay those of the cost as given.

**Convention.** Every method that takes log-scalings (:meth:`GibbsEngine.log_marginal`,
:meth:`~GibbsEngine.log_marginals`,
:meth:`~GibbsEngine.log_mass`, :meth:`~GibbsEngine.log_pairwise_marginal`,
:meth:`~GibbsEngine.log_plan`, :meth:`~GibbsEngine.plan`,
:meth:`~GibbsEngine.cost_gradients`) refers to this centred :math:`B(g)`, and
the solvers' log-scalings :math:`g` are those of :math:`B(g)`: the plan is
:math:`P = B(g)`. Two methods answer for the true cost: :meth:`~GibbsEngine.linear_cost`
is :math:`\langle C, B(g)\rangle` (the offset carried as
:math:`c_0 \|B(g)\|_1`), and :meth:`~GibbsEngine.log_partition` is the
log-mass of the *uncentred* tensor :math:`\exp(\oplus_j g_j - C/\varepsilon)`,
that is :meth:`~GibbsEngine.log_mass` :math:`- c_0/\varepsilon` (differentiable in
``g`` and the cost; the offset is a constant).

The log-scalings relate to the dual potentials :math:`\varphi_j` of
:math:`\min_P \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P\,\|\,\otimes_j a_j)`
by :math:`g_j = \varphi_j/\varepsilon + \log a_j`, except on the first
prescribed (non-free) node :math:`j_0`, whose potential carries the offset:
:math:`g_{j_0} = (\varphi_{j_0} - c_0)/\varepsilon + \log a_{j_0}` (a free
node has :math:`\varphi_j = 0`, :math:`g_j = \log a_j`). These are the
potentials the cyclic iterations on the uncentred cost would give (they
differ from the centred ones by :math:`c_0/\varepsilon` on the first block
updated), and
:math:`P = B(g) = \exp((\oplus_j \varphi_j - C)/\varepsilon) \cdot (\otimes_j a_j)`
(:class:`ot_multimarginal.potentials.Potentials` holds this convention). Adding a
constant :math:`c` to the cost leaves the plan and :math:`g` as they are (up
to the solver's tolerance), moves :math:`\varphi_{j_0}` by :math:`c`, and
the value and :math:`\langle C, P\rangle` by :math:`c\|P\|_1`.
"""
# License: MIT License

from .._backend import axes_except

__all__ = ["GibbsEngine", "cost_offset_of", "default_offset", "default_offsets"]


def default_offset(nx, C):
    """The constant an engine removes from the cost array ``C`` (see the module docstring).

    ``min C``, except for a non-negative ``C`` whose minimum is at most its
    range (costs with a zero, distances, costs in [0, 1]): those keep 0, so
    that their log-scalings are exactly those of the cost as given.
    """
    return default_offsets(nx, [C])[0]


def default_offsets(nx, arrays):
    """:func:`default_offset` of each array of ``arrays``, with one device synchronisation for all."""
    ends = []
    for C in arrays:
        C = nx.detach(C)
        ends += [nx.min(C), nx.max(C)]
    lohi = nx.to_numpy(nx.stack(ends)).astype(float)  # one device sync
    out = []
    for lo, hi in zip(lohi[0::2], lohi[1::2]):
        lo, hi = float(lo), float(hi)
        out.append(lo if (lo < 0 or lo > hi - lo) else 0.0)
    return out


def cost_offset_of(engine):
    """``engine.cost_offset`` as a float (0 for engines that do not centre their cost)."""
    return float(getattr(engine, "cost_offset", 0.0))


class GibbsEngine:
    """Base class of the marginalisation engines.

    Subclasses set ``nx`` (POT backend), ``shape`` (tuple of the k sizes),
    ``reg`` (float, the ε), ``type_as`` (an array giving dtype and device),
    ``cost_offset`` (float, the constant :math:`c_0` removed from the cost;
    default 0) and implement :meth:`log_marginal`. All quantities refer to the
    *unnormalised*, centred Gibbs tensor ``B(g) = exp(⊕g - (C - c_0)/ε)``
    (see the module docstring), except :meth:`linear_cost` (the true cost)
    and :meth:`log_partition` (the uncentred tensor); its total mass is
    ``exp(log_mass(g))``.
    """

    nx = None
    shape = ()
    reg = None
    type_as = None
    cost_offset = 0.0

    @property
    def k(self):
        """Number of marginals."""
        return len(self.shape)

    def release_caches(self):
        """Drop the arrays this engine recomputes on demand (kernels, log-kernels); none here.

        For engines kept after their solve (the best iterate of a GW alternation): they then hold only
        their costs, and the next query rebuilds what it needs.
        """

    # ---- the question every solver asks -------------------------------
    def log_marginal(self, g, i):
        """``log r_i(B(g))``: log of the sum of ``B(g)`` over all axes but ``i``."""
        raise NotImplementedError

    def log_marginals(self, g):
        """All k log-marginals at the same ``g`` (engines may share work)."""
        return [self.log_marginal(g, i) for i in range(self.k)]

    def log_mass(self, g, log_marginal=None):
        """``log ‖B(g)‖₁`` of the centred tensor (pass a log-marginal already computed to save a pass)."""
        if log_marginal is None:
            log_marginal = self.log_marginal(g, 0)
        return self.nx.logsumexp(log_marginal)

    def log_partition(self, g, log_marginal=None):
        r"""``log Σ_I exp(⊕g - C/ε)``: the log-mass of the *uncentred* Gibbs tensor.

        Equal to ``log_mass(g) - cost_offset/reg`` (the offset a detached
        constant: differentiable in ``g`` and in the cost). This is the term
        of the dual :math:`\sum_j \langle \varphi_j, a_j\rangle - \varepsilon
        \log \sum_I \exp((\oplus\varphi - C)/\varepsilon) \otimes a` for the
        true cost; ``log_marginal`` (a log-marginal of the centred ``B(g)``)
        may be passed to save a pass.
        """
        return self.log_mass(g, log_marginal) - self.cost_offset / self.reg

    def log_partition_once(self, g):
        """:meth:`log_partition` (uncentred) for an engine asked once (mini-batches): the cheapest way, no caches.

        Engines whose :meth:`log_partition` prepares work for later calls
        (absorbed kernels, cached products) override this with a stateless
        path; the default is :meth:`log_partition`.
        """
        return self.log_partition(g)

    # ---- what a finished solve needs -----------------------------------
    def linear_cost(self, g):
        r"""``⟨C, B(g)⟩`` with the true cost ``C`` (for the value :math:`\langle C, P\rangle`).

        Engines compute it as :math:`\langle C - c_0, B(g)\rangle + c_0\|B(g)\|_1`.
        """
        raise NotImplementedError

    def log_pairwise_marginal(self, g, i, j):
        """``(n_i, n_j)`` log-marginal of ``B(g)`` on axes ``i < j`` or ``i > j``."""
        raise NotImplementedError

    def pairwise_marginal(self, g, i, j):
        """``exp(log_pairwise_marginal(g, i, j))`` for consumers that need it only to the dtype's resolution.

        Every row and column sum is that of the exact pairwise marginal to
        ``eps**2`` relative; entries below ``eps**2 / n`` times the largest
        of their row *and* of their column may be returned as lower bounds of
        their value (engines whose log-domain products would otherwise
        recompute them one by one, :func:`._pairwise.log_matmul`). For the
        Hessian of :func:`~ot_multimarginal.strategies.newton.newton_sinkhorn`.
        Default: the exact one.
        """
        return self.nx.exp(self.log_pairwise_marginal(g, i, j))

    def log_plan(self, g):
        """The dense ``log B(g)`` (only for engines whose tensor fits in memory)."""
        raise NotImplementedError

    def plan(self, g, a_s=None, free=()):
        """The plan ``B(g)`` as solvers return it: dense here, factored for graph costs.

        ``a_s`` (the target weights) and ``free`` (the free nodes, whose
        marginals are not prescribed) are kept by factored plans, for ``round()``.
        """
        return self.nx.exp(self.log_plan(g))

    def cost_inputs(self):
        """Tuple of the arrays that define the cost (dense: ``(M,)``; graph: edge matrices)."""
        raise NotImplementedError

    def cost_gradients(self, g):
        """``∂value/∂x`` for each ``x`` of :meth:`cost_inputs`, at the optimum ``g``.

        By the envelope theorem the derivative of the EMOT value with respect
        to the cost is the plan (for pairwise costs: each edge's pairwise
        marginal).
        """
        raise NotImplementedError

    def without_caches(self):
        """The same engine without the buffers a solve filled (for objects kept after it); default: itself."""
        return self

    def detached(self):
        """The same engine on cost arrays cut from the autograd graph."""
        raise NotImplementedError

    # ---- helpers ------------------------------------------------------
    def _axes_except(self, i):
        return axes_except(i, self.k)
