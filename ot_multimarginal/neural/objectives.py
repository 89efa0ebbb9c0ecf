# -*- coding: utf-8 -*-
r"""The EMOT dual on a mini-batch (the training losses) and on the data (the final estimate).

For potentials :math:`\varphi_1, \dots, \varphi_k` the dual in log form is

.. math::
    D(\varphi) = \sum_i \mathbb E_{\mu_i}[\varphi_i(X_i)]
    - \varepsilon \log \mathbb E_{\otimes_i \mu_i}
      \Big[\exp\Big(\frac{\sum_i \varphi_i(X_i) - c(X_1, \dots, X_k)}{\varepsilon}\Big)\Big]
    \;\le\; \mathrm{EMOT}_\varepsilon(\mu_1, \dots, \mu_k)

for *every* :math:`\varphi` (weak duality; it is the usual dual
:math:`\sum_i \mathbb E[\varphi_i] - \varepsilon\,\mathbb E[e^{(\oplus\varphi - c)/\varepsilon}] + \varepsilon`
at the best constant shift of the potentials), with equality at the optimal
potentials. The second expectation is the log-partition of a Gibbs tensor:
on ``b`` points per marginal with log-scalings
:math:`g_i = \varphi_i(x_i)/\varepsilon - \log b` it is exactly
``engine.log_partition(g)`` of the batch's engine. Estimators of :math:`D`
on a batch of ``b`` points per marginal:

``'combinatorial'`` (V-statistic over all :math:`b^k` tuples)
    the expectation over :math:`\otimes\mu_i` is the mean over every tuple of
    the batch (the batches of the marginals are drawn independently, so
    every tuple, repeated positions included, is a draw of
    :math:`\otimes\mu_i`): unbiased inside the log, hence a downward bias of
    order :math:`\mathrm{Var}/b^k`-ish from Jensen's inequality (small:
    :math:`b^k` terms), and the lowest variance of the three. Cost: one
    engine log-partition (chain/tree :math:`O(|E| b^2)`, circle
    :math:`O(k b^3)`, complete :math:`O(b^k)` flops, never :math:`b^k`
    memory for pairwise costs).
``'aligned'`` (mean over the ``b`` aligned tuples)
    row ``r`` of every batch is one tuple; :math:`O(b\,|E|\,d)` per step, any
    ``k`` and any cost. Unbiased inside the log as well, but ``b`` terms
    instead of :math:`b^k`: when the exponent varies over many nats across
    tuples (wide costs, small ε, large k) the mean is dominated by a few
    tuples, the log-mean-exp is biased low by many nats, and the estimate
    cannot be trusted (see :func:`aligned_effective_size`).
``'ustat'`` (U-statistic: tuples of pairwise distinct positions)
    the mean over the :math:`b(b-1)\cdots(b-k+1)` tuples whose batch
    positions differ, which is unbiased for :math:`\otimes\mu_i` also when the
    rows of the batches are dependent (paired data drawn with shared indices),
    at the price of the complete graph's contraction (the exclusions join
    every pair). For small ``n`` and small ``k``.
"""
# License: MIT License

import math

from ..potentials import Potentials

__all__ = [
    "ESTIMATORS",
    "batch_dual",
    "combinatorial_log_mean_exp",
    "aligned_log_mean_exp",
    "ustat_log_mean_exp",
    "aligned_effective_size",
    "exact_dual",
    "unbalanced_dual",
]

ESTIMATORS = ("combinatorial", "aligned", "ustat")


def combinatorial_log_mean_exp(cost, X_s, f_s, reg, log_w=None):
    r"""``log`` of the mean of :math:`e^{(\sum_i f_i - c)/\varepsilon}` over all tuples of the batch.

    ``f_s[i]``: the potential at the batch points (shape ``(b_i,)``).
    ``log_w[i]``: optional log-weights of the points (normalised; default
    uniform ``-log b_i``). Computed as ``engine.log_partition`` with
    :math:`g_i = f_i/\varepsilon + \log w_i`: no :math:`b^k` tensor for
    pairwise costs, differentiable in ``f_s`` (and the cost) by autograd.

    Parameters
    ----------
    cost : PointCloudCost or TupleCost
        The cost (:mod:`ot_multimarginal.costs.pointcloud`).
    X_s : list of k torch.Tensor of shape (b_i, d_i)
        The batch points.
    f_s : list of k torch.Tensor of shape (b_i,)
        The potentials at the batch points.
    reg : float
        Entropic regularisation ε > 0.
    log_w : list of k torch.Tensor of shape (b_i,), optional
        Normalised log-weights of the points (default: ``-log b_i``).

    Returns
    -------
    lme : torch scalar
        The log-mean-exp.
    """
    engine = cost.engine(X_s, reg)
    if log_w is None:
        log_w = [-math.log(f.shape[0]) for f in f_s]  # uniform weights
    return Potentials(engine, f_s, log_a=log_w).log_partition(once=True)


def aligned_exponents(cost, X_s, f_s, reg):
    """``(Σ_i f_i[r] - c(x_r)) / reg`` for the aligned rows ``r`` (shape ``(b,)``)."""
    s = f_s[0]
    for f in f_s[1:]:
        s = s + f
    return (s - cost.at_tuples(X_s)) / reg


def aligned_log_mean_exp(cost, X_s, f_s, reg):
    """Compute the ``log`` of the mean of :math:`e^{(\\sum_i f_i - c)/\\varepsilon}` over the ``b`` aligned tuples.

    Tuple ``r`` is row ``r`` of every cloud.

    Parameters
    ----------
    cost : PointCloudCost or TupleCost
        The cost (:mod:`ot_multimarginal.costs.pointcloud`).
    X_s : list of k torch.Tensor of shape (b_i, d_i)
        The batch points.
    f_s : list of k torch.Tensor of shape (b_i,)
        The potentials at the batch points.
    reg : float
        Entropic regularisation ε > 0.

    Returns
    -------
    lme : torch scalar
        The log-mean-exp, differentiable in ``f_s``.
    """
    import torch

    z = aligned_exponents(cost, X_s, f_s, reg)
    return torch.logsumexp(z, 0) - math.log(z.shape[0])


def aligned_effective_size(z):
    r"""Kish's effective sample size :math:`(\sum w)^2/\sum w^2` of the weights :math:`w = e^{z}`.

    Near ``len(z)``: the log-mean-exp is well estimated; a few units: a
    handful of tuples carry the mean, the aligned estimate is biased by many
    nats.

    Parameters
    ----------
    z : torch.Tensor of shape (b,)
        The log-weights (the aligned exponents).

    Returns
    -------
    size : float
        The effective number of tuples, in ``[1, b]``.
    """
    import torch

    z = z.detach()
    return float(torch.exp(2 * torch.logsumexp(z, 0) - torch.logsumexp(2 * z, 0)))


def ustat_log_mean_exp(cost, X_s, f_s, reg):
    r"""``log`` of the mean over the tuples of pairwise distinct batch positions.

    The exclusions :math:`i_a \ne i_b` join every pair of marginals: the
    batch is contracted on the complete graph, with the edges of the cost
    and zero-cost edges elsewhere, each kernel zeroed on its diagonal
    (a cost of :math:`+\infty` there, written as a finite cost far beyond
    the dtype's exponent range). Needs equal batch sizes, ``b >= k``.

    Parameters
    ----------
    cost : PointCloudCost or TupleCost
        The cost (:mod:`ot_multimarginal.costs.pointcloud`).
    X_s : list of k torch.Tensor of shape (b_i, d_i)
        The batch points.
    f_s : list of k torch.Tensor of shape (b_i,)
        The potentials at the batch points.
    reg : float
        Entropic regularisation ε > 0.

    Returns
    -------
    lme : torch scalar
        The log-mean-exp, differentiable in ``f_s``.

    Raises
    ------
    ValueError
        With unequal batch sizes, ``b < k`` or a cost that is not pairwise.
    """
    import torch

    from ..costs.graph import PairwiseCost

    k = len(X_s)
    b = int(X_s[0].shape[0])
    if any(int(X.shape[0]) != b for X in X_s) or b < k:
        raise ValueError(
            "estimator='ustat' needs the same batch size b >= k for every marginal, got %s"
            % [int(X.shape[0]) for X in X_s]
        )
    if not getattr(cost, "pairwise", False):
        raise ValueError("estimator='ustat' needs a pairwise cost (graph=...), not a callable cost")
    mats = dict(zip([tuple(sorted(e)) for e in cost.edges], cost.matrices(X_s)))
    edges, matrices = [], []
    ref = f_s[0]
    big = 0.25 * float(torch.finfo(ref.dtype).max) * min(reg, 1.0)  # exp(-big/reg) == 0 in any dtype
    mask = torch.eye(b, dtype=ref.dtype, device=ref.device) * big
    for a in range(k):
        for c in range(a + 1, k):
            if (a, c) in mats:
                e = cost.edges[[tuple(sorted(x)) for x in cost.edges].index((a, c))]
                M = mats[(a, c)] if e == (a, c) else mats[(a, c)].T
            else:
                M = torch.zeros((b, b), dtype=ref.dtype, device=ref.device)
            edges.append((a, c))
            matrices.append(M + mask)
    # the engine of the first batch of this size, rebound to the next ones (no validation pass, no host sync)
    key = (b, float(reg), ref.dtype, ref.device)
    templates = cost.__dict__.setdefault("_ustat_templates", {})
    if key in templates:
        engine = templates[key].rebind(matrices)
    else:
        engine = templates[key] = PairwiseCost(edges, matrices, shape=(b,) * k).make_engine(reg)
    log_count = sum(math.log(b - j) for j in range(k))
    # weights 1: the sum over the tuples, divided by their count
    return Potentials(engine, f_s, log_a=[0.0] * k).log_partition(once=True) - log_count


_LOG_MEAN_EXP = {
    "combinatorial": combinatorial_log_mean_exp,
    "aligned": aligned_log_mean_exp,
    "ustat": ustat_log_mean_exp,
}


def unbalanced_dual(f_s, log_mean_exp, reg, reg_m, a_s=None):
    r"""The unbalanced EMOT dual from its marginal terms and the log-mean-exp of the Gibbs weights.

    .. math::
        D_\rho(\varphi) = \sum_i -\rho_i\,\mathbb E_{\mu_i}\big[e^{-\varphi_i/\rho_i} - 1\big]
        - \varepsilon\Big(\mathbb E_{\otimes\mu_i}\big[e^{(\sum_i\varphi_i - c)/\varepsilon}\big] - 1\Big)

    (a balanced node, :math:`\rho_i = \infty`, has the term
    :math:`\mathbb E_{\mu_i}[\varphi_i]`; see
    :func:`ot_multimarginal.unbalanced.dual_marginal_term`). Not the log
    form: the potentials are not shift-invariant any more, and the batch
    estimate of the expectation (``exp(log_mean_exp)``) is unbiased, so is
    the batch dual. ``a_s``: the weights of ``f_s`` (``None``: batch means).

    Parameters
    ----------
    f_s : list of k torch.Tensor
        The potentials at the points.
    log_mean_exp : torch scalar
        ``log E[exp((Σ f_i - c)/reg)]`` (a batch estimate, or the exact one).
    reg : float
        Entropic regularisation ε > 0.
    reg_m : tuple of k floats
        The marginal penalties (validated, ``inf`` for a balanced node).
    a_s : list of k torch.Tensor, optional
        Probability weights of the points (default: uniform, batch means).

    Returns
    -------
    dual : torch scalar
        :math:`D_\rho(\varphi)`, differentiable in ``f_s``.
    """
    import torch

    from ..unbalanced import dual_marginal_term

    total = None
    for i, f in enumerate(f_s):
        a = None if a_s is None else a_s[i]
        if a is not None:
            f = torch.where(a > 0, f, torch.zeros_like(f))
        t = dual_marginal_term(f, a, reg_m[i])
        total = t if total is None else total + t
    return total - reg * torch.expm1(log_mean_exp)


def batch_dual(cost, X_s, f_s, reg, estimator="combinatorial", reg_m=None):
    r"""The mini-batch estimate of the dual :math:`D(\varphi)` (maximised by training).

    ``Σ_i mean(f_i) − reg · log_mean_exp``, the log-mean-exp by ``estimator``
    (see the module docstring).

    Parameters
    ----------
    cost : PointCloudCost or TupleCost
        The cost (:mod:`ot_multimarginal.costs.pointcloud`).
    X_s : list of k torch.Tensor of shape (b_i, d_i)
        The batch points.
    f_s : list of k torch.Tensor of shape (b_i,)
        The potentials at the batch points.
    reg : float
        Entropic regularisation ε > 0.
    estimator : {'combinatorial', 'aligned', 'ustat'}, optional
        The estimator of the log-mean-exp (default ``'combinatorial'``).
    reg_m : tuple of k floats, optional
        Unbalanced EMOT: the marginal penalties (see :func:`unbalanced_dual`).

    Returns
    -------
    dual : torch scalar
        The batch dual, differentiable in ``f_s``.
    """
    lme = _LOG_MEAN_EXP[estimator](cost, X_s, f_s, reg)
    if reg_m is not None:
        return unbalanced_dual(f_s, lme, reg, reg_m)
    first = None
    for f in f_s:
        first = f.mean() if first is None else first + f.mean()
    return first - reg * lme


def exact_dual(cost, X_s, f_s, reg, a_s, reg_m=None):
    r"""The dual :math:`D(\varphi)` on the full empirical measures (weights ``a_s``), exactly.

    ``Σ_i ⟨a_i, f_i⟩ − reg · log_partition`` of the data's engine with
    :math:`g_i = f_i/\varepsilon + \log a_i`. A lower bound of the empirical
    EMOT (weak duality), whatever the potentials.

    Parameters
    ----------
    cost : PointCloudCost
        The pairwise cost (:mod:`ot_multimarginal.costs.pointcloud`).
    X_s : list of k torch.Tensor of shape (n_i, d_i)
        The clouds.
    f_s : list of k torch.Tensor of shape (n_i,)
        The potentials at the points.
    reg : float
        Entropic regularisation ε > 0.
    a_s : list of k torch.Tensor of shape (n_i,)
        The weights of the points (zero weights allowed).
    reg_m : tuple of k floats, optional
        Unbalanced EMOT: the marginal penalties (:func:`unbalanced_dual`).

    Returns
    -------
    dual : torch scalar
        :math:`D(\varphi)` on the data, differentiable in ``f_s``.
    """
    pot = Potentials(cost.engine(X_s, reg), f_s, a_s)
    if reg_m is not None:
        return unbalanced_dual(f_s, pot.log_partition(once=True), reg, reg_m, a_s)
    return pot.dual(once=True)
