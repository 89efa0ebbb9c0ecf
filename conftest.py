# -*- coding: utf-8 -*-
"""Collection rules for ``pytest --doctest-modules ot_multimarginal``.

The neural subpackage is torch-only (an extra): without torch its modules
cannot be imported, so their doctests are not collected.
"""
import importlib.util

collect_ignore = [] if importlib.util.find_spec("torch") else ["ot_multimarginal/neural"]
