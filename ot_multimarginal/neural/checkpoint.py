# -*- coding: utf-8 -*-
r"""Checkpoints of a training run that survive a killed job.

:class:`Checkpointer` plugs into a :class:`~.training.Trainer`
(``checkpoint=``): every ``every`` steps (and at the end of training) rank
0 writes the trainer's whole state (:meth:`~.training.Trainer.state_dict`:
networks, optimiser, schedule, sampler stream, held-out stream, step,
history, best potentials) with the global random states (torch CPU and
CUDA, NumPy, Python ``random``) and a *fingerprint* of the problem (k,
dimensions, sizes, a digest of the data, graph, metric, reg, estimator,
batch size, ...).

Atomic writes
    the file is written under a temporary name in the same directory,
    flushed and ``fsync``-ed, then renamed over ``ckpt-<step>.pt`` with
    :func:`os.replace` (atomic on POSIX), and the directory is
    ``fsync``-ed: a killed job leaves either the old or the new file, never
    a half-written one under a checkpoint's name. The last ``keep`` (2)
    checkpoints are kept; older ones are removed only after a newer one is
    safely on disk.
Integrity
    a file starts with a magic line, the payload's length and its SHA-256:
    a truncated or corrupted file raises :class:`CheckpointError` naming
    what is wrong; when resuming, such a file is reported with a
    ``UserWarning`` and the previous good checkpoint is used.
Mismatch
    resuming checks the fingerprint: a checkpoint of another problem (other
    k, dimensions, data, graph, reg, estimator, ...) raises a ``ValueError``
    listing every difference, and is left on disk.
"""
# License: MIT License

import glob
import hashlib
import io
import os
import random
import re
import tempfile
import warnings

import numpy as np
import torch

__all__ = [
    "Checkpointer",
    "CheckpointError",
    "read_checkpoint",
    "write_checkpoint",
    "data_digest",
    "fingerprint_differences",
    "problem_fingerprint",
    "resume_payload",
]

_MAGIC = b"OTMM-CHECKPOINT 1\n"
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (truncated, corrupted, not a checkpoint)."""


def data_digest(tensors):
    """Digest tensors: SHA-256 of their shapes, dtypes and bytes (CPU copies).

    Parameters
    ----------
    tensors : iterable of torch.Tensor
        The tensors, in order.

    Returns
    -------
    digest : str
        The first 16 hexadecimal characters of the SHA-256.
    """
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        h.update(("%s%s" % (tuple(t.shape), t.dtype)).encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    return h.hexdigest()[:16]


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_checkpoint(path, payload):
    """Write a checkpoint file atomically (temp file, fsync, rename).

    The file is a header (magic, payload size, SHA-256) followed by the
    ``torch.save`` bytes, so that :func:`read_checkpoint` detects a
    truncated or corrupted file.

    Parameters
    ----------
    path : str or path-like
        The file to write (replaced if it exists).
    payload : object
        Anything ``torch.save`` accepts.
    """
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    header = _MAGIC + b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode())
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(header)
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def read_checkpoint(path):
    """Read the payload of a checkpoint file written by :func:`write_checkpoint`.

    Parameters
    ----------
    path : str or path-like
        The checkpoint file.

    Returns
    -------
    payload : object
        The saved payload (tensors on the CPU).

    Raises
    ------
    CheckpointError
        If the file cannot be read, is not a checkpoint, or is truncated or
        corrupted (size or SHA-256 differs from its header).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as e:
        raise CheckpointError("cannot read checkpoint %s: %s" % (path, e)) from e
    if not raw.startswith(_MAGIC):
        raise CheckpointError("%s is not an ot_multimarginal checkpoint (no header; %d bytes)" % (path, len(raw)))
    rest = raw[len(_MAGIC) :]
    line, sep, data = rest.partition(b"\n")
    try:
        size_s, digest = line.split(b" ")
        size = int(size_s)
    except ValueError:
        raise CheckpointError("checkpoint %s is corrupted (unreadable header)" % path) from None
    if len(data) != size:
        raise CheckpointError(
            "checkpoint %s is truncated or corrupted: %d bytes of payload, the header says %d" % (path, len(data), size)
        )
    if hashlib.sha256(data).hexdigest().encode() != digest:
        raise CheckpointError("checkpoint %s is corrupted: its SHA-256 does not match the header" % path)
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)


def fingerprint_differences(saved, current):
    """List the entries in which two problem fingerprints differ.

    Parameters
    ----------
    saved : dict
        The fingerprint stored in a checkpoint.
    current : dict
        The fingerprint of the run now.

    Returns
    -------
    differences : list of str
        ``'name: saved (checkpoint) vs current (now)'`` for every entry that
        differs (or is absent from one of them), sorted by name.
    """
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            out.append("%s: %r (checkpoint) vs %r (now)" % (key, a, b))
    return out


def _random_states():
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None,
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }


def _set_random_states(states):
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])


class Checkpointer:
    """Periodic atomic checkpoints of a :class:`~.training.Trainer` (see the module docstring).

    Parameters
    ----------
    directory : str or path
        Created if missing. Holds ``ckpt-<step>.pt`` files.
    every : int
        Steps between checkpoints (and one at the end of training).
    fingerprint : dict
        What identifies the problem (plain values); compared on resume.
    extra : dict, optional
        Other picklable values stored with every checkpoint (e.g. the seed).
    keep : int, optional
        Checkpoints kept (default 2: the last and the previous good one).
    is_main : bool, optional
        Whether this process writes (rank 0 in a data-parallel run).
    """

    def __init__(self, directory, every, fingerprint, extra=None, keep=2, is_main=True):
        self.directory = os.fspath(directory)
        self.every = int(every)
        self.fingerprint = dict(fingerprint)
        self.extra = dict(extra or {})
        self.keep = max(1, int(keep))
        self.is_main = bool(is_main)
        if self.is_main:
            os.makedirs(self.directory, exist_ok=True)
        self.last_saved_step = None
        self.resumed_from = None

    def path(self, step):
        """Name the checkpoint file of a step.

        Parameters
        ----------
        step : int
            The training step.

        Returns
        -------
        path : str
            ``<directory>/ckpt-<step, 9 digits>.pt``.
        """
        return os.path.join(self.directory, "ckpt-%09d.pt" % int(step))

    def checkpoints(self):
        """List the checkpoint files of the directory.

        Returns
        -------
        checkpoints : list of (int, str)
            ``(step, path)`` pairs, newest first.
        """
        out = []
        for p in glob.glob(os.path.join(glob.escape(self.directory), "ckpt-*.pt")):
            m = _NAME.match(os.path.basename(p))
            if m:
                out.append((int(m.group(1)), p))
        return sorted(out, reverse=True)

    # ---- writing -----------------------------------------------------------
    def save(self, trainer):
        """Write the trainer's state now (rank 0 only); remove older checkpoints beyond ``keep``.

        Parameters
        ----------
        trainer : Trainer
            The trainer (its ``state_dict`` and step count are saved, with
            the global random states).

        Returns
        -------
        path : str or None
            The file written, or ``None`` on the other ranks.
        """
        if not self.is_main:
            return None
        step = int(trainer.step_count)
        payload = {
            "fingerprint": self.fingerprint,
            "extra": self.extra,
            "step": step,
            "trainer": trainer.state_dict(),
            "random": _random_states(),
        }
        path = self.path(step)
        write_checkpoint(path, payload)
        self.last_saved_step = step
        for _, old in self.checkpoints()[self.keep :]:
            try:
                os.unlink(old)
            except OSError:  # pragma: no cover - removed meanwhile
                pass
        for tmp in glob.glob(os.path.join(glob.escape(self.directory), ".tmp-*.pt")):
            try:  # temporary files of killed writers
                os.unlink(tmp)
            except OSError:  # pragma: no cover
                pass
        return path

    def after_step(self, trainer, final=False):
        """Save after a step when a checkpoint is due (called by the trainer after every step).

        Parameters
        ----------
        trainer : Trainer
            The trainer.
        final : bool, optional
            End of training: save unless this step is already saved.

        Returns
        -------
        path : str or None
            The file written, or ``None`` when nothing was written.
        """
        step = int(trainer.step_count)
        if step == self.last_saved_step or step == 0:
            return None
        if (self.every > 0 and step % self.every == 0) or final:
            return self.save(trainer)
        return None

    # ---- reading -------------------------------------------------------------
    def latest(self):
        """Read the newest readable checkpoint of the directory.

        Unreadable files (truncated, corrupted) are skipped with a
        ``UserWarning`` naming them.

        Returns
        -------
        payload : dict or None
            The checkpoint's payload, or ``None`` when the directory has none.

        Raises
        ------
        CheckpointError
            When there are checkpoint files but none is readable.
        """
        found = self.checkpoints()
        errors = []
        for _step, path in found:
            try:
                payload = read_checkpoint(path)
            except CheckpointError as e:
                errors.append(str(e))
                warnings.warn("%s; resuming from the previous checkpoint instead" % e, UserWarning, stacklevel=4)
                continue
            self.resumed_from = path
            return payload
        if errors:
            raise CheckpointError("no usable checkpoint in %s: %s" % (self.directory, "; ".join(errors)))
        return None

    def check(self, payload):
        """Check that a checkpoint belongs to this problem.

        Parameters
        ----------
        payload : dict
            A checkpoint's payload.

        Raises
        ------
        ValueError
            Listing what differs, when ``payload`` is a checkpoint of another
            problem or set-up.
        """
        diffs = fingerprint_differences(payload.get("fingerprint", {}), self.fingerprint)
        if diffs:
            raise ValueError(
                "the checkpoint %s was written for a different problem or set-up, so it cannot be resumed "
                "(it is left on disk; use another checkpoint_dir or resume=False): %s"
                % (self.resumed_from or self.directory, "; ".join(diffs))
            )

    def restore(self, trainer, payload):
        """Load a checkpoint (checked first) into a trainer and the global random states.

        Parameters
        ----------
        trainer : Trainer
            The trainer to restore.
        payload : dict
            A checkpoint's payload (:meth:`latest`).
        """
        self.check(payload)
        trainer.load_state_dict(payload["trainer"])
        _set_random_states(payload["random"])
        self.last_saved_step = int(payload["step"])


def _describe(x):
    """A plain, comparable description of a parameter (callables by their qualified name)."""
    if callable(x) and not isinstance(x, type):
        return "callable %s.%s" % (getattr(x, "__module__", "?"), getattr(x, "__qualname__", type(x).__name__))
    if isinstance(x, (list, tuple)):
        return [_describe(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return repr(x)


def problem_fingerprint(est, cost, data, weights, global_batch, train_dtype, seed, world_size):
    """Describe what a checkpoint of an estimator must agree on to be resumed.

    The problem (k, dimensions, sizes, a digest of the points and weights,
    the cost's graph and metric, reg), the estimator and everything that
    shapes the trajectory (global batch size, steps, learning rate,
    networks, dtype, seed, evaluation schedule). The number of ranks is
    part of it only for ``distributed_loss='local'`` (the global loss does
    not depend on how the global batch is split).

    Parameters
    ----------
    est : NeuralEMOT
        The estimator (its ``get_params()``).
    cost : PointCloudCost or callable cost
        The training cost (:mod:`ot_multimarginal.costs.pointcloud`).
    data : list of k torch.Tensor
        The training clouds.
    weights : list of k torch.Tensor
        Their weights.
    global_batch : int
        Points per marginal in a global batch.
    train_dtype : torch.dtype
        The networks' dtype.
    seed : int
        The seed of the run.
    world_size : int
        The number of ranks.

    Returns
    -------
    fingerprint : dict
        Plain, comparable values (see :func:`fingerprint_differences`).
    """
    params = est.get_params(deep=False)
    fp = {
        "k": len(data),
        "dims": [int(X.shape[1]) for X in data],
        "sizes": [int(X.shape[0]) for X in data],
        "data": data_digest(data),
        "weights": data_digest(weights),
        "graph": [list(e) for e in cost.edges] if getattr(cost, "pairwise", False) else "callable cost",
        "metric": _describe(getattr(cost, "metrics", None))
        if getattr(cost, "pairwise", False)
        else _describe(getattr(cost, "fn", None)),
        "reg": float(params["reg"]),
        "estimator": params["estimator"],
        "batch_size (global)": int(global_batch),
        "dtype": str(train_dtype),
        "seed": int(seed),
    }
    for name in (
        "max_iter",
        "lr",
        "width",
        "depth",
        "activation",
        "grad_clip",
        "replace",
        "eval_every",
        "n_eval_batches",
        "patience",
        "tol",
        "distributed_loss",
    ):
        if name in params:
            fp[name] = _describe(params[name])
    if params.get("distributed_loss") == "local":
        fp["world_size"] = int(world_size)
    return fp


def resume_payload(directory, parallel=None):
    """Read the newest usable checkpoint of a directory on rank 0 and share it with every rank.

    Every rank receives the same payload, or raises the same error (so no
    rank waits for a broadcast that never comes).

    Parameters
    ----------
    directory : str or path-like
        The checkpoint directory (it may not exist yet).
    parallel : DataParallel, optional
        The data-parallel context (``None``: one process).

    Returns
    -------
    payload : dict or None
        The payload of :meth:`Checkpointer.latest`, or ``None`` when there
        is no checkpoint yet.
    """
    if parallel is None:
        if not os.path.isdir(os.fspath(directory)):
            return None
        return Checkpointer(directory, 1, {}, is_main=False).latest()
    result = None
    if parallel.is_main:
        try:
            result = (
                "ok",
                Checkpointer(directory, 1, {}, is_main=False).latest() if os.path.isdir(os.fspath(directory)) else None,
            )
        except Exception as e:  # shared with the other ranks, raised everywhere
            result = ("error", e)
    status, value = parallel.broadcast_object(result)
    if status == "error":
        raise value
    return value
