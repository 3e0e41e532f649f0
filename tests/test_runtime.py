"""Streaming form, ONNX export and the torch-free runtime agree with the offline scorer, step by step."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.conftest import speechlike
from wakeword import FEATURE_VERSION
from wakeword.encoder import load_encoder
from wakeword.errors import AudioError, ModelError
from wakeword.frontend import CHUNK_SAMPLES, FrameStream
from wakeword.model import WakeWordNet, score_audio
from wakeword.streaming import StreamingBottom, StreamingTop
from wakeword.train import save


def random_net(seed: int = 0, head: str = "conv") -> WakeWordNet:
    """An untrained net with a head wide enough that its scores move with the audio."""
    torch.manual_seed(seed)
    net = WakeWordNet(load_encoder(), head=head).eval()
    for p in net.head.parameters():
        p.data.normal_(0, 0.3)
    return net


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from wakeword.export import export_model

    path = tmp_path_factory.mktemp("model") / "hey_test"
    card = {"phrase": "hey test", "threshold": 0.6, "feature_version": FEATURE_VERSION, "phrase_seconds": 0.7}
    save(random_net(), path, card, [])
    export_model(path)
    return path


def streamed(bottom, top, audio: np.ndarray) -> np.ndarray:
    b_state, t_state = bottom.initial_state(), top.initial_state(bottom)
    frames, out = FrameStream(), []
    with torch.no_grad():
        for start in range(0, len(audio) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
            f = torch.from_numpy(frames.push(audio[start : start + CHUNK_SAMPLES])).to(torch.float64)
            acts, *b_state = bottom(f[None], *b_state)
            score, *t_state = top(acts, *t_state)
            out.append(float(score))
    return np.array(out)


@pytest.mark.parametrize("head", ["conv", "gru"])
def test_streaming_equals_offline_in_float64(head, real_speech):
    net = random_net(head=head).double()
    encoder = load_encoder().double()
    audio = real_speech[: 1000 * CHUNK_SAMPLES + 77]  # >= 1000 steps of real speech
    offline = score_audio(net, encoder, audio)
    online = streamed(StreamingBottom(encoder), StreamingTop(net), audio)
    assert len(online) == len(offline) >= 1000
    assert np.abs(online - offline).max() <= 1e-6  # offline is float32 at the end


def test_streaming_embeddings_equal_the_windowed_encoder():
    """The streaming bottom + top give exactly the embeddings of the 76-frame windows (float64)."""
    from wakeword.frontend import log_mel

    encoder = load_encoder().double()
    net = WakeWordNet(encoder).double().eval()
    bottom, top = StreamingBottom(encoder), StreamingTop(net)
    audio = speechlike(4.0)
    b_state, t_state = bottom.initial_state(), top.initial_state(bottom)
    frames = FrameStream()
    online = []
    with torch.no_grad():
        for start in range(0, len(audio) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
            f = torch.from_numpy(frames.push(audio[start : start + CHUNK_SAMPLES])).double()
            acts, *b_state = bottom(f[None], *b_state)
            _, *t_state = top(acts, *t_state)
            online.append(t_state[-1][0, -1].numpy())
        padded = np.concatenate([np.zeros(11232, np.float32), audio])
        windowed = encoder(torch.from_numpy(log_mel(padded)).double()[None])[0].numpy()
    n = min(len(online), len(windowed))
    assert n >= 40
    assert np.abs(np.array(online[:n]) - windowed[:n]).max() <= 1e-9


def test_runtime_matches_offline_scores(model_dir, real_speech):
    from wakeword.runtime import Detector
    from wakeword.train import load_model

    net, _ = load_model(model_dir)
    audio = real_speech[: 400 * CHUNK_SAMPLES]
    offline = score_audio(net, load_encoder(), audio)
    detector = Detector([model_dir], providers="CPUExecutionProvider")
    rng = np.random.default_rng(0)
    rows, i = [], 0
    while i < len(audio):  # odd chunk sizes: the runtime buffers
        n = int(rng.integers(1, 3000))
        rows.append(detector.process_scores(audio[i : i + n])[1])
        i += n
    online = np.concatenate(rows)[:, 0]
    assert len(online) == len(offline)
    assert np.abs(online - offline).max() <= 1e-4


def test_int16_and_float_chunks_agree(model_dir):
    from wakeword.runtime import Detector

    audio = speechlike(3.0)
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    a = Detector([model_dir]).process_scores(pcm)[1]
    b = Detector([model_dir]).process_scores(pcm.astype(np.float32) / 32768)[1]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_reset_starts_the_stream_afresh(model_dir):
    from wakeword.runtime import Detector

    detector = Detector([model_dir])
    audio = speechlike(2.0)
    first = detector.process_scores(audio)[1]
    detector.process(speechlike(1.0, seed=5)[:777])
    detector.reset()
    np.testing.assert_array_equal(detector.process_scores(audio)[1], first)


def test_bad_chunks_are_refused(model_dir):
    from wakeword.runtime import Detector

    detector = Detector([model_dir])
    with pytest.raises(AudioError, match="NaN"):
        detector.process(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="dtype"):
        detector.process(np.zeros(10, np.int64))
    with pytest.raises(AudioError, match="mono"):
        detector.process(np.zeros((10, 2), np.float32))


def test_two_wake_words_share_one_bottom(model_dir, tmp_path):
    import shutil

    from wakeword.runtime import Detector

    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    detector = Detector([model_dir, other])
    assert len(detector._bottoms) == 1
    scores = detector.process_scores(speechlike(2.0))[1]
    assert scores.shape[1] == 2
    np.testing.assert_allclose(scores[:, 0], scores[:, 1], atol=1e-7)


def test_onnx_graphs_pass_the_checker_and_carry_metadata(model_dir):
    import onnx

    for name in ("bottom.onnx", "top.onnx"):
        model = onnx.load(str(model_dir / name))
        onnx.checker.check_model(model)
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["feature_version"] == str(FEATURE_VERSION)
        assert meta["wakeword_role"] == name.split(".")[0]


def test_broken_model_files_are_clear_errors(model_dir, tmp_path):
    import shutil

    from wakeword.runtime import WakeWordModel

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "top.onnx").write_bytes((model_dir / "top.onnx").read_bytes()[:500])
    with pytest.raises(ModelError, match="not a loadable ONNX graph"):
        WakeWordModel.load(broken)
    card = json.loads((model_dir / "card.json").read_text())
    card["feature_version"] = 99
    shutil.copy(model_dir / "top.onnx", broken / "top.onnx")
    (broken / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="feature version 99"):
        WakeWordModel.load(broken)
    (broken / "card.json").unlink()
    with pytest.raises(ModelError, match=r"no card\.json"):
        WakeWordModel.load(broken)
    swapped = tmp_path / "swapped"
    shutil.copytree(model_dir, swapped)
    shutil.copy(model_dir / "bottom.onnx", swapped / "top.onnx")
    with pytest.raises(ModelError, match="not a wakeword top graph"):
        WakeWordModel.load(swapped)


def test_runtime_imports_no_torch(model_dir):
    code = (
        "import sys, numpy as np; from wakeword.runtime import Detector; "
        f"d = Detector([{str(model_dir)!r}]); d.process(np.zeros(16000, np.float32)); "
        "assert 'torch' not in sys.modules, 'torch imported'; print('ok')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


def test_detect_and_score_cli(model_dir, write, tmp_path):
    audio = speechlike(3.0)
    path = write("a.wav", audio)
    result = subprocess.run(
        [sys.executable, "-m", "wakeword", "detect", str(model_dir), str(path), "--threshold", "0.0001"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines and {"file", "phrase", "start", "end", "score"} <= set(lines[0])
    out = tmp_path / "s.csv"
    result = subprocess.run(
        [sys.executable, "-m", "wakeword", "score", str(model_dir), str(path), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    rows = out.read_text().splitlines()
    assert rows[0].startswith("time,score_") and len(rows) == 1 + len(audio) // CHUNK_SAMPLES


def test_int8_export_runs_and_is_marked(model_dir, tmp_path):
    import shutil

    import onnx

    from wakeword.export import export_model
    from wakeword.runtime import Detector

    path = tmp_path / "m"
    shutil.copytree(model_dir, path)
    export_model(path, int8=True, calibration_audio=speechlike(8.0))
    meta = {p.key: p.value for p in onnx.load(str(path / "top.int8.onnx")).metadata_props}
    assert meta["wakeword_role"] == "top" and meta["quantization"] == "int8 static QDQ"
    audio = speechlike(3.0, seed=2)
    fp32 = Detector([path]).process_scores(audio)[1]
    int8 = Detector([path], int8=True).process_scores(audio)[1]
    assert int8.shape == fp32.shape and np.all(np.isfinite(int8))
