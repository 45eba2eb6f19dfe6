"""``python -m echo_napari.simulate``: write simulated datasets in the real layouts."""

from __future__ import annotations

import argparse
import logging
import sys

from echo_napari.errors import EchoNapariError
from echo_napari.simulation.datasets import FORMATS, write_dataset
from echo_napari.simulation.params import SPLITS, SimulationParams, seeds

logger = logging.getLogger("echo_napari.simulate")


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of the simulator command."""
    parser = argparse.ArgumentParser(
        prog="python -m echo_napari.simulate",
        description=(
            "Simulate apical four-chamber echo sequences with full-cycle ground truth and "
            "write them laid out like EchoNet-Dynamic, CAMUS, TED, HDF5, DICOM or AVI. "
            "Seeds come from the documented split (train / val / test; test is held out)."
        ),
    )
    parser.add_argument("--out", required=True, help="output folder (one sub-folder per format)")
    parser.add_argument(
        "--format",
        nargs="+",
        default=["echonet"],
        choices=[*FORMATS, "all"],
        help="one or more formats, or 'all' (default: echonet)",
    )
    parser.add_argument("--n", type=int, default=10, help="number of sequences (default 10)")
    parser.add_argument("--split", default="test", choices=sorted(SPLITS), help="seed split")
    parser.add_argument("--first", type=int, default=0, help="skip this many seeds of the split")
    parser.add_argument("--size", type=int, default=112, help="image height and width, pixels")
    parser.add_argument("--frames", type=int, default=48, help="frames per cycle (20-128)")
    parser.add_argument("--cycles", type=float, default=1.0, help="number of cycles")
    parser.add_argument("--heart-rate", type=float, default=70.0, help="beats per minute")
    parser.add_argument("--ef", type=float, default=None, help="LV EF fraction (default 0.60)")
    parser.add_argument(
        "--ef-range",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="draw the EF per sequence uniformly from this range (fractions)",
    )
    parser.add_argument("--snr", type=float, default=20.0, help="SNR in dB")
    parser.add_argument("--dropout", type=float, default=0.3, help="wall dropout 0-1")
    parser.add_argument("--jitter", type=float, default=0.5, help="probe jitter, RMS pixels")
    parser.add_argument("--depth", type=float, default=150.0, help="imaging depth, mm")
    parser.add_argument(
        "--fixed-appearance",
        action="store_true",
        help="do not randomise anatomy and appearance per seed",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)
    formats = list(FORMATS) if "all" in args.format else args.format
    params = SimulationParams(
        height=args.size,
        width=args.size,
        frames_per_cycle=args.frames,
        n_cycles=args.cycles,
        heart_rate_bpm=args.heart_rate,
        ef=args.ef if args.ef is not None else 0.60,
        snr_db=args.snr,
        dropout=args.dropout,
        jitter_px=args.jitter,
        depth_mm=args.depth,
    )
    try:
        seed_list = seeds(args.split, args.first + args.n)[args.first :]
        from tqdm import tqdm

        with tqdm(total=len(seed_list), unit="seq", disable=None) as bar:
            written = write_dataset(
                args.out,
                formats,
                seed_list,
                params,
                randomize=not args.fixed_appearance,
                split=args.split,
                ef_range=tuple(args.ef_range) if args.ef_range else None,
                progress=lambda done, total: bar.update(1),
            )
    except EchoNapariError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logger.info("%d files written under %s", len(written), args.out)
    return 0
