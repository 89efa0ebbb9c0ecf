# -*- coding: utf-8 -*-
"""The engine: one module per way of marginalising a Gibbs tensor."""
# License: MIT License

from .base import GibbsEngine
from .dense import DenseEngine

__all__ = ["GibbsEngine", "DenseEngine"]
