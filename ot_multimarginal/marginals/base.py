# -*- coding: utf-8 -*-
r"""The engine protocol: marginals of a Gibbs tensor given log-scalings.

Every solver in the package is a loop around one question: given the
log-scalings :math:`g_1, \dots, g_k` (one vector per marginal), what are the
marginals of the Gibbs tensor

.. math::
    B(g)_{i_1 \dots i_k} = \exp\Big(\sum_{j} g_j[i_j] - C_{i_1 \dots i_k}/\varepsilon\Big)\ ?

Each kind of cost (dense tensor, pairwise costs on a tree, a cycle, any
graph) answers it in its own way; the solvers never know which one they use.

The log-scalings relate to the dual potentials :math:`\varphi_j` of
:math:`\min_P \langle C, P\rangle + \varepsilon\,\mathrm{KL}(P\,\|\,\otimes_j a_j)`
by :math:`g_j = \varphi_j/\varepsilon + \log a_j`, so that
:math:`P = B(g) = \exp((\oplus_j \varphi_j - C)/\varepsilon) \cdot (\otimes_j a_j)`.
"""
# License: MIT License

from .._backend import axes_except

__all__ = ["GibbsEngine"]


class GibbsEngine:
    """Base class of the marginalisation engines.

    Subclasses set ``nx`` (POT backend), ``shape`` (tuple of the k sizes),
    ``reg`` (float, the ε), ``type_as`` (an array giving dtype and device),
    and implement :meth:`log_marginal`. All quantities refer to the
    *unnormalised* Gibbs tensor ``B(g)``; its total mass is
    ``exp(log_partition(g))``.
    """

    nx = None
    shape = ()
    reg = None
    type_as = None

    @property
    def k(self):
        """Number of marginals."""
        return len(self.shape)

    # ---- the question every solver asks -------------------------------
    def log_marginal(self, g, i):
        """``log r_i(B(g))``: log of the sum of ``B(g)`` over all axes but ``i``."""
        raise NotImplementedError

    def log_marginals(self, g):
        """All k log-marginals at the same ``g`` (engines may share work)."""
        return [self.log_marginal(g, i) for i in range(self.k)]

    def log_partition(self, g, log_marginal=None):
        """``log ‖B(g)‖₁`` (pass a log-marginal already computed to save a pass)."""
        if log_marginal is None:
            log_marginal = self.log_marginal(g, 0)
        return self.nx.logsumexp(log_marginal)

    def log_partition_once(self, g):
        """``log ‖B(g)‖₁`` for an engine asked once (mini-batches): the cheapest way, no caches kept.

        Engines whose :meth:`log_partition` prepares work for later calls
        (absorbed kernels, cached products) override this with a stateless
        path; the default is :meth:`log_partition`.
        """
        return self.log_partition(g)

    # ---- what a finished solve needs -----------------------------------
    def linear_cost(self, g):
        r"""``⟨C, B(g)⟩`` (for the value :math:`\langle C, P\rangle`)."""
        raise NotImplementedError

    def log_pairwise_marginal(self, g, i, j):
        """``(n_i, n_j)`` log-marginal of ``B(g)`` on axes ``i < j`` or ``i > j``."""
        raise NotImplementedError

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

    def detached(self):
        """The same engine on cost arrays cut from the autograd graph."""
        raise NotImplementedError

    # ---- helpers ------------------------------------------------------
    def _axes_except(self, i):
        return axes_except(i, self.k)

