"""The HDF5 feature store: round trip, determinism, stale and incomplete caches refused."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from affectpipe.features.store import (
    FeatureReader,
    FeatureWriter,
    StaleCacheError,
    open_features,
)

ATTRS = {"backbone": "clip", "spec": "tiny", "config_hash": "abc", "dtype": "bfloat16", "dim": 4}


def _write(path, attrs=ATTRS):
    rng = np.random.default_rng(0)
    with FeatureWriter(path, attrs) as w:
        for clip in ["002", "001"]:
            n = 3 if clip == "001" else 5
            w.add(
                clip,
                rng.normal(size=(n, 4)),
                frame=np.arange(n),
                valence=np.linspace(-1, 1, n),
                split="train",
                actor="A B",
                emotion=3,
            )
    return path


def test_round_trip_keeps_features_labels_and_sorted_ids(tmp_path):
    path = _write(tmp_path / "f.h5")
    with open_features(path, expect={"backbone": "clip", "dim": 4}) as r:
        assert r.clip_ids == ["001", "002"]
        assert r["002"].shape == (5, 4) and r["002"].dtype == np.float32
        labels = r.labels("001")
        assert labels["split"] == "train" and labels["actor"] == "A B" and labels["emotion"] == 3
        np.testing.assert_array_equal(labels["frame"], [0, 1, 2])
        assert r.attrs["config_hash"] == "abc" and r.dim == 4
    rng = np.random.default_rng(0)
    expected_002 = rng.normal(size=(5, 4)).astype(np.float32)
    with FeatureReader(path) as r:
        np.testing.assert_array_equal(r["002"], expected_002)


def test_two_writes_give_identical_bytes(tmp_path):
    a = _write(tmp_path / "a.h5").read_bytes()
    b = _write(tmp_path / "b.h5").read_bytes()
    assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


@pytest.mark.parametrize(
    ("key", "value"),
    [("backbone", "videomae"), ("config_hash", "def"), ("dtype", "float32"), ("dim", 8)],
)
def test_stale_cache_refused_naming_file_key_and_values(tmp_path, key, value):
    path = _write(tmp_path / "f.h5")
    with pytest.raises(StaleCacheError, match=rf"f\.h5: .*'{key}' is .*, expected {value!r}"):
        open_features(path, expect={key: value})


def test_missing_expected_attribute_is_refused(tmp_path):
    path = _write(tmp_path / "f.h5")
    with pytest.raises(StaleCacheError, match="'preprocessing' is missing"):
        open_features(path, expect={"preprocessing": "{}"})


def test_interrupted_write_leaves_no_file_a_reader_accepts(tmp_path):
    path = tmp_path / "f.h5"
    with pytest.raises(RuntimeError, match="killed"), FeatureWriter(path, ATTRS) as w:
        w.add("001", np.ones((2, 4)))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temporary
    with pytest.raises(FileNotFoundError, match="no feature file"):
        open_features(path)


def test_temp_file_of_a_crashed_writer_is_refused_as_incomplete(tmp_path):
    path = tmp_path / "f.h5"
    w = FeatureWriter(path, ATTRS).__enter__()
    w.add("001", np.ones((2, 4)))
    w._file.flush()  # a process killed here leaves only the .tmp file behind
    with pytest.raises(StaleCacheError, match="'complete' is missing"):
        open_features(w.tmp)
    w._file.close()


def test_old_format_version_is_refused(tmp_path):
    import h5py

    path = _write(tmp_path / "f.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 0
    with pytest.raises(StaleCacheError, match="'format_version' is 0, expected 1"):
        open_features(path)


@pytest.mark.parametrize(
    ("clip", "features", "labels", "match"),
    [
        ("a/b", np.ones((2, 4)), {}, "invalid clip id"),
        ("001", np.ones(4), {}, r"must be \(n>0, dim\)"),
        ("001", np.ones((2, 4)), {"frame": [0, 1, 2]}, "label 'frame' has 3 rows, not 2"),
    ],
)
def test_bad_additions_are_refused_by_name(tmp_path, clip, features, labels, match):
    with pytest.raises(ValueError, match=match), FeatureWriter(tmp_path / "f.h5", ATTRS) as w:
        w.add(clip, features, **labels)
    assert not (tmp_path / "f.h5").exists()


def test_duplicate_clip_is_refused(tmp_path):
    path = tmp_path / "f.h5"
    with pytest.raises(ValueError, match="added twice"), FeatureWriter(path, ATTRS) as w:
        w.add("001", np.ones((2, 4)))
        w.add("001", np.ones((2, 4)))
