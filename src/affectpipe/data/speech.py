"""Does a recording hold speech? Decided by frame energy, not by the whole file's loudness.

A quiet actor's speech can sit at -64 dBFS RMS over the whole file with peaks near -40 dBFS:
plainly audible, so a whole-file RMS threshold would drop it. Instead the signal is cut into
25 ms frames every 10 ms and a frame counts as active when its level is both above an absolute
floor (`floor_db`, far under soft speech) and `snr_db` above the recording's own noise floor (the
10th percentile of its frame levels). A recording with fewer than `min_speech_s` seconds of
active frames holds no speech: an all-zero file has none, and stationary noise at any level has
none, since its frames hardly vary around its own floor. A loud click or door slam alone can pass;
that is the price of needing no speech model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from affectpipe.problems import InputProblem

FRAME_S = 0.025  # analysis frame (the usual speech frame)
HOP_S = 0.010
NOISE_PERCENTILE = 10.0  # the frame level taken as the recording's noise floor
_TINY = 1e-20  # power floor (-200 dB): keeps digital silence finite for the percentile


@dataclass(frozen=True)
class SpeechGate:
    """The criterion's three knobs (`preprocess.<dataset>` `speech_*`, `min_speech_s`)."""

    floor_db: float  # an active frame is above this absolute level (dBFS)
    snr_db: float  # ... and this far above the recording's noise floor
    min_speech_s: float  # seconds of active frames a recording needs to hold speech


def frame_levels(samples: np.ndarray, rate: int) -> np.ndarray:
    """Per-frame RMS level in dBFS (25 ms frames, 10 ms hop); empty if shorter than a frame."""
    size, hop = max(1, round(FRAME_S * rate)), max(1, round(HOP_S * rate))
    x = np.asarray(samples, dtype=np.float64)
    if x.size < size:
        return np.zeros(0)
    power = np.mean(np.square(sliding_window_view(x, size)[::hop]), axis=1)
    return 10.0 * np.log10(np.maximum(power, _TINY))


def active_seconds(samples: np.ndarray, rate: int, gate: SpeechGate) -> float:
    """Seconds of frames above both the absolute floor and the recording's own noise floor."""
    return levels_active_seconds(frame_levels(samples, rate), gate)


def levels_active_seconds(levels: np.ndarray, gate: SpeechGate) -> float:
    """`active_seconds` from the frame levels (`frame_levels`), which a long recording can
    gather block by block."""
    if levels.size == 0:
        return 0.0
    noise = float(np.percentile(levels, NOISE_PERCENTILE))
    active = (levels > gate.floor_db) & (levels > noise + gate.snr_db)
    return float(active.sum()) * HOP_S


def require_speech(path: Path, samples: np.ndarray, rate: int, gate: SpeechGate) -> float:
    """The recording's active seconds; an `InputProblem` naming `path` if it holds no speech."""
    return require_speech_levels(path, frame_levels(samples, rate), gate)


def require_speech_levels(path: Path, levels: np.ndarray, gate: SpeechGate) -> float:
    """`require_speech` from the recording's frame levels."""
    seconds = levels_active_seconds(levels, gate)
    if seconds < gate.min_speech_s:
        raise InputProblem(
            path,
            f"no speech: {seconds:.2f} s of frames above the noise floor "
            f"(> {gate.floor_db} dBFS and {gate.snr_db} dB over the recording's own floor; "
            f"{gate.min_speech_s} s needed)",
        )
    return seconds
