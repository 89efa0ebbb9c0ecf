# -*- coding: utf-8 -*-
r"""Multimarginal entropic Gromov–Wasserstein (quadratic loss, squared Euclidean distances).

Point clouds :math:`X_1, \dots, X_k` (weights :math:`\mu_i`) in spaces of any
dimensions :math:`d_i`, and a graph :math:`E` of pairs. The problem is

.. math::
    \mathrm{MGW}_\varepsilon = \min_{P \in \Pi(\mu_1, \dots, \mu_k)}
    \sum_{(i, j) \in E} G_{ij}(P_{ij}) + \varepsilon\,\mathrm{KL}(P \,\|\, \mu_1 \otimes \cdots \otimes \mu_k),

with :math:`P_{ij}` the pairwise marginal of :math:`P` on :math:`(i, j)` and
:math:`G` the quadratic GW loss of POT's ``square_loss`` on squared distance matrices,

.. math::
    G(\pi) = \sum_{a, b, c, d} \big(\|x_a - x_c\|^2 - \|y_b - y_d\|^2\big)^2 \pi_{ab}\,\pi_{cd}.

For centred clouds and a coupling :math:`\pi` of :math:`(p, q)` (Zhang,
Goldfeld, Mroueh, Sriperumbudur 2022)

.. math::
    G(\pi) = S_1 + 32\|A_\pi\|_F^2 + \langle c_{A_\pi}, \pi\rangle
    = S_1 + \min_A \big\{32\|A\|_F^2 + \langle c_A, \pi\rangle\big\},
    \qquad A_\pi = \tfrac12 \sum_{ab} \pi_{ab}\, x_a y_b^\top,

with :math:`c_A(x, y) = -4\|x\|^2\|y\|^2 - 32\, x^\top A y` and :math:`S_1`
a moment term (:func:`gw_moment_term`). Edge by edge, the multimarginal
problem becomes an alternation between a closed-form update of each
:math:`A_{ij}` and an *entropic multimarginal OT* with the pairwise cost
:math:`\sum_E c_{A_{ij}}` on the same graph, solved by the structured engines
(:class:`~ot_multimarginal.PairwiseCost`, never forming the tensor).
"""
# License: MIT License

import warnings
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
from ot.utils import check_random_state

from ._backend import dtype_info, to_float
from ._typing import Array, Edges, LogDict, Weights
from ._validation import (
    backend_of,
    check_choice,
    check_forwarded_kwargs,
    check_iteration_args,
    check_metric,
    check_point_clouds,
    check_reg,
    check_weights,
)
from .costs.dense import pairwise_cost_matrix
from .costs.graph import _check_edge_list, graph_edges
from .potentials import Potentials

__all__ = [
    "mgw_sinkhorn",
    "mgw_sinkhorn2",
    "gw_loss",
    "gw_moment_term",
    "gw_cross_moment",
    "gw_linear_cost",
    "gw_separable_terms",
    "match_from_plan",
]

NORMALIZATIONS = ("each", "joint", None)
# method='auto': Newton inner solves up to this many points in all (sum of n_i); at k = 3, n = 1000 cyclic Sinkhorn
# took 590-1640 sweeps per outer step, Newton through the eps-continuation converged to 1.5e-9
NEWTON_MAX_POINTS = 3000
# k >= 3: a finalist whose A comes this close (relative) to that of a finalist already converged stops there
# (run_starts(merge=...)); the alternation contracts by ~1e-2 a step near the fixed point (k = 3 copies)
MERGE = 1e-3


# ---- the decomposition ----------------------------------------------------------------------
def _sq_norms(nx, X):
    return nx.sum(X * X, axis=1)


def _pairwise_fourth_moment(nx, X, r):
    r""":math:`\sum_{a,c} r_a r_c \|x_a - x_c\|^4` in :math:`O(n d^2)` (any weights, any centring)."""
    s = _sq_norms(nx, X)
    m = nx.sum(r)
    rs = nx.sum(r * s)
    cov = nx.dot(X.T * r[None, :], X)
    mean = nx.dot(r, X)
    smean = nx.dot(r * s, X)
    return 2 * m * nx.sum(r * s * s) + 2 * rs * rs + 4 * nx.sum(cov * cov) - 8 * nx.sum(smean * mean)


def gw_loss(X, Y, P):
    r"""Quadratic GW loss of a (sub)coupling between two point clouds, without distance matrices.

    .. math::
        G(P) = \sum_{a, b, c, d} \big(\|x_a - x_c\|^2 - \|y_b - y_d\|^2\big)^2 P_{ab} P_{cd}

    — the value of POT's ``ot.gromov.gwloss`` with ``loss_fun='square_loss'``
    on the squared Euclidean distance matrices, for *any* non-negative ``P``
    (its marginals need not be the clouds' weights, the clouds need not be
    centred), computed exactly in :math:`O(nm + (n + m)\, d_x d_y)` time
    by expanding the squares.

    Parameters
    ----------
    X : array-like of shape (n, d_x)
    Y : array-like of shape (m, d_y)
    P : array-like of shape (n, m)

    Returns
    -------
    loss : backend scalar (differentiable in ``X``, ``Y`` and ``P`` on torch)

    Examples
    --------
    >>> import numpy as np, ot
    >>> from ot_multimarginal.gromov import gw_loss
    >>> rng = np.random.RandomState(0)
    >>> X, Y, P = rng.randn(5, 2), rng.randn(4, 3), rng.rand(5, 4) / 20
    >>> C1, C2 = ot.dist(X, X), ot.dist(Y, Y)
    >>> L = (C1[:, None, :, None] - C2[None, :, None, :]) ** 2   # L[a, b, c, d]
    >>> bool(np.isclose(gw_loss(X, Y, P), np.einsum("abcd,ab,cd->", L, P, P)))
    True
    """
    nx = backend_of(X=X, Y=Y, P=P)
    r = nx.sum(P, axis=1)
    s = nx.sum(P, axis=0)
    m = nx.sum(P)
    a = _sq_norms(nx, X)
    b = _sq_norms(nx, Y)
    t = nx.dot(a, nx.dot(P, b))
    u = nx.dot(nx.dot(a, P), Y)  # sum_ab a_a P_ab y_b
    w = nx.dot(nx.dot(P, b), X)  # sum_ab b_b P_ab x_a
    ybar = nx.dot(s, Y)
    xbar = nx.dot(r, X)
    M = nx.dot(X.T, nx.dot(P, Y))
    cross = (
        2 * t * m + 2 * nx.sum(a * r) * nx.sum(b * s) - 4 * nx.sum(u * ybar) - 4 * nx.sum(w * xbar) + 4 * nx.sum(M * M)
    )
    return _pairwise_fourth_moment(nx, X, r) + _pairwise_fourth_moment(nx, Y, s) - 2 * cross


def gw_moment_term(X, Y, p, q):
    r"""The moment term :math:`S_1` of the decomposition, for *centred* clouds.

    .. math::
        S_1 = \sum_{a,c} p_a p_c \|x_a - x_c\|^4 + \sum_{b,d} q_b q_d \|y_b - y_d\|^4
        - 4 \Big(\sum_a p_a\|x_a\|^2\Big)\Big(\sum_b q_b \|y_b\|^2\Big),

    so that :math:`G(\pi) = S_1 + 32\|A_\pi\|_F^2 + \langle c_{A_\pi}, \pi\rangle`
    for every coupling :math:`\pi` of :math:`(p, q)` (:func:`gw_cross_moment`,
    :func:`gw_linear_cost`).
    """
    nx = backend_of(X=X, Y=Y, p=p, q=q)
    m2x = nx.sum(p * _sq_norms(nx, X))
    m2y = nx.sum(q * _sq_norms(nx, Y))
    return _pairwise_fourth_moment(nx, X, p) + _pairwise_fourth_moment(nx, Y, q) - 4 * m2x * m2y


def gw_cross_moment(X, Y, P):
    r""":math:`A_P = \tfrac12 \sum_{ab} P_{ab}\, x_a y_b^\top` (shape ``(d_x, d_y)``): the minimiser over :math:`A`."""
    nx = backend_of(X=X, Y=Y, P=P)
    return 0.5 * nx.dot(X.T, nx.dot(P, Y))


def gw_linear_cost(X, Y, A):
    r"""The induced cost matrix :math:`c_A(x_a, y_b) = -4\|x_a\|^2\|y_b\|^2 - 32\, x_a^\top A y_b`, shape ``(n, m)``."""
    nx = backend_of(X=X, Y=Y, A=A)
    return -4 * _sq_norms(nx, X)[:, None] * _sq_norms(nx, Y)[None, :] - 32 * nx.dot(nx.dot(X, A), Y.T)


def _psd_sqrt(nx, M):
    """Square root of a symmetric PSD matrix (eigenvalues clipped at 0: rank-deficient ``A A^T`` is the rule)."""
    lam, V = nx.eigh(M)
    return nx.dot(V * nx.sqrt(nx.clip(lam, 0.0, None))[None, :], V.T)


def gw_separable_roots(A):
    r"""The pair :math:`((AA^\top)^{1/2}, (A^\top A)^{1/2})` of :func:`gw_separable_terms`."""
    nx = backend_of(A=A)
    return _psd_sqrt(nx, nx.dot(A, A.T)), _psd_sqrt(nx, nx.dot(A.T, A))


def gw_separable_terms(X, Y, A, roots=None):
    r"""Functions :math:`h_x, h_y` with :math:`c_A(x, y) + h_x(x) + h_y(y) \ge 0`, zero on isometric matches.

    .. math::
        c_A(x, y) + h_x(x) + h_y(y) = 2\big(\|x\|^2 - \|y\|^2\big)^2 + 16\,\|S^{1/2}U^\top x - S^{1/2}V^\top y\|^2,

    :math:`A = USV^\top`, with :math:`h_x(x) = 2\|x\|^4 + 16\,x^\top (AA^\top)^{1/2} x` and
    :math:`h_y(y) = 2\|y\|^4 + 16\,y^\top (A^\top A)^{1/2} y`. Adding separable terms changes
    neither the plan of an OT problem nor Sinkhorn's iterates (only the potentials, by
    :math:`-h`, and the value, by :math:`E_\mu h_x + E_\nu h_y`), but it removes the large
    rank-one part :math:`-4\|x\|^2\|y\|^2` that potentials would otherwise have to learn
    (the neural estimator, :class:`~ot_multimarginal.neural.NeuralMGW`). Returns ``(h_x, h_y)``
    of shapes ``(n,)`` and ``(m,)``. ``roots``: the pair :math:`((AA^\top)^{1/2}, (A^\top A)^{1/2})`
    if already computed (a cost evaluated on many batches for one ``A``).
    """
    nx = backend_of(X=X, Y=Y, A=A)
    a, b = _sq_norms(nx, X), _sq_norms(nx, Y)
    Rx, Ry = gw_separable_roots(A) if roots is None else roots
    hx = 2 * a * a + 16 * nx.sum(nx.dot(X, Rx) * X, axis=1)
    hy = 2 * b * b + 16 * nx.sum(nx.dot(Y, Ry) * Y, axis=1)
    return hx, hy


# ---- matching ---------------------------------------------------------------------------------
def match_from_plan(P: Array, soft: bool = False) -> Any:
    r"""For each row point, its most likely partner under a pairwise plan (or the conditional law).

    Parameters
    ----------
    P : array-like of shape (n_i, n_j)
        A pairwise plan, e.g. ``log['pairwise_plans'][(i, j)]`` of
        :func:`mgw_sinkhorn` or ``log['plan'].pairwise_marginal(i, j)``.
    soft : bool, optional
        ``False`` (default): the indices :math:`\arg\max_b P_{ab}` (NumPy
        ``int64``, shape ``(n_i,)``). ``True``: the conditional law
        :math:`P_{ab} / \sum_{b'} P_{ab'}` (rows summing to one; backend array).

    Returns
    -------
    match : numpy.ndarray of int64 of shape (n_i,), or array-like of shape (n_i, n_j)
        ``soft=False``: ``match[a]`` the column of the largest entry of row
        ``a``. ``soft=True``: the row-normalised plan, in the backend, dtype
        and device of ``P``.
    """
    nx = backend_of(P=P)
    if getattr(P, "ndim", None) != 2:
        raise ValueError(
            "P must be a 2-D pairwise plan of shape (n_i, n_j), got shape %s" % (tuple(getattr(P, "shape", ())),)
        )
    if soft:
        return P / nx.sum(P, axis=1, keepdims=True)
    return np.asarray(np.argmax(nx.to_numpy(nx.detach(P)), axis=1), dtype=np.int64)


# ---- preparation ------------------------------------------------------------------------------
def prepare_clouds(X_s, a_s, normalize):
    """Validated clouds, weights, centring means and scales; the normalised clouds (differentiable)."""
    nx, X_s = check_point_clouds(X_s)  # one floating dtype and device (integer clouds cast)
    ref = X_s[0]
    check_choice("normalize", normalize, NORMALIZATIONS)
    shape = tuple(int(X.shape[0]) for X in X_s)
    a_s = check_weights(nx, a_s, shape, ref, clouds="X_s")
    a_s = [nx.detach(a) for a in a_s]
    means = [nx.dot(a, X) for a, X in zip(a_s, X_s)]
    Xc = [X - mu[None, :] for X, mu in zip(X_s, means)]
    m2 = [nx.sum(a * _sq_norms(nx, X)) for a, X in zip(a_s, Xc)]
    m2f = [to_float(nx, v) for v in m2]
    if normalize == "each":
        flat = [i for i, v in enumerate(m2f) if not v > 0]
        if flat:
            raise ValueError(
                "X_s[%d] has zero spread (all its weighted points coincide): normalize='each' cannot scale it "
                "to unit second moment; pass normalize=None or 'joint'" % flat[0]
            )
        scales = [nx.sqrt(v) for v in m2]
    elif normalize == "joint":
        if not sum(m2f) > 0:
            raise ValueError("every cloud in X_s has zero spread: normalize='joint' has no scale; pass normalize=None")
        s = nx.sqrt(sum(m2) / len(m2))
        scales = [s] * len(m2)
    else:
        scales = [nx.ones((), type_as=ref) for _ in m2]
    Xn = [X / s for X, s in zip(Xc, scales)]
    return nx, Xn, a_s, means, scales


def _pca_axes(nx, X, a, n_components):
    """Top principal axes and variances of a centred weighted cloud (NumPy float64, host).

    The ``d × d`` covariance is formed where the cloud is (a GPU) and only it goes to the host.
    """
    X = nx.detach(X)
    cov = np.asarray(nx.to_numpy((X * nx.detach(a)[:, None]).T @ X), dtype=np.float64)
    lam, U = np.linalg.eigh(cov)
    order = np.argsort(lam)[::-1][:n_components]
    lam = np.clip(lam[order], 0.0, None)
    U = U[:, order]
    # fix each axis's sign (largest entry positive) so candidates do not depend on LAPACK's choice
    U = U * np.where(U[np.argmax(np.abs(U), axis=0), np.arange(U.shape[1])] < 0, -1.0, 1.0)[None, :]
    return lam, U


def _pca_candidates(nx, Xn, a_s, edges, n_components, max_candidates, rng):
    r"""Initial :math:`A_{ij} = \tfrac12 \sum_c s_{ic} s_{jc} \sqrt{\lambda_{ic}\lambda_{jc}}\, u_{ic} u_{jc}^\top`.

    One sign vector :math:`s_i \in \{\pm1\}^r` per node, node 0's fixed to +1
    (flipping every node at once gives the same :math:`A`): the
    :math:`2^{r(k-1)}` ways to align the principal axes of the clouds
    (a random subset of ``max_candidates`` if there are more).
    """
    k = len(Xn)
    axes = [_pca_axes(nx, X, a, n_components) for X, a in zip(Xn, a_s)]
    r = [len(lam) for lam, _ in axes]
    n_free = sum(r[1:])
    total = 2**n_free
    if total <= max_candidates:
        codes = range(total)
    else:
        codes = sorted(rng.choice(total, size=max_candidates, replace=False).tolist())
    out = []
    for code in codes:
        bits = [(code >> t) & 1 for t in range(n_free)]
        signs = [np.ones(r[0])]
        pos = 0
        for i in range(1, k):
            signs.append(1.0 - 2.0 * np.asarray(bits[pos : pos + r[i]], dtype=np.float64))
            pos += r[i]
        out.append(_pca_start(nx, axes, signs, edges, Xn[0]))
    return out


def _pca_start(nx, axes, signs, edges, like):
    r"""The :math:`A_{ij}` of :func:`_pca_candidates` for one sign vector per node (``axes``: :func:`_pca_axes`)."""
    As = []
    for i, j in edges:
        (li, Ui), (lj, Uj) = axes[i], axes[j]
        c = min(len(li), len(lj))
        w = signs[i][:c] * signs[j][:c] * np.sqrt(li[:c] * lj[:c])
        As.append(nx.from_numpy(0.5 * (Ui[:, :c] * w[None, :]) @ Uj[:, :c].T, type_as=like))
    return As


def _spanning_tree(edges, k):
    """Edges ``(parent, child)`` of a breadth-first spanning forest of the graph from node 0 (then any unreached)."""
    nbrs = [[] for _ in range(k)]
    for i, j in edges:
        nbrs[i].append(j)
        nbrs[j].append(i)
    seen, tree = [False] * k, []
    for root in range(k):
        if seen[root]:
            continue
        seen[root], queue = True, [root]
        while queue:
            p = queue.pop(0)
            for c in nbrs[p]:
                if not seen[c]:
                    seen[c] = True
                    tree.append((p, c))
                    queue.append(c)
    return tree


# the two-cloud sign screen of pairwise_pca_start runs on at most this many points of each cloud (a fixed
# random subset; the principal axes are those of the full clouds): at k = 3, n = 1000 the full screen took
# 195 Newton iterations of O(n^3) each (31 s, a quarter of the run) for a choice among reflections
SCREEN_MAX_POINTS = 400


def _screen_subsample(a, seed):
    """Indices (sorted, a fixed random subset) of at most :data:`SCREEN_MAX_POINTS` points; ``None``: all."""
    n = int(a.shape[0])
    if n <= SCREEN_MAX_POINTS:
        return None
    return np.sort(np.random.RandomState(seed).choice(n, SCREEN_MAX_POINTS, replace=False))


def _rows(X, rows):
    return X if rows is None else X[rows.tolist()]


def _screen_weights(nx, a, rows):
    if rows is None:
        return a
    w = a[rows.tolist()]
    return w / nx.sum(w)


def pairwise_pca_start(problem, solver_factory, n_components, n_screen):
    r"""One principal-axes start for :math:`k \ge 3`, its signs chosen edge by edge on two-cloud problems.

    The :math:`2^{r(k-1)}` sign choices of :func:`_pca_candidates` are a product of one relative
    choice :math:`\sigma_{pc} = s_p s_c \in \{\pm1\}^r` per edge of a spanning tree of the graph
    (breadth first from node 0). Each :math:`\sigma_{pc}` is picked on the two-cloud GW problem of its
    edge alone (the clouds :math:`p, c`, their weights, features and :math:`\varepsilon`): every one of
    its :math:`2^r` principal-axes starts runs ``max(1, n_screen // 2)`` outer steps (warm from the
    first choice's first potentials), the lowest objective wins. The
    node signs are the products along the tree paths. Cost: :math:`2^r` short two-cloud alternations
    per tree edge (:math:`O(n^2)` per sweep) instead of :math:`2^{r(k-1)}` short :math:`k`-cloud ones.
    Clouds of more than :data:`SCREEN_MAX_POINTS` points are screened on a fixed random subset of that
    size (the axes stay those of the full clouds; a wrong choice costs time, not the result: the
    product-plan start still runs and the lower objective is kept).

    Returns ``(A, info)``: one matrix per edge of ``problem`` and, per tree edge, the relative signs
    kept and every choice's screening objective.
    """
    from ._gw_alternation import Alternation, GWProblem

    nx, k = problem.nx, problem.k
    axes = [_pca_axes(nx, X, a, n_components) for X, a in zip(problem.X_s, problem.a_s)]
    signs = [np.ones(len(lam)) for lam, _ in axes]
    # half the k-cloud screen's first round: the choice after one step was the one after two and four on 24 of
    # 24 problems (k = 3 copies with noise 0-0.4, digits; the 2^r choices differ by reflections of the axes)
    steps = max(1, int(n_screen) // 2)
    info = []
    for p, c in _spanning_tree(problem.edges, k):
        m = min(len(axes[p][0]), len(axes[c][0]))
        keep = [_screen_subsample(problem.a_s[i], i) for i in (p, c)]
        sub = GWProblem(
            nx,
            [_rows(problem.X_s[i], r) for i, r in zip((p, c), keep)],
            [_screen_weights(nx, problem.a_s[i], r) for i, r in zip((p, c), keep)],
            [(0, 1)],
            problem.reg,
            alpha=problem.alpha,
            F_s=None if problem.F_s is None else [_rows(problem.F_s[i], r) for i, r in zip((p, c), keep)],
            feature_metric=problem.feature_metric,
        )
        scores, first = [], None
        for code in range(2**m):
            sigma = 1.0 - 2.0 * np.asarray([(code >> t) & 1 for t in range(m)], dtype=np.float64)
            A = _pca_start(nx, [axes[p], axes[c]], [np.ones(m), sigma], [(0, 1)], problem.X_s[0])
            run = Alternation(sub, solver_factory(sub), A, "sign%d" % code)
            run.pot = first  # warm: the first choice's first potentials (same clouds, same-size cost)
            while run.niter < steps and not run.converged:
                run.step()
                if first is None:
                    first = run.pot
                if not run.converged:
                    run.tighten()
            scores.append((run.best["obj"], code, sigma))
        obj, code, sigma = min(scores, key=lambda t: t[0])
        signs[c] = np.ones(len(axes[c][0]))
        signs[c][:m] = signs[p][:m] * sigma
        info.append(dict(edge=(p, c), signs=sigma, objectives=[s[0] for s in scores]))
    return _pca_start(nx, axes, signs, problem.edges, problem.X_s[0]), info


def initial_candidates(nx, init, Xn, a_s, edges, n_components, max_candidates, rng):
    """The starts ``[(name, [A_e for e in edges]), ...]`` of ``init``."""
    zero = [nx.zeros((int(Xn[i].shape[1]), int(Xn[j].shape[1])), type_as=Xn[0]) for i, j in edges]
    if isinstance(init, str):
        check_choice("init", init, ("auto", "zero", "pca"))
        cands = [("zero", zero)] if init in ("auto", "zero") else []
        if init in ("auto", "pca"):
            pca = _pca_candidates(nx, Xn, a_s, edges, n_components, max_candidates, rng)
            cands.extend(("pca%d" % c, A) for c, A in enumerate(pca))
        return cands
    if not isinstance(init, (list, tuple)) or len(init) != len(edges):
        raise ValueError(
            "init must be 'auto', 'zero', 'pca' or a list of %d matrices A_ij (one per edge, in the order of "
            "graph_edges), got %r" % (len(edges), init if isinstance(init, (str, type(None))) else type(init).__name__)
        )
    backend_of(X_s=Xn, init=list(init))  # one library
    out = []
    for e, ((i, j), A) in enumerate(zip(edges, init)):
        want = tuple(zero[e].shape)
        if not hasattr(A, "shape") or tuple(A.shape) != want:
            raise ValueError(
                "init[%d] (edge %r) must have shape %s = (d_%d, d_%d), got %s"
                % (e, (i, j), want, i, j, tuple(getattr(A, "shape", ())))
            )
        out.append(nx.detach(A) + zero[e])  # cast to the clouds' dtype and device
    return [("given", out)]


# ---- the solver -------------------------------------------------------------------------------
def _check_features(nx, Y_s, alpha, shape, ref):
    """Validated feature clouds (cast to the clouds' dtype and device) and alpha in [0, 1]."""
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)):
            raise TypeError("alpha must be a float in [0, 1], got %r" % (alpha,))
        alpha = float(alpha)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError("alpha must be in [0, 1] (1: structure only, 0: features only), got %r" % (alpha,))
    if Y_s is None:
        if alpha is not None and alpha != 1.0:
            raise ValueError(
                "alpha=%r weights the feature cost, but no features were given: pass Y_s (one feature array per "
                "cloud) or leave alpha unset for plain Gromov-Wasserstein" % (alpha,)
            )
        return None, 1.0
    k = len(shape)
    if not isinstance(Y_s, (list, tuple)) or len(Y_s) != k:
        raise ValueError(
            "Y_s must be a list of %d feature arrays (one per cloud of X_s), got %s"
            % (k, "%d entries" % len(Y_s) if isinstance(Y_s, (list, tuple)) else type(Y_s).__name__)
        )
    nyx, F = check_point_clouds(list(Y_s), name="Y_s")
    if str(nyx) != str(nx):
        raise TypeError("Y_s must come from the same library as X_s (%s), got %s" % (nx, nyx))
    for i, (Fi, n) in enumerate(zip(F, shape)):
        if int(Fi.shape[0]) != n:
            raise ValueError(
                "Y_s[%d] must have one row per point of X_s[%d] (%d rows), got %d" % (i, i, n, int(Fi.shape[0]))
            )
    F = [Fi.to(dtype=ref.dtype, device=ref.device) if str(nx) == "torch" else np.asarray(Fi, ref.dtype) for Fi in F]
    return F, 0.5 if alpha is None else alpha


def _cast_to(nx, x, ref):
    if x is None:
        return None
    if str(nx) == "numpy":
        return np.asarray(x, dtype=ref.dtype)
    return x.to(dtype=ref.dtype, device=ref.device)


def _mgw(
    X_s,
    reg,
    a_s,
    graph,
    normalize,
    Y_s,
    alpha,
    feature_metric,
    init,
    n_components,
    max_candidates,
    n_screen,
    method,
    numItermax,
    stopThr,
    numItermaxInner,
    stopThrInner,
    random_state,
    verbose,
    warn,
    kwargs,
    caller,
    want_plan,
):
    """The shared body of :func:`mgw_sinkhorn` and :func:`mgw_sinkhorn2`: ``(plan or None, value, log)``."""
    from ._gw_alternation import GWProblem, SinkhornInner, as_float64, run_starts, zero_saddle_escape

    reg = check_reg(reg)
    check_iteration_args(numItermax, stopThr)
    check_iteration_args(numItermaxInner, stopThrInner)
    check_forwarded_kwargs(caller, method, kwargs, verbose=verbose, log=True, warn=warn)
    for name, val, low in (
        ("n_components", n_components, 1),
        ("max_candidates", max_candidates, 1),
        ("n_screen", n_screen, 1),
    ):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise ValueError("%s must be an integer >= %d, got %r" % (name, low, val))
    nx, Xn, a_s, means, scales = prepare_clouds(X_s, a_s, normalize)
    k = len(Xn)
    shape = tuple(int(X.shape[0]) for X in Xn)
    F, alpha = _check_features(nx, Y_s, alpha, shape, Xn[0])
    if F is not None:
        check_metric(feature_metric, nx, "feature_metric")
    edges = _check_edge_list(graph_edges(graph, k), k, "graph")
    ref = nx.detach(Xn[0])
    # the alternation runs in float64 (float32 inner solves stall at their attainable tolerance)
    low = dtype_info(nx, ref)[0] > 1e-10
    Xd = [nx.detach(X) for X in Xn]
    Fd = None if F is None else [nx.detach(Fi) for Fi in F]
    if low:
        Xd, Fd = as_float64(nx, Xd), None if Fd is None else as_float64(nx, Fd)
        a64 = [a / nx.sum(a) for a in as_float64(nx, a_s)]  # float32 weights sum to one only to 1e-7
    else:
        a64 = a_s
    rng = check_random_state(random_state)
    cands = initial_candidates(nx, init, Xd, a64, edges, n_components, max_candidates, rng)
    if method == "auto":
        method = "sinkhorn_newton" if sum(shape) <= NEWTON_MAX_POINTS else "sinkhorn_log"
    problem = GWProblem(nx, Xd, a64, edges, reg, alpha=alpha, F_s=Fd, feature_metric=feature_metric)
    if alpha == 0.0:
        cands = cands[:1]  # the cost does not depend on A

    def factory(prob=problem):
        return SinkhornInner(prob, method=method, numItermax=numItermaxInner, stopThr=stopThrInner, **kwargs)

    if isinstance(init, str) and init == "auto" and k >= 3 and alpha > 0.0 and len(cands) > 2:
        # k >= 3: one principal-axes start, its signs picked edge by edge on two-cloud problems, instead of
        # the 2^(r(k-1)) sign choices screened on the k-cloud problem (65 s of 69 at k = 3, n = 300)
        A, _ = pairwise_pca_start(problem, factory, n_components, n_screen)
        cands = [cands[0], ("pca-pairs", A)]

    escape = zero_saddle_escape(problem) if isinstance(init, str) and init in ("auto", "zero") else None
    run, screened = run_starts(
        problem,
        factory,
        cands,
        max(int(numItermax), 1),
        stopThr,
        n_screen=n_screen,
        verbose=verbose,
        escape=escape,
        merge=MERGE if k >= 3 else 0.0,  # k = 2: the product-plan start always to convergence (POT's value)
    )
    best = run.finish()
    converged = bool(run.converged)
    if warn and not converged:
        warnings.warn(
            "%s did not converge: relative change of the objective and of the A_ij %.3e (stopThr %.1e) after %d "
            "outer steps (inner tolerance %.1e). Increase numItermax or reg."
            % (caller, run.err[-1] if run.err else np.inf, stopThr, run.niter, run.tol),
            UserWarning,
            stacklevel=3,
        )
    last = run.solver.last_log
    if warn and not last.get("converged", True):
        warnings.warn(
            "%s: the last inner EMOT solve did not converge (marginal error %.3e > %.1e after %d iterations). "
            "Increase numItermaxInner or reg." % (caller, last["err"], last["stopThr"], last["niter"]),
            UserWarning,
            stacklevel=3,
        )
    terms = best["terms"]
    # value at the plan kept, differentiable in X_s (and Y_s) through the clouds (plan held fixed)
    Ps = [_cast_to(nx, P, ref) for P in run.solver.pairwise_plans(best["pot"])]
    quad = 0.0
    if alpha > 0.0:
        quad = alpha * sum(gw_loss(Xn[i], Xn[j], P) for (i, j), P in zip(edges, Ps))
    linear = 0.0
    if F is not None and alpha < 1.0:
        for (i, j), P in zip(edges, Ps):
            M = pairwise_cost_matrix(nx, F[i], F[j], feature_metric, "features of edge %r" % ((i, j),))
            linear = linear + (1.0 - alpha) * nx.sum(M * P)
    zero = nx.zeros((), type_as=ref)
    quad = quad + zero
    linear = linear + zero
    value = quad + linear + terms["ent"]
    plan = None
    if want_plan:
        pot = best["pot"]
        if low:  # the plan in the clouds' dtype: the potentials on the engine of the cost in that dtype
            A32 = [_cast_to(nx, A, ref) for A in best["A"]]
            prob32 = GWProblem(
                nx,
                [nx.detach(X) for X in Xn],
                a_s,
                edges,
                reg,
                alpha=alpha,
                F_s=None if F is None else [nx.detach(Fi) for Fi in F],
                feature_metric=feature_metric,
            )
            engine = prob32.cost(A32).pairwise_cost(prob32.Z_s).make_engine(reg)
            pot = Potentials(engine, [_cast_to(nx, p, ref) for p in pot], a_s)
        plan = pot.plan()
    pairwise = {}
    for (i, j), P in zip(edges, Ps):
        pairwise[(i, j)] = P
        pairwise[(j, i)] = P.T
    s4 = scales[0] ** 4
    out = dict(
        value=value,
        value_quad=quad,
        value_linear=linear,
        value_original=None if normalize == "each" or (F is not None and alpha < 1.0) else value * s4,
        niter=run.niter,
        converged=converged,
        err=list(run.err),
        A={(i, j): _cast_to(nx, A, ref) for (i, j), A in zip(edges, best["A_P"])},
        A_used={(i, j): _cast_to(nx, A, ref) for (i, j), A in zip(edges, best["A"])},
        plan=plan,
        potentials=best["pot"],
        pairwise_plans=pairwise,
        edges=list(edges),
        objective=list(run.history),
        marg_err=list(run.marg_err),
        candidates=[(name, obj) for name, obj, _ in screened],
        init=run.name,
        scales=scales,
        means=means,
        inner_niter=list(run.inner_niter),
        inner_tol=list(run.inner_tol),
        A_change=list(run.A_change),
        inner_log=last.get("log"),
        reg=reg,
        alpha=alpha,
        normalize=normalize,
    )
    return plan, value, out


_SIGNATURE_DOC = r"""
    Solves

    .. math::
        \min_{P \in \Pi(\mu_1, \dots, \mu_k)}
        \alpha \sum_{(i, j) \in E} G(P_{ij}; \tilde X_i, \tilde X_j)
        + (1 - \alpha) \sum_{(i, j) \in E} \langle M_{ij}, P_{ij}\rangle
        + \varepsilon\,\mathrm{KL}(P \,\|\, \mu_1 \otimes \cdots \otimes \mu_k)

    where :math:`P_{ij}` is the pairwise marginal of the k-way plan on the edge
    :math:`(i, j)` of ``graph``, :math:`\tilde X_i` the centred and normalised
    clouds (``normalize``),
    :math:`G(\pi) = \sum (\|x_a - x_c\|^2 - \|y_b - y_d\|^2)^2 \pi_{ab}\pi_{cd}`
    the quadratic GW loss on squared Euclidean distances (POT's
    ``square_loss``; :func:`gw_loss`) and, for *fused* GW, :math:`M_{ij}`
    the feature cost ``feature_metric`` between the features ``Y_s[i]`` and
    ``Y_s[j]`` of the points (without ``Y_s``: :math:`\alpha = 1`, plain GW).
    The clouds share no coordinates: :math:`d_i` and :math:`n_i` may all differ.

    By the decomposition :math:`G(\pi) = S_1 + \min_A 32\|A\|_F^2 + \langle c_A, \pi\rangle`
    with :math:`c_A(x, y) = -4\|x\|^2\|y\|^2 - 32\,x^\top A y` (Zhang et al.
    2022; module docstring), the solver alternates

    1. :math:`P \leftarrow` the EMOT plan of the pairwise cost
       :math:`\sum_E \alpha\, c_{A_{ij}}(x_i, x_j) + (1 - \alpha) M_{ij}` on the
       graph (structured engines, log domain, warm-started from the previous
       potentials, inner tolerance tightened as the outer loop converges;
       always in float64, the results cast back);
    2. :math:`A_{ij} \leftarrow \tfrac12 \sum P_{ij}[a, b]\, x_{i,a} x_{j,b}^\top`
       (closed form),

    which decreases the objective monotonically (``log['objective']``) to a
    stationary point. GW is not convex: ``init='auto'`` starts from
    :math:`A = 0` (POT's product-plan start) and from the principal axes of
    the clouds aligned with every choice of signs, and keeps the best by
    successive halving (every start runs ``n_screen`` steps, the better half
    twice as many, ...); the product-plan start is never dropped and runs to
    convergence, so the objective is never above that of POT's default start.
    For :math:`k \ge 3` the :math:`2^{r(k-1)}` sign choices are not screened on
    the k-cloud problem: the signs are picked edge by edge along a spanning
    tree of the graph, each on the two-cloud problem of its edge (its
    :math:`2^r` choices run ``max(1, n_screen // 2)`` steps), giving one principal-axes
    start (``'pca-pairs'``); it runs to convergence first, then :math:`A = 0`,
    which stops where its :math:`A` comes within :math:`10^{-3}` (relative) of
    the converged one's (the same fixed point). Measured at k = 3, n = 300 on
    isometric copies: 1631 -> 311 Newton iterations in all (76 -> 15 inner
    solves), 1.1-1.4 times the cost of ``init='zero'`` alone, same value.

    .. note:: Backend-generic: NumPy in, NumPy out; torch in, torch out
        (same dtype and device). On torch the value is differentiable in
        ``X_s`` and ``Y_s`` (envelope theorem: the plan is held fixed at the optimum).

    Parameters
    ----------
    X_s : list of k array-like of shape (n_i, d_i)
        The point clouds (one library, dtype and device; any sizes and dimensions).
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`, in the units of the
        normalised clouds (so :math:`\varepsilon` is relative to
        :math:`\text{scale}^4` unless ``normalize=None``).
    a_s : list of k array-like of shape (n_i,), optional
        Weights of the points (uniform by default; a ``None`` entry is uniform).
    graph : str or list of pairs, optional
        The pairs whose losses are summed: ``'complete'`` (default, all
        pairs), ``'chain'``, ``'circle'``, ``'star'`` or an edge list (see
        :func:`~ot_multimarginal.costs.graph.graph_edges`). For k = 2 every
        choice is the single pair.
    normalize : {'each', 'joint', None}, optional
        Every cloud is centred (weighted mean 0; GW is translation invariant).
        ``'each'`` (default) then divides each cloud by its own root second
        moment :math:`s_i = (\sum_a \mu_{i,a}\|x_a - \bar x_i\|^2)^{1/2}`:
        the problem is that of the shapes, invariant to the scale of each
        dataset. ``'joint'`` divides every cloud by one scale :math:`s`
        (:math:`s^2` the mean of the :math:`s_i^2`): the same problem as the
        raw clouds with :math:`\varepsilon s^4`, value in original units
        ``log['value_original']`` :math:`= s^4\,` value. ``None``: centred
        only; ``reg`` and the value are in the data's units (for k = 2 the
        numbers of POT, see Notes). The features ``Y_s`` are not normalised.
    Y_s : list of k array-like of shape (n_i, f_i), optional
        Features of the points (fused GW): row ``a`` of ``Y_s[i]`` describes
        point ``a`` of ``X_s[i]`` (e.g. one-hot labels, colours). ``None``
        (default): plain GW.
    alpha : float in [0, 1], optional
        Weight of the structure term; ``1 - alpha`` weighs the feature cost
        (POT's ``entropic_fused_gromov_wasserstein`` convention). Default:
        0.5 with ``Y_s`` (POT's default), 1 without (giving ``alpha < 1``
        without ``Y_s`` is an error). ``alpha=0`` is the EMOT of the feature
        cost, ``alpha=1`` plain GW.
    feature_metric : str or callable, optional
        Metric of :func:`ot.dist` between features (default
        ``'sqeuclidean'``, POT's ``ot.dist`` default) or a callable
        ``c(F_a, F_b)`` returning the ``(n_a, n_b)`` matrix.
    init : {'auto', 'zero', 'pca'} or list of arrays, optional
        Initial :math:`A_{ij}`: ``'zero'`` (the first cost
        :math:`-4\|x\|^2\|y\|^2` matches points by radius; POT's start
        :math:`\pi_0 = pq^\top` for k = 2), ``'pca'`` (the principal axes of
        the clouds, ``n_components`` of them, aligned with each choice of
        signs), ``'auto'`` (default: both; for :math:`k \ge 3` one
        principal-axes start, its signs chosen on the two-cloud problems of a
        spanning tree, see above), or one matrix per edge
        (shapes ``(d_i, d_j)``, normalised units).
    n_components : int, optional
        Principal axes per cloud for the ``'pca'`` candidates (:math:`2^{r(k-1)}` sign choices).
    max_candidates : int, optional
        At most this many PCA candidates (a random subset, ``random_state``, if there are more) for
        ``init='pca'`` and, for k = 2, ``init='auto'`` (for :math:`k \ge 3` ``'auto'`` screens
        :math:`2^r` sign choices per edge of a spanning tree instead).
    n_screen : int, optional
        Outer steps of the first round of the successive halving of the starts (half as many, at
        least one, for each sign choice on the two-cloud problems of ``init='auto'`` for :math:`k \ge 3`).
    method : str, optional
        The inner EMOT loop (see :func:`~ot_multimarginal.emot_sinkhorn`).
        ``'auto'`` (default): ``'sinkhorn_newton'`` when the clouds have at
        most 3000 points in all, else ``'sinkhorn_log'``.
    numItermax : int, optional
        Maximum number of outer (alternation) steps of each start.
    stopThr : float, optional
        Stop when the relative change of the objective and the relative
        change of every :math:`A_{ij}` (``log['err']``, their maximum) are at
        most ``stopThr`` and the inner solves run at ``stopThrInner``.
    numItermaxInner : int, optional
        Maximum number of iterations (sweeps, or Newton steps) of each inner EMOT solve.
    stopThrInner : float, optional
        Final marginal error of the inner solves (the first ones stop at 1e-4
        or less, tightened to a tenth of the objective's last relative change).
    random_state : None, int or RandomState, optional
        Only for the subset of PCA candidates when there are more than ``max_candidates``.
    verbose : bool, optional
        Print the objective of each outer step.
    log : bool, optional
        Also return a dict (see Returns).
    warn : bool, optional
        ``UserWarning`` if the outer loop or the last inner solve did not converge.
    **kwargs
        Passed to every inner :func:`~ot_multimarginal.emot_sinkhorn` solve
        (e.g. ``relaxation='auto'``).
"""

_LOG_DOC = r"""
    log : dict
        If ``log=True``: ``value`` (the objective at the plan kept);
        ``value_quad`` (:math:`\alpha\sum_E G(P_{ij})`, POT's ``value_quad``);
        ``value_linear`` (:math:`(1-\alpha)\sum_E\langle M_{ij}, P_{ij}\rangle`,
        POT's ``value_linear``: 0 for plain GW); ``value_original``
        (``normalize`` in ``'joint'``/``None``, plain GW: :math:`s^4` value;
        else ``None``); ``niter`` (outer steps of the start kept),
        ``converged``, ``err`` (the stopping quantity at each step); ``A``
        (dict edge :math:`(i, j)` → :math:`A(P) = \tfrac12 E_{P_{ij}}[x_i x_j^\top]`
        of the plan returned, shape :math:`(d_i, d_j)`, normalised units);
        ``A_used`` (the :math:`A_{ij}` of the cost whose plan is returned);
        ``plan`` (:func:`mgw_sinkhorn` only: the plan); ``potentials`` (the
        :class:`~ot_multimarginal.Potentials` of the last inner solve, float64);
        ``pairwise_plans`` (dict :math:`(i, j)` → :math:`P_{ij}` for every edge,
        and its transpose under :math:`(j, i)`); ``edges``; ``objective`` (the
        objective after each outer step of the start kept, non-increasing);
        ``marg_err`` (the plan's marginal L1 error at each step);
        ``candidates`` (name and best objective of every start; for a start
        stopped at another's fixed point, its objective there); ``init``
        (the start kept); ``scales``, ``means`` (the normalisation:
        :math:`\tilde X_i = (X_i - \bar x_i)/s_i`); ``inner_niter``,
        ``inner_tol``, ``A_change``, ``inner_log`` (the last inner solve's
        log); ``reg``, ``alpha``, ``normalize``.

    Notes
    -----
    **Relation to POT (k = 2, normalize=None).** With :math:`C_1, C_2` the
    squared Euclidean distance matrices and ``init='zero'``, the plan is
    that of ``ot.gromov.entropic_gromov_wasserstein(C1, C2, p, q,
    'square_loss', epsilon=reg)`` (the same fixed-point map, started at
    :math:`pq^\top`); with features, that of
    ``ot.gromov.entropic_fused_gromov_wasserstein(M, C1, C2, p, q,
    'square_loss', epsilon=reg, alpha=alpha)`` with ``M = ot.dist(Y_1, Y_2)``.
    ``log['value_quad'] + log['value_linear']`` is POT's
    ``entropic_(fused_)gromov_wasserstein2`` (no entropy) and the value is
    ``ot.solve_gromov(C1, C2, a=p, b=q, reg=reg).value``
    :math:`- \varepsilon(\sum_a p_a \log p_a + \sum_b q_b\log q_b)`
    (POT adds :math:`\varepsilon\sum P\log P`, this
    :math:`\varepsilon\,\mathrm{KL}(P\|p\otimes q)`; for uniform weights the
    difference is :math:`\varepsilon\log(nm)`). Unlike POT's default
    (non-log) Sinkhorn, every inner solve is in the log domain, so small
    :math:`\varepsilon` does not underflow.

    **Scale.**
    :math:`\mathrm{MGW}_{\varepsilon s^4}(sX_1, \dots, sX_k) = s^4\,\mathrm{MGW}_\varepsilon(X_1, \dots, X_k)`:
    ``reg`` means something only relative to the fourth power of the data's
    scale, hence the normalisation by default. Values of 0.05–0.5 suit
    normalised clouds. In fused GW the feature cost keeps its own units:
    scale the features (or ``alpha``) so that both terms matter.

    References
    ----------
    .. [1] Z. Zhang, Z. Goldfeld, Y. Mroueh, B. K. Sriperumbudur,
       Gromov–Wasserstein distances: entropic regularization, duality and
       sample complexity, arXiv:2212.12848, 2022.
    .. [2] G. Peyré, M. Cuturi, J. Solomon, Gromov–Wasserstein averaging of
       kernel and distance matrices, ICML 2016.
    .. [3] T. Vayer, L. Chapel, R. Flamary, R. Tavenard, N. Courty, Optimal
       transport for structured data with application on graphs, ICML 2019.
"""


def mgw_sinkhorn(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    normalize: Optional[str] = "each",
    Y_s: Optional[Sequence[Array]] = None,
    alpha: Optional[float] = None,
    feature_metric: Any = "sqeuclidean",
    init: Any = "auto",
    n_components: int = 2,
    max_candidates: int = 16,
    n_screen: int = 2,
    method: str = "auto",
    numItermax: int = 100,
    stopThr: float = 1e-6,
    numItermaxInner: int = 5000,
    stopThrInner: float = 1e-9,
    random_state: Any = None,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    **kwargs: Any,
) -> Union[Any, Tuple[Any, LogDict]]:
    plan, _, out = _mgw(
        X_s, reg, a_s, graph, normalize, Y_s, alpha, feature_metric, init, n_components, max_candidates, n_screen,
        method, numItermax, stopThr, numItermaxInner, stopThrInner, random_state, verbose, warn, kwargs,
        "mgw_sinkhorn", True,
    )  # fmt: skip
    return (plan, out) if log else plan


def mgw_sinkhorn2(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    normalize: Optional[str] = "each",
    Y_s: Optional[Sequence[Array]] = None,
    alpha: Optional[float] = None,
    feature_metric: Any = "sqeuclidean",
    init: Any = "auto",
    n_components: int = 2,
    max_candidates: int = 16,
    n_screen: int = 2,
    method: str = "auto",
    numItermax: int = 100,
    stopThr: float = 1e-6,
    numItermaxInner: int = 5000,
    stopThrInner: float = 1e-9,
    random_state: Any = None,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    **kwargs: Any,
) -> Union[Any, Tuple[Any, LogDict]]:
    _, value, out = _mgw(
        X_s, reg, a_s, graph, normalize, Y_s, alpha, feature_metric, init, n_components, max_candidates, n_screen,
        method, numItermax, stopThr, numItermaxInner, stopThrInner, random_state, verbose, warn, kwargs,
        "mgw_sinkhorn2", False,
    )  # fmt: skip
    return (value, out) if log else value


mgw_sinkhorn.__doc__ = (
    r"""Multimarginal entropic (fused) Gromov–Wasserstein between point clouds: the plan.
"""
    + _SIGNATURE_DOC
    + r"""
    Returns
    -------
    plan : FactoredPlan (or dense array for a dense engine)
        The k-way plan of the last inner solve of the start kept (structured:
        :meth:`~ot_multimarginal.FactoredPlan.pairwise_marginal` gives any
        :math:`P_{ij}`), in the clouds' backend and dtype.
"""
    + _LOG_DOC
    + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import mgw_sinkhorn, match_from_plan
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(15, 2) - 0.5) * [4.0, 1.0]  # a thin rectangle of points
    >>> Q, _ = np.linalg.qr(rng.randn(3, 3))
    >>> Y = X @ Q[:2] + 1.0                       # the same shape in 3-D, moved
    >>> P = mgw_sinkhorn([X, Y], reg=2.0, init="zero")
    >>> P.pairwise_marginal(0, 1).shape
    (15, 15)
    >>> partners = match_from_plan(P.pairwise_marginal(0, 1))  # row of Y for each row of X

    See Also
    --------
    mgw_sinkhorn2 : the value.
    ot.gromov.entropic_gromov_wasserstein : the two-space solver of POT.
    ot.gromov.entropic_fused_gromov_wasserstein : the two-space fused solver of POT.
    match_from_plan : partners from a pairwise plan.
"""
)

mgw_sinkhorn2.__doc__ = (
    r"""Multimarginal entropic (fused) Gromov–Wasserstein between point clouds: the value.
"""
    + _SIGNATURE_DOC
    + r"""
    Returns
    -------
    value : backend scalar
        The objective :math:`\alpha\sum_E G(P_{ij}) + (1-\alpha)\sum_E\langle M_{ij},P_{ij}\rangle
        + \varepsilon\,\mathrm{KL}(P\|\otimes\mu_i)` at the plan found, for the
        normalised clouds (see ``normalize``); differentiable on torch.
"""
    + _LOG_DOC
    + r"""
    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import mgw_sinkhorn2
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(15, 2) - 0.5) * [4.0, 1.0]
    >>> Q, _ = np.linalg.qr(rng.randn(3, 3))
    >>> v, log = mgw_sinkhorn2([X, X @ Q[:2] + 1.0], reg=2.0, init="zero", log=True)
    >>> log["A"][(0, 1)].shape, log["pairwise_plans"][(0, 1)].shape
    ((2, 3), (15, 15))

    See Also
    --------
    mgw_sinkhorn : the plan.
"""
)
