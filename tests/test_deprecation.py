# -*- coding: utf-8 -*-
"""The deprecation shim: an old keyword name still works for one release, with a DeprecationWarning."""

import warnings

import pytest

from ot_multimarginal._deprecation import deprecated_key_dict, renamed_kwargs


@renamed_kwargs(n_iter="numItermax", seed="random_state")
def _f(x, numItermax=10, random_state=None):
    return x, numItermax, random_state


def test_old_name_warns_and_is_forwarded():
    with pytest.warns(DeprecationWarning, match="'n_iter' is deprecated .* use 'numItermax'"):
        assert _f(1, n_iter=3) == (1, 3, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _f(1, numItermax=4, random_state=2) == (1, 4, 2)
    assert _f.__renamed_kwargs__ == {"n_iter": "numItermax", "seed": "random_state"}


def test_old_and_new_name_together_is_an_error():
    with pytest.raises(TypeError, match="both 'numItermax' and its deprecated name 'n_iter'"):
        _f(1, n_iter=3, numItermax=4)


def test_old_log_key_reads_with_a_warning():
    d = deprecated_key_dict({"niter": 5}, {"n_iter": "niter"}, "f")
    with pytest.warns(DeprecationWarning, match=r"log\['n_iter'\] is deprecated"):
        assert d["n_iter"] == 5
    assert "n_iter" not in d and d["niter"] == 5
    with pytest.raises(KeyError):
        d["other"]
