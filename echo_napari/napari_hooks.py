"""npe2 reader, writer and sample-data hooks: thin adapters between napari and the core.

No Qt here. The core modules are imported inside the functions so that this module
imports (and the manifest validates) even where an optional part is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from echo_napari.errors import EchoIOError
from echo_napari.sequence import CLASS_COLORS, EchoSequence
from echo_napari.session_store import is_session_file

logger = logging.getLogger(__name__)

LayerData = tuple[Any, dict[str, Any], str]
PathOrPaths = str | Sequence[str]

#: napari layer-metadata key holding the EchoSequence facts (see ``sequence_facts``).
FACTS_KEY = "echo_sequence"

#: Labels-layer metadata key holding a :class:`SessionHandle` (layers read from a session).
SESSION_KEY = "echo_session"

#: Labels colormap: one colour per :class:`~echo_napari.sequence.LabelClass`.
LABEL_COLORMAP: dict[int | None, tuple[float, float, float, float]] = {
    None: (0.0, 0.0, 0.0, 0.0),
    **{int(k): v for k, v in CLASS_COLORS.items()},
}


# -- reader -----------------------------------------------------------------------------
def get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """napari reader hook: a reader function for echo files we own, else None.

    Parameters
    ----------
    path : str or list of str
        One file or folder (a list of several paths is declined: one sequence per open).
    """
    if not isinstance(path, str):
        paths = list(path)
        if len(paths) != 1:
            return None
        path = paths[0]
    if is_session_file(path):
        return read_session
    if _is_mmode_dicom(path):
        from echo_napari.mmode.layers import read_mmode_layers

        return read_mmode_layers
    from echo_napari.io import can_read

    try:
        owned = can_read(path)
    except (OSError, ValueError):
        return None
    return read_echo if owned else None


def _is_mmode_dicom(path: str) -> bool:
    """A DICOM whose ultrasound region is time-based (an M-mode strip, not a B-mode cine).

    PNG/TIFF strips are not claimed here (every picture would be offered to us): napari
    opens them as images, which the M-mode dock takes as strips, or its Open M-mode….
    """
    from echo_napari.mmode.readers import is_mmode_file

    candidate = Path(path)
    return (
        candidate.is_file()
        and candidate.suffix.lower() not in (".png", ".tif", ".tiff")
        and is_mmode_file(candidate)
    )


def read_echo(path: PathOrPaths) -> list[LayerData]:
    """Read one echo file or folder into an Image layer (+ a Labels layer when masked).

    Raises
    ------
    EchoIOError
        When the file is ours but unreadable (napari shows the message).
    """
    from echo_napari.io import read_sequence

    if not isinstance(path, str):
        path = list(path)[0]
    sequence = read_sequence(path)
    return sequence_layer_data(sequence, name=_layer_name(path))


# -- sessions -------------------------------------------------------------------------------
class SessionHandle:
    """An open :class:`~echo_napari.session.Session` riding in napari layer metadata.

    Layer metadata gets deep-copied when napari duplicates a layer; the handle is shared
    instead (a session holds locks and a thread-safe history, which cannot be copied). The
    review dock adopts the session only when its arrays are the layers' arrays.
    """

    def __init__(self, session: Any) -> None:
        self.session = session

    def __deepcopy__(self, memo: dict[int, Any]) -> SessionHandle:
        return self

    def __repr__(self) -> str:
        return f"SessionHandle({self.session.path})"


def current_user() -> str:
    """The login name recorded as the author of changes ("" when unknown)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def open_session(
    path: str | Path, ask: Callable[[Any], str | None] | None = None, author: str | None = None
) -> Any:
    """Open a session file; when a newer autosave exists, ``ask(info)`` decides.

    Parameters
    ----------
    ask : called with the :class:`~echo_napari.session.RecoveryInfo`; returns "use" (load
        the autosave), "discard" (move it aside, kept as ``.bak``) or None (do not open)

    Raises
    ------
    SessionError
        Unreadable file, missing source, or the user declined to choose.
    """
    from echo_napari.session import Session

    author = current_user() if author is None else author
    return Session.open(path, recovery=recovery_choice(path, ask), author=author)


def recovery_choice(path: str | Path, ask: Callable[[Any], str | None] | None = None) -> str:
    """How :meth:`Session.open` should treat ``path``'s autosave: "ask" when there is no
    newer one, else ``ask(info)``'s answer ("use" or "discard"). Reads only the autosave's
    header, so a GUI can ask on its thread and read the session in a worker.

    Raises
    ------
    SessionError
        A newer autosave exists and ``ask`` chose neither (or there is no ``ask``).
    """
    from echo_napari.session import SessionError
    from echo_napari.session_autosave import find_recovery

    info = find_recovery(path)
    if info is None:
        return "ask"
    choice = None if ask is None else ask(info)
    if choice not in ("use", "discard"):
        raise SessionError(
            path,
            f"not opened: its autosave {info.autosave_path.name} holds newer work; "
            "choose to recover or discard it (the autosave was left in place)",
        )
    return choice


def ask_recovery_in_gui(info: Any) -> str | None:
    """The recovery question as a dialog when a Qt application runs, else None."""
    try:
        from qtpy.QtWidgets import QApplication
    except ImportError:
        return None
    if QApplication.instance() is None:
        return None
    from echo_napari.widgets import session_panel

    return session_panel.ask_recovery(info)


def read_session(path: PathOrPaths) -> list[LayerData]:
    """napari reader for session files: the image and labels layers of the session.

    The labels layer carries the open session (``metadata["echo_session"]``); the review
    dock picks it up when it binds to these layers.
    """
    if not isinstance(path, str):
        path = list(path)[0]
    session = open_session(path, ask=ask_recovery_in_gui)
    return session_layer_data(session, name=_layer_name(path))


def session_layer_data(session: Any, name: str = "echo") -> list[LayerData]:
    """Layer-data tuples of an open session: Image and Labels (always), sharing its arrays."""
    return sequence_layer_data(session.sequence, name=name, session=session)


def _layer_name(path: str) -> str:
    p = Path(path)
    name = p.name
    for suffix in (".nii.gz", ".mhd", ".nii", ".h5", ".hdf5", ".avi", ".mp4", ".mov", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def sequence_layer_data(
    sequence: EchoSequence, name: str = "echo", session: Any = None
) -> list[LayerData]:
    """Layer-data tuples for a sequence: Image (T, H, W) and, when masks exist, Labels.

    With ``session`` (the open :class:`~echo_napari.session.Session` of ``sequence``) the
    Labels layer is always made and carries the session in its metadata.

    The spatial scale is the spacing in mm; when the spacing is unknown the scale is 1
    pixel, the units say ``pixel`` and a warning is logged and shown.

    Returns
    -------
    list of (data, kwargs, layer_type)
    """
    from echo_napari.sequence_facts import sequence_facts

    facts = sequence_facts(sequence)
    dy, dx = sequence.spacing_or_unit
    spatial_unit = "mm" if sequence.spacing is not None else "pixel"
    if sequence.spacing is None:
        _warn(
            f"{name}: the file gives no pixel spacing; showing pixels (areas in px², "
            "not mm²). Set the spacing in the layer's scale if you know it."
        )
    common = {
        "scale": (1.0, dy, dx),
        "units": ("pixel", spatial_unit, spatial_unit),
        "axis_labels": ("frame", "y", "x"),
    }
    layers: list[LayerData] = [
        (
            sequence.frames,
            {
                "name": name,
                "colormap": "gray",
                "contrast_limits": (0.0, 1.0),
                "metadata": {FACTS_KEY: facts},
                **common,
            },
            "image",
        )
    ]
    if session is not None or (sequence.labels is not None and sequence.labels.any()):
        labels_meta: dict[str, Any] = {FACTS_KEY: facts}
        if session is not None:
            labels_meta[SESSION_KEY] = SessionHandle(session)
        layers.append(
            (
                sequence.ensure_labels(),
                {
                    "name": f"{name} labels",
                    "colormap": LABEL_COLORMAP,
                    "opacity": 0.5,
                    "metadata": labels_meta,
                    **common,
                },
                "labels",
            )
        )
    return layers


def _warn(message: str) -> None:
    logger.warning(message)
    try:
        from napari.utils.notifications import show_warning
    except ImportError:
        return
    show_warning(message)


# -- writers ----------------------------------------------------------------------------
def spacing_from_layer_meta(meta: dict[str, Any]) -> tuple[float, float] | None:
    """(dy, dx) mm from a layer's scale, or None when the layer is in pixel units.

    A layer read from a file without spacing carries ``spacing: None`` in its facts and
    scale 1; we do not turn that into 1 mm.
    """
    scale = meta.get("scale")
    facts = (meta.get("metadata") or {}).get(FACTS_KEY) or {}
    if scale is None or len(scale) < 2:
        return None
    dy, dx = float(scale[-2]), float(scale[-1])
    if facts.get("spacing") is None and "spacing" in facts and (dy, dx) == (1.0, 1.0):
        return None
    units = meta.get("units")
    if units is not None and any("pixel" in str(u) for u in list(units)[-2:]):
        return None if (dy, dx) == (1.0, 1.0) else (dy, dx)
    return (dy, dx)


def _labels_array(path: str, data: Any) -> np.ndarray:
    labels = np.asarray(data)
    if labels.ndim == 2:
        labels = labels[np.newaxis]
    if labels.ndim != 3:
        raise EchoIOError(path, f"expected (T, H, W) labels; the layer has shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise EchoIOError(
            path,
            f"label values must be 0..3 (uint8); the layer holds {labels.min()}..{labels.max()}",
        )
    return labels.astype(np.uint8, copy=False)


def _frame_time_ms(meta: dict[str, Any]) -> float | None:
    facts = (meta.get("metadata") or {}).get(FACTS_KEY) or {}
    value = facts.get("frame_time_ms")
    return None if value is None else float(value)


def write_labels_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari writer: a labels layer to ``.nii.gz`` / ``.mhd`` / ``.h5`` with its spacing.

    Returns
    -------
    list of str
        The written paths (``.mhd`` also writes its ``.raw``).
    """
    from echo_napari.io import write_labels

    labels = _labels_array(path, data)
    written = write_labels(
        labels, path, spacing=spacing_from_layer_meta(meta), frame_time_ms=_frame_time_ms(meta)
    )
    return _as_paths(written, path)


def write_area_csv_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """napari writer: per-frame class areas of a labels layer as CSV.

    Columns ``frame[, time_ms], LV cavity (mm2), LV myocardium (mm2), left atrium (mm2)``
    (``px2`` instead of ``mm2`` when the layer has no spacing).

    Returns
    -------
    list of str
        ``[path]``.
    """
    from echo_napari.io import write_area_csv
    from echo_napari.metrics import class_areas_mm2
    from echo_napari.sequence import CLASS_NAMES, LabelClass

    labels = _labels_array(path, data)
    spacing = spacing_from_layer_meta(meta)
    areas = class_areas_mm2(labels, spacing)
    unit = "px2" if spacing is None else "mm2"
    columns = {
        f"{CLASS_NAMES[c]} ({unit})": areas[:, int(c)]
        for c in (LabelClass.LV_CAVITY, LabelClass.MYOCARDIUM, LabelClass.LA)
    }
    written = write_area_csv(columns, path, frame_time_ms=_frame_time_ms(meta))
    return _as_paths(written, path)


def _as_paths(written: Any, path: str) -> list[str]:
    if written is None:
        return [str(path)]
    if isinstance(written, (str, Path)):
        return [str(written)]
    return [str(p) for p in written]


# -- sample data --------------------------------------------------------------------------
def _sample(name: str) -> list[LayerData]:
    from echo_napari.simulation.samples import load_sample

    return sequence_layer_data(load_sample(name), name=f"sample {name}")


def sample_normal() -> list[LayerData]:
    """Sample data: a simulated normal heart cycle with labels."""
    return _sample("normal")


def sample_reduced_ef() -> list[LayerData]:
    """Sample data: a simulated heart with reduced ejection fraction."""
    return _sample("reduced_ef")


def sample_poor_quality() -> list[LayerData]:
    """Sample data: a simulated sequence with poor image quality (noise, dropout)."""
    return _sample("poor_quality")
