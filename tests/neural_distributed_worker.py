# -*- coding: utf-8 -*-
"""Worker of tests/test_neural_distributed.py (not a test module): one rank of a ``torchrun`` launch,
or a single process killed mid-run.

``python neural_distributed_worker.py CONFIG.json``: trains every case of the config (``cases``: name ->
NeuralEMOT keyword arguments; the data are ``make_data(**config['data'])``) and saves, per rank,
``<out>/<name>-rank<r>.pt`` with the potentials' state, the value and the batch duals.
"""

import json
import os
import shutil
import sys
import time

import numpy as np
import torch


def make_data(n=48, d=2, k=3, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randn(n, d) + 0.3 * i for i in range(k)]


def result(est):
    return {
        "state": {k: v.detach().clone() for k, v in est.potentials_.state_dict().items()},
        "value": float(est.value_),
        "batch_dual": list(est.history_["batch_dual"]),
        "eval_value": list(est.history_["eval_value"]),
        "world_size": getattr(est, "world_size_", 1),
    }


def make_mgw_data(n=48, d=2, k=3, seed=0):
    """k rotated copies of one cloud in dimensions d, d + 1, ... (the GW estimator's test data)."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) * np.linspace(2.0, 1.0, d)
    out = []
    for i in range(k):
        Q, _ = np.linalg.qr(rng.randn(d + i, d + i))
        out.append(np.c_[X, np.zeros((n, i))] @ Q + rng.randn(d + i))
    return out


def mgw_result(est):
    return {
        "state": {k: v.detach().clone() for k, v in est.emot_.potentials_.state_dict().items()},
        "A": {e: torch.as_tensor(M).clone() for e, M in est.A_.items()},
        "value": float(est.value_),
        "objective": list(est.history_["objective"]),
        "world_size": getattr(est.emot_, "world_size_", 1),
    }


def main(path):
    with open(path) as fh:
        config = json.load(fh)
    torch.set_num_threads(int(config.get("threads", 1)))
    from ot_multimarginal.neural import NeuralEMOT
    from ot_multimarginal.neural.checkpoint import Checkpointer

    X_s = make_data(**config.get("data", {}))
    out = config["out"]
    rank = int(os.environ.get("RANK", 0))
    for name, kwargs in config["cases"].items():
        kwargs = dict(kwargs, **config.get("rank_kwargs", {}).get(str(rank), {}))  # e.g. one rank's bad argument
        if isinstance(kwargs.get("dtype"), str):
            kwargs["dtype"] = getattr(torch, kwargs["dtype"])
        if config.get("hang_after_step") is not None:  # simulate a job killed mid-run: block after a checkpoint
            stop = int(config["hang_after_step"])
            save = Checkpointer.save

            def hanging_save(self, trainer, _save=save):
                p = _save(self, trainer)
                if trainer.step_count >= stop:
                    with open(os.path.join(out, "ready"), "w") as fh:
                        fh.write(str(trainer.step_count))
                    time.sleep(600)
                return p

            Checkpointer.save = hanging_save
        resume_drop = kwargs.pop("resume_after_dropping_last", False)
        if kwargs.pop("mgw", False):  # the Gromov-Wasserstein estimator on clouds of different dimensions
            from ot_multimarginal.neural import NeuralMGW

            est = NeuralMGW(**kwargs).fit(make_mgw_data(**config.get("data", {})))
            torch.save(mgw_result(est), os.path.join(out, "%s-rank%d.pt" % (name, rank)))
            continue
        est = NeuralEMOT(**kwargs).fit(X_s)
        if resume_drop:  # resume from the previous checkpoint and finish the run again
            import torch.distributed as dist

            ckpts = Checkpointer(kwargs["checkpoint_dir"], 1, {}).checkpoints()
            dist.barrier()
            if rank == 0:
                shutil.move(ckpts[0][1], ckpts[0][1] + ".dropped")
            dist.barrier()
            first = result(est)
            est = NeuralEMOT(resume=True, **kwargs).fit(X_s)
            torch.save(first, os.path.join(out, "%s-uninterrupted-rank%d.pt" % (name, rank)))
        torch.save(result(est), os.path.join(out, "%s-rank%d.pt" % (name, rank)))


if __name__ == "__main__":
    main(sys.argv[1])
