# -*- coding: utf-8 -*-
r"""Exact (unregularised) multimarginal optimal transport by linear programming.

The problem

.. math::
    \min_{P \in \Pi(a_1, \dots, a_k)} \langle C, P\rangle

is a linear program with :math:`\prod_i n_i` variables and
:math:`\sum_i n_i` equality constraints. It is solved by HiGHS through
:func:`scipy.optimize.linprog` with a sparse constraint matrix (each variable
appears in exactly k rows, one per marginal). Only small problems are
tractable: larger ones are refused at once, before anything is allocated.

Marginals may be left free (``free=``): their equality constraints are
dropped, and the plan's marginal there is whatever is optimal (for a star
with a free centre, a fixed-support Wasserstein barycenter).
"""
# License: MIT License

from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linprog

from ._typing import Array, LogDict, Nodes, Weights
from ._validation import (
    backend_of,
    check_bool,
    check_cost_tensor,
    check_dense_size,
    check_free,
    check_memory_budget,
    check_not_pot_signature,
    check_weights,
    describe,
)

__all__ = ["emot_lp", "emot_lp2"]


# Rough number of float64-sized buffers per LP variable: cost, solution, the
# sparse constraint matrix (k entries per variable: values and indices) and
# HiGHS's own column- and row-wise copies of it.
def _n_buffers(k):
    return 6 * k + 8


def _check_max_variables(max_variables):
    if max_variables is None:
        return None
    if isinstance(max_variables, bool) or not isinstance(max_variables, (int, np.integer)) or max_variables < 1:
        raise ValueError("max_variables must be a positive integer or None, got %r" % (max_variables,))
    return int(max_variables)


def _check_lp_size(shape, max_variables, memory_budget, nx, type_as):
    """Refuse problems that are too large, before any allocation."""
    max_variables = _check_max_variables(max_variables)
    if any(int(n) == 0 for n in shape):
        raise ValueError(
            "M must have no empty axis (every marginal needs at least one point), got shape %s"
            % (tuple(int(n) for n in shape),)
        )
    n_var = 1
    for n in shape:
        n_var *= int(n)
    if max_variables is not None and n_var > max_variables:
        raise ValueError(
            "the multimarginal LP of shape %s has %d variables (the product of the sizes), "
            "over max_variables=%d. The exact LP only scales to small problems: use "
            "emot_sinkhorn / emot_sinkhorn2 with a small reg (entropic approximation), "
            "a structured cost (ot_multimarginal.PairwiseCost) for the structured solvers, "
            "or raise max_variables." % (tuple(int(n) for n in shape), n_var, max_variables)
        )
    check_dense_size(
        shape,
        8,
        _n_buffers(len(shape)),
        memory_budget,
        what="the multimarginal LP (cost, solution and sparse constraint matrix)",
        nx=nx,
        type_as=type_as,
    )
    return n_var


def _constraint_matrix(shape, prescribed=None):
    r"""Sparse equality matrix of the marginal constraints (CSR).

    ``prescribed``: the constrained marginals, in increasing order (default
    all; free marginals have no row). Rows: the :math:`n_i` constraints of
    the first prescribed marginal, then for each other prescribed marginal
    its first :math:`n_i - 1` constraints (the last one is implied by the
    others since all marginals have the same mass). Columns: the row-major
    flattening of the multi-index :math:`I`. Row ``p`` of marginal ``i``
    holds the variables with :math:`I_i = p`.
    """
    if prescribed is None:
        prescribed = range(len(shape))
    prescribed = list(prescribed)
    n_var = int(np.prod(shape))
    idx_dtype = np.int32 if n_var < 2**31 - 1 else np.int64
    flat = np.arange(n_var, dtype=idx_dtype).reshape(shape)
    indices = []
    n_kept = []
    for t, i in enumerate(prescribed):
        n = shape[i]
        rows = np.moveaxis(flat, i, 0).reshape(n, -1)  # sorted within each row
        if t > 0:
            rows = rows[:-1]
        indices.append(rows.ravel())
        n_kept.append(rows.shape[0])
    del flat
    n_rows = sum(n_kept)
    counts = np.concatenate([np.full(m, n_var // shape[i], dtype=np.int64) for i, m in zip(prescribed, n_kept)])
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(indices)
    if indptr[-1] < 2**31 - 1:
        indptr = indptr.astype(np.int32)
    A = sp.csr_matrix((np.ones(indices.shape[0]), indices, indptr), shape=(n_rows, n_var))
    return A


def _solve(a_s, M, memory_budget, max_variables, free=None, verbose=False, log=False, caller="emot_lp"):
    """Validate, solve in NumPy; returns everything the public calls need."""
    check_not_pot_signature(a_s, M, None, caller)
    verbose = check_bool("verbose", verbose)
    check_bool("log", log)
    memory_budget = check_memory_budget(memory_budget)
    if not (hasattr(M, "shape") and hasattr(M, "ndim")):
        raise TypeError("M must be a NumPy array or torch tensor (the cost tensor), got %s" % describe(M))
    nx = backend_of(a_s=a_s, M=M)
    if hasattr(M, "shape") and hasattr(M, "ndim"):
        # size refusal first: nothing (not even the finiteness check) is allocated
        _check_lp_size(tuple(M.shape), max_variables, memory_budget, nx, M)
    check_cost_tensor(nx, M)
    shape = tuple(int(n) for n in M.shape)
    weights = check_weights(nx, a_s, shape, M)
    free = check_free(free, len(shape))
    prescribed = [i for i in range(len(shape)) if i not in free]

    M_np = np.asarray(nx.to_numpy(nx.detach(M)), dtype=np.float64)
    a_np = []
    for a in weights:
        a = np.asarray(nx.to_numpy(nx.detach(a)), dtype=np.float64)
        a_np.append(a / a.sum())  # exact equal masses (validated to rtol already)
    b = np.concatenate([a_np[prescribed[0]]] + [a_np[i][:-1] for i in prescribed[1:]])
    A = _constraint_matrix(shape, prescribed)
    res = linprog(M_np.ravel(), A_eq=A, b_eq=b, bounds=(0, None), method="highs", options={"disp": verbose})
    del A
    if res.status != 0 or res.x is None:
        raise RuntimeError(
            "HiGHS failed on the multimarginal LP of shape %s (linprog status %d): %s"
            % (shape, res.status, res.message)
        )
    plan = np.maximum(res.x, 0.0).reshape(shape)  # clip round-off below 0
    y = np.asarray(res.eqlin.marginals, dtype=np.float64)
    duals = [np.zeros(n) for n in shape]  # u_i = 0 on a free node
    off = 0
    for t, i in enumerate(prescribed):
        m = shape[i] if t == 0 else shape[i] - 1
        duals[i][:m] = y[off : off + m]
        off += m
    info = dict(
        status=int(res.status), message=str(res.message), niter=int(getattr(res, "nit", -1)), free=free, converged=True
    )  # a solve that did not reach the optimum raised above
    return nx, plan, float(res.fun), duals, info


def _log(nx, M, value, duals, info):
    out = dict(info)
    out["value"] = value
    out["duals"] = [nx.from_numpy(u, type_as=M) for u in duals]
    return out


_PARAMS = r"""
    a_s : list of k array-like of shape (n_i,), or None
        Weights of the k marginals, each summing to one (to 1e-7 in float64,
        1e-4 in float32; they are then renormalised to sum exactly to one in
        float64 before the solve). ``None`` (or a ``None`` entry) means uniform.
        The weights of a free node are validated but not used.
    M : array-like of shape (n_1, ..., n_k)
        Cost tensor :math:`C` (NumPy array or torch tensor, floating dtype,
        finite entries), k >= 2.
    log : bool, optional
        Also return a dict with the solve's details (see Returns).
    memory_budget : int, optional
        Bytes the LP may use (estimated as :math:`(6k + 8)` float64 numbers
        per variable: cost, solution, the sparse constraint matrix and HiGHS's
        copies of it); default half the available memory. Larger problems
        raise ``MemoryError`` at once.
    max_variables : int or None, optional
        Largest :math:`\prod_i n_i` accepted (default 2,000,000); larger
        problems raise ``ValueError`` at once, before any allocation. ``None``
        removes this limit (the memory guard still applies).
    free : sequence of int, optional
        Nodes whose marginal is not prescribed: their equality constraints
        are dropped (:math:`u_i = 0` in the dual) and the plan's marginal
        there is whatever is optimal. Distinct indices in ``[0, k)``, at
        least one node prescribed; ``None`` (default): none.
    verbose : bool, optional
        Print HiGHS's progress (``linprog(options={'disp': True})``).
"""

_LOG_DOC = r"""
    log : dict
        Returned if ``log=True``: ``status`` (the :func:`scipy.optimize.linprog`
        status, 0 = optimal), ``message`` (HiGHS's message), ``niter``
        (simplex/IPM iterations), ``converged`` (always ``True``: a failed
        solve raises), ``value`` (the optimal value, backend scalar)
        and ``duals`` (k dual vectors :math:`u_i`, backend arrays like ``M``)
        with :math:`\oplus_i u_i \le C` entrywise and
        :math:`\text{value} = \sum_i \langle a_i, u_i\rangle` (:math:`u_i = 0`
        for a free node), and ``free`` (the tuple of free nodes).
"""

_NOTES = r"""
    Notes
    -----
    The LP has the :math:`N = \prod_i n_i` entries of :math:`P` (row-major
    flattening of the multi-index :math:`I`) as variables and one equality
    :math:`\sum_{I : I_i = p} P_I = a_{i,p}` per marginal ``i`` and index
    ``p``; each variable appears in exactly k of them, so the constraint
    matrix is sparse (``k N`` non-zeros) and passed to HiGHS as a
    ``scipy.sparse`` CSR matrix. Since all marginals have mass one, these
    :math:`\sum_i n_i` equations have rank :math:`\sum_i n_i - k + 1`: the
    last equation of each marginal :math:`i \ge 2` is dropped, so the
    remaining system has full row rank. The dual of a dropped equation is
    set to 0, which fixes the free additive constants of the dual (any
    :math:`u_i + c_i` with :math:`\sum_i c_i = 0` is also optimal): the
    returned duals have :math:`u_{i, n_i - 1} = 0` for :math:`i \ge 2`. The
    solution is a vertex of the polytope (at most :math:`\sum_i n_i - k + 1`
    non-zeros); tiny negative round-off in it is clipped to 0.

    With free nodes :math:`F` the equations of the marginals in :math:`F`
    are left out (the first prescribed marginal keeps all its equations,
    which fix the mass to one), and the dual is the same with
    :math:`u_i = 0` for :math:`i \in F`:
    :math:`\max \sum_{i \notin F}\langle a_i, u_i\rangle` s.t.
    :math:`\oplus_{i\notin F} u_i \le C`.

    The computation is done in NumPy float64 whatever the backend; the
    results are converted back to the backend, dtype and device of ``M``.
"""

_RAISES = r"""
    Raises
    ------
    ValueError
        If the problem has more than ``max_variables`` variables, or for
        invalid inputs.
    MemoryError
        If the LP would not fit in ``memory_budget``.
    RuntimeError
        If HiGHS does not report an optimal solution (its message is given).
"""


def emot_lp(
    a_s: Weights,
    M: Array,
    log: bool = False,
    memory_budget: Optional[int] = None,
    max_variables: int = 2_000_000,
    free: Nodes = None,
    verbose: bool = False,
) -> Union[Array, Tuple[Array, LogDict]]:
    nx, plan, value, duals, info = _solve(a_s, M, memory_budget, max_variables, free, verbose, log, "emot_lp")
    P = nx.from_numpy(plan, type_as=M)
    if log:
        return P, _log(nx, M, nx.from_numpy(np.asarray(value), type_as=M), duals, info)
    return P


emot_lp.__doc__ = (
    r"""Exact multimarginal OT plan (linear program, HiGHS).

    Solves the unregularised multimarginal problem

    .. math::
        P^\star \in \mathop{\arg\min}_{P \in \Pi(a_1, \dots, a_k)} \langle C, P\rangle

    where the transport polytope :math:`\Pi(a_1, \dots, a_k)` is the set of
    non-negative tensors :math:`P \ge 0` of shape :math:`(n_1, \dots, n_k)`
    whose i-th marginal (sum over every other axis) is :math:`a_i`. Its dual
    is

    .. math::
        \max_{u_1, \dots, u_k} \sum_i \langle a_i, u_i\rangle
        \quad \text{s.t.} \quad \oplus_i u_i \le C .

    It is the limit :math:`\varepsilon \to 0` of
    :func:`~ot_multimarginal.emot_sinkhorn`; for k = 2 it is ``ot.emd``.
    The optimal plan may not be unique; a vertex (sparse) solution is
    returned.

    .. note:: Backend-generic: NumPy in, NumPy out; torch in, torch out
        (same dtype and device as ``M``). No gradient flows through the plan.

    Parameters
    ----------
    """
    + _PARAMS
    + r"""
    Returns
    -------
    P : array-like of shape (n_1, ..., n_k)
        An optimal plan (same backend, dtype and device as ``M``).
    """
    + _LOG_DOC
    + _RAISES
    + _NOTES
    + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.lp import emot_lp
    >>> M = np.random.RandomState(0).rand(3, 4, 5)
    >>> P = emot_lp(None, M)
    >>> P.shape
    (3, 4, 5)
    >>> bool(np.allclose(P.sum(axis=(0, 1)), 1 / 5))
    True
    >>> int((P > 0).sum()) <= 3 + 4 + 5 - 3 + 1  # a vertex of the polytope
    True

    See Also
    --------
    emot_lp2 : the optimal value, differentiable.
    emot_sinkhorn : the entropic approximation, for larger problems.
    ot.emd : the two-marginal case.
    """
)


def emot_lp2(
    a_s: Weights,
    M: Array,
    log: bool = False,
    memory_budget: Optional[int] = None,
    max_variables: int = 2_000_000,
    free: Nodes = None,
    verbose: bool = False,
) -> Union[Array, Tuple[Array, LogDict]]:
    nx, plan, value, duals, info = _solve(a_s, M, memory_budget, max_variables, free, verbose, log, "emot_lp2")
    val = nx.from_numpy(np.asarray(value), type_as=M)
    if str(nx) == "torch":
        inputs, grads = [], []
        if getattr(M, "requires_grad", False):
            inputs.append(M)
            grads.append(nx.from_numpy(plan, type_as=M))
        if isinstance(a_s, (list, tuple)):
            for a, u in zip(a_s, duals):
                if getattr(a, "requires_grad", False):
                    inputs.append(a)
                    grads.append(nx.from_numpy(u - u.mean(), type_as=a))
        if inputs:
            val = nx.set_gradients(val, tuple(inputs), tuple(grads))
    if log:
        return val, _log(nx, M, val, duals, info)
    return val


emot_lp2.__doc__ = (
    r"""Exact multimarginal OT value (linear program, HiGHS).

    Returns

    .. math::
        \mathrm{MOT}(a_1, \dots, a_k; C) = \min_{P \in \Pi(a_1, \dots, a_k)} \langle C, P\rangle
        = \max_{\oplus_i u_i \le C} \sum_i \langle a_i, u_i\rangle

    where the transport polytope :math:`\Pi(a_1, \dots, a_k)` is the set of
    non-negative tensors of shape :math:`(n_1, \dots, n_k)` whose i-th
    marginal is :math:`a_i`. For k = 2 it equals ``ot.emd2(a_1, a_2, C)``.
    Adding a constant :math:`c` to the cost adds exactly :math:`c` to the
    value (every plan has mass 1) and leaves the optimal plan unchanged.

    .. note:: **Value convention.** There is no entropic term: the value is
        :math:`\langle C, P^\star\rangle`, as for :func:`ot.emd2`. To compare
        it with an entropic solve, use ``log['value_linear']`` of
        :func:`emot_sinkhorn2` (its value includes :math:`\varepsilon\,\mathrm{KL}`).

    .. note:: Backend-generic. With torch inputs that require gradients, the
        value carries the envelope-theorem gradients (as ``ot.emd2``):
        :math:`\partial/\partial C = P^\star` and
        :math:`\partial/\partial a_i = u_i - \mathrm{mean}(u_i)` (centred
        duals; the gradient along mass-preserving directions, exact where
        the optimal duals are unique); zero for a free node, whose weights
        do not enter the LP.

    Parameters
    ----------
    """
    + _PARAMS
    + r"""
    Returns
    -------
    value : backend scalar
        The optimal value (same dtype and device as ``M``).
    """
    + _LOG_DOC
    + _RAISES
    + _NOTES
    + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.lp import emot_lp2
    >>> M = np.ones((2, 2, 2))
    >>> M[0, 0, 0] = M[1, 1, 1] = 0.0  # zero cost only when all indices agree
    >>> a_s = [np.array([0.5, 0.5])] * 3
    >>> float(emot_lp2(a_s, M))
    0.0
    >>> a_s = [np.array([0.3, 0.7]), np.array([0.6, 0.4]), np.array([0.5, 0.5])]
    >>> round(float(emot_lp2(a_s, M)), 10)  # 1 - (0.3 + 0.4) off the diagonal
    0.3

    See Also
    --------
    emot_lp : the optimal plan.
    emot_sinkhorn2 : the entropic approximation, for larger problems.
    ot.emd2 : the two-marginal case.
    """
)
