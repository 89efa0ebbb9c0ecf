# -*- coding: utf-8 -*-
r"""The training loop: mini-batch gradient ascent on the dual, one joint step of all k potentials.

Structure (one place for each part, so that data-parallel training and
checkpointing plug in without touching the rest):

:class:`Trainer`
    holds the whole state of a run: the k potentials (``model``, a
    :class:`~.networks.PotentialSet`), the optimiser (:class:`Adam`), the
    learning-rate schedule (cosine decay), the batch sampler
    (:class:`~.sampling.BatchSampler`, its own random stream), the step
    counter and the history. :meth:`Trainer.state_dict` /
    :meth:`Trainer.load_state_dict` save and restore all of it (to the bit).
:meth:`Trainer.step`
    one step: draw a batch (``b`` indices per marginal), evaluate the k
    networks on it, the batch dual (:func:`~.objectives.batch_dual`, by the
    chosen estimator), ``loss = -dual / scale``, backward,
    :meth:`Trainer.reduce_gradients` (the single place where a data-parallel
    wrapper all-reduces the gradients; a no-op here), gradient-norm
    clipping, the optimiser and schedule steps. A non-finite loss raises a
    ``FloatingPointError`` naming the likely causes. On a GPU the steps are
    *sync-free* (:meth:`Trainer.step_async`: nothing read on the host; the
    duals and checks are read once per check by :meth:`Trainer.sync`).
:meth:`Trainer.run`
    steps within the budget ``n_iter``, evaluating the held-out dual every
    ``eval_every`` steps on fixed held-out batches and keeping the best
    potentials, with an optional tqdm bar. The stopping rule
    (:meth:`Trainer._check_progress`): an estimate *improves* when it beats
    the best one by more than :data:`SE_FRACTION` of its standard error (and
    by ``tol`` relative);
    after ``patience`` estimates without improvement (a plateau) the
    learning rate is divided by :data:`LR_DECAY`; a plateau at the smallest
    rate (``lr * lr_min_factor``) is convergence (``converged = True``) and
    training stops. A budget that ends first leaves ``converged = False``
    (the estimator warns). ``patience=None``, ``eval_every=0`` or a budget
    too short for the rule to conclude (:attr:`Trainer.min_steps`): a
    cosine decay over the whole budget and no stopping rule.

Data-parallel training and checkpoints plug in as two optional objects
(so every estimator trained by a ``Trainer`` has both):
``parallel`` (a :class:`~.distributed.DataParallel`: its slice of the batch
and the gathered potentials in :meth:`Trainer.forward`, the gradients'
all-reduce in :meth:`Trainer.reduce_gradients`, metrics reduced, parameters
broadcast before and checked after training, the bar on rank 0 only) and
``checkpoint`` (a :class:`~.checkpoint.Checkpointer`, called after every
step and at the end of training).
"""
# License: MIT License

import contextlib
import copy
import math
import time
import warnings

import torch

from .._backend import deferred_checks
from .evaluation import monte_carlo_dual
from .objectives import batch_dual

__all__ = ["Trainer", "Adam", "LR_DECAY"]

LR_DECAY = 10.0
"""The learning rate is divided by this at every plateau of the held-out dual."""

SE_FRACTION = 0.1
"""A held-out estimate improves when it beats the best by more than this fraction of its standard error.

The held-out batches are the same at every estimate, so the difference of two
estimates is far less noisy than either (its standard error is that of the
value, not of the change)."""


class Adam:
    """Adam (Kingma and Ba; torch's defaults: betas 0.9, 0.999, eps 1e-8, no weight decay) on multi-tensor ops.

    The update of :class:`torch.optim.Adam`, without it: building any
    ``torch.optim`` optimiser imports ``torch._dynamo`` on first use (2.5 s
    measured, paid by the first fit of every process: half the paper's
    complete k = 4 row). One update of all the networks' parameters per
    step: torch's fused Adam kernel where it exists for the parameters'
    device and dtype (the same kernel as ``torch.optim.Adam(fused=True)``, to
    the bit; 3-4 times faster than the multi-tensor update on the CPU), else
    the multi-tensor (``torch._foreach_*``) update of ``torch.optim.Adam(foreach=True)``. ``param_groups`` (one group,
    its ``'lr'`` set by the schedule), ``zero_grad``, ``step``,
    ``state_dict`` and ``load_state_dict`` as in ``torch.optim``.
    """

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        self.param_groups = [{"params": list(params), "lr": float(lr)}]
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = float(eps)
        self.n_steps = 0
        ps = self.param_groups[0]["params"]
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in ps]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in ps]
        # the fused kernel's step counts (float32 scalars on the parameters' devices)
        self._steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in ps]
        self.fused = hasattr(torch, "_fused_adam_")

    def zero_grad(self, set_to_none=True):
        """Drop the gradients (``set_to_none=False``: set them to zero)."""
        for p in self.param_groups[0]["params"]:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self):
        """One Adam update of the parameters that have a gradient."""
        group = self.param_groups[0]
        sel = [i for i, p in enumerate(group["params"]) if p.grad is not None]
        if not sel:
            return
        ps = [group["params"][i] for i in sel]
        grads = [p.grad for p in ps]
        m = [self.exp_avg[i] for i in sel]
        v = [self.exp_avg_sq[i] for i in sel]
        b1, b2 = self.betas
        self.n_steps += 1
        if self.fused:
            steps = [self._steps[i] for i in sel]
            torch._foreach_add_(steps, 1.0)
            try:
                torch._fused_adam_(
                    ps, grads, m, v, [], steps, lr=group["lr"], beta1=b1, beta2=b2, weight_decay=0.0, eps=self.eps,
                    amsgrad=False, maximize=False,
                )  # fmt: skip
                return
            except (RuntimeError, NotImplementedError):  # no fused kernel for this device or dtype: nothing was updated
                self.fused = False
        torch._foreach_lerp_(m, grads, 1.0 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - b2)
        bias1 = 1.0 - b1**self.n_steps
        bias2 = 1.0 - b2**self.n_steps
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, math.sqrt(bias2))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(ps, m, denom, value=-group["lr"] / bias1)

    def state_dict(self):
        """The optimiser's state (moments, step count, learning rate), copies."""
        return {
            "lr": self.param_groups[0]["lr"],
            "betas": self.betas,
            "eps": self.eps,
            "n_steps": self.n_steps,
            "exp_avg": [t.detach().clone() for t in self.exp_avg],
            "exp_avg_sq": [t.detach().clone() for t in self.exp_avg_sq],
        }

    def load_state_dict(self, state):
        """Restore :meth:`state_dict` (moments copied into this optimiser's tensors)."""
        if not {"exp_avg", "exp_avg_sq", "n_steps"} <= set(state):
            raise ValueError(
                "the optimiser state is not one of this version's Adam (a checkpoint written with torch.optim.Adam "
                "by an earlier version): start afresh (resume=False) or delete the checkpoint"
            )
        self.param_groups[0]["lr"] = float(state["lr"])
        self.betas = tuple(float(b) for b in state["betas"])
        self.eps = float(state["eps"])
        self.n_steps = int(state["n_steps"])
        with torch.no_grad():
            for t in self._steps:
                t.fill_(float(self.n_steps))
            for dst, src in zip(self.exp_avg + self.exp_avg_sq, list(state["exp_avg"]) + list(state["exp_avg_sq"])):
                dst.copy_(src)


class Trainer:
    """State and steps of one training run (see the module docstring).

    Parameters
    ----------
    model : PotentialSet
        The k potential networks (trained in place).
    cost : PointCloudCost or TupleCost
        The cost (:mod:`ot_multimarginal.costs.pointcloud`).
    data : list of k tensors
        The clouds in the training dtype, on the training device.
    weights : list of k tensors
        Their weights (for the held-out estimates).
    reg : float
        Entropic regularisation ε > 0.
    estimator : {'combinatorial', 'aligned', 'ustat'}
        The mini-batch estimator of the dual (:func:`~.objectives.batch_dual`).
    sampler : BatchSampler
        The stream of training batches.
    lr : float, optional
        Adam's initial learning rate (default 1e-2), divided by
        :data:`LR_DECAY` at every plateau (cosine decay over the budget
        when ``patience`` is None).
    n_iter : int, optional
        The step budget (default 300).
    grad_clip : float or None, optional
        Gradient-norm clipping (default 1.0; ``None``: none).
    loss_scale : float, optional
        The loss is ``-dual / loss_scale`` (gradients of order one).
    eval_every : int, optional
        Steps between held-out estimates (default 50; 0: none).
    n_eval_batches : int, optional
        Held-out batches of an estimate (default 8).
    patience : int or None, optional
        Held-out estimates without improvement that make a plateau (see the
        module docstring); ``None`` (default): no stopping rule.
    tol : float, optional
        Relative improvement that counts, at least (default 1e-4); an
        improvement must also exceed the estimate's standard error.
    eval_generator : torch.Generator, optional
        Stream of the held-out batches (independent of the training batches).
    lr_min_factor : float, optional
        The smallest learning rate is ``lr * lr_min_factor`` (default 0.01).
    parallel : DataParallel or None, optional
        Data-parallel side (:mod:`.distributed`); ``None``: one process.
    checkpoint : Checkpointer or None, optional
        Periodic checkpoints (:mod:`.checkpoint`).
    reg_m : tuple of k floats, optional
        Unbalanced EMOT: the marginal penalties (:func:`~.objectives.unbalanced_dual`).
    hand_over : callable or None, optional
        ``hand_over(trainer) -> bool``, asked after every held-out estimate
        (a rank's own decision: one process only); ``True`` ends training
        there with :attr:`handed_over` set (not :attr:`converged`): the
        caller finishes the job otherwise (the estimator's ``refine`` on the
        data, when the networks do worse on the data than zero potentials).
    """

    def __init__(
        self,
        model,
        cost,
        data,
        weights,
        reg,
        estimator,
        sampler,
        lr=1e-2,
        n_iter=300,
        grad_clip=1.0,
        loss_scale=1.0,
        eval_every=50,
        n_eval_batches=8,
        patience=None,
        tol=1e-4,
        eval_generator=None,
        lr_min_factor=0.01,
        parallel=None,
        checkpoint=None,
        reg_m=None,
        hand_over=None,
    ):
        self.model = model
        self.cost = cost
        self.data = data
        self.weights = weights
        self.reg = float(reg)
        self.estimator = estimator
        self.sampler = sampler
        self.n_iter = int(n_iter)
        self.grad_clip = grad_clip
        self.loss_scale = float(loss_scale)
        self.eval_every = int(eval_every)
        self.n_eval_batches = int(n_eval_batches)
        self.patience = patience
        self.tol = float(tol)
        self.optimizer = Adam(model.parameters(), lr)
        self.lr0 = float(lr)
        self.lr_min = float(lr) * float(lr_min_factor)
        self.lr_factor = 1.0  # the plateau schedule: lr0 * lr_factor
        self.step_count = 0
        self.history = {"step": [], "batch_dual": [], "eval_step": [], "eval_value": [], "eval_se": []}
        self.best = None  # (value, step, model state)
        self.stopped_early = False
        self.converged = False
        self.hand_over = hand_over
        self.handed_over = False
        self.lr_levels = 1 + int(math.ceil(math.log(1.0 / float(lr_min_factor)) / math.log(LR_DECAY) - 1e-9))
        self._bad_evals = 0
        self.eval_generator = eval_generator if eval_generator is not None else torch.Generator().manual_seed(1)
        self._eval_state = self.eval_generator.get_state()
        self.timings = {"train": 0.0, "eval": 0.0}
        self.parallel = parallel
        self.checkpoint = checkpoint
        self.reg_m = reg_m
        # sync-free steps (no host synchronisation, see step_async()): None = on a GPU (data not on the CPU)
        self.sync_free = None
        self._pending = []  # (step, detached batch dual) not yet read on the host
        self._checks = []  # deferred certificates of the engines' scaled products
        self._underflow_warned = False

    # ---- one step ---------------------------------------------------------
    def batch(self):
        """Draw the next batch of points.

        Returns
        -------
        X_b : list of k tensors
            ``[X_i[idx_i]]`` for the sampler's next indices.
        """
        idx = self.sampler.sample()
        # non_blocking: the indices (host memory) go to a GPU without waiting for its queue
        return [X[i.to(X.device, non_blocking=True)] for X, i in zip(self.data, idx)]

    def forward(self, X_b):
        """Evaluate the potentials of a batch for the loss (a data-parallel run: see :mod:`.distributed`).

        Parameters
        ----------
        X_b : list of k tensors
            The batch.

        Returns
        -------
        X : list of k tensors
            The points of the loss.
        f : list of k tensors
            The potentials at ``X``.
        """
        if self.parallel is not None:
            return self.parallel.forward(self.model, X_b)
        return X_b, self.model(X_b)

    def reduce_gradients(self):
        """Where a data-parallel run averages the gradients over its workers (no-op in one process).

        Called once per step, after ``backward`` and before clipping and the
        optimiser step; every parameter of ``self.model`` has its ``.grad`` set.
        """
        if self.parallel is not None:
            self.parallel.reduce_gradients(p for g in self.optimizer.param_groups for p in g["params"])

    def step(self):
        """Take one joint gradient-ascent step of all k potentials.

        Returns
        -------
        dual : float
            The batch dual before the step (averaged over the ranks in a
            data-parallel run with the local loss).

        Raises
        ------
        FloatingPointError
            If the batch dual is not finite.
        """
        self.step_async()
        self.sync()
        return self.history["batch_dual"][-1]

    @property
    def is_sync_free(self):
        """Whether :meth:`step_async` leaves its checks on the device (``sync_free``; ``None``: on a GPU)."""
        if self.sync_free is not None:
            return bool(self.sync_free)
        return self.data[0].device.type != "cpu"

    def _nonfinite(self, value, step):
        return FloatingPointError(
            "the mini-batch dual is not finite (%s) at step %d: reg=%g is probably too small for the scale of "
            "the cost in this dtype, or the learning rate (lr=%g) too large; use a larger reg, rescale the data, "
            "lower lr or train in float64 (dtype=torch.float64)"
            % (value, step, self.reg, self.optimizer.param_groups[0]["lr"])
        )

    def step_async(self):
        """:meth:`step` without reading anything on the host when :attr:`is_sync_free` (on a GPU).

        On a GPU every value read by Python (``float(t)``, ``if t:``) waits
        for the device's whole queue. A sync-free step therefore keeps the
        batch dual on the device and defers its finiteness check and the
        certificates of the engines' scaled products
        (:func:`~ot_multimarginal._backend.deferred_checks`) to :meth:`sync`,
        which the training loop calls once per held-out evaluation (every
        ``eval_every`` steps, else every 50), checkpoint and at the end.
        Otherwise (on the CPU, where reading a value costs nothing) the dual
        is checked now, before the update, and the scaled products repair
        their underflowed entries.

        Returns
        -------
        dual : torch scalar
            The detached batch dual (this rank's).
        """
        X_b, f_b = self.forward(self.batch())
        sync_free = self.is_sync_free
        with deferred_checks(self._checks) if sync_free else contextlib.nullcontext():
            dual = batch_dual(self.cost, X_b, f_b, self.reg, self.estimator, self.reg_m)
        if not sync_free and not bool(torch.isfinite(dual)):
            raise self._nonfinite(float(dual.detach()), self.step_count)
        loss = -dual / self.loss_scale
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.reduce_gradients()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.step_count += 1
        self._set_lr()
        d = dual.detach()
        self._pending.append((self.step_count, d))
        return d

    def sync(self):
        """Read the pending batch duals and deferred certificates on the host: one synchronisation.

        Appends the duals to the history (averaged over the ranks with the
        local loss), raises ``FloatingPointError`` at the first non-finite one
        and warns when a scaled product of the pending steps could not
        certify its precision (see :meth:`step_async`).
        """
        if not self._pending and not self._checks:
            return
        pending, checks = self._pending, self._checks
        self._pending, self._checks = [], []
        vals = [d.reshape(1).to(torch.float64) for _, d in pending]
        if checks:
            vals.append(torch.stack([ok for ok, _ in checks]).all().reshape(1).to(torch.float64))
        host = torch.cat(vals).tolist()  # the one host synchronisation
        if checks and host[-1] == 0.0 and not self._underflow_warned:
            self._underflow_warned = True  # once a fit: the same batches underflow at every check
            warnings.warn(
                "a scaled product of the mini-batch log-partition underflowed in the %d training steps up to step %d "
                "(sync-free steps on a GPU do not repair it: its underflowed entries are taken as zero, a lower "
                "bound; reported once a fit): those batch duals may be inaccurate; use a larger reg, rescale the "
                "data or train in float64 (dtype=torch.float64)" % (len(pending), self.step_count),
                UserWarning,
                stacklevel=2,
            )
        for (step, _), value in zip(pending, host):
            if not math.isfinite(value):
                raise self._nonfinite(value, step - 1)
            if self.parallel is not None:
                value = self.parallel.reduce_metric(value)
            self.history["step"].append(step)
            self.history["batch_dual"].append(value)

    def _set_lr(self):
        """The learning rate of the next step: cosine over the budget without a stopping rule, else the plateau's."""
        if not self.has_rule:
            t = min(self.step_count, self.n_iter) / max(self.n_iter, 1)
            lr = self.lr_min + 0.5 * (self.lr0 - self.lr_min) * (1.0 + math.cos(math.pi * t))
        else:
            lr = max(self.lr0 * self.lr_factor, self.lr_min)
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    @property
    def min_steps(self):
        """The fewest steps in which the stopping rule can declare convergence (a plateau at every rate level)."""
        if self.patience is None or self.eval_every <= 0:
            return None
        return self.lr_levels * int(self.patience) * self.eval_every

    @property
    def has_rule(self):
        """Whether the stopping rule runs: ``patience``, ``eval_every`` and a budget of :attr:`min_steps` at least.

        A shorter budget is a fixed-length run (cosine decay), as ``patience=None``.
        """
        return self.min_steps is not None and self.n_iter >= self.min_steps

    # ---- held-out estimate ----------------------------------------------
    @torch.no_grad()
    def evaluate(self):
        """Estimate the dual on fixed held-out batches (the same batches at every call).

        Returns
        -------
        value : float
            The Monte-Carlo estimate of the dual.
        se : float
            Its standard error.
        """
        t0 = time.perf_counter()
        self.eval_generator.set_state(self._eval_state)
        f_s = self.model(self.data)
        value, se, _ = monte_carlo_dual(
            self.cost,
            self.data,
            f_s,
            self.weights,
            self.reg,
            self.sampler.batch_size,
            self.n_eval_batches,
            self.eval_generator,
            "combinatorial" if self.estimator != "aligned" else "aligned",
            self.reg_m,
        )
        self.timings["eval"] += time.perf_counter() - t0
        if self.parallel is not None:  # every rank takes rank 0's decisions
            return self.parallel.broadcast_floats(float(value), se)
        return float(value), se

    def _check_progress(self):
        value, se = self.evaluate()
        self.history["eval_step"].append(self.step_count)
        self.history["eval_value"].append(value)
        self.history["eval_se"].append(se)
        improved = self.best is None or value > self.best[0] + max(
            self.tol * max(abs(self.best[0]), self.reg), SE_FRACTION * se
        )
        if self.best is None or value > self.best[0]:
            self.best = (value, self.step_count, copy.deepcopy(self.model.state_dict()))
        self._bad_evals = 0 if improved else self._bad_evals + 1
        if self.hand_over is not None and self.parallel is None and self.hand_over(self):
            self.handed_over = True
            return value, True
        if not self.has_rule or self._bad_evals < self.patience:
            return value, False
        # a plateau: at the smallest rate it is convergence, else a smaller rate from the best potentials
        if self.lr0 * self.lr_factor <= self.lr_min * (1 + 1e-9):
            self.converged = True
            return value, True
        self.lr_factor /= LR_DECAY
        self._bad_evals = 0
        self.model.load_state_dict(self.best[2])
        self._set_lr()
        return value, False

    def run(self, verbose=False):
        """Train until ``n_iter`` steps (or early stopping); keep the best held-out potentials.

        Parameters
        ----------
        verbose : bool, optional
            Show a tqdm progress bar (rank 0 only).

        Returns
        -------
        self : Trainer
            The trainer, its model holding the best held-out potentials.
        """
        bar = None
        if self.parallel is not None:
            self.parallel.broadcast_module(self.model)
            verbose = verbose and self.parallel.is_main
        if verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.n_iter, initial=self.step_count, desc="emot_neural", unit="step")
        running = None
        # the host reads the pending duals every `every` steps (every step on the CPU, where it costs nothing)
        every = 1 if not self.is_sync_free else (self.eval_every if self.eval_every > 0 else 50)
        t0 = time.perf_counter()
        try:
            while self.step_count < self.n_iter and not self.stopped_early:
                self.step_async()
                stop = False
                if self.step_count % every == 0 or self.step_count == self.n_iter:
                    n_old = len(self.history["batch_dual"])
                    self.sync()
                    for v in self.history["batch_dual"][n_old:]:
                        running = v if running is None else 0.9 * running + 0.1 * v
                if self.eval_every > 0 and (self.step_count % self.eval_every == 0 or self.step_count == self.n_iter):
                    ev, stop = self._check_progress()
                    if bar is not None:
                        bar.set_postfix(batch="%.6g" % running, held_out="%.6g" % ev)
                elif bar is not None and self.step_count % max(10, every) == 0:
                    bar.set_postfix(batch="%.6g" % running)
                if bar is not None:
                    bar.update(1)
                if stop:
                    self.stopped_early = True
                if self.checkpoint is not None:
                    self.checkpoint.after_step(self, final=stop or self.step_count >= self.n_iter)
        finally:
            if bar is not None:
                bar.close()
        self.sync()
        self.timings["train"] += time.perf_counter() - t0 - self.timings["eval"]
        if self.best is not None and self.best[1] != self.step_count:
            self.model.load_state_dict(self.best[2])
        if self.parallel is not None:
            self.parallel.check_identical(self.model)
        return self

    # ---- checkpoints ------------------------------------------------------
    def state_dict(self):
        """Get the whole state of the run.

        Returns
        -------
        state : dict
            Model, optimiser, learning-rate level, sampler, streams, step,
            history, best held-out potentials, stopping-rule counters.
        """
        self.sync()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "lr_factor": self.lr_factor,
            "converged": self.converged,
            "sampler": self.sampler.state_dict(),
            "eval_generator": self._eval_state,
            "step": self.step_count,
            "history": copy.deepcopy(self.history),
            "best": self.best,
            "bad_evals": self._bad_evals,
            "stopped_early": self.stopped_early,
            "handed_over": self.handed_over,
        }

    def load_state_dict(self, state):
        """Restore the run from :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            A state of :meth:`state_dict`.
        """
        self._pending, self._checks = [], []
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_factor = float(state.get("lr_factor", 1.0))
        self.converged = bool(state.get("converged", False))
        self.sampler.load_state_dict(state["sampler"])
        self._eval_state = state["eval_generator"]
        self.step_count = int(state["step"])
        self.history = copy.deepcopy(state["history"])
        self.best = state["best"]
        self._bad_evals = int(state["bad_evals"])
        self.stopped_early = bool(state.get("stopped_early", False))
        self.handed_over = bool(state.get("handed_over", False))
