# -*- coding: utf-8 -*-
"""Type hints on the public API: every name of ot_multimarginal.__all__ is annotated, and the hints resolve."""

import inspect
import typing

import pytest

import ot_multimarginal as om


def _callables():
    try:
        import torch  # noqa: F401
    except ImportError:  # the neural estimators (loaded lazily) need torch: checked where it is installed
        torch = None
    for name in om.__all__:
        if torch is None and name in om._LAZY:
            continue
        obj = getattr(om, name)
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") and attr != "__init__":
                    continue
                fn = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                if inspect.isfunction(fn):
                    yield "%s.%s" % (name, attr), fn
        elif callable(obj):
            yield name, getattr(obj, "__wrapped__", obj)


@pytest.mark.parametrize("name, fn", list(_callables()), ids=lambda x: x if isinstance(x, str) else "")
def test_public_signatures_are_annotated(name, fn):
    hints = typing.get_type_hints(fn, localns=vars(om))  # forward references to the public classes
    params = [p for p in inspect.signature(fn).parameters.values() if p.name not in ("self", "cls")]
    missing = [p.name for p in params if p.name not in hints]
    assert not missing, "%s: parameters without a type hint: %s" % (name, missing)
    assert "return" in hints, "%s: no return annotation" % name


def test_py_typed_marker():
    import os

    assert os.path.exists(os.path.join(os.path.dirname(om.__file__), "py.typed"))
