"""The server form (wakeword.server.BatchDetector over server.onnx): B streams in one graph run, each
equal to the single-stream Detector, with its own state and its own decisions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import speechlike
from tests.test_runtime import make_model
from wakeword.errors import AudioError, ModelError
from wakeword.frontend import CHUNK_SAMPLES, HOP_LENGTH, N_FFT, log_mel
from wakeword.runtime import Detector

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module", params=["conv", "gru"])
def server_model(request, tmp_path_factory):
    from wakeword.export import export_server

    path = make_model(tmp_path_factory.mktemp("server") / request.param, seed=5, head=request.param)
    export_server(path)
    return path


def streams_audio(count: int, seconds: float) -> np.ndarray:
    """(count, samples): different speech-like audio per stream, at different levels."""
    steps = int(seconds / 0.08)
    audio = np.stack([speechlike(steps * 0.08, seed=20 + i) * (0.3 + 0.3 * i) for i in range(count)])
    return audio[:, : steps * CHUNK_SAMPLES].astype(np.float32)


def batch_scores(detector, audio: np.ndarray) -> np.ndarray:
    steps = audio.shape[1] // CHUNK_SAMPLES
    return np.stack([detector.process(audio[:, k * CHUNK_SAMPLES : (k + 1) * CHUNK_SAMPLES])[0] for k in range(steps)])


def test_graph_front_end_equals_the_numpy_one(real_speech):
    from wakeword.streaming import StreamingMel

    audio = real_speech[: 1632 * 200].reshape(200, 1632)
    features = StreamingMel()(torch.from_numpy(audio)).numpy()
    expected = np.stack([log_mel(row) for row in audio])
    assert features.shape == expected.shape == (200, (1632 - N_FFT) // HOP_LENGTH + 1, 32)
    assert np.abs(features - expected).max() < 1e-4  # measured 2.6e-5 on real speech


def test_every_stream_scores_as_the_single_stream_detector(server_model):
    from wakeword.server import BatchDetector

    audio = streams_audio(4, 8.0)
    scores = batch_scores(BatchDetector(server_model, 4, providers=CPU), audio)
    for i in range(4):
        alone = Detector([server_model], providers=CPU).process_scores(audio[i])[1][:, 0]
        assert scores[:, i].std() > 0.01  # the scores move with the audio: the comparison means something
        np.testing.assert_allclose(scores[:, i], alone, atol=1e-4)


def test_streams_do_not_leak_into_each_other(server_model):
    """A stream's scores do not depend on what the other streams hear, nor on how many there are."""
    from wakeword.server import BatchDetector

    audio = streams_audio(3, 4.0)
    together = batch_scores(BatchDetector(server_model, 3, providers=CPU), audio)
    other = audio.copy()
    other[1:] = streams_audio(3, 4.0)[::-1][1:] * 0.1
    swapped = batch_scores(BatchDetector(server_model, 3, providers=CPU), other)
    alone = batch_scores(BatchDetector(server_model, 1, providers=CPU), audio[:1])
    np.testing.assert_allclose(together[:, 0], swapped[:, 0], atol=1e-6)
    np.testing.assert_allclose(together[:, 0], alone[:, 0], atol=1e-6)
    assert np.abs(together[:, 1] - swapped[:, 1]).max() > 1e-3


@pytest.mark.parametrize("smoothing", [1, 3])
def test_decisions_are_per_stream_and_match_the_detector(server_model, smoothing):
    from wakeword.server import BatchDetector

    audio = streams_audio(3, 10.0)
    scores = Detector([server_model], providers=CPU).process_scores(audio[0])[1][:, 0]
    threshold = float(np.median(scores))
    batch = BatchDetector(server_model, 3, providers=CPU, threshold=threshold, smoothing=smoothing, refractory_s=0.5)
    steps = audio.shape[1] // CHUNK_SAMPLES
    events: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for k in range(steps):
        for stream, _score in batch.process(audio[:, k * CHUNK_SAMPLES : (k + 1) * CHUNK_SAMPLES])[1]:
            events[stream].append(round((k + 1) * 0.08, 2))
    for stream in range(3):
        single = Detector([server_model], providers=CPU, threshold=threshold, smoothing=smoothing, refractory_s=0.5)
        expected = [round(d.end_s, 2) for d in single.process(audio[stream])]
        assert events[stream] == expected
    assert events[0]  # the threshold is the median: stream 0 crosses it


def test_reset_of_one_stream_starts_it_afresh(server_model):
    from wakeword.server import BatchDetector

    audio = streams_audio(2, 4.0)
    batch = BatchDetector(server_model, 2, providers=CPU)
    batch_scores(batch, audio)
    batch.reset(1)
    again = batch_scores(batch, audio)
    fresh = batch_scores(BatchDetector(server_model, 2, providers=CPU), audio)
    np.testing.assert_allclose(again[:, 1], fresh[:, 1], atol=1e-6)
    assert np.abs(again[:, 0] - fresh[:, 0]).max() > 1e-4  # stream 0 kept what it heard


def test_bad_chunks_and_missing_graph_are_clear_errors(server_model, tmp_path):
    from wakeword.server import BatchDetector

    batch = BatchDetector(server_model, 2, providers=CPU)
    with pytest.raises(AudioError, match="shape"):
        batch.process(np.zeros((3, CHUNK_SAMPLES), np.float32))
    with pytest.raises(AudioError, match="NaN"):
        batch.process(np.full((2, CHUNK_SAMPLES), np.nan, np.float32))
    with pytest.raises(AudioError, match="dtype"):
        batch.process(np.zeros((2, CHUNK_SAMPLES), np.int32))
    int16 = (speechlike(0.08 * 2, seed=3)[: 2 * CHUNK_SAMPLES] * 20000).astype(np.int16).reshape(2, CHUNK_SAMPLES)
    a = BatchDetector(server_model, 2, providers=CPU).process(int16)[0]
    b = BatchDetector(server_model, 2, providers=CPU).process(int16.astype(np.float32) / 32768)[0]
    np.testing.assert_array_equal(a, b)
    (tmp_path / "m").mkdir()
    for name in ("card.json", "bottom.onnx", "top.onnx"):
        (tmp_path / "m" / name).write_bytes((server_model / name).read_bytes())
    with pytest.raises(ModelError, match="--server"):
        BatchDetector(tmp_path / "m", 2, providers=CPU)
    (tmp_path / "m" / "server.onnx").write_bytes((server_model / "server.onnx").read_bytes()[:5000])
    with pytest.raises(ModelError, match=r"server\.onnx"):
        BatchDetector(tmp_path / "m", 2, providers=CPU)


def test_server_runtime_imports_no_torch(server_model):
    code = (
        "import sys, numpy as np\n"
        "from wakeword.server import BatchDetector\n"
        f"b = BatchDetector({str(server_model)!r}, 2, providers=['CPUExecutionProvider'])\n"
        "b.process(np.zeros((2, 1280), np.float32))\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
