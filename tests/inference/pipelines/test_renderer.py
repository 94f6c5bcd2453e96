"""The portrait renderer, the face locator and the AI-generated label.

Real: OpenCV's Haar cascades, torch (on the CPU, one thread; on CUDA in the one test that needs
it), scikit-image's astronaut photograph (public domain) as the portrait. Nothing is simulated.
"""

from __future__ import annotations

import numpy as np
import pytest
import skimage
import torch

from inference.pipelines.face import FaceLayout, locate_face
from inference.pipelines.label import burn_label
from inference.pipelines.renderer import PortraitRenderer, blink_closure
from inference.pipelines.types import StageError

SIZE = 256  # half the astronaut's side: the tests run faster and still resize the portrait


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.asarray(skimage.data.astronaut())


@pytest.fixture(scope="module")
def still(astronaut) -> PortraitRenderer:
    """Head motion off, so any change is the mouth or the eyes."""
    return PortraitRenderer(astronaut, size=SIZE, head_motion=False)


@pytest.fixture(scope="module")
def moving(astronaut) -> PortraitRenderer:
    return PortraitRenderer(astronaut, size=SIZE)


def crop(frames: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    x, y, w, h = box
    return frames[..., y : y + h, x : x + w, :].astype(np.float64)


def test_finds_the_astronauts_face_mouth_and_eyes(astronaut):
    """Real cascades on a real photograph: the boxes sit where her face is (177, 67, 93×93 in
    the 512×512 picture, found by looking), eyes above the mouth and on either side."""
    layout = locate_face(astronaut)
    fx, fy, fw, fh = layout.face
    assert abs(fx + fw / 2 - 223) < 15 and abs(fy + fh / 2 - 113) < 15
    assert 70 < fw < 130
    left, right, mouth = layout.left_eye, layout.right_eye, layout.mouth
    assert left[0] + left[2] / 2 < fx + fw / 2 < right[0] + right[2] / 2
    assert max(left[1] + left[3], right[1] + right[3]) <= mouth[1] + mouth[3] / 2
    assert fy + fh / 2 < mouth[1] + mouth[3] / 2 <= fy + fh


def test_face_layout_round_trips_and_rejects_malformed_boxes(astronaut):
    """A layout saved in a bundle's manifest loads back the same; a broken one is a StageError
    that names the box."""
    layout = locate_face(astronaut)
    assert FaceLayout.from_json(layout.to_json()) == layout
    broken = {**layout.to_json(), "mouth": [1, 2, 0, 4]}
    with pytest.raises(StageError, match="mouth"):
        FaceLayout.from_json(broken)


@pytest.mark.parametrize("picture", ["black", "coffee"])
def test_a_portrait_without_a_face_is_refused(picture):
    """A black picture and scikit-image's coffee cup (real photograph, no face)."""
    image = np.zeros((256, 256, 3), np.uint8) if picture == "black" else skimage.data.coffee()
    with pytest.raises(StageError, match="no face found"):
        PortraitRenderer(image, size=SIZE)


def test_a_given_layout_is_used_instead_of_looking(astronaut):
    """Boxes from a bundle are mapped into the frame (here: scaled by a half) without detection;
    a black picture with a layout renders, since nothing has to be found."""
    layout = locate_face(astronaut)
    renderer = PortraitRenderer(np.zeros((512, 512, 3), np.uint8), size=SIZE, layout=layout)
    assert renderer.layout.face == tuple(round(v / 2) for v in layout.face)
    assert renderer.render(np.ones(2)).shape == (2, SIZE, SIZE, 3)


def test_frames_have_the_size_and_type_asked(moving):
    """Real render on the CPU of the astronaut, including an empty track."""
    frames = moving.render(np.linspace(0, 1, 7))
    assert frames.shape == (7, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert moving.render(np.zeros(0)).shape == (0, SIZE, SIZE, 3)


def test_wide_portrait_is_cropped_around_the_face(astronaut):
    """The astronaut padded with grey on the left to 2:1: the square frame follows the face."""
    wide = np.concatenate([np.full((512, 512, 3), 128, np.uint8), astronaut], axis=1)
    renderer = PortraitRenderer(wide, size=SIZE, head_motion=False)
    fx, _, fw, _ = renderer.layout.face
    assert abs(fx + fw / 2 - SIZE / 2) < SIZE * 0.05
    assert (renderer.portrait != 128).any(axis=-1).mean() > 0.9  # little of the grey shows


def test_opening_the_mouth_changes_the_mouth_and_nothing_far_from_the_face(moving):
    """Same frame numbers (same sway), openness 0 against 1: the mouth box changes a lot, the
    frame's top band (sky, far from the face) not at all."""
    closed, opened = moving.render(np.zeros(3)), moving.render(np.ones(3))
    mouth_change = np.abs(crop(opened, moving.layout.mouth) - crop(closed, moving.layout.mouth))
    assert mouth_change.mean() > 8
    far = np.abs(opened[:, : SIZE // 10].astype(int) - closed[:, : SIZE // 10].astype(int))
    assert far.max() == 0


def test_the_mouth_changes_more_the_wider_it_opens(still):
    """Real render, head still: the mouth box moves further from the closed mouth at 0.25,
    0.5 and 1.0."""
    rest = still.render(np.zeros(1))
    changes = [
        np.abs(
            crop(still.render(np.full(1, o)), still.layout.mouth) - crop(rest, still.layout.mouth)
        ).mean()
        for o in (0.25, 0.5, 1.0)
    ]
    assert 0 < changes[0] < changes[1] < changes[2]


def test_the_open_mouth_is_darker_inside(still):
    """The mouth's inside darkens as it opens (the astronaut smiles with bright teeth)."""
    rest, opened = still.render(np.zeros(1)), still.render(np.ones(1))
    assert crop(opened, still.layout.mouth).mean() < crop(rest, still.layout.mouth).mean() - 5


def test_eyes_close_at_the_scheduled_blinks_only(still):
    """Over 10 s with the mouth closed: frames with a closed-eye schedule differ from the still
    portrait in the eye boxes and show less of the dark iris; frames between blinks equal it."""
    frames = still.render(np.zeros(250), seed=7)
    closure = blink_closure(np.arange(250), seed=7)
    rest = still.portrait.astype(np.float64)
    eyes = [still.layout.left_eye, still.layout.right_eye]
    change = np.array(
        [sum(np.abs(crop(frame, eye) - crop(rest, eye)).mean() for eye in eyes) for frame in frames]
    )
    closed, opened = closure > 0.9, closure == 0
    assert closed.sum() >= 2 and opened.sum() > 200  # blinks 3–5 s apart, ~150 ms long
    assert change[closed].min() > 10
    assert change[opened].max() == 0
    # Closing covers the dark iris with skin: fewer dark pixels in the eye boxes.
    dark = [
        np.mean(
            [
                (crop(f, eye).sum(axis=-1) < np.percentile(crop(rest, eye).sum(axis=-1), 20)).mean()
                for eye in eyes
            ]
        )
        for f in frames
    ]
    assert np.array(dark)[closed].max() < 0.8 * np.array(dark)[opened].min()


def test_blinks_are_three_to_five_seconds_apart():
    """The real blink schedule over two minutes (no rendering)."""
    closure = blink_closure(np.arange(25 * 120), seed=3)
    starts = np.flatnonzero((closure[1:] > 0) & (closure[:-1] == 0)) / 25
    gaps = np.diff(starts)
    assert len(starts) >= 28 and gaps.min() >= 2.9 and gaps.max() <= 5.1


def test_same_seed_same_frames_other_seed_other_frames(moving):
    """Real renders: the seed fixes blinks and sway, so a repeat is identical."""
    track = np.linspace(0, 1, 100) % 0.7
    first, again = moving.render(track, seed=11), moving.render(track, seed=11)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, moving.render(track, seed=12))


def test_the_head_sways_slowly(moving, still):
    """With head motion the picture moves a little from frame to frame and away from the still
    portrait, but stays close to it (a low-amplitude sway)."""
    frames = moving.render(np.zeros(50)).astype(np.float64)
    rest = still.render(np.zeros(1)).astype(np.float64)
    assert np.abs(frames - rest).mean(axis=(1, 2, 3)).max() > 2
    step = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    assert step.max() < np.abs(frames[0] - frames[25]).mean()


def test_chunks_join_into_the_same_stream(moving):
    """Frames 0..49 in one call equal frames 0..24 then 25..49 in two calls (live streaming)."""
    track = (np.sin(np.arange(50) / 3) + 1) / 2
    whole = moving.render(track, seed=5)
    parts = np.concatenate(
        [moving.render(track[:25], seed=5), moving.render(track[25:], start_frame=25, seed=5)]
    )
    assert np.array_equal(whole, parts)


def test_bad_tracks_are_refused(moving):
    """A NaN openness or a 2-D track is a StageError, not a garbled video."""
    with pytest.raises(StageError, match="finite"):
        moving.render(np.array([0.2, np.nan]))
    with pytest.raises(StageError, match="finite"):
        moving.render(np.zeros((2, 2)))


@pytest.mark.parametrize("corner", ["bottom-right", "top-left"])
def test_the_label_changes_only_its_corner(moving, corner):
    """Real label on real frames: pixels change in the chosen corner and nowhere else."""
    frames = moving.render(np.zeros(2))
    labelled = burn_label(frames, corner=corner)
    changed = (labelled != frames).any(axis=(0, 3))
    rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
    assert changed.sum() > 200  # the badge is visible
    quarter = SIZE // 2
    if corner == "bottom-right":
        assert rows.min() >= quarter and cols.min() >= quarter
    else:
        assert rows.max() < quarter and cols.max() < quarter
    assert labelled.shape == frames.shape and labelled.dtype == np.uint8


def test_label_text_must_be_ascii(moving):
    """OpenCV's Hershey fonts have no Chinese glyphs: a Chinese label is refused, not drawn as
    question marks."""
    with pytest.raises(StageError, match="ASCII"):
        burn_label(moving.render(np.zeros(1)), text="AI生成")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_half_precision_on_cuda_matches_the_cpu(astronaut, moving):
    """Real CUDA: half precision is the default there, and the frames match the CPU's closely."""
    renderer = PortraitRenderer(astronaut, size=SIZE, device="cuda")
    assert renderer.half
    track = np.linspace(0, 1, 20)
    gpu, cpu = renderer.render(track, seed=2), moving.render(track, seed=2)
    assert gpu.shape == cpu.shape and gpu.dtype == np.uint8
    assert np.abs(gpu.astype(int) - cpu.astype(int)).mean() < 2
