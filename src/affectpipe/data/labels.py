"""The unified 8-class emotion label set (RAVDESS order) and dataset code tables."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)
EMOTION_ID: dict[str, int] = {name: i for i, name in enumerate(EMOTIONS)}
N_EMOTIONS = len(EMOTIONS)

# CREMA-D's six emotion codes onto the unified ids; it has no calm and no surprised.
CREMAD_EMOTION: dict[str, int] = {
    "NEU": EMOTION_ID["neutral"],
    "HAP": EMOTION_ID["happy"],
    "SAD": EMOTION_ID["sad"],
    "ANG": EMOTION_ID["angry"],
    "FEA": EMOTION_ID["fearful"],
    "DIS": EMOTION_ID["disgust"],
}
CREMAD_CLASSES: tuple[int, ...] = tuple(sorted(CREMAD_EMOTION.values()))
RAVDESS_CLASSES: tuple[int, ...] = tuple(range(N_EMOTIONS))
