"""CREMA-D's crowd ratings: which real clips raters perceived as congruent or incongruent.

Raters judged every CREMA-D clip three ways: voice only, face only and audio-visual. The
repository's `processedResults/summaryTable.csv` holds, per clip, each way's majority vote
(`A D F H N S`; a tie joins the tied emotions with a colon, `A:D`) and the mean rated level of
each voted emotion (0-100, colon-joined like the vote). From it this module builds the
*perceived* evaluation set (`perceived.csv`): real, unedited clips whose face and voice raters
read apart, beside clips whose raters read both as the acted emotion.

The rule, per clip with both a face and a voice (`PerceivedConfig`):
- a modality's vote passes when its strongest voted level is at least `min_level`;
- `incongruent`: both votes pass and share no emotion (`A:D` against `H` counts when
  `ties: disjoint`; any tie leaves the clip out when `ties: exclude`);
- `congruent`: both votes pass and are exactly the acted emotion (a tie is never congruent);
- everything else is `other`, with the reason; it is kept in the table (its single votes still
  score the face and voice heads) but not in the congruence figures.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from affectpipe.config import params_section
from affectpipe.data.labels import EMOTION_ID, EMOTIONS
from affectpipe.problems import InputProblem, ProblemLog, atomic_path

SUMMARY = "processedResults/summaryTable.csv"  # relative to the raw folder, as in the repository
LETTERS: dict[str, int] = {  # the ratings' emotion letters onto the unified ids
    "A": EMOTION_ID["angry"],
    "D": EMOTION_ID["disgust"],
    "F": EMOTION_ID["fearful"],
    "H": EMOTION_ID["happy"],
    "N": EMOTION_ID["neutral"],
    "S": EMOTION_ID["sad"],
}
LETTER_OF: dict[int, str] = {e: letter for letter, e in LETTERS.items()}
MODES = {"voice": "Voice", "face": "Face", "av": "MultiModal"}  # ours -> the table's, in its order
SUMMARY_COLUMNS = ["FileName"] + [f"{p}{k}" for p in MODES.values() for k in ("Vote", "Level")]
GROUPS = ("congruent", "incongruent", "other")
NO_VOTE = -1  # face_emotion / voice_emotion of a tied vote: no single majority emotion
PERCEIVED_COLUMNS = [
    "clip_id",
    "actor",
    "fold",
    "split",
    "emotion",
    "group",
    "reason",
    "face_vote",
    "face_level",
    "voice_vote",
    "voice_level",
    "av_vote",
    "av_level",
    "face_emotion",
    "voice_emotion",
]


@params_section
class PerceivedConfig:
    """`preprocess.cremad.perceived`: how rater votes make the perceived groups."""

    min_level: float  # a vote counts when its strongest voted level (0-100) is at least this
    ties: Literal["disjoint", "exclude"]  # a tied vote: incongruent when disjoint | clip left out


@dataclass(frozen=True)
class Vote:
    """One modality's majority vote: the voted emotions (ids, ties included) and their levels."""

    emotions: tuple[int, ...]
    levels: tuple[float, ...]

    @property
    def single(self) -> int:
        """The one majority emotion, or `NO_VOTE` for a tie."""
        return self.emotions[0] if len(self.emotions) == 1 else NO_VOTE


def parse_vote(vote: str, level: str) -> Vote:
    """`"A:D"`, `"30.67:51.00"` -> a `Vote`; raises `ValueError` saying what is wrong."""
    letters, values = vote.strip().split(":"), level.strip().split(":")
    bad = [x for x in letters if x not in LETTERS]
    if bad:
        raise ValueError(f"vote '{vote}': {bad} not among the letters {sorted(LETTERS)}")
    if len(set(letters)) != len(letters):
        raise ValueError(f"vote '{vote}' names an emotion twice")
    if len(values) != len(letters):
        raise ValueError(f"level '{level}' does not give one level per emotion of vote '{vote}'")
    try:
        levels = tuple(float(v) for v in values)
    except ValueError as e:
        raise ValueError(f"level '{level}' is not numeric") from e
    return Vote(tuple(LETTERS[x] for x in letters), levels)


def format_vote(vote: Vote) -> tuple[str, str]:
    """The table's (vote, level) strings of a `Vote`: the inverse of `parse_vote`."""
    levels = [f"{v:.2f}" for v in vote.levels]
    if len(levels) == 1:  # the published table writes a single level without trailing zeros
        levels = [levels[0].rstrip("0").rstrip(".")]
    return ":".join(LETTER_OF[e] for e in vote.emotions), ":".join(levels)


def read_summary(path: Path, log: ProblemLog) -> dict[str, dict[str, Vote]]:
    """clip id -> {"face" | "voice" | "av": Vote} from a `summaryTable.csv`.

    The published table starts with an unnamed index column, which is ignored. A row that does
    not parse goes to `log` (strict: an error naming the file, the row and the problem).
    """
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise InputProblem(path, f"not a readable CSV ({e})") from e
    missing = [c for c in SUMMARY_COLUMNS if c not in table.columns]
    if missing:
        raise InputProblem(path, f"missing column(s) {missing}; has {list(table.columns)}")
    out: dict[str, dict[str, Vote]] = {}
    for i, row in enumerate(table.itertuples(index=False), start=2):  # line 1 is the header
        row = row._asdict()
        name = Path(row["FileName"].strip()).stem  # tolerate an extension
        try:
            if name in out:
                raise ValueError(f"clip '{name}' rated twice")
            out[name] = {
                mode: parse_vote(row[f"{p}Vote"], row[f"{p}Level"]) for mode, p in MODES.items()
            }
        except ValueError as e:
            log.report(InputProblem(path, f"line {i} ({name}): {e}"))
    return out


def write_summary(path: Path, votes: dict[str, dict[str, Vote]]) -> None:
    """Write `votes` in the published layout (quoted, unnamed 1-based index column first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n")
        w.writerow([""] + SUMMARY_COLUMNS)
        for i, name in enumerate(sorted(votes), start=1):
            cells = [c for mode in MODES for c in format_vote(votes[name][mode])]
            w.writerow([str(i), name, *cells])


def classify(face: Vote, voice: Vote, acted: int, cfg: PerceivedConfig) -> tuple[str, str]:
    """(group, reason) of one clip by the rule in the module docstring."""
    weak = [m for m, v in (("face", face), ("voice", voice)) if max(v.levels) < cfg.min_level]
    if weak:
        return "other", f"{' and '.join(weak)} vote below min_level"
    tied = len(face.emotions) > 1 or len(voice.emotions) > 1
    if not set(face.emotions) & set(voice.emotions):
        if tied and cfg.ties == "exclude":
            return "other", "tied vote"
        return "incongruent", ""
    if face.emotions == voice.emotions == (acted,):
        return "congruent", ""
    if tied:
        return "other", "tied votes share an emotion"
    return "other", f"face and voice agree on {EMOTIONS[face.single]}, not the acted emotion"


def build_perceived(
    clips: pd.DataFrame, votes: dict[str, dict[str, Vote]], cfg: PerceivedConfig
) -> pd.DataFrame:
    """One row per rated clip of `clips` (clips.csv) that has a face and a voice."""
    rows = []
    av = clips[(clips.has_video == 1) & (clips.has_audio == 1)].sort_values("clip_id")
    for clip in av.itertuples(index=False):
        if clip.clip_id not in votes:
            continue
        v = votes[clip.clip_id]
        group, reason = classify(v["face"], v["voice"], int(clip.emotion), cfg)
        cells = {}
        for m in MODES:
            cells[f"{m}_vote"], cells[f"{m}_level"] = format_vote(v[m])
        rows.append(
            {
                "clip_id": clip.clip_id,
                "actor": clip.actor,
                "fold": clip.fold,
                "split": clip.split,
                "emotion": clip.emotion,
                "group": group,
                "reason": reason,
                **cells,
                "face_emotion": v["face"].single,
                "voice_emotion": v["voice"].single,
            }
        )
    return pd.DataFrame(rows, columns=PERCEIVED_COLUMNS)


def counts(table: pd.DataFrame, folds: int) -> dict[str, Any]:
    """Clips per group, overall and per fold, and `other` clips per reason."""
    per = lambda t: {g: int((t.group == g).sum()) for g in GROUPS}  # noqa: E731
    return {
        "groups": per(table),
        "per_fold": {str(f): per(table[table.fold == f]) for f in range(folds)},
        "other_reasons": {
            str(r): int(n) for r, n in table[table.group == "other"].reason.value_counts().items()
        },
    }


def preprocess_perceived(
    raw_dir: Path, clips: pd.DataFrame, cfg: PerceivedConfig, out_dir: Path, folds: int,
    log: ProblemLog,
) -> dict[str, Any]:  # fmt: skip
    """Write `out_dir/perceived.csv`; returns the report's `perceived` section.

    Without the ratings table the file is written empty (its header only) and the section says
    why: the perceived evaluation is then skipped, and every stage still runs.
    """
    source = raw_dir / SUMMARY
    if not source.is_file():
        with atomic_path(out_dir / "perceived.csv") as tmp:
            pd.DataFrame(columns=PERCEIVED_COLUMNS).to_csv(tmp, index=False)
        return {"skipped": f"no {SUMMARY} in {raw_dir}: no perceived evaluation set"}
    votes = read_summary(source, log)
    table = build_perceived(clips, votes, cfg)
    with atomic_path(out_dir / "perceived.csv") as tmp:
        table.to_csv(tmp, index=False)
    av = clips[(clips.has_video == 1) & (clips.has_audio == 1)]
    return {
        "source": SUMMARY,
        "rated_clips": len(table),
        "unrated_clips": int((~av.clip_id.isin(list(votes))).sum()),
        "ratings_without_clip": len(set(votes) - set(clips.clip_id)),
        **counts(table, folds),
    }
