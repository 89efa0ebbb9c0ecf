# -*- coding: utf-8 -*-
"""Hypothesis strategies for random EMOT problems (used by ``test_properties.py``).

A problem is drawn as a few small integers (k, sizes, a seed, the decade of
``reg``, where the zero weights go) and built with NumPy from the seed, so
that shrinking works on the integers and the arrays stay cheap. Sizes are
tiny (at most 4 points per marginal) so that the LP oracle and the dense
tensor are instant.
"""

import numpy as np
from hypothesis import strategies as st

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

BACKENDS = ["numpy"] + (["torch64", "torch32"] if torch is not None else [])


def to_backend(x, backend):
    """A NumPy float64 array as the given backend's array."""
    if backend == "numpy":
        return np.asarray(x, dtype=np.float64)
    dt = torch.float64 if backend == "torch64" else torch.float32
    return torch.tensor(np.asarray(x, dtype=np.float64), dtype=dt)


def to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def weights(rng, n, zeros):
    """A probability vector of length n; with ``zeros``, some entries (never all) are 0."""
    a = rng.rand(n) + 0.1
    if zeros and n > 1:
        mask = rng.rand(n) < 0.4
        mask[rng.randint(n)] = False
        a[mask] = 0.0
    return a / a.sum()


@st.composite
def dense_problems(draw, k_max=3, n_max=4, backends=None):
    """``dict(C, a_s, reg, backend, seed, free)``: NumPy float64 data, the backend, free nodes (maybe none)."""
    k = draw(st.integers(2, k_max))
    shape = tuple(draw(st.lists(st.integers(1, n_max), min_size=k, max_size=k)))
    seed = draw(st.integers(0, 2**31 - 1))
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    log_reg = draw(st.sampled_from([-2.0, -1.5, -1.0, -0.5, 0.0, 1.0]))  # several decades
    zeros = draw(st.booleans())
    backend = draw(st.sampled_from(backends or BACKENDS))
    free = draw(st.sampled_from([()] * 2 + [(i,) for i in range(k)]))  # a free node one time in ~3
    rng = np.random.RandomState(seed)
    C = rng.rand(*shape) * scale
    a_s = [weights(rng, n, zeros) for n in shape]
    return dict(C=C, a_s=a_s, reg=float(scale * 10.0**log_reg), backend=backend, seed=seed, free=free)


GRAPHS = ["chain", "circle", "star", "complete", "tree"]


@st.composite
def graph_problems(draw, k_max=4, n_max=3, backends=None):
    """``dict(mats, edges, shape, a_s, reg, backend)``: a pairwise cost on a random graph."""
    graph = draw(st.sampled_from(GRAPHS))
    k = draw(st.integers(3, k_max))
    shape = tuple(draw(st.lists(st.integers(1, n_max), min_size=k, max_size=k)))
    seed = draw(st.integers(0, 2**31 - 1))
    log_reg = draw(st.sampled_from([-1.5, -1.0, -0.5, 0.0]))
    zeros = draw(st.booleans())
    backend = draw(st.sampled_from(backends or BACKENDS))
    rng = np.random.RandomState(seed)
    if graph == "chain":
        edges = [(t, t + 1) for t in range(k - 1)]
    elif graph == "circle":
        edges = [(t, t + 1) for t in range(k - 1)] + [(k - 1, 0)]
    elif graph == "star":
        edges = [(0, j) for j in range(1, k)]
    elif graph == "complete":
        edges = [(i, j) for i in range(k) for j in range(i + 1, k)]
    else:  # a random tree: node j joins a random earlier node
        edges = [(int(rng.randint(j)), j) for j in range(1, k)]
    mats = [rng.rand(shape[a], shape[b]) for a, b in edges]
    a_s = [weights(rng, n, zeros) for n in shape]
    return dict(graph=graph, edges=edges, mats=mats, shape=shape, a_s=a_s, reg=float(10.0**log_reg), backend=backend)
