# -*- coding: utf-8 -*-
"""What a cost *is*: dense tensors, pairwise costs on a graph, costs of point clouds."""
# License: MIT License

from .dense import cost_tensor, pair_list
from .graph import GRAPHS, PairwiseCost, graph_edges
from .pointcloud import PointCloudCost, TupleCost

__all__ = ["cost_tensor", "pair_list", "PairwiseCost", "graph_edges", "GRAPHS", "PointCloudCost", "TupleCost"]
