"""Self-contained HTML evaluation report from the CSV files of ``echo-napari evaluate``.

Sections: dataset table (mean, SD, median and bootstrap 95 % CI of the mean per class and
metric), Dice/HD95/MAD boxplots per class, EF agreement (scatter against the reference and
Bland–Altman, with Pearson r, bias, MAE and their bootstrap 95 % CIs), smoothness
boxplots, and per-frame area curves with the ED/ES frames of a few sequences. Plots are
inline SVG (:mod:`echo_napari.report_svg`), so the file opens anywhere without extra
packages.
"""

from __future__ import annotations

import datetime
import html
from pathlib import Path

import numpy as np
import pandas as pd

from echo_napari.cli_evaluate import frames_csv_path
from echo_napari.cli_tasks import atomic_path
from echo_napari.errors import EchoIOError
from echo_napari.metrics import CLASS_KEYS
from echo_napari.metrics_stats import agreement, bootstrap_ci
from echo_napari.report_svg import (
    PALETTE,
    bland_altman,
    boxplot,
    curves,
    percentile_boxes,
    scatter_identity,
)

CLASS_TITLES = {"lv": "LV cavity", "myo": "LV myocardium", "la": "left atrium"}
METRICS = (
    ("dice", "Dice", ""),
    ("hd", "HD", "dist"),
    ("hd95", "HD95", "dist"),
    ("mad", "MAD", "dist"),
)

STYLE = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1320px; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; } .note { color: #555; font-size: 13px; }
"""


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError as exc:
        raise EchoIOError(path, "no such file; run `echo-napari evaluate` first") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise EchoIOError(path, f"not a readable CSV file ({exc})") from exc


def _present_classes(summary: pd.DataFrame) -> list[str]:
    keys = []
    for key in CLASS_KEYS.values():
        column = f"dice_{key}"
        if column in summary and np.isfinite(summary[column].to_numpy(float)).any():
            keys.append(key)
    return keys


def _unit(summary: pd.DataFrame, column: str, default: str) -> str:
    if column not in summary or summary[column].isna().all():
        return default
    units = sorted(set(summary[column].dropna().astype(str)))
    return units[0] if len(units) == 1 else "mixed units"


def _ci_text(values: np.ndarray, seed: int = 0) -> str:
    low, high = bootstrap_ci(values, seed=seed)
    return "–" if not np.isfinite(low) else f"{low:.3g} – {high:.3g}"


def metrics_table(summary: pd.DataFrame, classes: list[str], dist_unit: str) -> str:
    """HTML table: per class and metric, n, mean ± SD, median, bootstrap 95 % CI of the mean."""
    rows = []
    for key in classes:
        for metric, label, kind in METRICS:
            column = f"{metric}_{key}"
            if column not in summary:
                continue
            values = summary[column].to_numpy(float)
            values = values[np.isfinite(values)]
            unit = f" ({dist_unit})" if kind == "dist" else ""
            if values.size == 0:
                continue
            rows.append(
                f"<tr><td>{CLASS_TITLES.get(key, key)}</td><td>{label}{unit}</td>"
                f"<td>{values.size}</td><td>{values.mean():.4g} ± {values.std(ddof=0):.3g}</td>"
                f"<td>{np.median(values):.4g}</td><td>{_ci_text(values)}</td></tr>"
            )
    return (
        "<table><tr><th>class</th><th>metric</th><th>sequences</th><th>mean ± SD</th>"
        "<th>median</th><th>95 % CI of the mean</th></tr>" + "".join(rows) + "</table>"
    )


def ef_section(summary: pd.DataFrame, volume_unit: str) -> str:
    """EF agreement table and scatter + Bland–Altman plots.

    Rows: Simpson and area-length EF at the reference's ED/ES against the reference
    labels' EF; against the file's EF (EchoNet FileList, CAMUS Info cfg) when present, the
    prediction's EF over its beats (:func:`echo_napari.metrics_ef.ef_by_beats`, what
    ``predict`` reports) and at its own ED/ES. Plots for the first row with data.
    """
    parts, rows = [], []
    comparisons = (
        ("ef_pred", "ef_ref", "Simpson monoplane"),
        ("ef_pred_area_length", "ef_ref_area_length", "area-length"),
        ("ef_pred_beats", "ef_file", "mean over beats (area-length) vs file EF"),
        ("ef_pred_auto", "ef_file", "own ED/ES vs file EF"),
    )
    for pred_col, ref_col, method in comparisons:
        if pred_col not in summary or ref_col not in summary:
            continue
        pred = summary[pred_col].to_numpy(float)
        ref = summary[ref_col].to_numpy(float)
        a = agreement(pred, ref)
        keep = np.isfinite(pred) & np.isfinite(ref)
        if not keep.any():
            continue
        mae_ci = bootstrap_ci(pred, ref, statistic=_mae, vectorized=True)
        bias_ci = bootstrap_ci(pred, ref, statistic=_bias, vectorized=True)
        r_ci = (np.nan, np.nan)
        if a.n >= 3 and np.isfinite(a.pearson_r):
            r_ci = bootstrap_ci(pred, ref, statistic=_pearson)
        rows.append(
            f"<tr><td>EF, {method}</td><td>{a.n}</td><td>{a.pearson_r:.3f} "
            f"[{r_ci[0]:.3f}, {r_ci[1]:.3f}]</td><td>{a.bias:+.2f} [{bias_ci[0]:+.2f}, "
            f"{bias_ci[1]:+.2f}]</td><td>{a.mae:.2f} [{mae_ci[0]:.2f}, {mae_ci[1]:.2f}]</td>"
            f"<td>{a.loa_low:+.2f} / {a.loa_high:+.2f}</td></tr>"
        )
        if not parts:  # plots for the first comparison with data
            note = f"r = {a.pearson_r:.3f}, bias = {a.bias:+.2f}, MAE = {a.mae:.2f}"
            parts.append(
                scatter_identity(
                    ref[keep],
                    pred[keep],
                    f"EF ({method})",
                    "reference EF (%)",
                    "predicted EF (%)",
                    note,
                )
            )
            parts.append(
                bland_altman(
                    ref[keep],
                    pred[keep],
                    a.bias,
                    (a.loa_low, a.loa_high),
                    f"EF Bland–Altman ({method})",
                    "%",
                )
            )
    for name in ("edv", "esv"):
        pred_col, ref_col = f"{name}_pred", f"{name}_ref"
        if pred_col in summary and ref_col in summary:
            a = agreement(summary[pred_col], summary[ref_col])
            if a.n == 0:
                continue
            rows.append(
                f"<tr><td>{name.upper()} ({volume_unit}), Simpson</td><td>{a.n}</td>"
                f"<td>{a.pearson_r:.3f}</td><td>{a.bias:+.2f}</td><td>{a.mae:.2f}</td>"
                f"<td>{a.loa_low:+.2f} / {a.loa_high:+.2f}</td></tr>"
            )
    if not rows:
        return "<p class='note'>No EF columns in the CSV.</p>"
    table = (
        "<table><tr><th>quantity</th><th>n</th><th>Pearson r [95 % CI]</th>"
        "<th>bias (pred − ref) [95 % CI]</th><th>MAE [95 % CI]</th>"
        "<th>limits of agreement</th></tr>" + "".join(rows) + "</table>"
    )
    return table + f"<div class='plots'>{''.join(parts)}</div>"


def _mae(p: np.ndarray, r: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(np.abs(p - r), axis=axis)


def _bias(p: np.ndarray, r: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(p - r, axis=axis)


def _pearson(p: np.ndarray, r: np.ndarray) -> float:
    if np.ptp(p) == 0 or np.ptp(r) == 0:
        return float("nan")
    return float(np.corrcoef(p, r)[0, 1])


def curves_section(
    summary: pd.DataFrame, frames: pd.DataFrame | None, names: list[str], area_unit: str
) -> str:
    """Area curves (prediction as lines, reference as dots) with ED/ES marks."""
    if frames is None or frames.empty:
        return "<p class='note'>No per-frame CSV found next to the summary CSV.</p>"
    blocks = []
    for name in names:
        seq = frames[frames["sequence"].astype(str) == str(name)]
        if seq.empty:
            continue
        row = summary[summary["sequence"].astype(str) == str(name)]
        marks = {}
        if not row.empty:
            for label, column in (("ED", "ed_index"), ("ES", "es_index")):
                if column in row and np.isfinite(row[column].iloc[0]):
                    marks[label] = float(row[column].iloc[0])
        series = {}
        for i, key in enumerate(CLASS_KEYS.values()):
            part = seq[seq["class"] == key].sort_values("frame")
            if part.empty or not (part["pred_area"] > 0).any():
                continue
            color = PALETTE[i]
            series[f"{key} predicted"] = (part["pred_area"].to_numpy(float), color, False)
            series[f"{key} reference"] = (part["ref_area"].to_numpy(float), color, True)
            x = part["frame"].to_numpy(float)
        if series:
            blocks.append(
                curves(x, series, f"{name}: area per frame", "frame", f"area ({area_unit})", marks)
            )
    return f"<div class='plots'>{''.join(blocks)}</div>"


def jacobian_section(jacobian: pd.DataFrame, names: list[str]) -> str:
    """Folding table for all sequences and det J boxplots per frame pair for ``names``."""
    per_sequence = jacobian.groupby("sequence", sort=False).agg(
        pairs=("pair", "size"),
        folding_mean=("folding_fraction", "mean"),
        folding_max=("folding_fraction", "max"),
        det_min=("min", "min"),
        log_std=("log_std", "mean"),
    )
    rows = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{int(r.pairs)}</td>"
        f"<td>{100 * r.folding_mean:.3f}</td><td>{100 * r.folding_max:.3f}</td>"
        f"<td>{r.det_min:.3f}</td><td>{r.log_std:.3f}</td></tr>"
        for name, r in per_sequence.iterrows()
    )
    table = (
        "<table><tr><th>sequence</th><th>frame pairs</th><th>folding, mean %</th>"
        "<th>folding, worst pair %</th><th>min det J</th><th>SD log det J</th></tr>"
        f"{rows}</table>"
    )
    plots = []
    for name in names:
        part = jacobian[jacobian["sequence"].astype(str) == str(name)].sort_values("pair")
        if part.empty:
            continue
        plots.append(
            percentile_boxes(
                part["moving"].to_numpy(float),
                *(part[f"p{q}"].to_numpy(float) for q in (5, 25, 50, 75, 95)),
                title=f"{name}: Jacobian determinant of each frame t → t+1 field",
                xlabel="frame t",
                ylabel="det J (box 25–75 %, whiskers 5–95 %)",
                reference=0.0,
            )
        )
    note = (
        "<p class='note'>det J ≤ 0 (below the red line) is folding: the field is not "
        "invertible there.</p>"
    )
    return table + note + f"<div class='plots'>{''.join(plots)}</div>"


def read_jacobian_tables(folder: str | Path) -> pd.DataFrame | None:
    """All ``*_jacobian.csv`` tables written by ``echo-napari propagate`` in ``folder``."""
    paths = sorted(Path(folder).glob("*_jacobian.csv"))
    if not Path(folder).is_dir():
        raise EchoIOError(folder, "expected the output folder of `echo-napari propagate`")
    if not paths:
        return None
    return pd.concat([_read_csv(p) for p in paths], ignore_index=True)


def build_report(
    summary: pd.DataFrame,
    frames: pd.DataFrame | None,
    n_curves: int = 4,
    sequences: list[str] | None = None,
    title: str = "echo-napari evaluation",
    jacobian: pd.DataFrame | None = None,
) -> str:
    """The report as an HTML string (see the module docstring)."""
    if "sequence" not in summary or summary.empty:
        raise EchoIOError("summary CSV", "has no rows or no 'sequence' column")
    classes = _present_classes(summary)
    dist_unit = _unit(summary, "distance_unit", "mm")
    volume_unit = _unit(summary, "volume_unit", "mL")
    area_unit = "mm²" if dist_unit == "mm" else "pixels"
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(summary)} sequences · generated "
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC · per-frame "
        "metrics averaged per sequence, then over sequences (MICCAI 2023 DIR protocol); "
        "CIs: percentile bootstrap, 2000 resamples, seed 0.</p>",
        "<h2>Segmentation metrics</h2>",
        metrics_table(summary, classes, dist_unit),
    ]
    plots = []
    for metric, label, kind in METRICS:
        groups = {
            k: summary[f"{metric}_{k}"].to_numpy(float)
            for k in classes
            if f"{metric}_{k}" in summary
        }
        if groups:
            ylabel = f"{label} ({dist_unit})" if kind else label
            plots.append(boxplot(groups, f"{label} per sequence", ylabel))
    sections.append(f"<div class='plots'>{''.join(plots)}</div>")
    sections += ["<h2>Ejection fraction</h2>", ef_section(summary, volume_unit)]
    smooth = {}
    for key in classes:
        for who in ("pred", "ref"):
            column = f"smoothness_{who}_{key}"
            if column in summary and np.isfinite(summary[column].to_numpy(float)).any():
                values = summary[column].to_numpy(float)
                # A constant curve has smoothness 0: no log; left out of the boxplot.
                smooth[f"{key} {who}"] = np.log10(
                    values, where=values > 0, out=np.full(values.shape, np.nan)
                )
    if smooth:
        sections += [
            "<h2>Temporal smoothness (Eq. 2)</h2>",
            "<p class='note'>log10 of ∫ a''(t)² dt of each class's area curve normalised "
            "by its mean (lower is smoother).</p>",
            # in a block of its own, as every other plot (Qt's PDF layout put a bare plot
            # on the note's line)
            f"<div class='plots'>{boxplot(smooth, 'area-curve smoothness', 'log10 smoothness')}"
            "</div>",
        ]
    names = list(sequences) if sequences else list(summary["sequence"].astype(str))[:n_curves]
    sections += ["<h2>Area curves</h2>", curves_section(summary, frames, names, area_unit)]
    if jacobian is not None and not jacobian.empty:
        sections += [
            "<h2>Registration: Jacobian determinant</h2>",
            jacobian_section(jacobian, names),
        ]
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>"
    )


def write_report(
    csv: str | Path,
    output: str | Path,
    n_curves: int = 4,
    sequences: list[str] | None = None,
    title: str = "echo-napari evaluation",
    jacobian_folder: str | Path | None = None,
) -> Path:
    """Read an evaluate CSV (and its ``_frames.csv`` if present), write the HTML report
    (a printable A4 PDF of it when ``output`` ends in ``.pdf``:
    :func:`echo_napari.report_pdf.write_pdf`).

    ``jacobian_folder``: the output folder of ``echo-napari propagate`` (its
    ``*_jacobian.csv`` files add the folding section).

    Returns
    -------
    Path of the report (written atomically)
    """
    csv = Path(csv)
    summary = _read_csv(csv)
    frames_path = frames_csv_path(csv)
    frames = _read_csv(frames_path) if frames_path.exists() else None
    jacobian = read_jacobian_tables(jacobian_folder) if jacobian_folder else None
    text = build_report(summary, frames, n_curves, sequences, title, jacobian)
    if Path(output).suffix.lower() == ".pdf":
        from echo_napari.report_pdf import write_pdf

        return write_pdf(text, output)
    with atomic_path(output) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(output)
