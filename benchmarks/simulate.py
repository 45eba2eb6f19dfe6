"""Simulator speed, and its realism against real EchoNet videos.

    python benchmarks/simulate.py                      # speed only
    python benchmarks/simulate.py --compare-real       # + statistics vs ../shared/data
    python benchmarks/simulate.py --figure docs/simulator_vs_real.png

Speed: sequences per second at 112×112×64 and 256×256×64 (wall clock and CPU time of
this process; the CPU time is what on-the-fly training on 2 cores pays).

Realism (SIM_TO_REAL.md §3 step 3): grey-level percentiles inside the sector, speckle
autocorrelation FWHM (rows, columns; pixels), correlation of the high-passed texture
between frames 1, 2, 4 and 8 apart — simulated (randomised seeds of the ``val`` split,
≈ 50 fps like EchoNet) against the real videos. The figure shows the frames of the
"normal" sample, their GT contours, its LV area curve and both in-sector histograms; no
real pixels go into it (the real videos are research-use only and stay out of the
repository).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from echo_napari.simulate import SimulationParams, seeds, simulate_sequence  # noqa: E402
from echo_napari.simulation import realism  # noqa: E402

REAL_VIDEOS = ROOT.parent / "shared" / "data" / "echonet-unlabeled" / "Videos"


def speed(size: int, n: int, frames: int = 64) -> tuple[float, float]:
    """(sequences per second by wall clock, by process CPU time)."""
    params = SimulationParams(height=size, width=size, frames_per_cycle=frames)
    simulate_sequence(0, params)  # warm caches and imports
    wall, cpu = time.perf_counter(), time.process_time()
    for seed in seeds("train", n):
        simulate_sequence(seed, params)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu)


def read_real(folder: Path, limit: int) -> list[np.ndarray]:
    """Real videos as (T, H, W) float32 in [0, 1] (PyAV)."""
    import av

    videos = []
    for path in sorted(folder.glob("*.avi"))[:limit]:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
        videos.append(np.stack(frames).astype(np.float32) / 255.0)
    return videos


def statistics(videos: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Mean realism statistics over clips."""
    pct, fwhm, corr, hist = [], [], [], []
    for frames in videos:
        mask = realism.sector_mask(frames)
        pct.append(realism.intensity_percentiles(frames, mask))
        fwhm.append(realism.speckle_fwhm(frames, mask))
        corr.append(realism.temporal_correlation(frames, mask))
        hist.append(np.histogram(frames[:, mask], bins=32, range=(0, 1), density=True)[0])
    return {
        "percentiles": np.mean(pct, axis=0),
        "fwhm": np.mean(fwhm, axis=0),
        "temporal": np.mean(corr, axis=0),
        "histogram": np.mean(hist, axis=0),
    }


def simulated_clips(n: int) -> list:
    """Randomised validation-split sequences at ≈ 50 fps (like EchoNet), 112×112."""
    params = SimulationParams(frames_per_cycle=56, heart_rate_bpm=55.0)
    return [simulate_sequence(seed, params) for seed in seeds("val", n)]


def print_stats(name: str, stats: dict[str, np.ndarray]) -> None:
    p = " ".join(f"{v:.3f}" for v in stats["percentiles"])
    f = " × ".join(f"{v:.2f}" for v in stats["fwhm"])
    c = " ".join(f"{v:.3f}" for v in stats["temporal"])
    print(
        f"{name:10s} percentiles 5/25/50/75/95: {p} | speckle FWHM rows×cols px: {f} | "
        f"texture correlation at lag 1/2/4/8: {c}"
    )


def figure(sim, sim_stats, real_stats, path: Path) -> None:
    """Montage: frames, GT contours, LV area curve, histograms (PIL only)."""
    from PIL import Image, ImageDraw
    from scipy import ndimage

    seq = sim.sequence
    t_total = seq.n_frames
    ed, es = seq.ed_index, seq.es_index
    picks = [
        ("ED", ed),
        ("mid-systole", (ed + es) // 2),
        ("ES", es),
        ("diastole", (es + t_total) // 2),
    ]
    scale = 2
    tiles, outlined = [], []
    colours = {1: (255, 70, 70), 2: (70, 150, 255), 3: (255, 215, 50)}
    for _, t in picks:
        grey = (np.kron(seq.frames[t], np.ones((scale, scale))) * 255).astype(np.uint8)
        rgb = np.stack([grey] * 3, axis=-1)
        tiles.append(rgb)
        lab = np.kron(seq.labels[t], np.ones((scale, scale), dtype=np.uint8))
        over = rgb.copy()
        for k, colour in colours.items():
            mask = lab == k
            over[mask & ~ndimage.binary_erosion(mask)] = colour
        outlined.append(over)
    tile_w = tiles[0].shape[1]
    width = 4 * tile_w
    plot_h = 220
    canvas = Image.new("RGB", (width, 2 * tiles[0].shape[0] + plot_h + 40), (20, 20, 20))
    for i, (a, b) in enumerate(zip(tiles, outlined, strict=True)):
        canvas.paste(Image.fromarray(a), (i * tile_w, 20))
        canvas.paste(Image.fromarray(b), (i * tile_w, 20 + a.shape[0]))
    draw = ImageDraw.Draw(canvas)
    for i, (name, t) in enumerate(picks):
        draw.text((i * tile_w + 4, 4), f"{name} (frame {t})", fill=(230, 230, 230))
    top = 2 * tiles[0].shape[0] + 30
    _plot(
        draw,
        (8, top, width // 2 - 8, top + plot_h - 10),
        [sim.lv_area_mm2],
        [(255, 90, 90)],
        "LV cavity area (mm2) over the cycle; ED max, ES min",
        marks=[ed, es],
    )
    _plot(
        draw,
        (width // 2 + 8, top, width - 8, top + plot_h - 10),
        [sim_stats["histogram"]] + ([real_stats["histogram"]] if real_stats else []),
        [(90, 200, 255), (255, 200, 90)],
        "grey histogram in sector: simulated (blue)"
        + (" vs real EchoNet (orange)" if real_stats else ""),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def _plot(draw, box, curves, colours, title, marks=()):
    x0, y0, x1, y1 = box
    draw.rectangle(box, outline=(120, 120, 120))
    draw.text((x0 + 4, y0 + 2), title, fill=(230, 230, 230))
    top = y0 + 16
    low = min(float(np.min(c)) for c in curves)
    high = max(float(np.max(c)) for c in curves)
    span = max(high - low, 1e-9)
    for curve, colour in zip(curves, colours, strict=False):
        n = len(curve)
        pts = [
            (
                x0 + 4 + (x1 - x0 - 8) * i / max(n - 1, 1),
                y1 - 4 - (y1 - top - 8) * (float(v) - low) / span,
            )
            for i, v in enumerate(curve)
        ]
        draw.line(pts, fill=colour, width=2)
        for i in marks:
            px, py = pts[i]
            draw.ellipse((px - 4, py - 4, px + 4, py + 4), outline=(255, 255, 255))


def napari_screenshot(path: Path) -> None:
    """The "normal" sample in napari (image + GT labels at ES) next to its LV area curve.

    Needs a display (run under ``xvfb-run -a``)."""
    import napari
    from napari.utils.colormaps import DirectLabelColormap
    from PIL import Image, ImageDraw

    from echo_napari.metrics import class_areas_mm2
    from echo_napari.sequence import CLASS_COLORS
    from echo_napari.simulation.samples import load_sample

    seq = load_sample("normal")
    viewer = napari.Viewer(show=False)
    viewer.window.resize(900, 700)
    viewer.add_image(seq.frames, name="simulated A4C", scale=seq.spacing, colormap="gray")
    colours = {int(k): v for k, v in CLASS_COLORS.items()}
    colours[None] = (0.0, 0.0, 0.0, 0.0)
    viewer.add_labels(
        seq.labels,
        name="ground truth",
        scale=seq.spacing,
        opacity=0.35,
        colormap=DirectLabelColormap(color_dict=colours),
    )
    viewer.dims.set_point(0, seq.es_index)
    shot = viewer.screenshot(canvas_only=False, flash=False)
    viewer.close()
    areas = class_areas_mm2(seq.labels, seq.spacing)
    shot_img = Image.fromarray(shot[..., :3])
    panel = Image.new("RGB", (420, shot_img.height), (20, 20, 20))
    draw = ImageDraw.Draw(panel)
    lv = areas[:, 1]
    _plot(
        draw,
        (8, 40, 412, 330),
        [lv],
        [(255, 90, 90)],
        "LV cavity area (mm2)",
        marks=[
            seq.ed_index,
            seq.es_index,
        ],
    )
    _plot(draw, (8, 360, 412, 650), [areas[:, 3]], [(255, 215, 50)], "LA area (mm2)")
    ref = seq.metadata["reference"]
    draw.text(
        (8, 8),
        f"sample 'normal': EF {ref['EF']:.1f} %, EDV {ref['EDV']:.0f} mL, "
        f"ESV {ref['ESV']:.0f} mL; shown: ES (frame {seq.es_index})",
        fill=(230, 230, 230),
    )
    canvas = Image.new("RGB", (shot_img.width + panel.width, shot_img.height))
    canvas.paste(shot_img, (0, 0))
    canvas.paste(panel, (shot_img.width, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4, help="sequences per speed measurement")
    parser.add_argument("--compare-real", action="store_true")
    parser.add_argument("--figure", type=Path, help="write the montage PNG here")
    parser.add_argument("--n-sim", type=int, default=6, help="simulated clips for statistics")
    parser.add_argument("--napari-screenshot", type=Path, help="napari screenshot PNG here")
    parser.add_argument("--skip-speed", action="store_true")
    args = parser.parse_args()
    if args.napari_screenshot:
        napari_screenshot(args.napari_screenshot)
        print(f"napari screenshot written to {args.napari_screenshot}")

    for size, n in () if args.skip_speed else ((112, args.n), (256, max(1, args.n // 2))):
        wall, cpu = speed(size, n)
        print(
            f"simulate {size}x{size}x64: {wall:.2f} sequences/s wall, {cpu:.2f} sequences/s "
            f"CPU ({1 / cpu:.3f} s CPU per sequence)"
        )

    if not (args.compare_real or args.figure):
        return 0
    sims = simulated_clips(args.n_sim)
    sim_stats = statistics([s.sequence.frames for s in sims])
    real_stats = None
    if REAL_VIDEOS.is_dir():
        real_stats = statistics(read_real(REAL_VIDEOS, 24))
        print_stats("real", real_stats)
    else:
        print(f"real videos not found at {REAL_VIDEOS}: simulated statistics only")
    print_stats("simulated", sim_stats)
    if args.figure:
        from echo_napari.simulation.samples import SAMPLES

        seed, params, randomize, _ = SAMPLES["normal"]
        shown = simulate_sequence(seed, params, randomize=randomize)
        figure(shown, sim_stats, real_stats, args.figure)
        print(f"figure written to {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
