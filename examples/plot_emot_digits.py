# -*- coding: utf-8 -*-
r"""
===============================================================================
Barycenters of handwritten digits (scikit-learn's digits)
===============================================================================

.. note::
    Example added in release: 0.1.0.

Real data that ships with scikit-learn: 8×8 images of handwritten digits
(:func:`sklearn.datasets.load_digits`). Each image, upsampled to 16×16 and
normalised, is a measure on the pixel grid. The entropic multimarginal
barycenter of :math:`m` images is the free centre of a star (see the
barycenter example): node 0 is the grid with the cost
:math:`\|x - y\|^2 / m` to every image, the images are the leaves, and the
marginal of the plan on node 0 is the barycenter. Message passing on the star
solves it in a fraction of a second; the dense tensor would have
:math:`256^{m+1}` entries.

The pixel-wise (Euclidean) mean superimposes the strokes; the transport
barycenter moves them to an average position and keeps a stroke.
"""

# License: MIT License

import matplotlib.pyplot as plt
import numpy as np
import ot
from scipy.ndimage import zoom
from sklearn.datasets import load_digits

import ot_multimarginal as om

# %%
# Six images of each of four digits, as measures on a 16×16 grid
# --------------------------------------------------------------
digits = load_digits()
classes, m, side = (0, 2, 3, 7), 6, 16
g = (np.arange(side) + 0.5) / side
grid = np.stack(np.meshgrid(g, g[::-1]), -1).reshape(-1, 2)  # pixel centres, row-major, y up
M = ot.dist(grid, grid)  # squared distances between pixels


def as_measure(img):
    a = np.clip(zoom(img, side / 8, order=1), 0, None).ravel() + 1e-6  # tiny floor: every pixel has mass
    return a / a.sum()


# %%
# Barycenters: free centre of a star with m leaves
# ------------------------------------------------
reg = 2e-3
rows = []
for d in classes:
    imgs = digits.images[digits.target == d][:m]
    A = [as_measure(img) for img in imgs]
    cost = om.PairwiseCost.star([M / m] * m, center=0, free=[0])
    P, log = om.emot_sinkhorn([None] + A, cost, reg, stopThr=1e-7, numItermax=3000, log=True)
    bary = P.marginal(0)
    print(
        "digit %d: EMOT value %.5f, %d sweeps, marginal error %.1e"
        % (d, log["value"], log["niter"], P.marginal_error())
    )
    rows.append((A, np.mean(A, axis=0), bary))

# %%
# Inputs, pixel-wise mean and transport barycenter
# ------------------------------------------------
fig, axes = plt.subplots(len(classes), m + 2, figsize=(1.35 * (m + 2), 1.45 * len(classes)))
for r, (A, mean, bary) in enumerate(rows):
    for c, img in enumerate(list(A) + [mean, bary]):
        ax = axes[r, c]
        ax.imshow(img.reshape(side, side), cmap="Greys", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if c >= m:
            for s in ax.spines.values():
                s.set_color("C3" if c == m + 1 else "C0")
                s.set_linewidth(2)
axes[0, m].set_title("pixel mean", fontsize=9, color="C0")
axes[0, m + 1].set_title("EMOT\nbarycenter", fontsize=9, color="C3")
for c in range(m):
    axes[0, c].set_title("image %d" % (c + 1), fontsize=9)
fig.suptitle("scikit-learn digits: %d images per digit and their barycenters (reg=%g)" % (m, reg), fontsize=10)
fig.tight_layout()
plt.show()
