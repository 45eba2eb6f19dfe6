"""Dataset statistics: agreement (correlation, bias, MAE), bootstrap CIs, Jacobian statistics.

Agreement of a measurement (e.g. EF from our segmentation) with a reference follows the
MICCAI 2023 DIR paper (Pearson correlation, bias = mean(pred − ref), MAE) plus
Bland–Altman limits of agreement. Confidence intervals are percentile bootstrap intervals
(:func:`scipy.stats.bootstrap`), seeded, at a true 95 % by default (SimLVSeg reports a
95 % CI; their script computed a 90 % one).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from echo_napari.errors import SequenceError


@dataclass(frozen=True)
class Agreement:
    """Agreement of paired measurements; differences are ``pred − ref``.

    Attributes
    ----------
    n : pairs used (pairs with a NaN or inf are dropped)
    pearson_r : Pearson correlation (NaN for n < 2 or a constant input)
    bias : mean difference
    mae : mean absolute difference
    sd : standard deviation of the differences (ddof=1)
    loa_low, loa_high : Bland–Altman limits of agreement, bias ∓ 1.96·sd
    """

    n: int
    pearson_r: float
    bias: float
    mae: float
    sd: float
    loa_low: float
    loa_high: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict (for tables)."""
        return asdict(self)


def _paired(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred, dtype=np.float64).ravel()
    ref = np.asarray(ref, dtype=np.float64).ravel()
    if pred.shape != ref.shape:
        raise SequenceError(f"paired values differ in length: {pred.size} vs {ref.size}")
    keep = np.isfinite(pred) & np.isfinite(ref)
    return pred[keep], ref[keep]


def agreement(pred: np.ndarray, ref: np.ndarray) -> Agreement:
    """Correlation, bias, MAE and limits of agreement of paired values.

    Parameters
    ----------
    pred, ref : (N,) float, same unit (e.g. EF in %)
    """
    pred, ref = _paired(pred, ref)
    n = int(pred.size)
    if n == 0:
        nan = float("nan")
        return Agreement(0, nan, nan, nan, nan, nan, nan)
    diff = pred - ref
    bias = float(diff.mean())
    sd = float(diff.std(ddof=1)) if n > 1 else float("nan")
    if n > 1 and np.ptp(pred) > 0 and np.ptp(ref) > 0:
        r = float(stats.pearsonr(pred, ref).statistic)
    else:
        r = float("nan")
    return Agreement(
        n=n,
        pearson_r=r,
        bias=bias,
        mae=float(np.abs(diff).mean()),
        sd=sd,
        loa_low=bias - 1.96 * sd,
        loa_high=bias + 1.96 * sd,
    )


def bootstrap_ci(
    *samples: np.ndarray,
    statistic: Callable[..., float] = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    method: str = "percentile",
    vectorized: bool | None = None,
) -> tuple[float, float]:
    """Bootstrap confidence interval of a statistic of one or more paired samples.

    Parameters
    ----------
    *samples : (N,) float each; several samples are resampled together (paired), e.g.
        ``bootstrap_ci(pred, ref, statistic=lambda p, r: np.mean(abs(p - r)))`` for MAE.
        Entries with a NaN/inf in any sample are dropped first.
    statistic : function of the sample(s) returning a float (default: the mean)
    confidence : two-sided level, 0.95 = 95 %
    n_resamples : bootstrap resamples
    seed : random seed (results are reproducible)
    method : "percentile", "basic" or "BCa" (as :func:`scipy.stats.bootstrap`)
    vectorized : True when ``statistic`` takes an ``axis`` keyword (much faster); None
        = True for the default mean, else False

    Returns
    -------
    (low, high) ; (NaN, NaN) with fewer than 2 finite entries
    """
    if not samples:
        raise ValueError("bootstrap_ci needs at least one sample")
    arrays = [np.asarray(s, dtype=np.float64).ravel() for s in samples]
    if len({a.size for a in arrays}) != 1:
        raise SequenceError(f"paired samples differ in length: {[a.size for a in arrays]}")
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    arrays = [a[keep] for a in arrays]
    if arrays[0].size < 2:
        return float("nan"), float("nan")
    if vectorized is None:
        vectorized = statistic is np.mean
    result = stats.bootstrap(
        tuple(arrays),
        statistic,
        n_resamples=n_resamples,
        paired=True,
        vectorized=vectorized,
        confidence_level=confidence,
        method=method,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass(frozen=True)
class JacobianStats:
    """Summary of the Jacobian determinant of a displacement field.

    Attributes
    ----------
    folding_fraction : share of pixels with det J ≤ 0 (0..1)
    min, max, mean : of det J
    log_std : standard deviation of log det J over pixels with det J > 0
    percentiles : det J at the 1, 5, 25, 50, 75, 95, 99th percentiles (boxplot whiskers)
    """

    folding_fraction: float
    min: float
    max: float
    mean: float
    log_std: float
    percentiles: tuple[float, ...]


PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def jacobian_statistics(displacement: np.ndarray) -> list[JacobianStats]:
    """Jacobian determinant statistics of one or several displacement fields.

    The determinant itself comes from
    :func:`echo_napari.registration.jacobian_determinant` (the DIR engine's definition for
    the pull convention, ``det(I + ∇u)`` by finite differences), so diagnostics here and in
    the registration code agree.

    Parameters
    ----------
    displacement : (2, H, W) or (N, 2, H, W) float32, pixels

    Returns
    -------
    list of JacobianStats, one per field
    """
    from echo_napari.registration import jacobian_determinant

    fields = np.asarray(displacement, dtype=np.float32)
    if fields.ndim == 3:
        fields = fields[None]
    if fields.ndim != 4 or fields.shape[1] != 2:
        raise SequenceError(
            f"displacement must be (2, H, W) or (N, 2, H, W); got shape {fields.shape}"
        )
    det = np.asarray(jacobian_determinant(fields), dtype=np.float64)
    out = []
    for d in det.reshape(fields.shape[0], -1):
        positive = d[d > 0]
        out.append(
            JacobianStats(
                folding_fraction=float(np.mean(d <= 0)),
                min=float(d.min()),
                max=float(d.max()),
                mean=float(d.mean()),
                log_std=float(np.log(positive).std()) if positive.size else float("nan"),
                percentiles=tuple(float(p) for p in np.percentile(d, PERCENTILES)),
            )
        )
    return out
