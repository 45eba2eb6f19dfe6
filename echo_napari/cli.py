"""``echo-napari``: the headless command line (convert, evaluate, report, ...).

Every subcommand works on one file or on a whole dataset folder (EchoNet ``Videos/``,
CAMUS/TED patient folders, HDF5 files with many sequences), shows a progress bar, skips
outputs that already exist (rerun the same command to resume), and ends with a summary
table. ``--workers N`` / ``--scheduler`` spread the sequences over dask workers.

Exit codes: 0 all sequences done (or already done), 1 some sequences failed (the others
were written), 2 bad input or usage (one line on stderr; ``--debug`` shows the traceback),
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from echo_napari import __version__
from echo_napari.cli_tasks import TaskOutcome, summary_table
from echo_napari.errors import EchoNapariError
from echo_napari.mmode.cli import add_subcommand as add_mmode_subcommand

logger = logging.getLogger("echo_napari")

DESCRIPTION = """\
Review tools for echocardiography segmentations, without the GUI.

Inputs can be a single file (.avi, .mp4, .dcm, .nii.gz, .mhd, .h5; an HDF5 file holding
many sequences takes FILE::KEY, e.g. camus.h5::patient0001/4CH) or a dataset folder
(EchoNet-Dynamic root or its Videos/, a CAMUS/TED root with patientXXXX/ folders, or any
folder of supported files). Outputs that already exist are skipped, so an interrupted
run continues where it stopped when you run the same command again.
"""

EPILOG = """\
examples:
  # convert one AVI to our HDF5 session layout, or a whole EchoNet folder (4 processes)
  echo-napari convert EchoNet/Videos/0X1A2B.avi 0X1A2B.h5
  echo-napari convert EchoNet/ converted/ --to .h5 --workers 4

  # CAMUS root -> one HDF5 file in the DIR paper's layout, resized to 512x512
  echo-napari convert CAMUS/training camus.h5 --layout dir-paper --size 512 512

  # carry ED/ES labels to every frame (DIR), or segment every frame (U-Net)
  echo-napari propagate CAMUS/training -o propagated/ --workers 2
  echo-napari predict EchoNet/Videos -o predicted/ --device cuda

  # score predictions against references (paired by sequence name) and make a report
  echo-napari evaluate predictions/ TED/ -o results.csv --workers 2
  echo-napari report results.csv -o report.html

  # use an existing dask cluster (start: `dask scheduler`, then `dask worker ADDRESS`)
  echo-napari evaluate predictions/ TED/ -o results.csv --scheduler tcp://10.0.0.5:8786

run `echo-napari COMMAND --help` for the options of each command.
"""


def _add_common(parser: argparse.ArgumentParser, parallel: bool = True) -> None:
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress details to stderr"
    )
    if parallel:
        parser.add_argument(
            "--workers",
            type=int,
            default=1,
            metavar="N",
            help="run N sequences at a time in N worker processes (dask LocalCluster; "
            "default 1 = in this process)",
        )
        parser.add_argument(
            "--scheduler",
            metavar="tcp://HOST:PORT",
            help="send the sequences to an existing dask.distributed scheduler instead",
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="recompute outputs that already exist"
        )


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        metavar="DEVICE",
        help="torch device: cpu, cuda, cuda:1, mps (default: CUDA when available, else CPU)",
    )


def _add_sequence_io(parser: argparse.ArgumentParser) -> None:
    """The INPUT (file or dataset folder) and -o DIR arguments of per-sequence commands."""
    parser.add_argument("src", metavar="INPUT", help="sequence file or dataset folder")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")


def _finish_subcommand(
    parser: argparse.ArgumentParser,
    handler: Callable[[argparse.Namespace], int],
    *,
    device: bool = False,
    parallel: bool = True,
) -> None:
    """Add the shared trailing options (--device, --debug, ...) and the handler."""
    if device:
        _add_device(parser)
    _add_common(parser, parallel=parallel)
    parser.set_defaults(handler=handler)


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's example lines, wraps the one-paragraph descriptions."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return super()._fill_text(text, width, indent)
        return textwrap.fill(text, min(width, 88), initial_indent=indent, subsequent_indent=indent)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="echo-napari",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"echo-napari {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    convert = sub.add_parser(
        "convert",
        help="convert sequences between formats (incl. CAMUS -> HDF5)",
        description="Convert one sequence file, or every sequence of a dataset folder, to "
        "another format. The format follows the output suffix (.h5 = our session layout, "
        ".nii.gz, .mhd, .avi, .mp4, .dcm).",
        epilog="examples:\n  echo-napari convert clip.avi clip.h5\n"
        "  echo-napari convert EchoNet/Videos converted/ --to .nii.gz\n"
        "  echo-napari convert CAMUS/training camus.h5 --layout dir-paper --size 512 512",
        formatter_class=_HelpFormatter,
    )
    convert.add_argument("src", metavar="SRC", help="input file (FILE::KEY for HDF5) or folder")
    convert.add_argument("dst", metavar="DST", help="output file, or folder for many inputs")
    convert.add_argument(
        "--to",
        default=".h5",
        metavar="SUFFIX",
        help="output suffix when DST is a folder (default .h5)",
    )
    convert.add_argument(
        "--layout",
        choices=("session", "dir-paper"),
        default="session",
        help="dir-paper: SRC is a CAMUS/TED root, DST one .h5 file in the layout of the "
        "MICCAI 2023 DIR paper (/patient/view/data, /masks = [ED, ES], Info attributes)",
    )
    convert.add_argument(
        "--size",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="resize frames and masks (dir-paper layout only; the paper used 512 512)",
    )
    _finish_subcommand(convert, _cmd_convert)

    evaluate = sub.add_parser(
        "evaluate",
        help="score predicted labels against reference labels -> CSV",
        description="Compare predicted labels (PRED) with reference labels (GT), per "
        "sequence: Dice, Hausdorff distance (HD, HD95) and mean absolute surface distance "
        "(MAD) per class averaged over the labelled frames, EF/EDV/ESV (Simpson and "
        "area-length) and area-curve smoothness. Distances are in mm when the reference "
        "has a pixel spacing, else in pixels (column distance_unit). Folders are paired by "
        "sequence name (e.g. patient0001_4CH_gt.nii.gz <-> patient0001_4CH.h5).",
        epilog="examples:\n  echo-napari evaluate pred.h5 ref.h5 -o one.csv\n"
        "  echo-napari evaluate predictions/ TED/ -o results.csv --workers 2\n"
        "writes results.csv (one row per sequence) and results_frames.csv (per frame).",
        formatter_class=_HelpFormatter,
    )
    evaluate.add_argument("pred", metavar="PRED", help="predicted labels: file or folder")
    evaluate.add_argument("gt", metavar="GT", help="reference labels: file or dataset folder")
    evaluate.add_argument("-o", "--output", required=True, metavar="CSV", help="output CSV")
    _finish_subcommand(evaluate, _cmd_evaluate)

    propagate = sub.add_parser(
        "propagate",
        help="carry keyframe labels (e.g. ED/ES) to every frame with DIR",
        description="Register every pair of consecutive frames with the DIRNet, carry the "
        "labels of the keyframes (by default the sequence's keyframes, e.g. EchoNet ED/ES "
        "tracings or CAMUS ED/ES masks; else every labelled frame) forward and backward, "
        "and fuse the two directions (MICCAI 2023 DIR, Eq. 1). Writes OUT/<sequence>.h5 "
        "with frames, labels and provenance, and OUT/<sequence>_jacobian.csv with the "
        "Jacobian determinant statistics of every frame-to-frame field.",
        epilog="examples:\n  echo-napari propagate CAMUS/training -o propagated/ --workers 2\n"
        "  echo-napari propagate clip.h5 -o out/ --keyframes 0 23 --device cuda",
        formatter_class=_HelpFormatter,
    )
    _add_sequence_io(propagate)
    propagate.add_argument(
        "--keyframes",
        type=int,
        nargs="+",
        metavar="T",
        help="0-based frames whose labels are carried (default: keyframes)",
    )
    propagate.add_argument(
        "--weights", metavar="FILE", help="DIRNet .safetensors (default: the bundled model)"
    )
    propagate.add_argument(
        "--refine-steps",
        type=int,
        default=0,
        metavar="N",
        help="instance refinement steps per pair (slower, more accurate)",
    )
    _finish_subcommand(propagate, _cmd_propagate, device=True)

    predict = sub.add_parser(
        "predict",
        help="segment every frame with the 2D+time U-Net",
        description="Segment every frame of each sequence (LV cavity, myocardium, LA) with "
        "the segmentation model and write OUT/<sequence>.h5 with the predicted labels.",
        epilog="example:\n  echo-napari predict EchoNet/Videos -o predicted/ --workers 2",
        formatter_class=_HelpFormatter,
    )
    _add_sequence_io(predict)
    predict.add_argument(
        "--model",
        default="bundled",
        help="'bundled', 'selected', a version id or a .safetensors path",
    )
    predict.add_argument(
        "--no-refine",
        action="store_true",
        help="keep the network's LV border (default: moved to the image's blood/wall "
        "border where the image shows it more sharply, then smoothed at constant area)",
    )
    predict.add_argument(
        "--no-shape-prior",
        action="store_true",
        help="keep the shapes as drawn (default: each frame redrawn by the bundled shape "
        "prior, the LV keeping its area; frames that lost the LV's apex re-drawn from the "
        "frames either side by registration)",
    )
    predict.add_argument(
        "--one-direction",
        action="store_true",
        help="run the network on the clip played forwards only, on overlapping windows "
        "(the same network time; default: forwards and backwards on staggered windows, "
        "averaged, which measured a lower EF error)",
    )
    predict.add_argument(
        "--mirrored",
        action="store_true",
        help="the clips use the mirrored apical convention (LV on the left of the screen): "
        "the models, which know EchoNet's (LV on the right), are given them mirrored back",
    )
    predict.add_argument(
        "--repair",
        action="store_true",
        help="re-draw the frames that fail the anatomical checks from the frames that pass, "
        "by registration (DIRNet); their provenance says 'propagated'",
    )
    _finish_subcommand(predict, _cmd_predict, device=True)

    train_dir = sub.add_parser(
        "train-dir",
        help="train a DIRNet (unsupervised) on a folder of sequences",
        description="Train the registration network on all frame pairs of the sequences in "
        "DATA (no labels needed: local NCC + bending energy). Interrupted training resumes "
        "from WEIGHTS.ckpt/. Use the result with `propagate --weights WEIGHTS`.",
        epilog="example:\n  echo-napari train-dir EchoNet/Videos dirnet_mine.safetensors "
        "--iterations 2000",
        formatter_class=_HelpFormatter,
    )
    train_dir.add_argument("data", metavar="DATA", help="folder of sequences (or one file)")
    train_dir.add_argument("weights", metavar="WEIGHTS", help="output .safetensors file")
    train_dir.add_argument("--iterations", type=int, default=2000, metavar="N")
    train_dir.add_argument("--batch", type=int, default=8, metavar="B", help="pairs per step")
    _finish_subcommand(train_dir, _cmd_train_dir, device=True, parallel=False)

    train_seg = sub.add_parser(
        "train-seg",
        help="train the segmentation U-Net on labelled sequences",
        description="Train the 2D+time U-Net on the labelled frames of the sequences in DATA "
        "(sparse supervision: unlabelled frames get no loss). Writes STEM.safetensors and "
        "STEM.json; use it with `predict --model STEM.safetensors`.",
        epilog="example:\n  echo-napari train-seg TED/ my_seg --steps 1000",
        formatter_class=_HelpFormatter,
    )
    train_seg.add_argument("data", metavar="DATA", help="folder of labelled sequences")
    train_seg.add_argument("stem", metavar="STEM", help="output path without suffix")
    train_seg.add_argument("--steps", type=int, default=1000, metavar="N")
    train_seg.add_argument(
        "--channels",
        type=int,
        nargs="+",
        metavar="C",
        help="U-Net channels per level (default: the bundled model's)",
    )
    train_seg.add_argument(
        "--clip-len",
        type=int,
        metavar="T",
        help="frames per training clip (default: the bundled model's)",
    )
    _finish_subcommand(train_seg, _cmd_train_seg, device=True, parallel=False)

    tune = sub.add_parser(
        "fine-tune",
        help="fine-tune the segmentation model on your corrected frames",
        description="Fine-tune the segmentation U-Net on the corrected frames of one sequence "
        "(the keyframes and manual frames of a session file saved by the review dock, or the "
        "traced frames of an EchoNet/CAMUS/TED file). Writes a new model version to your data "
        "folder (never overwrites; the parent is recorded) and prints the Dice on the "
        "corrected frames before and after. Use it with `predict --model seg_vN`.",
        epilog="examples:\n  echo-napari fine-tune my_study.h5 --steps 60\n"
        "  echo-napari fine-tune patient0001_4CH_half_sequence.nii.gz --base bundled",
        formatter_class=_HelpFormatter,
    )
    tune.add_argument("data", metavar="INPUT", help="session .h5 or labelled sequence file")
    tune.add_argument(
        "--base",
        default="selected",
        help="model to start from: selected (default), bundled, seg_vN or a .safetensors path",
    )
    tune.add_argument("--steps", type=int, default=60, metavar="N", help="optimiser steps")
    tune.add_argument(
        "--propagated-weight",
        type=float,
        default=0.3,
        metavar="W",
        help="loss weight of propagated frames (manual frames weigh 1; default 0.3)",
    )
    tune.add_argument(
        "--use-autosave",
        action="store_true",
        help="when a session has a newer autosave, fine-tune on the autosaved state",
    )
    _finish_subcommand(tune, _cmd_fine_tune, device=True, parallel=False)

    report = sub.add_parser(
        "report",
        help="HTML report with plots from an evaluate CSV",
        description="Make a self-contained HTML report (inline SVG plots, no extra "
        "packages) from the CSV of `evaluate`: Dice/HD95/MAD boxplots per class, EF "
        "scatter and Bland-Altman plot with correlation, bias, MAE and bootstrap 95 % "
        "confidence intervals, per-frame area curves of a few sequences and, with "
        "--jacobian, the Jacobian determinant of the registration fields per frame. "
        "An output ending in .pdf gets a printable A4 copy instead (drawn by Qt).",
        epilog="examples:\n  echo-napari report results.csv -o report.html --curves 4 "
        "--jacobian propagated/\n  echo-napari report results.csv -o report.pdf",
        formatter_class=_HelpFormatter,
    )
    report.add_argument("csv", metavar="CSV", help="per-sequence CSV written by evaluate")
    report.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FILE",
        help="output file: .html, or .pdf for a printable copy",
    )
    report.add_argument(
        "--curves", type=int, default=4, metavar="N", help="area curves of N sequences"
    )
    report.add_argument(
        "--sequences", nargs="+", metavar="NAME", help="show the curves of these sequences"
    )
    report.add_argument("--title", default="echo-napari evaluation", help="report title")
    report.add_argument(
        "--jacobian",
        metavar="DIR",
        help="output folder of `propagate`: adds Jacobian determinant boxplots per frame",
    )
    _finish_subcommand(report, _cmd_report, parallel=False)
    add_mmode_subcommand(sub)
    return parser


def _print_summary(
    args: argparse.Namespace, outcomes: list[TaskOutcome], columns: Sequence[str] = ()
) -> int:
    sys.stdout.write(summary_table(outcomes, columns) + "\n")
    failed = [o for o in outcomes if o.status == "failed"]
    for outcome in failed:
        if args.debug and outcome.detail:
            sys.stderr.write(f"--- {outcome.name}\n{outcome.detail}")
    if failed:
        sys.stderr.write(
            f"echo-napari: {len(failed)} of {len(outcomes)} sequences failed (listed above); "
            "the others were written\n"
        )
    return 1 if failed else 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from echo_napari.cli_convert import run_convert, write_dir_paper_hdf5

    if args.layout == "dir-paper":
        if Path(args.dst).exists() and not args.overwrite:
            sys.stdout.write(f"{args.dst} exists; skipped (use --overwrite to redo)\n")
            return 0
        outcomes = write_dir_paper_hdf5(args.src, args.dst, args.size)
        return _print_summary(args, outcomes, ("NbFrame", "ED", "ES"))
    if args.size:
        raise EchoNapariError("--size only applies to --layout dir-paper")
    outcomes = run_convert(
        args.src, args.dst, args.to, args.workers, args.scheduler, args.overwrite
    )
    return _print_summary(args, outcomes, ("frames", "output"))


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from echo_napari.cli_evaluate import frames_csv_path, run_evaluate

    outcomes = run_evaluate(
        args.pred, args.gt, args.output, args.workers, args.scheduler, args.overwrite
    )
    code = _print_summary(args, outcomes, ("dice_lv", "hd95_lv", "mad_lv", "ef_ref", "ef_pred"))
    if any(o.status != "failed" for o in outcomes):
        sys.stdout.write(f"wrote {args.output} and {frames_csv_path(args.output)}\n")
    return code


def _cmd_propagate(args: argparse.Namespace) -> int:
    from echo_napari.cli_compute import propagate_one, run_per_sequence

    options = {
        "keyframes": args.keyframes,
        "weights": args.weights,
        "device": args.device,
        "refine_steps": args.refine_steps,
    }
    outcomes = run_per_sequence(
        propagate_one,
        args.src,
        args.output,
        options,
        ".h5",
        args.workers,
        args.scheduler,
        args.overwrite,
        "propagate",
    )
    return _print_summary(args, outcomes, ("frames", "keyframes", "folding_pct"))


def _cmd_predict(args: argparse.Namespace) -> int:
    from echo_napari.cli_compute import predict_one, run_per_sequence

    options = {
        "model": args.model,
        "device": args.device,
        "repair": args.repair,
        "refine": not args.no_refine,
        "shape_prior": not args.no_shape_prior,
        "both_directions": not args.one_direction,
        "mirrored": args.mirrored,
    }
    outcomes = run_per_sequence(
        predict_one,
        args.src,
        args.output,
        options,
        ".h5",
        args.workers,
        args.scheduler,
        args.overwrite,
        "predict",
    )
    columns = ("frames", "model", "lv_frames", "no_view", "mitral_cut", "unsure", "ef")
    columns += ("plausible_pct",)
    columns += () if args.no_refine else ("refined",)
    code = _print_summary(
        args, outcomes, columns + (("repaired",) if args.repair else ()) + ("view",)
    )
    for outcome in outcomes:
        for key in ("probe_warning", "view_warning"):
            if outcome.status == "done" and outcome.value.get(key):
                sys.stderr.write(f"echo-napari: {outcome.name}: {outcome.value[key]}\n")
    return code


def _train(
    args: argparse.Namespace,
    run: Callable[..., dict],
    total: int,
    *pos: Any,
    columns: Sequence[str] = ("steps", "loss", "sequences", "output"),
    **kw: Any,
) -> int:
    from tqdm import tqdm

    with tqdm(total=total, desc=args.command, unit="step", disable=None) as bar:

        def progress(done: int, _total: int) -> None:
            bar.n = done
            bar.refresh()

        result = run(*pos, device=args.device, progress=progress, **kw)
    outcome = TaskOutcome(str(args.data), "done", result)
    code = _print_summary(args, [outcome], columns)
    if result.get("view_warning"):
        sys.stderr.write(f"echo-napari: {args.data}: {result['view_warning']}\n")
    return code


def _cmd_train_dir(args: argparse.Namespace) -> int:
    from echo_napari.cli_compute import train_dir

    return _train(
        args, train_dir, args.iterations, args.data, args.weights, args.iterations, args.batch
    )


def _cmd_train_seg(args: argparse.Namespace) -> int:
    from echo_napari.cli_compute import train_seg

    channels = tuple(args.channels) if args.channels else None
    return _train(
        args,
        train_seg,
        args.steps,
        args.data,
        args.stem,
        args.steps,
        channels=channels,
        clip_len=args.clip_len,
    )


def _cmd_fine_tune(args: argparse.Namespace) -> int:
    from echo_napari.cli_compute import fine_tune_seg

    return _train(
        args,
        fine_tune_seg,
        args.steps,
        args.data,
        args.base,
        args.steps,
        columns=("version", "dice before", "dice after", "output"),
        use_autosave=args.use_autosave,
        propagated_weight=args.propagated_weight,
    )


def _cmd_report(args: argparse.Namespace) -> int:
    from echo_napari.report import write_report

    path = write_report(
        args.csv,
        args.output,
        n_curves=args.curves,
        sequences=args.sequences,
        title=args.title,
        jacobian_folder=args.jacobian,
    )
    sys.stdout.write(f"wrote {path}\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "debug"):
        args.debug = False
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if getattr(args, "workers", 1) < 1:
        parser.error("--workers must be at least 1")
    try:
        return int(args.handler(args))
    except EchoNapariError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"echo-napari {args.command}: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("echo-napari: interrupted; run the same command again to resume\n")
        return 130


if __name__ == "__main__":
    sys.exit(main())
