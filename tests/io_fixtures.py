"""Small files of every supported format, written with the format's own library.

Used by ``tests/test_io_*.py`` and ``tests/test_corrupt_files.py``. Nothing here comes
from real data.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def beating_sequence(
    n_frames: int = 8, height: int = 48, width: int = 40, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A toy apical view: a bright wall around a dark cavity whose size oscillates.

    Returns
    -------
    frames : (T, H, W) float32 in [0, 1]
    labels : (T, H, W) uint8, 1 = cavity, 2 = wall
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width].astype(np.float32)
    frames = np.empty((n_frames, height, width), np.float32)
    labels = np.zeros((n_frames, height, width), np.uint8)
    for t in range(n_frames):
        scale = 1.0 - 0.25 * np.sin(np.pi * t / max(n_frames - 1, 1))
        ry, rx = 0.35 * height * scale, 0.22 * width * scale
        r = ((yy - height / 2) / ry) ** 2 + ((xx - width / 2) / rx) ** 2
        cavity = r <= 1
        wall = (r > 1) & (r <= 1.6)
        labels[t][wall] = 2
        labels[t][cavity] = 1
        image = 0.15 + 0.6 * wall + 0.05 * rng.standard_normal((height, width))
        frames[t] = np.clip(image, 0, 1)
    return frames, labels


def write_avi_pyav(path: Path, frames: np.ndarray, fps: int = 50, codec: str = "mjpeg") -> Path:
    """Write grey frames as 3-channel video with PyAV directly (EchoNet-like for mjpeg)."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames.shape[1:]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        stream.options = {"qmin": "1", "qmax": "2"} if codec == "mjpeg" else {"qscale": "1"}
        if codec == "mpeg4":
            stream.options = {"qscale": "1", "g": "12"}
        for image in frames:
            grey = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
            rgb = np.repeat(grey[..., None], 3, axis=2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_itk_image(path: Path, array: np.ndarray, spacing: tuple[float, float]) -> Path:
    """Write (T, H, W) or (H, W) with SimpleITK; spacing (dy, dx) mm."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing((spacing[1], spacing[0], 1.0)[: image.GetDimension()])
    sitk.WriteImage(image, str(path), useCompression=path.name.endswith(".gz"))
    return path


def make_camus_patient(
    root: Path,
    patient: str = "patient0001",
    view: str = "4CH",
    suffix: str = ".nii.gz",
    full_cycle_gt: bool = False,
    n_frames: int = 8,
    spacing: tuple[float, float] = (0.31, 0.154),
    ed: int = 1,
    es: int | None = None,
) -> Path:
    """A CAMUS-layout patient folder (ED/ES 1-based in the cfg). Returns the folder."""
    folder = root / patient
    folder.mkdir(parents=True, exist_ok=True)
    frames, labels = beating_sequence(n_frames)
    es = es or n_frames
    images = np.rint(frames * 255).astype(np.uint8)
    base = folder / f"{patient}_{view}"
    write_itk_image(Path(f"{base}_half_sequence{suffix}"), images, spacing)
    if full_cycle_gt:
        write_itk_image(Path(f"{base}_half_sequence_gt{suffix}"), labels, spacing)
    for phase, t in (("ED", ed - 1), ("ES", es - 1)):
        write_itk_image(Path(f"{base}_{phase}{suffix}"), images[t], spacing)
        write_itk_image(Path(f"{base}_{phase}_gt{suffix}"), labels[t], spacing)
    (folder / f"Info_{view}.cfg").write_text(
        f"ED: {ed}\nES: {es}\nNbFrame: {n_frames}\nSex: F\nAge: 61\n"
        "ImageQuality: Good\nEF: 55.3\nLVedv: 98.0\nLVesv: 43.8\nFrameRate: 25\n"
    )
    return folder


def make_dir_h5(path: Path, patients: tuple[str, ...] = ("patient0001", "patient0002")) -> Path:
    """The DIR paper's CAMUS→HDF5 layout with h5py: /{patient}/{view}/data and masks."""
    import h5py

    frames, labels = beating_sequence(6)
    with h5py.File(path, "w") as handle:
        for patient in patients:
            for view in ("2CH", "4CH"):
                group = handle.create_group(f"{patient}/{view}")
                group.create_dataset(
                    "data",
                    data=frames * 255.0,
                    chunks=(1, *frames.shape[1:]),
                    compression="gzip",
                    compression_opts=9,
                )
                group.create_dataset("masks", data=labels[[0, 5]].astype(np.float32))
                group.attrs.update(
                    ED=1,
                    ES=6,
                    NbFrame=6,
                    Sex="M",
                    Age=70,
                    ImageQuality="Medium",
                    LVedv=120.0,
                    LVesv=60.0,
                    LVef=50.0,
                )
    return path


def make_dicom(
    path: Path,
    frames: np.ndarray | None = None,
    photometric: str = "MONOCHROME2",
    regions: list[dict] | None = None,
    frame_time: float | None = 20.0,
    frame_time_vector: list[float] | None = None,
    cine_rate: int | None = None,
    compress: str | None = None,
) -> Path:
    """A multi-frame ultrasound DICOM written with pydicom.

    ``regions``: dicts of SequenceOfUltrasoundRegions attributes. ``photometric``:
    MONOCHROME2, MONOCHROME1, RGB / YBR_FULL (tinted: R = g, G = 0.8 g, B = 0.5 g) or
    PALETTE COLOR (an inverted grey ramp LUT of 8-bit entries).
    ``compress``: "rle" to store RLE Lossless, "jpegls" JPEG-LS Lossless; "jpeg" to store
    JPEG Baseline frames encoded by Pillow as YBR_FULL_422 (what most echo scanners
    export; ``photometric`` is then YBR_FULL_422 and the frames tinted as for RGB).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

    if frames is None:
        frames = beating_sequence(4, 32, 48)[0]
    grey = np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)
    t, h, w = grey.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns, ds.NumberOfFrames = h, w, t
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = photometric
    if photometric in ("RGB", "YBR_FULL"):
        from pydicom.pixels import convert_color_space

        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        # A colour tint (R > G > B) so that luma, not one channel, must be computed.
        pixels = np.stack(
            [grey, (grey * 0.8).astype(np.uint8), (grey * 0.5).astype(np.uint8)], axis=3
        )
        if photometric == "YBR_FULL":
            pixels = convert_color_space(pixels, "RGB", "YBR_FULL")
    elif photometric == "PALETTE COLOR":
        ds.SamplesPerPixel = 1
        # Entries 0..255 map to grey 255 - i, so the palette really has to be applied.
        lut = (255 - np.arange(256)).astype(np.uint16)
        for colour in ("Red", "Green", "Blue"):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 8])
            setattr(ds, f"{colour}PaletteColorLookupTableData", lut.astype("<u2").tobytes())
        pixels = grey
    else:
        ds.SamplesPerPixel = 1
        pixels = 255 - grey if photometric == "MONOCHROME1" else grey
    if frame_time is not None:
        ds.FrameTime = str(frame_time)
    if frame_time_vector is not None:
        ds.FrameTimeVector = [str(v) for v in frame_time_vector]
    if cine_rate is not None:
        ds.CineRate = cine_rate
    if regions:
        items = []
        for values in regions:
            item = Dataset()
            for key, value in values.items():
                setattr(item, key, value)
            items.append(item)
        ds.SequenceOfUltrasoundRegions = items
    if compress == "jpeg":
        import io

        from PIL import Image
        from pydicom.encaps import encapsulate
        from pydicom.uid import JPEGBaseline8Bit

        tinted = np.stack(
            [grey, (grey * 0.8).astype(np.uint8), (grey * 0.5).astype(np.uint8)], axis=3
        )
        encoded = []
        for frame in tinted:
            buffer = io.BytesIO()
            Image.fromarray(frame).save(buffer, "JPEG", quality=92, subsampling=1)  # 4:2:2
            encoded.append(buffer.getvalue())
        ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate(encoded)
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
        return path
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if compress == "rle":
        ds.compress(RLELossless)
    elif compress == "jpegls":
        from pydicom.uid import JPEGLSLossless

        ds.compress(JPEGLSLossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def spatial_region(delta_cm: float, box: tuple[int, int, int, int]) -> dict:
    """A 2D tissue region calibrated in cm; box = (x0, y0, x1, y1)."""
    return {
        "RegionSpatialFormat": 1,
        "RegionDataType": 1,
        "RegionFlags": 0,
        "RegionLocationMinX0": box[0],
        "RegionLocationMinY0": box[1],
        "RegionLocationMaxX1": box[2],
        "RegionLocationMaxY1": box[3],
        "PhysicalUnitsXDirection": 3,
        "PhysicalUnitsYDirection": 3,
        "PhysicalDeltaX": delta_cm,
        "PhysicalDeltaY": delta_cm,
    }


def doppler_region(box: tuple[int, int, int, int]) -> dict:
    """A spectral Doppler strip: x in seconds, y in cm/s (not a spatial calibration)."""
    return {
        "RegionSpatialFormat": 4,
        "RegionDataType": 3,
        "RegionFlags": 0,
        "RegionLocationMinX0": box[0],
        "RegionLocationMinY0": box[1],
        "RegionLocationMaxX1": box[2],
        "RegionLocationMaxY1": box[3],
        "PhysicalUnitsXDirection": 4,
        "PhysicalUnitsYDirection": 7,
        "PhysicalDeltaX": 0.01,
        "PhysicalDeltaY": 0.5,
    }


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice overlap of two boolean masks."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2 * (a & b).sum() / total)
