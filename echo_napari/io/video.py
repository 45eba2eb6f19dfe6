"""AVI / MP4 videos through PyAV: eager reading for small videos, lazy (dask) for long ones."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Collection, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.io._common import MAX_FRAMES, MAX_SIDE, atomic_output, frames_to_uint8
from echo_napari.io.frame_source import LAZY_THRESHOLD_BYTES, FrameSource, lazy_frames

logger = logging.getLogger(__name__)


def _av():
    import av

    return av


def _open_container(path: Path) -> Any:
    av = _av()
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise EchoIOError(path, f"not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise EchoIOError(path, "the file holds no video stream")
    return container


def _frame_rate(stream: Any) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        try:
            value = float(rate) if rate is not None else 0.0
        except (ZeroDivisionError, TypeError, ValueError):
            continue
        if np.isfinite(value) and 0.1 <= value <= 10_000:
            return value
    return None


def _grey(frame: Any) -> np.ndarray:
    """A decoded PyAV frame as (H, W) uint8 luma."""
    return frame.to_ndarray(format="gray")


class VideoFrameSource(FrameSource):
    """Random access to the grey frames of a video file, decoding on demand.

    On opening, the packets are demuxed (not decoded) to index the presentation time of
    every frame and the keyframes; a frame request seeks to the keyframe at or before it
    and decodes forward, keeping the last ``cache_size`` decoded frames (uint8).
    Indexing with ``source[t0:t1, y0:y1, x0:x1]`` returns float32 in [0, 1], so the
    object can back a :func:`dask.array.from_array`.

    Parameters
    ----------
    path : str or Path
        The video file.
    cache_size : int
        Number of decoded frames kept (each H*W bytes).
    """

    def __init__(self, path: str | Path, cache_size: int = 64) -> None:
        self.path = Path(path)
        self.cache_size = int(cache_size)
        self._lock = threading.RLock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._container: Any = None
        self._decoder: Any = None
        self._last_decoded = -1
        self._index()

    # -- opening -------------------------------------------------------------------
    def _index(self) -> None:
        av = _av()
        container = _open_container(self.path)
        stream = container.streams.video[0]
        if stream.codec_context is None:
            container.close()
            raise EchoIOError(self.path, "the video stream has no decodable codec")
        pts: list[int] = []
        keyframes: list[int] = []
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    pts = []
                    break
                pts.append(int(stamp))
                if packet.is_keyframe:
                    keyframes.append(int(stamp))
                if len(pts) > MAX_FRAMES:
                    raise EchoIOError(self.path, f"more than {MAX_FRAMES} frames")
        except av.FFmpegError as exc:
            logger.warning("%s: demuxing stopped early (%s)", self.path.name, exc)
        self.frame_rate = _frame_rate(stream)
        self.codec = stream.codec_context.name
        container.close()
        if not pts:
            raise EchoIOError(self.path, "no video frames found (empty or truncated file)")
        order = np.unique(np.asarray(pts, dtype=np.int64))
        self._pts = order
        self._keyframes = np.unique(np.asarray(keyframes or [int(order[0])], dtype=np.int64))
        first = self._decode_frame(0)
        h, w = first.shape
        if h < 2 or w < 2 or h > MAX_SIDE or w > MAX_SIDE:
            raise EchoIOError(self.path, f"implausible frame size {h}x{w}")
        self.shape = (len(order), h, w)

    # -- pickling (dask.distributed ships the source, not the open file) ----------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_lock", "_container", "_decoder"):
            state.pop(key)
        state["_cache"] = OrderedDict()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._container = None
        self._decoder = None
        self._last_decoded = -1

    def close(self) -> None:
        """Close the open file (it is reopened on the next frame request)."""
        with self._lock:
            if self._container is not None:
                self._container.close()
            self._container = None
            self._decoder = None
            self._last_decoded = -1

    # -- decoding ----------------------------------------------------------------------
    def _remember(self, t: int, image: np.ndarray) -> None:
        self._cache[t] = image
        self._cache.move_to_end(t)
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def _decode_frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W) uint8."""
        av = _av()
        with self._lock:
            if t in self._cache:
                self._cache.move_to_end(t)
                return self._cache[t]
            target = int(self._pts[t])
            key = int(self._keyframes[np.searchsorted(self._keyframes, target, "right") - 1])
            key_index = int(np.searchsorted(self._pts, key))
            try:
                continue_forward = (
                    self._decoder is not None and key_index <= self._last_decoded < t
                )
                if not continue_forward:
                    if self._container is None:
                        self._container = _open_container(self.path)
                    stream = self._container.streams.video[0]
                    self._container.seek(key, stream=stream, backward=True, any_frame=False)
                    self._decoder = self._container.decode(stream)
                    self._last_decoded = -1
                for frame in self._decoder:
                    if frame.pts is None:
                        continue
                    index = int(np.searchsorted(self._pts, frame.pts))
                    if index >= len(self._pts) or self._pts[index] != frame.pts:
                        continue
                    image = _grey(frame)
                    self._remember(index, image)
                    self._last_decoded = index
                    if index >= t:
                        break
            except (av.FFmpegError, ValueError, MemoryError) as exc:
                self.close()
                raise EchoIOError(self.path, f"frame {t} could not be decoded ({exc})") from exc
            if t not in self._cache:
                self.close()
                raise EchoIOError(self.path, f"frame {t} could not be decoded (truncated file?)")
            return self._cache[t]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` as (H, W) float32 in [0, 1]."""
        image = self._decode_frame(t)
        if image.shape != self.shape[1:]:
            raise EchoIOError(self.path, f"frame {t} is {image.shape}, expected {self.shape[1:]}")
        return np.multiply(image, np.float32(1 / 255), dtype=np.float32)


def read_video_frames(
    path: str | Path, lazy: bool | None = None
) -> tuple[Any, float | None, dict[str, Any]]:
    """Decode a video into grey frames.

    Parameters
    ----------
    path : str or Path
        AVI / MP4 / MOV file.
    lazy : bool or None
        True: a dask array decoded on demand; False: all frames in memory; None: lazy when
        the decoded frames would exceed :data:`LAZY_THRESHOLD_BYTES`.

    Returns
    -------
    frames : (T, H, W) float32 in [0, 1], numpy or dask array
    frame_time_ms : float or None
        From the stream's frame rate.
    info : dict
        codec, frame_rate (Hz).
    """
    path = Path(path)
    source = VideoFrameSource(path)
    t, h, w = source.shape
    info = {"codec": source.codec, "frame_rate": source.frame_rate}
    frame_time = 1000.0 / source.frame_rate if source.frame_rate else None
    if lazy is None:
        lazy = t * h * w * 4 > LAZY_THRESHOLD_BYTES
    if lazy:
        return lazy_frames(source), frame_time, info
    return _decode_all(path, source), frame_time, info


def iter_videos_npz(
    path: str | Path, skip: Collection[str] = ()
) -> Iterator[tuple[str, np.ndarray]]:
    """Videos pre-decoded into one ``.npz`` (a ``(T, H, W)`` uint8 array per video stem,
    for machines without a video decoder), in name order, one at a time.

    Yields
    ------
    (stem, (T, H, W) float32 frames in [0, 1]), for every stem not in ``skip``.
    """
    with np.load(path) as data:
        for stem in sorted(data.files):
            if stem not in skip:
                yield stem, data[stem].astype(np.float32) / 255.0


def _decode_all(path: Path, source: VideoFrameSource) -> np.ndarray:
    av = _av()
    h, w = source.shape[1:]
    images: list[np.ndarray] = []
    container = _open_container(path)
    try:
        for frame in container.decode(container.streams.video[0]):
            image = _grey(frame)
            if image.shape != (h, w):
                raise EchoIOError(path, f"frame {len(images)} is {image.shape}, expected {(h, w)}")
            images.append(image)
            if len(images) > MAX_FRAMES:
                raise EchoIOError(path, f"more than {MAX_FRAMES} frames")
    except av.FFmpegError as exc:
        if not images:
            raise EchoIOError(path, f"no frame could be decoded ({exc})") from exc
        logger.warning("%s: decoding stopped after %d frames (%s)", path.name, len(images), exc)
    finally:
        container.close()
    if not images:
        raise EchoIOError(path, "no video frames could be decoded")
    if len(images) != source.shape[0]:
        logger.info("%s: %d frames decoded, %d indexed", path.name, len(images), source.shape[0])
    # Convert frame by frame: a float32 copy of the whole stack at once doubles peak memory.
    out = np.empty((len(images), h, w), dtype=np.float32)
    for t in range(len(images)):
        np.multiply(images[t], np.float32(1 / 255), out=out[t], dtype=np.float32)
        images[t] = None
    return out


def write_video(
    frames: Any,
    path: str | Path,
    frame_time_ms: float | None = None,
    codec: str | None = None,
) -> list[Path]:
    """Write grey frames as a video (atomically).

    Parameters
    ----------
    frames : (T, H, W) float in [0, 1] (numpy or dask)
    path : str or Path
        ``.avi`` (MJPEG, like EchoNet) or ``.mp4`` / ``.mov`` (H.264 when available, else MPEG-4).
    frame_time_ms : float or None
        Time between frames; None writes 50 fps.
    codec : str or None
        Override the codec name (e.g. ``"mpeg4"``).

    Returns
    -------
    list of Path
        The file written.
    """
    av = _av()
    path = Path(path)
    t, h, w = (int(s) for s in frames.shape)
    suffix = path.suffix.lower()
    if codec is None:
        if suffix == ".avi":
            codec = "mjpeg"
        else:
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    if codec == "mjpeg":
        pix_fmt, options = (
            ("yuvj420p" if h % 2 == 0 and w % 2 == 0 else "yuvj444p"),
            {
                "qmin": "1",
                "qmax": "2",
            },
        )
    else:
        if h % 2 or w % 2:
            raise EchoIOError(path, f"{codec} needs even frame sizes; frames are {h}x{w}")
        pix_fmt, options = "yuv420p", ({"crf": "1"} if codec == "libx264" else {"qscale": "1"})
    fps = 1000.0 / frame_time_ms if frame_time_ms else 50.0
    with atomic_output(path) as tmp:
        try:
            container = av.open(str(tmp / path.name), mode="w")
            try:
                stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
                stream.options = options
                for i in range(t):
                    image = frames_to_uint8(np.asarray(frames[i]))
                    frame = av.VideoFrame.from_ndarray(image, format="gray")
                    for packet in stream.encode(frame):
                        container.mux(packet)
                for packet in stream.encode():
                    container.mux(packet)
            finally:
                container.close()
        except av.FFmpegError as exc:
            raise EchoIOError(path, f"could not encode the video with {codec} ({exc})") from exc
    return [path]
