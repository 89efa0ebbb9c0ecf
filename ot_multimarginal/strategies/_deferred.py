# -*- coding: utf-8 -*-
r"""The stopping checks of every Sinkhorn-type loop, sync-free or not, in one place.

A loop records the marginal error (and, for the greedy and accelerated
loops, the dual objective) at its iterates and asks :meth:`IterateChecks.check`
at the iterates where a check is due. What a check does depends on the mode:

- **checked** (NumPy, and torch unless ``sync_free``): every recorded value
  is read on the host at once, the engines read their certificates as they
  go (and repair what needs it), and the loop may branch on host values;
- **sync-free** (``sync_free``; default: torch on a GPU): nothing is read
  between two checks. The errors, the duals and the loop's own device values
  (e.g. the greedy block choices) of the iterates since the previous check,
  and all the engines' certificates collected meanwhile
  (:func:`~ot_multimarginal._backend.deferred_checks`), are read in **one**
  host synchronisation. If a certificate failed, the iterates since the
  previous accepted check are discarded and the loop goes back to the state
  saved there, on the checked path (the engines then absorb, re-centre or
  repair as they go), for 1, 2, 4, ... (at most 16) check intervals before
  the fast path is tried again. The iterates are therefore those of the
  checked path, to rounding.

In both modes the loop stops at the **first** recorded iterate whose error
is at most ``stopThr``: a loop that records every iterate (greedy,
accelerated) hands its state with each record, so the iterates computed
after that one within the interval are discarded and the result is the
same iterate as the checked path's, at the cost of at most
``check_every - 1`` discarded iterations. A non-finite error raises
:class:`~ot_multimarginal.strategies._common.NonFiniteIterate` at the first
iterate that has one (after the certificates held: a failed fast product is
redone first).

What a sync-free loop gives up: a device value the host does not read
cannot pick the arrays to change. The greedy step (and the accelerated
safeguard) therefore writes *every* candidate block, the chosen one with its
update and the others with their old values (``where``), and the engines,
which recognise an unchanged block by its array, redo the work they would
have reused from the previous pass: the tree engine's messages away from
the changed block, the dense engine's contraction along the last axis.
Measured on the CPU (torch, one thread), a greedy iteration then costs
about 2.1x on a chain (k = 4, n = 1000) and 1.3x on a dense tensor
(k = 3, n = 100); the accelerated loop, whose sequences change every block
anyway, costs the same. On a GPU this is traded against the host
synchronisations of a checked iteration: 7 to 20 for greedy, 13 to 57 for
accelerated on the engines of ``tests/test_host_sync.py`` (the loop's own
reads and the engines' certificates), against one per check.
"""
# License: MIT License

import contextlib

from .._backend import deferred_checks, to_float
from ._common import apply_stop_rule, check_finite_error, print_row

__all__ = ["use_sync_free", "fresh", "IterateChecks"]

# sync-free loops: check intervals redone on the checked path after a failed certificate (doubling up to this)
_CHECKED_MAX = 16


def use_sync_free(engine, sync_free):
    """Whether a loop defers the engines' certificates (torch only; ``None``: on a non-CPU device)."""
    if str(engine.nx) != "torch":
        return False
    if sync_free is not None:
        return bool(sync_free)
    device = getattr(engine.type_as, "device", None)
    return device is not None and device.type != "cpu"


def fresh(arrays):
    """Copies of ``arrays`` (``None`` kept): new objects, so every engine cache keyed by the old ones is dropped."""
    return [None if x is None else x.clone() for x in arrays]


def _read_once(values, certificates):
    """``(floats, ok)``: the 0-d ``values`` and "every certificate held", in one host synchronisation.

    ``values`` may mix device tensors and host numbers (returned as they
    are, as floats); integers and booleans come back as exact floats (they
    travel in the dtype of the first floating tensor, exact for the small
    integers the loops record).
    """
    import torch

    tensors = [v for v in values if torch.is_tensor(v)]
    if certificates:
        tensors.append(torch.stack([c.reshape(()) for c, _ in certificates]).all())
    if not tensors:
        return [float(v) for v in values], True
    dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float32)
    host = torch.stack([t.detach().reshape(()).to(dtype) for t in tensors]).cpu().numpy()  # the one read
    it = iter(host.tolist())
    out = [next(it) if torch.is_tensor(v) else float(v) for v in values]
    return out, (bool(next(it)) if certificates else True)


class IterateChecks:
    """Records, stopping checks and (sync-free) the one read per check and the redo of a failed interval.

    Parameters
    ----------
    engine : GibbsEngine
        The loop's engine (its backend and device decide ``sync_free=None``).
    sync_free : bool or None
        See the module docstring (:func:`use_sync_free`).
    check_every : int
        Iterations between two checks (the loop calls :meth:`due`).
    checked_every : int, optional
        Iterations between two checks when not :attr:`on` (default
        ``check_every``; the greedy and accelerated loops check every iterate there).
    numItermax, stopThr, stop_rule
        The loop's limits; ``stop_rule(g, err)`` is asked at each check whose
        error is above ``stopThr``, with the state's first entry as ``g``.
    verbose, print_every : optional
        Print a row (iteration, error and dual when recorded) for every
        recorded iterate ``it`` with ``it % print_every == 0``, and the last.
    steps : tuple of str
        Names of the per-iteration values the loop reports with :meth:`step`
        (e.g. ``'blocks'``), kept in :attr:`steps` as host lists (one entry
        per iteration of the returned iterates).

    Attributes
    ----------
    on : bool
        Sync-free mode.
    errs, duals : list of float
        The values at the accepted records.
    steps : dict of lists
    n_redone : int
        Check intervals redone on the checked path after a failed certificate.
    """

    def __init__(
        self,
        engine,
        sync_free,
        check_every,
        numItermax,
        stopThr,
        stop_rule=None,
        verbose=False,
        print_every=10,
        steps=(),
        checked_every=None,
    ):
        self.nx = engine.nx
        self.on = use_sync_free(engine, sync_free)
        self.check_every = int(check_every if self.on or checked_every is None else checked_every)
        self.numItermax = numItermax
        self.stopThr = stopThr
        self.stop_rule = stop_rule
        self.verbose = verbose
        self.print_every = print_every
        self.errs, self.duals = [], []
        self.steps = {name: [] for name in steps}
        self.n_redone = 0
        self.certificates = []
        self.converged = False
        self._records = []  # (it, state, err, dual) since the last check
        self._steps = []  # (it, {name: value}) since the last check
        self._checked_left = 0  # check intervals still to run on the checked path
        self._checked_next = 1
        self._saved = None  # (it, state) at the last accepted check

    @property
    def deferring(self):
        """Whether the engines' certificates are deferred now (sync-free and not redoing)."""
        return self.on and self._checked_left == 0

    def products(self):
        """Context of the engine products: defers their certificates while :attr:`deferring`."""
        return deferred_checks(self.certificates) if self.deferring else contextlib.nullcontext()

    def due(self, it):
        """Whether iterate ``it`` is checked."""
        return it % self.check_every == 0 or it >= self.numItermax

    def record(self, it, state, err, dual=None):
        """Record iterate ``it``: its error, dual (optional) and the ``state`` the loop returns to from there."""
        self._records.append((it, state, err, dual))

    def step(self, it, **values):
        """Report the values of iteration ``it`` (the one that leaves iterate ``it``), e.g. ``blocks=K``."""
        self._steps.append((it, values))

    def check(self):
        """The check at the last recorded iterate.

        Returns ``(action, it, state)``:

        - ``('go', it, state)``: not converged, go on from the last record;
        - ``('stop', it, state)``: stop at iterate ``it`` with its ``state``
          (converged, see :attr:`converged`, or out of iterations);
        - ``('redo', it, state)``: a certificate failed; resume on the checked
          path from the last accepted check (``it`` and its ``state``, whose
          record is not repeated: go on with the iteration that leaves it;
          ``(None, None)`` if there was none: start again).
        """
        records, steps, names = self._records, self._steps, list(self.steps)
        self._records, self._steps = [], []
        has_dual = records[0][3] is not None
        values = [r[2] for r in records] + ([r[3] for r in records] if has_dual else [])
        values += [s[name] for _, s in steps for name in names]
        if self.on:
            values, ok = _read_once(values, self.certificates)
        else:
            values, ok = [float(v) if isinstance(v, (int, float)) else to_float(self.nx, v) for v in values], True
        self.certificates.clear()
        if not ok:
            # a fast product failed its certificate since the last check: back there, on the checked path
            self.n_redone += 1
            self._checked_left, self._checked_next = self._checked_next, min(2 * self._checked_next, _CHECKED_MAX)
            return ("redo",) + (self._saved if self._saved is not None else (None, None))
        m = len(records)
        errs, duals = values[:m], (values[m : 2 * m] if has_dual else [None] * m)
        pos = 2 * m if has_dual else m
        step_vals = []
        for s_it, _ in steps:
            step_vals.append((s_it, values[pos : pos + len(names)]))
            pos += len(names)
        for (it, state, _, _), err, dual in zip(records, errs, duals):
            err = check_finite_error(self.nx, err, it)
            self.errs.append(err)
            if has_dual:
                self.duals.append(dual)
            last = it == records[-1][0]
            self.converged = err <= self.stopThr or (last and apply_stop_rule(self.stop_rule, state[0], err))
            stop = self.converged or it >= self.numItermax
            if self.verbose and (stop or it % self.print_every == 0):
                print_row(it, err, *([dual] if has_dual else []))
            if stop:
                self._keep_steps(step_vals, it)
                return "stop", it, state
        self._keep_steps(step_vals, records[-1][0])
        if self.on:
            if not self.deferring and records[-1][0] > 0:
                self._checked_left -= 1
            self._saved = (records[-1][0], records[-1][1])
        return "go", records[-1][0], records[-1][1]

    def _keep_steps(self, step_vals, it):
        """Keep the steps of the iterations before iterate ``it`` (those of the returned iterates)."""
        for s_it, vals in step_vals:
            if s_it < it:
                for name, v in zip(self.steps, vals):
                    self.steps[name].append(v)
