"""Corrupt, foreign, truncated or newer session files: a clear SessionError, and the file
left byte-for-byte as it was."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.session import Session, SessionError, find_recovery
from echo_napari.session_read import read_header, read_session_file


def _session_file(folder):
    path = folder / "good.h5"
    Session(make_sequence(n_frames=4, size=16), path).save()
    return path


def _not_hdf5(folder):
    path = folder / "notes.h5"
    path.write_text("these are my notes, not HDF5")
    return path


def _empty(folder):
    path = folder / "empty.h5"
    path.write_bytes(b"")
    return path


def _random_bytes(folder):
    path = folder / "noise.h5"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def _foreign_hdf5(folder):
    path = folder / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((3, 8, 8)))
        f.attrs["creator"] = "someone else"
    return path


def _dir_layout_hdf5(folder):
    path = folder / "camus.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("patient0001/4CH/data", data=np.zeros((3, 8, 8), np.float32))
    return path


def _newer_schema(folder):
    path = _session_file(folder)
    with h5py.File(path, "r+") as f:
        f.attrs["schema"] = "echo-napari-session/99"
    return path


def _truncated(folder):
    path = _session_file(folder)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _missing_provenance(folder):
    path = _session_file(folder)
    with h5py.File(path, "r+") as f:
        del f["provenance"]
    return path


def _wrong_label_values(folder):
    path = _session_file(folder)
    with h5py.File(path, "r+") as f:
        f["labels"][0, 0, 0] = 9
    return path


def _bad_settings_json(folder):
    path = _session_file(folder)
    with h5py.File(path, "r+") as f:
        del f["settings"]
        f.create_dataset("settings", data="{not json", dtype=h5py.string_dtype())
    return path


def _phase_out_of_range(folder):
    path = _session_file(folder)
    with h5py.File(path, "r+") as f:
        f.attrs["es_index"] = 40
    return path


BAD_FILES = {
    "not HDF5": (_not_hdf5, "HDF5 signature"),
    "empty": (_empty, "HDF5 signature"),
    "random bytes": (_random_bytes, "HDF5 signature"),
    "foreign HDF5": (_foreign_hdf5, "not an echo-napari session"),
    "DIR-layout HDF5": (_dir_layout_hdf5, "not an echo-napari session"),
    "newer schema": (_newer_schema, "update echo-napari"),
    "truncated": (_truncated, "truncated or corrupt"),
    "missing provenance": (_missing_provenance, "corrupt session content"),
    "label values": (_wrong_label_values, "outside the class table"),
    "settings not JSON": (_bad_settings_json, "not JSON"),
    "ES out of range": (_phase_out_of_range, "es_index=40"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_session_file_raises_clearly_and_is_untouched(tmp_path, name):
    make, message = BAD_FILES[name]
    path = make(tmp_path)
    before = path.read_bytes()
    with pytest.raises(SessionError, match=message) as err:
        Session.open(path)
    assert path.name in str(err.value)
    with pytest.raises(SessionError):
        read_session_file(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_missing_file(tmp_path):
    with pytest.raises(SessionError, match="not found"):
        Session.open(tmp_path / "nothing.h5")


def test_damaged_autosave_is_ignored_and_kept(tmp_path):
    path = _session_file(tmp_path)
    autosave = tmp_path / "good.autosave.h5"
    autosave.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    assert find_recovery(path) is None
    Session.open(path)
    assert autosave.read_bytes() == b"\x89HDF\r\n\x1a\n" + b"\0" * 100


def test_flipped_bytes_raise_session_error_or_read(tmp_path):
    """Damage anywhere in the file: either our error or a clean read, never another type."""
    good = _session_file(tmp_path)
    data = good.read_bytes()
    rng = np.random.default_rng(7)
    outcomes = set()
    for i, offset in enumerate(rng.integers(0, len(data), 40)):
        damaged = tmp_path / f"damaged{i}.h5"
        blob = bytearray(data)
        blob[offset : offset + 8] = rng.bytes(8)
        damaged.write_bytes(bytes(blob))
        try:
            read_header(damaged)
            read_session_file(damaged)
            outcomes.add("read")
        except SessionError:
            outcomes.add("error")
        assert damaged.read_bytes() == bytes(blob)
    assert "error" in outcomes
    shutil.rmtree(tmp_path, ignore_errors=True)
