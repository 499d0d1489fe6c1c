"""Trained models and their backbones, rebuilt from checkpoints for inference on new videos.

Models come back through `models.load`, with the backbone their checkpoint names (spec and
config hash must match, else `ProvenanceMismatch`). Frames and audio go through the pipeline's
own preprocessing (`data.framecrop`, `data.faces`, `data.media`) and embedding functions
(`features.embed`), and VA windows are averaged per frame as evaluation averages them
(`va_inference.video_va`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from affectpipe.config import ConfigError, from_section, params_section
from affectpipe.data.afewva import FPS as AFEWVA_FPS
from affectpipe.data.av import ClipSettings
from affectpipe.data.framecrop import ClipCrop, crop_clip
from affectpipe.data.media import AudioTrack, sample_indices
from affectpipe.data.speech import frame_levels, require_speech_levels
from affectpipe.features import embed as E
from affectpipe.features.backbones import Backbone
from affectpipe.models.checkpoint import MODEL_FILE
from affectpipe.models.load import backbone_provenance, load_checked_backbone, saved_config
from affectpipe.problems import InputProblem
from affectpipe.va_inference import StreamingVA, VideoVA, video_va

T = TypeVar("T")


def entry_dtype(entry: dict[str, Any], device: torch.device) -> torch.dtype:
    """The compute dtype the features were extracted with (`auto` when not recorded)."""
    return E.compute_dtype(str(entry.get("dtype", "auto")), device)


def load_embedder(
    entry: dict[str, Any], device: torch.device, source: Path
) -> tuple[Backbone, torch.dtype]:
    """A frozen backbone with its weights cast as `extract` cast them: the same embeddings."""
    backbone = load_checked_backbone(entry, device, source)
    dtype = entry_dtype(entry, device)
    E.cast_frozen(backbone.model, dtype)
    return backbone, dtype


@torch.inference_mode()
def embed_images(backbone: Backbone, images: np.ndarray, dtype: torch.dtype,
                 batch_size: int = 32) -> torch.Tensor:  # fmt: skip
    """CLIP frame embeddings as the extract stage computes them: (T, H, W, 3) -> (T, D)."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = E.pixel_values(backbone, images[start : start + batch_size])
        with E.autocast(backbone.device, dtype):
            out.append(E.embed_clip(backbone.model, pixels))
    return torch.cat(out)


@torch.inference_mode()
def embed_clip_video(backbone: Backbone, frames: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    """VideoMAE clip embedding: (T, H, W, 3) crops -> (D,), frames picked as `embed` does."""
    num = int(backbone.model.config.num_frames)
    pixels = E.pixel_values(backbone, frames[sample_indices(len(frames), num)])  # (1, T, ...)
    with E.autocast(backbone.device, dtype):
        return E.embed_videomae(backbone.model, pixels)[0]


@torch.inference_mode()
def embed_voice(
    backbone: Backbone, wave: np.ndarray, layer: int | None, dtype: torch.dtype
) -> torch.Tensor:
    """wav2vec2 utterance embedding of 16 kHz mono samples, as `extract` stores it: (S,) ->
    (L + 1, D), every hidden state; `layer` (stores of one hidden state, made before every
    layer was kept): (D,), that one."""
    proc = backbone.processor
    inputs = proc([wave], sampling_rate=proc.sampling_rate, padding=True,
                  return_attention_mask=True, return_tensors="pt")  # fmt: skip
    with E.autocast(backbone.device, dtype):
        emb = E.embed_wav2vec2(backbone.model, inputs["input_values"].to(backbone.device),
                               inputs["attention_mask"].to(backbone.device))[0]  # fmt: skip
    return emb if layer is None else emb[layer]


VA_CROP = "face"  # a user's video has no annotated landmarks: detected ones (data.faces) stand in


@params_section
class VASettings:
    """How frames reach the VA model: the face crop of AFEW-VA preprocessing
    (`preprocess.afewva`), which the checkpoints also record."""

    crop_size: int
    margin: float


def recorded_settings(
    cls: type[T], entries: list[dict[str, Any]], base: T | None, name: str, source: Path
) -> T:
    """`cls` as the checkpoint's inputs record it (`source_settings`, copied from the dataset's
    preprocess report), so a video is prepared as the training data was, whatever params.yaml
    says now. `base` (params.yaml's section `name`) fills what older checkpoints lack; with
    neither, a `ConfigError` names the missing key."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = dataclasses.asdict(base) if base is not None else {}  # type: ignore[call-overload]
    for entry in entries:
        recorded = json.loads(entry.get("source_settings") or "{}")
        values |= {k: v for k, v in recorded.items() if k in names}
    try:
        return from_section(cls, values, name)
    except ConfigError as err:
        raise ConfigError(
            f"{source} records no {cls.__name__} and no params file gives it: {err}"
        ) from None


def va_settings(entry: dict[str, Any], base: VASettings | None, source: Path) -> VASettings:
    """The AFEW-VA face crop the VA checkpoint's CLIP features were made with."""
    return recorded_settings(VASettings, [entry], base, "preprocess.afewva", source)


def va_fps(entry: dict[str, Any], source: Path) -> tuple[float, str | None]:
    """The frame rate the VA model's windows were cut at (AFEW-VA's preprocessing records
    it), and a note when the checkpoint predates that record: AFEW-VA's rate then stands in,
    the only VA training data there is."""
    fps = json.loads(entry.get("source_settings") or "{}").get("fps")
    if fps is not None:
        return float(fps), None
    return AFEWVA_FPS, (f"{source} records no training frame rate (an older checkpoint); VA "
                        f"windows assume AFEW-VA's {AFEWVA_FPS:g} fps")  # fmt: skip


def wav2vec2_layer(entry: dict[str, Any], source: Path) -> int | None:
    """What the voice features hold, from the entry's `preprocessing` record: None for every
    hidden state (the model picks), or the one hidden_states index of an older store; with
    neither recorded, an `InputProblem` (a wrong layer is silently wrong)."""
    prep = json.loads(entry.get("preprocessing") or "{}")
    if prep.get("hidden_states") == "all":
        return None
    if "layer" not in prep:
        raise InputProblem(
            source,
            "records neither which wav2vec2 layer its voice features pooled nor that they hold "
            "every hidden state; retrain it",
        )
    return int(prep["layer"])


@dataclass(frozen=True)
class EngineSettings:
    """What params.yaml says about preprocessing, for checkpoints that do not record it; `None`
    where the params give no such section (the checkpoints must then record it)."""

    va: VASettings | None  # preprocess.afewva
    clip: ClipSettings | None  # preprocess.<dataset>, down to the clip settings


class VAEngine:
    """Valence/arousal over time from a `models/finetune/<variant>/fold<k>/` checkpoint: frames
    at the rate its windows were trained at (`fps`), embedded (`embed`) and windowed (`va`)."""

    def __init__(self, ckpt_dir: Path, device: torch.device, settings: VASettings | None):
        from affectpipe.data.windows import WindowConfig
        from affectpipe.models.checkpoint import load_checkpoint
        from affectpipe.models.load import va_model_config, va_model_from
        from affectpipe.models.va import reads_block_cache

        payload = load_checkpoint(ckpt_dir, map_location=device)
        self.source = Path(ckpt_dir)
        self.provenance = payload["provenance"]
        entry = backbone_provenance(self.provenance, "clip", self.source)
        self.settings = va_settings(entry, settings, self.source)
        self.fps, self.fps_note = va_fps(entry, self.source)
        window = payload["config"]["window"]
        self.window = saved_config(WindowConfig, window, self.source / MODEL_FILE)
        pipeline = va_model_config(payload["config"]["model"], self.source).pipeline
        if not reads_block_cache(pipeline):  # cached, linear_probe: CLIP embeds frames (extract)
            self.backbone, self.dtype = load_embedder(entry, device, self.source)
            self.model = va_model_from(payload, self.source, device)
        else:  # the adapted encoder is part of the trained model
            self.backbone = load_checked_backbone(entry, device, self.source)
            self.dtype = entry_dtype(entry, device)
            self.model = va_model_from(payload, self.source, device, self.backbone)
        self.model.eval()

    def crop(self, frames: np.ndarray) -> ClipCrop:
        """uint8 (T, H, W, 3) frames of one video -> face crops as AFEW-VA's (its size, margin)."""
        s = self.settings
        return crop_clip(frames, VA_CROP, s.crop_size, s.margin)

    @torch.inference_mode()
    def embed(self, crops: np.ndarray) -> torch.Tensor:
        """uint8 (T, S, S, 3) face crops (`crop`) of consecutive frames -> (T, D) features the
        heads read: CLIP as extracted (`cached`, `linear_probe`) or the encoder the model holds."""

        if self.model.backbone is None:  # cached/linear_probe: frozen CLIP features, as extracted
            return embed_images(self.backbone, crops, self.dtype).float()  # (T, D)
        # lora / frozen_mlp: the adapted (or frozen) encoder itself
        x = E.pixel_values(self.backbone, crops)[None]  # (1, T, 3, H, W)
        return self.model.encode_pixels(x)[0].float()  # (T, D)

    def va_stream(self, stride: int | None = None) -> StreamingVA:
        """`va` fed frame features chunk by chunk (`StreamingVA`): a long video's features are
        not all held."""
        return StreamingVA(self.model, self.window, stride)

    @torch.inference_mode()
    def va(self, f: torch.Tensor, stride: int | None = None) -> VideoVA:
        """VA of a video's frame features (T, D) at `self.fps`, in windows of the checkpoint's
        length, `stride` frames apart (default: its evaluation stride); values in [-1, 1]."""
        return video_va(self.model, f, self.window, stride)

    def __call__(self, frames: np.ndarray, stride: int | None = None) -> VideoVA:
        """`va` of `embed` of `crop`: all of a (short) video's frames at once."""
        return self.va(self.embed(self.crop(frames).crops), stride)


class AVEngine:
    """Face, voice and fused emotion and congruence from `models/multimodal/<model>_<dataset>/`,
    calibrated by the checkpoint's `calibration` (its verdict threshold: `self.calibration`).
    A layered voice embedding goes in whole: the model reads the hidden states its config
    records (`voice_layers`, its learned weights included). A model trained with speaker
    normalisation meets one video of an unknown speaker: its inputs are standardised with the
    training set's statistics stored in the checkpoint, and `speaker_note` says so.

    `clip` is params.yaml's, for checkpoints that do not record theirs."""

    SPEAKER_NOTE = "global statistics (speaker unknown)"

    def __init__(self, ckpt_dir: Path, device: torch.device, clip: ClipSettings | None = None):
        from affectpipe.calibration import calibration_from
        from affectpipe.models.load import load_av_model

        self.model, payload = load_av_model(ckpt_dir, map_location=device)
        self.source = Path(ckpt_dir)
        self.calibration = calibration_from(payload, self.source / MODEL_FILE)
        self.provenance = payload["provenance"]
        m, prov = self.model, self.provenance
        face = backbone_provenance(prov, "videomae", self.source) if m.uses_face else None
        voice = backbone_provenance(prov, "wav2vec2", self.source) if m.uses_voice else None
        # settings first: a missing one is named before any backbone loads
        self.settings = recorded_settings(ClipSettings, [e for e in (face, voice) if e],
                                          clip, f"preprocess.{prov.get('dataset', '<dataset>')}",
                                          self.source)  # fmt: skip
        self.face = self.voice = None
        if face is not None:
            self.face, self.face_dtype = load_embedder(face, device, self.source)
        if voice is not None:
            self.layer = wav2vec2_layer(voice, self.source)
            self.voice, self.voice_dtype = load_embedder(voice, device, self.source)

    @property
    def modality(self) -> str:
        return self.model.cfg.modality

    @property
    def speaker_note(self) -> str | None:
        """How inputs are normalised per speaker: None when the model does not."""
        return self.SPEAKER_NOTE if self.model.cfg.speaker_norm == "standardize" else None

    def crop(self, frames: np.ndarray) -> ClipCrop:
        """`n_frames` evenly sampled decoded frames (T, H, W, 3) -> crops as preprocessing's."""
        s = self.settings
        return crop_clip(frames, s.crop, s.frame_size, s.margin)

    def face_embedding(self, crops: np.ndarray) -> torch.Tensor:
        """Face crops (T, S, S, 3) from `crop` -> (1, D)."""
        return embed_clip_video(self.face, crops, self.face_dtype)[None].float()

    def voice_mean(self) -> VoiceMean:
        """An empty accumulator of this model's voice embedding (`read_voices` fills it)."""
        return VoiceMean(self.voice, self.voice_dtype)

    def voice_embedding(self, mean: VoiceMean) -> torch.Tensor:
        """The (1, ...) voice input of the model from a filled `voice_mean`."""
        emb = mean.result()
        return (emb if self.layer is None else emb[self.layer])[None].float()

    @torch.inference_mode()
    def __call__(self, face: torch.Tensor | None, voice: torch.Tensor | None) -> dict[str, Any]:
        """Calibrated probabilities (numpy) of every head the inputs allow: `emotion`,
        `face_emotion`, `voice_emotion` (8,), `congruence` (scalar). The fused heads need both
        modalities, and only the fusion model has them (a baseline's `emotion` is its modality
        head)."""
        from affectpipe.models.multimodal import head_probabilities

        m = self.model
        if not (m.uses_face and face is not None or m.uses_voice and voice is not None):
            return {}
        if face is not None and m.uses_face:
            face = m.standardize_unknown_speaker(face, "face")
        if voice is not None and m.uses_voice:
            voice = m.standardize_unknown_speaker(voice, "voice")
        raw = head_probabilities(m(face=face, voice=voice))
        probs = self.calibration.apply({k: p.cpu().numpy() for k, p in raw.items()})
        out: dict[str, Any] = {
            k: p[0]
            for k, p in probs.items()
            if k != "congruence" and (k != "emotion" or self.modality == "fusion")
        }
        if "congruence" in probs:
            out["congruence"] = float(probs["congruence"][0])
        return out


VOICE_WINDOW_S = 20.0  # wav2vec2 reads a recording in windows this long (longer than any clip of
# the datasets, so a clip is embedded exactly as `extract` embedded it); the last window takes
# the remainder (< 2 windows), so no window is too short for the model


class VoiceMean:
    """wav2vec2 utterance embedding of a recording fed window by window: each hidden state's
    mean over all frames of all windows (windows weighted by their frame counts). One window
    gives exactly `extract`'s embedding; a long recording costs one window's memory, with
    attention within windows only."""

    def __init__(self, backbone: Backbone, dtype: torch.dtype):
        self.backbone, self.dtype = backbone, dtype
        self.total: torch.Tensor | None = None
        self.frames = 0

    def add(self, wave: np.ndarray) -> None:
        n = int(self.backbone.model._get_feat_extract_output_lengths(len(wave)))
        emb = embed_voice(self.backbone, wave, None, self.dtype).double() * n  # (L + 1, D)
        self.total = emb if self.total is None else self.total + emb  # float64: one window exact
        self.frames += n

    def result(self) -> torch.Tensor:
        if self.total is None:
            raise ValueError("no audio was fed to the voice embedding")
        return (self.total / self.frames).float()


@dataclass(frozen=True)
class VoiceReading:
    """A video's audio track as the voice models read it (`read_voices`)."""

    voices: dict[str, torch.Tensor]  # each voice model's input; empty when there is none
    why_none: str | None  # why there is no voice input
    note: str | None  # the track decoded to less than the container declares (kept)


def read_voices(path: Path, engines: dict[str, AVEngine], clip: ClipSettings) -> VoiceReading:
    """Each voice model's input from a video's audio track, decoded and embedded window by
    window (`VOICE_WINDOW_S`) so memory does not grow with the video's length; or, with no
    input, why: no decodable track, a track shorter than a model's receptive field, or no
    speech by `data.speech`'s test (on the frame levels of the whole track)."""
    from affectpipe.features.extract import min_audio_samples

    voiced = {n: e for n, e in engines.items() if e.voice is not None}
    means = {n: e.voice_mean() for n, e in voiced.items()}
    window = round(VOICE_WINDOW_S * clip.sample_rate)
    track = AudioTrack(path, clip.sample_rate, window)
    levels, held, total = [], None, 0

    def feed(wave: np.ndarray) -> None:
        for mean in means.values():
            mean.add(wave)

    try:
        for block in track:
            levels.append(frame_levels(block, clip.sample_rate))
            total += block.size
            if held is not None and block.size == window:
                feed(held)
            held = block if held is None or block.size == window else np.concatenate([held, block])
        need = max((min_audio_samples(e.voice.model) for e in voiced.values()), default=1)
        if total < need:
            short = f"{total} samples at {clip.sample_rate} Hz"
            why = f"audio too short for the voice model: {short}, fewer than its receptive " \
                  f"field ({need})"  # fmt: skip
            return VoiceReading({}, why, track.note)
        require_speech_levels(path, np.concatenate(levels), clip.speech_gate())
    except InputProblem as e:  # no voice fields from a track without speech
        return VoiceReading({}, e.problem, track.note)
    if held is not None:
        feed(held)
    voices = {n: voiced[n].voice_embedding(m) for n, m in means.items()}
    return VoiceReading(voices, None, track.note)
