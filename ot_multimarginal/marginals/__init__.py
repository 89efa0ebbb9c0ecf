# -*- coding: utf-8 -*-
"""The engine: one module per way of marginalising a Gibbs tensor."""
# License: MIT License

from .base import GibbsEngine
from .contraction import ContractionEngine
from .cycle import CycleEngine
from .dense import DenseEngine
from .tree import TreeEngine

__all__ = ["GibbsEngine", "DenseEngine", "TreeEngine", "CycleEngine", "ContractionEngine"]
