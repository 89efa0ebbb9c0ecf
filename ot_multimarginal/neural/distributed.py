# -*- coding: utf-8 -*-
r"""Data-parallel training on :mod:`torch.distributed` (``torchrun``; NCCL on GPUs, gloo on CPUs).

One :class:`DataParallel` object plugs into a :class:`~.training.Trainer`
(``parallel=``) and answers the four questions a data-parallel step asks;
nothing else of the loop changes, so every estimator trained by a
``Trainer`` runs data-parallel as it is.

Process group
    :func:`data_parallel` uses the process group when one is initialised;
    otherwise, when the ``torchrun`` environment is set (``WORLD_SIZE > 1``,
    ``RANK``, ``MASTER_ADDR``, ``MASTER_PORT``), it initialises it itself
    (``'nccl'`` for a CUDA device, ``'gloo'`` for the CPU), so a script runs
    unchanged under ``torchrun --nproc_per_node=N``; a group it created is
    destroyed at exit. Users who want another backend or options call
    :func:`torch.distributed.init_process_group` before ``fit``.
Failures
    a rank that raises (say, its ``checkpoint_dir`` cannot be created) must
    not leave the others waiting in a collective it will never join: when
    a process that owns the group exits on an uncaught exception, it
    leaves at once (after its traceback, without the exit barrier), so the
    other ranks' pending collective fails within seconds (gloo: "connection
    closed by peer") and ``torchrun`` stops the job, reporting the first
    failure, instead of every rank waiting for the group's 30-minute timeout.
Batches (:meth:`DataParallel.forward`)
    every rank holds the data and draws the same *global* index batch of
    ``b = W b_r`` points per marginal from one stream derived from the
    seed (an ``O(b)`` integer draw, negligible), and evaluates the networks
    on its own slice ``r b_r : (r+1) b_r`` only: the union of the ranks'
    batches is exactly the one-process batch of size ``b``.
Loss (``loss='global'``, the default)
    the ``k × b_r`` potential values of every rank are all-gathered
    (:func:`gather_global`: one ``torch.distributed.all_gather_single``,
    autograd carries through it) and every rank computes the same dual of
    the *global* batch (combinatorial over all :math:`b^k` tuples, aligned
    over the ``b`` rows, U-statistic): the loss, and so the trajectory, of
    the one-process run with batch ``b``. Gradient scaling: the adjoint of
    an all-gather sums, into each rank's slice, the gradients of the ``W``
    ranks' losses; here they are ``W`` copies of the same loss, so the sum
    is ``W ∂L/∂f_r``, taken locally without a second collective (what
    :func:`torch.distributed.nn.functional.all_gather`, now deprecated,
    computes with an all-to-all); the averaging all-reduce divides by
    ``W``: the parameter gradient is :math:`\sum_r \partial L/\partial f_r
    \cdot \partial f_r/\partial\theta`, the one-process gradient exactly
    (and a parameter inside the loss, e.g. of a cost, gets the same full
    gradient on every rank, which the average keeps). The points need no
    communication (every rank indexes its own copy of the data).
    ``loss='local'``: every rank's dual of its own ``b_r`` points,
    gradients averaged (DDP's semantics on a per-rank loss): the
    combinatorial estimator then averages :math:`W b_r^k` tuples instead of
    :math:`b^k` (more variance, more Jensen bias; ``k``-independent work
    per rank on the engine), a different estimator from the one-process one.
Gradients (:meth:`DataParallel.reduce_gradients`)
    one :func:`torch.distributed.all_reduce` of the flattened gradients of
    every optimised parameter, divided by ``W``: what
    :class:`~torch.nn.parallel.DistributedDataParallel` does with one
    bucket (its default bucket holds 25 MB, more than these networks), so
    there is nothing to overlap with the backward; the networks stay plain
    modules (no ``module.`` wrapper in saved states, no re-wrapping on warm
    starts), and the collectives inside the loss need no DDP bookkeeping.
Metrics (:meth:`DataParallel.reduce_metric`, :meth:`DataParallel.broadcast_floats`)
    the batch dual is averaged over the ranks (the global one is the same
    on every rank); held-out estimates are taken from rank 0 so that every
    rank takes the same early-stopping decision.
Parameters (:meth:`DataParallel.broadcast_module`, :meth:`DataParallel.check_identical`)
    broadcast from rank 0 before training (as DDP does) and checked equal
    on every rank at the end (a difference is repaired from rank 0 with a
    warning naming its size).

Which estimators decompose across ranks: the first term
:math:`\sum_i \mathrm{mean}(f_i)` is a mean over rows and decomposes; the
log-mean-exp term does not (a log of a sum over *tuples*, each tuple taking
its points from every rank's slice): the combinatorial and U-statistic
terms need every rank's potential values, and so does the aligned one
(a log of a mean over rows: per-rank log-means do not average to it).
Gathering ``k × b_r`` floats per rank is the cheapest exact way for all
three; see ``bench/bench_distributed.py`` for the measured cost against the
per-rank loss.
"""
# License: MIT License

import atexit
import os
import sys
import warnings

import torch

__all__ = ["DataParallel", "data_parallel", "gather_global", "torchrun_environment", "LOSSES"]

LOSSES = ("global", "local")


def torchrun_environment():
    """Read this process's place from the ``torchrun`` environment variables.

    Returns
    -------
    env : tuple of int or None
        ``(rank, world_size, local_rank)`` from ``RANK``, ``WORLD_SIZE`` and
        ``LOCAL_RANK`` (default: ``RANK``), or ``None`` when ``RANK``,
        ``WORLD_SIZE``, ``MASTER_ADDR`` or ``MASTER_PORT`` is missing.
    """
    env = os.environ
    if not all(v in env for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")):
        return None
    return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", env["RANK"]))


_OWNED_GROUP = []


class _GatherGlobal(torch.autograd.Function):
    """All-gather along dim 0 whose adjoint assumes the same loss on every rank (see :func:`gather_global`)."""

    @staticmethod
    def forward(ctx, tensor, group):
        import torch.distributed as dist

        world = dist.get_world_size(group)
        tensor = tensor.contiguous()
        out = torch.empty(
            (world * tensor.shape[0],) + tuple(tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device
        )
        # all_gather_single (torch >= 2.13) is the new name of all_gather_into_tensor
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        gather(out, tensor, group=group)
        ctx.rank, ctx.world = dist.get_rank(group), world
        return out

    @staticmethod
    def backward(ctx, grad):
        n = grad.shape[0] // ctx.world
        return ctx.world * grad[ctx.rank * n : (ctx.rank + 1) * n], None


def gather_global(tensor, group=None):
    """Stack the ranks' tensors along dim 0, in rank order, differentiably.

    The backward returns ``W`` times this rank's slice of the incoming
    gradient: the adjoint of the all-gather (a sum over the ranks of their
    losses' gradients) *when every rank computes the same loss* of the
    gathered tensor, as the global loss does; no second collective.

    Parameters
    ----------
    tensor : torch.Tensor of shape (b_r, ...)
        This rank's rows (the same shape on every rank).
    group : ProcessGroup, optional
        Default: the world.

    Returns
    -------
    gathered : torch.Tensor of shape (W b_r, ...)
        The ``W`` ranks' tensors, rank 0's rows first.
    """
    return _GatherGlobal.apply(tensor, group)


_FAILED = []


def _note_failure(hook):
    """``sys.excepthook`` that records an uncaught exception (this rank is failing) before reporting it."""

    def excepthook(*exc_info):
        _FAILED.append(True)
        hook(*exc_info)

    excepthook._ot_multimarginal = True
    return excepthook


def _failing():
    """Whether this process is exiting on an uncaught exception."""
    return bool(_FAILED) or getattr(sys, "last_value", None) is not None


def _destroy_owned_group():
    import torch.distributed as dist

    if _OWNED_GROUP and dist.is_available() and dist.is_initialized():
        if _failing():
            # this rank raised (e.g. its checkpoint_dir could not be created): the other ranks wait in a
            # collective that this rank will never join. A barrier here would wait for them, and they for
            # it, until the group's timeout (30 minutes for gloo): leave at once instead, so that the
            # other ranks' collective fails now (gloo: connection closed by peer) and torchrun, which
            # reports the first failure (this rank's traceback), stops the job.
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:  # pragma: no cover - a closed stream
                    pass
            os._exit(1)
        # every rank's pending collectives must be done before any rank tears the group down: gloo's
        # receive threads are not interruptible, and a peer that leaves first can abort this process
        # at exit ("terminate called without an active exception", seen on a loaded 2-core machine)
        try:
            dist.barrier()
        except Exception:  # pragma: no cover - a peer already gone: tear down what is left
            pass
        dist.destroy_process_group()
    _OWNED_GROUP.clear()


def data_parallel(distributed="auto", device=None, loss="global"):
    """Set up data-parallel training for this process, if it runs under one.

    Parameters
    ----------
    distributed : {'auto', True, False}
        ``'auto'``: data-parallel when a process group is initialised or the
        ``torchrun`` environment says ``WORLD_SIZE > 1``; ``True``: require
        it (``ValueError`` otherwise); ``False``: never (each process trains
        alone).
    device : torch.device or None
        The training device (picks the backend when the group is created here).
    loss : {'global', 'local'}
        See the module docstring.

    Returns
    -------
    parallel : DataParallel or None
        The :class:`DataParallel` of this process (the process group is
        created here under ``torchrun`` when none is initialised: NCCL on
        CUDA, gloo on the CPU), or ``None`` for single-process training
        (also for a group of one process).

    Raises
    ------
    ValueError
        With ``distributed=True`` and neither a process group nor the
        ``torchrun`` environment.
    """
    if distributed is False:
        return None
    import torch.distributed as dist

    if not dist.is_available():
        if distributed is True:
            raise ValueError("distributed=True but this torch build has no torch.distributed")
        return None
    if not dist.is_initialized():
        env = torchrun_environment()
        if env is None or env[1] <= 1:
            if distributed is True:
                raise ValueError(
                    "distributed=True needs an initialised process group (torch.distributed.init_process_group) "
                    "or the torchrun environment (RANK, WORLD_SIZE > 1, MASTER_ADDR, MASTER_PORT); found neither"
                )
            return None
        from ._validation import check_device

        dev = check_device(device) if device is not None else torch.device("cpu")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":  # one GPU per process: the LOCAL_RANK-th of this machine
            torch.cuda.set_device(env[2])
        dist.init_process_group(backend=backend)
        _OWNED_GROUP.append(True)
        atexit.register(_destroy_owned_group)
        if not getattr(sys.excepthook, "_ot_multimarginal", False):
            sys.excepthook = _note_failure(sys.excepthook)
    if dist.get_world_size() <= 1:
        return None
    return DataParallel(loss=loss)


class DataParallel:
    """The data-parallel side of a :class:`~.training.Trainer` (see the module docstring).

    Parameters
    ----------
    loss : {'global', 'local'}
        The dual of the global batch (all-gathered potential values, the
        one-process loss) or each rank's own.
    group : ProcessGroup, optional
        Default: the world.
    """

    def __init__(self, loss="global", group=None):
        import torch.distributed as dist

        if loss not in LOSSES:
            raise ValueError("loss must be one of %s, got %r" % (LOSSES, loss))
        self.loss = loss
        self.group = group
        self.rank = dist.get_rank(group)
        self.world_size = dist.get_world_size(group)
        self.backend = str(dist.get_backend(group))

    @property
    def is_main(self):
        """Rank 0: shows the progress bar and writes the checkpoints."""
        return self.rank == 0

    def local_device(self, device, from_data=False):
        """Choose this rank's training device and make it the current CUDA device.

        ``cuda`` without an index becomes ``cuda:LOCAL_RANK`` under ``torchrun``
        (one GPU per process; else the current device), and so does a CUDA
        device taken from the data (``from_data``: typically ``cuda:0`` on every
        rank); an index the user gave is kept.

        Parameters
        ----------
        device : str or torch.device
            The requested device.
        from_data : bool, optional
            Whether ``device`` was taken from the data rather than given.

        Returns
        -------
        device : torch.device
            This rank's device.
        """
        device = torch.device(device)
        if device.type == "cuda":
            env = torchrun_environment()
            if device.index is None or (from_data and env is not None):
                device = torch.device("cuda", env[2] if env is not None else torch.cuda.current_device())
            torch.cuda.set_device(device)  # NCCL's object collectives use the current device
        return device

    def check_device(self, device):
        """Check that the group's backend carries tensors of the training device (NCCL: CUDA only).

        Parameters
        ----------
        device : str or torch.device
            The training device.

        Raises
        ------
        ValueError
            With the NCCL backend and a device that is not CUDA.
        """
        if self.backend == "nccl" and torch.device(device).type != "cuda":
            raise ValueError(
                "the process group's backend is 'nccl', which carries CUDA tensors only, but training runs on %s: "
                "train on the GPUs (device='cuda') or initialise the group with backend='gloo'" % device
            )

    def local_slice(self, b):
        """Select this rank's rows of a global batch.

        Parameters
        ----------
        b : int
            Rows of the global batch (a multiple of the world size).

        Returns
        -------
        rows : slice
            Rows ``rank * b/W`` to ``(rank + 1) * b/W``.
        """
        br = b // self.world_size
        return slice(self.rank * br, (self.rank + 1) * br)

    # ---- the step --------------------------------------------------------
    def forward(self, model, X_b):
        """Evaluate the potentials of a global batch on this rank's rows.

        Parameters
        ----------
        model : PotentialSet
            The k potentials.
        X_b : list of k torch.Tensor of shape (b, d_i)
            The global batch (the same on every rank).

        Returns
        -------
        X : list of k torch.Tensor
            The points of the loss: the global batch (``loss='global'``) or
            this rank's rows (``'local'``).
        f : list of k torch.Tensor
            The potentials at ``X``: all-gathered from the ranks (autograd
            through :func:`gather_global`) or this rank's own.
        """
        sl = self.local_slice(int(X_b[0].shape[0]))
        X_loc = [X[sl] for X in X_b]
        f_loc = model(X_loc)
        if self.loss == "local":
            return X_loc, f_loc
        f_glob = gather_global(torch.stack(f_loc, 1), self.group)  # (W b_r, k), autograd
        return X_b, list(f_glob.unbind(1))

    def reduce_gradients(self, parameters):
        """Average the gradients over the ranks (one all-reduce of the flattened gradients).

        Parameters
        ----------
        parameters : iterable of torch.nn.Parameter
            The parameters whose ``grad`` is averaged in place (those without
            a gradient are skipped).
        """
        import torch.distributed as dist

        params = [p for p in parameters if p.grad is not None]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        dist.all_reduce(flat, group=self.group)
        flat /= self.world_size
        pos = 0
        for p in params:
            n = p.grad.numel()
            p.grad.copy_(flat[pos : pos + n].view_as(p.grad))
            pos += n

    def reduce_metric(self, value):
        """Average the batch dual over the ranks.

        Parameters
        ----------
        value : float
            This rank's batch dual.

        Returns
        -------
        value : float
            The mean over the ranks (``loss='local'``); with the global loss,
            ``value`` itself (the same on every rank).
        """
        import torch.distributed as dist

        if self.loss == "global":
            return value
        t = torch.tensor([float(value)], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, group=self.group)
        return float(t[0]) / self.world_size

    def broadcast_floats(self, *values):
        """Broadcast rank 0's floats to every rank.

        Parameters
        ----------
        *values : float
            The floats (rank 0's are kept).

        Returns
        -------
        values : tuple of float
            Rank 0's values.
        """
        import torch.distributed as dist

        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.broadcast(t, 0, group=self.group)
        return tuple(float(v) for v in t.tolist())

    def _comm_device(self):
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")

    # ---- parameters and objects ------------------------------------------
    @staticmethod
    def _tensors(module):
        return [t for t in module.state_dict().values() if torch.is_tensor(t) and t.is_floating_point()]

    def broadcast_module(self, module):
        """Broadcast rank 0's parameters and buffers to every rank (in place).

        Parameters
        ----------
        module : torch.nn.Module
            The module whose floating-point tensors are overwritten.
        """
        import torch.distributed as dist

        ts = self._tensors(module)
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in ts]).to(ts[0].device)
        dist.broadcast(flat, 0, group=self.group)
        pos = 0
        with torch.no_grad():
            for t in ts:
                n = t.numel()
                t.copy_(flat[pos : pos + n].view_as(t))
                pos += n

    def check_identical(self, module):
        """Check that every rank holds rank 0's parameters bitwise; repair (with a warning) if not.

        Parameters
        ----------
        module : torch.nn.Module
            The trained module.

        Returns
        -------
        identical : bool
            ``True`` if the parameters were identical; ``False`` if they
            differed (a ``RuntimeWarning``, then rank 0's are broadcast).
        """
        import torch.distributed as dist

        ts = self._tensors(module)
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64) for t in ts])
        ref = flat.clone()
        dist.broadcast(ref, 0, group=self.group)
        diff = torch.tensor([float((flat - ref).abs().max())], dtype=torch.float64, device=flat.device)
        dist.all_reduce(diff, op=dist.ReduceOp.MAX, group=self.group)
        if float(diff[0]) > 0:
            warnings.warn(
                "the ranks' parameters differ after training (max |difference| %.3g; non-deterministic "
                "collectives or kernels): rank 0's are now used on every rank" % float(diff[0]),
                RuntimeWarning,
                stacklevel=2,
            )
            self.broadcast_module(module)
            return False
        return True

    def broadcast_object(self, obj):
        """Broadcast rank 0's picklable object to every rank.

        Parameters
        ----------
        obj : object
            The object (used on rank 0 only).

        Returns
        -------
        obj : object
            Rank 0's object.
        """
        import torch.distributed as dist

        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, 0, group=self.group, device=self._comm_device())
        return box[0]

    def barrier(self):
        """Wait until every rank of the group reaches this call."""
        import torch.distributed as dist

        dist.barrier(group=self.group)

    def __repr__(self):
        return "DataParallel(rank=%d/%d, backend=%r, loss=%r)" % (self.rank, self.world_size, self.backend, self.loss)
