"""napari opens every format we write, through the manifest, into the right layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import make_sequence

from echo_napari.io import (
    read_sequence,
    write_camus_patient,
    write_echonet_dataset,
    write_sequence,
)
from echo_napari.napari_hooks import sequence_layer_data

pytestmark = pytest.mark.gui

SPACED = {".h5", ".nii.gz", ".mhd", ".dcm"}


def test_viewer_opens_each_written_format(make_napari_viewer, tmp_path):
    seq = make_sequence(n_frames=6, size=32)
    viewer = make_napari_viewer()  # one viewer for all formats: viewers are slow to make
    for suffix in (".h5", ".nii.gz", ".mhd", ".dcm", ".avi", ".mp4"):
        folder = tmp_path / suffix.strip(".").replace(".", "_")
        folder.mkdir()  # one folder each: readers look for sidecars (``_gt``) by stem
        path = folder / f"echo{suffix}"
        write_sequence(seq, path)
        viewer.layers.clear()
        layers = viewer.open(str(path), plugin="echo-napari")
        image = layers[0]
        assert image._type_string == "image" and image.data.shape == (6, 32, 32), suffix
        facts = image.metadata["echo_sequence"]
        if suffix in SPACED:
            np.testing.assert_allclose(image.scale, (1.0, 0.4, 0.3), rtol=1e-5)
            assert facts["spacing"] == pytest.approx((0.4, 0.3))
            assert str(image.units[1]) == "millimeter"
        else:  # videos carry no spacing: pixel units, said in the facts
            np.testing.assert_allclose(image.scale, (1.0, 1.0, 1.0))
            assert facts["spacing"] is None and str(image.units[1]) == "pixel"
        has_labels = suffix in {".h5", ".nii.gz", ".mhd"}
        assert (len(layers) == 2) == has_labels, suffix
        if has_labels:
            labels = layers[1]
            assert labels._type_string == "labels" and labels.data.dtype == np.uint8
            np.testing.assert_array_equal(labels.scale, image.scale)
            np.testing.assert_array_equal(labels.data, seq.labels)
            assert tuple(labels.colormap.map(1)[:3]) == pytest.approx((1.0, 0.25, 0.25))


def test_a_long_jpeg_cine_opens_lazily_and_the_dock_predicts_on_it(
    make_napari_viewer, tmp_path, monkeypatch, qtbot
):
    import dask.array as da
    from io_fixtures import beating_sequence, make_dicom

    import echo_napari.io.dicom as dicom
    from echo_napari.widgets.review_dock import ReviewDock

    frames, _ = beating_sequence(12, 64, 64)
    path = make_dicom(tmp_path / "cine.dcm", frames, compress="jpeg")
    monkeypatch.setattr(dicom, "LAZY_THRESHOLD_BYTES", frames.nbytes // 2)  # "long"
    viewer = make_napari_viewer()
    image = viewer.open(str(path), plugin="echo-napari")[0]
    assert isinstance(image.data, da.Array) and image.data.shape == (12, 64, 64)
    dock = ReviewDock(viewer)
    qtbot.waitUntil(lambda: dock.session.is_loaded and dock._job_panels_built, timeout=60000)
    panel = dock.predict_panel
    panel.predict()  # the job decodes the frames off the GUI thread
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120000)
    assert dock.session.second_source is not None
    assert dock.session.second_source.labels.shape == (12, 64, 64)


def test_viewer_opens_a_camus_patient_folder(make_napari_viewer, tmp_path):
    seq = make_sequence(n_frames=8, size=32)
    folder = tmp_path / "patient0007"
    write_camus_patient(folder, seq, view="4CH")
    viewer = make_napari_viewer()
    layers = viewer.open(str(folder), plugin="echo-napari")
    facts = layers[0].metadata["echo_sequence"]
    assert facts["ed_index"] == 0 and facts["es_index"] == 4
    assert facts["metadata"]["reference"]["EF"] == pytest.approx(58.0)
    np.testing.assert_allclose(layers[0].scale[1:], (0.4, 0.3), rtol=1e-5)
    assert layers[1]._type_string == "labels"


def test_viewer_opens_an_echonet_dataset_folder(make_napari_viewer, tmp_path):
    seq = make_sequence(n_frames=10, size=48)
    seq.labels[seq.labels != 1] = 0  # EchoNet traces the LV cavity only
    write_echonet_dataset(tmp_path / "EchoNet", {"0X1": seq})
    viewer = make_napari_viewer()
    layers = viewer.open(str(tmp_path / "EchoNet"), plugin="echo-napari")
    facts = layers[0].metadata["echo_sequence"]
    assert layers[0].data.shape == (10, 48, 48)
    assert {facts["ed_index"], facts["es_index"]} == {0, 5}
    assert layers[1].data[facts["ed_index"]].any()


def test_unknown_file_is_refused_so_napari_tries_others(make_napari_viewer, tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("plain text, not HDF5")
    viewer = make_napari_viewer()
    with pytest.raises(ValueError, match="refused the file"):
        viewer.open(str(path), plugin="echo-napari")
    assert len(viewer.layers) == 0


def test_sample_data_through_the_manifest(make_napari_viewer):
    viewer = make_napari_viewer()
    for key in ("normal", "reduced_ef", "poor_quality"):
        viewer.layers.clear()
        viewer.open_sample("echo-napari", key)
        image, labels = viewer.layers
        assert image.data.ndim == 3 and labels.data.shape == image.data.shape
        assert image.scale[1] > 0.1 and str(image.units[1]) == "millimeter"
        facts = image.metadata["echo_sequence"]
        assert facts["ed_index"] is not None and facts["es_index"] is not None


def test_demo_builds_the_viewer_with_the_dock(make_napari_viewer, monkeypatch, qtbot):
    import napari

    from echo_napari import demo

    monkeypatch.setattr(napari, "Viewer", make_napari_viewer)
    viewer, dock = demo.build_demo_viewer(show=False)
    qtbot.waitUntil(lambda: dock.binding is not None, timeout=2000)
    assert dock.session.sequence.n_frames == viewer.layers[0].data.shape[0]
    assert dock.session.reference_ef() is not None
    # --propagate: keyframes' labels kept, every other frame refilled by propagation
    from echo_napari.registration.backends import DirnetBackend
    from echo_napari.registration.dirnet import DirNet, DirNetConfig
    from echo_napari.sequence import ProvenanceKind

    dock.propagate_panel.backend_factory = lambda name, device: DirnetBackend(
        model=DirNet(DirNetConfig(size=32, grid_spacing=8, kernels=(4, 4, 4))), threads=1
    )
    demo.start_from_keyframes(dock, "dirnet")
    qtbot.waitUntil(lambda: dock.propagate_panel.worker is None, timeout=30000)
    seq = dock.session.sequence
    kinds = {p.kind for t, p in enumerate(seq.provenance) if t not in seq.keyframes}
    assert kinds == {ProvenanceKind.PROPAGATED}


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.mark.realdata
@pytest.mark.skipif(not (SHARED / "echonet-unlabeled").is_dir(), reason="../shared/data absent")
def test_real_echonet_video_opens_with_its_reference_ef_and_docks(make_napari_viewer, qtbot):
    video = sorted((SHARED / "echonet-unlabeled" / "Videos").glob("*.avi"))[0]
    viewer = make_napari_viewer()
    layers = viewer.open(str(video), plugin="echo-napari")
    image = layers[0]
    assert image.data.ndim == 3 and image.data.shape[1:] == (112, 112)
    facts = image.metadata["echo_sequence"]
    assert facts["spacing"] is None  # EchoNet AVIs carry no pixel spacing: said, not invented
    assert facts["metadata"]["reference"]["EF"] is not None
    _, dock = viewer.window.add_plugin_dock_widget("echo-napari", "Echo review")
    qtbot.waitUntil(lambda: dock.binding is not None, timeout=5000)
    assert dock.session.reference_ef() is not None
    assert "spacing unknown" in dock.info_label.text()


def test_file_save_writes_labels_through_our_writer(make_napari_viewer, tmp_path):
    seq = make_sequence(n_frames=4, size=24)
    viewer = make_napari_viewer()
    for data, kwargs, kind in sequence_layer_data(seq, name="echo"):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers.selection = {viewer.layers["echo labels"]}
    for name in ("out.nii.gz", "areas.csv"):
        written = viewer.layers.save(str(tmp_path / name), selected=True, plugin="echo-napari")
        assert written == [str(tmp_path / name)]
    back = read_sequence(tmp_path / "out.nii.gz")
    assert back.spacing == pytest.approx((0.4, 0.3))
    np.testing.assert_array_equal(np.asarray(back.frames) > 0, seq.labels > 0)
