"""tools/bench_decision.py: the decision rules on made-up score tracks."""

from __future__ import annotations

import numpy as np
import pytest

from tools.bench_decision import rule


def test_trailing_rules_average_or_hold_over_the_last_steps():
    scores = np.array([0.0, 1.0, 0.2, 0.8, 0.6], np.float32)
    np.testing.assert_allclose(rule("step")(scores), scores)
    # The first steps have fewer before them, as the runtime's smoothing does at a stream's start.
    np.testing.assert_allclose(rule("mean2")(scores), [0.0, 0.5, 0.6, 0.5, 0.7], atol=1e-6)
    np.testing.assert_allclose(rule("min2")(scores), [0.0, 0.0, 0.2, 0.2, 0.6], atol=1e-6)
    np.testing.assert_allclose(rule("min3")(scores), [0.0, 0.0, 0.0, 0.2, 0.2], atol=1e-6)


def test_a_lone_spike_no_longer_crosses_with_min2_but_a_held_score_does():
    spike = np.array([0.1, 0.99, 0.1, 0.1], np.float32)
    held = np.array([0.1, 0.9, 0.95, 0.1], np.float32)
    assert rule("min2")(spike).max() < 0.5 <= rule("min2")(held).max()


def test_an_unknown_rule_stops_with_its_name():
    with pytest.raises(SystemExit, match="median2"):
        rule("median2")


def test_the_shown_command_names_no_machine_folder():
    from tools.bench_decision import shown_command

    argv = ["--work", "/data/a", "/data/b", "--words", "computer", "--out", "/data/x.md"]
    assert shown_command(argv) == "python tools/bench_decision.py --work RUN1 RUN2 --words computer"
    merged = shown_command(["--merge", "/data/a/d0.json", "/data/b/d1.json", "--out", "docs/decision.md"])
    assert merged == "python tools/bench_decision.py --merge RUN1/d0.json RUN2/d1.json"
