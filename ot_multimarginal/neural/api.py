# -*- coding: utf-8 -*-
r"""The functional calls :func:`emot_neural` (the fitted estimator) and :func:`emot_neural2` (the value), POT style."""
# License: MIT License

import inspect
from typing import Any, Optional, Sequence, Tuple, Union

from .._deprecation import deprecated_key_dict, renamed_kwargs
from .._typing import Array, Edges, LogDict, Metric, Weights
from .._validation import _check_keywords, check_positive_int
from .estimator import NeuralEMOT

__all__ = ["emot_neural", "emot_neural2"]

_RENAMED = dict(n_iter="numItermax", seed="random_state")
_OLD_LOG_KEYS = {"n_iter": "niter", "stopped_early": "converged"}


def _fit(
    X_s,
    reg,
    a_s,
    graph,
    metric,
    estimator,
    batch_size,
    numItermax,
    lr,
    random_state,
    device,
    verbose,
    kwargs,
    caller="emot_neural",
):
    if graph is None:
        graph = "complete"
    # the call's own names in its errors: numItermax (not the estimator's max_iter), and a mistyped
    # keyword answered with the closest parameter of the call (its signature) or of NeuralEMOT
    check_positive_int("numItermax", numItermax, minimum=1)
    own = set(inspect.signature(emot_neural).parameters)
    passed_on = tuple(n for n in NeuralEMOT._get_param_names() if n != "max_iter" and n not in own)
    _check_keywords(caller, kwargs, passed_on, "Keywords passed on to NeuralEMOT")
    est = NeuralEMOT(
        reg,
        graph=graph,
        metric=metric,
        estimator=estimator,
        batch_size=batch_size,
        max_iter=numItermax,
        lr=lr,
        random_state=random_state,
        device=device,
        verbose=verbose,
        **kwargs,
    )
    return est.fit(X_s, a_s)


def _log(est, where):
    h = est.history_
    out = {
        "estimator": est,
        "value": est.value_,
        "value_se": est.value_se_,
        "value_method": est.value_method_,
        "lower_bound": est.value_method_ == "exact",
        "potentials": est.data_potentials(),
        "history": h,
        "held_out_value": h["eval_value"][-1] if h["eval_value"] else None,
        "held_out_se": h["eval_se"][-1] if h["eval_se"] else None,
        "niter": est.n_iter_,
        "converged": bool(est.converged_),
        "timings": est.timings_,
    }
    return deprecated_key_dict(out, _OLD_LOG_KEYS, where)


@renamed_kwargs(**_RENAMED)
def emot_neural(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    metric: Metric = "sqeuclidean",
    estimator: str = "combinatorial",
    batch_size: Optional[int] = None,
    numItermax: int = 2000,
    lr: float = 1e-2,
    random_state: Optional[int] = None,
    device: Any = None,
    verbose: bool = False,
    log: bool = False,
    **kwargs: Any,
) -> Union[NeuralEMOT, Tuple[NeuralEMOT, LogDict]]:
    est = _fit(
        X_s, reg, a_s, graph, metric, estimator, batch_size, numItermax, lr, random_state, device, verbose, kwargs
    )
    return (est, _log(est, "emot_neural")) if log else est


@renamed_kwargs(**_RENAMED)
def emot_neural2(
    X_s: Sequence[Array],
    reg: float,
    a_s: Weights = None,
    graph: Union[str, Edges] = "complete",
    metric: Metric = "sqeuclidean",
    estimator: str = "combinatorial",
    batch_size: Optional[int] = None,
    numItermax: int = 2000,
    lr: float = 1e-2,
    random_state: Optional[int] = None,
    device: Any = None,
    verbose: bool = False,
    log: bool = False,
    **kwargs: Any,
) -> Union[Any, Tuple[Any, LogDict]]:
    est = _fit(
        X_s,
        reg,
        a_s,
        graph,
        metric,
        estimator,
        batch_size,
        numItermax,
        lr,
        random_state,
        device,
        verbose,
        kwargs,
        caller="emot_neural2",
    )
    return (est.value_, _log(est, "emot_neural2")) if log else est.value_


emot_neural.__doc__ = r"""Neural entropic multimarginal OT between point clouds (NEMOT): the fitted estimator.

    .. math::
        \mathrm{EMOT}_\varepsilon = \min_{\pi \in \Pi(\mu_1,\dots,\mu_k)}
        \int c\, d\pi + \varepsilon\,\mathrm{KL}(\pi \,\|\, \otimes_i \mu_i)
        = \sup_{\varphi} \sum_i \mathbb E_{\mu_i}[\varphi_i]
        - \varepsilon \log \mathbb E_{\otimes\mu_i}\big[e^{(\sum_i\varphi_i - c)/\varepsilon}\big],

    with :math:`\mu_i = \sum_j a_i[j]\,\delta_{X_i[j]}` and the cost
    :math:`c = \sum_{(a,b)\in E} \mathrm{metric}(x_a, x_b)` on the edges of
    ``graph`` (the convention of
    :func:`~ot_multimarginal.empirical_emot_sinkhorn2`). The potentials
    :math:`\varphi_i` are MLPs trained by mini-batch gradient ascent (Tsur,
    Goldfeld, Greenewald and Permuter, 2025); each step costs a function of
    ``batch_size`` and ``k`` only. Its value ``value_`` is the dual of the
    trained potentials on the data: computed exactly when the data fits an
    engine (then a *certified lower bound* of the empirical EMOT, by weak
    duality), else estimated by Monte Carlo over held-out batches (its
    standard error in ``log``). See :class:`~ot_multimarginal.NeuralEMOT`
    for all options, the estimators' bias and variance, the plan and the
    density.

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Point clouds (NumPy or torch, any float dtype, sizes may differ).
    reg : float
        Entropic regularisation ε > 0.
    a_s : list of k arrays, optional
        Weights of the points (uniform by default), drawn by weighted sampling.
    graph : str or list of pairs, optional
        ``'complete'`` (default; ``None`` means the same), ``'chain'``, ``'circle'``, ``'star'``,
        ``'tree'`` (with ``edges=``) or an edge list.
    metric : str, callable or list, optional
        Ground cost per edge (:func:`ot.dist` names or callables), default ``'sqeuclidean'``.
    estimator : {'combinatorial', 'aligned', 'ustat'}, optional
        Mini-batch estimator of the expectation over the product measure
        (default ``'combinatorial'``: all :math:`b^k` tuples of the batch).
    batch_size : int, optional
        Points per marginal per step (default 512 on trees, 128 on a cycle, 64 on complete graphs with k >= 4).
    numItermax : int, optional
        The step budget (default 2000; the estimator's ``max_iter``; formerly ``n_iter``, deprecated):
        training stops earlier when the held-out dual has converged relative to its standard error,
        and a ``UserWarning`` says when the budget ended first.
    lr : float, optional
        Adam's initial learning rate (default 1e-2, divided by 10 at each plateau of the held-out
        dual, down to ``lr/100``).
    random_state : int, optional
        Seed: bitwise reproducible on the CPU (formerly ``seed``, deprecated).
    device : str or torch.device, optional
        Training device (default: the inputs').
    verbose : bool, optional
        Show a tqdm progress bar with the running estimate.
    log : bool, optional
        Also return a dict.
    **kwargs
        Other parameters of :class:`~ot_multimarginal.NeuralEMOT`
        (``cost``, ``width``, ``depth``, ``evaluation``, ``patience``, ...;
        data-parallel training under ``torchrun``: ``distributed``,
        ``distributed_loss``; checkpoints: ``checkpoint_dir``,
        ``checkpoint_every``, ``resume``).

    Returns
    -------
    estimator : NeuralEMOT
        The fitted estimator: ``value_``, the plan (:meth:`~ot_multimarginal.NeuralEMOT.plan`),
        its density, :meth:`~ot_multimarginal.NeuralEMOT.dual_potentials`.
    log : dict
        If ``log=True``: ``estimator`` (the fitted
        :class:`~ot_multimarginal.NeuralEMOT`), ``value``,
        ``value_se`` (standard error; 0 when exact), ``value_method``
        (``'exact'``: a certified lower bound of the empirical EMOT, or
        ``'mc'``), ``lower_bound`` (bool), ``potentials`` (the
        :math:`\varphi_i(X_i)`, a ``warmstart`` of :func:`~ot_multimarginal.emot_sinkhorn`),
        ``history`` (per-step batch duals, held-out estimates),
        ``held_out_value`` / ``held_out_se`` (the last held-out estimate),
        ``niter`` (steps taken; ``'n_iter'`` still reads, deprecated),
        ``converged`` (the stopping rule's verdict; ``'stopped_early'`` still reads,
        deprecated), ``timings`` (seconds).

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import emot_neural
    >>> rng = np.random.RandomState(0)
    >>> X_s = [rng.randn(300, 2) for _ in range(3)]
    >>> est = emot_neural(X_s, reg=1.0, random_state=0)
    >>> est.value_method_, est.plan().shape
    ('exact', (300, 300, 300))

    See Also
    --------
    emot_neural2 : the value.
    ot_multimarginal.NeuralEMOT : the estimator (plan, density, save/load).
    ot_multimarginal.empirical_emot_sinkhorn : the exact structured Sinkhorn plan.
    """

emot_neural2.__doc__ = r"""Neural estimate of the entropic multimarginal OT value between point clouds (NEMOT).

    .. math::
        \mathrm{EMOT}_\varepsilon = \min_{\pi \in \Pi(\mu_1,\dots,\mu_k)}
        \int c\, d\pi + \varepsilon\,\mathrm{KL}(\pi \,\|\, \otimes_i \mu_i)
        = \sup_{\varphi} \sum_i \mathbb E_{\mu_i}[\varphi_i]
        - \varepsilon \log \mathbb E_{\otimes\mu_i}\big[e^{(\sum_i\varphi_i - c)/\varepsilon}\big],

    with :math:`\mu_i = \sum_j a_i[j]\,\delta_{X_i[j]}` and the cost
    :math:`c = \sum_{(a,b)\in E} \mathrm{metric}(x_a, x_b)` on the edges of
    ``graph`` (the convention of
    :func:`~ot_multimarginal.empirical_emot_sinkhorn2`). The potentials
    :math:`\varphi_i` are MLPs trained by mini-batch gradient ascent (Tsur,
    Goldfeld, Greenewald and Permuter, 2025); each step costs a function of
    ``batch_size`` and ``k`` only. The returned value is the dual of the
    trained potentials on the data: computed exactly when the data fits an
    engine (then a *certified lower bound* of the empirical EMOT, by weak
    duality), else estimated by Monte Carlo over held-out batches (its
    standard error in ``log``). See :class:`~ot_multimarginal.NeuralEMOT`
    for all options, the estimators' bias and variance, the plan and the
    density.

    Parameters
    ----------
    X_s : list of k arrays of shape (n_i, d_i)
        Point clouds (NumPy or torch, any float dtype, sizes may differ).
    reg : float
        Entropic regularisation ε > 0.
    a_s : list of k arrays, optional
        Weights of the points (uniform by default), drawn by weighted sampling.
    graph : str or list of pairs, optional
        ``'complete'`` (default; ``None`` means the same), ``'chain'``, ``'circle'``, ``'star'``,
        ``'tree'`` (with ``edges=``) or an edge list.
    metric : str, callable or list, optional
        Ground cost per edge (:func:`ot.dist` names or callables), default ``'sqeuclidean'``.
    estimator : {'combinatorial', 'aligned', 'ustat'}, optional
        Mini-batch estimator of the expectation over the product measure
        (default ``'combinatorial'``: all :math:`b^k` tuples of the batch).
    batch_size : int, optional
        Points per marginal per step (default 512 on trees, 128 on a cycle, 64 on complete graphs with k >= 4).
    numItermax : int, optional
        The step budget (default 2000; the estimator's ``max_iter``; formerly ``n_iter``, deprecated):
        training stops earlier when the held-out dual has converged relative to its standard error,
        and a ``UserWarning`` says when the budget ended first.
    lr : float, optional
        Adam's initial learning rate (default 1e-2, divided by 10 at each plateau of the held-out
        dual, down to ``lr/100``).
    random_state : int, optional
        Seed: bitwise reproducible on the CPU (formerly ``seed``, deprecated).
    device : str or torch.device, optional
        Training device (default: the inputs').
    verbose : bool, optional
        Show a tqdm progress bar with the running estimate.
    log : bool, optional
        Also return a dict.
    **kwargs
        Other parameters of :class:`~ot_multimarginal.NeuralEMOT`
        (``cost``, ``width``, ``depth``, ``evaluation``, ``patience``,
        ``num_threads`` (default ``'auto'``: one torch thread for small
        batches, the caller's setting restored), ``warn``, ...;
        data-parallel training under ``torchrun``: ``distributed``,
        ``distributed_loss``; checkpoints: ``checkpoint_dir``,
        ``checkpoint_every``, ``resume``).

    Returns
    -------
    value : float or torch scalar
        A NumPy float for NumPy inputs, a torch scalar (inputs' dtype and
        device) for torch inputs; differentiable in the inputs when they
        require grad and the evaluation is exact.
    log : dict
        If ``log=True``: ``estimator`` (the fitted
        :class:`~ot_multimarginal.NeuralEMOT`), ``value``,
        ``value_se`` (standard error; 0 when exact), ``value_method``
        (``'exact'``: a certified lower bound of the empirical EMOT, or
        ``'mc'``), ``lower_bound`` (bool), ``potentials`` (the
        :math:`\varphi_i(X_i)`, a ``warmstart`` of :func:`~ot_multimarginal.emot_sinkhorn`),
        ``history`` (per-step batch duals, held-out estimates),
        ``held_out_value`` / ``held_out_se`` (the last held-out estimate),
        ``niter`` (steps taken; ``'n_iter'`` still reads, deprecated),
        ``converged`` (the stopping rule's verdict; ``'stopped_early'`` still reads,
        deprecated), ``timings`` (seconds).

    Examples
    --------
    >>> import numpy as np
    >>> from ot_multimarginal import emot_neural2
    >>> rng = np.random.RandomState(0)
    >>> X_s = [rng.randn(300, 2) for _ in range(3)]
    >>> v, log = emot_neural2(X_s, reg=1.0, random_state=0, log=True)
    >>> log['value_method'], log['lower_bound']
    ('exact', True)

    See Also
    --------
    emot_neural : the fitted estimator (the plan).
    ot_multimarginal.NeuralEMOT : the estimator (plan, density, save/load).
    ot_multimarginal.empirical_emot_sinkhorn2 : the exact structured Sinkhorn value.
    """
