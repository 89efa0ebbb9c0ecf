# -*- coding: utf-8 -*-
"""Property-based battery (hypothesis) over the neural and Gromov-Wasserstein calls (issue 24).

Valid inputs (random k, sizes, dimensions, graphs, estimators, backends and
dtypes, weights with zeros, reg over two decades) never give NaN nor a raw
library error:

- :func:`~ot_multimarginal.emot_neural`: a finite value of the inputs' type;
  when it is exact, a lower bound of the empirical EMOT (weak duality,
  against :func:`~ot_multimarginal.empirical_emot_sinkhorn2`);
- the queries of a fitted :class:`~ot_multimarginal.NeuralEMOT`
  (``potential``, ``plan_density``, ``value``, ``plan``, ``pairwise_plan``):
  finite, densities non-negative, the plan of mass one;
- :func:`~ot_multimarginal.mgw_sinkhorn` and
  :func:`~ot_multimarginal.neural.mgw_neural`: a finite value and plan, the
  plan's marginals the weights (Sinkhorn).

Invalid inputs (one argument of a valid call perturbed) always raise a
``TypeError`` or ``ValueError`` whose message names the argument.

Budgets are small (tiny clouds, a few training steps, ``ci`` profile of
``tests/conftest.py``); ``HYPOTHESIS_PROFILE=dev`` runs ten times more.
"""

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
torch = pytest.importorskip("torch")
from emot_strategies import to_backend, to_numpy  # noqa: E402
from hypothesis import Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ot_multimarginal as om  # noqa: E402
from ot_multimarginal.neural import NeuralEMOT, emot_neural, emot_neural2, mgw_neural, mgw_neural2  # noqa: E402

ERRORS = (TypeError, ValueError)
BACKENDS = ["numpy", "torch64", "torch32"]
FAST = dict(max_iter=3, eval_every=0, patience=None)  # NeuralEMOT
FN_FAST = dict(numItermax=3, eval_every=0, patience=None)  # emot_neural


def _examples(factor):
    return max(4, int(settings().max_examples * factor))


NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]  # a failing fit is reported at once, not minimised


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _finite(x):
    return bool(np.all(np.isfinite(to_numpy(x))))


@st.composite
def cloud_problems(draw, max_k=3, max_n=10, same_dim=True):
    """Random clouds (backend, dtype), weights with zeros or uniform, and reg."""
    be = draw(st.sampled_from(BACKENDS))
    k = draw(st.integers(2, max_k))
    sizes = draw(st.lists(st.integers(3, max_n), min_size=k, max_size=k))
    d = draw(st.integers(1, 2))
    dims = [d] * k if same_dim else draw(st.lists(st.integers(1, 3), min_size=k, max_size=k))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.RandomState(seed)
    scale = draw(st.sampled_from([0.1, 1.0, 5.0]))
    X_s = [to_backend(scale * rng.randn(n, di) + 0.5 * i, be) for i, (n, di) in enumerate(zip(sizes, dims))]
    a_s = None
    if draw(st.booleans()):
        a_s = []
        for n in sizes:
            a = rng.rand(n) + 0.1
            a[rng.rand(n) < 0.2] = 0.0  # zero weights allowed
            if a.sum() == 0:
                a[0] = 1.0
            a_s.append(to_backend(a / a.sum(), be))
    reg = draw(st.sampled_from([0.1, 0.5, 1.0, 5.0]))
    return dict(be=be, X_s=X_s, a_s=a_s, reg=reg, seed=seed % 1000)


def _check_type(v, be):
    if be == "numpy":
        assert isinstance(v, float), type(v)
    else:
        assert torch.is_tensor(v) and v.dtype == (torch.float64 if be == "torch64" else torch.float32)


# ---------------------------------------------------------------- valid inputs
@settings(max_examples=_examples(0.5), phases=NO_SHRINK)
@given(
    cloud_problems(),
    st.sampled_from(["complete", "chain", "circle", "star"]),
    st.sampled_from(["combinatorial", "aligned", "ustat"]),
)
def test_emot_neural_is_finite_and_a_lower_bound(p, graph, estimator):
    X_s, a_s, reg, be = p["X_s"], p["a_s"], p["reg"], p["be"]
    k = len(X_s)
    if graph == "circle" and k < 3:
        graph = "chain"
    v, log = _quiet(
        emot_neural2,
        X_s,
        reg,
        a_s=a_s,
        graph=graph,
        estimator=estimator,
        random_state=p["seed"],
        log=True,
        batch_size=max(k, 4),
        replace=True,
        **FN_FAST,
    )
    assert _finite(v)
    _check_type(v, be)
    if log["value_method"] == "exact" and be != "torch32":
        exact = _quiet(
            om.empirical_emot_sinkhorn2,
            X_s,
            reg,
            a_s=a_s,
            graph=None if graph == "complete" else graph,
            stopThr=1e-11,
            numItermax=20000,
        )
        assert float(v) <= float(exact) + 1e-6 * (1.0 + abs(float(exact)))  # weak duality


@settings(max_examples=_examples(0.5), phases=NO_SHRINK)
@given(cloud_problems(), st.integers(1, 6), st.sampled_from([0.0, 1.0, 30.0]))
def test_neural_emot_queries_are_finite(p, m, spread):
    X_s, a_s, reg = p["X_s"], p["a_s"], p["reg"]
    k = len(X_s)
    est = _quiet(NeuralEMOT(reg, graph="chain", random_state=p["seed"], **FAST).fit, X_s, a_s)
    rng = np.random.RandomState(p["seed"])
    Y = [to_backend(spread * rng.randn(m, int(X.shape[1])), p["be"]) for X in X_s]  # also far from the data
    for i in range(k):
        assert _finite(est.potential(i, Y[i]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dens = est.plan_density(*Y)
    d = to_numpy(dens)
    assert not np.isnan(d).any() and d.min() >= 0
    if not _finite(dens):  # far from the data the learned potentials may outgrow the cost: said, not silent
        assert spread > 0 and any("plan_density: the density overflows" in str(w.message) for w in caught)
    assert _finite(est.value(Y))
    P = est.plan()
    mass = sum(to_numpy(P.marginal(0)))
    assert abs(mass - 1.0) < (1e-3 if p["be"] == "torch32" else 1e-8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        D = est.pairwise_plan(0, 1, Y[0], Y[1])
    assert not np.isnan(to_numpy(D)).any() and to_numpy(D).min() >= 0
    if not _finite(D):
        assert spread > 0 and any("pairwise_plan: the density overflows" in str(w.message) for w in caught)


@settings(max_examples=_examples(0.4), phases=NO_SHRINK)
@given(
    cloud_problems(max_n=7, same_dim=False),
    st.sampled_from(["each", "joint", None]),
    st.sampled_from(["zero", "pca"]),
    st.sampled_from(["complete", "chain"]),
)
def test_mgw_sinkhorn_is_finite_with_the_weights_as_marginals(p, normalize, init, graph):
    X_s, a_s, reg = p["X_s"], p["a_s"], p["reg"]
    if normalize == "each":  # a cloud of one distinct weighted point has no spread to normalise
        normalize = "joint"
    # a few outer steps, inner solves capped (small reg makes them long; their convergence is not the point)
    _, log = _quiet(
        om.mgw_sinkhorn,
        X_s,
        max(reg, 0.5),
        a_s=a_s,
        normalize=normalize,
        init=init,
        graph=graph,
        numItermax=3,
        numItermaxInner=300,
        n_screen=1,
        random_state=0,
        log=True,
    )
    assert _finite(log["value"])
    P = log["plan"]
    P = to_numpy(P if not hasattr(P, "to_dense") else P.to_dense())
    assert _finite(P) and P.min() >= 0
    a0 = to_numpy(a_s[0]) if a_s is not None else np.full(P.shape[0], 1.0 / P.shape[0])
    if normalize is not None:  # unnormalised clouds spread over tens of units: 300 inner sweeps do not converge
        tol = 1e-2  # inner solves capped at 300 sweeps
        np.testing.assert_allclose(P.sum(axis=tuple(range(1, P.ndim))), a0, atol=tol)


@settings(max_examples=_examples(0.3), phases=NO_SHRINK)
@given(cloud_problems(max_n=8, same_dim=False), st.sampled_from(["zero", "pca"]))
def test_mgw_neural_is_finite(p, init):
    X_s, a_s, reg = p["X_s"], p["a_s"], p["reg"]
    v = _quiet(
        mgw_neural2,
        X_s,
        reg,
        a_s=a_s,
        normalize="joint",
        init=init,
        numItermax=1,
        numItermaxInner=3,
        max_iter_refit=2,
        n_moment_batches=2,
        random_state=p["seed"],
    )
    assert _finite(v)


# ---------------------------------------------------------------- invalid inputs
def _expect(fn, name, *args, **kwargs):
    """``fn(*args, **kwargs)`` must raise a ``TypeError``/``ValueError`` naming ``name``."""
    try:
        _quiet(fn, *args, **kwargs)
    except ERRORS as e:
        assert name in str(e), "%s: %r does not name %r" % (type(e).__name__, str(e), name)
        assert len(str(e)) < 2000
        return
    except Exception as e:  # anything else is a bug
        raise AssertionError(
            "%s raised %s: %s (expected %s naming %r)"
            % (getattr(fn, "__name__", fn), type(e).__name__, e, ERRORS, name)
        ) from e
    raise AssertionError("%s accepted a bad %s" % (getattr(fn, "__name__", fn), name))


def _bad_clouds(X_s, be):
    return [
        "X",
        X_s[0],
        X_s[:1],
        X_s[:-1] + [to_backend(np.ones(3), be)],
        X_s[:-1] + [None],
        X_s[:-1] + [to_backend(np.full((2, 2), np.nan), be)],
        X_s[:-1] + [to_backend(np.ones((0, 2)), be)],
        X_s[:-1] + [[[1.0, 2.0]]],
        X_s[:-1] + [to_backend(np.full((2, 2), np.inf), be)],
    ]


def _bad_weights(X_s, be):
    sizes = [int(X.shape[0]) for X in X_s]
    good = [to_backend(np.ones(n) / n, be) for n in sizes]
    other = np.ones(sizes[0]) / sizes[0] if be != "numpy" else torch.ones(sizes[0], dtype=torch.float64) / sizes[0]
    neg = np.ones(sizes[0]) / sizes[0]
    neg[0] = -0.5
    return [
        "uniform",
        good[:-1],
        good + [None],
        [to_backend(np.ones(sizes[0] + 1) / (sizes[0] + 1), be)] + good[1:],
        [to_backend(neg, be)] + good[1:],
        [to_backend(np.full(sizes[0], np.nan), be)] + good[1:],
        [to_backend(2 * np.ones(sizes[0]) / sizes[0], be)] + good[1:],
        [other] + good[1:],
        ["abc"] + good[1:],
        [np.ones(sizes[0], dtype=bool) if be == "numpy" else torch.ones(sizes[0], dtype=torch.bool)] + good[1:],
    ]


NEURAL_BAD = {
    "reg": [0.0, -1.0, float("nan"), "1", None, True],
    "estimator": ["combinatorical", None, 3],
    "batch_size": [0, -2, 2.5, "8"],
    "numItermax": [0, -1, 1.5, None],
    "lr": [0.0, -1e-2, float("nan"), "fast"],
    "width": [0, 2.5, "wide"],
    "depth": [0, -1, 1.5],
    "tol": [-1.0, float("nan"), "small"],
    "replace": ["yes", 2],
    "verbose": ["yes", 2],
    "warm_start": ["no", 3],
    "device": ["gpu", "cuda:99", 1.5, "tpu"],
    "dtype": [torch.int32, "float32", np.float64, torch.bool],
    "checkpoint_dir": [5, 2.5, ["a"]],
    "random_state": [-1, 1.5, "0"],
    "graph": ["ring", 3, [(0, 9)]],
    "evaluation": ["fast", None],
    "patience": [0, 1.5],
}


@st.composite
def perturbed_neural_calls(draw):
    p = draw(cloud_problems(max_n=6))
    be, X_s = p["be"], p["X_s"]
    fn = draw(st.sampled_from(["emot_neural", "NeuralEMOT", "mgw_neural"]))
    arg = draw(st.sampled_from(["X_s", "a_s"] + sorted(NEURAL_BAD)))
    if fn == "mgw_neural" and arg in (
        "evaluation",
        "patience",
        "warm_start",
        "replace",
        "graph",
    ):
        arg = "lr"  # not parameters of mgw_neural
    args, kwargs = [X_s, 1.0], dict(FAST if fn == "NeuralEMOT" else FN_FAST)
    if fn == "NeuralEMOT" and arg == "numItermax":
        arg = "max_iter"  # the estimator's name for the step budget
        kwargs.pop("max_iter")
    if fn == "mgw_neural":
        kwargs = dict(numItermax=1, numItermaxInner=2, max_iter_refit=2, init="zero")
    if arg == "X_s":
        args[0] = draw(st.sampled_from(_bad_clouds(X_s, be)))
    elif arg == "a_s":
        kwargs["a_s"] = draw(st.sampled_from(_bad_weights(X_s, be)))
    elif arg == "reg":
        args[1] = draw(st.sampled_from(NEURAL_BAD["reg"]))
    else:
        kwargs[arg] = draw(st.sampled_from(NEURAL_BAD["numItermax" if arg == "max_iter" else arg]))
    if fn == "NeuralEMOT":
        a_s = kwargs.pop("a_s", None)
        return (lambda X, reg, **kw: NeuralEMOT(reg, **kw).fit(X, a_s)), args, kwargs, arg
    return {"emot_neural": emot_neural, "mgw_neural": mgw_neural}[fn], args, kwargs, arg


@settings(max_examples=_examples(3), phases=NO_SHRINK)
@given(perturbed_neural_calls())
def test_invalid_neural_arguments_are_named(case):
    fn, args, kwargs, name = case
    _expect(fn, name, *args, **kwargs)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.RandomState(0)
    X_s = [rng.randn(12, 2), rng.randn(10, 2), rng.randn(8, 2)]
    return _quiet(NeuralEMOT(1.0, graph="chain", random_state=0, **FAST).fit, X_s)


@settings(max_examples=_examples(2), phases=NO_SHRINK)
@given(st.data())
def test_invalid_queries_are_named(fitted, data):
    ok = np.zeros((2, 2))
    which = data.draw(st.sampled_from(["potential_i", "potential_x", "density", "value", "pairwise", "save"]))
    if which == "potential_i":
        return _expect(fitted.potential, "i", data.draw(st.sampled_from([3, -1, 1.5, "0", None])), ok)
    bad = data.draw(
        st.sampled_from(
            [
                [[0.0, 0.0]],
                np.full((2, 2), np.nan),
                np.full((2, 2), np.inf),
                np.zeros((2, 3)),
                np.zeros(2),
                torch.full((2, 2), float("nan")),
                "x",
                None,
                np.zeros((2, 2), dtype=bool),
                torch.zeros((2, 2), dtype=torch.int64),
            ]
        )
    )
    if which == "potential_x":
        return _expect(fitted.potential, "x", 0, bad)
    if which == "density":
        return _expect(fitted.plan_density, "xs[1]", ok, bad, ok)
    if which == "value":  # boolean clouds are cast, as everywhere (the rule of the point clouds)
        bad = bad if not (hasattr(bad, "dtype") and bad.dtype == bool) else np.zeros((2, 2, 1))
        return _expect(fitted.value, "X_s", [ok, bad, ok])
    if which == "pairwise":
        return _expect(fitted.pairwise_plan, "X_j", 0, 1, ok, bad)
    return _expect(fitted.save, "path", data.draw(st.sampled_from([None, 3, "/nonexistent-dir-h24/x.pt", "/"])))


@st.composite
def perturbed_mgw_sinkhorn_calls(draw):
    p = draw(cloud_problems(max_n=5, same_dim=False))
    be, X_s = p["be"], p["X_s"]
    arg = draw(
        st.sampled_from(
            [
                "X_s",
                "a_s",
                "reg",
                "normalize",
                "init",
                "n_components",
                "numItermax",
                "stopThr",
                "method",
                "typo",
                "graph",
                "verbose",
                "log",
            ]
        )
    )
    args, kwargs = [X_s, 1.0], dict(numItermax=2, numItermaxInner=50, init="zero")
    if arg == "X_s":
        args[0] = draw(st.sampled_from(_bad_clouds(X_s, be)))
    elif arg == "a_s":
        kwargs["a_s"] = draw(st.sampled_from(_bad_weights(X_s, be)))
    elif arg == "reg":
        args[1] = draw(st.sampled_from(NEURAL_BAD["reg"]))
    elif arg == "typo":
        arg = draw(st.sampled_from(["stopthr", "numIterMax", "relaxaton", "tol", "Verbose"]))
        kwargs[arg] = 1
    else:
        kwargs[arg] = draw(
            st.sampled_from(
                {
                    "normalize": ["both", 1, True],
                    "init": ["random", 3, [np.zeros((2, 2))] * 7],
                    "n_components": [0, 1.5, "2"],
                    "numItermax": [-1, 2.5, "10"],
                    "stopThr": [-1.0, float("nan"), "x"],
                    "method": ["sinkhorn_fast", 3, "sinkhorn_stabilized"],
                    "graph": ["ring", 3, [(0, 9)]],
                    "verbose": ["yes", 2],
                    "log": ["yes", 2],
                }[arg]
            )
        )
    return args, kwargs, arg


@settings(max_examples=_examples(3), phases=NO_SHRINK)
@given(perturbed_mgw_sinkhorn_calls())
def test_invalid_mgw_sinkhorn_arguments_are_named(case):
    args, kwargs, name = case
    _expect(om.mgw_sinkhorn, name, *args, **kwargs)
