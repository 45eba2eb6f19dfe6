"""Write an M-mode strip and its band as PNG images (SimpleITK)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from echo_napari.errors import EchoIOError


def write_strip_png(path: str | Path, image: np.ndarray, band: np.ndarray | None) -> list[Path]:
    """Write ``path`` (8-bit grey strip) and ``<stem>_band.png`` (band labels 0/1).

    Parameters
    ----------
    image : (D, N) float32 in [0, 1]
    band : (D, N) uint8 or None

    Returns
    -------
    The paths written.
    """
    import SimpleITK as sitk

    path = Path(path)
    written = []
    grey = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    pairs = [(path, grey)]
    if band is not None:
        pairs.append((path.with_name(path.stem + "_band.png"), band.astype(np.uint8)))
    for target, array in pairs:
        try:
            sitk.WriteImage(sitk.GetImageFromArray(array), str(target))
        except RuntimeError as exc:
            raise EchoIOError(target, f"cannot write PNG ({str(exc).strip()[:200]})") from exc
        written.append(target)
    return written
