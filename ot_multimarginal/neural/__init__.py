# -*- coding: utf-8 -*-
r"""Neural estimation of entropic multimarginal OT (NEMOT; torch only).

Imported on first use (``ot_multimarginal.emot_neural`` and
``ot_multimarginal.NeuralEMOT`` are loaded lazily, so that
``import ot_multimarginal`` does not import torch).

Modules: :mod:`.costs` (the cost of a batch: pairwise on a graph, or a
callable on k-tuples), :mod:`.objectives` (the dual on a batch: combinatorial,
aligned and U-statistic estimators; the exact dual on data),
:mod:`.evaluation` (exact or Monte-Carlo value of learned potentials),
:mod:`.networks` (the potentials), :mod:`.sampling` (independent batches,
per-rank streams), :mod:`.training` (the loop and its state),
:mod:`.estimator` (:class:`NeuralEMOT`), :mod:`.api` (:func:`emot_neural`, :func:`emot_neural2`),
:mod:`.gromov` (:class:`NeuralMGW`, :func:`mgw_neural`: multimarginal Gromov-Wasserstein),
:mod:`.distributed` (data-parallel training on :mod:`torch.distributed`),
:mod:`.checkpoint` (atomic checkpoints, resuming a killed run).
"""
# License: MIT License

try:
    import torch  # noqa: F401
except ImportError as exc:  # the neural estimators are the one part of the package that needs torch
    raise ImportError(
        "ot_multimarginal.neural (emot_neural, NeuralEMOT, mgw_neural, NeuralMGW) needs PyTorch, "
        "which is not installed: pip install 'ot_multimarginal[torch]' (or pip install torch)"
    ) from exc

from ..costs.pointcloud import PointCloudCost, TupleCost
from .api import emot_neural, emot_neural2
from .checkpoint import Checkpointer, CheckpointError
from .distributed import DataParallel
from .estimator import NeuralEMOT
from .gromov import NeuralMGW, mgw_neural, mgw_neural2
from .networks import PotentialMLP, PotentialSet
from .objectives import batch_dual, exact_dual
from .sampling import BatchSampler
from .training import Trainer

GraphCost = PointCloudCost  # the name of this class before 0.x (it moved to ot_multimarginal.costs)

__all__ = [
    "emot_neural",
    "emot_neural2",
    "NeuralEMOT",
    "mgw_neural",
    "mgw_neural2",
    "NeuralMGW",
    "PointCloudCost",
    "GraphCost",
    "TupleCost",
    "PotentialMLP",
    "PotentialSet",
    "batch_dual",
    "exact_dual",
    "BatchSampler",
    "Trainer",
    "DataParallel",
    "Checkpointer",
    "CheckpointError",
]
