# -*- coding: utf-8 -*-
r"""Mini-batches of indices: one independent batch per marginal and per step.

Each step draws ``b`` indices of every cloud *independently* (so every
tuple of the batch, aligned rows included, is a draw of the product measure
:math:`\otimes_i \mu_i`, and the aligned tuples are re-paired at every
step; fixed aligned tuples would estimate a coupling, not the product).
Uniform clouds are drawn without replacement, in epochs of random
permutations; weighted clouds are drawn with replacement proportionally to
their weights (the batch is then an unweighted sample of :math:`\mu_i`).

The sampler owns its random stream (a ``torch.Generator`` on the CPU,
seeded from ``(seed, rank)``), so that data-parallel workers draw different
batches from one seed and training can be checkpointed and resumed to the
bit (:meth:`BatchSampler.state_dict`).
"""
# License: MIT License

import zlib

import numpy as np

__all__ = ["BatchSampler", "derive_seed"]


def derive_seed(seed, *keys):
    """A 63-bit seed for the stream ``keys`` (e.g. ``('init',)``, ``('batches', rank)``) of ``seed``."""
    words = [int(seed)] + [zlib.crc32(k.encode()) if isinstance(k, str) else int(k) for k in keys]
    ss = np.random.SeedSequence(words)
    hi, lo = (int(w) for w in ss.generate_state(2, dtype=np.uint32))
    return ((hi << 32) | lo) & ((1 << 63) - 1)


class BatchSampler:
    """Independent batches of ``batch_size`` indices for each of k clouds.

    Parameters
    ----------
    sizes : sequence of k ints
        ``n_i``, the sizes of the clouds.
    batch_size : int
        ``b``, the same for every cloud.
    weights : list of k arrays or None, optional
        Weights of the points (torch, summing to one); ``None`` entries are uniform.
    replace : bool or None, optional
        Draw with replacement. ``None``: without for uniform clouds, with for weighted ones.
    seed : int, optional
        Seed of the whole run (default 0); the sampler's stream is derived
        from ``(seed, 'batches', rank)``.
    rank, world_size : int, optional
        This worker's rank among ``world_size`` data-parallel workers: each
        rank draws its own independent batches.
    """

    def __init__(self, sizes, batch_size, weights=None, replace=None, seed=0, rank=0, world_size=1):
        import torch

        self.sizes = [int(n) for n in sizes]
        self.batch_size = int(batch_size)
        k = len(self.sizes)
        weights = [None] * k if weights is None else list(weights)
        self.weights = [None if w is None else torch.as_tensor(w).detach().to("cpu", torch.float64) for w in weights]
        self.replace = [bool(replace) if replace is not None else (w is not None) for w in self.weights]
        for i, (n, rep) in enumerate(zip(self.sizes, self.replace)):
            if not rep and self.batch_size > n:
                raise ValueError(
                    "batch_size=%d is larger than X_s[%d] (%d points) and batches are drawn without replacement: "
                    "use batch_size <= %d or replace=True" % (self.batch_size, i, n, n)
                )
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(derive_seed(self.seed, "batches", self.rank))
        self._perm = [None] * k
        self._pos = [0] * k
        self.n_batches = 0

    @property
    def k(self):
        """Number of clouds."""
        return len(self.sizes)

    def _draw(self, i):
        import torch

        b, n, gen = self.batch_size, self.sizes[i], self.generator
        if self.weights[i] is not None and self.replace[i]:
            return torch.multinomial(self.weights[i], b, replacement=True, generator=gen)
        if self.replace[i]:
            return torch.randint(n, (b,), generator=gen)
        if self.weights[i] is not None:
            return torch.multinomial(self.weights[i], b, replacement=False, generator=gen)
        # uniform without replacement: consecutive slices of random permutations (epochs)
        if self._perm[i] is None or self._pos[i] + b > n:
            self._perm[i] = torch.randperm(n, generator=gen)
            self._pos[i] = 0
        out = self._perm[i][self._pos[i] : self._pos[i] + b]
        self._pos[i] += b
        return out

    def sample(self):
        """Draw the next batch of indices.

        Returns
        -------
        idx : list of k torch.Tensor
            Index tensors (int64, CPU) of length ``batch_size``, one per cloud.
        """
        self.n_batches += 1
        return [self._draw(i) for i in range(self.k)]

    def state_dict(self):
        """Get everything needed to resume the stream where it is.

        Returns
        -------
        state : dict
            The generator state, the current permutations and positions, the
            number of batches drawn.
        """
        return {
            "generator": self.generator.get_state(),
            "perm": [None if p is None else p.clone() for p in self._perm],
            "pos": list(self._pos),
            "n_batches": self.n_batches,
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
        }

    def load_state_dict(self, state):
        """Resume the stream from :meth:`state_dict`.

        Parameters
        ----------
        state : dict
            A state of :meth:`state_dict`.
        """
        self.generator.set_state(state["generator"])
        self._perm = [None if p is None else p.clone() for p in state["perm"]]
        self._pos = list(state["pos"])
        self.n_batches = int(state["n_batches"])

    def __repr__(self):
        return "BatchSampler(sizes=%s, batch_size=%d, rank=%d/%d)" % (
            self.sizes,
            self.batch_size,
            self.rank,
            self.world_size,
        )
