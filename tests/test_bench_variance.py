"""tools/bench_variance.py: the logit-averaging ensemble on made-up scorers."""

from __future__ import annotations

import numpy as np

from tools.bench_variance import ensemble_scorer, logit


def test_the_ensemble_averages_logits_and_scores_each_stream_once_per_member():
    calls = []

    def member(p: float):
        def score(audio: np.ndarray) -> np.ndarray:
            calls.append(p)
            return np.full(len(audio) // 1280, p, np.float32)

        return score

    scorer_of = ensemble_scorer([member(0.9), member(0.1), member(0.99)], {})
    audio = np.zeros(1280 * 4, np.float32)
    both = scorer_of([0, 1])(audio)
    np.testing.assert_allclose(both, 0.5, atol=1e-6)  # logits +2.197 and -2.197
    three = scorer_of([0, 1, 2])(audio)
    np.testing.assert_allclose(three, 1 / (1 + np.exp(-logit(np.array([0.99]))[0] / 3)), rtol=1e-5)
    assert sorted(calls) == [0.1, 0.9, 0.99]  # members 0 and 1 were not asked again
    scorer_of([0])(np.ones(1280 * 4, np.float32))  # another stream: scored anew
    assert len(calls) == 4
