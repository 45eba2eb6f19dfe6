import numpy as np
import pytest

from echo_napari.errors import SequenceError
from echo_napari.sequence import EchoSequence, FrameProvenance, ProvenanceKind


def _frames(t=4, h=8, w=6):
    return np.zeros((t, h, w), np.float32)


def test_defaults_fill_provenance_and_shapes():
    seq = EchoSequence(_frames())
    assert seq.n_frames == 4
    assert seq.frame_shape == (8, 6)
    assert len(seq.provenance) == 4
    assert seq.spacing is None and seq.spacing_or_unit == (1.0, 1.0)
    assert seq.labelled_frames() == []


def test_labelled_frames_and_copy_is_independent():
    labels = np.zeros((4, 8, 6), np.uint8)
    labels[2, 3, 3] = 1
    seq = EchoSequence(_frames(), labels=labels, keyframes={2})
    assert seq.labelled_frames() == [2]
    other = seq.copy()
    other.labels[2] = 0
    other.keyframes.add(1)
    assert seq.labels[2, 3, 3] == 1 and seq.keyframes == {2}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"frames": np.zeros((4, 8), np.float32)}, "(T, H, W)"),
        ({"labels": np.zeros((4, 8, 5), np.uint8)}, "does not match"),
        ({"labels": np.zeros((4, 8, 6), np.int32)}, "uint8"),
        ({"spacing": (0.0, 0.3)}, "positive"),
        ({"spacing": (float("nan"), 0.3)}, "positive"),
        ({"ed_index": 4}, "outside"),
        ({"keyframes": {-1}}, "outside"),
        ({"provenance": [FrameProvenance(ProvenanceKind.MANUAL)]}, "provenance"),
    ],
)
def test_inconsistent_fields_raise_sequence_error(kwargs, message):
    kwargs.setdefault("frames", _frames())
    with pytest.raises(SequenceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        EchoSequence(**kwargs)
