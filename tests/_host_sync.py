# -*- coding: utf-8 -*-
"""Count the host synchronisations a piece of torch code would make on a GPU, on any device.

A host synchronisation is a point where Python waits for the device to finish
its queue: reading a value (``.item()``, ``float(t)``, ``int(t)``,
``bool(t)`` in an ``if``), copying to the host (``.cpu()``, ``.numpy()``,
``.tolist()``, ``np.asarray(t)``), an op whose output *shape* depends on the
data (``nonzero``, ``masked_select``, boolean-mask indexing, ``unique``), and a
blocking copy from the host to the device. On a CPU none of these costs
anything, so a slow GPU path hides in code that runs fine on a laptop: this
counter finds them on the CPU.

:class:`HostSyncCounter` is a context manager (a
:class:`torch.utils._python_dispatch.TorchDispatchMode`, plus wrappers of the
few ``Tensor`` methods that leave torch without going through the
dispatcher)::

    with HostSyncCounter() as syncs:
        trainer.step()
    assert syncs.count == 0, syncs.report()

What is counted (``syncs.events``, a list of ``(kind, name)``):

``'item'``
    ``aten._local_scalar_dense`` (``.item()``, ``float``, ``int``, ``bool`` of
    a tensor, ``if t:``) and the ops that return a Python value
    (``aten.equal``, ``aten.is_nonzero``);
``'shape'``
    ops whose output size depends on the data (``nonzero``, ``masked_select``,
    ``unique``, boolean-mask indexing and assignment, ``repeat_interleave``
    without ``output_size``);
``'to_host'``
    ``Tensor.numpy``, ``Tensor.tolist``, ``Tensor.__array__`` (``np.asarray``)
    of a tensor that is not a CPU tensor by design (see ``host_tensors``),
    and, on a GPU, device-to-host copies;
``'to_device'``
    on a GPU, blocking host-to-device copies (``non_blocking=False``).

Tensors that live on the host *by design* (the sampler's CPU generator and
index permutations, the optimiser's CPU step counters) are not syncs even on
a GPU: ops on CPU tensors are ignored when ``device`` (the device the code
under test computes on) is not the CPU. On the CPU, where every tensor is a
CPU tensor, pass ``ignore`` (a predicate on the op's tensors) or keep such
code outside the counted block; by default every op is counted on the CPU.

Not seen on the CPU: a blocking host-to-device copy (``X[idx.to(X.device)]``
with CPU indices is a no-op there); on a GPU it is counted.
"""

import contextlib
import functools

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["HostSyncCounter"]

aten = torch.ops.aten

_ITEM = {"_local_scalar_dense", "equal", "is_nonzero", "item"}
_SHAPE = {
    "nonzero",
    "nonzero_static_cpu_unused",
    "masked_select",
    "_unique",
    "_unique2",
    "unique_dim",
    "unique_consecutive",
    "unique_dim_consecutive",
    "argwhere",
    "masked_scatter_",
    "nonzero_numpy",
}


def _packet(func):
    return func.overloadpacket.__name__


def _bool_index(args):
    """Whether one of ``args`` (of index / index_put) is a boolean mask index list."""
    for a in args:
        if isinstance(a, (list, tuple)):
            for t in a:
                if isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8):
                    return True
    return False


class HostSyncCounter(TorchDispatchMode):
    """Record the host synchronisations of the torch ops run inside the ``with`` block.

    Parameters
    ----------
    device : str or torch.device, optional
        The device the code computes on (default ``'cpu'``). On a GPU, ops
        whose tensors are all CPU tensors are not counted (host-side state
        by design), and device/host copies are classified by their devices.
    record_stack : bool, optional
        Keep a short Python stack of each event (for :meth:`report`).
    """

    def __init__(self, device="cpu", record_stack=True):
        super().__init__()
        self.device = torch.device(device)
        self.record_stack = record_stack
        self.events = []
        self.host_numel = []  # sizes of the tensors copied to the host by numpy/tolist/__array__
        self._patched = []
        self._inside = False
        self._paused = False

    # ---- results ---------------------------------------------------------------------------
    @property
    def count(self):
        """Number of host synchronisations recorded."""
        return len(self.events)

    def by_kind(self):
        """``{kind: number}`` of the recorded events."""
        out = {}
        for kind, _, _ in self.events:
            out[kind] = out.get(kind, 0) + 1
        return out

    def report(self, limit=10):
        """A readable list of the events and where they come from (for assertion messages)."""
        lines = ["%d host synchronisation(s): %s" % (self.count, self.by_kind())]
        for kind, name, where in self.events[:limit]:
            lines.append("  %s %s at %s" % (kind, name, where))
        return "\n".join(lines)

    # ---- recording -------------------------------------------------------------------------
    def _where(self):
        if not self.record_stack:
            return ""
        import traceback

        frames = [
            f for f in traceback.extract_stack()[:-3] if "ot_multimarginal" in f.filename or "/tests/" in f.filename
        ]
        frames = [f for f in frames if not f.filename.endswith("_host_sync.py")]
        return " <- ".join("%s:%d" % (f.filename.split("/")[-1], f.lineno) for f in reversed(frames[-3:]))

    def _record(self, kind, name):
        if not self._paused:
            self.events.append((kind, name, self._where()))

    @contextlib.contextmanager
    def paused(self):
        """Inside: nothing is recorded (e.g. a check that is allowed to synchronise)."""
        prev, self._paused = self._paused, True
        try:
            yield self
        finally:
            self._paused = prev

    def _host_only(self, tensors):
        """On a GPU: all tensors of the op are CPU tensors (host state by design)."""
        return self.device.type != "cpu" and all(t.device.type == "cpu" for t in tensors)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = _packet(func)
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        out = func(*args, **kwargs)
        if self._inside or (tensors and self._host_only(tensors)):  # inside .tolist() etc.: already one event
            return out
        if name in _ITEM:
            self._record("item", name)
        elif name in _SHAPE or (name == "repeat_interleave" and kwargs.get("output_size") is None and len(args) == 1):
            self._record("shape", name)
        elif name in ("index", "index_put", "index_put_", "_index_put_impl_") and _bool_index(args[1:2]):
            self._record("shape", name + "[bool]")
        elif name in ("_to_copy", "copy_"):
            src = args[1] if name == "copy_" else args[0]
            dst = args[0] if name == "copy_" else out
            if isinstance(src, torch.Tensor) and isinstance(dst, torch.Tensor):
                if src.device.type != "cpu" and dst.device.type == "cpu":
                    self._record("to_host", name)
                elif (
                    src.device.type == "cpu"
                    and dst.device.type != "cpu"
                    and not (kwargs.get("non_blocking") or (name == "copy_" and len(args) > 2 and args[2]))
                ):
                    self._record("to_device", name)
        return out

    # ---- Tensor methods that leave torch without the dispatcher ----------------------------
    def _patch(self, attr, kind):
        own = attr in torch.Tensor.__dict__
        original = getattr(torch.Tensor, attr)
        counter = self

        @functools.wraps(original)
        def wrapper(t, *a, **kw):
            if counter._inside:  # __array__ calls numpy(): one event
                return original(t, *a, **kw)
            if not (counter.device.type != "cpu" and t.device.type == "cpu"):
                counter._record(kind, "Tensor." + attr)
                if not counter._paused:
                    counter.host_numel.append(t.numel())
            counter._inside = True
            try:
                return original(t, *a, **kw)
            finally:
                counter._inside = False

        setattr(torch.Tensor, attr, wrapper)
        self._patched.append((attr, original, own))

    def __enter__(self):
        self.events = []
        self.host_numel = []
        for attr in ("numpy", "tolist", "__array__"):
            self._patch(attr, "to_host")
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            for attr, original, own in reversed(self._patched):
                if own:
                    setattr(torch.Tensor, attr, original)
                else:
                    delattr(torch.Tensor, attr)
            self._patched = []
