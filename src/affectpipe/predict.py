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

import numpy as np
import torch
from tqdm import tqdm

from affectpipe.config import params_section
from affectpipe.data.media import FrameSampler, VideoInfo, is_video, list_videos, probe
from affectpipe.models.checkpoint import MODEL_FILE, not_applicable
from affectpipe.models.va import PIPELINES
from affectpipe.problems import InputProblem, as_input_problem
from affectpipe.records import (
    EMOTION_FIELDS,
    VA_FIELDS,
    Outcome,
    Sink,
    congruence_block,
    emotion_block,
    empty_record,
    face_block,
    mark_unavailable,
    va_block,
    video_duration,
)
from affectpipe.va_selection import SELECTION_FILE, read_selection, served_checkpoint

if TYPE_CHECKING:
    from affectpipe.data.framecrop import ClipCrop
    from affectpipe.inference import EngineSettings
    from affectpipe.va_inference import VideoVA


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
    """Apply `predict_one(path) -> record` to each path; a file that fails, for whatever reason,
    is an error outcome with the reason (`as_input_problem`) and the others go on. Only errors
    about the run itself (memory, a full disk) stop it."""
    for path in tqdm(paths, desc="videos", unit="video", disable=not progress or None):
        try:
            record = predict_one(path)
        except Exception as err:  # one video's failure costs no other video
            yield Outcome(path, error=as_input_problem(path, err).problem)
            continue
        yield Outcome(path, record=record)


@params_section
class PredictConfig:
    """What `affectpipe predict` loads and how densely it samples a video (the CLI's options)."""

    models_dir: Path
    va_variant: str  # models/finetune/<variant>/fold0: best (evaluate's pick on validation) | lora
    va_selection: Path  # evaluate's record of the best variant, read for `best`
    av_dataset: str  # models/multimodal/<model>_<dataset>: ravdess | cremad
    device: str  # auto (CUDA when present) | cpu | cuda | cuda:N
    va_stride: int | None  # frames between VA window starts; None: the checkpoint's eval_stride
    max_side: int | None  # VA frames decoded at this longer side at most; None: full size
    threshold: float | None  # verdict threshold; None: the fusion checkpoint's calibrated one

    def __post_init__(self) -> None:
        if self.va_stride is not None and self.va_stride < 1:
            raise ValueError(f"need va_stride >= 1 (frames), got {self.va_stride}")
        if self.max_side is not None and self.max_side < 2:
            raise ValueError(f"need max_side >= 2 (pixels), got {self.max_side}")
        if self.threshold is not None and not 0 < self.threshold < 1:
            raise ValueError(f"need 0 < threshold < 1, got {self.threshold}")


AV_MODELS: tuple[str, ...] = ("fusion", "video", "audio")
COUNT_RATE, COUNT_SIDE = 1.0, 2  # without a VA model frames are only counted: few, tiny picks
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
        variant, note = va_variant(cfg.va_variant, cfg.va_selection, cfg.models_dir)
        va_dir = served_checkpoint(cfg.models_dir, variant)
        self.va = VAEngine(va_dir, self.device, settings.va) if self._has(va_dir, "va") else None
        if self.va is not None and (cfg.va_stride or 0) > self.va.window.length:
            raise ValueError(
                f"--stride {cfg.va_stride} is longer than the VA model's window of "
                f"{self.va.window.length} frames: the frames between windows would get no value"
            )
        # what the user should know about this run (stderr): a stand-in variant, a guessed rate
        self.notes = [n for n in (note, self.va and self.va.fps_note) if n]
        self.av: dict[str, AVEngine] = {}
        for name in AV_MODELS:  # the baselines only stand in for a missing fusion model
            d = cfg.models_dir / "multimodal" / f"{name}_{cfg.av_dataset}"
            if "fusion" not in self.av and self._has(d, name):
                self.av[name] = AVEngine(d, self.device, settings.clip)
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
        why = not_applicable(folder)
        self.missing[name] = f"no trained model at {folder}" + (
            f": not applicable to its training data ({why})" if why else "")  # fmt: skip
        return False

    def models(self) -> dict[str, str]:
        """Which checkpoint serves which part of the record."""
        out = {k: str(e.source) for k, e in self.av.items()}
        if self.va is not None:
            out["va"] = str(self.va.source)
        return out

    def __call__(self, path: Path) -> dict[str, Any]:
        info = probe(path)
        va, sampler = self._va_trace(path)
        record = empty_record(info, video_duration(info, sampler.last_time))
        record["models"] = self.models()
        record["time_base"] = self.time_base(sampler)
        if sampler.note:
            record["notes"].append(sampler.note)
        if va is None:
            mark_unavailable(record, VA_FIELDS, self.missing["va"])
        else:
            times, out, crop, faceless = va
            record["face"]["va"] = face_block(crop, info.width, info.height, times)
            if crop.fell_back:  # a centre square is no face: VA from it would be made up
                mark_unavailable(record, VA_FIELDS, no_face(crop, "VA"))
            else:
                block = va_block(times, out.frames, out.starts, out.windows, self.va.fps)
                record.update(blank_faceless(block, faceless, out.starts, self.va.window.length))
        self._av(record, path, info, sampler.n_decoded)
        return record

    def _va_trace(
        self, path: Path
    ) -> tuple[tuple[np.ndarray, VideoVA, ClipCrop, np.ndarray] | None, FrameSampler]:
        """Decode the video once, at the VA model's training frame rate (the frame nearest each
        1/fps s), face-cropping, embedding and windowing it window length by window length so
        that only a window's decoded frames and features are held: ((frame times, their VA,
        how they were cropped, per frame whether its run of frames had no face) or None
        without a VA model, the sampler that read the stream)."""
        if self.va is None:  # only the frame count is needed (the AV sampling spreads over it)
            sampler = FrameSampler(path, COUNT_RATE, COUNT_SIDE)
            for _ in sampler:
                pass
            return None, sampler
        sampler = FrameSampler(path, self.va.fps, self.cfg.max_side)
        from affectpipe.data.framecrop import join_crops

        times, chunk, crops = [], [], []
        va = self.va.va_stream(self.cfg.va_stride)

        def embed_chunk() -> None:
            crop = self.va.crop(np.stack(chunk))
            with torch.inference_mode():
                va.add(self.va.embed(crop.crops))
            # boxes kept, not pixels: an empty array of its own (a [:0] view would keep them)
            crops.append(dataclasses.replace(crop, crops=np.empty((0, *crop.crops.shape[1:]),
                                                                  crop.crops.dtype)))  # fmt: skip

        for t, image in sampler:
            times.append(t)
            chunk.append(image)
            if len(chunk) == self.va.window.length:
                embed_chunk()
                chunk = []
        if chunk:
            embed_chunk()
        with torch.inference_mode():
            out = va.result()
        faceless = np.concatenate([np.full(len(c.boxes), c.fell_back) for c in crops])
        return (np.asarray(times), out, join_crops(crops), faceless), sampler

    def time_base(self, sampler: FrameSampler) -> dict[str, Any]:
        """The time scale of every output: the video's own rate, the rate and window the VA
        model was trained at, the decode and crop size it saw; the frames the emotion models
        read."""
        va = av = None
        if self.va is not None:
            fps, w = self.va.fps, self.va.window
            stride = self.cfg.va_stride or w.eval_stride
            va = {"fps": fps, "fps_recorded": self.va.fps_note is None,
                  "window_frames": w.length, "window_s": round(w.length / fps, 6),
                  "stride_frames": stride, "stride_s": round(stride / fps, 6),
                  "decode_max_side": self.cfg.max_side, "decode_size": list(sampler.size),
                  "crop_size": self.va.settings.crop_size}  # fmt: skip
        if self.av:
            s = next(iter(self.av.values())).settings
            av = {"frames": s.n_frames, "frame_size": s.frame_size,
                  "decode_max_side": s.decode_max_side, "sample_rate": s.sample_rate}  # fmt: skip
        return {"video_fps": round(sampler.fps, 6), "va": va, "av": av}

    def av_inputs(self, path: Path, info: VideoInfo, n_decoded: int):
        """(frame indices, frames, the voice models' reading of the audio track), as
        the RAVDESS/CREMA-D preprocessing decodes: `n_frames` spread over all `n_decoded`
        frames; the audio track read window by window (`inference.read_voices`). The engines
        of one dataset share its clip settings; only called when there is one."""
        from affectpipe.data.media import frames_at, sample_indices
        from affectpipe.inference import VoiceReading, read_voices

        s = next(iter(self.av.values())).settings
        indices = sample_indices(n_decoded, s.n_frames)
        frames = frames_at(path, indices, s.decode_max_side)
        if not info.has_audio:
            return indices, frames, VoiceReading({}, "no audio track in the video", None)
        return indices, frames, read_voices(path, self.av, s)

    def _av(self, record: dict[str, Any], path: Path, info: VideoInfo, n_decoded: int) -> None:
        if not self.av:
            mark_unavailable(record, (*EMOTION_FIELDS, "congruence"), self.missing["fusion"])
            return
        indices, frames, voice = self.av_inputs(path, info, n_decoded)
        if voice.note:
            record["notes"].append(voice.note)
        crop, no_face_why = None, None
        if any(e.face is not None for e in self.av.values()):  # one dataset: one crop for all
            crop = next(e for e in self.av.values() if e.face is not None).crop(frames)
            record["face"]["av"] = face_block(crop, info.width, info.height, indices=indices)
            no_face_why = no_face(crop, "the face models") if crop.fell_back else None
        probs: dict[str, Any] = {}
        for name in ("audio", "video", "fusion"):  # the fusion model has the last word
            engine = self.av.get(name)
            if engine is None:
                continue
            face = None
            if engine.face is not None and crop is not None and no_face_why is None:
                face = engine.face_embedding(crop.crops)
            probs.update(engine(face, voice.voices.get(name)))
            if engine.speaker_note is not None:
                record["speaker_norm"] = engine.speaker_note
        for field in EMOTION_FIELDS:
            if field in probs:
                record[field] = emotion_block(probs[field])
        if "congruence" in probs:
            fitted = self.av["fusion"].calibration.fitted  # only the fusion model has the head
            record["congruence"] = congruence_block(probs["congruence"], self.threshold, fitted)
        self._explain_gaps(record, voice.why_none, no_face_why)

    def _explain_gaps(
        self, record: dict[str, Any], no_voice: str | None, no_face_why: str | None = None
    ) -> None:
        has_fusion = "fusion" in self.av
        for field in (*EMOTION_FIELDS, "congruence"):
            if record[field] is not None:
                continue
            needs_voice = field != "face_emotion"
            needs_face = field != "voice_emotion" and (has_fusion or field == "face_emotion")
            if no_voice and needs_voice and (has_fusion or field == "voice_emotion"):
                reason = f"needs the voice: {no_voice}"
            elif no_face_why and needs_face:
                reason = f"needs the face: {no_face_why}"
            elif not has_fusion and field in ("emotion", "congruence"):
                reason = self.missing["fusion"]
            else:
                reason = self.missing.get("video" if field == "face_emotion" else "audio",
                                          "no model for this field")  # fmt: skip
            mark_unavailable(record, (field,), reason)


def blank_faceless(
    block: dict[str, Any], faceless: np.ndarray, starts: np.ndarray, length: int
) -> dict[str, Any]:
    """`va_block` with no value where the face was not found: a run of frames cropped at the
    centre square (no face in it) gives null frames, null windows that hold any of them, and
    clip means over the frames with a face only."""
    if not faceless.any():
        return block
    for frame, blank in zip(block["frames"], faceless, strict=True):
        if blank:
            frame["valence"] = frame["arousal"] = None
    for window, s in zip(block["va_windows"], starts, strict=True):
        if faceless[s : s + length].any():
            window["valence"] = window["arousal"] = None
    kept = [f for f in block["frames"] if f["valence"] is not None]
    for key in ("valence", "arousal"):
        block[f"{key}_mean"] = round(float(np.mean([f[key] for f in kept])), 6)
    return block


def no_face(crop: ClipCrop, what: str) -> str:
    """Why the face-derived fields are missing: no face in any frame the models would see."""
    return (f"no face found in any of the {len(crop.boxes)} frames sampled for {what} "
            f"(crop method '{crop.method}')")  # fmt: skip


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
    (`preprocess.afewva`, `preprocess.<dataset>`), for checkpoints that do not record it. A
    section the params lack is `None`: the checkpoints' own records must then do, else the
    engines name the missing key. An `auto` image side is resolved as the preprocess stage does
    (`preprocess_values`: the input size of `extract.<backbone>.spec`'s processor)."""
    from affectpipe.config import from_section
    from affectpipe.data.av import ClipSettings
    from affectpipe.data.image_size import preprocess_values
    from affectpipe.inference import EngineSettings, VASettings

    def build(cls: type, name: str) -> Any:
        if params.get("preprocess", {}).get(name) is None:
            return None
        values = preprocess_values(params, name)
        names = {f.name for f in dataclasses.fields(cls)}  # the section holds more (folds...)
        return from_section(cls, {k: v for k, v in values.items() if k in names},
                            f"preprocess.{name}")  # fmt: skip

    return EngineSettings(build(VASettings, "afewva"), build(ClipSettings, dataset))
