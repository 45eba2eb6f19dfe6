"""``echo-napari mmode``: anatomical (or real) M-mode → band, LVID curve, beats, CSV.

The lead wires :func:`add_subcommand` into :mod:`echo_napari.cli`; errors are raised as
:class:`~echo_napari.errors.EchoNapariError` (the main CLI prints them, exit code 2).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from echo_napari.errors import EchoIOError, EchoNapariError, SequenceError
from echo_napari.mmode.sampling import MModeImage, MModeLine

EPILOG = """\
examples:
  # default line from the sequence's labels (or from the bundled segmentation model)
  echo-napari mmode patient0001_4CH_half_sequence.nii.gz --output mmode/
  # an explicit line (pixels of the frame) on a video without spacing in its header
  echo-napari mmode 0X1A2B.avi --output mmode/ --line 40,20,60,90 --spacing 0.7,0.7
  # a real M-mode DICOM (time-based region): no sampling step
  echo-napari mmode mmode.dcm --output mmode/
"""


def _parse_spacing(text: str) -> tuple[float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected DY,DX in mm; got {text!r}") from exc
    if len(values) == 1:
        values = (values[0], values[0])
    if len(values) != 2 or not all(np.isfinite(v) and v > 0 for v in values):
        raise argparse.ArgumentTypeError(
            f"expected two positive numbers DY,DX in mm; got {text!r}"
        )
    return values  # type: ignore[return-value]


def add_subcommand(subparsers: argparse._SubParsersAction) -> None:
    """Register ``mmode SEQUENCE --output DIR [--line Y0,X0,Y1,X1]`` and its handler."""
    parser = subparsers.add_parser(
        "mmode",
        help="anatomical M-mode, LV internal diameter curve, FS and Teichholz EF",
        description="Sample the M-mode of SEQUENCE along a line (default: perpendicular to "
        "the LV long axis at one third of its length from the base, from the ED labels), "
        "segment the LV band, flag poor windows, and write DIR/<stem>_mmode.csv "
        "(time_s,lvid_mm, one row per frame), the M-mode and band as PNG and a JSON "
        "summary (LVIDd, LVIDs, FS, EDV, ESV, EF, heart rate). A real M-mode file (PNG, "
        "TIFF, DICOM with a time-based region) skips the sampling.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sequence", metavar="SEQUENCE", help="B-mode sequence or M-mode file")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument(
        "--line", metavar="Y0,X0,Y1,X1", help="line end points in pixels of the frame"
    )
    parser.add_argument(
        "--spacing",
        type=_parse_spacing,
        metavar="DY,DX",
        help="pixel spacing in mm for sequences whose file has none (e.g. EchoNet AVI)",
    )
    parser.add_argument(
        "--from-labels",
        action="store_true",
        help="measure the band sampled from the sequence's labels instead of the network's",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    parser.set_defaults(handler=run_mmode_command)


def _load_strip(args: argparse.Namespace) -> MModeImage:
    from echo_napari.mmode.analysis import anatomical_mmode
    from echo_napari.mmode.readers import is_mmode_file, read_mmode

    path = Path(args.sequence)
    if not path.exists():
        raise EchoIOError(path, "no such file")
    if is_mmode_file(path):
        if args.line:
            raise EchoNapariError(f"{path.name} is already an M-mode image: --line does not apply")
        return read_mmode(path)
    from echo_napari.io import read_sequence

    sequence = read_sequence(path)
    if args.spacing is not None:
        sequence = sequence.copy(spacing=tuple(args.spacing))
    line = MModeLine.parse(args.line) if args.line else None
    if line is None and sequence.labels is None:
        sequence = _segment_for_line(sequence, path)
    return anatomical_mmode(sequence, line)


def _segment_for_line(sequence, path: Path):
    from echo_napari.errors import ModelError

    try:
        from echo_napari.segmentation import load_model, predict_sequence

        model = load_model()
    except ModelError as exc:
        raise SequenceError(
            f"{path.name} has no labels and no segmentation model is available ({exc}); "
            "give the line with --line Y0,X0,Y1,X1"
        ) from exc
    labels = predict_sequence(sequence.frames_array(), model, frame_time_ms=sequence.frame_time_ms)
    return sequence.copy(labels=labels)


def run_mmode_command(args: argparse.Namespace) -> int:
    """Handler of ``echo-napari mmode``; returns the exit code."""
    from echo_napari.mmode.analysis import analyse_strip
    from echo_napari.mmode.measure import measure_band, write_diameter_csv
    from echo_napari.mmode.writers import write_strip_png

    strip = _load_strip(args)
    if not strip.calibrated:
        raise SequenceError(
            f"{Path(args.sequence).name}: the M-mode is uncalibrated "
            f"({strip.metadata.get('calibration', 'no pixel spacing')}); pass --spacing DY,DX "
            "(mm) for a sequence, or use a DICOM with a time-based region"
        )
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    stem = Path(args.sequence).name.split(".")[0]
    if args.from_labels:
        if strip.band is None:
            raise SequenceError(f"{Path(args.sequence).name} has no labels: drop --from-labels")
        band = strip.band
        measurements = measure_band(
            band, strip.depth_step_mm, strip.time_step_s, probability=strip.band_probability
        )
        flagged = 0
    else:
        result = analyse_strip(strip)
        band, measurements = result.band, result.measurements
        flagged = sum(w.poor for w in result.windows)
    csv_path = write_diameter_csv(output / f"{stem}_mmode.csv", measurements)
    images = write_strip_png(output / f"{stem}_mmode.png", strip.image, band)
    summary = {
        **measurements.summary(),
        "depth_step_mm": strip.depth_step_mm,
        "time_step_s": strip.time_step_s,
        "line_y0_x0_y1_x1": None if strip.line is None else list(strip.line.points.ravel()),
        "poor_windows": flagged,
        "band_source": "labels" if args.from_labels else "mmode network",
    }
    json_path = output / f"{stem}_mmode.json"
    json_path.write_text(json.dumps(summary, indent=2))
    for path in (csv_path, *images, json_path):
        sys.stdout.write(f"wrote {path}\n")
    fields = ", ".join(
        f"{k} {v:.1f}"
        for k, v in summary.items()
        if isinstance(v, float) and k.endswith(("mm", "ml", "percent", "bpm"))
    )
    sys.stdout.write(f"{stem}: {fields or 'no complete beat found'}\n")
    return 0
