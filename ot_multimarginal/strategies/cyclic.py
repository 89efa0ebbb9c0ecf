# -*- coding: utf-8 -*-
r"""Cyclic multimarginal Sinkhorn (iterative Bregman projections), optionally over-relaxed.

Benamou, Carlier, Cuturi, Nenna, Peyré, *Iterative Bregman projections for
regularized transportation problems*, SIAM J. Sci. Comput. 2015.

One sweep updates the blocks ``i = 1..k`` in turn with the exact block
minimisation of the dual :math:`\phi(g) = \log\|B(g)\|_1 - \sum_i\langle g_i, a_i\rangle`,

.. math::
    g_i \leftarrow g_i + \omega\,\delta_i, \qquad \delta_i = \log a_i - \log r_i(B(g)),

with :math:`\omega = 1` (plain Sinkhorn: marginal ``i`` of :math:`B(g)` then
equals :math:`a_i`).

With free marginals (``blocks``, the prescribed ones, a strict subset of
``0..k-1``) a sweep visits the prescribed blocks only, in increasing order.

Over-relaxation (``relaxation`` ω in (1, 2); Thibault et al. 2021, Lehmann et
al. 2022) often cuts the number of sweeps several times at small ε. It is
*safeguarded*: along block ``i`` the dual change of a step of size ω is

.. math::
    f(\omega) = \log\sum_j r_i[j]\, e^{\omega\delta_i[j]} - \log\sum_j r_i[j] - \omega\langle a_i, \delta_i\rangle,

an O(n_i) computation from the marginal already at hand. The relaxed step is
taken only if :math:`f(\omega) \le \theta f(1)` (it keeps a fraction θ of the
plain step's decrease; θ = 0.1), otherwise the plain step. The dual therefore
decreases monotonically and the method converges like Sinkhorn. With
``relaxation='auto'`` ω is set from the linear rate ρ of the first plain
sweeps, :math:`\omega = 2/(1 + \sqrt{1-\rho})` (capped at 1.9).

Unbalanced problems (``unbalanced``, a
:class:`~ot_multimarginal.unbalanced.MarginalPenalties`) take the scaled step
:math:`\varphi_i \leftarrow \rho_i/(\rho_i+\varepsilon)\,(\varphi_i + \varepsilon\log(a_i/r_i))`
on every block, an exact translation step every 10 sweeps (see
:meth:`~ot_multimarginal.unbalanced.MarginalPenalties.translate`), and stop on
the change of the marginals the next updates
would make (:meth:`~ot_multimarginal.unbalanced.MarginalPenalties.error`,
zero exactly at :math:`r_i = a_i e^{-\varphi_i/\rho_i}`); same cost per
sweep, no over-relaxation.

**Sync-free sweeps** (``sync_free``, default on a GPU). The engines' fast
products (scaled kernels, absorbed messages, transfer matrices) each end
with a question a GPU can only answer by waiting for its whole queue ("did
the scaled sum underflow? did the scalings leave their safe range?"), and
repair what needs it. Sync-free sweeps ask none of them: the engines record
each answer as a certificate on the device
(:func:`~ot_multimarginal._backend.deferred_checks`), and the error check
reads the marginal error and all the certificates of the sweeps since the
previous check in one host synchronisation. If one failed, the sweeps since
the previous check are discarded and done again on the checked path (the
engines then absorb, re-centre or repair as they go), which then runs for 1,
2, 4, ... (at most 16) check intervals before the fast path is tried again.
The iterates are therefore those of the checked path, to rounding; a sweep
makes no host synchronisation and an error check one. The same holds for the
over-relaxed step's dual-decrease test (a ``where`` on the device).
"""
# License: MIT License

import math

from .._backend import to_float
from ._common import (
    all_blocks,
    block_update,
    marginal_error,
    print_header,
)
from ._deferred import IterateChecks, fresh

__all__ = ["cyclic_sinkhorn"]

_THETA = 0.1
_AUTO_WARMUP = 30  # plain sweeps used to estimate the rate for relaxation='auto'
# unbalanced: sweeps between two translation steps (measured: every 10 sweeps needs the same number of
# sweeps as every sweep, at a tenth of the step's cost; without them 10-20x more sweeps at rho >> eps)
_TRANSLATE_EVERY = 10


def _relaxed_step(nx, g_i, log_a_i, log_r_i, positive_i, omega, on_device=False):
    """Block step of size ``omega`` if it passes the dual-decrease test, else the plain step.

    ``on_device``: the test is a ``where`` (no host synchronisation) and the
    second value a device boolean instead of a bool.
    """
    plain = block_update(nx, g_i, log_a_i, log_r_i, positive_i)
    if omega == 1.0:
        return plain, False
    zero = nx.zeros(g_i.shape, type_as=g_i)
    delta = plain - nx.where(positive_i, g_i, zero)
    delta = nx.where(positive_i, delta, zero)
    a_i = nx.exp(log_a_i)
    lz = nx.logsumexp(log_r_i)
    ad = nx.sum(a_i * delta)
    f1 = -lz - ad
    fw = nx.logsumexp(log_r_i + omega * delta) - lz - omega * ad
    if on_device:
        take = fw <= _THETA * f1
        return nx.where(take, nx.where(positive_i, g_i + omega * delta, log_a_i), plain), take
    if to_float(nx, fw) <= _THETA * to_float(nx, f1):
        return nx.where(positive_i, g_i + omega * delta, log_a_i), True
    return plain, False


def _shifted(g, shift):
    """``g_i + shift_i`` (the log-scalings with the pending translations; ``None``: no shift)."""
    return [gi if si is None else gi + si for gi, si in zip(g, shift)]


def cyclic_sinkhorn(
    engine,
    a_s,
    log_a,
    g,
    numItermax,
    stopThr,
    verbose=False,
    check_every=10,
    relaxation=1.0,
    blocks=None,
    stop_rule=None,
    unbalanced=None,
    sync_free=None,
):
    """Run cyclic sweeps from log-scalings ``g``.

    Parameters
    ----------
    blocks : tuple of int, optional
        The blocks updated by a sweep, and whose errors are checked (the
        prescribed marginals); default all k.
    relaxation : float in [1, 2) or 'auto'
        Over-relaxation factor ω (1: plain Sinkhorn), see the module docstring.
    stop_rule : callable, optional
        ``stop_rule(g, err) -> bool``, asked at every check whose error is
        above ``stopThr``; ``True`` stops the loop as converged.
    unbalanced : MarginalPenalties, optional
        KL penalties on the marginals (see the module docstring); ``None``: balanced.
    sync_free : bool, optional
        Sync-free sweeps (torch only, see the module docstring): no host
        synchronisation between two error checks. ``None`` (default): on a
        GPU; NumPy always reads as it goes (a read is free there).

    Returns ``(g, info)`` with ``info`` holding ``err`` (list of floats, one
    per check), ``niter`` (sweeps done), ``converged``, ``relaxation`` (the
    ω used), ``n_relaxed_steps`` and ``n_redone`` (check intervals redone on
    the checked path after a failed certificate, sync-free sweeps only). The
    error is checked every ``check_every`` sweeps on all marginals at the same point.
    """
    auto = relaxation == "auto"
    if not auto:
        try:
            omega = float(relaxation)
        except (TypeError, ValueError):
            raise ValueError("relaxation must be a float in [1, 2) or 'auto', got %r" % (relaxation,)) from None
        if not 1.0 <= omega < 2.0:
            raise ValueError("relaxation must be in [1, 2), got %r" % (relaxation,))
    else:
        omega = 1.0
    if unbalanced is not None and (auto or omega != 1.0):
        raise ValueError("relaxation is not available with reg_m (unbalanced EMOT): leave relaxation=1")
    nx = engine.nx
    blocks = all_blocks(a_s, blocks)
    positive = [a > 0 for a in a_s]
    # blocks without zero weights take the plain step without masks (the common case)
    all_positive = [not bool(nx.any(~p)) for p in positive]
    g = list(g)
    # unbalanced: the translation steps' shifts of the log-scalings (summing to zero, so the plan is that of
    # g), kept aside rather than added to g, which would invalidate the engines' caches at every sweep
    shift = [None] * len(g)
    it = 0
    n_relaxed = 0
    # the checks (sync-free: one host read each, and the redo of an interval whose certificates failed)
    rec = IterateChecks(engine, sync_free, check_every, numItermax, stopThr, stop_rule, verbose, print_every=1)
    restored = False
    if verbose:
        print_header(["It.", "Err"])
    while True:
        if restored:
            restored = False  # back at the last accepted check: its log-marginal is log_r0
        else:
            log_r0 = None
            if rec.due(it):
                with rec.products():
                    log_r = engine.log_marginals(g)
                    err = (
                        marginal_error(nx, log_r, a_s, blocks)
                        if unbalanced is None
                        else unbalanced.error(nx, log_r, _shifted(g, shift), log_a, positive, blocks)
                    )
                # the state to come back to (copies of the lists: a sweep replaces their entries)
                rec.record(it, (list(g), list(shift), log_r[blocks[0]], n_relaxed), err)
                action, it_c, state = rec.check()
                if action == "redo":
                    # a fast product failed its certificate since the last check: back there, checked path;
                    # new arrays, so that every engine cache filled since (keyed by the arrays) is dropped
                    if state is None:  # the first check: again, checked
                        g = fresh(g)
                        continue
                    it, (g, shift, log_r0, n_relaxed) = it_c, state
                    g, shift = fresh(g), fresh(shift)
                    restored = True
                    continue
                if action == "stop":
                    break
                log_r0 = log_r[blocks[0]]
                errs = rec.errs
                if auto and it == _AUTO_WARMUP and len(errs) >= 3 and errs[-2] > 0:
                    rho = min(max((errs[-1] / errs[-2]) ** (1.0 / check_every), 0.0), 0.9999)
                    omega = min(1.9, 2.0 / (1.0 + math.sqrt(1.0 - rho)))
        if it >= numItermax:
            break
        with rec.products():
            for i in blocks:
                lr = log_r0 if (i == blocks[0] and log_r0 is not None) else engine.log_marginal(g, i)
                if unbalanced is not None:  # the update of the shifted g_i, stored without the shift
                    g[i] = unbalanced.update_shifted(nx, i, g[i], shift[i], log_a[i], lr, positive[i], all_positive[i])
                    continue
                if omega == 1.0 and all_positive[i]:
                    g[i] = g[i] - lr + log_a[i]
                    continue
                g[i], relaxed = _relaxed_step(nx, g[i], log_a[i], lr, positive[i], omega, on_device=rec.on)
                n_relaxed = n_relaxed + relaxed
            if unbalanced is not None and it % _TRANSLATE_EVERY == 0:
                for j, t in unbalanced.translate(nx, g, log_a, positive, all_positive, shift).items():
                    shift[j] = t if shift[j] is None else shift[j] + t
        it += 1
    if unbalanced is not None:
        g = _shifted(g, shift)
    info = {
        "err": rec.errs,
        "niter": it,
        "converged": rec.converged,
        "relaxation": omega,
        "n_relaxed_steps": int(n_relaxed),
    }
    if rec.on:
        info["n_redone"] = rec.n_redone
    return g, info
