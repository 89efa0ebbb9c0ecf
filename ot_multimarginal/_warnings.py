# -*- coding: utf-8 -*-
"""Warnings that point at the user's line.

A fixed ``stacklevel`` is right for one call path only (``emot_sinkhorn2``
calls the loop two frames deeper than ``empirical_emot_sinkhorn2`` does).
:func:`warn_user` counts the frames inside this package instead, so every
warning is attributed to the first caller outside it (the
``skip_file_prefixes`` of Python 3.12, for every supported Python).
"""
# License: MIT License

import os
import sys
import warnings

__all__ = ["warn_user", "user_stacklevel"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def user_stacklevel():
    """The ``stacklevel`` of the first frame outside ``ot_multimarginal``, seen from the caller of this function."""
    frame = sys._getframe(1)
    level = 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    return level


def warn_user(message, category=UserWarning):
    """``warnings.warn(message, category)`` attributed to the user's line (first frame outside the package)."""
    warnings.warn(message, category, stacklevel=user_stacklevel())
