# -*- coding: utf-8 -*-
"""Type aliases of the public signatures (no runtime cost; torch is never imported here)."""
# License: MIT License

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import torch

    Array = Union[np.ndarray, torch.Tensor]
else:
    Array = Any  # a NumPy array or a torch tensor (any POT backend array)

#: Weights of the k marginals: a list of k vectors (``None`` entries: uniform), or ``None`` (all uniform).
Weights = Optional[Sequence[Optional[Array]]]
#: A dense cost tensor or a structured cost (an object with ``make_engine``, such as ``PairwiseCost``).
Cost = Any
#: Node indices (free nodes).
Nodes = Optional[Sequence[int]]
#: A ground metric: an :func:`ot.dist` name, a callable ``(X, Y) -> matrix``, or one per pair/edge.
Metric = Union[str, Callable[..., Any], Sequence[Union[str, Callable[..., Any]]]]
#: Edge lists.
Edges = Sequence[Tuple[int, int]]
LogDict = Dict[str, Any]

__all__ = ["Array", "Weights", "Cost", "Nodes", "Metric", "Edges", "LogDict"]
