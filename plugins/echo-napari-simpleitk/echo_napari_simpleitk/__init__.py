"""SimpleITK cubic B-spline registration: the classical baseline backend of echo-napari.

Settings follow the baseline measured in the project's references: a 4×4 B-spline control
mesh over the fixed image, the correlation metric, L-BFGS-B with 50 iterations and two
resolution levels (shrink 2 then 1, smoothing σ 1 then 0 pixels).

Convention check: ITK's transform maps a *fixed*-space point x to the *moving*-space point
T(x) = x + d(x), and resampling the moving image through T gives ``moving(x + d(x))``,
which is echo-napari's pull convention. ITK vector components are ordered (x, y) =
(column, row), ours (dy, dx), so the two channels are swapped on the way out
(``tests/test_simpleitk_backend.py`` pins this with a known shift).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import SimpleITK as sitk

from echo_napari.registration.validation import check_pair_batch

__all__ = ["SimpleITKBackend"]
__version__ = "0.1.0"

log = logging.getLogger(__name__)


class SimpleITKBackend:
    """B-spline registration with SimpleITK, one pair at a time.

    Parameters
    ----------
    mesh_size : int
        Control-mesh cells per axis (4 → a 4×4 mesh).
    iterations : int
        L-BFGS-B iterations per resolution level.
    shrink_factors, smoothing_sigmas : sequence of int / float
        The multi-resolution pyramid (pixels).
    threads : int or None
        ITK worker threads (None leaves SimpleITK's default).
    device : str or None
        Accepted for interface compatibility with the other backends; ignored (CPU only).
    """

    name = "simpleitk"

    def __init__(
        self,
        mesh_size: int = 4,
        iterations: int = 50,
        shrink_factors: tuple[int, ...] = (2, 1),
        smoothing_sigmas: tuple[float, ...] = (1.0, 0.0),
        threads: int | None = None,
        device: str | None = None,
    ) -> None:
        self.mesh_size = int(mesh_size)
        self.iterations = int(iterations)
        self.shrink_factors = tuple(int(s) for s in shrink_factors)
        self.smoothing_sigmas = tuple(float(s) for s in smoothing_sigmas)
        self.threads = threads
        self.device = "cpu"

    def register_pair(self, fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
        """Register one pair.

        Parameters
        ----------
        fixed, moving : (H, W) float32 in [0, 1]

        Returns
        -------
        (2, H, W) float32, pixels, channel 0 = dy, 1 = dx, with
        ``moving(x + u(x)) ≈ fixed(x)``.
        """
        fixed_image = sitk.GetImageFromArray(np.ascontiguousarray(fixed, dtype=np.float32))
        moving_image = sitk.GetImageFromArray(np.ascontiguousarray(moving, dtype=np.float32))
        transform = sitk.BSplineTransformInitializer(
            fixed_image, [self.mesh_size] * fixed_image.GetDimension(), 3
        )
        method = sitk.ImageRegistrationMethod()
        method.SetMetricAsCorrelation()
        method.SetInterpolator(sitk.sitkLinear)
        method.SetOptimizerAsLBFGSB(
            gradientConvergenceTolerance=1e-5,
            numberOfIterations=self.iterations,
            maximumNumberOfCorrections=5,
            maximumNumberOfFunctionEvaluations=1000,
            costFunctionConvergenceFactor=1e7,
        )
        method.SetShrinkFactorsPerLevel(list(self.shrink_factors))
        method.SetSmoothingSigmasPerLevel(list(self.smoothing_sigmas))
        method.SetInitialTransform(transform, inPlace=True)
        if self.threads is not None:
            method.SetNumberOfThreads(int(self.threads))
        method.Execute(fixed_image, moving_image)
        field = sitk.TransformToDisplacementField(
            transform,
            sitk.sitkVectorFloat64,
            fixed_image.GetSize(),
            fixed_image.GetOrigin(),
            fixed_image.GetSpacing(),
            fixed_image.GetDirection(),
        )
        vectors = sitk.GetArrayFromImage(field)  # (H, W, 2) ordered (x, y)
        return np.stack([vectors[..., 1], vectors[..., 0]]).astype(np.float32)

    def register_pairs(
        self,
        fixed: np.ndarray,
        moving: np.ndarray,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Register N pairs one by one (SimpleITK has no batched mode); arguments and
        result as :meth:`echo_napari.registration.backends.RegistrationBackend.register_pairs`
        ((N, 2, H, W) float32 pixel displacements, pull convention)."""
        fixed, moving = check_pair_batch(fixed, moving)
        out = np.empty((fixed.shape[0], 2, *fixed.shape[1:]), dtype=np.float32)
        for i in range(fixed.shape[0]):
            out[i] = self.register_pair(fixed[i], moving[i])
            if progress is not None:
                progress(i + 1, fixed.shape[0])
        return out
