"""Full-cycle 2D+time segmentation (SimLVSeg-style U-Net) with versioned fine-tuning.

Typical use::

    model = load_model()                       # bundled weights, CUDA if available
    labels = predict_sequence(frames, model)   # (T, H, W) uint8, any T and frame size
    version = fine_tune(sequence, base="selected", progress=cb, should_stop=stop)
    select_version(version); rollback()
"""

from echo_napari.segmentation.data import sample_from_sequence
from echo_napari.segmentation.finetune import corrected_frames, fine_tune, fine_tune_steps
from echo_napari.segmentation.inference import (
    postprocess_labels,
    predict_probabilities,
    predict_sequence,
)
from echo_napari.segmentation.model import (
    BUNDLED_CONFIG,
    PAPER_CONFIG,
    UNet2DTime,
    UNetConfig,
    build_model,
)
from echo_napari.segmentation.training import (
    TrainConfig,
    TrainingSample,
    TrainProgress,
    make_sample,
    train,
    train_steps,
)
from echo_napari.segmentation.versions import (
    ModelVersion,
    list_versions,
    load_model,
    rollback,
    select_version,
    selected_version,
)
from echo_napari.segmentation.weights import SegmentationModel, save_model

__all__ = [
    "BUNDLED_CONFIG",
    "PAPER_CONFIG",
    "ModelVersion",
    "SegmentationModel",
    "TrainConfig",
    "TrainProgress",
    "TrainingSample",
    "UNet2DTime",
    "UNetConfig",
    "build_model",
    "corrected_frames",
    "fine_tune",
    "fine_tune_steps",
    "list_versions",
    "load_model",
    "make_sample",
    "postprocess_labels",
    "predict_probabilities",
    "predict_sequence",
    "rollback",
    "sample_from_sequence",
    "save_model",
    "select_version",
    "selected_version",
    "train",
    "train_steps",
]
