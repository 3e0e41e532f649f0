"""Peer engines through their own runtimes: each gives one in-range score per 80 ms step.

Each test skips, with the pip command, when its engine is not installed (they are benchmark tools,
not dependencies). Real-audio checks skip without ../shared/data.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tests.conftest import needs_shared_data, speechlike
from tools import peers, shared_data
from wakeword import evaluate as ev

STEP = 1280
SECONDS = 3.3  # not a whole number of steps: the trailing partial chunk gives no score


def needs(peer: str):
    return pytest.mark.skipif(not peers.installed(peer), reason=f"{peer} not installed: {peers.PEERS[peer].pip}")


@pytest.fixture(scope="module")
def stream() -> np.ndarray:
    return speechlike(SECONDS)


def check_scores(scores: np.ndarray, audio: np.ndarray, low: float, high: float) -> None:
    assert scores.shape == (len(audio) // STEP,)
    assert np.all(np.isfinite(scores))
    assert scores.min() >= low and scores.max() <= high


def test_helpers_pool_and_convert():
    pooled = peers.pool_per_step([[0.1, 0.4], [], [0.2], []], floor=-1.0)
    np.testing.assert_array_equal(pooled, [0.4, 0.4, 0.2, 0.2])
    np.testing.assert_array_equal(peers.pool_per_step([[], [0.3]], floor=-1.0), [-1.0, 0.3])
    np.testing.assert_array_equal(peers.to_int16(np.array([0.0, 1.0, -1.0, 2.0])), [0, 32767, -32767, 32767])
    assert [len(c) for c in peers.chunks(np.zeros(3000, np.int16))] == [STEP, STEP]


def test_unknown_peer_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(peers.PEERS, "nothing", peers.Peer("nothing", "no_such_module_here", "pip install x"))
    with pytest.raises(peers.PeerUnavailableError, match="pip install x"):
        peers.require("nothing")


@needs("openwakeword")
def test_openwakeword(stream):
    from tools.peers.openwakeword import openwakeword_scorer

    scorer = openwakeword_scorer("hey_jarvis")
    scores = scorer(stream)
    check_scores(scores, stream, 0.0, 1.0)
    np.testing.assert_array_equal(scorer(stream), scores)  # a fresh state for each stream
    with pytest.raises(ValueError, match="unknown"):
        openwakeword_scorer("hey_nova")


@needs("microwakeword")
def test_microwakeword(stream):
    from tools.peers.microwakeword import microwakeword_scorer, model_threshold

    scorer = microwakeword_scorer("okay_nabu")
    scores = scorer(stream)
    check_scores(scores, stream, 0.0, 1.0)
    np.testing.assert_array_equal(scorer(stream), scores)
    assert 0.0 < model_threshold("okay_nabu") < 1.0


@needs("pocketsphinx")
def test_pocketsphinx(stream):
    from tools.peers.pocketsphinx_kws import FLOOR_SCORE, pocketsphinx_scorer

    scores = pocketsphinx_scorer("computer")(stream)
    check_scores(scores, stream, FLOOR_SCORE, 100.0)
    with pytest.raises(ValueError, match="dictionary"):
        pocketsphinx_scorer("hey qwzxv")


@needs("efficientword")
def test_efficientword(stream):
    from tools.peers.efficientword import efficientword_scorer

    scores = efficientword_scorer("computer", hop_steps=3)(stream)
    check_scores(scores, stream, 0.0, 1.0)
    few_shot = efficientword_scorer([speechlike(1.0, seed=s) for s in range(4)], hop_steps=6, gate=False)
    check_scores(few_shot(stream), stream, 0.0, 1.0)
    with pytest.raises(ValueError, match="at least 4"):
        efficientword_scorer([speechlike(1.0)])


@needs("microwakeword")
def test_a_peer_through_the_harness():
    from tools.peers.microwakeword import microwakeword_scorer, model_threshold

    clips = [speechlike(1.0, seed=s) for s in range(3)]
    report = ev.evaluate_scorer(
        microwakeword_scorer("alexa"), clips, clips * 4, "microwakeword alexa", model_threshold("alexa")
    )
    assert report.positives == 3 and report.at_model_threshold["threshold"] == model_threshold("alexa")


@needs("openwakeword")
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt-get install espeak-ng)")
def test_openwakeword_fires_on_its_phrase_at_the_right_time(tmp_path):
    """Synthetic 'hey jarvis' in silence: the event must land inside the protocol's window."""
    from tools.peers.openwakeword import MODEL_THRESHOLD, openwakeword_scorer
    from wakeword.audio import load_audio

    wav = tmp_path / "hey_jarvis.wav"
    subprocess.run(["espeak-ng", "-v", "en-gb", "-w", str(wav), "hey jarvis"], check=True)
    stream = ev.build_positive_stream([load_audio(wav)], seed=0)
    scores = openwakeword_scorer("hey_jarvis")(stream.audio)
    assert ev.false_reject_rate(scores, stream, MODEL_THRESHOLD) == 0.0


@needs("pocketsphinx")
@needs_shared_data
def test_pocketsphinx_spots_real_keywords():
    from tools.peers.pocketsphinx_kws import MODEL_THRESHOLD, pocketsphinx_scorer
    from wakeword.audio import load_audio

    clips = [load_audio(c.path) for c in shared_data.manifest() if c.label == "computer"][:4]
    stream = ev.build_positive_stream(clips, seed=0)
    scores = pocketsphinx_scorer("computer")(stream.audio)
    assert ev.false_reject_rate(scores, stream, MODEL_THRESHOLD) <= 0.5
