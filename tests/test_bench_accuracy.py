"""tools/bench_accuracy.py: the seed summary on made-up rows."""

from __future__ import annotations

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
