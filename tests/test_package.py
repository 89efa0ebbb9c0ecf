# -*- coding: utf-8 -*-
"""Package-level contracts: lazy torch, public API, structured plans from the public calls."""

import os
import subprocess
import sys

import numpy as np
import pytest

import ot_multimarginal as om


def test_import_does_not_load_torch():
    """Our modules never import torch at top level (POT's own torch backend switched off)."""
    env = dict(os.environ, POT_BACKEND_DISABLE_PYTORCH="1")
    code = "import sys, ot_multimarginal; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_neural_names_are_lazy():
    """emot_neural and NeuralEMOT are exported, and torch is imported only when they are first used."""
    pytest.importorskip("torch")
    env = dict(os.environ, POT_BACKEND_DISABLE_PYTORCH="1")
    code = (
        "import sys, ot_multimarginal as om; print('torch' in sys.modules); "
        "print('emot_neural' in dir(om), 'NeuralEMOT' in om.__all__); "
        "f = om.emot_neural; print('torch' in sys.modules, f.__name__, om.NeuralEMOT.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "True", "True", "emot_neural", "NeuralEMOT"]
    with pytest.raises(AttributeError, match="no attribute"):
        om.not_a_name  # noqa: B018 (the attribute access is the test)


def test_neural_without_torch_says_how_to_install():
    """Without torch the NumPy solvers work and the neural names raise an ImportError naming the extra."""
    env = dict(os.environ, POT_BACKEND_DISABLE_PYTORCH="1")
    code = (
        "import sys\n"  # a finder that hides torch: as if it were not installed
        "class NoTorch:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n"
        "sys.meta_path.insert(0, NoTorch())\n"
        "import numpy as np, ot_multimarginal as om\n"
        "print(round(float(om.emot_sinkhorn2(None, np.ones((2, 2, 2)), 1.0)), 6))\n"
        "try:\n    om.emot_neural\nexcept ImportError as e:\n    print('ImportError:', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "ImportError:" in out.stdout and "ot_multimarginal[torch]" in out.stdout, out.stdout + out.stderr


def test_public_api_is_exported():
    for name in [
        "emot_sinkhorn",
        "emot_sinkhorn2",
        "empirical_emot_sinkhorn",
        "empirical_emot_sinkhorn2",
        "cost_tensor",
        "PairwiseCost",
        "FactoredPlan",
        "round_to_feasible",
        "emot_lp",
        "emot_lp2",
        "emot_approx",
    ]:
        assert name in om.__all__ and callable(getattr(om, name))


@pytest.mark.parametrize("graph", ["chain", "circle", "complete", "star"])
def test_structured_plan_from_public_call_rounds_and_matches_dense(graph):
    rng = np.random.RandomState(3)
    X_s = [rng.randn(n, 2) for n in (5, 4, 6, 3)]
    a_s = [rng.rand(n) + 0.2 for n in (5, 4, 6, 3)]
    a_s = [a / a.sum() for a in a_s]
    cost = om.PairwiseCost.from_point_clouds(X_s, graph=graph)
    P, log = om.emot_sinkhorn(a_s, cost, 0.5, stopThr=1e-11, log=True)
    assert isinstance(P, om.FactoredPlan)
    D = om.emot_sinkhorn(a_s, cost.to_dense(), 0.5, stopThr=1e-11)
    np.testing.assert_allclose(P.to_dense(), D, atol=1e-10)
    Y = P.round()
    for i, a in enumerate(a_s):
        np.testing.assert_allclose(Y.marginal(i), a, atol=1e-13)
    v = om.emot_sinkhorn2(a_s, cost, 0.5, stopThr=1e-11)
    np.testing.assert_allclose(v, om.emot_sinkhorn2(a_s, cost.to_dense(), 0.5, stopThr=1e-11), rtol=1e-9)
    np.testing.assert_allclose(log["value"], v, rtol=1e-12)
