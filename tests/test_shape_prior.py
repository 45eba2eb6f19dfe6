"""The shape prior: corruptions it is trained on, the bundled prior's redrawing, training."""

from __future__ import annotations

import numpy as np
import pytest

from echo_napari.errors import ModelError
from echo_napari.segmentation import shape_corruptions as sc
from echo_napari.segmentation.shape_prior import (
    GRID,
    ShapePriorConfig,
    apply_shape_prior,
    load_shape_prior,
    n_batches,
    save_shape_prior,
)
from echo_napari.segmentation.train_shape_prior import augment, train, training_batch
from echo_napari.sequence import LabelClass

LV, MYO, LA = int(LabelClass.LV_CAVITY), int(LabelClass.MYOCARDIUM), int(LabelClass.LA)


def heart(size: int = 112) -> np.ndarray:
    """An apical four-chamber-like label map: bullet-shaped LV (apex up), a 4-px wall
    around it open at the base, the LA below the base. (size, size) uint8."""
    s = size / 112
    yy, xx = np.mgrid[:size, :size] / s
    base = 70.0
    cavity = ((yy - base) / 48) ** 2 + ((xx - 56) / 15) ** 2 <= 1
    cavity &= yy <= base
    wall = ((yy - base) / 53) ** 2 + ((xx - 56) / 20) ** 2 <= 1
    wall &= (yy <= base) & ~cavity
    atrium = ((yy - base - 13) / 13) ** 2 + ((xx - 56) / 14) ** 2 <= 1
    atrium &= yy > base
    labels = np.zeros((size, size), np.uint8)
    labels[wall], labels[cavity], labels[atrium] = MYO, LV, LA
    return labels


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2 * np.count_nonzero(a & b) / (np.count_nonzero(a) + np.count_nonzero(b))


@pytest.fixture(scope="module")
def prior():
    return load_shape_prior()


def test_corruptions_do_what_they_say() -> None:
    rng = np.random.default_rng(0)
    clean = heart()
    lv = np.count_nonzero(clean == LV)
    assert np.count_nonzero(sc.notch(clean.copy(), rng) == LV) < lv
    assert np.count_nonzero(sc.bulge(clean.copy(), rng) == LV) > lv
    merged = sc.atrium_into_cavity(clean.copy(), rng)
    assert np.count_nonzero(merged == LV) > lv
    assert np.count_nonzero(merged == LA) < np.count_nonzero(clean == LA)
    apart = [sc.atrium_apart(clean.copy(), np.random.default_rng(k)) for k in range(6)]
    assert all(not np.array_equal(a == LA, clean == LA) for a in apart)
    assert not np.array_equal(sc.ragged(clean.copy(), rng), clean)
    same = sc.corrupt(clean, rng, clean_share=1.0)
    assert np.array_equal(same, clean) and same is not clean
    changed = [sc.corrupt(clean, np.random.default_rng(k), 0.0) for k in range(10)]
    assert sum(not np.array_equal(c, clean) for c in changed) >= 9
    assert np.array_equal(clean, heart())  # the input is never changed in place


def test_augment_and_batch_shapes() -> None:
    rng = np.random.default_rng(1)
    pool = np.stack([heart(), heart()[:, ::-1]])
    moved = augment(pool[0], rng)
    assert moved.shape == (112, 112) and moved.dtype == np.uint8
    assert set(np.unique(moved)) <= {0, LV, MYO, LA}
    x, y = training_batch(pool, 3, rng)
    assert tuple(x.shape) == (3, 4, GRID, GRID) and tuple(y.shape) == (3, GRID, GRID)
    assert np.allclose(x.sum(1).numpy(), 1.0)


def solidity(mask: np.ndarray) -> float:
    from skimage.measure import regionprops

    return float(regionprops(mask.astype(int))[0].solidity)


def test_the_bundled_prior_fills_a_notch(prior) -> None:
    clean = heart()
    yy, xx = np.mgrid[:112, :112]
    bite = ((yy - 50) ** 2 + (xx - 70) ** 2 <= 64) & (clean == LV)  # the lateral wall's
    notched = clean.copy()
    notched[bite] = MYO
    redrawn = apply_shape_prior(notched[None], prior)[0]
    # the cavity keeps its pixel count: the prior takes back bitten pixels and gives up
    # others along the border, so the cavity is convex again
    assert np.count_nonzero(redrawn == LV) == np.count_nonzero(notched == LV)
    assert np.mean(redrawn[bite] == LV) > 0.3
    assert solidity(notched == LV) < solidity(clean == LV) - 0.05
    assert solidity(redrawn == LV) > solidity(clean == LV) - 0.02


def test_the_bundled_prior_leaves_a_plausible_heart_nearly_as_it_is(prior) -> None:
    clean = np.stack([heart(), heart()[:, ::-1]])
    redrawn = apply_shape_prior(clean, prior)
    for cls in (LV, LA):
        assert dice(redrawn == cls, clean == cls) > 0.9


def test_empty_frames_stay_empty_and_any_size_works(prior) -> None:
    labels = np.zeros((3, 150, 180), np.uint8)
    labels[1, :, 15:165] = heart(150)
    calls = []
    redrawn = apply_shape_prior(labels, prior, progress=lambda d, t: calls.append((d, t)))
    assert redrawn.shape == labels.shape
    assert not redrawn[0].any() and not redrawn[2].any()
    assert np.count_nonzero(redrawn[1] == LV) == np.count_nonzero(labels[1] == LV)
    assert calls[-1] == (n_batches(3), n_batches(3))
    assert not apply_shape_prior(np.zeros((2, 20, 20), np.uint8), prior).any()


def test_training_lowers_the_loss_and_the_model_round_trips(tmp_path) -> None:
    pool = np.stack([heart(), heart()[:, ::-1]])
    network, losses = train(pool, steps=25, batch=4, config=ShapePriorConfig((4, 8)))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    path = save_shape_prior(network, tmp_path / "shape_v7", {"version": "shape_v7"})
    loaded = load_shape_prior(path)
    labels = np.stack([sc.notch(heart(), np.random.default_rng(3))])
    assert np.array_equal(apply_shape_prior(labels, loaded), apply_shape_prior(labels, network))
    (tmp_path / "broken_v1.safetensors").write_bytes(b"not safetensors")
    (tmp_path / "broken_v1.json").write_text("{}")
    with pytest.raises(ModelError, match="cannot load the shape prior"):
        load_shape_prior(tmp_path / "broken_v1.safetensors")
