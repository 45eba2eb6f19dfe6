"""The imaging sector of a scanner's screen (echo_napari.field_of_view) and predictions on it."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from echo_napari.errors import SequenceError
from echo_napari.field_of_view import FieldOfView, find_field_of_view, sector_apex_row
from echo_napari.segmentation import predict_sequence
from echo_napari.segmentation.boundary import refine_lv_boundary
from echo_napari.sequence import LabelClass
from echo_napari.simulation import simulate_sequence
from echo_napari.simulation.screen import scanner_screen


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """(40, 112, 112) simulated frames, EchoNet framing."""
    return np.asarray(simulate_sequence(3).sequence.frames[:40], dtype=np.float32)


@pytest.fixture(scope="module")
def screen(clip):
    """The clip 3x larger, off centre in a 480 x 640 screen with text, bars, clock, ECG."""
    return scanner_screen(clip, shape=(480, 640), scale=3.0, top=50, left=120)


def test_echonet_framed_clips_are_used_as_they_are(clip):
    assert find_field_of_view(clip).is_whole


def test_the_square_around_the_sector_of_a_screen_is_the_clip(screen):
    frames, placed = screen
    view = find_field_of_view(frames)
    assert not view.is_whole
    side = placed.shape[0]
    # EchoNet framing recovered to within 6 % of the clip's size
    assert abs(view.side - side) <= 0.06 * side
    assert abs(view.top - placed.top) <= 0.06 * side
    assert abs(view.left - placed.left) <= 0.06 * side
    # none of the text, the bars or the ECG trace is sector
    assert not view.sector[:40].any() and not view.sector[-60:].any()
    assert not view.sector[:, -30:].any() and not view.sector[:, :100].any()


def test_fan_apex_found_above_a_still_near_field():
    yy, xx = np.mgrid[:200, :200]
    fan = (yy >= 0.9 * np.abs(xx - 100) + 20) & (np.hypot(yy - 20, xx - 100) <= 170)
    fan[:40] = False  # the first rows below the apex were still: not in the live mask
    assert sector_apex_row(fan) == pytest.approx(20, abs=2)
    box = np.zeros((200, 200), bool)
    box[50:150, 20:180] = True  # a linear probe's rectangle has no apex above it
    assert sector_apex_row(box) == 50


def test_crop_and_paste_round_trip_with_a_square_beyond_the_frame():
    sector = np.zeros((60, 80), bool)
    sector[10:60, 20:70] = True
    view = FieldOfView(sector=sector, top=5, left=15, side=70)  # rows 60-74 outside
    frames = np.random.default_rng(0).random((3, 60, 80)).astype(np.float32)
    square = view.crop(frames)
    assert square.shape == (3, 70, 70) and square.dtype == np.float32
    np.testing.assert_array_equal(square[:, 55:], 0)  # below the frame
    np.testing.assert_array_equal(np.asarray(view.crop(da.from_array(frames))), square)
    labels = (square > 0.5).astype(np.uint8)
    back = view.paste(labels)
    assert back.shape == (3, 60, 80)
    np.testing.assert_array_equal(back[:, ~sector], 0)
    np.testing.assert_array_equal(back[:, sector], (frames[:, sector] > 0.5).astype(np.uint8))
    kept = np.full((3, 60, 80), 7, np.uint8)
    over = view.paste(labels, into=kept)
    np.testing.assert_array_equal(over[:, :5], 7)  # above the square: untouched
    with pytest.raises(SequenceError, match="does not fit"):
        view.paste(labels[:, :10])


def test_prediction_on_a_screen_matches_the_prediction_on_the_clip(clip, screen):
    frames, placed = screen
    direct = predict_sequence(clip, both_directions=False)
    on_screen = predict_sequence(frames, both_directions=False)
    uncropped = predict_sequence(frames, both_directions=False, crop_to_sector=False)
    rows = slice(placed.top + 1, placed.top + placed.shape[0], 3)
    cols = slice(placed.left + 1, placed.left + placed.shape[1], 3)

    def lv_dice(labels: np.ndarray) -> float:
        a = labels[:, rows, cols] == LabelClass.LV_CAVITY
        b = direct == LabelClass.LV_CAVITY
        return 2 * (a & b).sum() / (a.sum() + b.sum())

    assert lv_dice(on_screen) >= 0.9
    assert lv_dice(uncropped) < lv_dice(on_screen) - 0.01  # 0.945 vs 0.959 (seg_v4)
    outside = np.ones(frames.shape[1:], bool)
    outside[placed.top : placed.top + placed.shape[0], placed.left : placed.left + 336] = False
    assert not on_screen[:, outside].any()  # text, bars and the ECG are never labelled
    # the border refinement on the screen works on the same square, and keeps the rest
    refined = refine_lv_boundary(frames, on_screen)
    assert lv_dice(refined) >= 0.9 and not refined[:, outside].any()


def test_a_screen_is_post_processed_on_the_networks_grid(clip, screen, monkeypatch):
    from echo_napari.segmentation import inference

    seen = []
    real = inference.refine_lv_boundary

    def recording(frames, labels, **kwargs):
        seen.append((frames.shape, labels.shape))
        return real(frames, labels, **kwargs)

    monkeypatch.setattr(inference, "refine_lv_boundary", recording)
    frames, placed = screen
    on_screen = predict_sequence(frames, both_directions=False)
    # the refinement (like the steps before it) ran on the 112-pixel grid the model's
    # pixel distances were chosen on, not on the ~340-pixel square
    assert seen == [((40, 112, 112), (40, 112, 112))]
    assert on_screen.shape == frames.shape
    direct = predict_sequence(clip, both_directions=False)
    rows = slice(placed.top + 1, placed.top + placed.shape[0], 3)
    cols = slice(placed.left + 1, placed.left + placed.shape[1], 3)
    a, b = on_screen[:, rows, cols] == LabelClass.LV_CAVITY, direct == LabelClass.LV_CAVITY
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.95  # 0.962 (0.959 before)


def test_propagation_on_a_screen_registers_the_square_only(clip, screen):
    from echo_napari.registration import pairwise_fields, propagate_from_keyframes
    from echo_napari.registration.sector_square import SectorSquareBackend

    frames, placed = screen
    truth = np.asarray(simulate_sequence(3).sequence.labels[:40])
    big = np.kron(truth, np.ones((1, 3, 3), np.uint8))
    on_screen = np.zeros(frames.shape, np.uint8)
    on_screen[:, placed.top : placed.top + 336, placed.left : placed.left + 336] = big
    keys = (0, 20)
    fields = pairwise_fields(frames)
    assert isinstance(fields.registrar, SectorSquareBackend)
    view = fields.registrar.view
    assert fields.labels_shape == frames.shape[1:]  # registered on a coarser grid
    outside = np.ones(fields.frame_shape, bool)
    outside[max(view.top, 0) : view.top + view.side, max(view.left, 0) : view.left + view.side] = 0
    # nothing moves outside the square (symmetrising interpolates ~1e-7 px across its edge)
    assert np.abs(fields.forward[:, :, outside]).max() < 1e-4
    screen_result = propagate_from_keyframes(fields, {k: on_screen[k] for k in keys})
    clip_result = propagate_from_keyframes(pairwise_fields(clip), {k: truth[k] for k in keys})
    back = screen_result.labels[:, placed.top + 1 :: 3, placed.left + 1 :: 3][:, :112, :112]
    a, b = back == LabelClass.LV_CAVITY, clip_result.labels == LabelClass.LV_CAVITY
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.9


def test_training_samples_of_a_screen_show_the_square_the_model_is_shown(clip, screen):
    from echo_napari.segmentation.training import resize_sequence

    frames, placed = screen
    truth = np.asarray(simulate_sequence(3).sequence.labels[:40])
    on_screen = np.zeros(frames.shape, np.uint8)
    on_screen[:, placed.top : placed.top + 336, placed.left : placed.left + 336] = np.kron(
        truth, np.ones((1, 3, 3), np.uint8)
    )
    small, small_labels = resize_sequence(frames, on_screen, 112)
    whole, whole_labels = resize_sequence(frames, on_screen, 112, crop_to_sector=False)
    lv = truth == LabelClass.LV_CAVITY
    # the LV fills the network's input as on the clip itself, not squeezed into a screen
    assert (small_labels == LabelClass.LV_CAVITY).sum() == pytest.approx(lv.sum(), rel=0.15)
    assert (whole_labels == LabelClass.LV_CAVITY).sum() < 0.5 * lv.sum()
    assert small.shape == (40, 112, 112)


def test_a_mirrored_clip_gets_the_mirror_of_the_prediction_on_the_clip(clip):
    mirrored = np.ascontiguousarray(clip[:, :, ::-1])
    direct = predict_sequence(clip, both_directions=False)
    np.testing.assert_array_equal(
        predict_sequence(mirrored, both_directions=False, mirrored=True), direct[:, :, ::-1]
    )
    # read in EchoNet's convention, the mirrored clip's LV is another shape altogether
    plain = predict_sequence(mirrored, both_directions=False)[:, :, ::-1]
    a, b = plain == LabelClass.LV_CAVITY, direct == LabelClass.LV_CAVITY
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) < 0.9  # 0.67 here


def test_debugger_diagnostics_on_a_screen_register_the_square_only(screen):
    from echo_napari.registration.diagnostics import diagnostics_chunks

    frames, placed = screen
    calls = []

    class Recording:
        name = "recording"

        def register_pairs(self, fixed, moving, progress=None):
            calls.append(fixed.shape)
            return np.zeros((fixed.shape[0], 2, *fixed.shape[1:]), np.float32)

    chunks = list(diagnostics_chunks(frames[:6], Recording(), chunk=8))
    side = calls[0][-1]
    assert calls[0][-2:] == (side, side) and abs(side - placed.shape[0]) <= 0.06 * side
    assert sum(len(c.frames) for c in chunks) == 6
    list(diagnostics_chunks(frames[:6], Recording(), crop_to_sector=False))
    assert calls[-1][-2:] == frames.shape[1:]


def test_noise_filling_the_frame_is_no_sector():
    noise = np.random.default_rng(0).random((2, 24, 24)).astype(np.float32)
    assert find_field_of_view(noise).is_whole


def test_a_jpeg_scanner_cine_at_30_frames_per_second_is_segmented_in_its_sector(
    clip, screen, tmp_path
):
    from io_fixtures import make_dicom, spatial_region

    from echo_napari.io import read_sequence

    frames, placed = screen
    path = make_dicom(
        tmp_path / "cine.dcm",
        frames[:24],
        regions=[spatial_region(0.03, (0, 0, 639, 479))],
        frame_time=33.3,
        compress="jpeg",
    )
    sequence = read_sequence(path)
    assert sequence.frame_time_ms == pytest.approx(33.3) and sequence.spacing == (0.3, 0.3)
    shown = np.asarray(sequence.frames)
    # luma of the tint: 0.826 of the grey, JPEG noise on top
    assert np.abs(shown - 0.826 * frames[:24]).mean() < 0.02
    view = find_field_of_view(shown)
    side = placed.shape[0]
    assert abs(view.top - placed.top) <= 0.1 * side and abs(view.side - side) <= 0.1 * side
    labels = predict_sequence(shown, both_directions=False, frame_time_ms=33.3)
    outside = np.ones(shown.shape[1:], bool)
    outside[placed.top : placed.top + side, placed.left : placed.left + side] = False
    assert (labels == LabelClass.LV_CAVITY).any() and not labels[:, outside].any()


def test_framing_notes_say_how_the_clip_is_shown_to_the_network(clip, screen):
    from echo_napari.segmentation.inference import framing_notes

    frames, placed = screen
    assert framing_notes(clip, 20.0) == []
    notes = framing_notes(frames, 33.3, mirrored=True)
    assert len(notes) == 3 and "square around the imaging sector" in notes[0]
    assert notes[1] == "resampled from 30 to 50 frames/s" and "mirrored" in notes[2]


def test_a_fan_with_its_apex_at_the_bottom_is_found_apex_down(clip, screen):
    from echo_napari.field_of_view import fan_points_up

    yy, xx = np.mgrid[:200, :200]
    fan = (yy >= np.abs(xx - 100) + 20) & (np.hypot(yy - 20, xx - 100) <= 170)
    assert not fan_points_up(fan) and fan_points_up(fan[::-1])
    box = np.zeros((200, 200), bool)
    box[50:150, 20:180] = True  # a linear probe has no apex, either way up
    assert not fan_points_up(box) and not fan_points_up(box[::-1])
    frames, placed = screen
    upright, down = find_field_of_view(frames), find_field_of_view(frames[:, ::-1])
    assert not upright.apex_down and down.apex_down and not down.is_whole
    # the same square, counted from the other end of the frame
    assert down.side == upright.side and down.left == upright.left
    assert down.top == frames.shape[1] - upright.top - upright.side
    np.testing.assert_array_equal(down.crop(frames[:, ::-1]), upright.crop(frames))
    assert find_field_of_view(clip[:, ::-1]).apex_down and find_field_of_view(clip).is_whole
    # fine-tuning learns from what prediction shows the network: the clip apex up
    from echo_napari.segmentation.training import resize_sequence

    truth = np.asarray(simulate_sequence(3).sequence.labels[:40])
    upright_sample = resize_sequence(clip, truth, 112)
    down_sample = resize_sequence(clip[:, ::-1], np.ascontiguousarray(truth[:, ::-1]), 112)
    for a, b in zip(upright_sample, down_sample, strict=True):
        np.testing.assert_array_equal(a, b)


def test_an_apex_down_clip_gets_the_upside_down_prediction_of_the_clip(clip, screen):
    from echo_napari.segmentation.inference import framing_notes

    direct = predict_sequence(clip, both_directions=False)
    down = np.ascontiguousarray(clip[:, ::-1])
    np.testing.assert_array_equal(predict_sequence(down, both_directions=False)[:, ::-1], direct)
    # read as it is shown, the network finds hardly any of the LV
    plain = predict_sequence(down, both_directions=False, crop_to_sector=False)[:, ::-1]
    a, b = plain == LabelClass.LV_CAVITY, direct == LabelClass.LV_CAVITY
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) < 0.6  # 0.35 here
    assert framing_notes(down) == ["turned apex up (the clip shows the apex at the bottom)"]
    frames, _ = screen
    on_screen = predict_sequence(frames[:12], both_directions=False)
    upside_down = predict_sequence(np.ascontiguousarray(frames[:12, ::-1]), both_directions=False)
    np.testing.assert_array_equal(upside_down[:, ::-1], on_screen)
    notes = framing_notes(frames[:, ::-1])
    assert "square around the imaging sector" in notes[0] and "apex up" in notes[1]


def test_propagation_on_an_apex_down_clip_moves_labels_as_on_the_clip(clip):
    from echo_napari.registration import pairwise_fields, propagate_from_keyframes
    from echo_napari.registration.sector_square import SectorSquareBackend

    truth = np.asarray(simulate_sequence(3).sequence.labels[:40])
    keys = (0, 20)
    upright = propagate_from_keyframes(pairwise_fields(clip), {k: truth[k] for k in keys})
    fields = pairwise_fields(np.ascontiguousarray(clip[:, ::-1]))
    assert isinstance(fields.registrar, SectorSquareBackend) and fields.registrar.view.apex_down
    down = propagate_from_keyframes(fields, {k: truth[k, ::-1] for k in keys})
    a, b = down.labels[:, ::-1] == LabelClass.LV_CAVITY, upright.labels == LabelClass.LV_CAVITY
    # the row component of the fields turned with the picture: without it, labels drift
    assert 2 * (a & b).sum() / (a.sum() + b.sum()) >= 0.99
