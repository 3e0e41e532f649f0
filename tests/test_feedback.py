"""`wakeword feedback DIR`: listing and marking kept detections, its errors, and what training makes of them."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from wakeword.cli import main
from wakeword.keep import KeepFolder

SR = 16000
IDS = ["20270101-080000-000-hey_nova", "20270101-090000-000-hey_nova", "20270102-090000-000-hey_nova"]


@pytest.fixture
def keep(tmp_path: Path) -> Path:
    """A keep folder as the daemon leaves it: three unlabelled detections and two ambient snippets."""
    folder = KeepFolder(tmp_path / "keep", 10 * 2**20)
    folder.create()
    rng = np.random.default_rng(0)
    for n, detection in enumerate(IDS):
        record = {
            "id": detection,
            "time": f"2027-01-0{1 + n // 2}T0{8 + n % 2}:00:00.000+00:00",
            "epoch": 1.8e9 + n,
            "phrase": "hey nova",
            "score": 0.9 + n / 100,
            "model": "hey_nova",
            "stream_s": 10.0 * n,
            "label": None,
            "seconds": 2.5,
            "detection_at_s": 2.0,
        }
        assert folder.write_detection(record, rng.normal(0, 0.1, round(2.5 * SR)).astype(np.float32))
    for n in range(2):
        assert folder.write_ambient(f"20270101-10000{n}-000", rng.normal(0, 0.05, 4 * SR).astype(np.float32))
    return folder.root


def label_of(keep: Path, detection: str) -> str | None:
    return json.loads((keep / "detections" / f"{detection}.json").read_text())["label"]


def test_without_options_it_lists_the_detections(keep, capsys):
    assert main(["feedback", str(keep)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "time", "phrase", "score", "label"]
    assert [line.split()[0] for line in out[1:4]] == IDS  # oldest first, newest last
    assert "2027-01-01 08:00:00" in out[1] and "0.900" in out[1] and out[1].endswith("-")
    assert out[-1] == "3 detection(s) kept: 0 true, 0 false, 3 not marked; 2 ambient snippet(s)"
    assert main(["feedback", str(keep), "--limit", "1"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[1:-1]] == IDS[-1:]


def test_marks_by_id_by_prefix_and_in_bulk(keep, capsys):
    assert main(["feedback", str(keep), "--mark", IDS[0], "false", "--mark", IDS[1][:11], "true"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"{IDS[0]}: false", f"{IDS[1]}: true"]
    assert (label_of(keep, IDS[0]), label_of(keep, IDS[1]), label_of(keep, IDS[2])) == ("false", "true", None)
    assert main(["feedback", str(keep), "--all", "false"]) == 0  # only the unmarked one changes
    assert [label_of(keep, i) for i in IDS] == ["false", "true", "false"]
    assert main(["feedback", str(keep), "--true", IDS[0], IDS[2], "--mark", IDS[1], "none"]) == 0
    assert [label_of(keep, i) for i in IDS] == ["true", None, "true"]
    record = json.loads((keep / "detections" / f"{IDS[0]}.json").read_text())
    assert record["score"] == 0.9 and record["detection_at_s"] == 2.0  # the rest of the record is kept


def test_json_output_for_scripts(keep, capsys):
    assert main(["feedback", str(keep), "--false", IDS[2], "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in report["marked"]] == [IDS[2]] and report["marked"][0]["label"] == "false"
    assert report["summary"] == {
        "detections": 3,
        "true": 0,
        "false": 1,
        "unlabelled": 2,
        "without_audio": 0,
        "ambient_snippets": 2,
    }
    assert [d["id"] for d in report["detections"]] == IDS and all(d["audio"] for d in report["detections"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mark", IDS[0], "false"], "its audio was not kept"),
        (["--false", "20990101"], "no detection '20990101'"),
        (["--true", "2027"], "matches 3 detections"),
        (["--mark", IDS[1], "maybe"], "label 'maybe'"),
        (["--interactive"], "--interactive needs a terminal"),
    ],
)
def test_bad_feedback_is_one_line_and_exit_2_and_changes_nothing(keep, capsys, args, message):
    (keep / "detections" / f"{IDS[0]}.wav").unlink()  # dropped under the disk cap
    before = {p.name: p.read_bytes() for p in (keep / "detections").glob("*.json")}
    assert main(["feedback", str(keep), "--false", IDS[1], *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and err.startswith("wakeword: error:") and message in err
    assert {p.name: p.read_bytes() for p in (keep / "detections").glob("*.json")} == before


def test_a_folder_that_is_not_a_keep_folder(tmp_path, capsys):
    assert main(["feedback", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "not a keep folder" in err and "--keep" in err


def test_the_listing_shows_a_detection_without_audio(keep, capsys):
    (keep / "detections" / f"{IDS[1]}.wav").unlink()
    assert main(["feedback", str(keep)]) == 0
    assert "- (no audio)" in capsys.readouterr().out


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_interactive_review_asks_about_each_unmarked_detection(keep, capsys, monkeypatch):
    assert main(["feedback", str(keep), "--false", IDS[0]]) == 0
    monkeypatch.setattr("sys.stdin", Terminal("x\ny\ns\n"))  # an unknown key asks again
    assert main(["feedback", str(keep), "--interactive"]) == 0
    assert [label_of(keep, i) for i in IDS] == ["false", "true", None]
    monkeypatch.setattr("sys.stdin", Terminal("n\n"))  # then the input ends: stops like quit
    assert main(["feedback", str(keep), "--interactive"]) == 0
    assert [label_of(keep, i) for i in IDS] == ["false", "true", "false"]


def test_feedback_becomes_negatives_and_positives_of_the_right_kinds(keep):
    pytest.importorskip("torch")
    from wakeword.model import SEGMENT_SAMPLES
    from wakeword.train import feedback_sources

    assert main(["feedback", str(keep), "--false", IDS[0], IDS[1], "--true", IDS[2]]) == 0
    sources, info = feedback_sources([keep])
    by_kind: dict[str, list] = {}
    for s in sources:
        by_kind.setdefault(s.kind, []).append(s)
    assert sorted(by_kind) == ["ambient", "false_accept", "user"]
    assert [s.label for s in by_kind["false_accept"]] == [0, 0] and [s.label for s in by_kind["user"]] == [1]
    for s in by_kind["false_accept"] + by_kind["user"]:
        assert len(s.audio) == 2 * SR  # cut where the detector fired: the window it scored
    assert by_kind["user"][0].origin.endswith(f"{IDS[2]}.wav") and by_kind["user"][0].group == f"feedback:{IDS[2]}"
    # Each 4 s snippet gives two segment-long pieces.
    assert len(by_kind["ambient"]) == 4 and all(len(s.audio) <= SEGMENT_SAMPLES for s in by_kind["ambient"])
    assert all(s.label == 0 for s in by_kind["ambient"])
    # False accepts and ambient audio are one group each: all of them train, none is held out.
    from wakeword.dataset import split_by_group

    train, val = split_by_group(by_kind["false_accept"] + by_kind["ambient"], 0.2, seed=0)
    assert len(train) == 6 and val == []
    assert info == {
        "folders": 1,
        "false_accepts": 2,
        "true_detections": 1,
        "unlabelled": 0,
        "ambient_snippets": 2,
        "ambient_segments": 4,
    }
    main(["feedback", str(keep), "--mark", IDS[2], "none"])
    sources, info = feedback_sources([keep])
    assert info["unlabelled"] == 1 and not [s for s in sources if s.kind == "user"]  # unmarked: left out


def test_train_refuses_a_feedback_folder_that_is_not_one(tmp_path, capsys):
    pytest.importorskip("torch")
    (tmp_path / "model").mkdir()
    assert main(["train", "--resume", str(tmp_path / "model"), "--feedback", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "not a keep folder" in err
