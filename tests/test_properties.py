# -*- coding: utf-8 -*-
"""Property-based battery (hypothesis) over the public API (issue 16).

Valid inputs (random k, sizes, graphs, backends and dtypes, weights with
zeros, reg over several decades) must give finite results that satisfy the
invariants of the problem:

- the value is the primal objective of the returned plan:
  ``value = <C, P> + reg KL(P | ⊗a) >= value_linear`` (KL >= 0);
- ``LP <= value_linear`` (up to the rounding bound ``2 ||C||∞ err``) and
  ``LP <= value <= <C, ⊗a>`` (the independent coupling is feasible with
  KL = 0), up to the marginal error of the solve;
- the marginals are the weights at convergence, and exactly after ``round()``;
- dense == structured (a :class:`PairwiseCost` against its dense tensor),
  NumPy == torch;
- a solve that stops early says so (``UserWarning``), never silently.

Invalid inputs (one argument of a valid call perturbed) must raise one of
the documented exception types with the argument's name in the message,
never anything else.

Time is bounded by the hypothesis profile (``tests/conftest.py``: 'ci' by
default, derandomized; ``HYPOTHESIS_PROFILE=dev`` for longer runs).
"""

import warnings

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from emot_strategies import BACKENDS, dense_problems, graph_problems, to_backend, to_numpy  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ot_multimarginal as om  # noqa: E402

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


def _examples(factor):
    """``factor`` times the profile's number of examples (so that 'dev' lengthens every test)."""
    return max(5, int(settings().max_examples * factor))


def _solve(fn, *args, **kwargs):
    """Call ``fn`` recording warnings; returns ``(result, [messages])``."""
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        out = fn(*args, **kwargs)
    return out, [str(w.message) for w in rec]


def _marginals(P):
    P = to_numpy(P)
    return [P.sum(axis=tuple(j for j in range(P.ndim) if j != i)) for i in range(P.ndim)]


def _tol(backend, scale):
    """Arithmetic tolerance of the backend's dtype for numbers of size ``scale``."""
    return (2e-3 if backend == "torch32" else 1e-8) * (1.0 + scale)


def _check_entropic_invariants(C, a_s, reg, backend, P, log, msgs, lp=None, free=()):
    """The invariants of an entropic solve on the dense data ``(C, a_s)`` (NumPy float64).

    With free nodes the marginal error and the LP are over the prescribed
    marginals only; the independent coupling is still feasible with KL = 0.
    """
    value, value_linear = float(to_numpy(log["value"])), float(to_numpy(log["value_linear"]))
    assert np.isfinite(value) and np.isfinite(value_linear)
    c_max = float(np.abs(C).max())
    tol = _tol(backend, c_max + abs(value))
    # the value is <C, P> + reg KL(P | ⊗a), KL >= 0, whatever the convergence
    assert value >= value_linear - tol
    if not log["converged"]:
        assert any("did not converge" in m for m in msgs), "stopped early without a warning"
        return
    err = sum(float(np.abs(r - a).sum()) for i, (r, a) in enumerate(zip(_marginals(P), a_s)) if i not in free)
    assert err <= 10 * log["stopThr"] + _tol(backend, 0.0)
    phis = [to_numpy(p) for p in log["potentials"]]
    phi_max = max(float(np.abs(p[np.isfinite(p)]).max(initial=0.0)) for p in phis)
    slack = 2 * c_max * err + err * (phi_max + reg) + tol
    if lp is None:
        lp = float(om.emot_lp2([np.asarray(a) for a in a_s], C, free=free))
    indep = C
    for i, a in enumerate(a_s):
        sh = [1] * C.ndim
        sh[i] = -1
        indep = indep * a.reshape(sh)
    indep = float(indep.sum())
    assert lp <= value_linear + slack
    assert lp <= value + slack
    assert value <= indep + slack


# ---------------------------------------------------------------- valid inputs
@settings(max_examples=_examples(1.6))
@given(dense_problems())
def test_dense_solve_invariants(p):
    C, a_s, reg, be = p["C"], p["a_s"], p["reg"], p["backend"]
    method = ["sinkhorn", "sinkhorn_log", "sinkhorn_greedy"][p["seed"] % 3]
    (P, log), msgs = _solve(
        om.emot_sinkhorn,
        [to_backend(a, be) for a in a_s],
        to_backend(C, be),
        reg,
        method=method,
        numItermax=3000 if method != "sinkhorn_greedy" else 400,
        log=True,
        free=p["free"],
    )
    assert P.dtype == to_backend(C, be).dtype and tuple(P.shape) == C.shape
    assert log["free"] == p["free"]
    Pn = to_numpy(P)
    assert np.all(np.isfinite(Pn)) and np.all(Pn >= 0)
    _check_entropic_invariants(C, a_s, reg, be, Pn, log, msgs, free=p["free"])


@pytest.mark.skipif(torch is None, reason="torch not installed")
@settings(max_examples=_examples(0.8))
@given(dense_problems(backends=["numpy"]))
def test_numpy_equals_torch(p):
    C, a_s, reg = p["C"], p["a_s"], p["reg"]
    (v_np, log_np), _ = _solve(om.emot_sinkhorn2, a_s, C, reg, numItermax=3000, log=True)
    (v_t, log_t), _ = _solve(
        om.emot_sinkhorn2, [torch.tensor(a) for a in a_s], torch.tensor(C), reg, numItermax=3000, log=True
    )
    assert isinstance(v_np, (float, np.floating, np.ndarray)) and torch.is_tensor(v_t)
    if log_np["converged"] and log_t["converged"]:
        assert float(v_t) == pytest.approx(float(v_np), rel=1e-7, abs=1e-9)
        for m_np, m_t in zip(log_np["marginals"], log_t["marginals"]):
            np.testing.assert_allclose(to_numpy(m_t), m_np, atol=1e-8)


@settings(max_examples=_examples(1.2))
@given(graph_problems())
def test_structured_equals_dense_and_rounds_exactly(p):
    be, reg = p["backend"], p["reg"]
    mats = [to_backend(m, be) for m in p["mats"]]
    a_s = [to_backend(a, be) for a in p["a_s"]]
    C = om.PairwiseCost(p["edges"], mats, shape=p["shape"])
    D = C.to_dense()
    (P, log), msgs = _solve(om.emot_sinkhorn, a_s, C, reg, numItermax=3000, log=True)
    (v_d, log_d), _ = _solve(om.emot_sinkhorn2, a_s, D, reg, numItermax=3000, log=True)
    v_s = float(to_numpy(log["value"]))
    assert np.isfinite(v_s) and np.isfinite(float(to_numpy(v_d)))
    Dn = to_numpy(D)
    if log["converged"] and log_d["converged"]:
        assert v_s == pytest.approx(float(to_numpy(v_d)), abs=_tol(be, float(Dn.max())) + 10 * log["stopThr"])
        Pd = to_numpy(P.to_dense())
        _check_entropic_invariants(Dn, p["a_s"], reg, be, Pd, log, msgs)
        for i in range(C.k):
            np.testing.assert_allclose(to_numpy(P.marginal(i)), _marginals(Pd)[i], atol=_tol(be, 0.0))
    # round(): exact marginals, or (float32 beyond its resolution) a warning with the figure
    R, msgs_r = _solve(P.round)
    err = sum(float(np.abs(to_numpy(R.marginal(i)) - a).sum()) for i, a in enumerate(p["a_s"]))
    if err > max(1e3 * C.k * (1.2e-7 if be == "torch32" else 2.3e-16), 1e-9):
        assert any("round()" in m for m in msgs_r)
    Rd = to_numpy(R.to_dense())
    assert np.all(Rd >= -_tol(be, 0.0)) and np.all(np.isfinite(Rd))


@settings(max_examples=_examples(0.8))
@given(dense_problems(backends=["numpy"]))
def test_lp_below_independent_coupling_and_feasible(p):
    C, a_s = p["C"], p["a_s"]
    P, log = om.emot_lp(a_s, C, log=True)
    for r, a in zip(_marginals(P), a_s):
        np.testing.assert_allclose(r, a, atol=1e-9)
    indep = C
    for i, a in enumerate(a_s):
        sh = [1] * C.ndim
        sh[i] = -1
        indep = indep * a.reshape(sh)
    assert float(log["value"]) <= float(indep.sum()) + 1e-9
    # weak duality with the returned duals: sum_i <a_i, u_i> = value
    assert float(log["value"]) == pytest.approx(
        sum(float(a @ to_numpy(u)) for a, u in zip(a_s, log["duals"])), abs=1e-9
    )


# ---------------------------------------------------------------- invalid inputs
ERRORS = (TypeError, ValueError, MemoryError, IndexError)


def _negative(n):
    """Weights with a negative entry (summing to one when n > 1)."""
    a = np.zeros(n)
    a[0] = -1.0
    if n > 1:
        a[1] = 2.0
    return a


def _bad_weights(k, shape, be, rng):
    n = shape[0]
    good = [to_backend(np.ones(m) / m, be) for m in shape]
    other = to_backend(np.ones(n) / n, "numpy" if be != "numpy" else "torch64") if torch is not None else None
    cases = [
        "uniform",
        np.ones((k, n)) / n,
        good[:-1],
        good + [None],
        [to_backend(np.ones(n + 1) / (n + 1), be)] + good[1:],
        [to_backend(_negative(n), be)] + good[1:],
        [to_backend(np.full(n, np.nan), be)] + good[1:],
        [to_backend(np.full(n, np.inf), be)] + good[1:],
        [to_backend(2 * np.ones(n) / n, be)] + good[1:],
        [to_backend(np.ones((n, 1)) / n, be)] + good[1:],
        [np.ones(n, dtype=bool)] + good[1:] if be == "numpy" else [torch.ones(n, dtype=torch.bool)] + good[1:],
        ["abc"] + good[1:],
        [{"a": 1}] + good[1:],
        3.0,
    ]
    if other is not None:
        cases.append([other] + good[1:])
    return cases


def _bad_cost(shape, be):
    C = np.random.RandomState(0).rand(*shape)
    nan = C.copy()
    nan.flat[0] = np.nan
    inf = C.copy()
    inf.flat[-1] = -np.inf
    cases = [
        C.tolist(),
        "M",
        None,
        to_backend(nan, be),
        to_backend(inf, be),
        to_backend(C.reshape(-1), be),
        to_backend(np.zeros(shape[:-1] + (0,)), be),
        np.ones(shape, dtype=int) if be == "numpy" else torch.ones(shape, dtype=torch.int64),
        C.astype(complex) if be == "numpy" else to_backend(nan, be),
    ]
    return cases


BAD_SCALARS = {
    "reg": [0.0, -1.0, float("nan"), float("inf"), "0.1", None, True, np.ones(3), 1j],
    "method": ["sinkhorn_fast", 3, None, "Sinkhorn"],
    "numItermax": [-1, 2.5, "100", None, True, float("inf")],
    "stopThr": [-1.0, float("nan"), float("inf"), "small", None, np.ones(2)],
    "log": ["yes", 2, None, []],
    "verbose": ["yes", 2, None, []],
    "warn": ["yes", 2, None, []],
    "mode": ["fast", 1, None],
    "memory_budget": ["1GB", -1, 0, [1], float("nan")],
    "grad": ["none", None, 1],
    "check_every": [0, -1, 1.5, True],
    "relaxation": [0.5, 2.0, "fast", None],
}
KWARG_TYPOS = ["relaxaton", "numIterMax", "tol", "epsilon", "max_iter", "stopthr", "Verbose", "logs"]


def _bad_free(k):
    return [[k], [0, 0], list(range(k)), "0", [1.5], [True], [-k - 1], 3.0]


def _bad_warmstart(k, shape, be):
    good = [to_backend(np.zeros(n), be) for n in shape]
    cases = [
        "x",
        [None] * k,
        good[:-1],
        [[0.0] * n for n in shape],
        [to_backend(np.zeros(shape[0] + 1), be)] + good[1:],
        [to_backend(np.full(shape[0], np.nan), be)] + good[1:],
        0.0,
    ]
    if be != "numpy":
        cases.append([np.zeros(n) for n in shape])
    return cases


def _expect(fn, name, *args, **kwargs):
    """``fn(*args, **kwargs)`` must raise a documented error naming ``name``."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fn(*args, **kwargs)
    except ERRORS as e:
        assert name in str(e), "%s: %r does not name %r" % (type(e).__name__, str(e), name)
        assert len(str(e)) < 2000  # never a dump of a large array
        return
    except Exception as e:  # anything else is a bug
        raise AssertionError(
            "%s raised %s: %s (expected one of %s naming %r)"
            % (getattr(fn, "__name__", fn), type(e).__name__, e, ERRORS, name)
        ) from e
    raise AssertionError("%s accepted a bad %s" % (getattr(fn, "__name__", fn), name))


@st.composite
def _perturbed_solver_calls(draw):
    fn = draw(st.sampled_from([om.emot_sinkhorn, om.emot_sinkhorn2, om.emot_approx]))
    be = draw(st.sampled_from(BACKENDS))
    k = draw(st.integers(2, 3))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)))
    C = to_backend(np.random.RandomState(1).rand(*shape), be)
    args = dict(a_s=None, M=C, reg=0.5)
    kwargs = {}
    names = [
        "a_s",
        "M",
        "reg",
        "method",
        "numItermax",
        "log",
        "verbose",
        "warn",
        "mode",
        "memory_budget",
        "free",
        "typo",
    ]
    if fn is not om.emot_approx:
        names += ["stopThr", "grad", "check_every", "relaxation", "warmstart"]
    arg = draw(st.sampled_from(names))
    if arg == "a_s":
        args["a_s"] = draw(st.sampled_from(_bad_weights(k, shape, be, None)))
        if isinstance(args["a_s"], str):  # the string itself, not a list
            args["a_s"] = "uniform"
    elif arg == "M":
        args["M"] = draw(st.sampled_from(_bad_cost(shape, be)))
    elif arg == "reg":
        args["reg"] = draw(st.sampled_from(BAD_SCALARS["reg"]))
    elif arg == "free":
        kwargs["free"] = draw(st.sampled_from(_bad_free(k)))
    elif arg == "warmstart":
        kwargs["warmstart"] = draw(st.sampled_from(_bad_warmstart(k, shape, be)))
    elif arg == "typo":
        arg = draw(st.sampled_from(KWARG_TYPOS))
        kwargs[arg] = 1
    else:
        kwargs[arg] = draw(st.sampled_from(BAD_SCALARS[arg]))
        if arg in ("check_every", "relaxation"):
            kwargs["method"] = "sinkhorn_log"
    name = {"reg": "eps_accuracy" if fn is om.emot_approx else "reg"}.get(arg, arg)
    return fn, args, kwargs, name


@settings(max_examples=_examples(12))
@given(_perturbed_solver_calls())
def test_invalid_solver_arguments_are_named(case):
    fn, args, kwargs, name = case
    _expect(fn, name, args["a_s"], args["M"], args["reg"], **kwargs)


@st.composite
def _perturbed_other_calls(draw):
    be = draw(st.sampled_from(BACKENDS))
    k = draw(st.integers(2, 3))
    shape = tuple(draw(st.lists(st.integers(1, 3), min_size=k, max_size=k)))
    rng = np.random.RandomState(2)
    X_s = [to_backend(rng.rand(n, 2), be) for n in shape]
    C = to_backend(rng.rand(*shape), be)
    which = draw(
        st.sampled_from(
            [
                "lp_a_s",
                "lp_M",
                "lp_flag",
                "lp_free",
                "lp_budget",
                "clouds",
                "metric",
                "cloud_budget",
                "emp_typo",
                "emp_reg",
                "emp_a_s",
                "chain",
                "round_X",
                "round_a_s",
                "plan_axis",
                "plan_samples",
                "plan_idx",
                "plan_budget",
            ]
        )
    )
    if which == "lp_a_s":
        return om.emot_lp2, (draw(st.sampled_from(_bad_weights(k, shape, be, None))), C), {}, "a_s"
    if which == "lp_M":
        return om.emot_lp2, (None, draw(st.sampled_from(_bad_cost(shape, be)))), {}, "M"
    if which == "lp_flag":
        flag = draw(st.sampled_from(["log", "verbose"]))
        return om.emot_lp2, (None, C), {flag: draw(st.sampled_from(["yes", 2, None]))}, flag
    if which == "lp_free":
        return om.emot_lp, (None, C), {"free": draw(st.sampled_from(_bad_free(k)))}, "free"
    if which == "lp_budget":
        return (
            om.emot_lp2,
            (None, C),
            {"memory_budget": draw(st.sampled_from(BAD_SCALARS["memory_budget"]))},
            "memory_budget",
        )
    if which == "clouds":
        bad = draw(
            st.sampled_from(
                [
                    "X",
                    X_s[0],
                    X_s[:1],
                    X_s[:-1] + [to_backend(np.ones(3), be)],
                    X_s[:-1] + [None],
                    X_s[:-1] + [to_backend(np.full((2, 2), np.nan), be)],
                    X_s[:-1] + [to_backend(np.ones((0, 2)), be)],
                    X_s[:-1] + [[[1.0, 2.0]]],
                ]
            )
        )
        return om.cost_tensor, (bad,), {}, "X_s"
    if which == "metric":
        return (
            om.cost_tensor,
            (X_s,),
            {"metric": draw(st.sampled_from(["eucl", "l2", 3, None, "sqEuclidean"]))},
            "metric",
        )
    if which == "cloud_budget":
        return (
            om.cost_tensor,
            (X_s,),
            {"memory_budget": draw(st.sampled_from(BAD_SCALARS["memory_budget"]))},
            "memory_budget",
        )
    if which == "emp_typo":
        typo = draw(st.sampled_from(KWARG_TYPOS))
        return om.empirical_emot_sinkhorn2, (X_s, 0.5), {typo: 1}, typo
    if which == "emp_reg":
        return om.empirical_emot_sinkhorn2, (X_s, draw(st.sampled_from(BAD_SCALARS["reg"]))), {}, "reg"
    if which == "emp_a_s":
        return (
            om.empirical_emot_sinkhorn,
            (X_s, 0.5),
            {"a_s": draw(st.sampled_from(_bad_weights(k, shape, be, None)[1:]))},
            "a_s",
        )
    if which == "chain":
        mats = [to_backend(rng.rand(shape[t], shape[t + 1]), be) for t in range(k - 1)]
        arg = draw(st.sampled_from(["matrices", "shape", "free"]))
        if arg == "matrices":
            bad = draw(
                st.sampled_from(
                    [
                        "M",
                        mats[0],
                        [],
                        [to_backend(np.full(mats[0].shape, np.nan), be)] + mats[1:],
                        [to_backend(np.ones(3), be)] + mats[1:],
                        [mats[0].tolist()] + mats[1:],
                        [to_backend(np.ones((shape[0], shape[1] + 1)), be), to_backend(np.ones((shape[1], 2)), be)]
                        if k == 3
                        else [to_backend(np.ones((0, 2)), be)],
                    ]
                )
            )
            return om.PairwiseCost.chain, (bad,), {}, "matrices"
        if arg == "shape":
            bad = draw(st.sampled_from([(1.5,) * k, "abc", tuple(shape[:-1]) + (0,), 3]))
            return om.PairwiseCost.chain, (mats,), {"shape": bad}, "shape"
        return om.PairwiseCost.chain, (mats,), {"free": draw(st.sampled_from(_bad_free(k)))}, "free"
    if which == "round_X":
        X = to_numpy(C) / to_numpy(C).sum()
        neg = X.copy()
        neg.flat[0] = -0.5
        nan = X.copy()
        nan.flat[0] = np.nan
        bad = draw(
            st.sampled_from([X.tolist(), to_backend(neg, be), to_backend(nan, be), to_backend(X.reshape(-1), be), "X"])
        )
        return om.round_dense, (bad, [to_backend(np.ones(n) / n, be) for n in shape]), {}, "X"
    if which == "round_a_s":
        X = to_backend(to_numpy(C) / to_numpy(C).sum(), be)
        return om.round_dense, (X, draw(st.sampled_from(_bad_weights(k, shape, be, None)[1:]))), {}, "a_s"
    # methods of a FactoredPlan
    mats = [to_backend(rng.rand(shape[t], shape[t + 1]), be) for t in range(k - 1)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        P = om.emot_sinkhorn(None, om.PairwiseCost.chain(mats), 0.5, numItermax=5)
    if which == "plan_axis":
        meth = draw(st.sampled_from([P.marginal, lambda i: P.pairwise_marginal(i, 0)]))
        return meth, (draw(st.sampled_from([k, -k - 1, 1.5, "0", True, None])),), {}, "i"
    if which == "plan_samples":
        arg = draw(st.sampled_from(["n_samples", "random_state", "method"]))
        if arg == "n_samples":
            return P.sample, (draw(st.sampled_from([-1, 2.5, "3", None, True])),), {}, "n_samples"
        if arg == "random_state":
            return P.sample, (3,), {"random_state": draw(st.sampled_from(["seed", 1.5, -1]))}, "random_state"
        return P.sample, (3,), {"method": draw(st.sampled_from(["fast", None, 1]))}, "method"
    if which == "plan_idx":
        bad = draw(
            st.sampled_from(
                [
                    np.zeros((2, k + 1), dtype=int),
                    np.full((1, k), 0.5),
                    [[0] * k, [0]],
                    np.full((1, k), 99),
                    np.zeros((2, 2, k), dtype=int),
                    "idx",
                    3,
                ]
            )
        )
        return P.density, (bad,), {}, "idx"
    return P.to_dense, (), {"memory_budget": draw(st.sampled_from(BAD_SCALARS["memory_budget"]))}, "memory_budget"


@settings(max_examples=_examples(12))
@given(_perturbed_other_calls())
def test_invalid_arguments_of_other_calls_are_named(case):
    fn, args, kwargs, name = case
    _expect(fn, name, *args, **kwargs)
