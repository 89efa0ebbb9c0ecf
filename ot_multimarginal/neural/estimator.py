# -*- coding: utf-8 -*-
r"""The estimator: :class:`NeuralEMOT` (fit the potentials, then ask them for values, densities, plans)."""
# License: MIT License

import os
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .._deprecation import deprecated_attribute, renamed_kwargs
from .._params import ParamsMixin
from .._threads import fit_threads
from .._typing import Array, Edges, Metric, Weights
from .._validation import (
    check_auto_bool,
    check_checkpoint_params,
    check_choice,
    check_point_clouds,
    check_positive_int,
    check_reg,
    check_weights,
)
from ..costs.pointcloud import PointCloudCost, make_cost, reference_point
from ..potentials import Potentials
from ._validation import (
    check_device,
    check_estimator_params,
    check_load_path,
    check_marginal_pair,
    check_query_points,
    check_save_path,
)
from .checkpoint import Checkpointer, problem_fingerprint, resume_payload
from .distributed import LOSSES, data_parallel
from .evaluation import EXACT_ENTRIES, EXACT_FLOPS, evaluate_dual, exact_is_affordable, exact_work, refine_on_data
from .networks import PotentialSet
from .objectives import ESTIMATORS, aligned_effective_size, aligned_exponents
from .sampling import BatchSampler, derive_seed
from .training import Trainer

if TYPE_CHECKING:  # pragma: no cover
    from ..plans import FactoredPlan

__all__ = ["NeuralEMOT"]

_EVALUATIONS = ("auto", "exact", "mc")

GAP_WARN = 5e-3
REFINE_TARGET = 1e-4
"""``refine`` stops after 10 sweeps that raised the dual by at most this fraction of ``|value_|`` (or of ``reg``)."""
REFINE_FLOPS = 10 * EXACT_FLOPS
"""Work budget of ``refine`` in multiply-adds (a sweep: about one exact evaluation's work)."""
REFINE_MAX_SWEEPS = 300
"""At most this many ``refine`` sweeps (at least 10)."""
"""``fit`` warns when ``gap_estimate_`` exceeds this fraction of ``|value_|`` (or of ``reg``, if larger)."""


def _to_torch(X, device, dtype=None):
    if isinstance(X, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(X))
    else:
        t = X
    return t.to(device=device, dtype=dtype if dtype is not None else t.dtype)


def _torch_dtype(name):
    """The torch dtype of a saved name (``'torch.float32'`` or ``'float32'``); ``None`` for ``None``."""
    return getattr(torch, name.replace("torch.", "")) if name else None


_EMOT_KEYS = {"params", "potentials", "dims"}


def _read_saved(path, kind):
    """The dict that ``<kind>.save`` wrote to ``path``; a ``ValueError`` naming the writer for any other file.

    A :class:`NeuralEMOT` file is recognised by its keys, the other estimators' files by their ``'kind'`` tag.
    """
    check_load_path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ValueError("cannot load %s as a %s: %s" % (path, kind, e)) from e
    found = None
    if isinstance(state, dict):
        found = state.get("kind") or ("NeuralEMOT" if _EMOT_KEYS <= set(state) else None)
    if found != kind:
        raise ValueError(
            "%s is not a file of %s.save%s"
            % (path, kind, " (it is a %s file: use %s.load)" % (found, found) if isinstance(found, str) else "")
        )
    return state


def _like_input(value, ref, is_numpy):
    """A scalar or array back in the caller's type: NumPy float64 / torch tensor of ``ref``'s dtype and device."""
    if is_numpy:
        v = value.detach().cpu().double().numpy()
        return float(v) if v.ndim == 0 else v
    return value.to(dtype=ref.dtype, device=ref.device)


class NeuralEMOT(ParamsMixin):
    r"""Neural estimator of entropic multimarginal optimal transport (NEMOT).

    The k dual potentials :math:`\varphi_i` are small MLPs trained by
    mini-batch gradient ascent on the log form of the EMOT dual

    .. math::
        D(\varphi) = \sum_i \mathbb E_{\mu_i}[\varphi_i]
        - \varepsilon \log \mathbb E_{\otimes\mu_i}
        \big[e^{(\sum_i\varphi_i - c)/\varepsilon}\big] \le \mathrm{EMOT}_\varepsilon,

    (Tsur, Goldfeld, Greenewald, Permuter, 2025). A step costs a function of
    the batch size ``b`` and ``k``, not of the number of points: the batch's
    expectation over :math:`\otimes\mu_i` is the log-partition of its Gibbs
    tensor, taken by the package's engines (tree / cycle / contraction for
    pairwise costs, no :math:`b^k` tensor). The fitted potentials give the
    value (the dual on the data: exact, hence a certified lower bound of
    the empirical EMOT, when the data fits an engine; else a Monte-Carlo
    estimate with its standard error), the plan's density at any points, and
    the plan on the data as a :class:`~ot_multimarginal.FactoredPlan`.

    Parameters
    ----------
    reg : float
        Entropic regularisation ε > 0.
    graph : str or list of pairs, optional
        Pairs of marginals carrying a cost term: ``'complete'`` (default),
        ``'chain'``, ``'circle'``, ``'star'`` (with ``center``), ``'tree'``
        (with ``edges``) or an edge list, as in
        :meth:`~ot_multimarginal.PairwiseCost.from_point_clouds`.
    metric : str, callable or list, optional
        Ground cost of each edge: a metric name of :func:`ot.dist`
        (``'sqeuclidean'``, no 1/2), a callable ``metric(X_a, X_b)`` returning
        the ``(n_a, n_b)`` matrix (clouds of different dimensions), or a list
        with one per edge. Callables may change between fits (parameters of
        an outer problem).
    cost : callable, optional
        A general cost ``cost(X_1, ..., X_k) -> (m,)`` on ``m`` aligned tuples
        (replaces ``graph``/``metric``). Use ``estimator='aligned'`` unless
        :math:`b^k` tuples fit in memory.
    center : int, optional
        The centre node of ``graph='star'`` (default 0).
    edges : list of pairs, optional
        The edges of ``graph='tree'``.
    estimator : {'combinatorial', 'aligned', 'ustat'}, optional
        How a batch estimates the expectation over :math:`\otimes\mu_i`:

        - ``'combinatorial'`` (default): the mean over all :math:`b^k` tuples
          of the batch (a V-statistic; every tuple is a draw of the product
          since the k batches are independent). Lowest variance; the log
          makes it biased low by about half its relative variance, tiny with
          :math:`b^k` terms. Work per step: :math:`O(|E| b^2)` on trees,
          :math:`O(k b^3)` on a circle, :math:`O(b^k)` on the complete graph.
        - ``'aligned'``: the mean over the ``b`` aligned tuples (rows re-paired
          at every step). :math:`O(b |E| d)` for any ``k`` and any cost, but
          high variance: on wide costs (large spread of the exponent over
          tuples: small ε, large k) a few tuples dominate, the estimate is
          biased low by many nats and training drifts. A ``UserWarning``
          reports when the effective number of tuples (Kish) of the final
          held-out estimate says so.
        - ``'ustat'``: the mean over tuples of pairwise distinct batch
          positions (a U-statistic): unbiased inside the log also for
          dependent rows; costs the complete graph's contraction. Small k.
    batch_size : int, optional
        Points per marginal per step (default: 512 on trees and chains, 128
        on a cycle, 64 on complete graphs with ``k >= 4``, 128 for a callable
        ``cost``; at most the smallest cloud when drawing without
        replacement).
    max_iter : int, optional
        The step budget (default 2000; formerly ``n_iter``, deprecated). Training stops before when the
        held-out dual has converged (see ``patience``); a budget that ends
        first gives a ``UserWarning`` (``converged_ = False``).
    lr : float, optional
        Adam's initial learning rate (default 1e-2), divided by 10 at every
        plateau of the held-out dual down to ``lr/100`` (cosine decay to
        ``lr/100`` over the budget when ``patience=None``). The potentials
        are in units of the cost's typical size and their inputs
        standardised, so the same rate suits any scale of the data.
    width, depth, activation : optional
        Each potential's MLP (:class:`~.networks.PotentialMLP`): hidden width
        (default from the dimension, ``clip(16 d, 64, 256)``), hidden layers
        (2), activation (``'relu'``); with a built-in distance metric each also has a
        learned quadratic term (exact for Gaussian data under the squared-Euclidean cost).
    grad_clip : float or None, optional
        Gradient-norm clipping of the (scaled) loss (default 1.0).
    replace : bool, optional
        Draw batches with replacement (default: only for weighted clouds).
    evaluation : {'auto', 'exact', 'mc'}, optional
        The final value: the exact dual on the data (``'auto'``: when the
        data's engine fits the budget) or a Monte-Carlo estimate over
        ``n_eval_batches`` held-out batches.
    n_eval_batches : int, optional
        Held-out batches of the Monte-Carlo value (default 32).
    eval_every : int, optional
        Steps between held-out estimates (default 50; 0: none, and no
        stopping rule).
    patience : int or None, optional
        The stopping rule (default 2). An estimate of the held-out dual
        *improves* when it beats the best so far by more than its standard
        error (and by ``tol`` relative); ``patience`` estimates without
        improvement are a plateau, after which the learning rate is divided
        by 10 (from the best potentials); a plateau at the smallest rate
        ``lr/100`` is convergence and training stops. ``None``: all
        ``max_iter`` steps, cosine decay, no convergence check (as for a
        budget below ``3 * patience * eval_every`` steps, which then warns).
    tol : float, optional
        The relative change of the monitored objective (here the held-out
        estimate) below which the fit stops: an estimate that improves on
        the best by less than ``tol`` (relative) counts as no improvement
        for ``patience`` (default 1e-4). The same meaning as in
        :class:`~ot_multimarginal.neural.NeuralMGW`, whose objective is the
        GW objective of the alternation.
    warm_start : bool, optional
        Refit from the current potentials (same dimensions) instead of new ones.
    dtype : torch.dtype, optional
        Training dtype (default ``torch.float32``). Values are evaluated in
        the inputs' dtype (float64 for NumPy).
    random_state : int, optional
        Seed of the initial weights and of the batches (formerly ``seed``,
        deprecated; an int, or ``None`` for a fresh one): a fixed seed gives
        bitwise identical results on the CPU (same thread count).
    device : str or torch.device, optional
        Training device (default: the inputs' device).
    verbose : bool, optional
        A tqdm progress bar with the running batch dual and held-out estimate
        (on rank 0 only in a data-parallel run).
    distributed : {'auto', True, False}, optional
        Data-parallel training on :mod:`torch.distributed` (default
        ``'auto'``: when a process group is initialised, or under ``torchrun``,
        which then initialises it: NCCL on CUDA, gloo on the CPU). Each of the
        ``W`` ranks evaluates the networks on its ``batch_size`` points per
        marginal (the global batch has ``W * batch_size``), gradients are
        all-reduced, and the returned estimator is identical on every rank.
        See :mod:`ot_multimarginal.neural.distributed` and the docs page
        "Distributed training".
    distributed_loss : {'global', 'local'}, optional
        ``'global'`` (default): the potentials of the ranks are all-gathered
        and the loss is the dual of the global batch (the one-process run with
        batch ``W * batch_size``, to rounding); ``'local'``: each rank's dual
        of its own batch, gradients averaged.
    checkpoint_dir : str or path, optional
        Directory of periodic checkpoints (model, optimiser, schedule, sampler
        and random states; written atomically by rank 0, the last two kept).
    checkpoint_every : int, optional
        Steps between checkpoints (default 50; one is also written at the end of training).
    resume : bool, optional
        Continue from the newest usable checkpoint in ``checkpoint_dir`` (start
        afresh if it holds none): the same trajectory as an uninterrupted run
        (bitwise on the CPU). A checkpoint of another problem raises a
        ``ValueError`` naming what differs; a truncated or corrupted one is
        skipped with a ``UserWarning`` (the previous one is used).
    reg_m : float or sequence of k floats, optional
        Unbalanced EMOT (as in :func:`~ot_multimarginal.emot_sinkhorn`): KL
        penalties :math:`\rho_i` on the marginals, ``inf`` for a balanced
        one. The networks then maximise the unbalanced dual
        :math:`\sum_i -\rho_i\mathbb E_{\mu_i}[e^{-\varphi_i/\rho_i} - 1]
        - \varepsilon(\mathbb E_{\otimes\mu_i}[e^{(\oplus\varphi - c)/\varepsilon}] - 1)`
        (:func:`~ot_multimarginal.neural.objectives.unbalanced_dual`) on the
        same engine loss; ``value_`` is that dual (a lower bound of the
        unbalanced value when exact), :meth:`plan` has the plan's own mass
        and ``log_partition_`` is 0. The weights are probability vectors.
        ``None`` (default): balanced.
    num_threads : 'auto', int or None, optional
        torch intra-op (and BLAS) threads while fitting, the caller's settings
        restored afterwards, also when ``fit`` raises. ``'auto'`` (default):
        one thread on the CPU (a step's products are small: more threads only
        add synchronisation, and oversubscribe a busy machine; measured by
        ``bench/bench_neural_data.py --threads``), the settings left
        alone on CUDA; an int: that many; ``None``: leave them alone.
    warn : bool, optional
        Warn (``UserWarning``) when the step budget ends before the held-out
        dual converged (default True).
    refine : {'auto', True, False}, optional
        Refine the potentials *on the data* after training, where the value is
        exact (balanced, pairwise cost, engine within budget): sweeps of the
        exact solver (:func:`~ot_multimarginal.emot_sinkhorn`, block updates
        :math:`\varphi_i \leftarrow \varphi_i - \varepsilon\log(r_i/a_i)`:
        soft c-transforms given the other potentials) warm-started from the
        networks' potentials on the data (:func:`~.evaluation.refine_on_data`).
        Every update raises the dual by :math:`\varepsilon\,\mathrm{KL}(a_i\|r_i)`:
        the value stays a certified lower bound and only rises. Networks
        extrapolate smoothly and cannot hold the potentials at isolated points
        (heavy tails, outliers, small ε), where the exact potentials of the
        empirical problem depend on the nearest points of the other clouds:
        there the exact dual of the networks can be far below the optimum
        (Student t data: below zero) while the held-out batches, which rarely
        hold those tuples, look fine. ``'auto'`` (default): when
        ``gap_estimate_`` is above 0.5% of ``|value_|``; ``True``: always;
        ``False``: never. The sweeps start from the networks' potentials, or
        from zero potentials where their exact dual on the data is the higher;
        they are over-relaxed (ω = 1.5 in the cyclic loop, a
        plain sweep to end) on the engine of the exact evaluation, built once;
        the exact dual is read every 10 sweeps, and the sweeps stop once 10 of
        them raise it by at most 0.01% of ``|value_|``, within a budget of
        ``2e11`` multiply-adds of the engine (10 to 300 sweeps). Where refine
        would run, training *hands over* to it (``handed_over_``) once the
        networks do worse on the data than zero potentials while their
        held-out estimate is above them (checked at the 2nd, 4th, 8th, ...
        held-out estimate, one log-partition of the data each): more steps do not mend networks that
        extrapolate badly to the data's rare points (Student t data, chain
        k = 6, n = 2000, ε 0.1x the median cost: 1050 steps and 300 sweeps,
        -0.75% with a warning, became 100 steps and 190 sweeps from zero,
        -0.03%, in less than half the time). The budget
        counts scaled products: where the engine falls back to the log domain
        (small ε, spread data) a sweep costs more, e.g. 0.4 s on a circle of
        k = 5 clouds of 200 points at ε = 0.1 with costs near 36, so 300 sweeps
        took 2 minutes after a 30-step fit; pass ``refine=False`` to skip it.
        Callable costs (no graph engine) are not refined.
        The refined potentials on the training clouds are those of
        ``value_``, ``marginal_kl_``, ``gap_estimate_`` and
        :meth:`data_potentials` (polished plan:
        ``Potentials(engine, est.data_potentials()).normalized().plan()``, or
        ``emot_sinkhorn(..., warmstart=est.data_potentials())``); the networks
        are unchanged and give :meth:`potential`, :meth:`plan`,
        :meth:`plan_density`, :meth:`pairwise_plan`, ``log_partition_`` and
        the values on other clouds.

    Attributes
    ----------
    value_ : float or tensor
        The dual of the trained potentials on the data (type of the inputs).
    value_se_ : float
        Its standard error (0 for the exact evaluation).
    value_method_ : str
        ``'exact'`` (a certified lower bound of the empirical EMOT, by weak
        duality) or ``'mc'`` (Monte Carlo).
    log_partition_ : float
        ``log E_{⊗μ}[exp((Σφ_i − c)/ε)]`` on the data (normalises :meth:`plan_density`).
    marginal_kl_ : list of k floats or None
        :math:`\mathrm{KL}(a_i \| r_i)`, ``r_i`` the i-th marginal of the
        potentials' plan on the data (exact, balanced evaluations only; else
        ``None``). One exact update of :math:`\varphi_i` would raise the dual
        by exactly :math:`\varepsilon\,\mathrm{KL}(a_i\|r_i)`, so the
        empirical EMOT is at least ``value_ + reg * max(marginal_kl_)``.
    gap_estimate_ : float or None
        ``reg * sum(marginal_kl_)``: a first-order estimate of how far
        ``value_`` is below the empirical EMOT (on the 48 rows of
        ``bench/bench_neural_data.py`` without heavy tails: within 0.16
        points of percentage of the true gap where it was below 0.5%, and
        above 0.5% on every row whose gap was; off by up to a factor 2.3
        where the marginals are far off). A converged ``fit`` warns above
        0.5% of ``|value_|`` (the stopping rule's own warning includes it).
    marginal_kl_se_ : list of k floats or None
        The standard errors of ``marginal_kl_``: zeros for the exact
        evaluation; for a Monte-Carlo one, ``marginal_kl_`` is the mean over
        the held-out batches of the KL of the batch plan's marginals (biased
        high by the finite batch: a conservative check) and this its
        standard error over the batches. ``None`` with ``marginal_kl_``
        (unbalanced fits, callable costs).
    refine_sweeps_ : int
        Sweeps of ``refine`` run on the data (0: none).
    value_networks_ : float or None
        The exact dual of the networks on the data before ``refine`` (``None``
        when no sweep ran).
    refine_start_ : {'given', 'zero'} or None
        Where the ``refine`` sweeps started: the networks' potentials or zero
        potentials (``None``: no refine).
    handed_over_ : bool
        Whether training stopped early to hand over to ``refine`` (see
        ``refine``); ``converged_`` is then False, and the non-convergence
        warning is left to ``refine``'s own.
    n_iter_ : int
        Steps taken.
    converged_ : bool
        Whether the stopping rule declared convergence within the budget
        (False too when there is no rule: ``patience=None`` or ``eval_every=0``).
    shift_ : tensor or None
        The common translation subtracted from every cloud before the
        training dtype (float32) cast and the networks (the mean of the
        clouds' means), when the cost is translation-invariant (built-in
        distance metrics, clouds of one dimension); ``None`` otherwise.
    batch_size_ : int
        Points per marginal in a (global) training batch: ``world_size_ * batch_size``.
    world_size_ : int
        Data-parallel ranks of the fit (1: one process).
    history_ : dict
        ``'step'``, ``'batch_dual'`` (per step), ``'eval_step'``, ``'eval_value'``,
        ``'eval_se'`` (held-out estimates), ``'lr'``.
    timings_ : dict
        Seconds spent training, in held-out estimates and in the final evaluation.
    potentials_ : PotentialSet
        The k trained networks (torch modules).
    trainer_ : Trainer
        The training state (optimiser, sampler, ...; see :mod:`.training`).

    Notes
    -----
    The plan of the potentials is
    :math:`d\pi/d(\otimes\mu_i) = e^{(\sum_i\varphi_i - c)/\varepsilon - \Lambda}`
    with :math:`\Lambda` = ``log_partition_`` (mass one). On the data it is
    the :class:`~ot_multimarginal.FactoredPlan` with log-scalings
    :math:`g_i = \varphi_i(x_i)/\varepsilon + \log a_i` (:meth:`plan`); its
    marginals are close to, not equal to, the :math:`a_i` (``plan().round()``
    projects it onto the exact polytope), and
    ``emot_sinkhorn(a_s, cost, reg, warmstart=est.data_potentials())`` polishes it
    with exact sweeps.

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.neural import NeuralEMOT
    >>> rng = np.random.RandomState(0)
    >>> X_s = [rng.randn(200, 2) for _ in range(3)]
    >>> est = NeuralEMOT(reg=1.0, max_iter=100, patience=None, random_state=0).fit(X_s)  # a fixed 100 steps
    >>> est.value_method_
    'exact'
    >>> bool(est.value_ > 0)
    True
    """

    @renamed_kwargs(n_iter="max_iter", seed="random_state")
    def __init__(
        self,
        reg: float,
        graph: Union[str, Edges] = "complete",
        metric: Metric = "sqeuclidean",
        cost: Optional[Callable[..., Any]] = None,
        center: int = 0,
        edges: Optional[Edges] = None,
        estimator: str = "combinatorial",
        batch_size: Optional[int] = None,
        max_iter: int = 2000,
        lr: float = 1e-2,
        width: Optional[int] = None,
        depth: int = 2,
        activation: str = "relu",
        grad_clip: Optional[float] = 1.0,
        replace: Optional[bool] = None,
        evaluation: str = "auto",
        n_eval_batches: int = 32,
        eval_every: int = 50,
        patience: Optional[int] = 2,
        tol: float = 1e-4,
        warm_start: bool = False,
        dtype: Any = None,
        random_state: Optional[int] = None,
        device: Any = None,
        verbose: bool = False,
        distributed: Union[str, bool] = "auto",
        distributed_loss: str = "global",
        checkpoint_dir: Optional[str] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
        reg_m: Any = None,
        num_threads: Union[str, int, None] = "auto",
        warn: bool = True,
        refine: Union[str, bool] = "auto",
    ) -> None:
        self.reg = reg
        self.graph = graph
        self.metric = metric
        self.cost = cost
        self.center = center
        self.edges = edges
        self.estimator = estimator
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.lr = lr
        self.width = width
        self.depth = depth
        self.activation = activation
        self.grad_clip = grad_clip
        self.replace = replace
        self.evaluation = evaluation
        self.n_eval_batches = n_eval_batches
        self.eval_every = eval_every
        self.patience = patience
        self.tol = tol
        self.warm_start = warm_start
        self.dtype = dtype
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.distributed = distributed
        self.distributed_loss = distributed_loss
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.reg_m = reg_m
        self.num_threads = num_threads
        self.warn = warn
        self.refine = refine

    # ---- parameters (get_params / set_params: ParamsMixin, from the signature) ----
    n_iter = deprecated_attribute("n_iter", "max_iter")
    seed = deprecated_attribute("seed", "random_state")

    def _warm_copy(self, **params: Any) -> "NeuralEMOT":
        """A new estimator with ``params`` changed that starts from a copy of this one's fitted networks.

        ``warm_start=True``; this estimator and its parameters are left as they are (an outer loop, e.g.
        :class:`~ot_multimarginal.neural.NeuralMGW`, refits through this instead of assigning parameters).
        """
        import copy

        new = type(self)(**dict(self.get_params(deep=False), **dict(dict(warm_start=True), **params)))
        if getattr(self, "potentials_", None) is not None:
            new.potentials_ = copy.deepcopy(self.potentials_)
        return new

    def _check_params(self, k, sizes, world_size=1):
        reg = check_reg(self.reg)
        self._reg_m(k)
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_choice("evaluation", self.evaluation, _EVALUATIONS)
        n_iter = check_positive_int("max_iter", self.max_iter, minimum=1)
        lr = check_reg(self.lr, "lr")
        check_positive_int("depth", self.depth, minimum=1)
        if self.width is not None:
            check_positive_int("width", self.width, minimum=1)
        check_positive_int("n_eval_batches", self.n_eval_batches, minimum=2)
        check_positive_int("eval_every", self.eval_every, minimum=0)
        if self.patience is not None:
            check_positive_int("patience", self.patience, minimum=1)
        if self.grad_clip is not None:
            check_reg(self.grad_clip, "grad_clip")
        if self.random_state is not None:
            check_positive_int("random_state", self.random_state, minimum=0)
        check_choice("distributed_loss", self.distributed_loss, LOSSES)
        check_checkpoint_params(self.checkpoint_dir, self.checkpoint_every, self.resume)
        cost = make_cost(k, self.graph, self.metric, self.cost, self.center, self.edges)
        if self.batch_size is None:
            b = _default_batch(cost, k)
            if not self.replace:
                b = max(1, min(b, min(sizes) // world_size))
        else:
            b = check_positive_int("batch_size", self.batch_size, minimum=1)
        if world_size > 1 and not self.replace and b * world_size > min(sizes):
            raise ValueError(
                "batch_size=%d per rank on %d ranks is a global batch of %d points, more than the smallest cloud "
                "(%d points) drawn without replacement: use batch_size <= %d or replace=True"
                % (b, world_size, b * world_size, min(sizes), min(sizes) // world_size)
            )
        if self.estimator == "ustat" and b < k:
            raise ValueError("estimator='ustat' needs batch_size >= k = %d, got %d" % (k, b))
        return reg, n_iter, lr, b, cost

    # ---- fitting -----------------------------------------------------------
    def fit(self, X_s: Sequence[Array], a_s: Weights = None) -> "NeuralEMOT":
        """Train the potentials on the clouds ``X_s`` (weights ``a_s``, uniform by default).

        Runs under the thread policy ``num_threads`` (the caller's torch and
        BLAS thread counts are restored on return and on errors).

        Parameters
        ----------
        X_s : list of k arrays of shape (n_i, d_i)
            NumPy arrays or torch tensors (one library), any float dtype,
            different sizes and dimensions allowed (with a metric that accepts them).
        a_s : list of k weight vectors, optional
            Probability weights of the points (drawn by weighted sampling).

        Returns
        -------
        self : NeuralEMOT
            The fitted estimator (attributes ending in ``_``).
        """
        with fit_threads(self.num_threads, self.device, X_s):
            return self._fit(X_s, a_s)

    def _fit(self, X_s, a_s):
        t_start = time.perf_counter()
        check_estimator_params(self)
        nx, X_s = check_point_clouds(X_s)
        k = len(X_s)
        sizes = [int(X.shape[0]) for X in X_s]
        parallel = data_parallel(
            check_auto_bool(self.distributed, "distributed"),
            self.device if self.device is not None else getattr(X_s[0], "device", None),
            self.distributed_loss,
        )
        world = 1 if parallel is None else parallel.world_size
        reg, n_iter, lr, b, cost = self._check_params(k, sizes, world)
        self._is_numpy = str(nx) == "numpy"
        ref = X_s[0]
        a_s = check_weights(nx, a_s, tuple(sizes), ref, clouds="X_s")
        device = (
            torch.device(self.device)
            if self.device is not None
            else (torch.device("cpu") if self._is_numpy else ref.device)
        )
        if parallel is not None:  # a device taken from the data (cuda:0 on every rank) becomes this rank's GPU
            device = parallel.local_device(device, from_data=self.device is None)
            parallel.check_device(device)
        eval_dtype = torch.float64 if self._is_numpy else ref.dtype
        train_dtype = self.dtype if self.dtype is not None else torch.float32
        self._ref = None if self._is_numpy else ref
        data = [_to_torch(X, device, eval_dtype) for X in X_s]
        weights = [_to_torch(a, device, eval_dtype) for a in a_s]
        self.shift_ = _common_shift(cost, data, weights)
        uniform = [bool(torch.allclose(w, torch.full_like(w, 1.0 / w.shape[0]))) for w in weights]
        seed = self.random_state
        seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**62))
        if parallel is not None:
            seed = int(parallel.broadcast_object(seed))
        payload = resume_payload(self.checkpoint_dir, parallel) if self.resume and self.checkpoint_dir else None
        if payload is not None and self.random_state is None:
            seed = int(payload["extra"]["seed"])
        dims = [int(X.shape[1]) for X in X_s]
        gen = torch.Generator().manual_seed(derive_seed(seed, "init"))
        if not (
            self.warm_start
            and getattr(self, "potentials_", None) is not None
            and [p.d for p in self.potentials_.potentials] == dims
        ):
            model = PotentialSet(
                dims,
                self.width,
                self.depth,
                self.activation,
                gen,
                train_dtype,
                quadratic=bool(getattr(cost, "translation_invariant", False)),
            ).to(device)
            self._normalise(model, data, weights, cost, reg, gen)
        else:
            model = self.potentials_
        train_data = [self._net_input(X.detach(), train_dtype) for X in data]
        # one stream of global batches (W * b points), the same on every rank; each rank uses its slice
        sampler = BatchSampler(
            sizes,
            b * world,
            weights=[None if u else w for u, w in zip(uniform, weights)],
            replace=self.replace,
            seed=seed,
        )
        ckpt = None
        if self.checkpoint_dir is not None:
            ckpt = Checkpointer(
                self.checkpoint_dir,
                self.checkpoint_every or 50,
                problem_fingerprint(self, cost, data, weights, b * world, train_dtype, seed, world),
                extra={"seed": seed},
                is_main=parallel is None or parallel.is_main,
            )
        trainer = Trainer(
            model,
            cost,
            train_data,
            [w.detach().to(train_dtype) for w in weights],
            reg,
            self.estimator,
            sampler,
            lr=lr,
            n_iter=n_iter,
            grad_clip=self.grad_clip,
            loss_scale=float(model[0].scale) * k,
            eval_every=self.eval_every,
            n_eval_batches=max(2, min(8, int(self.n_eval_batches))),
            patience=self.patience,
            tol=self.tol,
            eval_generator=torch.Generator().manual_seed(derive_seed(seed, "held-out")),
            parallel=parallel,
            checkpoint=ckpt,
            reg_m=self._reg_m(k),
            hand_over=self._hand_over_rule(cost, data, weights, reg, sizes, parallel),
        )
        if payload is not None:
            ckpt.restore(trainer, payload)
        trainer.run(verbose=self.verbose)
        self.potentials_ = model
        self.trainer_ = trainer
        self.cost_ = cost
        self.reg_ = reg
        self.batch_size_ = b * world
        self.world_size_ = world
        self.n_iter_ = trainer.step_count
        self.stopped_early_ = trainer.stopped_early
        self.converged_ = trainer.converged
        self.history_ = trainer.history
        self.refine_sweeps_, self.value_networks_, self.data_refinement_ = 0, None, None  # (a refit's old ones)
        self.refine_start_ = None
        self.handed_over_ = trainer.handed_over
        self.X_fit_ = data
        self.a_fit_ = weights
        self.seed_ = seed
        t_eval = time.perf_counter()
        # the data's engine, shared by the exact evaluation and refine (built and stabilised once)
        # (not one kept from training: cost.engine rebinds one template per shape, a batch's too when b = n)
        engine = None
        if self._hand_over_rule(cost, data, weights, reg, sizes, parallel) is not None:
            engine = cost.engine(data, reg)
        value, se, method, log_z, kl, kl_se = self._evaluate(
            data, weights, torch.Generator().manual_seed(derive_seed(seed, "final")), marginal_kl=True, engine=engine
        )
        if self._should_refine(method, value, kl, reg, cost):
            flops = max(1.0, exact_work(cost, sizes)[0])
            f_s = self._potentials_on(data)
            f_new, v_new, _, kl, self.refine_sweeps_, gain, self.refine_start_ = refine_on_data(
                cost,
                data,
                f_s,
                weights,
                reg,
                REFINE_TARGET,
                max(10, min(REFINE_MAX_SWEEPS, int(REFINE_FLOPS / flops))),
                engine=engine,
            )
            self.value_networks_ = _like_input(value, ref, self._is_numpy)
            self.data_refinement_ = [(g - f).detach() for f, g in zip(f_s, f_new)]
            value = v_new.to(value.dtype)
            rising = gain > REFINE_TARGET * max(abs(float(value.detach())), reg)
            if self.warn and rising:
                warnings.warn(
                    "NeuralEMOT: the refine budget (%d exact Sinkhorn sweeps on the data) ended while the dual still "
                    "rose by %.2g (%.2g%%) over the last 10 sweeps: the exact dual %.6g (networks alone: %.6g) is "
                    "likely still below the optimum by more than that (slow Sinkhorn convergence: heavy tails, "
                    "small reg); polish with emot_sinkhorn(a_s, M, reg, warmstart=est.data_potentials())"
                    % (
                        self.refine_sweeps_,
                        gain,
                        100.0 * gain / max(abs(float(value.detach())), reg),
                        float(value.detach()),
                        float(self.value_networks_),
                    ),
                    UserWarning,
                    stacklevel=2,
                )
        if parallel is not None and not value.requires_grad:  # rank 0's figures on every rank, to the bit
            v0, se, log_z = parallel.broadcast_floats(float(value), se, log_z)
            value = torch.tensor(v0, dtype=value.dtype, device=value.device)
        self.value_ = _like_input(value, ref, self._is_numpy)
        self.value_se_ = se
        self.value_method_ = method
        self.log_partition_ = log_z
        self.marginal_kl_ = kl
        self.marginal_kl_se_ = kl_se
        self.gap_estimate_ = None if kl is None else reg * float(sum(kl))
        self.timings_ = {
            "train": trainer.timings["train"],
            "held_out": trainer.timings["eval"],
            "final_evaluation": time.perf_counter() - t_eval,
            "total": time.perf_counter() - t_start,
        }
        if self.estimator == "aligned":
            self._check_aligned(data, weights)
        # (after refine the value no longer rests on the networks at rare tuples: the refine and gap checks speak)
        if self.warn and method == "exact" and trainer.best is not None and not self.refine_sweeps_:
            held, held_se = (
                trainer.best[0],
                trainer.history["eval_se"][trainer.history["eval_value"].index(trainer.best[0])],
            )
            if held - float(value.detach()) > max(5.0 * held_se, 1e-2 * abs(float(value.detach()))):
                warnings.warn(
                    "NeuralEMOT: the exact dual on the data (%.6g) is far below the held-out estimate (%.6g, standard "
                    "error %.2g): the potentials are poor on tuples the batches rarely hold (heavy tails, outliers); "
                    "the value is a valid but loose lower bound: raise batch_size, standardise or clip the data, or "
                    "use emot_sinkhorn" % (float(value.detach()), held, held_se),
                    UserWarning,
                    stacklevel=2,
                )
        gap_se = 0.0 if kl_se is None else reg * float(np.sqrt(np.sum(np.square(kl_se))))
        gap_large = kl is not None and self.gap_estimate_ - 2.0 * gap_se > GAP_WARN * max(
            abs(float(value.detach())), reg
        )
        if self.warn and gap_large and trainer.converged:  # (a fit that did not converge says so below)
            warnings.warn(self._gap_message(float(value.detach()), method, kl, gap_se), UserWarning, stacklevel=2)
        # (training handed over to refine: the value rests on the refine, whose own warning speaks)
        handed = trainer.handed_over and self.refine_sweeps_
        if self.warn and trainer.min_steps is not None and not trainer.converged and not handed:
            h = trainer.history
            last = "%.6g (standard error %.2g)" % (h["eval_value"][-1], h["eval_se"][-1]) if h["eval_value"] else "none"
            why = (
                "still improving at learning rate %.3g" % trainer.optimizer.param_groups[0]["lr"]
                if trainer.has_rule
                else "the stopping rule needs at least %d steps (eval_every x patience x %d rate levels)"
                % (trainer.min_steps, trainer.lr_levels)
            )
            gap = (
                " (its plan misses its marginals on the data: likely %.2g%% below the optimum)"
                % (100.0 * self.gap_estimate_ / max(abs(float(value.detach())), reg))
                if gap_large
                else ""
            )
            warnings.warn(
                "NeuralEMOT: the step budget max_iter=%d (numItermax of emot_neural) ended before the held-out "
                "dual converged (last held-out "
                "estimate %s; %s): the value may be low%s; raise max_iter, or raise batch_size (lower variance) or lr"
                % (n_iter, last, why, gap),
                UserWarning,
                stacklevel=2,
            )
        return self

    def _hand_over_rule(self, cost, data, weights, reg, sizes, parallel):
        r"""The trainer's ``hand_over`` test where ``refine`` would finish on the data, else ``None``.

        At the 2nd, 4th, 8th, ... held-out estimate (one process, a balanced
        problem with a graph engine and an exact evaluation), the
        exact dual of the current networks on the data is compared with that
        of zero potentials: training stops (and ``refine``, which then starts
        from zero, finishes) when the networks do *worse* on the data than
        zero potentials while their held-out estimate is above it -- the
        networks extrapolate badly to points the batches rarely hold (heavy
        tails), which more steps do not mend (measured on Student t data,
        chain k = 6, n = 2000, reg 0.1x the median cost: the held-out
        estimate rose to 32.43 over 1050 steps while the exact dual of the
        networks stayed near -2075; zero potentials: 11.5). The checks cost
        one log-partition of the data each, at steps twice as far apart each
        time (a schedule of steps, not of seconds: the fit does not depend on
        the machine's load).
        """
        refine = check_auto_bool(self.refine, "refine")
        if refine is False or parallel is not None or self._reg_m(len(data)) is not None:
            return None
        if getattr(cost, "pairwise_cost", None) is None or any(X.requires_grad for X in data):
            return None
        if self.evaluation == "mc" or (self.evaluation == "auto" and not exact_is_affordable(cost, sizes)):
            return None
        state = {"zero": None}

        def rule(trainer):
            held = trainer.history["eval_value"]
            m = len(held)
            if m < 2 or m & (m - 1):  # at the 2nd, 4th, 8th, ... estimate: a deterministic, shrinking share
                return False
            with torch.no_grad():
                engine = cost.engine(data, reg)  # (rebound each time: batches of n points share its template)
                if state["zero"] is None:
                    zeros = [torch.zeros_like(w) for w in weights]
                    state["zero"] = float(Potentials(engine, zeros, weights).dual(once=True))
                f_s = self._potentials_on(data, model=trainer.model)
                d_net = float(Potentials(engine, f_s, weights).dual(once=True))
            return d_net < state["zero"] < held[-1]

        return rule

    def _should_refine(self, method, value, kl, reg, cost):
        """Whether ``refine`` runs: an exact, balanced value of a pairwise cost (no autograd through the data)."""
        refine = check_auto_bool(self.refine, "refine")
        pairwise = getattr(cost, "pairwise_cost", None) is not None  # (a callable cost has no graph engine)
        if refine is False or not pairwise or method != "exact" or kl is None or value.requires_grad:
            return False
        return refine is True or reg * float(sum(kl)) > GAP_WARN * max(abs(float(value.detach())), reg)

    def _gap_message(self, value, method, kl, gap_se):
        """The warning of a plan that misses its marginals: what is wrong and what to do."""
        pct = 100.0 * self.gap_estimate_ / max(abs(value), self.reg_)
        if method == "exact":
            done = (
                " after %d refine sweeps on the data (budget spent; networks alone: %.6g)"
                % (self.refine_sweeps_, float(self.value_networks_))
                if self.refine_sweeps_
                else ""
            )
            return (
                "NeuralEMOT: the plan of the learned potentials misses its marginals on the data%s (KL up to %.3g): "
                "the exact dual %.6g is likely %.2g (%.2g%%) below the optimum (at least %.2g, certified): the "
                "networks cannot fit the potentials at isolated points (heavy tails, outliers, small reg) or "
                "training stopped early; polish with emot_sinkhorn (warmstart=est.data_potentials(), exact on "
                "this data)%s, or raise batch_size and max_iter"
                % (
                    done,
                    max(kl),
                    value,
                    self.gap_estimate_,
                    pct,
                    self.reg_ * max(kl),
                    "" if self.refine_sweeps_ else " or refine=True",
                )
            )
        return (
            "NeuralEMOT: the plan of the learned potentials misses its marginals (Monte-Carlo estimate on %d held-out "
            "batches: KL up to %.3g): the value %.6g is likely %.2g (%.2g%%, standard error %.2g) below the optimum: "
            "the networks cannot fit the potentials where the batches rarely reach (heavy tails, outliers, small "
            "reg) or training stopped early; raise batch_size and max_iter, or evaluate exactly "
            "(evaluation='exact': the dual of the potentials on the data, refined there by exact sweeps) where the "
            "engine fits, or clip / transform the data's tails"
            % (int(self.n_eval_batches), max(kl), value, self.gap_estimate_, pct, gap_se)
        )

    def _normalise(self, model, data, weights, cost, reg, gen):
        """Input standardisation and output scale of every potential, from the data."""
        k = len(data)
        m = 512
        idx = [
            torch.multinomial(w.detach().cpu().double(), m, replacement=True, generator=gen).to(w.device)
            for w in weights
        ]
        with torch.no_grad():
            c = cost.at_tuples([X[i] for X, i in zip(data, idx)])
            scale = float(torch.mean(torch.abs(c))) / k
        scale = max(scale, reg)
        for X, w, phi in zip(data, weights, model.potentials):
            X = X if self.shift_ is None else X - self.shift_
            mean = (w[:, None] * X).sum(0)
            std = torch.sqrt((w[:, None] * (X - mean) ** 2).sum(0))
            std = torch.where(std > 0, std, torch.ones_like(std))
            phi.set_normalisation(mean.to(phi.mean.dtype), std.to(phi.std.dtype), scale)

    def _potentials_on(self, X_s, grad=False, model=None):
        """``[φ_i(X_i)]`` in the dtype of ``X_s`` (``potentials_`` or ``model`` run in the training dtype)."""
        ctx = torch.enable_grad() if grad else torch.no_grad()
        out = []
        model = self.potentials_ if model is None else model
        with ctx:
            for phi, X in zip(model.potentials, X_s):
                f = phi(self._net_input(X, phi.mean.dtype))
                out.append(f.to(X.dtype))
        return out

    def _net_input(self, X, dtype):
        """``X`` as the networks take it: minus the common shift (in ``X``'s dtype), then cast to ``dtype``."""
        shift = getattr(self, "shift_", None)
        if shift is not None:
            X = X - shift.to(X.dtype if X.dtype.is_floating_point else torch.float64)
        return X.to(dtype)

    def _evaluate(self, data, weights, generator, marginal_kl=False, engine=None):
        f_s = self._potentials_on(data, grad=any(X.requires_grad for X in data))
        reg_m = self._reg_m(len(data))
        value, se, method, log_z, *kl = evaluate_dual(
            self.cost_,
            data,
            f_s,
            weights,
            self.reg_,
            self.evaluation,
            self.batch_size_,
            int(self.n_eval_batches),
            generator,
            reg_m=reg_m,
            marginal_kl=marginal_kl,
            engine=engine,
        )
        return (value, se, method, (log_z if reg_m is None else 0.0)) + tuple(kl)  # unbalanced: own mass

    def _check_aligned(self, data, weights):
        gen = torch.Generator().manual_seed(derive_seed(self.seed_, "aligned-check"))
        b = 4096
        idx = [
            torch.multinomial(w.detach().cpu().double(), b, replacement=True, generator=gen).to(w.device)
            for w in weights
        ]
        Xb = [X[i] for X, i in zip(data, idx)]
        with torch.no_grad():
            z = aligned_exponents(self.cost_, Xb, self._potentials_on(Xb), self.reg_)
        ess = aligned_effective_size(z)
        self.aligned_effective_size_ = ess / b
        if ess < 0.05 * b:
            warnings.warn(
                "estimator='aligned': the aligned tuples' weights are concentrated on few tuples (effective "
                "sample size %.1f of %d, %.2g%%): the aligned estimate of E[exp] is unreliable here (wide cost at "
                "reg=%g); use estimator='combinatorial'" % (ess, b, 100.0 * ess / b, self.reg_),
                UserWarning,
                stacklevel=3,
            )

    def _reg_m(self, k):
        """The validated ``reg_m`` (a tuple of k floats), or ``None`` for a balanced problem."""
        from ..unbalanced import check_reg_m

        return None if self.reg_m is None else check_reg_m(self.reg_m, k)

    # ---- what the fitted potentials give ------------------------------------
    def _check_fitted(self):
        if getattr(self, "potentials_", None) is None:
            raise RuntimeError("this NeuralEMOT is not fitted yet: call fit(X_s) first")

    def _as_data(self, X_s, a_s):
        if X_s is None:
            return self.X_fit_, self.a_fit_, None
        nx, X_s = check_point_clouds(X_s)
        if len(X_s) != len(self.potentials_):
            raise ValueError("X_s must hold %d clouds (the fitted k), got %d" % (len(self.potentials_), len(X_s)))
        for i, (X, phi) in enumerate(zip(X_s, self.potentials_.potentials)):
            if int(X.shape[1]) != phi.d:
                raise ValueError("X_s[%d] must have dimension %d (as at fit), got %d" % (i, phi.d, X.shape[1]))
        sizes = tuple(int(X.shape[0]) for X in X_s)
        a_s = check_weights(nx, a_s, sizes, X_s[0], clouds="X_s")
        dev = self.X_fit_[0].device
        dt = torch.float64 if str(nx) == "numpy" else X_s[0].dtype
        return [_to_torch(X, dev, dt) for X in X_s], [_to_torch(a, dev, dt) for a in a_s], X_s[0]

    def value(self, X_s: Optional[Sequence[Array]] = None, a_s: Weights = None) -> Any:
        r"""Evaluate the dual of the fitted potentials on clouds, as ``value_`` on the training ones.

        Parameters
        ----------
        X_s : list of k arrays of shape (m_i, d_i), optional
            Clouds of the fitted dimensions (default: the training clouds,
            then ``value_`` is returned).
        a_s : list of k weight vectors, optional
            Weights of ``X_s`` (uniform by default; not used without ``X_s``).

        Returns
        -------
        value : float or torch scalar
            The dual :math:`D(\varphi)` on ``X_s`` (exact or Monte Carlo, as
            chosen by ``evaluation``): a float for NumPy clouds, a torch
            scalar of their dtype and device otherwise.
        """
        self._check_fitted()
        data, weights, ref = self._as_data(X_s, a_s)
        if X_s is None:
            return self.value_
        value, _, _, _ = self._evaluate(data, weights, torch.Generator().manual_seed(derive_seed(self.seed_, "v")))
        return _like_input(value, ref, str(type(ref).__module__).startswith("numpy"))

    def potential(self, i: int, x: Array) -> Array:
        r"""Evaluate the potential :math:`\varphi_i` at the rows of ``x``.

        Parameters
        ----------
        i : int
            The marginal, in ``[0, k)``.
        x : array of shape (m, d_i)
            Points (NumPy array or torch tensor).

        Returns
        -------
        phi : array of shape (m,)
            :math:`\varphi_i(x)`: NumPy float64 for a NumPy ``x``, else a
            tensor of ``x``'s dtype (differentiable in ``x``).
        """
        self._check_fitted()
        k = len(self.potentials_)
        if not isinstance(i, (int, np.integer)) or not 0 <= i < k:
            raise ValueError("i must be a marginal index in [0, %d), got %r" % (k, i))
        check_query_points(x, "x", self.potentials_[i].d)
        is_np = isinstance(x, np.ndarray)
        X = _to_torch(x, self.X_fit_[0].device, torch.float64 if is_np else None)
        if X.ndim != 2 or X.shape[1] != self.potentials_[i].d:
            raise ValueError("x must have shape (m, %d), got %s" % (self.potentials_[i].d, tuple(X.shape)))
        f = self._potentials_on_single(i, X)
        return f.detach().cpu().numpy() if is_np else f

    def _potentials_on_single(self, i, X):
        phi = self.potentials_[i]
        with torch.set_grad_enabled(X.requires_grad):
            return phi(self._net_input(X, phi.mean.dtype)).to(X.dtype)

    def data_potentials(self) -> List[Array]:
        r"""Evaluate the potentials on the training clouds: a ``warmstart`` for :func:`~ot_multimarginal.emot_sinkhorn`.

        Returns
        -------
        potentials : list of k arrays of shape (n_i,)
            :math:`[\varphi_i(X_i)]`, in the type of the training inputs
            (NumPy float64, or tensors of their dtype).
        """
        self._check_fitted()
        f = self._potentials_on(self.X_fit_)
        refinement = getattr(self, "data_refinement_", None)
        if refinement is not None:  # the potentials of value_: refined on the data
            f = [g + r.to(g.dtype) for g, r in zip(f, refinement)]
        return [x.cpu().numpy() if self._is_numpy else x.to(self._ref.dtype) for x in f]

    def plan_density(self, *xs: Array) -> Array:
        r"""Evaluate the density of the plan with respect to :math:`\otimes_i\mu_i` at ``m`` tuples.

        :math:`e^{(\sum_i \varphi_i(x_i) - c(x_1,\dots,x_k))/\varepsilon - \Lambda}`,
        :math:`\Lambda` = ``log_partition_`` (so it integrates to one over the
        product of the training measures when the value was exact).

        Parameters
        ----------
        *xs : k arrays of shape (m, d_i)
            ``xs[i][t]`` is the i-th point of the t-th tuple.

        Returns
        -------
        density : array of shape (m,)
            NumPy float64 for NumPy inputs, else a tensor (no gradient).

        Notes
        -----
        The density is unbounded in general, also for the exact potentials:
        for Gaussian marginals it is the ratio of a correlated Gaussian to the
        product of its marginals, which grows like :math:`e^{\alpha t^2}` along
        the directions where the plan concentrates (k = 2, standard 1-d
        marginals, correlation :math:`\rho`: :math:`\alpha = \rho/(1+\rho)`
        on the diagonal). Far from the data it may therefore overflow, with a
        ``UserWarning``; :meth:`plan_log_density` gives its logarithm.
        """
        z, is_np = self._plan_log_density(xs, "plan_density")
        d = _exp_of_query(z, "plan_density", "query tuples")
        return d.cpu().numpy() if is_np else d

    def plan_log_density(self, *xs: Array) -> Array:
        r"""Evaluate the log of :meth:`plan_density` at ``m`` tuples (finite where the density overflows).

        :math:`(\sum_i \varphi_i(x_i) - c(x_1,\dots,x_k))/\varepsilon - \Lambda`.

        Parameters
        ----------
        *xs : k arrays of shape (m, d_i)
            ``xs[i][t]`` is the i-th point of the t-th tuple.

        Returns
        -------
        log_density : array of shape (m,)
            NumPy float64 for NumPy inputs, else a tensor (no gradient).
        """
        z, is_np = self._plan_log_density(xs, "plan_log_density")
        return z.cpu().numpy() if is_np else z

    def _plan_log_density(self, xs, caller):
        self._check_fitted()
        k = len(self.potentials_)
        if len(xs) != k:
            raise ValueError("%s needs %d arrays (one point per marginal and tuple), got %d" % (caller, k, len(xs)))
        [check_query_points(x, "xs[%d]" % i, self.potentials_[i].d) for i, x in enumerate(xs)]
        is_np = isinstance(xs[0], np.ndarray)
        dev = self.X_fit_[0].device
        X = [_to_torch(x, dev, torch.float64 if is_np else None) for x in xs]
        m = int(X[0].shape[0])
        for i, x in enumerate(X):
            if x.ndim != 2 or x.shape[0] != m or x.shape[1] != self.potentials_[i].d:
                raise ValueError(
                    "xs[%d] must have shape (%d, %d), got %s" % (i, m, self.potentials_[i].d, tuple(x.shape))
                )
        with torch.no_grad():
            f = self._potentials_on(X)
            return aligned_exponents(self.cost_, X, f, self.reg_) - self.log_partition_, is_np

    def dual_potentials(self, X_s: Optional[Sequence[Array]] = None, a_s: Weights = None) -> Potentials:
        r"""The fitted potentials on clouds, as :class:`~ot_multimarginal.potentials.Potentials` of their engine.

        :math:`\varphi_i(X_i)` with the weights ``a_s`` and the exact engine
        of the pairwise cost on the clouds: the plan, its marginals and
        pairwise marginals, the dual and the value of the potentials on the
        clouds (the plan is that of the potentials as they are: use
        ``.normalized()`` for mass one, as :meth:`plan` does).

        Parameters
        ----------
        X_s : list of k arrays of shape (m_i, d_i), optional
            Clouds of the fitted dimensions (default: the training clouds).
        a_s : list of k weight vectors, optional
            Weights of ``X_s`` (uniform by default; not used without ``X_s``).

        Returns
        -------
        potentials : Potentials
            NumPy float64 arrays for NumPy clouds, else torch tensors (no gradient).

        Raises
        ------
        ValueError
            With a callable ``cost`` (the engine needs a pairwise cost).
        MemoryError
            When the exact engine on the clouds is beyond the budget.
        """
        self._check_fitted()
        data, weights, _ = self._as_data(X_s, a_s)
        is_np = self._is_numpy if X_s is None else isinstance(X_s[0], np.ndarray)
        return self._dual_potentials(data, weights, is_np)

    def _dual_potentials(self, data, weights, numpy=False):
        """:meth:`dual_potentials` on torch clouds and weights (any non-negative weights), NumPy arrays if ``numpy``."""
        if not isinstance(self.cost_, PointCloudCost):
            raise ValueError("the factored plan needs a pairwise cost (graph=...), not a callable cost")
        sizes = [int(X.shape[0]) for X in data]
        if not exact_is_affordable(self.cost_, sizes, 10 * EXACT_FLOPS, 4 * EXACT_ENTRIES):
            raise MemoryError(
                "the plan on clouds of sizes %s needs the exact engine on the data, beyond the budget; "
                "use plan_density at sampled tuples instead" % (sizes,)
            )
        f = self._potentials_on(data)
        if numpy:
            data, f, weights = ([x.detach().cpu().numpy() for x in xs] for xs in (data, f, weights))
        return Potentials(self.cost_.pairwise_cost(data).make_engine(self.reg_), f, weights)

    def plan(self, X_s: Optional[Sequence[Array]] = None, a_s: Weights = None) -> "FactoredPlan":
        r"""Build the plan of the potentials on clouds as a :class:`~ot_multimarginal.FactoredPlan`.

        Log-scalings :math:`g_i = \varphi_i(x_i)/\varepsilon + \log a_i`,
        shifted so that the plan has mass one. Marginals, pairwise marginals,
        sampling and ``round()`` are those of
        :class:`~ot_multimarginal.FactoredPlan`. NumPy float64 arrays for NumPy
        inputs, torch tensors otherwise.

        Parameters
        ----------
        X_s : list of k arrays of shape (m_i, d_i), optional
            Clouds of the fitted dimensions (default: the training clouds).
        a_s : list of k weight vectors, optional
            Weights of ``X_s`` (uniform by default; not used without ``X_s``).

        Returns
        -------
        plan : FactoredPlan
            The plan on the clouds (mass one, marginals close to ``a_s``).

        Raises
        ------
        ValueError
            With a callable ``cost`` (the factored plan needs a pairwise cost).
        MemoryError
            When the exact engine on the clouds is beyond the budget (use
            :meth:`plan_density` at sampled tuples).
        """
        with torch.no_grad():
            pot = self.dual_potentials(X_s, a_s)
            # balanced: mass one; unbalanced: the plan's own mass, exp((⊕φ - C)/ε)·⊗a with the true cost
            return (pot.normalized() if self._reg_m(len(pot)) is None else pot).plan()

    def pairwise_plan(self, i: int, j: int, X_i: Optional[Array] = None, X_j: Optional[Array] = None) -> Array:
        r"""Pairwise marginal of the plan on marginals ``(i, j)``.

        Without points: the ``(n_i, n_j)`` matrix of the plan on the training
        clouds (sums to one). With points ``X_i`` (``(m_i, d_i)``) and ``X_j``:
        the density of the ``(i, j)`` marginal w.r.t. :math:`\mu_i\otimes\mu_j`
        at every pair, the other marginals integrated exactly over the training
        clouds (shape ``(m_i, m_j)``).

        Parameters
        ----------
        i, j : int
            Two different marginals in ``[0, k)``.
        X_i : array of shape (m_i, d_i), optional
            Points of marginal ``i`` (give both ``X_i`` and ``X_j``, or neither).
        X_j : array of shape (m_j, d_j), optional
            Points of marginal ``j``.

        Returns
        -------
        P_ij : array of shape (n_i, n_j) or (m_i, m_j)
            The pairwise plan on the training clouds, or the density at the
            given points: NumPy float64 for NumPy inputs, else a tensor.
        """
        self._check_fitted()
        check_marginal_pair(i, j, len(self.potentials_))
        if (X_i is None) != (X_j is None):
            raise ValueError("give both X_i and X_j, or neither")
        if X_i is None:
            return self.plan().pairwise_marginal(i, j)
        check_query_points(X_i, "X_i", self.potentials_[i].d), check_query_points(X_j, "X_j", self.potentials_[j].d)
        is_np = isinstance(X_i, np.ndarray)
        dt = torch.float64 if is_np else X_i.dtype
        dev = self.X_fit_[0].device
        data = [X.to(dt) for X in self.X_fit_]
        weights = [w.to(dt) for w in self.a_fit_]
        data[i] = _to_torch(X_i, dev, dt)
        data[j] = _to_torch(X_j, dev, dt)
        weights[i] = torch.ones(data[i].shape[0], dtype=dt, device=dev)
        weights[j] = torch.ones(data[j].shape[0], dtype=dt, device=dev)
        with torch.no_grad():
            L = self._dual_potentials(data, weights).log_pairwise_marginal(i, j) - self.log_partition_
            D = _exp_of_query(L, "pairwise_plan", "query pairs")
        return D.cpu().numpy() if is_np else D

    # ---- persistence -------------------------------------------------------
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Save the fitted estimator (parameters, networks, training clouds, fitted attributes) with ``torch.save``.

        Parameters
        ----------
        path : str or path-like
            The file to write.

        Raises
        ------
        ValueError
            With a callable ``cost`` or ``metric`` (not serialisable).
        """
        self._check_fitted()
        params = self.get_params(deep=False)
        if callable(params["cost"]) or any(
            callable(m)
            for m in (params["metric"] if isinstance(params["metric"], (list, tuple)) else [params["metric"]])
        ):
            raise ValueError(
                "cannot save an estimator with a callable cost or metric: rebuild it and load the "
                "potentials with load_state_dict"
            )
        torch.save(self._state_dict_for_save(), check_save_path(path))

    def _state_dict_for_save(self, **params: Any) -> Dict[str, Any]:
        """The fitted estimator as picklable CPU values (the content of :meth:`save`'s file).

        ``params`` replace constructor parameters in the state (e.g. a callable
        metric that the caller rebuilds at load, :meth:`_from_saved_state`).
        """
        self._check_fitted()
        params = dict(self.get_params(deep=False), **params)
        return {
            "params": {k: v for k, v in params.items() if k != "dtype"},
            "dtype": str(self.dtype) if self.dtype is not None else None,
            "dims": [p.d for p in self.potentials_.potentials],
            "potentials": self.potentials_.state_dict(),
            "train_dtype": str(self.potentials_[0].mean.dtype),
            "X_fit": [X.detach().cpu() for X in self.X_fit_],
            "a_fit": [a.detach().cpu() for a in self.a_fit_],
            "fitted": {
                n: getattr(self, n)
                for n in (
                    "value_se_",
                    "value_method_",
                    "log_partition_",
                    "n_iter_",
                    "history_",
                    "timings_",
                    "reg_",
                    "batch_size_",
                    "seed_",
                    "stopped_early_",
                    "converged_",
                    "shift_",
                    "marginal_kl_",
                    "marginal_kl_se_",
                    "gap_estimate_",
                    "refine_sweeps_",
                    "refine_start_",
                    "handed_over_",
                    "_is_numpy",
                )
            },
            "value_networks": None if self.value_networks_ is None else float(self.value_networks_),
            "data_refinement": None
            if self.data_refinement_ is None
            else [r.detach().cpu() for r in self.data_refinement_],
            "value": self.value_ if self._is_numpy else self.value_.detach().cpu(),
            "ref_dtype": None if self._is_numpy else str(self._ref.dtype),
        }

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], device: Any = None) -> "NeuralEMOT":
        """Load an estimator saved by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The file written by :meth:`save`.
        device : str or torch.device, optional
            Where to put the networks and clouds (default: the CPU).

        Returns
        -------
        estimator : NeuralEMOT
            The fitted estimator, ready for :meth:`value`, :meth:`plan`, ...

        Raises
        ------
        ValueError
            When ``path`` is not a file of :meth:`NeuralEMOT.save` (a
            :class:`~ot_multimarginal.neural.NeuralMGW` file included).
        """
        return cls._from_saved_state(_read_saved(path, "NeuralEMOT"), check_device(device))

    @classmethod
    def _from_saved_state(cls, state: Dict[str, Any], device: Any = None, **params: Any) -> "NeuralEMOT":
        """The fitted estimator of a :meth:`_state_dict_for_save` state, on ``device`` (default: the CPU).

        ``params`` replace saved constructor parameters (e.g. the callable metric left out of the state).
        """
        renamed = cls.__init__.__renamed_kwargs__  # files written before the renaming
        params = {renamed.get(n, n): v for n, v in dict(state["params"], **params).items()}
        params["dtype"] = _torch_dtype(state["dtype"])
        if device is not None:
            params["device"] = device
        est = cls(**params)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        train_dtype = _torch_dtype(state["train_dtype"])
        model = PotentialSet(
            state["dims"],
            est.width,
            est.depth,
            est.activation,
            None,
            train_dtype,
            quadratic=any(n.endswith(".quad") for n in state["potentials"]),
        )
        model.load_state_dict(state["potentials"])
        est.potentials_ = model.to(dev)
        est.X_fit_ = [X.to(dev) for X in state["X_fit"]]
        est.a_fit_ = [a.to(dev) for a in state["a_fit"]]
        est.shift_, est.converged_ = None, False  # files written before these attributes
        est.marginal_kl_ = est.gap_estimate_ = est.marginal_kl_se_ = None
        est.refine_sweeps_, est.refine_start_, est.handed_over_ = 0, None, False  # (files written before them)
        for n, v in state["fitted"].items():
            setattr(est, n, v)
        refinement = state.get("data_refinement")
        est.data_refinement_ = None if refinement is None else [r.to(dev) for r in refinement]
        est.value_networks_ = state.get("value_networks")
        if est.value_networks_ is not None and not est._is_numpy:
            est.value_networks_ = torch.tensor(est.value_networks_, dtype=est.X_fit_[0].dtype, device=dev)
        if est.shift_ is not None:
            est.shift_ = est.shift_.to(dev)
        est.cost_ = make_cost(len(state["dims"]), est.graph, est.metric, est.cost, est.center, est.edges)
        est._ref = None if est._is_numpy else est.X_fit_[0]
        est.value_ = state["value"] if est._is_numpy else state["value"].to(dev)
        return est

    def __repr__(self):
        fitted = getattr(self, "potentials_", None) is not None
        extra = ", value_=%.6g (%s)" % (float(self.value_), self.value_method_) if fitted else ""
        return "NeuralEMOT(reg=%r, graph=%r, estimator=%r%s)" % (self.reg, self.graph, self.estimator, extra)


def _common_shift(cost, data, weights):
    """The common translation of the clouds (mean of their weighted means), when the cost allows it; else None.

    Computed in float64 on the clouds of the evaluation dtype, before any cast
    to the training dtype: a translation of the data by 1e4 then changes
    nothing in float32 (for a translation-invariant cost).
    """
    if not getattr(cost, "translation_invariant", False) or len({int(X.shape[1]) for X in data}) != 1:
        return None
    means = [(w.double()[:, None] * X.detach().double()).sum(0, keepdim=True) for X, w in zip(data, weights)]
    return reference_point(means).to(data[0].dtype)


def _default_batch(cost, k):
    """Points per marginal of a default batch: as large as a step's engine affords.

    The batch estimator's bias (of the log-partition, hence of the learned
    potentials) falls like 1/b: 512 on trees (O(|E| b²) per step), 128 on
    one cycle (O(k b³)), 64 on denser graphs with k >= 4 (O(b^tw)), 128 for a callable cost.
    """
    if not cost.pairwise:
        return 128
    if _is_dense_graph(cost):
        return 64 if k >= 4 else 128
    return 128 if len(cost.edges) >= k else 512


def _is_dense_graph(cost):
    k = cost.k
    return len(cost.edges) > k


def _exp_of_query(z, caller, what):
    """``exp(z)`` of a log-density at query points, with a ``UserWarning`` where it overflows.

    The density w.r.t. the product of the marginals is unbounded in general
    (for Gaussian data also the exact one, see :meth:`NeuralEMOT.plan_density`):
    bounding the learned quadratic term would bias the potentials there, so
    an overflow is said, never silent, and :meth:`NeuralEMOT.plan_log_density`
    gives the log. One host sync, on a query only (never in training).
    """
    d = torch.exp(z)
    over = torch.isposinf(d) & torch.isfinite(z)
    if bool(over.any()):
        warnings.warn(
            "%s: the density overflows %s at %d of %d %s (log-density up to %.4g): the density w.r.t. the product "
            "of the marginals is unbounded (also the exact one: e.g. along the directions where the plan "
            "concentrates, for Gaussian data), and far from the training data the learned potentials "
            "extrapolate; use plan_log_density, or query points near the training clouds"
            % (caller, str(d.dtype).replace("torch.", ""), int(over.sum()), int(z.numel()), what, float(z.max())),
            UserWarning,
            stacklevel=3,
        )
    return d
