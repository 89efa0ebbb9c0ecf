# -*- coding: utf-8 -*-
"""What a cost *is*: dense tensors and pairwise costs on a graph."""
# License: MIT License

from .dense import cost_tensor, pair_list
from .graph import GRAPHS, PairwiseCost, graph_edges

__all__ = ["cost_tensor", "pair_list", "PairwiseCost", "graph_edges", "GRAPHS"]
