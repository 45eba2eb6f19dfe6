"""Training dock: retrain the DIR model on the open sequences (unsupervised) and fine-tune
the segmentation model on the corrected frames, with live loss, progress, ETA and Cancel;
version lists with metrics, select and roll back.

Numerics live in the core (:mod:`echo_napari.segmentation.finetune`,
:mod:`echo_napari.registration.training`) and :mod:`~echo_napari.widgets.train_dir_job`;
this module only wires them to Qt. They import torch (~1.2 s), so the dock opens without
them and imports them in the background (:class:`~echo_napari.widgets.job_cores.CoreGate`):
both job panels stay disabled ("Loading the models…") until then.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from echo_napari.errors import EchoNapariError, ModelError, SequenceError
from echo_napari.widgets._notify import notify_error, notify_info, notify_warning
from echo_napari.widgets.job_cores import CoreGate, WaitsForCores
from echo_napari.widgets.train_panel import TrainJobPanel

if TYPE_CHECKING:
    import napari

logger = logging.getLogger(__name__)

SEG_COLUMNS = ("version", "parent", "created", "Dice before → after (corrected frames)")
DIR_COLUMNS = ("version", "parent", "steps", "local NCC parent → new", "folding %")
#: What the job panels need: torch, the DIR training and the segmentation versions.
MODEL_MODULES = ("echo_napari.widgets.train_dir_job", "echo_napari.segmentation")


def _fmt(value: Any, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def dice_summary(card: dict[str, Any]) -> str:
    """ "0.812 → 0.871" from a fine-tuned card's mean Dice on the corrected frames."""
    dice = card.get("fine_tune", {}).get("dice_on_corrected_frames")
    if not dice:
        return "–"

    def mean(d: dict[str, float]) -> float | None:
        values = [v for v in d.values() if v is not None and np.isfinite(v)]
        return float(np.mean(values)) if values else None

    return f"{_fmt(mean(dice['before']))} → {_fmt(mean(dice['after']))}"


class TrainingDock(WaitsForCores, QWidget):
    """Dock widget of the training jobs and model versions (one per viewer); usable once
    its models are imported (``ready``, ``wait_until_ready``)."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        viewer = self.viewer = napari_viewer
        #: Model the fine-tuning starts from ("selected", a version id or a loaded model).
        self.seg_base: Any = "selected"
        self.image_combo = QComboBox()
        self.labels_combo = QComboBox()
        picks = QFormLayout()
        picks.addRow("Frames", self.image_combo)
        picks.addRow("Labels", self.labels_combo)

        # DIR training
        self.dir_base_combo = QComboBox()
        self.dir_steps = QSpinBox()
        # 0 shows "…" until the models are imported: the default depends on the device.
        self.dir_steps.setRange(0, 100_000)
        self.dir_steps.setSpecialValueText("…")
        self.dir_panel = TrainJobPanel(
            "Train the DIR model (unsupervised, open sequences)", "Train DIR", self._dir_job
        )
        form = QFormLayout()
        form.addRow("Start from", self.dir_base_combo)
        form.addRow("Steps", self.dir_steps)
        self.dir_panel.controls.addLayout(form)
        self.dir_table = _table(DIR_COLUMNS)
        self.dir_panel.layout().addWidget(self.dir_table)
        self.dir_panel.succeeded.connect(self._on_dir_done)

        # segmentation fine-tuning
        self.seg_steps = QSpinBox()
        self.seg_steps.setRange(1, 10_000)
        self.seg_steps.setValue(60)
        self.seg_panel = TrainJobPanel(
            "Fine-tune segmentation (corrected frames)", "Fine-tune", self._seg_job
        )
        form = QFormLayout()
        form.addRow("Steps", self.seg_steps)
        self.seg_panel.controls.addLayout(form)
        self.seg_panel.succeeded.connect(self._on_seg_done)
        self.seg_table = _table(SEG_COLUMNS)
        self.selected_label = QLabel("")
        self.select_button = QPushButton("Select version")
        self.rollback_button = QPushButton("Roll back")
        self.select_button.clicked.connect(self.select_current)
        self.rollback_button.clicked.connect(self.rollback)
        row = QHBoxLayout()
        row.addWidget(self.select_button)
        row.addWidget(self.rollback_button)
        self.comparison_label = QLabel("")
        self.comparison_label.setWordWrap(True)
        seg_layout = self.seg_panel.layout()
        seg_layout.addWidget(self.seg_table)
        seg_layout.addWidget(self.selected_label)
        seg_layout.addLayout(row)
        seg_layout.addWidget(self.comparison_label)

        self.loading_label = QLabel("")
        self.loading_label.setWordWrap(True)
        content = QWidget()
        layout = QVBoxLayout(content)
        layout.addWidget(self.loading_label)
        layout.addLayout(picks)
        layout.addWidget(self.dir_panel)
        layout.addWidget(self.seg_panel)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(content)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(scroll)

        viewer.layers.events.inserted.connect(self._refresh_layers)
        viewer.layers.events.removed.connect(self._refresh_layers)
        self._refresh_layers()
        self.cores_gate = CoreGate(
            "the models",
            MODEL_MODULES,
            [self.dir_panel, self.seg_panel],
            self.loading_label,
            self._on_models_loaded,
            self,
        )

    def _on_models_loaded(self) -> None:
        self.dir_steps.setSpecialValueText("")
        self.dir_steps.setMinimum(1)
        self.dir_steps.setValue(_default_dir_steps())
        self.refresh_versions()

    # -- layers ----------------------------------------------------------------------------
    def _refresh_layers(self, event: Any = None) -> None:
        from napari.layers import Image, Labels

        for combo, kind in ((self.image_combo, Image), (self.labels_combo, Labels)):
            current = combo.currentText()
            combo.clear()
            names = [ly.name for ly in self.viewer.layers if isinstance(ly, kind)]
            names = [n for n in names if self.viewer.layers[n].data.ndim == 3]
            combo.addItems(names)
            if current in names:
                combo.setCurrentText(current)

    def _layer(self, combo: QComboBox, what: str) -> Any:
        name = combo.currentText()
        if not name or name not in self.viewer.layers:
            raise SequenceError(f"open a (T, H, W) {what} layer first")
        return self.viewer.layers[name]

    def current_sequence(self) -> Any:
        """The EchoSequence of the picked layers (facts from the labels layer metadata)."""
        from echo_napari.widgets.layer_binding import FACTS_KEY, sequence_from_layers

        image = self._layer(self.image_combo, "image")
        labels = self._layer(self.labels_combo, "labels")
        return sequence_from_layers(
            image, np.asarray(labels.data, np.uint8), labels.metadata.get(FACTS_KEY)
        )

    # -- jobs ------------------------------------------------------------------------------
    def _dir_job(self) -> tuple[Any, int]:
        from echo_napari.widgets._jobs import torch_threads_for_jobs
        from echo_napari.widgets.train_dir_job import dir_training_steps

        image = self._layer(self.image_combo, "image")
        data = image.data  # read in the job: a lazy cine would decode here
        base = self.dir_base_combo.currentData()
        steps = self.dir_steps.value()
        name = image.name

        def job(should_stop):
            from echo_napari.io.frame_source import unit_grey_frames

            return (
                yield from dir_training_steps(
                    [unit_grey_frames(data)],
                    base=base,
                    steps=steps,
                    should_stop=should_stop,
                    threads=torch_threads_for_jobs(),
                    names=[name],
                )
            )

        return job, steps

    def _seg_job(self) -> tuple[Any, int]:
        import torch

        from echo_napari.segmentation import corrected_frames, fine_tune_steps
        from echo_napari.widgets._jobs import torch_threads_for_jobs

        sequence = self.current_sequence()
        manual, _ = corrected_frames(sequence)
        if not manual:
            raise SequenceError(
                "no corrected frame to learn from: mark keyframes or correct frames first"
            )
        steps = self.seg_steps.value()
        base = self.seg_base

        def job(should_stop):
            torch.set_num_threads(torch_threads_for_jobs())
            return (
                yield from fine_tune_steps(
                    sequence, base=base, steps=steps, should_stop=should_stop
                )
            )

        return job, steps

    def _on_dir_done(self, path: Any) -> None:
        self.refresh_versions()
        notify_info(f"echo-napari: new DIR model version {path.stem}")

    def _on_seg_done(self, version: Any) -> None:
        self.refresh_versions()
        view = version.card.get("fine_tune", {}).get("view_warning", "")
        self.comparison_label.setText(
            f"{version.id}: Dice on the corrected frames, before → after: "
            f"{dice_summary(version.card)}. Select it to use it for predictions."
            + (
                f" Trained on a clip whose view check disagrees with its setting: {view}"
                if view
                else ""
            )
        )
        if view:
            notify_warning(f"echo-napari: {version.id} was trained on this clip as it is. {view}")
            return
        notify_info(f"echo-napari: new segmentation version {version.id}")

    # -- versions --------------------------------------------------------------------------
    def refresh_versions(self) -> None:
        """Re-read both version lists from disk."""
        from echo_napari.segmentation import list_versions, selected_version
        from echo_napari.widgets.train_dir_job import dir_versions, version_summary

        dirs = dir_versions()
        current = self.dir_base_combo.currentText()
        self.dir_base_combo.clear()
        self.dir_table.setRowCount(len(dirs))
        for row, version in enumerate(dirs):
            self.dir_base_combo.addItem(version.label, version)
            s = version_summary(version)
            ncc = f"{_fmt(s.get('ncc_parent'))} → {_fmt(s.get('ncc_after'))}"
            folding = s.get("folding_after")
            cells = (
                version.label,
                s.get("parent") or "",
                str(s.get("steps") or "–"),
                ncc,
                _fmt(None if folding is None else 100 * folding, 2),
            )
            _fill_row(self.dir_table, row, cells)
        if current:
            self.dir_base_combo.setCurrentText(current)
        else:
            from echo_napari.models.registry import bundled_model

            # Start from what propagation uses by default: the newest bundled version.
            self.dir_base_combo.setCurrentText(bundled_model("dirnet").label)
        try:
            seg = list_versions()
            chosen = selected_version().id
        except ModelError as error:
            notify_error(str(error))
            return
        self.seg_table.setRowCount(len(seg))
        for row, version in enumerate(seg):
            mark = "● " if version.id == chosen else ""
            cells = (
                f"{mark}{version.label}",
                version.parent or "",
                version.created[:16].replace("T", " "),
                dice_summary(version.card),
            )
            _fill_row(self.seg_table, row, cells, key=version.id)
        self.selected_label.setText(f"Selected: {chosen}")

    def _picked_seg_version(self) -> str | None:
        row = self.seg_table.currentRow()
        item = self.seg_table.item(row, 0) if row >= 0 else None
        return None if item is None else item.data(256)

    def select_current(self) -> None:
        """Select the highlighted segmentation version."""
        from echo_napari.segmentation import select_version

        version = self._picked_seg_version()
        if version is None:
            notify_error("Pick a version in the list first")
            return
        try:
            select_version(version)
        except EchoNapariError as error:
            notify_error(str(error))
        self.refresh_versions()

    def rollback(self) -> None:
        """Select the parent of the selected segmentation version."""
        from echo_napari.segmentation import rollback

        try:
            rollback()
        except EchoNapariError as error:
            notify_error(str(error))
        self.refresh_versions()


def _default_dir_steps() -> int:
    from echo_napari.registration.backends import default_device
    from echo_napari.widgets.train_dir_job import DEFAULT_STEPS

    return DEFAULT_STEPS[default_device()]


def _table(columns: tuple[str, ...]) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.verticalHeader().setVisible(False)
    header = table.horizontalHeader()
    header.setStretchLastSection(True)
    header.setSectionResizeMode(header.ResizeMode.ResizeToContents)
    table.setMinimumHeight(80)
    table.setMaximumHeight(120)
    return table


def _fill_row(table: QTableWidget, row: int, cells: tuple[str, ...], key: str = "") -> None:
    for col, text in enumerate(cells):
        item = QTableWidgetItem(text)
        if col == 0 and key:
            item.setData(256, key)  # Qt.UserRole
        table.setItem(row, col, item)
