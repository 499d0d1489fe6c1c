"""CREMA-D's crowd ratings: reading summaryTable.csv, the perceived groups, and their scoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affectpipe.data.labels import EMOTION_ID
from affectpipe.data.perceived import (
    NO_VOTE,
    PerceivedConfig,
    Vote,
    build_perceived,
    parse_vote,
    preprocess_perceived,
    read_summary,
    write_summary,
)
from affectpipe.perceived_eval import perceived_metrics
from affectpipe.problems import InputProblem, ProblemLog

A, D, H, N, S = (EMOTION_ID[e] for e in ("angry", "disgust", "happy", "neutral", "sad"))
# The published layout: an unnamed, quoted index column first; ties colon-joined, levels too.
TABLE = """\
"","FileName","VoiceVote","VoiceLevel","FaceVote","FaceLevel","MultiModalVote","MultiModalLevel"
"1","1001_DFA_ANG_XX","A","62.5","A","70","A","66.67"
"2","1001_DFA_HAP_XX","S","40","H","55.2","H","60"
"3","1001_IEO_SAD_LO","N","71.67","A:D","30.67:51.00","N","63.5"
"4","1001_DFA_DIS_XX","D","50","A:D","45.00:48.00","D","52"
"5","1001_DFA_NEU_XX","H","58","H","61","H","59"
"6","1002_DFA_SAD_XX","S","20","N","25","S","30"
"7","1002_DFA_ANG_XX","A","80","A","75","A","79"
"8","1099_DFA_ANG_XX","A","80","A","75","A","79"
"""
ACTED = {
    "1001_DFA_ANG_XX": A,
    "1001_DFA_HAP_XX": H,
    "1001_IEO_SAD_LO": S,
    "1001_DFA_DIS_XX": D,
    "1001_DFA_NEU_XX": N,
    "1002_DFA_SAD_XX": S,
    "1002_DFA_ANG_XX": A,
    "1002_DFA_FEA_XX": EMOTION_ID["fearful"],  # processed but not rated
}


def clips(no_video: tuple[str, ...] = ("1002_DFA_ANG_XX",)) -> pd.DataFrame:
    """A clips.csv-like table of the rated clips (one without a face)."""
    return pd.DataFrame(
        [
            {
                "clip_id": c,
                "actor": int(c[:4]),
                "fold": int(c[:4]) - 1001,
                "emotion": e,
                "split": "test" if c.startswith("1001") else "train",
                "has_video": int(c not in no_video),
                "has_audio": 1,
            }  # fmt: skip
            for c, e in ACTED.items()
        ]
    )


@pytest.fixture
def summary(tmp_path):
    path = tmp_path / "raw" / "processedResults" / "summaryTable.csv"
    path.parent.mkdir(parents=True)
    path.write_text(TABLE)
    return path


def test_votes_and_levels_parse_with_ties():
    assert parse_vote("A:D", "30.67:51.00") == Vote((A, D), (30.67, 51.0))
    assert parse_vote("N", "71.67").single == N and parse_vote("A:D", "1:2").single == NO_VOTE
    for vote, level, message in [
        ("X", "50", r"\['X'\] not among the letters"),
        ("A:D", "50", "one level per emotion"),
        ("A", "high", "not numeric"),
        ("A:A", "1:2", "names an emotion twice"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_vote(vote, level)


def test_groups_follow_the_rule_with_ties(summary):
    votes = read_summary(summary, ProblemLog("strict"))
    assert votes["1001_IEO_SAD_LO"]["face"] == Vote((A, D), (30.67, 51.0))
    table = build_perceived(clips(), votes, PerceivedConfig(min_level=0.0, ties="disjoint"))
    got = dict(zip(table.clip_id, table.group, strict=True))
    assert got == {
        "1001_DFA_ANG_XX": "congruent",  # both votes are the acted emotion
        "1001_DFA_HAP_XX": "incongruent",  # face H, voice S
        "1001_IEO_SAD_LO": "incongruent",  # face A:D shares nothing with voice N
        "1001_DFA_DIS_XX": "other",  # face A:D shares D with voice D
        "1001_DFA_NEU_XX": "other",  # both H, acted neutral
        "1002_DFA_SAD_XX": "incongruent",
    }  # 1002_DFA_ANG_XX has no face, 1099 is not processed, 1002_DFA_FEA_XX is not rated
    row = table.set_index("clip_id").loc["1001_IEO_SAD_LO"]
    assert (row.face_vote, row.face_level, row.face_emotion) == ("A:D", "30.67:51.00", NO_VOTE)
    assert (row.voice_vote, row.voice_emotion) == ("N", N)
    reasons = table.set_index("clip_id").reason
    assert reasons["1001_DFA_DIS_XX"] == "tied votes share an emotion"
    assert reasons["1001_DFA_NEU_XX"] == "face and voice agree on happy, not the acted emotion"

    strict = build_perceived(clips(), votes, PerceivedConfig(min_level=30.0, ties="exclude"))
    got = dict(zip(strict.clip_id, zip(strict.group, strict.reason, strict=True), strict=True))
    assert got["1001_IEO_SAD_LO"] == ("other", "tied vote")  # its strongest level 51 passes
    assert got["1002_DFA_SAD_XX"] == ("other", "face and voice vote below min_level")
    assert got["1001_DFA_HAP_XX"] == ("incongruent", "")


def test_preprocessing_counts_groups_per_fold_and_unmatched_rows(summary, tmp_path):
    cfg = PerceivedConfig(min_level=0.0, ties="disjoint")
    out = tmp_path / "out"
    out.mkdir()
    report = preprocess_perceived(summary.parents[1], clips(), cfg, out, 2, ProblemLog("strict"))
    assert report["groups"] == {"congruent": 1, "incongruent": 3, "other": 2}
    assert report["per_fold"]["1"] == {"congruent": 0, "incongruent": 1, "other": 0}
    assert (report["unrated_clips"], report["ratings_without_clip"]) == (1, 1)
    written = pd.read_csv(out / "perceived.csv")
    assert len(written) == 6 and set(written.fold) == {0, 1}


def test_a_missing_ratings_table_is_a_recorded_skip(tmp_path):
    report = preprocess_perceived(
        tmp_path, clips(), PerceivedConfig(min_level=0.0, ties="disjoint"), tmp_path, 2,
        ProblemLog("strict"),
    )  # fmt: skip
    assert "no processedResults/summaryTable.csv" in report["skipped"]
    assert pd.read_csv(tmp_path / "perceived.csv").empty


def test_bad_rows_name_the_file_and_line(summary):
    summary.write_text(TABLE.replace('"H","55.2"', '"Q","55.2"'))
    with pytest.raises(InputProblem, match=r"summaryTable.csv: line 3 \(1001_DFA_HAP_XX\)"):
        read_summary(summary, ProblemLog("strict"))
    log = ProblemLog("skip")
    assert "1001_DFA_HAP_XX" not in read_summary(summary, log) and len(log.skipped) == 1
    summary.write_text(TABLE.replace("FaceVote", "Face"))
    with pytest.raises(InputProblem, match=r"missing column\(s\) \['FaceVote'\]"):
        read_summary(summary, log)


def test_written_tables_keep_the_published_layout(tmp_path):
    votes = read_summary_text(tmp_path, TABLE)
    write_summary(tmp_path / "again.csv", votes)
    text = (tmp_path / "again.csv").read_text()
    assert text.splitlines()[0] == TABLE.splitlines()[0]
    assert '"1001_IEO_SAD_LO","N","71.67","A:D","30.67:51.00","N","63.5"' in text
    assert read_summary(tmp_path / "again.csv", ProblemLog("strict")) == votes


def read_summary_text(tmp_path, text: str):
    path = tmp_path / "in.csv"
    path.write_text(text)
    return read_summary(path, ProblemLog("strict"))


def test_perceived_metrics_score_groups_votes_and_acted_labels():
    frame = pd.DataFrame(
        {
            "clip_id": list("abcdef"),
            "group": ["congruent", "congruent", "incongruent", "incongruent", "other", "other"],
            "congruence_prob": [0.9, 0.8, 0.3, 0.85, 0.1, 0.99],
            "emotion": [A, H, S, D, N, A],
            "face_vote": [A, H, A, NO_VOTE, H, A],
            "voice_vote": [A, H, S, D, NO_VOTE, NO_VOTE],
            "face_emotion_pred": [A, H, A, A, N, S],
            "voice_emotion_pred": [A, S, S, D, N, A],
        }
    )

    def at(threshold: float) -> pd.DataFrame:  # the verdict pair_frame makes
        return frame.assign(congruence_pred=(frame.congruence_prob >= threshold).astype(int))

    m = perceived_metrics(at(0.5))
    assert (m["n_perceived_congruent"], m["n_perceived_incongruent"]) == (2, 2)
    assert m["congruence_auc_perceived"] == pytest.approx(0.75)  # 0.85 outranks 0.8
    assert m["congruence_accuracy_perceived"] == pytest.approx(0.75)
    assert m["congruence_f1_perceived"] == pytest.approx(0.8)  # TP 2, FP 1, FN 0
    assert (m["n_face_votes"], m["n_voice_votes"]) == (5, 4)
    assert m["face_accuracy_vote"] == pytest.approx(3 / 5)  # right on a, b, c (the vote A)
    assert m["face_accuracy_acted"] == pytest.approx(3 / 5)  # right on a, b, e (acted N)
    assert m["voice_accuracy_vote"] == pytest.approx(3 / 4)
    assert m["voice_accuracy_acted"] == pytest.approx(3 / 4)
    assert perceived_metrics(at(0.95))["congruence_accuracy_perceived"] == 0.5
    assert np.isnan(perceived_metrics(at(0.5)[frame.group != "congruent"])[
        "congruence_auc_perceived"])  # fmt: skip
