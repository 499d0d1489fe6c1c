"""Inference on a user's video or a folder of them: VA trace, emotions, face/voice congruence.

One JSON object per video (`affectpipe.records`; schema in docs/predict.md). Whatever cannot be
computed (no audio track, no trained model of a kind) is `null` with a reason in `unavailable`,
and the rest is still produced; a file that cannot be decoded at all becomes an `error` record,
and the other files are still processed. The models and their backbones are loaded once per
run, exactly as the pipeline trained them (see `affectpipe.inference`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.media import VideoInfo, is_video, list_videos, probe
from affectpipe.models.checkpoint import MODEL_FILE
from affectpipe.models.va import PIPELINES
from affectpipe.problems import InputProblem
from affectpipe.records import (
    EMOTION_FIELDS,
    Outcome,
    Sink,
    congruence_block,
    emotion_block,
    empty_record,
    mark_unavailable,
    va_block,
    video_duration,
)
from affectpipe.va_selection import SELECTION_FILE, read_selection, served_checkpoint

if TYPE_CHECKING:
    from affectpipe.inference import EngineSettings


def find_inputs(path: Path) -> list[Path]:
    """The videos `path` names: itself, or every video under a folder (sorted)."""
    if path.is_dir():
        videos = list_videos(path)
        if not videos:
            raise FileNotFoundError(f"{path}: no video files (mp4, avi, mov, flv, webm) in folder")
        return videos
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or folder")
    if not is_video(path):
        raise InputProblem(path, f"'{path.suffix}' is not a video extension this tool reads")
    return [path]


def run_many(predict_one, paths: list[Path], progress: bool = True) -> Iterator[Outcome]:
    """Apply `predict_one(path) -> record` to each path; a bad file is an error outcome, the
    others go on. Only `InputProblem`s (a file's own fault) are caught: a bug still surfaces."""
    for path in tqdm(paths, desc="videos", unit="video", disable=not progress or None):
        try:
            yield Outcome(path, record=predict_one(path))
        except InputProblem as e:
            yield Outcome(path, error=e.problem)


@params_section
class PredictConfig:
    """What `affectpipe predict` loads and how densely it samples a video (the CLI's options)."""

    models_dir: Path
    va_variant: str  # models/finetune/<variant>/fold0: best (evaluate's pick on validation) | lora
    va_selection: Path  # evaluate's record of the best variant, read for `best`
    av_dataset: str  # models/multimodal/<model>_<dataset>: ravdess | cremad
    device: str  # auto (CUDA when present) | cpu | cuda | cuda:N
    va_rate: float  # valence/arousal samples per second of video
    max_side: int  # sampled VA frames are shrunk to this longer side before cropping
    threshold: float | None  # verdict threshold; None: the fusion checkpoint's calibrated one

    def __post_init__(self) -> None:
        if self.va_rate <= 0 or self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"need va_rate > 0 and 0 < threshold < 1, got {self.va_rate}, "
                             f"{self.threshold}")  # fmt: skip


AV_MODELS: tuple[str, ...] = ("fusion", "video", "audio")
PROJECT_ROOT = Path(__file__).resolve().parents[2]  # the checkout, for an editable install
VA_SELECTION = Path("plots") / SELECTION_FILE  # in the checkout: evaluate writes it (dvc.yaml)


def project_root() -> Path:
    """Where the pipeline's `models/` and `params.yaml` are: the working directory when it is a
    checkout of this project (it has dvc.yaml), else the checkout this package runs from, so
    `affectpipe predict` works from any directory; `--models-dir` and `--params` override."""
    for root in (Path.cwd(), PROJECT_ROOT):
        if (root / "dvc.yaml").is_file() and (root / "params.yaml").is_file():
            return root
    return Path.cwd()


def va_variant(requested: str, selection: Path, models_dir: Path) -> tuple[str, str | None]:
    """The VA variant to serve: `requested` itself, or for `best` the one `evaluate` selected on
    validation (`selection`, `affectpipe.va_selection`). With no record, or one naming a variant
    not trained under `models_dir`, the first trained variant (`PIPELINES` order) stands in, and
    the second value says so; a broken record is an `InputProblem`."""
    if requested != "best":
        return requested, None
    trained = [v for v in PIPELINES if (served_checkpoint(models_dir, v) / MODEL_FILE).is_file()]
    try:
        chosen = read_selection(selection)
    except FileNotFoundError:
        problem = f"{selection}: no VA selection record (`dvc repro` writes it, in evaluate)"
    else:
        if chosen in trained or not trained:
            return chosen, None
        problem = f"{selection} selects '{chosen}', which has no trained model under {models_dir}"
    fallback = (trained or list(PIPELINES))[0]
    return fallback, f"{problem}; serving '{fallback}', the first trained variant (--va-variant " \
                     f"chooses one)"  # fmt: skip


class Predictor:
    """Every model found under `models_dir`, loaded once; call it on a video path. `settings`
    (`settings_from_params`) fill in for checkpoints that do not record their preprocessing."""

    def __init__(self, cfg: PredictConfig, settings: EngineSettings):
        from affectpipe.features.backbones import resolve_device
        from affectpipe.inference import AVEngine, VAEngine

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.missing: dict[str, str] = {}
        variant, self.note = va_variant(cfg.va_variant, cfg.va_selection, cfg.models_dir)
        va_dir = served_checkpoint(cfg.models_dir, variant)
        self.va = VAEngine(va_dir, self.device, settings.va) if self._has(va_dir, "va") else None
        self.av: dict[str, AVEngine] = {}
        for name in AV_MODELS:  # the baselines only stand in for a missing fusion model
            d = cfg.models_dir / "multimodal" / f"{name}_{cfg.av_dataset}"
            if "fusion" not in self.av and self._has(d, name):
                self.av[name] = AVEngine(d, self.device, settings.clip, settings.layer)
        if self.va is None and not self.av:
            raise FileNotFoundError(
                f"no trained model under {cfg.models_dir}: expected {va_dir}/model.pt or "
                f"{cfg.models_dir}/multimodal/<fusion|video|audio>_{cfg.av_dataset}/model.pt "
                f"(run `dvc repro` first, or pass --models-dir)"
            )

    @property
    def threshold(self) -> float:
        """The congruence verdict threshold: the one given, else the fusion checkpoint's,
        fitted on its validation fold (0.5 without a fusion model or its calibration)."""
        if self.cfg.threshold is not None:
            return self.cfg.threshold
        fusion = self.av.get("fusion")
        return fusion.calibration.threshold if fusion is not None else 0.5

    def _has(self, folder: Path, name: str) -> bool:
        if (folder / "model.pt").is_file():
            return True
        self.missing[name] = f"no trained model at {folder}"
        return False

    def models(self) -> dict[str, str]:
        """Which checkpoint serves which part of the record."""
        out = {k: str(e.source) for k, e in self.av.items()}
        if self.va is not None:
            out["va"] = str(self.va.source)
        return out

    def __call__(self, path: Path) -> dict[str, Any]:
        from affectpipe.data.media import sample_frames

        info = probe(path)
        sampled = sample_frames(path, self.cfg.va_rate, self.cfg.max_side)
        record = empty_record(info, video_duration(info, sampled.last_time))
        record["models"] = self.models()
        self._va(record, sampled)
        self._av(record, path, info, sampled.n_decoded)
        return record

    def _va(self, record: dict[str, Any], sampled) -> None:
        if self.va is None:
            mark_unavailable(record, ("frames", "valence_mean", "arousal_mean"), self.missing["va"])
            return
        record.update(va_block(sampled.times, self.va(sampled.images)))

    def av_inputs(self, path: Path, info: VideoInfo, n_decoded: int):
        """(frames, 16 kHz samples or None, why there is no voice or None), decoded as the
        RAVDESS/CREMA-D preprocessing decodes: `n_frames` spread over all `n_decoded` frames.
        The engines of one dataset share its clip settings; only called when there is one."""
        from affectpipe.data.media import frames_at, read_track, sample_indices

        s = next(iter(self.av.values())).settings
        frames = frames_at(path, sample_indices(n_decoded, s.n_frames), s.decode_max_side)
        wave, why = None, None
        if not info.has_audio:
            why = "no audio track in the video"
        else:
            try:
                wave = read_track(path, s.sample_rate, s.silence_db).samples
            except InputProblem as e:
                why = e.problem
        return frames, wave, why

    def _av(self, record: dict[str, Any], path: Path, info: VideoInfo, n_decoded: int) -> None:
        if not self.av:
            mark_unavailable(record, (*EMOTION_FIELDS, "congruence"), self.missing["fusion"])
            return
        frames, wave, no_voice = self.av_inputs(path, info, n_decoded)
        probs: dict[str, Any] = {}
        for name in ("audio", "video", "fusion"):  # the fusion model has the last word
            engine = self.av.get(name)
            if engine is None:
                continue
            face = engine.face_embedding(frames) if engine.face is not None else None
            voice = engine.voice_embedding(wave) if engine.voice is not None and wave is not None \
                else None  # fmt: skip
            probs.update(engine(face, voice))
        for field in EMOTION_FIELDS:
            if field in probs:
                record[field] = emotion_block(probs[field])
        if "congruence" in probs:
            fitted = self.av["fusion"].calibration.fitted  # only the fusion model has the head
            record["congruence"] = congruence_block(probs["congruence"], self.threshold, fitted)
        self._explain_gaps(record, no_voice)

    def _explain_gaps(self, record: dict[str, Any], no_voice: str | None) -> None:
        has_fusion = "fusion" in self.av
        for field in (*EMOTION_FIELDS, "congruence"):
            if record[field] is not None:
                continue
            needs_voice = field != "face_emotion"
            if no_voice and needs_voice and (has_fusion or field == "voice_emotion"):
                reason = f"needs the voice: {no_voice}"
            elif not has_fusion and field in ("emotion", "congruence"):
                reason = self.missing["fusion"]
            else:
                reason = self.missing.get("video" if field == "face_emotion" else "audio",
                                          "no model for this field")  # fmt: skip
            mark_unavailable(record, (field,), reason)


def predict_paths(
    predictor: Predictor, path: Path, output: Path | None, progress: bool = True,
    stream: TextIO | None = None,
) -> list[Outcome]:  # fmt: skip
    """Predict every video `path` names, writing each outcome as soon as it is ready."""
    paths = find_inputs(path)
    sink = Sink(output, path if path.is_dir() else None, stream)
    outcomes = []
    try:
        for outcome in run_many(predictor, paths, progress):
            sink.write(outcome)
            outcomes.append(outcome)
    finally:
        sink.close()
    return outcomes


def settings_from_params(params: dict[str, Any], dataset: str) -> EngineSettings:
    """The preprocessing the models were trained after, from a params mapping
    (`preprocess.afewva`, `preprocess.<dataset>`, `extract.wav2vec2.layer`), for checkpoints
    that do not record it. A section the params lack is `None`: the checkpoints' own records
    must then do, else the engines name the missing key."""
    from affectpipe.config import from_section
    from affectpipe.data.av import ClipSettings
    from affectpipe.inference import EngineSettings, VASettings

    def build(cls: type, name: str) -> Any:
        values = params.get("preprocess", {}).get(name)
        if values is None:
            return None
        names = {f.name for f in dataclasses.fields(cls)}  # the section holds more (folds...)
        return from_section(cls, {k: v for k, v in values.items() if k in names},
                            f"preprocess.{name}")  # fmt: skip

    layer = params.get("extract", {}).get("wav2vec2", {}).get("layer")
    return EngineSettings(build(VASettings, "afewva"), build(ClipSettings, dataset), layer)
