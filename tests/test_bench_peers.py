"""tools/bench_peers.py: the parts that keep train and test apart, and the report, on made-up numbers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tools import bench_peers as bp
from tools import shared_data


def clip(seconds: float, label: str = "yes") -> shared_data.Clip:
    return shared_data.Clip(Path(f"{label}.wav"), "speech_commands", "positive", label, "spk", seconds)


def test_says_phrase_needs_the_words_in_order():
    assert bp.says_phrase("hey_jarvis", "hey jarvis")
    assert bp.says_phrase("alexa", "alexa")
    assert not bp.says_phrase("hey_computer", "hey jarvis")  # shares "hey" only: a fair negative
    assert not bp.says_phrase("jarvis_hey", "hey jarvis")
    assert not bp.says_phrase("yes", "alexa")


def test_pick_hours_is_seeded_and_bounded():
    clips = [clip(1.0) for _ in range(100)]
    chosen = bp.pick_hours(clips, 30 / 3600, seed=0)
    assert len(chosen) == 23  # 1 s + 0.35 s pause each: the 23rd takes it past 30 s
    assert bp.pick_hours(clips, 30 / 3600, seed=0) == chosen
    assert len(bp.pick_hours(clips, 10.0, seed=0)) == 100


def test_train_and_test_voices_never_meet():
    test = bp.unseen_voices()
    if not test:
        pytest.skip("no non-commercial TTS voice installed")
    train = bp.train_voices(seed=0)
    assert len(train) == bp.TRAIN_CLIPS
    assert all(v.commercial_safe for v in train) and not any(v.commercial_safe for v in test)
    assert len({v.speaker for v in train}) == bp.TRAIN_CLIPS
    assert not {v.speaker for v in train} & {v.speaker for v in test}


def row(engine: str, condition: str, frr: float, fa_at_threshold: float = 0.0) -> dict:
    return {
        "engine": engine,
        "note": "",
        "condition": condition,
        "test_positives": 150,
        "negative_hours": 1.0,
        "frr_at_0.1_fa_per_hour": frr,
        "frr_at_0.5_fa_per_hour": frr,
        "frr_at_1_fa_per_hour": frr,
        "threshold": 0.5,
        "frr_at_threshold": frr,
        "fa_per_hour_at_threshold": fa_at_threshold,
        "rtf": 0.01,
        "det": [],
    }


def run(label: str, recipe: str, rows: list[dict]) -> dict:
    return {
        "phrase": bp.PHRASES[label],
        "label": label,
        "recipe": recipe,
        "date": "2026-01-01",
        "machine": "test",
        "git": "abc",
        "command": "python tools/bench_peers.py",
        "seed": 0,
        "train_voices": ["a", "b"],
        "test_voice_configs": 150,
        "train_seconds": 10,
        "total_seconds": 60,
        "rows": rows,
    }


def test_report_names_the_winner_and_skipped_engines():
    ours, oww = bp.ENGINE_NAMES["ours"], bp.ENGINE_NAMES["openwakeword"]
    rows = [
        row(ours, "clean", 0.1),
        row(oww, "clean", 0.05, fa_at_threshold=3.0),
        {"engine": "PocketSphinx KWS", "note": "skipped: not installed", "skipped": True},
    ]
    text = bp.markdown([run("alexa", "quick", rows)])
    assert "in 0 of 1 phrase x condition cells" in text
    assert f"at <= 1 FA/h {oww} 5.0% (ours 10.0%)" in text
    assert f"at own thresholds (of those at <= 1 FA/h there) {ours} 10.0%" in text
    assert f"over 1 FA/h at own threshold: {oww} 3.0" in text
    assert "skipped: not installed" in text


def test_merge_replaces_same_phrase_and_recipe_only():
    old = [run("okay_nabu", "quick", []), run("alexa", "quick", []), run("alexa", "default", [])]
    new = [run("alexa", "quick", [row("x", "clean", 0.2)])]
    merged = bp.merge(old, new)
    assert [(r["label"], r["recipe"]) for r in merged] == [
        ("alexa", "quick"),
        ("alexa", "default"),
        ("okay_nabu", "quick"),
    ]
    assert merged[0]["rows"] == new[0]["rows"]


def test_shown_command_keeps_machine_paths_out_of_reports():
    argv = ["--quick", "--out", "/somewhere/docs", "--json=/x.json", "--model", "/s/m", "--work", "/w", "--k", "5"]
    shown = shared_data.shown_command("tools/bench_channel.py", argv)
    assert shown == "python tools/bench_channel.py --quick --model MODEL_DIR --k 5"
    assert shared_data.shown_command("t.py", ["--model=/scratch/m"]) == "python t.py --model=MODEL_DIR"
    runs = ["/data/run_a/benchmarks.json", "/data/run_b/benchmarks.json"]
    merged = shared_data.shown_command("t.py", ["--int8", "--merge", *runs])
    assert merged == "python t.py --int8 --merge RUN1/benchmarks.json RUN2/benchmarks.json"


def test_git_revision_names_the_commit_and_says_when_the_tree_differs(monkeypatch):
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=shared_data.ROOT)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert shared_data.git_revision().startswith(head.stdout.strip())
    real_run = subprocess.run

    def dirty(args, **kwargs):
        if args[:2] == ["git", "status"]:
            return subprocess.CompletedProcess(args, 0, " M wakeword/train.py\n", "")
        return real_run(args, **kwargs)

    monkeypatch.setattr(shared_data.subprocess, "run", dirty)
    assert shared_data.git_revision() == head.stdout.strip() + "+changes"
