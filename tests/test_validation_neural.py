# -*- coding: utf-8 -*-
"""Reliability, second pass (issue 24): the neural, GW and point-cloud surface refuses bad input clearly.

Each test is one defect of the issue: a raw library error, a silent wrong answer or a message that did not
point to the fix. Every error must be a ``TypeError`` / ``ValueError`` naming the argument.
"""

import os
import warnings

import numpy as np
import pytest

import ot_multimarginal as om

torch = pytest.importorskip("torch")

from ot_multimarginal.neural import NeuralEMOT, NeuralMGW, emot_neural, emot_neural2, mgw_neural  # noqa: E402

EST_FAST = dict(max_iter=2, eval_every=0, patience=None, random_state=0)
FAST = dict(numItermax=2, eval_every=0, patience=None, random_state=0)
MGW_FAST = dict(init="zero", numItermax=1, numItermaxInner=2, max_iter_refit=2, n_moment_batches=2, random_state=0)
MGW_EST_FAST = dict(init="zero", max_iter=1, max_iter_inner=2, max_iter_refit=2, n_moment_batches=2, random_state=0)


@pytest.fixture(scope="module")
def clouds():
    rng = np.random.RandomState(0)
    return [rng.randn(20, 2) + 0.2 * i for i in range(3)]


@pytest.fixture(scope="module")
def fitted(clouds):
    return NeuralEMOT(1.0, **EST_FAST).fit(clouds)


# ---------------------------------------------------------------- devices
@pytest.mark.parametrize("device", ["gpu", "cuda:99", "tpu0"])
def test_bad_device_is_a_value_error_naming_device(clouds, fitted, tmp_path, device):
    if device == "cuda:99" and torch.cuda.device_count() > 99:  # pragma: no cover
        pytest.skip("100 GPUs")
    with pytest.raises(ValueError, match="device"):
        NeuralEMOT(1.0, device=device, **EST_FAST).fit(clouds)
    with pytest.raises(ValueError, match="device"):
        emot_neural(clouds, 1.0, device=device, **FAST)
    with pytest.raises(ValueError, match="device"):
        mgw_neural(clouds, 1.0, device=device, **MGW_FAST)
    path = tmp_path / "est.pt"
    fitted.save(path)
    with pytest.raises(ValueError, match="device"):
        NeuralEMOT.load(path, device=device)


def test_gpu_suggests_cuda(clouds):
    with pytest.raises(ValueError, match="did you mean 'cuda'"):
        NeuralEMOT(1.0, device="gpu", **EST_FAST).fit(clouds)


# ---------------------------------------------------------------- mixed libraries
def test_mixed_numpy_torch_inputs_are_the_documented_type_error(clouds):
    n = clouds[0].shape[0]
    a_torch = [torch.full((n,), 1.0 / n, dtype=torch.float64)] * 3
    a_np = [np.full(n, 1.0 / n)] * 3
    X_torch = [torch.tensor(X) for X in clouds]
    for call in (
        lambda X, a: emot_neural(X, 1.0, a_s=a, **FAST),
        lambda X, a: mgw_neural(X, 1.0, a_s=a, **MGW_FAST),
        lambda X, a: om.mgw_sinkhorn(X, 1.0, a_s=a, numItermax=2),
        lambda X, a: om.empirical_emot_sinkhorn2(X, 1.0, a_s=a),
    ):
        with pytest.raises(TypeError, match=r"same library.*a_s\[0\]"):
            call(clouds, a_torch)  # silently accepted before
        with pytest.raises(TypeError, match=r"same library.*a_s\[0\]"):
            call(X_torch, a_np)  # AttributeError from the backend before


# ---------------------------------------------------------------- estimator parameters
@pytest.mark.parametrize(
    "kw,exc,name",
    [
        (dict(dtype=torch.int32), TypeError, "dtype"),
        (dict(dtype="float32"), TypeError, "dtype"),
        (dict(tol=-1), ValueError, "tol"),
        (dict(tol=float("nan")), ValueError, "tol"),
        (dict(replace="yes"), TypeError, "replace"),
        (dict(verbose="yes"), TypeError, "verbose"),
        (dict(warm_start="no"), TypeError, "warm_start"),
        (dict(checkpoint_dir=5), TypeError, "checkpoint_dir"),
    ],
)
def test_estimator_parameters_are_checked(clouds, kw, exc, name):
    with pytest.raises(exc, match=name):
        NeuralEMOT(1.0, **dict(EST_FAST, **kw)).fit(clouds)


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(lr=-1.0), "lr"),
        (dict(estimator="combinatorical"), "estimator"),
        (dict(width=0), "width"),
        (dict(dtype=torch.int64), "dtype"),
        (dict(verbose="yes"), "verbose"),
    ],
)
def test_mgw_neural_checks_every_argument_before_start_screening(clouds, monkeypatch, kw, name):
    """init='auto' screens starts with mgw_sinkhorn (seconds): the arguments must be refused before."""
    import ot_multimarginal.neural.gromov as ng

    def no_screening(*args, **kwargs):
        raise AssertionError("the start screening ran before the arguments were checked")

    monkeypatch.setattr(ng, "mgw_sinkhorn", no_screening)
    with pytest.raises((TypeError, ValueError), match=name):
        mgw_neural(clouds, 1.0, init="auto", numItermaxInner=2, **kw)
    with pytest.raises((TypeError, ValueError), match=name):
        NeuralMGW(1.0, init="auto", max_iter_inner=2, **kw).fit(clouds)


# ---------------------------------------------------------------- queries of a fitted estimator
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_queries_refuse_non_finite_points(fitted, bad):
    x = np.array([[0.0, 0.0], [bad, 1.0]])
    with pytest.raises(ValueError, match=r"x contains NaN or inf"):
        fitted.potential(0, x)
    with pytest.raises(ValueError, match=r"x contains NaN or inf"):
        fitted.potential(0, torch.tensor(x))
    with pytest.raises(ValueError, match=r"xs\[1\] contains NaN or inf"):
        fitted.plan_density(np.zeros((2, 2)), x, np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"X_j contains NaN or inf"):
        fitted.pairwise_plan(0, 1, np.zeros((2, 2)), x)


def test_queries_refuse_nested_lists_with_a_type_error(fitted):
    with pytest.raises(TypeError, match=r"x must be a NumPy array or torch tensor.*np.asarray"):
        fitted.potential(0, [[0.0, 0.0]])
    with pytest.raises(TypeError, match=r"xs\[0\]"):
        fitted.plan_density([[0.0, 0.0]], np.zeros((1, 2)), np.zeros((1, 2)))


def test_mgw_queries_refuse_non_finite_points(clouds):
    est = NeuralMGW(1.0, warn=False, **MGW_EST_FAST).fit(clouds)
    with pytest.raises(ValueError, match=r"X_1 contains NaN or inf"):
        est.pairwise_plan(0, 1, clouds[0][:3], np.full((3, 2), np.nan))
    with pytest.raises(TypeError, match=r"X_0"):
        est.match(0, 1, [[0.0, 0.0]], clouds[1][:1])


# ---------------------------------------------------------------- save / load paths
def test_save_paths_are_checked(fitted, tmp_path):
    with pytest.raises(ValueError, match=r"path=.*does not exist.*os.makedirs"):
        fitted.save(tmp_path / "missing" / "est.pt")
    with pytest.raises(ValueError, match=r"path=.*is a directory"):
        fitted.save(tmp_path)
    with pytest.raises(TypeError, match=r"path must be a file path"):
        fitted.save(None)
    with pytest.raises(TypeError, match=r"path must be the path"):
        NeuralEMOT.load(None)
    with pytest.raises(ValueError, match=r"path=.*no such file"):
        NeuralEMOT.load(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"is a directory"):
        NeuralMGW.load(tmp_path)
    fitted.save(tmp_path / "ok.pt")  # and a good path still works
    assert NeuralEMOT.load(tmp_path / "ok.pt").value_ == fitted.value_


# ---------------------------------------------------------------- half precision
def test_float16_clouds_get_accurate_uniform_weights(clouds):
    X16 = [X.astype(np.float16) for X in clouds]
    X64 = [X.astype(np.float64) for X in X16]  # the same points
    # mgw_sinkhorn blamed a_s (uniform weights built in float16 do not sum to one)
    v16 = om.mgw_sinkhorn2(X16, 1.0, init="zero", numItermax=3)
    v64 = om.mgw_sinkhorn2(X64, 1.0, init="zero", numItermax=3)
    assert np.isfinite(float(v16)) and float(v16) == pytest.approx(float(v64), rel=1e-4)
    # emot_neural gave another value than for the same points in float64
    assert emot_neural2(X16, 1.0, **FAST) == pytest.approx(emot_neural2(X64, 1.0, **FAST), rel=1e-6)
    t16 = [torch.tensor(X, dtype=torch.float16) for X in X16]
    vt = om.empirical_emot_sinkhorn2(t16, 1.0)
    assert vt.dtype == torch.float32 and float(vt) == pytest.approx(
        float(om.empirical_emot_sinkhorn2(X64, 1.0)), rel=1e-4
    )


# ---------------------------------------------------------------- rounding and emot_approx
def test_round_to_feasible_refuses_nan_log_scalings():
    from ot_multimarginal.rounding import round_to_feasible

    M = np.random.RandomState(0).rand(3, 4, 5)
    a_s = [np.full(n, 1.0 / n) for n in M.shape]
    engine = om.PairwiseCost.from_point_clouds(
        [np.random.RandomState(i).randn(n, 1) for i, n in enumerate(M.shape)], graph="chain"
    ).make_engine(1.0)
    g = [np.full(n, np.nan) for n in M.shape]
    with pytest.raises(ValueError, match=r"g\[0\] contains NaN"):
        round_to_feasible(engine, g, a_s)
    g = [np.zeros(n) for n in M.shape]
    g[1][:] = -np.inf
    with pytest.raises(ValueError, match=r"g\[1\] is -inf everywhere"):
        round_to_feasible(engine, g, a_s)


@pytest.mark.parametrize("eps", [0.0, -1.0, float("nan"), float("inf")])
def test_emot_approx_refuses_bad_eps_accuracy(eps):
    M = np.random.RandomState(0).rand(3, 3, 3)
    for method in ("sinkhorn", "sinkhorn_log", "sinkhorn_accelerated"):
        with pytest.raises(ValueError, match="eps_accuracy"):
            om.emot_approx(None, M, eps, method=method)


def test_boolean_weights_say_what_to_pass():
    M = np.random.RandomState(0).rand(3, 3, 3)
    with pytest.raises(TypeError, match=r"a_s\[0\].*bool.*astype\(float\) / mask.sum\(\)"):
        om.emot_sinkhorn([np.ones(3, bool), None, None], M, 1.0)


# ---------------------------------------------------------------- error messages that point to the fix
@pytest.mark.parametrize(
    "key,expected",
    [("stopthr", "stopThr"), ("numIterMax", "numItermax"), ("warmStart", "warmstart"), ("checkevery", "check_every")],
)
def test_mistyped_keyword_suggests_the_closest_name(key, expected):
    M = np.random.RandomState(0).rand(3, 3, 3)
    with pytest.raises(
        TypeError,
        match=r"emot_sinkhorn\(\) got an unexpected keyword argument %r "
        r"\(did you mean %r\?\)" % (key, expected),
    ):
        om.emot_sinkhorn(None, M, 1.0, **{key: 1})


def test_mgw_sinkhorn_reports_its_own_keyword_errors(clouds):
    with pytest.raises(
        TypeError,
        match=r"^mgw_sinkhorn\(\) got an unexpected keyword argument 'stopthr' "
        r"\(did you mean 'stopThr'\?\)",
    ):
        om.mgw_sinkhorn(clouds, 1.0, stopthr=1e-3)
    with pytest.raises(TypeError, match=r"^mgw_sinkhorn\(\).*'relaxaton' \(did you mean 'relaxation'\?\)"):
        om.mgw_sinkhorn(clouds, 1.0, method="sinkhorn_log", relaxaton=1.5)
    om.mgw_sinkhorn(
        clouds, 1.0, init="zero", method="sinkhorn_log", relaxation=1.2, numItermax=1, numItermaxInner=20
    )  # valid option


def test_point_cloud_calls_speak_of_points(clouds):
    a_s = [np.full(19, 1 / 19), None, None]
    for call in (
        lambda: om.mgw_sinkhorn(clouds, 1.0, a_s=a_s),
        lambda: om.empirical_emot_sinkhorn2(clouds, 1.0, a_s=a_s),
        lambda: om.empirical_emot_sinkhorn(clouds, 1.0, a_s=a_s),
        lambda: emot_neural(clouds, 1.0, a_s=a_s, **FAST),
    ):
        with pytest.raises(ValueError, match=r"a_s\[0\] has length 19 but X_s\[0\] has 20 points"):
            call()


def test_pot_stabilized_method_points_to_sinkhorn_log():
    M = np.random.RandomState(0).rand(3, 3, 3)
    with pytest.raises(ValueError, match=r"POT's 'sinkhorn_stabilized': use 'sinkhorn_log'"):
        om.emot_sinkhorn(None, M, 1.0, method="sinkhorn_stabilized")
    with pytest.raises(ValueError, match=r"use 'sinkhorn_log'"):
        om.emot_sinkhorn2(None, M, 1.0, method="sinkhorn_epsilon_scaling")


def test_float32_non_convergence_recommends_float64():
    """float32 stalls just above its resolution (the default stopThr is raised to 10 k eps) where float64
    converges in 10 sweeps: the warning must say float64, not more iterations."""
    # n = 120: the float32 rounding of the 1.7e6-entry sums stalls the error at 2-3x the floor on every CPU
    # tried (n = 60 reaches the floor on some and stalls on others: the summation order decides)
    M = torch.tensor(np.random.RandomState(0).rand(120, 120, 120), dtype=torch.float32)
    with pytest.warns(UserWarning, match=r"did not converge.*In float32.*use float64"):
        om.emot_sinkhorn(None, M, 0.05, numItermax=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        om.emot_sinkhorn(None, M.double(), 0.05, numItermax=100)  # the fix works
    # a plain lack of iterations keeps the usual advice
    with pytest.warns(UserWarning, match="numItermax") as rec:
        om.emot_sinkhorn(None, M, 0.05, numItermax=1)  # still falling fast: iterations
    assert not any("float64" in str(w.message) for w in rec)


def test_valid_calls_still_work(clouds, tmp_path):
    """The checks refuse nothing valid: torch weights with torch clouds, a path-like save, device='cpu'."""
    X = [torch.tensor(x) for x in clouds]
    a = [torch.full((20,), 0.05, dtype=torch.float64)] * 3
    est = NeuralEMOT(1.0, device="cpu", dtype=torch.float64, tol=0.0, replace=True, verbose=False, **EST_FAST).fit(X, a)
    est.save(str(tmp_path / "e.pt"))
    est2 = NeuralEMOT.load(os.fspath(tmp_path / "e.pt"), device=torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(est2.potential(0, X[0])).all()
