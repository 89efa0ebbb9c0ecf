# -*- coding: utf-8 -*-
"""What every Sinkhorn-type loop shares: errors, the dual objective, printing."""
# License: MIT License

from .._backend import to_float
from .._warnings import warn_user

__all__ = [
    "all_blocks",
    "marginal_error",
    "block_update",
    "dual_objective",
    "print_header",
    "print_row",
    "warn_not_converged",
    "NonFiniteIterate",
    "check_finite_error",
    "apply_stop_rule",
]


class NonFiniteIterate(Exception):
    """Raised inside a loop when an iterate stops being finite."""


def all_blocks(a_s, blocks):
    """The updated blocks: ``blocks`` as a tuple, or every block when ``None``."""
    return tuple(range(len(a_s))) if blocks is None else tuple(blocks)


def marginal_error(nx, log_r, a_s, blocks=None):
    r"""Stopping error :math:`\sum_{i \in \text{blocks}} \|r_i - a_i\|_1` (a backend scalar).

    ``blocks``: the prescribed marginals (default all); free marginals do not count.
    """
    err = 0.0
    for i in all_blocks(a_s, blocks):
        err = err + nx.sum(nx.abs(nx.exp(log_r[i]) - a_s[i]))
    return err


def block_update(nx, g_i, log_a_i, log_r_i, positive_i):
    """Exact minimisation of the dual over block i: ``g_i + log a_i - log r_i``.

    Entries with zero weight stay at ``-inf`` (no ``-inf - (-inf)``).
    """
    zero = nx.zeros(g_i.shape, type_as=g_i)
    new = nx.where(positive_i, g_i, zero) - nx.where(positive_i, log_r_i, zero) + log_a_i
    return nx.where(positive_i, new, log_a_i)


def dual_objective(nx, g, a_s, log_partition, blocks=None):
    r"""Lin et al.'s dual :math:`\phi(g) = \log\|B(g)\|_1 - \sum_{i \in S}\langle g_i, a_i\rangle`.

    It is minimised by Sinkhorn over the blocks :math:`S` = ``blocks`` (the
    prescribed marginals, default all; a free block stays at
    :math:`g_i = \log a_i` and has no term); entries with zero weight do not count.
    """
    val = log_partition
    for i in all_blocks(a_s, blocks):
        gi, ai = g[i], a_s[i]
        zero = nx.zeros(ai.shape, type_as=ai)
        val = val - nx.sum(nx.where(ai > 0, gi, zero) * ai)
    return val


def print_header(columns):
    widths = [5] + [13] * (len(columns) - 1)
    print("|".join("{:{w}s}".format(c, w=w) for c, w in zip(columns, widths)))
    print("-" * (sum(widths) + len(widths) - 1))


def print_row(it, *vals):
    print(f"{it:5d}|" + "|".join(f"{v:13e}" for v in vals))


def warn_not_converged(name, err, stopThr, niter, eps=None, floor=None, history=None):
    """The POT-style non-convergence ``UserWarning``, with the fix that applies.

    ``eps``: the machine epsilon of the dtype; ``floor``: the smallest
    marginal error it resolves (10 k eps). In a low-precision dtype, an error
    within a thousand times that floor that has stopped falling is a precision
    limit, not a lack of iterations: the warning then recommends float64.
    ``history``: the recorded errors; an error that still halved over the second
    half of the run is short of iterations, whatever the dtype.
    """
    falling = False
    if history is not None and len(history) >= 2:
        falling = float(history[-1]) < 0.5 * float(history[len(history) // 2 if len(history) >= 3 else 0])
    if eps is not None and floor is not None and eps > 1e-10 and err < 1e3 * floor and not falling:
        fix = (
            "In %s the marginal error stalls at about 10 k eps = %.1e: more iterations rarely help; use float64 "
            "(cast the cost and the weights, e.g. M.double() / M.astype(np.float64)), or a larger stopThr."
            % ("float32" if eps < 1e-6 else "half precision", floor)
        )
    else:
        fix = "You might want to increase the number of iterations `numItermax` or the regularization parameter `reg`."
    warn_user(
        "%s did not converge: marginal error %.3e > stopThr %.1e after %d iterations. %s"
        % (name, err, stopThr, niter, fix)
    )


def check_finite_error(nx, err, it):
    e = to_float(nx, err)
    if e != e or e == float("inf"):
        raise NonFiniteIterate("non-finite marginal error at iteration %d" % it)
    return e


def apply_stop_rule(stop_rule, g, err):
    """``stop_rule(g, err)`` as a bool (``False`` without a rule).

    A caller's own stopping test, evaluated at each stopping check whose
    marginal error ``err`` is still above ``stopThr`` (e.g. the certified gap
    of :func:`ot_multimarginal.emot_approx`); ``True`` ends the loop as converged.
    """
    return stop_rule is not None and bool(stop_rule(g, err))
