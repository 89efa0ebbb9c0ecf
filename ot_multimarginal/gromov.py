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
    check_point_clouds,
    check_reg,
    check_weights,
)
from .costs.graph import PairwiseCost, _check_edge_list, graph_edges
from .sinkhorn import emot_sinkhorn

__all__ = [
    "mgw_sinkhorn",
    "gw_loss",
    "gw_moment_term",
    "gw_cross_moment",
    "gw_linear_cost",
    "gw_separable_terms",
    "match_from_plan",
]

NORMALIZATIONS = ("each", "joint", None)
CONTINUATION = (256.0, 64.0, 16.0, 4.0)  # eps-scaling of a cold inner solve: reg * these, loose, then reg
NEWTON_MAX_POINTS = 1500  # method='auto': Newton inner solves up to this many points in all (sum of n_i)


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
def _prepare(X_s, a_s, normalize):
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
        As = []
        for i, j in edges:
            c = min(r[i], r[j])
            (li, Ui), (lj, Uj) = axes[i], axes[j]
            w = signs[i][:c] * signs[j][:c] * np.sqrt(li[:c] * lj[:c])
            As.append(nx.from_numpy(0.5 * (Ui[:, :c] * w[None, :]) @ Uj[:, :c].T, type_as=Xn[0]))
        out.append(As)
    return out


def _initial_candidates(nx, init, Xn, a_s, edges, n_components, max_candidates, rng):
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


# ---- the alternation --------------------------------------------------------------------------
class _Run:
    """One alternation from one initial set of A_ij: its state and history."""

    def __init__(self, nx, Xd, a_s, edges, shape, reg, A, inner):
        self.nx, self.Xd, self.a_s, self.edges, self.shape, self.reg = nx, Xd, a_s, edges, shape, reg
        self.A = A
        self.inner = inner
        self.potentials = None
        self.history = []
        self.inner_niter = []
        self.inner_tol = []
        self.A_change = []  # relative change of the A_ij (the largest over the edges) at each step
        self.A_floor = 100.0 * dtype_info(nx, Xd[0])[0]
        self.tol = inner["start"]
        self.plan = None
        self.pairwise = None
        self.inner_log = None

    def cost(self):
        mats = [gw_linear_cost(self.Xd[i], self.Xd[j], A) for (i, j), A in zip(self.edges, self.A)]
        return PairwiseCost(self.edges, mats, shape=self.shape)

    def step(self):
        """Solve the EMOT for the current A (warm-started), then A <- A(P). Returns the objective."""
        nx = self.nx
        cost = self.cost()
        solve = dict(
            method=self.inner["method"],
            numItermax=self.inner["numItermax"],
            log=True,
            warn=False,
            grad="detach",
            **self.inner["kwargs"],
        )
        extra = 0
        if self.potentials is None:
            # a cold start: continuation in eps (measured: 58 -> 32 Newton iterations, k = 3, n = 40, reg = 0.1)
            for factor in CONTINUATION:
                _, lg = emot_sinkhorn(
                    self.a_s, cost, self.reg * factor, stopThr=max(self.tol, 1e-3), warmstart=self.potentials, **solve
                )
                self.potentials = lg["potentials"]
                extra += int(lg["niter"])
        plan, lg = emot_sinkhorn(self.a_s, cost, self.reg, stopThr=self.tol, warmstart=self.potentials, **solve)
        self.plan, self.inner_log, self.potentials = plan, lg, lg["potentials"]
        self.pairwise = [plan.pairwise_marginal(i, j) for i, j in self.edges]
        G = sum(gw_loss(self.Xd[i], self.Xd[j], P) for (i, j), P in zip(self.edges, self.pairwise))
        ent = lg["value"] - lg["value_linear"]
        new_A = [gw_cross_moment(self.Xd[i], self.Xd[j], P) for (i, j), P in zip(self.edges, self.pairwise)]
        self.A_change.append(
            max(
                to_float(nx, nx.sqrt(nx.sum((A1 - A0) ** 2))) / max(to_float(nx, nx.sqrt(nx.sum(A1**2))), 1e-300)
                for A0, A1 in zip(self.A, new_A)
            )
        )
        self.A = new_A
        obj = to_float(nx, G + ent)
        self.history.append(obj)
        self.inner_niter.append(int(lg["niter"]) + extra)  # the continuation's iterations included
        self.inner_tol.append(float(lg["stopThr"]))
        return obj

    def tighten(self, rel_change):
        """Inner tolerance: a tenth of the last relative change of the objective, never looser than before."""
        self.tol = max(self.inner["stopThr"], min(self.tol, 0.1 * rel_change))

    @property
    def at_floor(self):
        return self.tol <= self.inner["stopThr"]

    def converged(self, stopThr):
        """Objective and A_ij stationary to ``stopThr`` (relative; A_ij to the dtype's resolution at least),
        inner solves tight.

        The objective is flat at a fixed point (its change is about the square of the A_ij's), so it alone
        would stop with the plan still moving: the change of the A_ij bounds the plan's.
        """
        if not self.A_change or not self.at_floor:
            return False
        return _rel_change(self.history) <= stopThr and self.A_change[-1] <= max(stopThr, self.A_floor)


def _rel_change(history):
    if len(history) < 2:
        return np.inf
    return abs(history[-1] - history[-2]) / max(abs(history[-1]), 1e-300)


def mgw_sinkhorn(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    normalize: Optional[str] = "each",
    init: Any = "auto",
    n_components: int = 2,
    max_candidates: int = 16,
    n_screen: int = 2,
    method: str = "auto",
    numItermax: int = 100,
    stopThr: float = 1e-6,
    numItermaxInner: int = 5000,
    stopThrInner: float = 1e-6,
    random_state: Any = None,
    verbose: bool = False,
    log: bool = False,
    warn: bool = True,
    **kwargs: Any,
) -> Union[Any, Tuple[Any, LogDict]]:
    r"""Multimarginal entropic Gromov–Wasserstein between point clouds of any dimensions.

    Solves

    .. math::
        \mathrm{MGW}_\varepsilon = \min_{P \in \Pi(\mu_1, \dots, \mu_k)}
        \sum_{(i, j) \in E} G(P_{ij}; \tilde X_i, \tilde X_j)
        + \varepsilon\,\mathrm{KL}(P \,\|\, \mu_1 \otimes \cdots \otimes \mu_k)

    where :math:`P_{ij}` is the pairwise marginal of the k-way plan on the edge
    :math:`(i, j)` of ``graph``, :math:`\tilde X_i` the centred and normalised
    clouds (``normalize``) and
    :math:`G(\pi) = \sum (\|x_a - x_c\|^2 - \|y_b - y_d\|^2)^2 \pi_{ab}\pi_{cd}`
    the quadratic GW loss on squared Euclidean distances (POT's
    ``square_loss``; :func:`gw_loss`). The clouds share no coordinates:
    :math:`d_i` and :math:`n_i` may all differ.

    By the decomposition :math:`G(\pi) = S_1 + \min_A 32\|A\|_F^2 + \langle c_A, \pi\rangle`
    with :math:`c_A(x, y) = -4\|x\|^2\|y\|^2 - 32\,x^\top A y` (Zhang et al.
    2022; module docstring), the solver alternates

    1. :math:`P \leftarrow` the EMOT plan of the pairwise cost
       :math:`\sum_E c_{A_{ij}}(x_i, x_j)` on the graph (structured engines
       through :class:`~ot_multimarginal.PairwiseCost`, log domain, warm-started
       from the previous potentials, inner tolerance tightened as the outer
       loop converges);
    2. :math:`A_{ij} \leftarrow \tfrac12 \sum P_{ij}[a, b]\, x_{i,a} x_{j,b}^\top`
       (closed form),

    which decreases the objective monotonically (``log['objective']``; exactly
    so for exact inner solves, up to the inner tolerance ``log['inner_tol']``
    otherwise) to a stationary point. GW is not convex: ``init`` starts from :math:`A = 0`
    and from the principal axes of the clouds aligned with every choice of
    signs, screens each start for ``n_screen`` steps and continues the best.

    .. note:: Backend-generic: NumPy in, NumPy out; torch in, torch out
        (same dtype and device). On torch the value is differentiable in
        ``X_s`` (envelope theorem: the plan is held fixed at the optimum).

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
        The pairs whose GW losses are summed: ``'complete'`` (default, all
        pairs), ``'chain'``, ``'circle'``, ``'star'`` or an edge list (see
        :func:`~ot_multimarginal.costs.graph.graph_edges`). For k = 2 every
        choice is the single pair.
    normalize : {'each', 'joint', None}, optional
        Every cloud is centred (weighted mean 0; GW is translation invariant).
        ``'each'`` (default) then divides each cloud by its own root second
        moment :math:`s_i = (\sum_a \mu_{i,a}\|x_a - \bar x_i\|^2)^{1/2}`:
        the problem is that of the shapes, invariant to the scale of each
        dataset (e.g. embeddings of different models). ``'joint'`` divides
        every cloud by one scale :math:`s` (:math:`s^2` the mean of the
        :math:`s_i^2`): the same problem as the raw clouds with
        :math:`\varepsilon s^4`, value in original units
        ``log['value_original']`` :math:`= s^4\,` value. ``None``: centred
        only; ``reg`` and the value are in the data's units (for k = 2 the
        numbers of POT's ``entropic_gromov_wasserstein2``, see Notes).
    init : {'auto', 'zero', 'pca'} or list of arrays, optional
        Initial :math:`A_{ij}`: ``'zero'`` (the first cost
        :math:`-4\|x\|^2\|y\|^2` matches points by radius; POT's start
        :math:`\pi_0 = pq^\top` for k = 2), ``'pca'`` (the principal axes of
        the clouds, ``n_components`` of them, aligned with each choice of
        signs), ``'auto'`` (default: both), or one matrix per edge
        (shapes ``(d_i, d_j)``, normalised units).
    n_components : int, optional
        Principal axes per cloud for the ``'pca'`` candidates (:math:`2^{r(k-1)}` sign choices).
    max_candidates : int, optional
        At most this many PCA candidates (a random subset, ``random_state``, if there are more).
    n_screen : int, optional
        Outer steps each start gets before the best objective is continued
        (ignored when there is a single start).
    method : str, optional
        The inner EMOT loop (see :func:`~ot_multimarginal.emot_sinkhorn`).
        ``'auto'`` (default): ``'sinkhorn_newton'`` when the clouds have at
        most 1500 points in all, else ``'sinkhorn_log'``. The GW costs make
        the inner plans nearly sparse, where cyclic Sinkhorn crawls (its
        marginal error decays like 1/t) and Newton's method on the dual needs
        tens of iterations.
    numItermax : int, optional
        Maximum number of outer (alternation) steps.
    stopThr : float, optional
        Stop when the relative changes of the objective and of the
        :math:`A_{ij}` (``log['A_change']``: the objective is flat at a fixed
        point, the :math:`A_{ij}` bound the plan's change) are at most
        ``stopThr`` and the inner solves run at ``stopThrInner``.
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

    Returns
    -------
    value : backend scalar
        :math:`\sum_E G(P_{ij}) + \varepsilon\,\mathrm{KL}(P\|\otimes\mu_i)` at the
        plan found, for the normalised clouds (see ``normalize``).
    log : dict
        If ``log=True``: ``value``; ``value_linear`` (:math:`\sum_E G(P_{ij})`,
        no entropy); ``value_original`` (``normalize`` in ``'joint'``/``None``:
        the value in the data's units, :math:`s^4` value; ``None`` for
        ``'each'``); ``A`` (dict edge :math:`(i, j)` → :math:`A_{ij}` of shape
        :math:`(d_i, d_j)`, normalised units: half the cross-moment of the
        final pairwise plan); ``plan`` (the
        :class:`~ot_multimarginal.FactoredPlan` of the last EMOT solve, any
        :meth:`~ot_multimarginal.FactoredPlan.pairwise_marginal` of it);
        ``pairwise_plans`` (dict :math:`(i, j)` → :math:`P_{ij}` for every
        edge, and its transpose under :math:`(j, i)`); ``edges``; ``objective``
        (the objective after each outer step of the run kept, non-increasing);
        ``candidates`` (name and screened objective of every start);
        ``init`` (the start kept); ``scales``, ``means`` (the normalisation:
        :math:`\tilde X_i = (X_i - \bar x_i)/s_i`); ``niter``, ``converged``,
        ``inner_niter`` (iterations of each inner solve), ``A_change``
        (relative change of the :math:`A_{ij}` at each step), ``inner_tol`` (the
        marginal-error threshold of each inner solve), ``inner_log`` (the last
        inner solve's log), ``reg``.

    Notes
    -----
    **Relation to POT (k = 2, normalize=None).** With :math:`C_1, C_2` the
    squared Euclidean distance matrices and ``init='zero'``, the plan is
    that of ``ot.gromov.entropic_gromov_wasserstein(C1, C2, p, q,
    'square_loss', epsilon=reg)`` (the same fixed-point map, started at
    :math:`pq^\top`), and

    - ``log['value_linear']`` = ``ot.gromov.entropic_gromov_wasserstein2(...)``
      (:math:`G(P)`, no entropy);
    - ``value`` = ``ot.solve_gromov(C1, C2, a=p, b=q, reg=reg).value``
      :math:`- \varepsilon(\sum_a p_a \log p_a + \sum_b q_b\log q_b)`
      (POT adds :math:`\varepsilon\sum P\log P`, this adds
      :math:`\varepsilon\,\mathrm{KL}(P\|p\otimes q)`; for uniform weights the
      difference is :math:`\varepsilon\log(nm)`).

    Unlike POT's default (non-log) Sinkhorn, every inner solve is in the log
    domain, so small :math:`\varepsilon` does not underflow.

    **Scale.**
    :math:`\mathrm{MGW}_{\varepsilon s^4}(sX_1, \dots, sX_k) = s^4\,\mathrm{MGW}_\varepsilon(X_1, \dots, X_k)`:
    ``reg`` means something only relative to the fourth power of the data's
    scale, hence the normalisation by default. Values of 0.05–0.5 suit
    normalised clouds; much larger ones blur the matching, much smaller
    ones cost more Sinkhorn sweeps.

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import mgw_sinkhorn, match_from_plan
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(15, 2) - 0.5) * [4.0, 1.0]  # a thin rectangle of points
    >>> Q, _ = np.linalg.qr(rng.randn(3, 3))
    >>> Y = X @ Q[:2] + 1.0                       # the same shape in 3-D, moved
    >>> v, log = mgw_sinkhorn([X, Y], reg=2.0, init="zero", log=True)
    >>> log["A"][(0, 1)].shape, log["pairwise_plans"][(0, 1)].shape
    ((2, 3), (15, 15))
    >>> partners = match_from_plan(log["pairwise_plans"][(0, 1)])  # row of Y for each row of X

    References
    ----------
    .. [1] Z. Zhang, Z. Goldfeld, Y. Mroueh, B. K. Sriperumbudur,
       Gromov–Wasserstein distances: entropic regularization, duality and
       sample complexity, arXiv:2212.12848, 2022.
    .. [2] G. Peyré, M. Cuturi, J. Solomon, Gromov–Wasserstein averaging of
       kernel and distance matrices, ICML 2016.

    See Also
    --------
    ot.gromov.entropic_gromov_wasserstein : the two-space solver of POT.
    match_from_plan : partners from a pairwise plan.
    """
    reg = check_reg(reg)
    check_iteration_args(numItermax, stopThr)
    check_iteration_args(numItermaxInner, stopThrInner)
    check_forwarded_kwargs("mgw_sinkhorn", method, kwargs, verbose=verbose, log=log, warn=warn)
    for name, val, low in (
        ("n_components", n_components, 1),
        ("max_candidates", max_candidates, 1),
        ("n_screen", n_screen, 1),
    ):
        if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < low:
            raise ValueError("%s must be an integer >= %d, got %r" % (name, low, val))
    nx, Xn, a_s, means, scales = _prepare(X_s, a_s, normalize)
    k = len(Xn)
    edges = graph_edges(graph, k)
    shape = tuple(int(X.shape[0]) for X in Xn)
    edges = _check_edge_list(edges, k, "graph")
    Xd = [nx.detach(X) for X in Xn]
    rng = check_random_state(random_state)
    cands = _initial_candidates(nx, init, Xd, a_s, edges, n_components, max_candidates, rng)
    names = [name for name, _ in cands]
    if method == "auto":
        method = "sinkhorn_newton" if sum(shape) <= NEWTON_MAX_POINTS else "sinkhorn_log"
    inner = dict(
        method=method, numItermax=numItermaxInner, stopThr=stopThrInner, start=max(stopThrInner, 1e-4), kwargs=kwargs
    )
    runs = [_Run(nx, Xd, a_s, edges, shape, reg, A, inner) for _, A in cands]
    screened = []
    if len(runs) > 1:
        for name, run in zip(names, runs):
            for _ in range(min(n_screen, numItermax)):
                run.step()
                run.tighten(_rel_change(run.history))
            screened.append((name, run.history[-1]))
            if verbose:
                print("start %-6s objective after %d steps: %.10e" % (name, len(run.history), run.history[-1]))
        best = int(np.argmin([v for _, v in screened]))
    else:
        best = 0
    run, kept = runs[best], names[best]
    converged = False
    while len(run.history) < numItermax:
        obj = run.step()
        rel = _rel_change(run.history)
        if verbose:
            print(
                "%5d  objective %.12e  rel. change %.3e  A change %.3e  inner tol %.1e (%d iterations)"
                % (len(run.history), obj, rel, run.A_change[-1], run.tol, run.inner_niter[-1])
            )
        if run.converged(stopThr):
            converged = True
            break
        run.tighten(rel)
    if not converged and len(run.history) >= numItermax and run.history:
        converged = run.converged(stopThr)
    if run.plan is None:  # numItermax == 0: one solve all the same, to have a plan
        run.step()
    if warn and not converged:
        warnings.warn(
            "mgw_sinkhorn did not converge: relative change of the objective %.3e, of the A_ij %.3e (stopThr %.1e) "
            "after %d outer steps (inner tolerance %.1e). Increase numItermax or reg."
            % (
                _rel_change(run.history),
                run.A_change[-1] if run.A_change else np.inf,
                stopThr,
                len(run.history),
                run.tol,
            ),
            UserWarning,
            stacklevel=2,
        )
    if warn and not run.inner_log["converged"]:
        warnings.warn(
            "mgw_sinkhorn: the last inner EMOT solve did not converge (marginal error %.3e > %.1e after %d sweeps). "
            "Increase numItermaxInner or reg." % (run.inner_log["err"][-1], run.tol, run.inner_log["niter"]),
            UserWarning,
            stacklevel=2,
        )
    # value at the final plan, differentiable in X_s through the normalised clouds (plan held fixed)
    Ps = [nx.detach(P) for P in run.pairwise]
    linear = sum(gw_loss(Xn[i], Xn[j], P) for (i, j), P in zip(edges, Ps))
    ent = nx.detach(run.inner_log["value"] - run.inner_log["value_linear"])
    value = linear + ent
    if not log:
        return value
    pairwise = {}
    for (i, j), P in zip(edges, Ps):
        pairwise[(i, j)] = P
        pairwise[(j, i)] = P.T
    s4 = scales[0] ** 4
    out = dict(
        value=value,
        value_linear=linear,
        value_original=None if normalize == "each" else value * s4,
        A={(i, j): A for (i, j), A in zip(edges, run.A)},
        plan=run.plan,
        pairwise_plans=pairwise,
        edges=list(edges),
        objective=list(run.history),
        candidates=screened if screened else [(kept, run.history[-1])],
        init=kept,
        scales=scales,
        means=means,
        niter=len(run.history),
        converged=converged,
        inner_niter=list(run.inner_niter),
        inner_tol=list(run.inner_tol),
        A_change=list(run.A_change),
        inner_log=run.inner_log,
        reg=reg,
        normalize=normalize,
    )
    return value, out
