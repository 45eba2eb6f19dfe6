"""AVI / MP4 reading (eager and lazy) and writing through PyAV."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from io_fixtures import beating_sequence, write_avi_pyav

from echo_napari.io import read_sequence, write_sequence
from echo_napari.io.video import VideoFrameSource, read_video_frames
from echo_napari.sequence import EchoSequence


def test_avi_written_by_pyav_reads_as_grey_frames(tmp_path):
    frames, _ = beating_sequence(6, 32, 48)
    path = write_avi_pyav(tmp_path / "clip.avi", frames, fps=25)
    seq = read_sequence(path)
    assert seq.frames.shape == (6, 32, 48)
    assert seq.frames.dtype == np.float32
    assert not seq.is_lazy
    assert seq.frame_time_ms == pytest.approx(40.0)
    assert seq.spacing is None and "spacing_note" in seq.metadata
    assert np.abs(seq.frames - frames).mean() < 0.02


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_write_sequence_video_round_trip(tmp_path, suffix):
    frames, _ = beating_sequence(5, 32, 48)
    seq = EchoSequence(frames=frames, frame_time_ms=20.0)
    written = write_sequence(seq, tmp_path / f"out{suffix}")
    assert written == [tmp_path / f"out{suffix}"]
    assert [p.name for p in tmp_path.iterdir()] == [f"out{suffix}"]  # no temp leftovers
    back = read_sequence(written[0])
    assert back.frames.shape == frames.shape
    assert back.frame_time_ms == pytest.approx(20.0)
    assert np.abs(back.frames_array() - frames).mean() < 0.02


@pytest.mark.parametrize("codec", ["mjpeg", "mpeg4"])
def test_lazy_frames_equal_eager_in_any_access_order(tmp_path, codec):
    frames, _ = beating_sequence(40, 32, 48, seed=3)
    suffix = ".avi" if codec == "mjpeg" else ".mp4"
    path = write_avi_pyav(tmp_path / f"clip{suffix}", frames, codec=codec)
    eager, _, _ = read_video_frames(path, lazy=False)
    lazy, frame_time, info = read_video_frames(path, lazy=True)
    assert info["codec"] == codec
    assert lazy.shape == eager.shape and lazy.dtype == np.float32
    order = np.random.default_rng(1).permutation(len(eager))
    for t in [*order[:15], 39, 0, 38, 1]:
        np.testing.assert_array_equal(np.asarray(lazy[int(t)]), eager[int(t)])
    np.testing.assert_array_equal(np.asarray(lazy[10:14, 5:9]), eager[10:14, 5:9])


def test_lazy_source_cache_is_bounded_and_pickles(tmp_path):
    frames, _ = beating_sequence(20, 32, 48)
    path = write_avi_pyav(tmp_path / "clip.avi", frames)
    source = VideoFrameSource(path, cache_size=4)
    for t in range(20):
        source[t]
    assert len(source._cache) <= 4
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone[7], source[7])
    seq = read_sequence(path, lazy=True)
    assert seq.is_lazy and seq.n_frames == 20


def test_pre_decoded_npz_videos_come_back_as_float_frames_in_name_order(tmp_path):
    from echo_napari.io.video import iter_videos_npz

    path = tmp_path / "videos.npz"
    frames = {name: np.full((3, 4, 5), value, np.uint8) for name, value in (("b", 255), ("a", 51))}
    frames["held"] = np.zeros((2, 4, 5), np.uint8)
    np.savez_compressed(path, **frames)
    read = list(iter_videos_npz(path, skip={"held"}))
    assert [stem for stem, _ in read] == ["a", "b"]
    assert read[0][1].dtype == np.float32 and read[0][1].shape == (3, 4, 5)
    assert np.allclose(read[0][1], 0.2) and np.allclose(read[1][1], 1.0)


def test_read_frames_decodes_a_lazy_clip_on_the_calling_thread_only():
    import threading

    from echo_napari.io.frame_source import FrameSource, lazy_frames, read_frames, unit_grey_frames

    threads = set()

    class Counting(FrameSource):
        path = "counting"
        shape = (12, 4, 5)

        def frame(self, t: int) -> np.ndarray:
            threads.add(threading.get_ident())
            return np.full(self.shape[1:], t / 11.0, dtype=np.float32)

    frames = read_frames(lazy_frames(Counting()))
    assert frames.dtype == np.float32 and frames.shape == (12, 4, 5)
    np.testing.assert_allclose(frames[:, 0, 0], np.arange(12) / 11.0, rtol=1e-6)
    # dask's default scheduler would have used its thread pool
    assert threads == {threading.get_ident()}
    eight_bit = unit_grey_frames(np.full((2, 3, 3), 255, dtype=np.uint8))
    assert eight_bit.dtype == np.float32 and eight_bit.max() == 1.0
    assert unit_grey_frames(np.full((2, 3, 3), 0.5)).max() == np.float32(0.5)
