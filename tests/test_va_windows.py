"""Windows: random training windows, sliding evaluation windows, per-frame averaging."""

import numpy as np
import pytest
import torch

from affectpipe.data.windows import (
    ClipData,
    WindowConfig,
    WindowDataset,
    all_starts,
    overlap_average,
    sliding_items,
    window_starts,
)


def _clip(cid, n, dim=3):
    return ClipData(
        cid,
        np.arange(n * dim, dtype=np.float32).reshape(n, dim),
        np.zeros((n, 2), np.float32),
        np.arange(n) + 100,
        "train",
        "a",
    )


@pytest.mark.parametrize(
    "n, length, stride, expected",
    [
        (10, 4, 2, [0, 2, 4, 6]),
        (11, 4, 2, [0, 2, 4, 6, 7]),  # the last window ends exactly at the last frame
        (4, 4, 2, [0]),
        (2, 4, 2, [0]),  # shorter than a window: one padded window
    ],
)
def test_window_starts(n, length, stride, expected):
    assert window_starts(n, length, stride) == expected


@pytest.mark.parametrize("lengths", [[10, 3, 17], [4], [1, 9]])
def test_every_frame_covered_and_averaged_correctly(lengths):
    clips = [_clip(str(i), n) for i, n in enumerate(lengths)]
    items = sliding_items(clips, length=4, stride=3)
    clip_idx = np.array([c for c, _ in items])
    start = np.array([s for _, s in items])
    # window w predicts (frame index + w) at each position: the mean over windows is known
    frame = start[:, None] + np.arange(4)[None, :]
    values = (frame + np.arange(len(items))[:, None]).astype(float)[..., None]
    out = overlap_average(lengths, clip_idx, start, values)
    for i, n in enumerate(lengths):
        for f in range(n):
            covering = [w for w, (c, s) in enumerate(items) if c == i and s <= f < s + 4]
            assert covering, f"frame {f} of clip {i} uncovered"
            assert out[i][f, 0] == pytest.approx(f + np.mean(covering))


def test_uncovered_frame_is_an_error():
    with pytest.raises(ValueError, match="1 frame\\(s\\) are covered by no evaluation window"):
        overlap_average([5], np.array([0]), np.array([0]), np.zeros((1, 4, 1)))


def test_dataset_pads_short_clips_and_marks_them_invalid():
    clips = [_clip("a", 3), _clip("b", 6)]
    ds = WindowDataset(clips, [(0, 0), (1, 2)], length=4)
    short = ds[0]
    assert short["valid"].tolist() == [True, True, True, False]
    assert short["x"].shape == (4, 3) and torch.all(short["x"][3] == 0)
    assert short["t"][:3].tolist() == [100, 101, 102]
    full = ds[1]
    assert full["valid"].all() and full["t"].tolist() == [102, 103, 104, 105]
    assert full["clip"].item() == 1 and full["start"].item() == 2


def test_all_starts_counts_every_window_position():
    clips = [_clip("a", 6), _clip("b", 2)]
    assert all_starts(clips, 4) == [(0, 0), (0, 1), (0, 2), (1, 0)]


def test_window_config_rejects_bad_values():
    with pytest.raises(ValueError, match="eval_stride=9"):
        WindowConfig(length=8, batch_size=4, windows_per_epoch=None, eval_stride=9)
