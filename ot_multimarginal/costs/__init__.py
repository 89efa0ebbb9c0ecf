# -*- coding: utf-8 -*-
"""What a cost *is*: dense tensors and pairwise costs on a graph."""
# License: MIT License

from .dense import cost_tensor, pair_list

__all__ = ["cost_tensor", "pair_list"]
