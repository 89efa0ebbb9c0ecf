# -*- coding: utf-8 -*-
r"""Neural multimarginal Gromov–Wasserstein: :class:`NeuralMGW` and :func:`mgw_neural` (torch only).

The problem and the decomposition are those of :func:`ot_multimarginal.mgw_sinkhorn`
(:mod:`ot_multimarginal.gromov`): after centring and normalising the clouds,

.. math::
    \mathrm{MGW}_\varepsilon = \sum_E S_1^{ij}
    + \min_{A} \Big[\sum_E 32\|A_{ij}\|_F^2 + \mathrm{EMOT}_\varepsilon\Big(\sum_E c_{A_{ij}}\Big)\Big],
    \qquad c_A(x, y) = -4\|x\|^2\|y\|^2 - 32\,x^\top A y .

Here the inner EMOT is the neural estimator :class:`~ot_multimarginal.neural.NeuralEMOT`
(mini-batches: the work per step depends on the batch, not on n) with the
pairwise cost built from the current :math:`A_{ij}` (one callable metric per
edge, :class:`~ot_multimarginal.neural.GraphCost`), and the :math:`A_{ij}`
are updated in closed form, :math:`A_{ij} \leftarrow \tfrac12 E_{P_{ij}}[x_i x_j^\top]`,
with :math:`P_{ij}` the pairwise marginal of the neural plan: on the data when
its engine fits the budget, else averaged over mini-batches (the plan of each
batch's potentials). Each refit warm-starts from the previous potentials.
"""
# License: MIT License

import os
import shutil
import time
import warnings
from types import SimpleNamespace
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from ot.utils import check_random_state

from .._params import ParamsMixin
from .._typing import Array, Edges, LogDict, Weights
from .._validation import check_auto_bool, check_checkpoint_params, check_choice, check_positive_int, check_reg
from ..costs.graph import _check_edge_list, graph_edges
from ..gromov import (
    NORMALIZATIONS,
    _initial_candidates,
    _prepare,
    gw_cross_moment,
    gw_linear_cost,
    gw_moment_term,
    gw_separable_roots,
    gw_separable_terms,
    match_from_plan,
    mgw_sinkhorn,
)
from ..potentials import Potentials
from ._validation import check_device, check_estimator_params, check_query_points, check_save_path
from .checkpoint import Checkpointer, _describe, data_digest, resume_payload
from .distributed import data_parallel
from .estimator import NeuralEMOT, _read_saved, _to_torch, _torch_dtype
from .evaluation import EXACT_ENTRIES, EXACT_FLOPS, exact_is_affordable
from .sampling import derive_seed

__all__ = ["NeuralMGW", "mgw_neural"]

_SAVED_KIND = "NeuralMGW"
_FITTED = (
    "A_used_",
    "A_",
    "edges_",
    "scales_",
    "means_",
    "S1_",
    "history_",
    "init_",
    "n_outer_",
    "converged_",
    "timings_",
    "_is_numpy",
)


def _map_tensors(x, fn):
    """``x`` with ``fn`` applied to every tensor in it (through dicts, lists and tuples)."""
    if torch.is_tensor(x):
        return fn(x)
    if isinstance(x, dict):
        return {key: _map_tensors(v, fn) for key, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_map_tensors(v, fn) for v in x)
    return x


def _cpu(x):
    return _map_tensors(x, lambda t: t.detach().cpu())


def _edge_metric(A):
    r"""The metric of one edge: :math:`c_A + h_x + h_y \ge 0` (:func:`~ot_multimarginal.gromov.gw_separable_terms`).

    The separable terms change the potentials, not the plan; without them the networks would have to learn
    the large :math:`-4\|x\|^2\|y\|^2` part (measured: -17% and half the matchings lost at reg = 0.5).
    """
    roots = gw_separable_roots(A)
    cast = {}

    def metric(U, V):
        key = (U.dtype, U.device)
        if key not in cast:
            cast[key] = [M.to(dtype=U.dtype, device=U.device) for M in (A,) + tuple(roots)]
        B, Rx, Ry = cast[key]
        hx, hy = gw_separable_terms(U, V, B, roots=(Rx, Ry))
        return gw_linear_cost(U, V, B) + hx[:, None] + hy[None, :]

    return metric


def _separable_mean(data, weights, edges, A):
    r""":math:`\sum_E E_{\mu_i} h_x + E_{\mu_j} h_y`: what the separable terms add to the EMOT value."""
    total = 0.0
    for (i, j), M in zip(edges, A):
        hx, hy = gw_separable_terms(data[i], data[j], M)
        total += float((weights[i] * hx).sum() + (weights[j] * hy).sum())
    return total


class NeuralMGW(ParamsMixin):
    r"""Neural estimator of multimarginal entropic Gromov–Wasserstein.

    Alternates a warm-started :class:`~ot_multimarginal.neural.NeuralEMOT`
    fit of the EMOT with the induced pairwise cost :math:`\sum_E c_{A_{ij}}`
    and the closed-form update :math:`A_{ij} \leftarrow \tfrac12 E_{P_{ij}}[x_i x_j^\top]`
    (module docstring), from the start chosen as :func:`~ot_multimarginal.mgw_sinkhorn`
    chooses it (:math:`A = 0` and the principal-axes sign flips, best
    objective kept), screened on a subsample.

    Parameters
    ----------
    reg : float
        Entropic regularisation :math:`\varepsilon > 0`, in the units of the
        normalised clouds (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    graph : str or list of pairs, optional
        Pairs whose GW losses are summed (default ``'complete'``).
    normalize : {'each', 'joint', None}, optional
        Centring and scaling of the clouds (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    init : {'auto', 'zero', 'pca'} or list of arrays, optional
        The start of the :math:`A_{ij}`. ``'auto'``/``'pca'``: the candidates of
        :func:`~ot_multimarginal.mgw_sinkhorn` are screened by
        :func:`~ot_multimarginal.mgw_sinkhorn` itself on ``n_init_points``
        points per cloud (a random subset), and its :math:`A_{ij}` start the
        alternation; ``'zero'``: :math:`A = 0`; a list: one matrix per edge.
    n_init_points : int, optional
        Points per cloud of the screening subsample (default 40).
    n_components, max_candidates : int, optional
        The principal-axes candidates (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    n_outer : int, optional
        Maximum number of alternations (default 8).
    tol : float, optional
        Stop when the objective's relative change is at most ``tol`` and the
        :math:`A_{ij}`'s at most :math:`\sqrt{\mathrm{tol}}` (default 1e-3; a fixed
        point of the alternation: near one the objective is quadratic in :math:`A`).
    n_iter, n_iter_refit : int, optional
        Training steps of the first fit (default 300) and of each warm-started refit (default 100).
    batch_size, lr, width, depth, estimator, dtype, device, distributed : optional
        Passed to every :class:`~ot_multimarginal.neural.NeuralEMOT` fit
        (``distributed``: each fit is data-parallel; the :math:`A_{ij}` updates
        are computed identically on every rank).
    n_moment_batches : int, optional
        Batches averaged for the cross-moments when the plan on the data does
        not fit the exact engine (default 32).
    seed : int, optional
        Seed of the networks, the batches and the subsample.
    verbose : bool, optional
        Print the objective of each alternation.
    checkpoint_dir : str or path, optional
        Directory of the checkpoints of the alternation (Notes), written
        atomically by rank 0.
    checkpoint_every : int, optional
        Steps between the checkpoints of each inner fit (default 50; as in
        :class:`~ot_multimarginal.neural.NeuralEMOT`).
    resume : bool, optional
        Continue from the newest usable checkpoint in ``checkpoint_dir``
        (start afresh if it holds none): the same result as an uninterrupted
        run (bitwise on the CPU). A checkpoint of another problem raises a
        ``ValueError`` naming what differs.

    Attributes
    ----------
    value_ : float or tensor
        :math:`\sum_E S_1^{ij} + \sum_E 32\|A_{ij}\|^2 +` the NEMOT value of the last fit
        (normalised units; the convention of :func:`~ot_multimarginal.mgw_sinkhorn`'s value).
    A_ : dict
        Edge :math:`(i, j)` → :math:`A_{ij}` (shape ``(d_i, d_j)``, normalised units).
    emot_ : NeuralEMOT
        The fitted inner estimator (its potentials are those of the normalised clouds).
    history_ : dict
        ``'objective'`` (after each alternation), ``'A_change'``, ``'moments'`` (``'data'`` or ``'batches'``).
    edges_, scales_, means_, init_, n_outer_, converged_, timings_
        The graph's edges, the normalisation (:math:`\tilde X_i = (X_i - \bar x_i)/s_i`),
        the start kept, alternations done, whether ``tol`` was met, seconds.

    Notes
    -----
    :meth:`save` writes the parameters, the fitted attributes and the inner
    estimator (its networks and training clouds); :meth:`load` rebuilds the
    inner cost from the saved :math:`A_{ij}`, so a loaded estimator gives the
    same values, plans and matches.

    With ``checkpoint_dir``, ``ckpt-<t>.pt`` holds the state after ``t``
    alternations (the :math:`A_{ij}`, the history, the moments' random
    stream, the inner estimator; ``t = 0``: the screened start), the last
    two kept, and the inner fit of alternation ``t`` writes its step
    checkpoints in ``outer-<t>/`` (:class:`~ot_multimarginal.neural.NeuralEMOT`'s
    ``checkpoint_dir``). A job killed anywhere, during an inner fit included,
    resumes (``resume=True``, same seed) on the trajectory of the
    uninterrupted run.

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal.neural import NeuralMGW
    >>> rng = np.random.RandomState(0)
    >>> X = (rng.rand(30, 2) - 0.5) * [4.0, 1.0]
    >>> Q, _ = np.linalg.qr(rng.randn(3, 3))
    >>> est = NeuralMGW(reg=0.5, n_outer=3, n_iter=100, n_iter_refit=50, seed=0).fit([X, X @ Q[:2]])
    >>> est.A_[(0, 1)].shape
    (2, 3)
    """

    def __init__(
        self,
        reg: float,
        graph: Union[str, Edges] = "complete",
        normalize: Optional[str] = "each",
        init: Any = "auto",
        n_init_points: int = 40,
        n_components: int = 2,
        max_candidates: int = 16,
        n_outer: int = 8,
        tol: float = 1e-3,
        n_iter: int = 300,
        n_iter_refit: int = 100,
        batch_size: Optional[int] = None,
        lr: float = 1e-2,
        width: Optional[int] = None,
        depth: int = 2,
        estimator: str = "combinatorial",
        dtype: Any = None,
        device: Any = None,
        distributed: Any = "auto",
        n_moment_batches: int = 32,
        seed: Optional[int] = None,
        verbose: bool = False,
        checkpoint_dir: Optional[str] = None,
        checkpoint_every: Optional[int] = None,
        resume: bool = False,
    ) -> None:
        self.reg = reg
        self.graph = graph
        self.normalize = normalize
        self.init = init
        self.n_init_points = n_init_points
        self.n_components = n_components
        self.max_candidates = max_candidates
        self.n_outer = n_outer
        self.tol = tol
        self.n_iter = n_iter
        self.n_iter_refit = n_iter_refit
        self.batch_size = batch_size
        self.lr = lr
        self.width = width
        self.depth = depth
        self.estimator = estimator
        self.n_moment_batches = n_moment_batches
        self.dtype = dtype
        self.seed = seed
        self.device = device
        self.distributed = distributed
        self.verbose = verbose
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.resume = resume

    # ---- fitting -------------------------------------------------------------------------------
    def _check_params(self):
        reg = check_reg(self.reg)
        check_choice("normalize", self.normalize, NORMALIZATIONS)
        for name, minimum in (
            ("n_init_points", 2),
            ("n_components", 1),
            ("max_candidates", 1),
            ("n_outer", 1),
            ("n_iter", 1),
            ("n_iter_refit", 1),
            ("n_moment_batches", 1),
        ):
            check_positive_int(name, getattr(self, name), minimum=minimum)
        tol = check_reg(self.tol, "tol")
        if self.seed is not None:
            check_positive_int("seed", self.seed, minimum=0)
        check_checkpoint_params(self.checkpoint_dir, self.checkpoint_every, self.resume)
        return reg, tol

    def _fingerprint(self, data, weights, edges, reg, seed, dt):
        """What a checkpoint of the alternation must agree on to be resumed (compared on resume)."""
        fp = {
            "k": len(data),
            "dims": [int(X.shape[1]) for X in data],
            "sizes": [int(X.shape[0]) for X in data],
            "data": data_digest(data),
            "weights": data_digest(weights),
            "graph": [list(e) for e in edges],
            "reg": reg,
            "seed": int(seed),
            "dtype (values)": str(dt),
            "init": self.init
            if isinstance(self.init, str)
            else "arrays "
            + data_digest([torch.as_tensor(np.asarray(M) if not torch.is_tensor(M) else M) for M in self.init]),
        }
        for name in (
            "normalize n_init_points n_components max_candidates n_outer tol n_iter n_iter_refit batch_size "
            "lr width depth estimator n_moment_batches dtype"
        ).split():
            fp[name] = _describe(getattr(self, name))
        return fp

    def _start(self, nx, Xn, a_s, edges, reg, seed):
        """The initial A_ij (normalised units, NumPy or torch like the clouds) and the name of the start."""
        init = self.init
        if isinstance(init, str) and init in ("auto", "pca"):
            rng = check_random_state(derive_seed(seed, "mgw-init") % (2**32))
            sub = []
            for X, a in zip(Xn, a_s):
                n = int(X.shape[0])
                m = min(n, int(self.n_init_points))
                p = np.asarray(nx.to_numpy(a), dtype=np.float64)
                idx = np.sort(rng.choice(n, size=m, replace=False, p=p / p.sum() if m < n else None))
                sub.append(nx.detach(X)[nx.from_numpy(idx, type_as=X).long() if str(nx) == "torch" else idx])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a rough screening: its convergence does not matter
                _, lg = mgw_sinkhorn(
                    sub,
                    reg,
                    graph=edges,
                    normalize=None,
                    init=init,
                    n_components=self.n_components,
                    max_candidates=self.max_candidates,
                    random_state=rng,
                    stopThr=1e-5,
                    log=True,
                    warn=False,
                )
            return [lg["A"][e] for e in edges], "screened:" + lg["init"]
        check_positive_int("n_components", self.n_components, minimum=1)
        cands = _initial_candidates(nx, init, Xn, a_s, edges, self.n_components, self.max_candidates, None)
        return cands[0][1], cands[0][0]

    def fit(self, X_s: Sequence[Array], a_s: Weights = None) -> "NeuralMGW":
        """Fit the alternation on the clouds ``X_s`` (weights ``a_s``, uniform by default).

        Parameters
        ----------
        X_s : list of k arrays of shape (n_i, d_i)
            NumPy arrays or torch tensors (one library); sizes and dimensions may differ.
        a_s : list of k weight vectors, optional
            Weights of the clouds' points (each summing to one); ``None``
            (or a ``None`` entry): uniform.

        Returns
        -------
        self : NeuralMGW
            The fitted estimator.
        """
        t0 = time.perf_counter()
        check_estimator_params(self)
        reg, tol = self._check_params()
        nx, Xn, a_s, means, scales = _prepare(X_s, a_s, self.normalize)
        k = len(Xn)
        edges = _check_edge_list(graph_edges(self.graph, k), k, "graph")
        Xd = [nx.detach(X) for X in Xn]
        seed = int(self.seed) if self.seed is not None else int(np.random.SeedSequence().entropy % (2**62))
        is_numpy = str(nx) == "numpy"
        dev = (
            torch.device(self.device)
            if self.device is not None
            else (torch.device("cpu") if is_numpy else Xd[0].device)
        )
        dt = torch.float64 if is_numpy else Xd[0].dtype
        data = [_to_torch(X, dev, dt) for X in Xd]
        weights = [_to_torch(a, dev, dt) for a in a_s]
        ckpt, payload = None, None
        parallel = data_parallel(check_auto_bool(self.distributed, "distributed"), dev)
        if parallel is not None:  # one seed on every rank: the same start, batches of moments and A updates
            seed = int(parallel.broadcast_object(seed))
        if self.checkpoint_dir is not None:
            payload = resume_payload(self.checkpoint_dir, parallel) if self.resume else None
            if payload is not None and self.seed is None:
                seed = int(payload["extra"]["seed"])
            ckpt = Checkpointer(
                self.checkpoint_dir,
                1,
                self._fingerprint(data, weights, edges, reg, seed, dt),
                extra={"seed": seed},
                is_main=parallel is None or parallel.is_main,
            )
        S1 = sum(float(gw_moment_term(data[i], data[j], weights[i], weights[j])) for i, j in edges)
        gen = torch.Generator().manual_seed(derive_seed(seed, "mgw-moments"))
        emot = None
        if payload is not None:  # the state after `t_start` alternations
            ckpt.check(payload)
            st = payload["trainer"]
            t_start, kept, history, converged = st["t"], st["init"], st["history"], st["converged"]
            A = [M.to(dev) for M in st["A"]]
            A_used = None if st["A_used"] is None else [M.to(dev) for M in st["A_used"]]
            gen.set_state(st["generator"])
            if st["emot"] is not None:
                emot = NeuralEMOT._from_saved_state(st["emot"], dev, metric=[_edge_metric(M) for M in A_used])
        else:
            A, kept = self._start(nx, Xd, a_s, edges, reg, seed)
            A = [_to_torch(nx.detach(M), dev, dt) for M in A]
            t_start, history, converged, A_used = 0, {"objective": [], "A_change": [], "moments": []}, False, None
        if emot is None:
            emot = NeuralEMOT(
                reg,
                graph=list(edges),
                metric=[_edge_metric(M) for M in A],
                estimator=self.estimator,
                batch_size=self.batch_size,
                n_iter=self.n_iter,
                lr=self.lr,
                width=self.width,
                depth=self.depth,
                dtype=self.dtype,
                seed=seed,
                device=dev,
                distributed=self.distributed,
            )

        def save_state(t):
            """Checkpoint the state after ``t`` alternations; drop inner checkpoints no kept state needs."""
            state = {
                "t": t,
                "init": kept,
                "history": history,
                "converged": converged,
                "A": _cpu(A),
                "A_used": _cpu(A_used),
                "generator": gen.get_state(),
                "emot": None if t == 0 else emot._state_dict_for_save(metric=None),
            }
            if ckpt.save(SimpleNamespace(step_count=t, state_dict=lambda: state)) is not None:
                for old in range(t - 1):  # the previous state (also kept) resumes into outer-<t - 1>
                    shutil.rmtree(os.path.join(self.checkpoint_dir, "outer-%d" % old), ignore_errors=True)

        if ckpt is not None and payload is None:
            save_state(0)
        for t in range(t_start, int(self.n_outer) if not converged else t_start):
            emot.metric = [_edge_metric(M) for M in A]
            if t > 0:
                emot.warm_start, emot.n_iter = True, self.n_iter_refit
            if ckpt is not None:
                emot.checkpoint_dir = os.path.join(self.checkpoint_dir, "outer-%d" % t)
                emot.checkpoint_every, emot.resume = self.checkpoint_every, bool(self.resume and t == t_start)
            emot.fit(data, weights)
            emot_value = float(emot.value_) - _separable_mean(data, weights, edges, A)  # EMOT of c_A itself
            obj = S1 + sum(32.0 * float((M * M).sum()) for M in A) + emot_value
            history["objective"].append(obj)
            new_A, where = self._cross_moments(emot, data, weights, edges, gen)
            history["moments"].append(where)
            history["A_change"].append(
                max(
                    float(torch.linalg.norm(M1 - M0) / max(float(torch.linalg.norm(M1)), 1e-300))
                    for M0, M1 in zip(A, new_A)
                )
            )
            A_used, A = A, new_A
            if self.verbose:
                print(
                    "%3d  objective %.8e  A change %.2e  (moments on the %s)"
                    % (t + 1, obj, history["A_change"][-1], where)
                )
            h = history["objective"]
            # stationary: the objective flat to tol and A at its fixed point to sqrt(tol) (the objective is
            # quadratic in A near a stationary point: a flat objective alone also holds at the A = 0 saddle,
            # measured: k = 3, n = 1000, A changed by 99% while the objective moved by 6e-4)
            converged = len(h) >= 2 and abs(h[-1] - h[-2]) <= tol * abs(h[-1]) and history["A_change"][-1] <= tol**0.5
            if ckpt is not None:
                save_state(t + 1)
            if converged:
                break
        # the fitted potentials are those of the cost of A_used: keep that A with them
        self.emot_ = emot
        self.A_used_ = A_used
        self.A_ = {e: (M.cpu().numpy() if is_numpy else M) for e, M in zip(edges, A_used)}
        self.edges_ = list(edges)
        self.value_ = (
            history["objective"][-1] if is_numpy else torch.tensor(history["objective"][-1], dtype=dt, device=dev)
        )
        self.history_ = history
        self.scales_, self.means_ = scales, means
        self.init_ = kept
        self.n_outer_ = len(history["objective"])
        self.converged_ = converged
        self.S1_ = S1
        self._is_numpy = is_numpy
        self._dev, self._dt = dev, dt
        self.timings_ = {"total": time.perf_counter() - t0}
        return self

    def _cross_moments(self, emot, data, weights, edges, gen):
        """``½ E_{P_ij}[x_i x_jᵀ]`` of the fitted plan: on the data if its engine fits, else over batches."""
        sizes = [int(X.shape[0]) for X in data]
        if exact_is_affordable(emot.cost_, sizes, 10 * EXACT_FLOPS, 4 * EXACT_ENTRIES):
            pot = emot._dual_potentials(data, weights)
            out = []
            with torch.no_grad():
                for i, j in edges:
                    L = pot.log_pairwise_marginal(i, j)
                    P = torch.exp(L - torch.logsumexp(L.reshape(-1), 0))
                    out.append(gw_cross_moment(data[i], data[j], P))
            return out, "data"
        b = int(emot.batch_size_)
        acc = [0.0 for _ in edges]
        with torch.no_grad():
            for _ in range(int(self.n_moment_batches)):
                idx = [
                    torch.multinomial(w.detach().cpu(), min(b, w.shape[0]), replacement=False, generator=gen).to(
                        w.device
                    )
                    for w in weights
                ]
                Xb = [X[i] for X, i in zip(data, idx)]
                pot = Potentials(emot.cost_.engine(Xb, emot.reg_), emot._potentials_on(Xb))
                for e, (i, j) in enumerate(edges):
                    L = pot.log_pairwise_marginal(i, j)
                    P = torch.exp(L - torch.logsumexp(L.reshape(-1), 0))
                    acc[e] = acc[e] + gw_cross_moment(Xb[i], Xb[j], P)
        return [M / float(self.n_moment_batches) for M in acc], "batches"

    # ---- what the fit gives --------------------------------------------------------------------
    def _check_fitted(self):
        if getattr(self, "emot_", None) is None:
            raise RuntimeError("this NeuralMGW is not fitted yet: call fit(X_s) first")

    def _normalised(self, i, X):
        """Points of cloud ``i`` in the normalised coordinates of the fit (a torch tensor)."""
        k = len(self.means_)
        if not isinstance(i, (int, np.integer)) or not 0 <= i < k:
            raise ValueError("marginal index must be in [0, %d), got %r" % (k, i))
        check_query_points(X, "X_%d" % i, int(self.emot_.potentials_[i].d))
        is_np = isinstance(X, np.ndarray)
        T = _to_torch(np.asarray(X, dtype=np.float64) if is_np else X, self._dev, self._dt)
        d = int(self.emot_.potentials_[i].d)
        if T.ndim != 2 or T.shape[1] != d:
            raise ValueError("X_%d must have shape (m, %d), got %s" % (i, d, tuple(T.shape)))
        mean, scale = (
            _to_torch(np.asarray(v, dtype=np.float64) if self._is_numpy else v, self._dev, self._dt)
            for v in (self.means_[i], self.scales_[i])
        )
        return (T - mean[None, :]) / scale, is_np

    def pairwise_plan(self, i: int, j: int, X_i: Optional[Array] = None, X_j: Optional[Array] = None) -> Array:
        """The pairwise plan on marginals ``(i, j)``, on the training clouds or at new points.

        Parameters
        ----------
        i, j : int
            Two different marginals.
        X_i, X_j : array-like of shape (m_i, d_i) and (m_j, d_j), optional
            New points (original coordinates; give both or neither).

        Returns
        -------
        P : array-like
            Without points: the plan on the training clouds, shape
            ``(n_i, n_j)``, summing to one. With points: the density with
            respect to :math:`\\mu_i\\otimes\\mu_j` at every pair, shape
            ``(m_i, m_j)``. NumPy for NumPy input, torch otherwise.
        """
        self._check_fitted()
        if (X_i is None) != (X_j is None):
            raise ValueError("give both X_i and X_j, or neither")
        if X_i is None:
            return self.emot_.pairwise_plan(i, j)
        Ti, is_np = self._normalised(i, X_i)
        Tj, _ = self._normalised(j, X_j)
        D = self.emot_.pairwise_plan(i, j, Ti, Tj)
        return D.cpu().numpy() if is_np else D

    def match(
        self, i: int, j: int, X_i: Optional[Array] = None, X_j: Optional[Array] = None, soft: bool = False
    ) -> Any:
        """For each point of ``X_i`` its most likely partner in ``X_j`` (or the conditional law).

        Parameters
        ----------
        i, j : int
            Two different marginals.
        X_i, X_j : array-like, optional
            Points of marginals ``i`` and ``j`` (original coordinates);
            default: the training clouds (give both or neither).
        soft : bool, optional
            Return the conditional law of the partner instead of its index.

        Returns
        -------
        match : numpy.ndarray of int of shape (m_i,), or array of shape (m_i, m_j)
            Index in ``X_j`` of the most likely partner of each point of
            ``X_i``; with ``soft=True`` the conditional law (rows sum to one).
        """
        P = self.pairwise_plan(i, j, X_i, X_j)
        return match_from_plan(P, soft=soft)

    # ---- persistence ---------------------------------------------------------------------------
    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Save the fitted estimator (parameters, fitted attributes, inner estimator) with ``torch.save``.

        Parameters
        ----------
        path : str or path-like
            The file to write.
        """
        self._check_fitted()
        params = dict(self.get_params(deep=False), dtype=str(self.dtype) if self.dtype is not None else None)
        if not isinstance(self.init, str):
            params["init"] = [_cpu(M) if torch.is_tensor(M) else np.asarray(M) for M in self.init]
        torch.save(
            {
                "kind": _SAVED_KIND,
                "params": params,
                "emot": self.emot_._state_dict_for_save(metric=None),
                "fitted": _cpu({n: getattr(self, n) for n in _FITTED}),
                "value": _cpu(self.value_),
                "values_dtype": str(self._dt),
            },
            check_save_path(path),
        )

    @classmethod
    def load(cls, path: Union[str, "os.PathLike[str]"], device: Any = None) -> "NeuralMGW":
        """Load an estimator saved by :meth:`save`.

        Parameters
        ----------
        path : str or path-like
            The file written by :meth:`save`.
        device : str or torch.device, optional
            Where to put the networks, clouds and :math:`A_{ij}` (default: the CPU).

        Returns
        -------
        estimator : NeuralMGW
            The fitted estimator, ready for :meth:`pairwise_plan` and :meth:`match`.

        Raises
        ------
        ValueError
            When ``path`` is not a file of :meth:`NeuralMGW.save` (a
            :class:`~ot_multimarginal.neural.NeuralEMOT` file included).
        """
        state, device = _read_saved(path, _SAVED_KIND), check_device(device)
        params = dict(state["params"], dtype=_torch_dtype(state["params"]["dtype"]))
        if device is not None:
            params["device"] = device
        est = cls(**params)
        dev = torch.device(device) if device is not None else torch.device("cpu")
        for n, v in _map_tensors(state["fitted"], lambda t: t.to(dev)).items():
            setattr(est, n, v)
        est._dev, est._dt = dev, _torch_dtype(state["values_dtype"])
        est.value_ = _map_tensors(state["value"], lambda t: t.to(dev))
        est.emot_ = NeuralEMOT._from_saved_state(state["emot"], dev, metric=[_edge_metric(M) for M in est.A_used_])
        return est


def mgw_neural(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    normalize: Optional[str] = "each",
    init: Any = "auto",
    n_outer: int = 8,
    tol: float = 1e-3,
    seed: Optional[int] = None,
    verbose: bool = False,
    log: bool = False,
    **kwargs: Any,
) -> Union[Any, Tuple[Any, LogDict]]:
    r"""Multimarginal entropic Gromov–Wasserstein by neural potentials (mini-batches; torch).

    The problem, the value's convention and ``normalize`` are those of
    :func:`~ot_multimarginal.mgw_sinkhorn`; the inner EMOT is solved by
    :class:`~ot_multimarginal.neural.NeuralEMOT`, so the work per step depends on
    the batch size, not on the number of points (see :class:`NeuralMGW`).

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Point clouds (NumPy or torch, one library; sizes and dimensions may differ).
    reg : float
        Entropic regularisation, in the units of the normalised clouds.
    a_s : list of k weight vectors, optional
        Weights of the points (uniform when ``None``).
    graph : str or list of pairs, optional
        Pairs whose GW losses are summed (default ``'complete'``).
    normalize : {'each', 'joint', None}, optional
        Centring and scaling of the clouds (as in :func:`~ot_multimarginal.mgw_sinkhorn`).
    init : {'auto', 'zero', 'pca'} or list of arrays, optional
        Start of the :math:`A_{ij}` (see :class:`NeuralMGW`).
    n_outer : int, optional
        Maximum number of alternations.
    tol : float, optional
        Stop when the objective's relative change is at most ``tol`` and the
        :math:`A_{ij}`'s at most :math:`\sqrt{\mathrm{tol}}`.
    seed : int, optional
        Seed of the networks, the batches and the subsample.
    verbose : bool, optional
        Print the objective of each alternation.
    log : bool, optional
        Also return a dict: ``value``, ``A`` (edge → :math:`A_{ij}`),
        ``pairwise_plans`` (edge → the plan on the data, both orientations;
        ``None`` when the data's engine does not fit the budget), ``estimator``
        (the fitted :class:`NeuralMGW`), ``objective`` (history), ``init``,
        ``edges``, ``converged``.
    **kwargs
        Other parameters of :class:`NeuralMGW` (``n_iter``, ``batch_size``, ``lr``, ...).

    Returns
    -------
    value : float (NumPy input) or tensor
        The MGW value (the convention of :func:`~ot_multimarginal.mgw_sinkhorn`).
    log : dict
        Returned if ``log=True`` (see ``log`` above).
    """
    est = NeuralMGW(
        reg, graph=graph, normalize=normalize, init=init, n_outer=n_outer, tol=tol, seed=seed, verbose=verbose, **kwargs
    ).fit(X_s, a_s)
    if not log:
        return est.value_
    try:
        plans = {}
        for i, j in est.edges_:
            P = est.pairwise_plan(i, j)
            plans[(i, j)], plans[(j, i)] = P, P.T
    except MemoryError:
        plans = None
    return est.value_, dict(
        value=est.value_,
        A=dict(est.A_),
        pairwise_plans=plans,
        estimator=est,
        objective=list(est.history_["objective"]),
        init=est.init_,
        edges=list(est.edges_),
        converged=est.converged_,
    )
