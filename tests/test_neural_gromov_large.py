# -*- coding: utf-8 -*-
"""NeuralMGW's matchings beyond the exact engine's comfort (issue #22): method='sampled' at n = 3000, k = 3."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_gromov import _recovery_problem  # noqa: E402

import ot_multimarginal as om  # noqa: E402


@pytest.mark.slow
def test_sampled_matches_are_near_ties_of_the_exact_ones_at_n_3000():
    """A short fit on isometric copies (n = 3000 per cloud, k = 3 complete, reg = 0.1): at that density the plan's
    top partners are near-ties (no point's top partner is even 1.1 times its second), so the sampled matches of the
    training clouds (all 3000 query points, by blocks: no (n, n) matrix kept) are checked by the exact density of
    the partner they pick: within a factor 2 of the row's exact maximum for 99% of the points."""
    torch.set_num_threads(1)
    n = 3000
    X_s, _ = _recovery_problem(140, n, 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        est = om.NeuralMGW(
            0.1, init="zero", max_iter=1, max_iter_inner=100, n_moment_batches=4, random_state=0, polish=False
        ).fit(X_s)
    sampled = est.match(0, 1, method="sampled")
    D = est.pairwise_plan(0, 1, X_s[0], X_s[1], method="exact")  # the networks' density at the training points
    ratio = D[np.arange(n), sampled] / D.max(1)
    assert np.mean(ratio >= 0.5) >= 0.99 and np.median(ratio) >= 0.99, np.quantile(ratio, [0.01, 0.5])
