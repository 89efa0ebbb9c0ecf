# -*- coding: utf-8 -*-
"""The API convention (docs/source/conventions.rst, "API convention"), checked on every public signature.

Argument names and order, POT's ``2`` suffix (plan or estimator vs value),
iteration / tolerance / seed names, the ``log`` keys shared by all calls,
the deprecation of old names, and scikit-learn's parameter protocol of the
estimators (every public call, the Gromov-Wasserstein ones included).
"""

import inspect
import warnings

import numpy as np
import pytest

import ot_multimarginal as om

torch = pytest.importorskip("torch")

PUBLIC = [n for n in om.__all__ if not n.startswith("_")]
FUNCTIONS = [n for n in PUBLIC if inspect.isfunction(getattr(om, n))]
ESTIMATORS = [n for n in PUBLIC if inspect.isclass(getattr(om, n)) and hasattr(getattr(om, n), "fit")]


# ---- the table of docs/source/conventions.rst -----------------------------------------------------
# leading positional arguments, by kind of call
LEADING = {
    "emot_sinkhorn": ("a_s", "M", "reg"),
    "emot_lp": ("a_s", "M"),  # exception: no reg (the unregularised LP)
    "emot_approx": ("a_s", "M", "eps_accuracy"),  # exception: an accuracy instead of reg
    "empirical_emot_sinkhorn": ("X_s", "reg", "a_s"),
    "emot_neural": ("X_s", "reg", "a_s"),
    "mgw_sinkhorn": ("X_s", "reg", "a_s"),
    "mgw_neural": ("X_s", "reg", "a_s"),
}
# POT's 2 suffix: foo returns the plan (neural: the fitted estimator), foo2 the value
PAIRS = ["emot_sinkhorn", "empirical_emot_sinkhorn", "emot_lp", "emot_neural", "mgw_sinkhorn", "mgw_neural"]
# documented exceptions: no value/plan pair
NO_PAIR = {
    "emot_approx": "returns the feasible plan and its cost (P, cost), as a certificate needs both",
    "empirical_cost": "builds a cost",
    "cost_tensor": "builds a cost",
    "round_to_feasible": "rounds a plan",
    "round_dense": "rounds a plan",
    "match_from_plan": "reads a plan",
    "blas_threads": "a context manager",
}
# names of the main loop, tolerance and seed
FUNCTION_BANNED = {"n_iter", "max_iter", "tol", "n_outer", "seed", "numIterMax", "stopthr", "n_iter_max"}
ESTIMATOR_BANNED = {"n_iter", "numItermax", "stopThr", "n_outer", "seed"}
SHARED_LOG_KEYS = {"niter", "converged", "value"}
OLD_LOG_KEYS = {"n_iter", "stopped_early"}


def _params(obj):
    target = obj.__init__ if inspect.isclass(obj) else obj
    return [
        p
        for p in inspect.signature(target).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


def _base(name):
    return name[:-1] if name.endswith("2") else name


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_argument_names(name):
    names = [p.name for p in _params(getattr(om, name))]
    assert not FUNCTION_BANNED & set(names), "%s: use numItermax / stopThr / random_state" % name
    lead = LEADING.get(_base(name))
    if lead is not None:
        assert tuple(names[: len(lead)]) == lead, "%s must start with %s" % (name, lead)
    if "graph" in names and "metric" in names:
        assert names.index("graph") < names.index("metric"), "%s: graph comes before metric" % name
    if "graph" in names and lead is not None and lead[0] == "X_s":
        assert dict((p.name, p.default) for p in _params(getattr(om, name)))["graph"] == "complete", (
            "%s: point-cloud calls default to the complete graph (the structured engine)" % name
        )
    if "random_state" in names:
        assert names.index("random_state") > names.index("reg")


@pytest.mark.parametrize("name", ESTIMATORS)
def test_estimator_argument_names(name):
    names = [p.name for p in _params(getattr(om, name))]
    assert names[0] == "reg"
    assert not ESTIMATOR_BANNED & set(names), "%s: estimators use max_iter / tol / random_state" % name
    assert {"max_iter", "tol", "random_state"} <= set(names)


@pytest.mark.parametrize("base", PAIRS)
def test_two_suffix_pairs(base):
    assert base in PUBLIC and base + "2" in PUBLIC
    p1 = [(p.name, p.default) for p in _params(getattr(om, base))]
    p2 = [(p.name, p.default) for p in _params(getattr(om, base + "2"))]
    drop = {"grad"}  # the plan and the value differentiate differently
    assert [p for p in p1 if p[0] not in drop] == [p for p in p2 if p[0] not in drop]


def test_every_function_is_in_a_pair_or_a_documented_exception():
    paired = set(PAIRS) | {n + "2" for n in PAIRS}
    missing = [n for n in FUNCTIONS if n not in paired and n not in NO_PAIR]
    assert missing == []


def test_the_docs_table_lists_every_function():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "source" / "conventions.rst").read_text(encoding="utf-8")
    section = text[text.index("API convention") :]
    for name in FUNCTIONS + ESTIMATORS:
        assert "``%s``" % name in section or ":func:`%s`" % name in section or ":class:`%s`" % name in section, name


# ---- what the calls return and log -------------------------------------------------------------------
def _clouds(k=3, n=12, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(n, 2) for _ in range(k)]


def _calls():
    M = np.random.RandomState(0).rand(3, 4, 5)
    X_s = _clouds()
    quick = dict(numItermax=3, random_state=0)
    return {
        "emot_sinkhorn": lambda f: f(None, M, 0.5, log=True),
        "empirical_emot_sinkhorn": lambda f: f(X_s, 0.5, log=True),
        "emot_lp": lambda f: f(None, M, log=True),
        "emot_neural": lambda f: f(X_s, 1.0, log=True, **quick),
        "mgw_sinkhorn": lambda f: f(X_s, 0.5, log=True, numItermax=2, random_state=0, warn=False),
        "mgw_neural": lambda f: f(X_s, 1.0, log=True, numItermax=1, random_state=0),
    }


def _is_plan_or_estimator(x):
    return (
        isinstance(x, (om.FactoredPlan, om.NeuralEMOT))
        or getattr(x, "ndim", 0) >= 2
        or (hasattr(x, "fit") and hasattr(x, "get_params"))
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("base", PAIRS)
def test_plan_vs_value_and_shared_log_keys(base):
    call = _calls()[base]
    first, log1 = call(getattr(om, base))
    value, log2 = call(getattr(om, base + "2"))
    assert _is_plan_or_estimator(first), "%s returns the plan (or the fitted estimator)" % base
    assert np.ndim(value) == 0 and not _is_plan_or_estimator(value), "%s2 returns the value" % base
    for lg in (log1, log2):
        assert SHARED_LOG_KEYS <= set(lg), sorted(SHARED_LOG_KEYS - set(lg))
        assert isinstance(lg["converged"], (bool, np.bool_))
        assert not OLD_LOG_KEYS & set(lg.keys())


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_iterative_sinkhorn_logs_err_and_potentials():
    M = np.random.RandomState(0).rand(3, 4, 5)
    for f in (om.emot_sinkhorn, om.emot_sinkhorn2):
        _, lg = f(None, M, 0.5, log=True)
        assert {"err", "potentials", "value_linear"} <= set(lg)
        assert isinstance(lg["potentials"], om.Potentials)


# ---- deprecations ----------------------------------------------------------------------------------------
def test_old_neural_names_still_work_with_a_warning():
    X_s = _clouds(n=10)
    with pytest.warns(DeprecationWarning, match="'seed' is deprecated"):
        est = om.NeuralEMOT(1.0, seed=3, n_iter=2)
    assert est.random_state == 3 and est.max_iter == 2
    with pytest.warns(DeprecationWarning):
        assert est.seed == 3
    with pytest.warns(DeprecationWarning, match="'n_iter' is deprecated"):
        _, log = om.emot_neural2(X_s, 1.0, n_iter=2, random_state=0, log=True, eval_every=0)
    assert log["niter"] == 2
    with pytest.warns(DeprecationWarning, match=r"log\['n_iter'\]"):
        assert log["n_iter"] == 2


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_old_positional_metric_of_the_point_cloud_calls():
    X_s = _clouds(n=6)
    with pytest.warns(DeprecationWarning, match="in the place of graph"):
        v_old = om.empirical_emot_sinkhorn2(X_s, 0.5, None, "euclidean", "chain")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        v_new = om.empirical_emot_sinkhorn2(X_s, 0.5, None, "chain", "euclidean")
    assert v_old == v_new


def test_point_cloud_default_is_the_structured_engine_with_the_dense_value():
    X_s = _clouds(n=8)
    P = om.empirical_emot_sinkhorn(X_s, 0.5, stopThr=1e-12)
    assert isinstance(P, om.FactoredPlan)
    v = om.empirical_emot_sinkhorn2(X_s, 0.5, stopThr=1e-12)
    vd = om.empirical_emot_sinkhorn2(X_s, 0.5, graph=None, stopThr=1e-12)
    np.testing.assert_allclose(v, vd, rtol=1e-10)


# ---- scikit-learn's protocol -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ESTIMATORS)
def test_get_params_set_params_clone(name):
    sklearn_base = pytest.importorskip("sklearn.base")
    cls = getattr(om, name)
    est = cls(0.7, random_state=5)
    names = [p.name for p in _params(cls)]
    params = est.get_params(deep=True)
    assert list(est.get_params(deep=False)) == names and set(names) <= set(params)
    assert params["reg"] == 0.7 and params["random_state"] == 5
    other = sklearn_base.clone(est)
    assert other is not est and other.get_params(deep=False) == est.get_params(deep=False)
    assert est.set_params(reg=0.3, max_iter=7) is est and est.reg == 0.3 and est.max_iter == 7
    with pytest.raises(ValueError, match="invalid parameter 'bogus'"):
        est.set_params(bogus=1)
    assert "hand-listed" not in inspect.getsource(cls)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ESTIMATORS)
def test_fit_changes_no_parameter(name, monkeypatch):
    """Neither the estimator's parameters nor those of any estimator built during the fit are assigned by fit."""
    cls = getattr(om, name)
    extra = dict(max_iter=2, random_state=0)
    if name == "NeuralEMOT":
        extra.update(eval_every=0)
    est = cls(1.0, **extra)
    before = {k: repr(v) for k, v in est.get_params(deep=True).items()}
    assigned = []
    params = {c: [p.name for p in _params(c)] for c in (getattr(om, n) for n in ESTIMATORS)}
    for c in params:
        original = c.__setattr__

        def guard(self, attr, value, _c=c, _original=original):
            if getattr(self, "_init_done", False) and attr in params[_c]:
                assigned.append((type(self).__name__, attr))
            _original(self, attr, value)

        init = c.__init__

        def init_then_flag(self, *args, _init=init, **kwargs):
            _init(self, *args, **kwargs)
            object.__setattr__(self, "_init_done", True)

        monkeypatch.setattr(c, "__setattr__", guard)
        monkeypatch.setattr(c, "__init__", init_then_flag)
        # the constructor's parameters, read before its signature is hidden by the wrapper
        monkeypatch.setattr(c, "_get_param_names", classmethod(lambda k, _n=tuple(params[c]): list(_n)), raising=False)
    object.__setattr__(est, "_init_done", True)
    est.fit(_clouds(n=10))
    after = {k: repr(v) for k, v in est.get_params(deep=True).items()}
    assert after == before
    assert assigned == [], "fit assigned parameters: %s" % assigned


def test_warm_copy_refits_without_assigning_parameters():
    est = om.NeuralEMOT(1.0, max_iter=2, eval_every=0, random_state=0).fit(_clouds(n=10))
    before = est.get_params(deep=False)
    new = est._warm_copy(max_iter=3, lr=0.05)
    assert est.get_params(deep=False) == before
    assert new.max_iter == 3 and new.lr == 0.05 and new.warm_start and new.reg == 1.0
    assert new.potentials_ is not est.potentials_
    for a, b in zip(new.potentials_.state_dict().values(), est.potentials_.state_dict().values()):
        assert torch.equal(a, b)
    new.fit(_clouds(n=10))
    assert new.n_iter_ == 3 and est.n_iter_ == 2
