"""Random binary masks for the shape-geometry tests."""

from __future__ import annotations

import numpy as np
from skimage.draw import ellipse


def random_ellipses(
    rng: np.random.Generator,
    shape: tuple[int, int],
    centres: tuple[float, float],
    radii: tuple[float, float],
) -> np.ndarray:
    """(H, W) bool: one to three ellipses, centres and radii drawn uniformly from the
    given (low, high) ranges, at random rotations (may be empty at the edges)."""
    mask = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):
        centre, radius = rng.uniform(*centres, 2), rng.uniform(*radii, 2)
        rr, cc = ellipse(*centre, *radius, shape, rotation=rng.uniform(0, np.pi))
        mask[rr, cc] = True
    return mask
