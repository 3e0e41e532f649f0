"""tools/bench_accuracy.py: the seed summary on made-up rows."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import pytest

from tools import bench_accuracy as ba


def row(word: str, condition: str, seed: int, frr: float) -> dict:
    return {"word": word, "condition": condition, "seed": seed, "frr_at_0.5_fa_per_hour": frr}


def test_seed_summary_means_each_cell_over_its_seeds():
    rows = [
        row("athena", "clean", 0, 0.10),
        row("athena", "clean", 1, 0.00),
        row("athena", "clean", 2, 0.05),
        row("athena", "noise 10 dB", 0, 0.30),
        row("athena", "noise 10 dB", 2, 0.10),  # seed 1 missing: averaged over the two it has
    ]
    lines = ba.seed_summary(rows)
    assert lines[0].startswith("Mean over seeds 0, 1, 2")
    assert "| athena | clean | 5.0% | 0.0%-10.0% | 10.0% | 0.0% | 5.0% |" in lines
    assert "| athena | noise 10 dB | 20.0% | 10.0%-30.0% | 30.0% | - | 10.0% |" in lines


def test_recipe_overrides_are_typed_and_checked():
    assert ba.parse_overrides(["resume=true", "hard_negatives=300", "head=gru", "val_fraction=0.25"]) == {
        "resume": True,
        "hard_negatives": 300,
        "head": "gru",
        "val_fraction": 0.25,
    }
    with pytest.raises(SystemExit, match="not_a_field"):
        ba.parse_overrides(["not_a_field=1"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        ba.parse_overrides(["resume"])


def full_row(word: str, seed: int, frr: float) -> dict:
    full = {**row(word, "clean", seed, frr), "k": 5, "test_positives": 10, "negative_hours": 1.0}
    full.update({"frr_at_1_fa_per_hour": frr, "threshold": 0.9, "test_threshold_at_0.5_fa_per_hour": 0.9})
    full.update({"frr_at_threshold": 0.1, "fa_per_hour_at_threshold": 0.0, "train_seconds": 100})
    full.update({"highest_negatives": [{"clip": "sc/yes/a.flac", "score": 0.99}], "lowest_positives": []})
    return full


def test_a_stopped_run_keeps_its_rows_without_replacing_the_last_table(tmp_path):
    full = full_row("athena", 0, 0.05)
    variants = {"set": [], "takes_only": False, "one_negative_file": False, "merge": None}
    args = argparse.Namespace(out=str(tmp_path), k=5, seeds=[0], **variants)
    (tmp_path / "benchmarks.md").write_text("the last complete table\n")
    ba.write_results([full], args, done=False)
    assert (tmp_path / "benchmarks.md").read_text() == "the last complete table\n"
    assert json.loads((tmp_path / "benchmarks.partial.json").read_text()) == [full]
    ba.write_results([full], args, done=True)
    assert "| athena | 0 | clean | 10 |" in (tmp_path / "benchmarks.md").read_text()
    assert "| athena | 0 | clean | 0.9900 `sc/yes/a.flac` |  |" in (tmp_path / "benchmarks.md").read_text()
    assert not (tmp_path / "benchmarks.partial.json").exists() and not (tmp_path / "benchmarks.partial.md").exists()


def test_a_recipe_variant_must_not_write_over_the_default_table():
    done = subprocess.run(
        [sys.executable, str(ba.ROOT / "tools" / "bench_accuracy.py"), "--set", "head=gru"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "its own --out" in done.stderr


def test_seeds_run_apart_merge_into_one_table(tmp_path):
    for seed, frr in ((0, 0.10), (1, 0.30)):
        (tmp_path / f"s{seed}.json").write_text(json.dumps([full_row("athena", seed, frr)]))
    bench = [sys.executable, str(ba.ROOT / "tools" / "bench_accuracy.py"), "--out", str(tmp_path / "table")]
    files = [str(tmp_path / "s0.json"), str(tmp_path / "s1.json")]
    done = subprocess.run([*bench, "--merge", *files], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    table = (tmp_path / "table" / "benchmarks.md").read_text()
    assert "| athena | clean | 20.0% | 10.0%-30.0% | 10.0% | 30.0% |" in table
    assert "merged with `--merge`" in table
    assert len(json.loads((tmp_path / "table" / "benchmarks.json").read_text())) == 2
    refused = subprocess.run([*bench, "--k", "3", "--merge", *files], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "K = 3" in refused.stderr


def test_takes_only_and_one_negative_file_change_only_what_training_is_given(tmp_path, write, monkeypatch):
    import soundfile as sf

    import wakeword.export
    import wakeword.train
    from tests.conftest import tone

    configs = []
    monkeypatch.setattr(wakeword.train, "train", lambda config: configs.append(config) or {})
    monkeypatch.setattr(wakeword.export, "export_model", lambda *args, **kwargs: None)
    take, talk = write("take.flac", tone(1.0)), [write(f"talk{i}.flac", tone(2.0)) for i in range(3)]
    split = ba.WordSplit("athena", "athena", [take], [], talk, [], [take], [])
    ba.train_word(split, tmp_path / "takes_only", seed=0, takes_only=True)
    ba.train_word(split, tmp_path / "default", seed=0)
    ba.train_word(split, tmp_path / "one_file", seed=0, one_negative_file=True)
    takes_only, default, one_file = configs
    assert takes_only.clips is not None and (takes_only.negatives, takes_only.noise, takes_only.rirs) == ([], [], [])
    assert (len(default.negatives), len(default.noise), len(default.rirs)) == (1, 1, 1)
    assert len(list(default.negatives[0].iterdir())) == 3
    (recording,) = one_file.negatives[0].iterdir()
    assert sf.info(str(recording)).frames == 3 * (2 * 16000 + int(0.3 * 16000))
