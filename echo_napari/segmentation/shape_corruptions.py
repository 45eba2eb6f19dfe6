"""Plausible-shape label maps made implausible, to train the shape prior on.

Each operation takes one ``(H, W)`` uint8 label map (:class:`~echo_napari.sequence.LabelClass`
values) and returns a new one with one of the errors a segmentation network makes on real
echo: a notch bitten out of the cavity, a bulge out of it, the atrium taken into the
ventricle, an atrium drawn apart from it or not at all, specks, a ragged border, a wall
too thin or too thick, the cavity border moved into the wall. They are what the shape
prior (:mod:`echo_napari.segmentation.shape_prior`) learns to undo, so they are drawn from
what the bundled models got wrong on the 18 training videos (notched apices, lobulated
ventricles running into the atrium, detached atria).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from echo_napari.sequence import LabelClass

LV, MYO, LA = int(LabelClass.LV_CAVITY), int(LabelClass.MYOCARDIUM), int(LabelClass.LA)


def _grid(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[: shape[0], : shape[1]]


def _disk(shape: tuple[int, ...], centre: tuple[float, float], radius: float) -> np.ndarray:
    yy, xx = _grid(shape)
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius * radius


def _border_pixel(mask: np.ndarray, rng: np.random.Generator) -> tuple[int, int] | None:
    """A random pixel of ``mask``'s inner border, None when ``mask`` is empty."""
    border = np.flatnonzero(mask & ~ndimage.binary_erosion(mask))
    if border.size == 0:
        return None
    row, col = divmod(int(rng.choice(border)), mask.shape[1])
    return row, col


def _smooth_noise(shape: tuple[int, ...], sigma_px: float, rng: np.random.Generator):
    return ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px)


def notch(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A disk (radius 2–7 px) centred on the cavity's border bitten out of the cavity."""
    cavity = labels == LV
    at = _border_pixel(cavity, rng)
    if at is not None:
        bite = _disk(labels.shape, at, rng.uniform(2, 7)) & cavity
        labels[bite] = MYO if rng.random() < 0.8 else 0
    return labels


def bulge(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A disk (radius 2.5–8 px) added to the cavity just outside its border."""
    cavity = labels == LV
    at = _border_pixel(cavity, rng)
    if at is not None:
        centre = np.array(ndimage.center_of_mass(cavity))
        out = np.array(at) - centre
        out /= np.linalg.norm(out) + 1e-6
        radius = rng.uniform(2.5, 8)
        shift = out * radius * rng.uniform(0.2, 0.9)
        labels[_disk(labels.shape, (at[0] + shift[0], at[1] + shift[1]), radius)] = LV
    return labels


def atrium_into_cavity(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The atrium within 3–40 px of the cavity (half the time with a ragged front)
    relabelled as cavity."""
    cavity, atrium = labels == LV, labels == LA
    if cavity.any() and atrium.any():
        distance = ndimage.distance_transform_edt(~cavity)
        reach = rng.uniform(3, 40)
        taken = atrium & (distance <= reach)
        if rng.random() < 0.5:
            taken &= distance <= reach * (1 + 2 * _smooth_noise(labels.shape, 3, rng))
        labels[taken] = LV
    return labels


def atrium_apart(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The atrium removed (30 %) or moved 2–14 px away, half the time shrunk."""
    atrium = labels == LA
    if atrium.any():
        labels[atrium] = 0
        if rng.random() >= 0.3:
            if rng.random() < 0.5:
                atrium = ndimage.binary_erosion(atrium, iterations=int(rng.integers(2, 8)))
            moved = np.roll(atrium, (int(rng.integers(-6, 14)), int(rng.integers(-8, 9))), (0, 1))
            labels[moved & (labels == 0)] = LA
    return labels


def specks(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One to three small disks of any class scattered over the frame."""
    height, width = labels.shape
    for _ in range(int(rng.integers(1, 4))):
        centre = (rng.uniform(0.1, 0.9) * height, rng.uniform(0.1, 0.9) * width)
        labels[_disk(labels.shape, centre, rng.uniform(1.5, 5))] = int(rng.choice([LV, MYO, LA]))
    return labels


def ragged(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Every border made ragged by a small random warp (~1–2 px)."""
    yy, xx = _grid(labels.shape)
    amplitude = 4 * rng.uniform(1.5, 4)
    dy = _smooth_noise(labels.shape, 2, rng) * amplitude
    dx = _smooth_noise(labels.shape, 2, rng) * amplitude
    warped = ndimage.map_coordinates(labels, [yy + dy, xx + dx], order=0, mode="nearest")
    return warped.astype(np.uint8)


def wall_error(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Patches of the myocardium dropped, or the wall thickened by 1–3 px."""
    wall = labels == MYO
    if rng.random() < 0.5:
        labels[wall & (_smooth_noise(labels.shape, 4, rng) > 0.15)] = 0
    else:
        grown = ndimage.binary_dilation(wall, iterations=int(rng.integers(1, 4)))
        labels[grown & (labels == 0)] = MYO
    return labels


def cavity_border_moved(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The cavity grown into or shrunk from the wall by 1–3 px along smooth stretches."""
    cavity = labels == LV
    stretch = _smooth_noise(labels.shape, 8, rng) > 0
    steps = int(rng.integers(1, 4))
    if rng.random() < 0.5:
        labels[ndimage.binary_dilation(cavity, iterations=steps) & (labels == MYO) & stretch] = LV
    else:
        rim = cavity & ~ndimage.binary_erosion(cavity, iterations=steps)
        labels[rim & stretch] = MYO
    return labels


Corruption = Callable[[np.ndarray, np.random.Generator], np.ndarray]

#: The operations and how often each is drawn (relative weights).
CORRUPTIONS: tuple[tuple[Corruption, float], ...] = (
    (notch, 3.0),
    (bulge, 3.0),
    (atrium_into_cavity, 2.0),
    (atrium_apart, 1.5),
    (specks, 1.0),
    (ragged, 1.5),
    (wall_error, 1.0),
    (cavity_border_moved, 1.0),
)


def corrupt(labels: np.ndarray, rng: np.random.Generator, clean_share: float = 0.2) -> np.ndarray:
    """One to three random :data:`CORRUPTIONS` applied to a copy of ``labels``.

    Parameters
    ----------
    labels : (H, W) uint8
    rng : numpy Generator
    clean_share : float
        Probability of returning the copy unchanged (the prior must also leave a good
        shape as it is).

    Returns
    -------
    (H, W) uint8
    """
    out = np.array(labels, dtype=np.uint8, copy=True)
    if rng.random() < clean_share:
        return out
    operations, weights = zip(*CORRUPTIONS, strict=True)
    chances = np.asarray(weights) / sum(weights)
    for index in rng.choice(len(operations), size=int(rng.integers(1, 4)), p=chances):
        out = operations[index](out, rng)
    return out
