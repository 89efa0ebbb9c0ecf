# -*- coding: utf-8 -*-
"""Shared fixtures: the ``nx`` backend fixture and array helpers.

``nx`` runs a test once per array type: NumPy float64, torch float64 and
float32 on the CPU, and the same on CUDA when a GPU is present;
``torch_device`` runs a torch-only test (neural, GW) on the CPU and, when a
GPU is present, on CUDA. The fixture
yields a :class:`Backend` object that carries ``.dtype``/``.device`` helpers
through :func:`to_nx`.
"""

import numpy as np
import pytest
from ot.backend import NumpyBackend, get_backend_list

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

# a helper script launched by torchrun in test_neural_distributed.py, not a test module;
# without torch it cannot even be imported for --doctest-modules
collect_ignore = [] if torch is not None else ["neural_distributed_worker.py", "_host_sync.py"]  # torch-only helpers


class NX:
    """A POT backend plus the dtype/device the test arrays should have."""

    def __init__(self, backend, dtype=None, device=None, name="numpy"):
        self.backend = backend
        self.dtype = dtype
        self.device = device
        self.name = name

    def __getattr__(self, attr):
        return getattr(self.backend, attr)

    def __str__(self):
        return str(self.backend)

    @property
    def is_torch(self):
        return str(self.backend) == "torch"

    @property
    def float32(self):
        return self.dtype is not None and "float32" in str(self.dtype)

    def tol(self, tight):
        """``tight`` for float64, a float32-sized tolerance otherwise."""
        return max(tight, 1e-4) if self.float32 else tight

    def array(self, x, requires_grad=False):
        """A NumPy array converted to this backend's dtype and device."""
        x = np.asarray(x, dtype=np.float64)
        if not self.is_torch:
            return x
        t = torch.tensor(x, dtype=self.dtype, device=self.device)
        if requires_grad:
            t.requires_grad_(True)
        return t

    def np(self, x):
        """Back to NumPy float64."""
        return np.asarray(self.backend.to_numpy(self.backend.detach(x)), dtype=np.float64)


def _params():
    params = [pytest.param(NX(NumpyBackend(), name="numpy"), id="numpy")]
    names = [str(b) for b in get_backend_list()]
    if torch is not None and "torch" in names:
        tb = [b for b in get_backend_list() if str(b) == "torch"][0]
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        for dev in devices:
            for dt in (torch.float64, torch.float32):
                nm = "torch-%s-%s" % (dev, str(dt).split(".")[-1])
                params.append(pytest.param(NX(tb, dt, torch.device(dev), nm), id=nm))
    return params


@pytest.fixture(params=_params())
def nx(request):
    """Backend fixture: numpy, torch float64/float32 on CPU (and CUDA if present)."""
    return request.param


def _torch_devices():
    """``cpu``, and ``cuda`` when a GPU is present (the device cases of the neural and GW calls)."""
    if torch is None:
        return []
    return [pytest.param(torch.device("cpu"), id="cpu")] + (
        [pytest.param(torch.device("cuda"), id="cuda")] if torch.cuda.is_available() else []
    )


@pytest.fixture(params=_torch_devices())
def torch_device(request):
    """Torch device fixture: the CPU, and CUDA when a GPU is present (added automatically)."""
    return request.param


@pytest.fixture
def rng():
    return np.random.RandomState(0)


def random_weights(rng, n, low=0.2):
    a = rng.rand(n) + low
    return a / a.sum()


# ---------------------------------------------------------------- hypothesis profiles
# 'ci' (default): a fixed number of examples, derandomized (the same examples on
# every run, so CI is reproducible and bounded in time), no example database.
# 'dev': ten times more examples, random, with the database, for local runs:
#   HYPOTHESIS_PROFILE=dev python -m pytest tests/test_properties.py
try:
    import os

    from hypothesis import HealthCheck, settings

    settings.register_profile(
        "ci",
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.register_profile(
        "dev",
        max_examples=250,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # pragma: no cover - hypothesis is a test dependency
    pass


def wide_range_logs(rng, p=48, q=40, r=36, spread=400.0, noise=1.0):
    """Log-kernels ``-spread |u_a - v_j| (+ noise)`` and ``-spread |v_j - w_c| (+ noise)`` on random positions in
    [0, 1]: the row maxima of L1 and the column maxima of L2 sit at distant inner indices for most (a, c), so most
    float32 scaled products of :func:`log_matmul` underflow (range ~70 nats) and a few float64 ones (~320 nats)."""
    u, v, w = rng.rand(p), rng.rand(q), rng.rand(r)
    L1 = -spread * np.abs(u[:, None] - v[None])
    L2 = -spread * np.abs(v[:, None] - w[None])
    if noise:
        L1, L2 = L1 + noise * rng.randn(p, q), L2 + noise * rng.randn(q, r)
    return L1, L2
