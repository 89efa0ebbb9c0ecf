# -*- coding: utf-8 -*-
r"""The potentials: one small MLP per marginal.

:class:`PotentialMLP` maps a point :math:`x \in \mathbb R^{d}` to
:math:`\varphi(x) = s \cdot \mathrm{MLP}((x - m)/\sigma)`: inputs standardised
by the data's mean and scale, the output scaled by the typical size ``s`` of
the cost, so that the network itself works with numbers of order one
whatever the units of the data. The last layer starts at zero (the
potentials start at :math:`\varphi = 0`, the product coupling: a safe start
from which the dual only improves); the other layers use PyTorch's default
(Kaiming-uniform) initialisation drawn from a given generator, so a seed
fixes every weight.
"""
# License: MIT License

import math

import torch
from torch import nn

__all__ = ["PotentialMLP", "PotentialSet", "default_width"]


def default_width(d):
    """Hidden width for inputs of dimension ``d``: ``clip(16 d, 64, 256)``."""
    return int(min(256, max(64, 16 * int(d))))


class PotentialMLP(nn.Module):
    r"""``φ(x) = scale · (MLP(z) + zᵀ Q z)``, ``z = (x − mean)/std``, ``depth`` hidden layers of ``width`` units.

    The quadratic term (``quadratic=True``: ``Q`` a learned ``d × d`` matrix
    for ``d <= 64``, a learned diagonal above; zero at the start) holds
    exactly the potentials of Gaussian data under the squared-Euclidean
    cost and their large-scale growth in general, which a ReLU network only
    approximates piecewise.

    Parameters
    ----------
    d : int
        Input dimension.
    width : int, optional
        Hidden units (default :func:`default_width`).
    depth : int, optional
        Hidden layers (default 2).
    activation : str, optional
        ``'relu'`` (default), ``'silu'``,
        ``'softplus'``, ``'tanh'``, ``'gelu'``.
    generator : torch.Generator, optional
        Random stream of the initial weights.
    quadratic : bool, optional
        Add the learned quadratic term (default False).
    """

    _ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "softplus": nn.Softplus, "tanh": nn.Tanh, "gelu": nn.GELU}

    def __init__(self, d, width=None, depth=2, activation="relu", generator=None, dtype=torch.float32, quadratic=False):
        super().__init__()
        if activation not in self._ACTIVATIONS:
            raise ValueError("activation must be one of %s, got %r" % (sorted(self._ACTIVATIONS), activation))
        width = default_width(d) if width is None else int(width)
        self.d, self.width, self.depth, self.activation = int(d), width, int(depth), activation
        layers = []
        fan_in = self.d
        for _ in range(self.depth):
            layers += [nn.Linear(fan_in, width, dtype=dtype), self._ACTIVATIONS[activation]()]
            fan_in = width
        last = nn.Linear(fan_in, 1, dtype=dtype)
        self.net = nn.Sequential(*layers, last)
        with torch.no_grad():
            for layer in layers:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    # kaiming_uniform(a=sqrt(5)) and its bias bound, as nn.Linear, from our generator
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
            last.weight.zero_()
            last.bias.zero_()
        if quadratic:
            self.quad = nn.Parameter(torch.zeros((self.d, self.d) if self.d <= 64 else (self.d,), dtype=dtype))
        else:
            self.register_parameter("quad", None)
        self.register_buffer("mean", torch.zeros(self.d, dtype=dtype))
        self.register_buffer("std", torch.ones(self.d, dtype=dtype))
        self.register_buffer("scale", torch.ones((), dtype=dtype))

    def set_normalisation(self, mean, std, scale):
        """Input mean/std (per coordinate) and output scale, from the data."""
        with torch.no_grad():
            self.mean.copy_(mean)
            self.std.copy_(std)
            self.scale.fill_(float(scale))

    def forward(self, x):
        """The potential at the rows of ``x`` (shape ``(m, d)``): shape ``(m,)``."""
        z = (x - self.mean) / self.std
        out = self.net(z).squeeze(-1)
        if self.quad is not None:
            out = out + (((z @ self.quad) * z).sum(-1) if self.quad.ndim == 2 else (z * z) @ self.quad)
        return self.scale * out


class PotentialSet(nn.Module):
    """The k potentials of a problem (one :class:`PotentialMLP` per marginal)."""

    def __init__(
        self, dims, width=None, depth=2, activation="relu", generator=None, dtype=torch.float32, quadratic=False
    ):
        super().__init__()
        self.potentials = nn.ModuleList(
            [PotentialMLP(d, width, depth, activation, generator, dtype, quadratic) for d in dims]
        )

    def __len__(self):
        return len(self.potentials)

    def __getitem__(self, i):
        return self.potentials[i]

    def forward(self, X_s):
        """``[φ_i(X_s[i])]``."""
        return [phi(X) for phi, X in zip(self.potentials, X_s)]
