"""Extraction: pooling rules, padding masks, sharding, bad inputs, provenance, the stage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from PIL import Image

from affectpipe.compute import ComputeConfig
from affectpipe.config import ConfigError, from_section, load_params
from affectpipe.features import backbones
from affectpipe.features import embed as E
from affectpipe.features.backbones import load_backbone
from affectpipe.features.extract import (
    ExtractConfig,
    build_plan,
    config_class,
    embedding_rows,
    extract_features,
    provenance,
)
from affectpipe.features.shards import (
    extract_shard,
    merge_parts,
    part_path,
    plan_batches,
    resolve_workers,
)
from affectpipe.features.sources import Item, Plan, afewva_frames_plan
from affectpipe.features.store import open_features
from affectpipe.problems import InputProblem, ProblemLog

CPU = ComputeConfig(device="cpu", processes=1, launcher="accelerate", dataloader_workers=0)
PARAMS = load_params(Path(__file__).resolve().parents[1] / "params.yaml")


def config(kind: str, **changes) -> ExtractConfig:
    """params.yaml's `extract.<kind>`, with `changes`."""
    values = {**PARAMS["extract"][kind], **changes}
    return from_section(config_class(kind), values, f"extract.{kind}")


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv(backbones.CACHE_ENV, str(tmp_path_factory.getbasetemp() / "cache"))


def write_av(folder: Path, n_clips: int = 4, bad: str | None = None) -> Path:
    """A RAVDESS-like processed folder: clips.csv, frames/<id>.npy, audio/<id>.wav."""
    rng = np.random.default_rng(1)
    (folder / "frames").mkdir(parents=True)
    (folder / "audio").mkdir()
    rows = []
    for i in range(n_clips):
        cid = f"01-01-0{i + 1}-01-01-01-0{i % 2 + 1}"
        has_video, has_audio = i != 1, i != 2  # clip 1: no video, clip 2: no audio
        np.save(
            folder / "frames" / f"{cid}.npy", rng.integers(0, 255, (5 + i, 24, 32, 3), np.uint8)
        )
        wave = 0.1 * rng.standard_normal(3000 + 1500 * i).astype(np.float32)
        sf.write(folder / "audio" / f"{cid}.wav", wave, 16000, subtype="FLOAT")
        rows.append(
            {
                "clip_id": cid,
                "dataset": "ravdess",
                "actor": f"0{i % 2 + 1}",
                "emotion": i,
                "split": "train",
                "fold": i % 2,
                "has_video": has_video,
                "has_audio": has_audio,
                "frames_path": f"frames/{cid}.npy",
                "audio_path": f"audio/{cid}.wav",
            }
        )
    if bad == "frames":
        (folder / "frames" / f"{rows[0]['clip_id']}.npy").write_bytes(b"not numpy")
    pd.DataFrame(rows).to_csv(folder / "clips.csv", index=False)
    return folder


def write_afewva(folder: Path) -> Path:
    rng = np.random.default_rng(2)
    rows = []
    for clip in ("002", "001"):
        for frame in (2, 0, 1):  # rows out of frame order on purpose
            path = Path("crops") / clip / f"{frame:05d}.png"
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), np.uint8)).save(folder / path)
            rows.append(
                {
                    "clip": clip,
                    "frame": frame,
                    "crop_path": str(path),
                    "valence": frame / 10,
                    "arousal": -frame / 10,
                    "actor": f"Actor {clip}",
                    "box_x0": 0,
                    "box_y0": 0,
                    "box_x1": 20,
                    "box_y1": 20,
                    "split": "test" if clip == "001" else "train",
                }
            )
    pd.DataFrame(rows).to_csv(folder / "frames.csv", index=False)
    return folder


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_videomae_embedding_is_the_mean_over_all_tokens_not_token_0():
    b = load_backbone("videomae", "tiny")
    torch.manual_seed(0)
    size = b.model.config.image_size
    x = torch.randn(2, 16, 3, size, size)  # (B, T, C, H, W)
    hidden = b.model(pixel_values=x).last_hidden_state  # (B, N, D)
    assert hidden.shape[1] == (16 // 2) * (size // 16) ** 2  # tubelets x patches, no CLS
    pooled = E.embed_videomae(b.model, x)
    torch.testing.assert_close(pooled, hidden.mean(dim=1))
    assert not torch.allclose(pooled, hidden[:, 0])


def test_wav2vec2_masked_mean_ignores_padding_of_a_batch():
    b = load_backbone("wav2vec2", "tiny")
    rng = np.random.default_rng(0)
    waves = {
        "a": rng.standard_normal(3000).astype(np.float32),
        "b": rng.standard_normal(7000).astype(np.float32),
    }

    def run(names):
        inputs = b.processor(
            [waves[n] for n in names],
            sampling_rate=16000,
            padding=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        with torch.inference_mode():
            return E.embed_wav2vec2(b.model, inputs.input_values, inputs.attention_mask)[:, -1]

    alone, batched = run(["a"]), run(["a", "b"])
    assert batched.shape == (2, b.dim)
    torch.testing.assert_close(batched[0], alone[0], atol=1e-5, rtol=1e-4)
    # the same batch with the padding counted in the mean would differ
    inputs = b.processor(
        [waves["a"], waves["b"]],
        sampling_rate=16000,
        padding=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    with torch.inference_mode():
        hidden = b.model(inputs.input_values, attention_mask=inputs.attention_mask)
    assert not torch.allclose(hidden.last_hidden_state[0].mean(0), alone[0], atol=1e-3)


def test_extract_sections_take_no_code_defaults_and_name_the_bad_key():
    with pytest.raises(ConfigError, match=r"missing key 'extract.wav2vec2.dtype'"):
        values = {k: v for k, v in PARAMS["extract"]["wav2vec2"].items() if k != "dtype"}
        from_section(config_class("wav2vec2"), values, "extract.wav2vec2")
    with pytest.raises(ConfigError, match=r"unknown key 'extract.wav2vec2.layer'"):
        config("wav2vec2", layer=-1)  # the layer is a training choice now
    with pytest.raises(ConfigError, match=r"'extract.clip.batch_size': Input should be greater"):
        config("clip", batch_size=0)
    with pytest.raises(ConfigError, match=r"'extract.videomae.dtype'"):
        config("videomae", dtype="fp8")
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        config_class("resnet")


def test_wav2vec2_stores_every_hidden_state_per_clip_and_the_store_round_trips(tmp_path):
    from affectpipe.data.av_dataset import clip_vector, load_clip_embeddings

    folder = write_av(tmp_path / "ravdess")
    out = tmp_path / "w.h5"
    cfg = config("wav2vec2", batch_size=2, dtype="float32")
    extract_features("wav2vec2", "ravdess", folder, out, cfg, CPU)
    b = load_backbone("wav2vec2", "tiny")
    n = b.model.config.num_hidden_layers + 1
    with open_features(out, expect={"layers": n, "dim": b.dim}) as r:
        assert json.loads(r.attrs["preprocessing"])["hidden_states"] == "all"
        clip = r.clip_ids[0]
        assert r[clip].shape == (1, n * b.dim)  # one row per item, (L + 1) * D wide
        vector = clip_vector(r, clip)
        wave, _ = sf.read(folder / "audio" / f"{clip}.wav", dtype="float32")
    assert vector.shape == (n, b.dim)
    inputs = b.processor([wave], sampling_rate=16000, return_attention_mask=True,
                         return_tensors="pt")  # fmt: skip
    with torch.inference_mode():  # row k is hidden_states[k] pooled over time
        hidden = b.model(inputs.input_values, attention_mask=inputs.attention_mask,
                         output_hidden_states=True).hidden_states  # fmt: skip
    expected = torch.stack([h[0].mean(0) for h in hidden]).numpy()
    np.testing.assert_allclose(vector, expected, rtol=1e-4, atol=1e-5)
    assert not np.allclose(vector[0], vector[-1], atol=1e-2)  # the layers differ
    loaded = load_clip_embeddings(out, {clip}, ProblemLog("strict"))
    np.testing.assert_array_equal(loaded[clip], vector)


def test_a_voice_store_of_other_layers_or_backbone_is_refused_as_stale(tmp_path):
    folder = write_av(tmp_path / "ravdess")
    out = tmp_path / "w.h5"
    extract_features("wav2vec2", "ravdess", folder, out, config("wav2vec2", batch_size=2), CPU)
    with open_features(out) as r:
        recorded = {k: r.attrs[k] for k in ("layers", "preprocessing", "config_hash")}
    one_layer = json.dumps(
        {**json.loads(recorded["preprocessing"]), "hidden_states": None, "layer": -1}
    )  # what a store of the last layer only records
    for expect in ({"layers": recorded["layers"] + 1}, {"preprocessing": one_layer},
                   {"config_hash": "0" * 64}):  # fmt: skip
        key = next(iter(expect))
        with pytest.raises(Exception, match=rf"stale or foreign.*'{key}'"):
            open_features(out, expect=expect)


def test_batches_within_clips_start_at_each_clip():
    plan = Plan("x")
    plan.add("a", [Item("a", "")] * 5, {})
    plan.add("b", [Item("b", "")] * 2, {})
    assert plan_batches(plan, 2, False, False, within_clips=True) == [[0, 1], [2, 3], [4], [5, 6]]
    assert plan_batches(plan, 2, False, False) == [[0, 1], [2, 3], [4, 5], [6]]


def test_group_norm_wav2vec2_batches_never_mix_lengths():
    plan = Plan("x")
    plan.add("a", [Item("a", "", length=5)], {})
    plan.add("b", [Item("b", "", length=3)], {})
    plan.add("c", [Item("c", "", length=5)], {})
    plan.add("d", [Item("d", "", length=3)], {})
    assert plan_batches(plan, 8, by_length=True, same_length=True) == [[1, 3], [0, 2]]
    assert plan_batches(plan, 3, by_length=True, same_length=False) == [[1, 3, 0], [2]]
    assert plan_batches(plan, 3, by_length=False, same_length=False) == [[0, 1, 2], [3]]


@pytest.mark.parametrize(("kind", "rows"), [("clip", [5, 7, 8]), ("videomae", [1, 1, 1])])
def test_av_video_features_skip_clips_without_video_and_keep_labels(tmp_path, kind, rows):
    folder = write_av(tmp_path / "ravdess")
    out = tmp_path / f"{kind}.h5"
    report, _ = extract_features(kind, "ravdess", folder, out, config(kind, batch_size=3), CPU)
    assert report["no_modality"] == ["01-01-02-01-01-01-02"] and report["skipped"] == []
    with open_features(out, expect={"backbone": kind, "spec": "tiny", "dataset": "ravdess"}) as r:
        assert [r[c].shape[0] for c in r.clip_ids] == rows
        assert all(np.isfinite(r[c]).all() for c in r.clip_ids)
        labels = r.labels(r.clip_ids[-1])
        assert labels["emotion"] == 3 and labels["actor"] == "02" and labels["split"] == "train"
        assert "frames_path" not in labels
        prep = json.loads(r.attrs["preprocessing"])
        assert prep["processor"]["size"] and prep["pixels"].startswith("torch batch")


def test_wav2vec2_features_skip_clips_without_audio(tmp_path):
    folder = write_av(tmp_path / "ravdess")
    out = tmp_path / "w.h5"
    report, _ = extract_features(
        "wav2vec2", "ravdess", folder, out, config("wav2vec2", batch_size=2), CPU
    )
    assert report["no_modality"] == ["01-01-03-01-01-01-01"] and report["clips"] == 3
    with open_features(out, expect={"backbone": "wav2vec2", "dim": 64}) as r:
        n = r.attrs["layers"]
        assert len(r) == 3 and all(r[c].shape == (1, n * 64) for c in r.clip_ids)


def test_afewva_rows_follow_frame_order_with_per_frame_labels(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    out = tmp_path / "clip_afewva.h5"
    extract_features("clip", "afewva", folder, out, config("clip", batch_size=4), CPU)
    with open_features(out) as r:
        assert r.clip_ids == ["001", "002"]
        labels = r.labels("001")
        np.testing.assert_array_equal(labels["frame"], [0, 1, 2])
        np.testing.assert_allclose(labels["valence"], [0.0, 0.1, 0.2], rtol=1e-6)
        assert labels["split"] == "test" and labels["actor"] == "Actor 001"
        assert r["001"].shape == (3, 64) and r.attrs["model_class"] == "CLIPVisionModel"


@pytest.mark.parametrize("kind", ["clip", "wav2vec2"])
def test_two_shards_merge_to_the_same_bytes_as_one(tmp_path, kind):
    folder = write_av(tmp_path / "ravdess")
    cfg = config(kind, batch_size=3, dtype="bfloat16")
    b = load_backbone(kind, "tiny")
    plan = build_plan(kind, "ravdess", folder, b, ProblemLog())
    batches = plan_batches(plan, 3, by_length=kind == "wav2vec2", same_length=False)
    attrs = provenance(b, cfg, "ravdess")
    outs = {}
    for world in (1, 2):
        out = tmp_path / f"w{world}.h5"
        parts = [part_path(out, r, world) for r in range(world)]
        for rank, part in enumerate(parts):
            extract_shard(b, plan, batches, part, embedding_rows(b, cfg), rank, world)
        merge_parts(parts, plan, out, attrs, ProblemLog("strict"))
        outs[world] = sha(out)
    assert outs[1] == outs[2]


@pytest.mark.parametrize("kind", ["clip", "videomae", "wav2vec2"])
def test_bf16_features_match_fp32_in_direction(tmp_path, kind):
    folder = write_av(tmp_path / "ravdess")
    feats = {}
    for dtype in ("float32", "bfloat16"):
        out = tmp_path / f"{dtype}.h5"
        cfg = config(kind, batch_size=4, dtype=dtype)
        extract_features(kind, "ravdess", folder, out, cfg, CPU)
        with open_features(out, expect={"dtype": dtype}) as r:
            feats[dtype] = np.concatenate([r[c] for c in r.clip_ids])
    a, b = feats["float32"], feats["bfloat16"]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert cos.min() > 0.999 and not np.array_equal(a, b)


@pytest.mark.parametrize(("kind", "dataset"), [("clip", "afewva"), ("videomae", "ravdess")])
def test_same_inputs_give_identical_bytes_whether_decoded_in_process_or_in_a_worker(
    tmp_path, kind, dataset
):
    write = write_afewva if dataset == "afewva" else write_av
    folder = write(tmp_path / dataset)
    digests = []
    for workers in (0, 0, 1):  # twice on this process's threads, then in a worker process
        out = tmp_path / f"{workers}-{len(digests)}.h5"
        compute = ComputeConfig(
            device="cpu", processes=1, launcher="accelerate", dataloader_workers=workers
        )
        extract_features(kind, dataset, folder, out, config(kind, batch_size=2), compute)
        digests.append(sha(out))
    assert digests[0] == digests[1] == digests[2]


def test_threaded_decoding_keeps_item_order(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    items = afewva_frames_plan(folder, ProblemLog("skip")).items
    serial = E.decode("clip", None, items, threads=1)["frames"]
    threaded = E.decode("clip", None, items, threads=3)["frames"]
    assert serial.shape[0] == len(items) and torch.equal(serial, threaded)


def test_decoding_workers_default_to_none_on_a_cpu_and_a_few_beside_a_gpu(monkeypatch):
    assert resolve_workers("auto", torch.device("cpu")) == 0
    assert resolve_workers(3, torch.device("cpu")) == 3  # a count is taken as given
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(16)))
    assert resolve_workers("auto", torch.device("cuda")) == 4
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1})
    assert resolve_workers("auto", torch.device("cuda")) == 1


@pytest.mark.parametrize("workers", [-1, "two", 1.5, True])
def test_bad_decoding_worker_counts_are_refused(workers):
    with pytest.raises(ValueError, match="dataloader_workers must be 'auto' or >= 0"):
        resolve_workers(workers, torch.device("cpu"))


def test_interrupted_extraction_leaves_no_file_a_reader_accepts(tmp_path, monkeypatch):
    folder = write_av(tmp_path / "ravdess")
    out = tmp_path / "clip.h5"
    calls = []

    def dies_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    real = E.embed
    monkeypatch.setattr(E, "embed", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        extract_features("clip", "ravdess", folder, out, config("clip", batch_size=2), CPU)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ravdess"]
    with pytest.raises(FileNotFoundError, match="run the extract stage"):
        open_features(out)


def test_leftovers_of_a_killed_run_are_removed_and_reported(tmp_path, capsys):
    folder = write_av(tmp_path / "ravdess")
    out = tmp_path / "feats" / "clip.h5"
    out.parent.mkdir()
    names = ["clip.h5.part-1-of-2", "clip.h5.part-0-of-2.tmp", ".clip.h5.4242.tmp",
             ".clip.report.json.4242.tmp"]  # the store's and its report's temporaries  # fmt: skip
    killed = [out.with_name(n) for n in names]
    for p in killed:
        p.write_bytes(b"half a file")
    other = out.with_name("other.h5.part-0-of-2")  # another store's: not ours to touch
    other.write_bytes(b"x")
    extract_features("clip", "ravdess", folder, out, config("clip", batch_size=2), CPU)
    assert sorted(p.name for p in out.parent.iterdir()) == ["clip.h5", "other.h5.part-0-of-2"]
    err = capsys.readouterr().err
    assert f"removed leftovers of an interrupted run: {', '.join(sorted(names))}\n" in err
    with open_features(out) as r:
        assert r.attrs["backbone"] == "clip"


def test_bad_frames_file_is_recorded_under_skip_and_raised_under_strict(tmp_path):
    folder = write_av(tmp_path / "ravdess", bad="frames")
    out = tmp_path / "v.h5"
    cfg = config("videomae", batch_size=2)
    report, _ = extract_features("videomae", "ravdess", folder, out, cfg, CPU, policy="skip")
    assert [s["path"].endswith("01-01-01-01-01-01-01.npy") for s in report["skipped"]] == [True]
    assert "unreadable frames file" in report["skipped"][0]["reason"] and report["clips"] == 2
    with pytest.raises(InputProblem, match=r"01-01-01-01-01-01-01\.npy: unreadable frames file"):
        extract_features("videomae", "ravdess", folder, out, cfg, CPU, policy="strict")


def test_cache_from_another_spec_is_refused(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    out = tmp_path / "clip_afewva.h5"
    extract_features("clip", "afewva", folder, out, config("clip", batch_size=4), CPU)
    with pytest.raises(Exception, match=r"'spec' is 'tiny', expected 'openai/clip-vit-base"):
        open_features(out, expect={"spec": "openai/clip-vit-base-patch32"})


@pytest.mark.parametrize(
    ("kind", "dataset", "match"),
    [
        ("videomae", "afewva", "does not run on 'afewva'"),
        ("resnet", "ravdess", "unknown backbone 'resnet'"),
    ],
)
def test_unknown_pairs_are_refused_naming_the_choices(tmp_path, kind, dataset, match):
    with pytest.raises(ValueError, match=match):
        extract_features(kind, dataset, tmp_path, tmp_path / "x.h5", config("clip"), CPU)


def test_stage_script_writes_features_and_report(tmp_path, monkeypatch):
    import importlib.util

    from typer.testing import CliRunner

    script = Path(__file__).resolve().parents[1] / "stages" / "extract.py"
    spec = importlib.util.spec_from_file_location("extract_stage", script)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    folder = write_afewva(tmp_path / "afewva")
    params = tmp_path / "params.yaml"
    params.write_text(
        "compute: {device: cpu, processes: 1, launcher: accelerate, dataloader_workers: 0}\n"
        "extract:\n  bad_input: skip\n  clip: {spec: tiny, batch_size: 4, dtype: float32}\n"
    )
    args = [
        "clip",
        "afewva",
        "--in-dir",
        str(folder),
        "--out-dir",
        str(tmp_path / "f"),
        "--params",
        str(params),
    ]
    result = CliRunner().invoke(stage.app, args)
    assert result.exit_code == 0, result.output
    assert "6 items" in result.output
    report = json.loads((tmp_path / "f" / "clip_afewva.report.json").read_text())
    assert report["clips"] == 2 and report["skipped"] == []
    with open_features(tmp_path / "f" / "clip_afewva.h5", expect={"dtype": "float32"}) as r:
        assert len(r) == 2


def test_features_record_the_preprocessing_settings_of_their_folder(tmp_path):
    folder = write_afewva(tmp_path / "afewva")
    (folder / "report.json").write_text(json.dumps({"settings": {"margin": 0.5, "crop_size": 20}}))
    out = tmp_path / "clip.h5"
    extract_features("clip", "afewva", folder, out, config("clip", batch_size=3), CPU)
    with open_features(out) as r:
        assert json.loads(r.attrs["source_settings"]) == {"crop_size": 20, "margin": 0.5}


def test_predict_embeds_frames_as_the_extract_stage_stored_them(tmp_path):
    from affectpipe.inference import embed_images, load_checked_backbone, load_embedder

    folder = write_afewva(tmp_path / "afewva")
    out = tmp_path / "clip.h5"
    # a batch per clip (3 frames each), as `embed_images` batches one video
    extract_features("clip", "afewva", folder, out, config("clip", batch_size=3), CPU)
    with open_features(out) as r:
        entry, stored = dict(r.attrs), {c: r[c] for c in r.clip_ids}
    assert entry["dtype"] == "bfloat16"
    backbone, dtype = load_embedder(entry, torch.device("cpu"), out)
    uncast = load_checked_backbone(entry, torch.device("cpu"), out)
    for clip, features in stored.items():
        paths = sorted((folder / "crops" / clip).glob("*.png"))
        crops = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
        np.testing.assert_array_equal(embed_images(backbone, crops, dtype).numpy(), features)
        # weights left in fp32 under autocast compute something else: the cast is what matches
        assert not np.array_equal(embed_images(uncast, crops, dtype).numpy(), features)


@pytest.mark.parametrize(("kind", "flag"), [("videomae", "has_video"), ("wav2vec2", "has_audio")])
def test_a_release_without_the_modality_gives_an_empty_store_that_says_why(tmp_path, kind, flag):
    from affectpipe.features.store import not_applicable_reason
    from affectpipe.problems import NOT_APPLICABLE

    folder = write_av(tmp_path / "ravdess")
    clips = pd.read_csv(folder / "clips.csv")
    clips[flag] = False  # an audio-only (or video-only) release: no clip has this modality
    clips.to_csv(folder / "clips.csv", index=False)
    out = tmp_path / f"{kind}.h5"
    report, _ = extract_features(kind, "ravdess", folder, out, config(kind, batch_size=2), CPU)
    modality = "video" if flag == "has_video" else "audio"
    assert report[NOT_APPLICABLE] == (f"no clip of ravdess has {modality} (all 4 lack it): "
                                      f"nothing for {kind} to embed")  # fmt: skip
    with open_features(out, expect={"backbone": kind, "spec": "tiny"}) as r:
        assert len(r) == 0
    assert not_applicable_reason(out).startswith(f"{kind}.h5: no clip of ravdess has {modality}")


def test_a_modality_whose_every_input_failed_is_an_error_not_a_layout(tmp_path):
    folder = write_av(tmp_path / "ravdess")
    clips = pd.read_csv(folder / "clips.csv")
    for cid in clips.clip_id[clips.has_video.astype(bool)]:
        (folder / "frames" / f"{cid}.npy").write_bytes(b"not an array")
    with pytest.raises(ValueError, match="nothing to embed with videomae"):
        extract_features("videomae", "ravdess", folder, tmp_path / "v.h5",
                         config("videomae", batch_size=2), CPU)  # fmt: skip
    assert not (tmp_path / "v.h5").exists()
