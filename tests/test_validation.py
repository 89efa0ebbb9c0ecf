# -*- coding: utf-8 -*-
"""Argument checks of the public calls (issue 16) and POT habits (issue 15, friction 6).

Each known failure of the adversarial battery has a test here: the call
either does the documented thing (casts, aliases, uniform weights) or raises
a ``TypeError``/``ValueError`` (``MemoryError`` for size) whose message names
the argument. The random counterpart is ``tests/test_properties.py``.
"""

import warnings

import numpy as np
import pytest

import ot_multimarginal as om
from ot_multimarginal import PairwiseCost, emot_sinkhorn, emot_sinkhorn2, round_dense

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def _marg(P, i):
    P = np.asarray(P)
    return P.sum(axis=tuple(j for j in range(P.ndim) if j != i))


# ---------------------------------------------------------------- POT habits (issue 15, friction 6)
def test_pot_two_marginal_signature_says_pass_a_list(nx):
    rng = np.random.RandomState(0)
    a, b, M = nx.array(np.ones(3) / 3), nx.array(np.ones(4) / 4), nx.array(rng.rand(3, 4))
    for fn in (emot_sinkhorn, emot_sinkhorn2):
        with pytest.raises(TypeError, match=r"\[a, b\]") as info:
            fn(a, b, M, 0.1)
        assert "0." not in str(info.value).split("Call")[0][-40:]  # no dump of M
        assert len(str(info.value)) < 400
    with pytest.raises(TypeError, match=r"emot_lp2\(\[a, b\], M\)"):
        om.emot_lp2(a, b, M)
    # the right call works and matches POT's value convention (entropic term included)
    v = emot_sinkhorn2([a, b], M, 0.1)
    assert np.isfinite(float(nx.np(v)))


def test_method_sinkhorn_is_the_cyclic_default(nx):
    M = nx.array(np.random.RandomState(1).rand(3, 4, 5))
    v1, log1 = emot_sinkhorn2(None, M, 0.1, method="sinkhorn", log=True)
    v2 = emot_sinkhorn2(None, M, 0.1)
    assert log1["method"] == "sinkhorn_log"
    assert float(nx.np(v1)) == pytest.approx(float(nx.np(v2)), abs=1e-12)
    P = om.emot_approx(
        None,
        nx.array(np.random.RandomState(1).rand(3, 4, 5))
        if not nx.float32
        else nx.array(np.random.RandomState(1).rand(3, 4, 5)).double(),
        0.5,
        method="sinkhorn",
    )[0]
    assert P.shape == (3, 4, 5)


@pytest.mark.parametrize("fn", [emot_sinkhorn, emot_sinkhorn2])
def test_mistyped_keyword_reported_by_public_call(fn):
    M = np.random.RandomState(2).rand(3, 4, 5)
    with pytest.raises(
        TypeError,
        match=r"%s\(\) got an unexpected keyword argument 'relaxaton'.*"
        r"did you mean 'relaxation'.*check_every, relaxation" % fn.__name__,
    ):
        fn(None, M, 0.1, relaxaton=1.5)
    # an option of another method names the method that was chosen
    with pytest.raises(TypeError, match=r"'L'.*method='sinkhorn_greedy'.*print_every"):
        fn(None, M, 0.1, method="sinkhorn_greedy", L=2.0)
    fn(None, M, 0.1, method="sinkhorn_accelerated", L=3.0, numItermax=5, warn=False)


def test_mistyped_keyword_point_clouds_and_approx():
    X = [np.random.RandomState(i).rand(4, 2) for i in range(3)]
    with pytest.raises(
        TypeError,
        match=r"empirical_emot_sinkhorn2\(\) got an unexpected keyword argument "
        r"'numIterMax'.*did you mean 'numItermax'",
    ):
        om.empirical_emot_sinkhorn2(X, 0.5, numIterMax=10)
    with pytest.raises(TypeError, match=r"empirical_emot_sinkhorn\(\).*'stopthr'"):
        om.empirical_emot_sinkhorn(X, 0.5, stopthr=1e-3)
    # the keywords of emot_sinkhorn and of the loop pass through
    om.empirical_emot_sinkhorn2(X, 0.5, numItermax=20, stopThr=1e-6, check_every=5, warn=False)
    with pytest.raises(TypeError, match=r"emot_approx\(\) got an unexpected keyword argument 'tol'"):
        om.emot_approx(None, np.random.RandomState(0).rand(3, 4, 5), 0.1, tol=1e-3)


def test_empty_or_none_weights_are_uniform(nx):
    M = nx.array(np.random.RandomState(3).rand(3, 4, 5))
    ref = float(nx.np(emot_sinkhorn2(None, M, 0.2)))
    for a_s in ([[], [], []], [None, None, None], [None, [], nx.array(np.ones(5) / 5)]):
        assert float(nx.np(emot_sinkhorn2(a_s, M, 0.2))) == pytest.approx(ref, abs=nx.tol(1e-10))
    assert float(nx.np(om.emot_lp2([[], None, []], M))) == pytest.approx(float(nx.np(om.emot_lp2(None, M))))


def test_emot_lp_verbose(capfd):
    M = np.random.RandomState(4).rand(3, 4, 5)
    v = om.emot_lp2(None, M, verbose=True)
    out = capfd.readouterr().out
    assert "HiGHS" in out
    assert float(v) == pytest.approx(float(om.emot_lp2(None, M)))
    with pytest.raises(TypeError, match="verbose"):
        om.emot_lp(None, M, verbose="yes")


# ---------------------------------------------------------------- the known failures of issue 16
@needs_torch
@pytest.mark.parametrize("graph", ["chain", "circle"])
def test_float32_round_keeps_or_warns_exact_marginals(graph):
    """float32 at reg = 1e-3 / 1e-4, costs in [0, 100]: round() never misses its marginals silently."""
    rng = np.random.RandomState(0)
    k, n = 4, 8
    for reg in (1e-3, 1e-4):
        mats = [torch.tensor(rng.rand(n, n) * 100, dtype=torch.float32) for _ in range(k - (graph == "chain"))]
        C = PairwiseCost.from_matrices(mats, graph=graph)
        P = _quiet(emot_sinkhorn, None, C, reg, numItermax=200)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            R = P.round()
        err = sum(float((R.marginal(i) - 1.0 / n).abs().sum()) for i in range(k))
        msgs = [str(w.message) for w in rec if "round()" in str(w.message)]
        if err > 1e3 * k * np.finfo(np.float32).eps:
            assert msgs, "round() missed its marginals by %g without a warning" % err
            assert "%.3g" % err in msgs[0]  # the figure reached
            assert rec[0].filename == __file__  # points at the user's line
        # round_dense on the same plan is exact to float32 resolution
        D = round_dense(P.to_dense(), [torch.ones(n) / n] * k)
        for i in range(k):
            assert float((D.sum(dim=tuple(j for j in range(k) if j != i)) - 1.0 / n).abs().sum()) < 1e-6


def test_float64_round_does_not_warn():
    rng = np.random.RandomState(1)
    C = PairwiseCost.chain([rng.rand(6, 6) * 100 for _ in range(3)])
    P = _quiet(emot_sinkhorn, None, C, 1e-3, numItermax=50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R = P.round()
    assert float(R.marginal_error()) < 1e-10


@needs_torch
@pytest.mark.parametrize("grad", ["autodiff", "envelope"])
def test_gradient_with_zero_weights_is_finite(grad):
    rng = np.random.RandomState(0)
    M = torch.tensor(rng.rand(3, 4, 5))
    a = torch.tensor([0.5, 0.5, 0.0], requires_grad=True)
    v = emot_sinkhorn2([a, None, None], M, 0.1, grad=grad)
    (g,) = torch.autograd.grad(v, a)
    assert torch.all(torch.isfinite(g))
    # on the positive entries, autodiff and envelope agree up to a constant (mass-preserving directions)
    if grad == "autodiff":
        ge = torch.autograd.grad(emot_sinkhorn2([a, None, None], M, 0.1, grad="envelope"), a)[0]
        assert float((g[0] - g[1]) - (ge[0] - ge[1])) == pytest.approx(0.0, abs=1e-6)


def test_weights_cast_to_cost_dtype(nx):
    M = nx.array(np.random.RandomState(5).rand(3, 4, 5))
    a64 = np.ones(3) / 3
    a = torch.tensor(a64, dtype=torch.float64) if nx.is_torch else a64
    v = emot_sinkhorn2([a, None, None], M, 0.1)
    assert v.dtype == M.dtype
    P = emot_sinkhorn([a, None, None], M, 0.1)
    assert P.dtype == M.dtype
    # integer weights are cast too (here 1/1: a single point)
    M1 = nx.array(np.random.RandomState(5).rand(1, 4))
    one = torch.tensor([1]) if nx.is_torch else np.array([1])
    assert emot_sinkhorn2([one, None], M1, 0.1).dtype == M1.dtype
    with pytest.raises(TypeError, match=r"a_s\[0\].*dtype"):
        emot_sinkhorn2([one > 0, None], M1, 0.1)


@pytest.mark.parametrize("lib", ["numpy", "torch"])
@pytest.mark.parametrize("graph", [None, "chain"])
def test_integer_point_clouds_are_cast(lib, graph):
    if lib == "torch" and torch is None:
        pytest.skip("torch not installed")
    rng = np.random.RandomState(6)
    X = [rng.randint(0, 5, (4, 2)) for _ in range(3)]
    Xf = [x.astype(float) for x in X]
    if lib == "torch":
        X = [torch.tensor(x) for x in X]
        Xf = [torch.tensor(x, dtype=torch.get_default_dtype()) for x in Xf]
    v = om.empirical_emot_sinkhorn2(X, 5.0, graph=graph)
    vf = om.empirical_emot_sinkhorn2(Xf, 5.0, graph=graph)
    assert v.dtype == vf.dtype
    assert float(v) == pytest.approx(float(vf), rel=1e-6)
    C = om.cost_tensor(X)
    assert C.dtype == vf.dtype


@needs_torch
def test_mixed_float_clouds_use_the_widest():
    rng = np.random.RandomState(7)
    X = [torch.tensor(rng.rand(4, 2), dtype=torch.float32), torch.tensor(rng.rand(3, 2), dtype=torch.float64)]
    assert om.cost_tensor(X).dtype == torch.float64


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_unknown_metric_lists_valid_names(lib):
    if lib == "torch" and torch is None:
        pytest.skip("torch not installed")
    rng = np.random.RandomState(8)
    X = [rng.rand(4, 2) for _ in range(3)]
    if lib == "torch":
        X = [torch.tensor(x) for x in X]
    for call in (
        lambda: om.cost_tensor(X, metric="eucldean"),
        lambda: om.empirical_emot_sinkhorn2(X, 1.0, metric="foo", graph="chain"),
    ):
        with pytest.raises(ValueError, match=r"metric.*sqeuclidean") as info:
            call()
        assert str(info.value)
    with pytest.raises(ValueError, match="did you mean 'euclidean'"):
        om.cost_tensor(X, metric="eucldean")
    with pytest.raises(TypeError, match="metric"):
        om.cost_tensor(X, metric=3)


@needs_torch
@pytest.mark.parametrize(
    "bad, exc, match",
    [
        ([[0.0] * 3, [0.0] * 4, [0.0] * 5], TypeError, r"warmstart\[0\] must be a torch tensor"),
        ([None] * 3, TypeError, r"warmstart\[0\].*got None"),
        ([0.0, 0.0, 0.0], TypeError, r"warmstart\[0\].*got 0.0"),
        ([np.zeros(3), np.zeros(4), np.zeros(5)], TypeError, r"warmstart\[0\] must come from the same library"),
        ("nan", ValueError, r"warmstart\[1\] contains NaN"),
        ("two", ValueError, "warmstart must be a list of 3"),
        (np.zeros(3), TypeError, "warmstart must be a list"),
        ("shape", ValueError, r"warmstart\[1\] must have shape \(4,\)"),
    ],
)
def test_bad_warmstart(bad, exc, match):
    M = torch.tensor(np.random.RandomState(9).rand(3, 4, 5))
    if isinstance(bad, str):  # torch tensors built here: the module must import without torch
        bad = {
            "nan": [torch.zeros(3), torch.full((4,), float("nan")), torch.zeros(5)],
            "two": [torch.zeros(3), torch.zeros(4)],
            "shape": [torch.zeros(3), torch.zeros(5), torch.zeros(5)],
        }[bad]
    with pytest.raises(exc, match=match):
        emot_sinkhorn2(None, M, 0.1, warmstart=bad)


def test_warmstart_cast_to_cost_dtype(nx):
    M = nx.array(np.random.RandomState(10).rand(3, 4, 5))
    _, log = emot_sinkhorn2(None, M, 0.1, log=True)
    pots = log["potentials"]
    if nx.is_torch:
        pots = [p.double() if nx.float32 else p.float() for p in pots]
    v, log2 = emot_sinkhorn2(None, M, 0.1, warmstart=pots, log=True)
    assert v.dtype == M.dtype
    assert log2["niter"] <= 10


@pytest.mark.parametrize("case", ["nan", "negative", "masses", "ndim", "type"])
def test_round_dense_validates(nx, case):
    rng = np.random.RandomState(11)
    X = rng.rand(3, 4, 5) / 60
    a_s = [np.ones(n) / n for n in X.shape]
    if case == "nan":
        X[0, 0, 0] = np.nan
        exc, match = ValueError, "X contains NaN"
    elif case == "negative":
        X[0, 1, 0] = -1e-3
        exc, match = ValueError, "X must be non-negative.*-0.001"
    elif case == "masses":
        a_s[2] = 2 * a_s[2]
        exc, match = ValueError, r"a_s must all have the same total mass: a_s\[2\] sums to 2"
    elif case == "ndim":
        X = X[0, 0]
        exc, match = ValueError, "X.ndim"
    else:
        exc, match = TypeError, "X must be a NumPy array or torch tensor"
    Xa = X.tolist() if case == "type" else nx.array(X)
    with pytest.raises(exc, match=match):
        round_dense(Xa, [nx.array(a) for a in a_s])


def test_round_dense_common_mass_not_one():
    rng = np.random.RandomState(12)
    X = rng.rand(3, 4) * 2
    a_s = [np.full(3, 2.0), np.full(4, 1.5)]
    Y = round_dense(X, a_s)
    np.testing.assert_allclose(_marg(Y, 0), 2.0, atol=1e-12)
    np.testing.assert_allclose(_marg(Y, 1), 1.5, atol=1e-12)


@pytest.mark.parametrize(
    "key, method",
    [("check_every", "sinkhorn_log"), ("print_every", "sinkhorn_greedy"), ("print_every", "sinkhorn_accelerated")],
)
@pytest.mark.parametrize("bad, exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_loop_integer_options(key, method, bad, exc):
    M = np.random.RandomState(13).rand(3, 4, 5)
    with pytest.raises(exc, match=key):
        emot_sinkhorn2(None, M, 0.1, method=method, verbose=True, **{key: bad})


# ---------------------------------------------------------------- every argument: named in the message
def test_reg_and_memory_budget_messages_are_short():
    M = np.random.RandomState(14).rand(3, 4)
    with pytest.raises(TypeError, match=r"reg must be a positive float, got a NumPy array of shape \(50, 50\)"):
        emot_sinkhorn2(None, M, np.ones((50, 50)))
    with pytest.raises(TypeError, match="reg"):
        emot_sinkhorn2(None, M, True)
    with pytest.raises(TypeError, match=r"memory_budget must be a number of bytes.*'1GB'"):
        emot_sinkhorn2(None, M, 0.1, memory_budget="1GB")
    with pytest.raises(ValueError, match="memory_budget"):
        emot_sinkhorn2(None, M, 0.1, memory_budget=-5)
    with pytest.raises(TypeError, match="memory_budget"):
        om.cost_tensor([np.ones((2, 1)), np.ones((3, 1))], memory_budget=[1])
    with pytest.raises(TypeError, match="memory_budget"):
        PairwiseCost.chain([np.ones((2, 3))]).to_dense(memory_budget="x")


def test_size_check_before_scanning_a_broadcast_input():
    big = np.broadcast_to(np.zeros(1), (3000, 3000, 3000))  # 2.7e10 entries, one in memory
    with pytest.raises(MemoryError, match="memory budget"):
        emot_sinkhorn2(None, big, 0.1)
    with pytest.raises(MemoryError, match="memory budget"):
        emot_sinkhorn(None, big, 0.1, memory_budget=2**20)
    with pytest.raises(ValueError, match="max_variables"):
        om.emot_lp2(None, big)


def test_empty_axes_and_bad_cost(nx):
    with pytest.raises(ValueError, match="M must have no empty axis"):
        emot_sinkhorn2(None, nx.array(np.zeros((0, 3))), 0.1)
    with pytest.raises(TypeError, match="M must be a NumPy array or torch tensor"):
        emot_sinkhorn2(None, [[1.0, 2.0], [3.0, 4.0]], 0.1)
    with pytest.raises(ValueError, match=r"X_s\[1\] is empty"):
        om.cost_tensor([nx.array(np.ones((2, 1))), nx.array(np.ones((0, 1)))])
    with pytest.raises(ValueError, match=r"matrices\[0\].*empty axis"):
        PairwiseCost.chain([nx.array(np.ones((0, 3)))])


def test_point_cloud_arguments():
    X = [np.random.RandomState(i).rand(4, 2) for i in range(3)]
    with pytest.raises(TypeError, match=r"X_s must be a list"):
        om.cost_tensor(X[0])
    with pytest.raises(TypeError, match=r"X_s\[1\] must be a NumPy array or torch tensor"):
        om.cost_tensor([X[0], "abc"])
    with pytest.raises(ValueError, match=r"X_s\[2\] must be a 2-D array"):
        om.cost_tensor([X[0], X[1], X[2][:, 0]])
    with pytest.raises(ValueError, match=r"X_s must hold at least 2"):
        om.cost_tensor([X[0]])
    bad = X[1].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"X_s\[1\] contains NaN or inf"):
        om.empirical_emot_sinkhorn2([X[0], bad], 0.5)


def test_pairwise_cost_arguments():
    m = np.ones((2, 3))
    with pytest.raises(TypeError, match=r"shape\[1\] must be an integer"):
        PairwiseCost([(0, 1)], [m], shape=(2, 3.5))
    with pytest.raises(ValueError, match=r"shape\[0\] must be an integer >= 1"):
        PairwiseCost([(0, 1)], [m], shape=(0, 3))
    with pytest.raises(ValueError, match="center"):
        PairwiseCost.star([np.ones((2, 3)), np.ones((2, 2))], center=True)
    with pytest.raises(TypeError, match=r"matrices\[0\] must have a real floating dtype"):
        PairwiseCost.chain([np.ones((2, 3), dtype=int)])


def test_factored_plan_method_arguments():
    rng = np.random.RandomState(15)
    P = emot_sinkhorn(None, PairwiseCost.chain([rng.rand(3, 4), rng.rand(4, 2)]), 0.5)
    with pytest.raises(IndexError, match="i must be an axis"):
        P.marginal(True)
    with pytest.raises(IndexError, match="i must be an axis"):
        P.marginal(3)
    with pytest.raises(ValueError, match="two different axes"):
        P.pairwise_marginal(1, 1)
    with pytest.raises(TypeError, match="n_samples"):
        P.sample(2.0)
    with pytest.raises(TypeError, match="n_samples"):
        P.sample(True)
    with pytest.raises(ValueError, match="n_samples"):
        P.sample(-1)
    with pytest.raises(ValueError, match="random_state"):
        P.sample(3, random_state="seed")
    with pytest.raises(ValueError, match="method"):
        P.sample(3, method="fast")
    with pytest.raises(TypeError, match="integers"):
        P.density(np.array([[0.5, 1.0, 0.0]]))
    with pytest.raises(IndexError, match="out of range"):
        P.density(np.array([[0, 4, 0]]))
    with pytest.raises(TypeError, match="memory_budget"):
        P.to_dense(memory_budget="big")


@pytest.mark.parametrize(
    "kw, exc, match",
    [
        (dict(numItermax=1.5), TypeError, "numItermax"),
        (dict(numItermax=-1), ValueError, "numItermax"),
        (dict(stopThr=float("nan")), ValueError, "stopThr"),
        (dict(stopThr="tiny"), TypeError, "stopThr"),
        (dict(log="yes"), TypeError, "log"),
        (dict(verbose=2), TypeError, "verbose"),
        (dict(warn=None), TypeError, "warn"),
        (dict(mode="fast"), ValueError, "mode"),
        (dict(grad="none"), ValueError, "grad"),
        (dict(free=[5]), ValueError, "free"),
        (dict(method=3), ValueError, "method"),
        (dict(relaxation=2.5), ValueError, "relaxation"),
    ],
)
def test_solver_keyword_arguments(kw, exc, match):
    M = np.random.RandomState(16).rand(3, 4, 5)
    for fn in (emot_sinkhorn, emot_sinkhorn2):
        with pytest.raises(exc, match=match):
            fn(None, M, 0.1, **kw)


@needs_torch
@pytest.mark.parametrize("grad", ["envelope", "autodiff"])
def test_float64_weights_with_gradient_into_a_float32_cost(grad):
    """The cast keeps autograd: the gradient reaches the float64 weights, the value is float32."""
    M = torch.tensor(np.random.RandomState(17).rand(3, 4, 5), dtype=torch.float32)
    a = torch.full((3,), 1 / 3, dtype=torch.float64, requires_grad=True)
    v = emot_sinkhorn2([a, None, None], M, 0.5, grad=grad)
    assert v.dtype == torch.float32
    v.backward()
    assert a.grad.dtype == torch.float64 and torch.all(torch.isfinite(a.grad))
    assert float(a.grad.abs().sum()) > 0


def test_index_tuples_and_log_scalings_are_named():
    from ot_multimarginal.plans import FactoredPlan
    from ot_multimarginal.rounding import round_to_feasible
    from ot_multimarginal.sinkhorn import make_engine

    rng = np.random.RandomState(18)
    C = PairwiseCost.chain([rng.rand(2, 3), rng.rand(3, 2)])
    with pytest.raises(IndexError, match="idx: index 5 out of range for axis 1"):
        C.cost_at([0, 5, 1])
    with pytest.raises(ValueError, match=r"idx \(index tuples\) must be an array of shape \(m, 3\)"):
        C.cost_at([0, 1])
    engine, a_s = make_engine(None, C, 0.5)
    g = [np.zeros(n) for n in C.shape]
    with pytest.raises(ValueError, match=r"g\[1\] must have shape \(3,\)"):
        FactoredPlan(engine, [g[0], np.zeros(2), g[2]], a_s)
    with pytest.raises(TypeError, match=r"g must be a list of 3 log-scalings"):
        round_to_feasible(engine, 0.0, a_s)
    with pytest.raises(TypeError, match=r"g\[0\] must be an array"):
        round_to_feasible(engine, [None] + g[1:], a_s)


def test_messages_never_dump_large_arrays():
    big = np.random.RandomState(19).rand(200, 200)
    calls = [
        lambda: emot_sinkhorn2(None, np.ones((2, 3)), big),
        lambda: emot_sinkhorn2(big, np.ones((2, 3)), 0.1),
        lambda: emot_sinkhorn2(None, np.ones((2, 3)), 0.1, free=big),
        lambda: emot_sinkhorn2(None, np.ones((2, 3)), 0.1, warmstart=big),
        lambda: om.cost_tensor(big),
    ]
    for call in calls:
        with pytest.raises((TypeError, ValueError)) as info:
            call()
        assert len(str(info.value)) < 500, str(info.value)
