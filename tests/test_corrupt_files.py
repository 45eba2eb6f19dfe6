"""Hundreds of generated corrupt files: every reader answers EchoIOError or a sane sequence.

Valid small files of every format are written, then damaged with a fixed seed: truncated
at random offsets, bytes flipped, emptied, wrong magic, headers pointing at missing or
short data, NaN spacing, wrong dtypes and shapes, CSV/cfg files with bad rows. Reading
each must give :class:`EchoIOError` (with the file name) or a valid
:class:`EchoSequence` with sane shapes and dtypes; nothing else, and no hang.
"""

from __future__ import annotations

import faulthandler
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
from io_fixtures import (
    beating_sequence,
    make_camus_patient,
    make_dicom,
    make_dir_h5,
    spatial_region,
    write_avi_pyav,
)

from echo_napari.errors import EchoIOError
from echo_napari.io import can_read, read_sequence, write_echonet_dataset, write_sequence
from echo_napari.sequence import EchoSequence, LabelClass

SEED = 20261125
N_TRUNCATIONS = 8
N_FLIPS = 8

Case = tuple[str, Callable[[Path], Path]]


def check_outcome(path: Path) -> str:
    """Read ``path``; return "" when the outcome is acceptable, else what went wrong."""
    try:
        seq = read_sequence(path)
        frames = seq.frames_array()  # lazy frames decode here and may raise EchoIOError
    except EchoIOError as exc:
        if not exc.reason or Path(exc.path).name not in str(exc):
            return f"EchoIOError without file name or reason: {exc!r}"
        return ""
    except Exception as exc:  # anything else is exactly what this test hunts for
        return f"{type(exc).__name__}: {exc}"
    problems = []
    if not isinstance(seq, EchoSequence) or frames.ndim != 3 or frames.dtype != np.float32:
        problems.append(f"frames {frames.shape} {frames.dtype}")
    elif not (np.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1):
        problems.append("frames outside [0, 1] or not finite")
    if seq.labels is not None and (
        seq.labels.dtype != np.uint8
        or seq.labels.shape != frames.shape
        or seq.labels.max() > max(LabelClass)
    ):
        problems.append(f"labels {seq.labels.shape} {seq.labels.dtype}")
    if (
        seq.spacing is not None
        and not all(np.isfinite(seq.spacing))
        or (seq.spacing is not None and min(seq.spacing) <= 0)
    ):
        problems.append(f"spacing {seq.spacing}")
    return "; ".join(problems)


# -- valid bases ------------------------------------------------------------------------
def build_bases(root: Path) -> dict[str, tuple[Path, str]]:
    """name → (folder holding a valid sample, relative path of the file to open)."""
    bases: dict[str, tuple[Path, str]] = {}
    frames, labels = beating_sequence(6, 32, 48)

    def folder(name: str) -> Path:
        path = root / name
        path.mkdir()
        return path

    write_avi_pyav(folder("avi") / "clip.avi", frames)
    bases["avi"] = (root / "avi", "clip.avi")
    write_avi_pyav(folder("mp4") / "clip.mp4", frames, codec="mpeg4")
    bases["mp4"] = (root / "mp4", "clip.mp4")
    seq = EchoSequence(
        frames=frames,
        labels=labels,
        spacing=(0.3, 0.2),
        frame_time_ms=20.0,
        ed_index=0,
        es_index=5,
        keyframes={0, 5},
    )
    for suffix in (".nii.gz", ".nii", ".mhd", ".h5", ".dcm"):
        name = suffix.strip(".").replace(".", "")
        write_sequence(seq, folder(name) / f"seq{suffix}")
        bases[name] = (root / name, f"seq{suffix}")
    make_dir_h5(folder("dirh5") / "camus.h5", patients=("patient0001",))
    bases["dirh5"] = (root / "dirh5", "camus.h5")
    make_dicom(
        folder("rle") / "rle.dcm",
        frames,
        compress="rle",
        regions=[spatial_region(0.03, (0, 0, 47, 31))],
    )
    bases["rle"] = (root / "rle", "rle.dcm")
    make_dicom(folder("palette") / "pal.dcm", frames, photometric="PALETTE COLOR")
    bases["palette"] = (root / "palette", "pal.dcm")
    echonet = folder("echonet")
    lv = np.zeros((6, 112, 112), np.uint8)
    lv[:, 30:80, 45:70] = 1
    lv[3, 40:80, 50:66] = 0
    big = np.repeat(np.repeat(frames, 4, axis=1), 3, axis=2)[:, :112, :112]
    write_echonet_dataset(
        echonet,
        {
            "0XE1": EchoSequence(
                frames=np.ascontiguousarray(big),
                labels=lv,
                ed_index=0,
                es_index=3,
                frame_time_ms=20.0,
                metadata={"reference": {"EF": 50.0, "ESV": 20.0, "EDV": 40.0}},
            )
        },
    )
    bases["echonet"] = (echonet, "Videos/0XE1.avi")
    make_camus_patient(folder("camus"), suffix=".mhd", full_cycle_gt=True)
    bases["camus"] = (root / "camus", "patient0001")
    return bases


def copy_base(bases: dict, name: str, dest: Path) -> Path:
    source, rel = bases[name]
    shutil.copytree(source, dest)
    return dest / rel


# -- generic byte mutations -----------------------------------------------------------
def truncate(target: Path, fraction: float) -> None:
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])


def flip(target: Path, rng: np.random.Generator, n: int) -> None:
    data = bytearray(target.read_bytes())
    # Headers hold most structure: bias half the flips into the first 512 bytes.
    for i in range(n):
        limit = min(len(data), 512) if i % 2 == 0 else len(data)
        data[int(rng.integers(0, limit))] ^= int(rng.integers(1, 256))
    target.write_bytes(bytes(data))


def byte_cases(bases: dict, rng: np.random.Generator) -> list[tuple[str, str, Callable]]:
    """(base, file inside the copy to damage, mutation) for every binary file."""
    targets = {
        "avi": ["clip.avi"],
        "mp4": ["clip.mp4"],
        "niigz": ["seq.nii.gz", "seq_gt.nii.gz"],
        "nii": ["seq.nii"],
        "mhd": ["seq.raw", "seq_gt.raw"],
        "h5": ["seq.h5"],
        "dcm": ["seq.dcm"],
        "dirh5": ["camus.h5"],
        "rle": ["rle.dcm"],
        "palette": ["pal.dcm"],
        "echonet": ["Videos/0XE1.avi"],
    }
    cases = []
    for base, files in targets.items():
        for rel in files:
            for fraction in rng.uniform(0.0, 1.0, N_TRUNCATIONS):
                cases.append((base, rel, lambda p, f=fraction: truncate(p, f)))
            for seed in rng.integers(0, 2**31, N_FLIPS):
                n = int(np.random.default_rng(seed).integers(1, 12))
                cases.append(
                    (base, rel, lambda p, s=seed, n=n: flip(p, np.random.default_rng(s), n))
                )
            cases.append((base, rel, lambda p: p.write_bytes(b"")))
            cases.append(
                (base, rel, lambda p: p.write_bytes(b"\x00JUNK\xff\xfe" + p.read_bytes()[8:]))
            )
    return cases


# -- format-specific damage ---------------------------------------------------------------
def edit_text(target: Path, old: str, new: str) -> None:
    text = target.read_text()
    assert old in text, (target, old)
    target.write_text(text.replace(old, new, 1))


def h5_edit(name: str, value: object) -> Callable[[Path], None]:
    def apply(target: Path) -> None:
        with h5py.File(target, "a") as handle:
            if name.startswith("@"):
                handle.attrs[name[1:]] = value
            else:
                del handle[name]
                handle[name] = value

    return apply


def nifti_pixdim(value: float) -> Callable[[Path], None]:
    def apply(target: Path) -> None:
        data = bytearray(target.read_bytes())
        data[80:84] = struct.pack("<f", value)  # pixdim[1]
        target.write_bytes(bytes(data))

    return apply


def specific_cases() -> list[tuple[str, str, Callable]]:
    nan = float("nan")
    labels_float = np.full((6, 32, 48), 0.5, np.float32)
    cases: list[tuple[str, str, Callable]] = [
        ("mhd", "seq.mhd", lambda p: edit_text(p, "DimSize = 48 32 6", "DimSize = 48 32 600")),
        (
            "mhd",
            "seq.mhd",
            lambda p: edit_text(p, "DimSize = 48 32 6", "DimSize = 99999 99999 99"),
        ),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "DimSize = 48 32 6", "DimSize = 48 32")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "NDims = 3", "NDims = 5")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "MET_FLOAT", "MET_COMPLEX")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "MET_FLOAT", "MET_DOUBLE")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "ElementSpacing = ", "ElementSpacing = nan ")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "ElementSpacing = ", "ElementSpacing = -1 ")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "ElementSpacing = ", "ElementSpacing = 0 ")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "seq.raw", "missing.raw")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "seq.raw", "LIST")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "seq.raw", "LOCAL")),
        ("mhd", "seq.mhd", lambda p: edit_text(p, "ObjectType = Image", "\x00\x01binary")),
        ("mhd", "seq.raw", lambda p: p.unlink()),
        ("mhd", "seq.raw", lambda p: truncate(p, 0.5)),
        ("mhd", "seq_gt.raw", lambda p: p.unlink()),
        ("mhd", "seq_gt.mhd", lambda p: edit_text(p, "DimSize = 48 32 6", "DimSize = 48 32 5")),
        ("mhd", "seq_gt.mhd", lambda p: edit_text(p, "MET_UCHAR", "MET_FLOAT")),
        ("nii", "seq.nii", nifti_pixdim(nan)),
        ("nii", "seq.nii", nifti_pixdim(0.0)),
        ("nii", "seq.nii", nifti_pixdim(-3.0)),
        ("nii", "seq.nii", nifti_pixdim(1e30)),
        ("h5", "seq.h5", h5_edit("labels", labels_float)),
        ("h5", "seq.h5", h5_edit("labels", np.zeros((6, 32, 47), np.uint8))),
        ("h5", "seq.h5", h5_edit("labels", np.full((6, 32, 48), 9, np.uint8))),
        ("h5", "seq.h5", h5_edit("frames", np.zeros((32, 48), np.float32))),
        ("h5", "seq.h5", h5_edit("frames", np.full((6, 32, 48), nan, np.float32))),
        ("h5", "seq.h5", h5_edit("frames", np.zeros((6, 32, 48), np.complex64))),
        ("h5", "seq.h5", h5_edit("frames", np.zeros((0, 32, 48), np.float32))),
        ("h5", "seq.h5", h5_edit("frames", np.array(["a", "b"], dtype=object).astype("S1"))),
        ("h5", "seq.h5", h5_edit("@spacing", [nan, 0.2])),
        ("h5", "seq.h5", h5_edit("@spacing", [0.2])),
        ("h5", "seq.h5", h5_edit("@frame_time_ms", -4.0)),
        ("h5", "seq.h5", h5_edit("@ed_index", 99)),
        ("h5", "seq.h5", h5_edit("@metadata", "{not json")),
        ("h5", "seq.h5", h5_edit("@metadata", "[1, 2]")),
        ("h5", "seq.h5", h5_edit("@schema", "echo-napari-sequence/99")),
        ("h5", "seq.h5", h5_edit("provenance", np.array([["x", "", ""]] * 6, dtype="S8"))),
        ("h5", "seq.h5", h5_edit("keyframes", np.array([0, 50]))),
        ("h5", "seq.h5", h5_edit("keyframes", np.array([0.5]))),
        ("dirh5", "camus.h5", h5_edit("patient0001/4CH/masks", np.zeros((2, 3, 3)))),
        ("dirh5", "camus.h5", h5_edit("patient0001/2CH/data", np.zeros((6, 32)))),
        ("dirh5", "camus.h5", h5_edit("patient0001/2CH/masks", np.full((2, 48, 40), 0.5))),
        (
            "dirh5",
            "camus.h5",
            lambda p: (
                h5_edit("patient0001/2CH/data", np.zeros((6, 48, 40)))(p)
                or _set_attr(p, "patient0001/2CH", "ED", 0)
            ),
        ),
        ("dirh5", "camus.h5", lambda p: _set_attr(p, "patient0001/2CH", "NbFrame", 3)),
    ]
    # DICOM header damage (pydicom edits of a valid file)
    for attr, value in [
        ("NumberOfFrames", 40),
        ("Rows", 999),
        ("Columns", 0),
        ("BitsAllocated", 12),
        ("SamplesPerPixel", 3),
        ("PixelData", None),
        ("PhotometricInterpretation", "PALETTE COLOR"),
        ("FrameTime", "12345"),
        ("NumberOfFrames", -2),
    ]:
        cases.append(("dcm", "seq.dcm", lambda p, a=attr, v=value: _dicom_set(p, a, v)))
    cases.append(("dcm", "seq.dcm", lambda p: _dicom_region(p, "PhysicalDeltaX", nan)))
    cases.append(("dcm", "seq.dcm", lambda p: _dicom_region(p, "PhysicalDeltaY", -0.1)))
    # EchoNet CSVs
    tracings, filelist = "VolumeTracings.csv", "FileList.csv"
    for rel, damage in [
        (tracings, lambda p: p.write_text("")),
        (tracings, lambda p: p.write_text("FileName,X1,Y1,X2,Y2,Frame\n")),
        (tracings, lambda p: p.write_bytes(b"\xff\xfe\x00garbage\x00\n\x01")),
        (tracings, lambda p: p.write_text(p.read_text().replace(",0\n", ",nan\n", 1))),
        (tracings, lambda p: p.write_text(p.read_text().replace(",3\n", ",3000\n"))),
        (tracings, lambda p: p.write_text(p.read_text().replace(",3\n", ",-1\n"))),
        (tracings, lambda p: p.write_text(p.read_text().replace(",3\n", ",2.5\n"))),
        (tracings, lambda p: p.write_text("\n".join(p.read_text().splitlines()[:25]) + "\n")),
        (tracings, lambda p: p.write_text(p.read_text().replace("X2", "Q2"))),
        (tracings, lambda p: p.write_text(p.read_text().replace(".", "e9", 3))),
        (tracings, lambda p: p.write_text(p.read_text() + "0XE1.avi,1,2\n")),
        (filelist, lambda p: p.write_text(p.read_text().replace("50,", "fifty,", 1))),
        (filelist, lambda p: p.write_text("")),
        (filelist, lambda p: p.write_text("a;b;c\n1;2;3\n")),
        (filelist, lambda p: p.write_text(p.read_text().replace(",6,", ",60,"))),
        (filelist, lambda p: p.write_bytes(b"\x00" * 64)),
    ]:
        cases.append(("echonet", rel, damage))
    # CAMUS cfg and sidecars
    cfg = "patient0001/Info_4CH.cfg"
    for damage in [
        lambda p: edit_text(p, "NbFrame: 8", "NbFrame: 80"),
        lambda p: edit_text(p, "ED: 1", "ED: 0"),
        lambda p: edit_text(p, "ES: 8", "ES: 2.5"),
        lambda p: edit_text(p, "ES: 8", "ES: nine"),
        lambda p: p.write_bytes(b"\x89\x00\xff binary"),
        lambda p: p.write_text("no colon here\n"),
        lambda p: edit_text(p, "FrameRate: 25", "FrameRate: -5"),
    ]:
        cases.append(("camus", cfg, damage))
    for rel, damage in [
        ("patient0001/patient0001_4CH_half_sequence.raw", lambda p: p.unlink()),
        ("patient0001/patient0001_4CH_half_sequence_gt.raw", lambda p: truncate(p, 0.3)),
        (
            "patient0001/patient0001_4CH_half_sequence_gt.mhd",
            lambda p: edit_text(p, "DimSize = 40 48 8", "DimSize = 40 48 7"),
        ),
        (
            "patient0001/patient0001_4CH_ED_gt.mhd",
            lambda p: edit_text(p, "DimSize = 40 48", "DimSize = 48 40"),
        ),
    ]:
        cases.append(("camus", rel, damage))
    return cases


def _set_attr(path: Path, group: str, name: str, value: object) -> None:
    with h5py.File(path, "a") as handle:
        handle[group].attrs[name] = value


def _dicom_set(path: Path, attr: str, value: object) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    with pydicom.config.disable_value_validation():
        if value is None:
            delattr(ds, attr)
        else:
            setattr(ds, attr, value)
        ds.save_as(path, enforce_file_format=True)
    if value == "12345":  # pydicom will not write a non-numeric DS: patch the bytes
        path.write_bytes(path.read_bytes().replace(b"12345", b"abcde"))


def _dicom_region(path: Path, attr: str, value: float) -> None:
    import pydicom

    ds = pydicom.dcmread(path)
    setattr(ds.SequenceOfUltrasoundRegions[0], attr, value)
    ds.save_as(path, enforce_file_format=True)


def opened_path(bases: dict, base: str, copy: Path) -> Path:
    return copy / bases[base][1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[dict, list[tuple[str, str, Callable]]]:
    root = tmp_path_factory.mktemp("valid")
    bases = build_bases(root)
    rng = np.random.default_rng(SEED)
    return bases, byte_cases(bases, rng) + specific_cases()


def test_valid_bases_read(corpus):
    bases, _ = corpus
    for name, (folder, rel) in bases.items():
        seq = read_sequence(folder / rel)
        assert seq.n_frames >= 1, name
        assert can_read(folder / rel), name


def test_at_least_200_corrupt_files(corpus):
    assert len(corpus[1]) >= 200


@pytest.mark.parametrize("group", ["video", "itk", "hdf5", "dicom", "echonet", "camus"])
def test_corrupt_files_give_echo_io_error_or_sane_sequence(corpus, tmp_path, group):
    bases, cases = corpus
    groups = {
        "video": ("avi", "mp4"),
        "itk": ("niigz", "nii", "mhd"),
        "hdf5": ("h5", "dirh5"),
        "dicom": ("dcm", "rle", "palette"),
        "echonet": ("echonet",),
        "camus": ("camus",),
    }
    selected = [c for c in cases if c[0] in groups[group]]
    assert selected
    failures = []
    faulthandler.dump_traceback_later(120, exit=True)  # a hang fails loudly, not forever
    try:
        for i, (base, rel, damage) in enumerate(selected):
            copy = tmp_path / f"case{i:03d}"
            copy_base(bases, base, copy)
            damage(copy / rel)
            problem = check_outcome(opened_path(bases, base, copy))
            if problem:
                failures.append(f"case {i} ({base}: {rel}): {problem}")
            shutil.rmtree(copy)
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert not failures, "\n".join(failures)
