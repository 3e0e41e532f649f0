"""Streaming form, ONNX export and the torch-free runtime agree with the offline scorer, step by step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import speechlike
from wakeword import FEATURE_VERSION
from wakeword.encoder import TorchEncoder, load_encoder
from wakeword.errors import AudioError, ModelError
from wakeword.frontend import CHUNK_SAMPLES, FrameStream, embed_audio
from wakeword.model import WakeWordNet, score_audio
from wakeword.streaming import StreamingBottom, StreamingTop, conv_top_weights
from wakeword.train import save

HEAD_SCALE = {"conv": 0.1, "gru": 0.2}  # scores then spread over most of (0, 1) without saturating


def random_net(seed: int = 0, head: str = "conv") -> WakeWordNet:
    """An untrained net with a head wide enough that its scores move with the audio."""
    torch.manual_seed(seed)
    net = WakeWordNet(load_encoder(), head=head).eval()
    for p in net.head.parameters():
        p.data.normal_(0, HEAD_SCALE[head])
    for p in net.top.parameters():  # each word's fine-tuned top differs a little from the encoder's
        p.data += torch.randn_like(p) * 0.01
    return net


def make_model(path, seed: int = 0, head: str = "conv"):
    from wakeword.export import export_model

    card = {"phrase": f"hey test {seed}", "threshold": 0.6, "feature_version": FEATURE_VERSION, "phrase_seconds": 0.7}
    save(random_net(seed, head), path, card, [])
    export_model(path)
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "hey_test")


@pytest.fixture(scope="module")
def more_models(tmp_path_factory):
    """Two more conv-head wake words and a GRU-head one."""
    root = tmp_path_factory.mktemp("more")
    return [make_model(root / "a", 1), make_model(root / "b", 2), make_model(root / "gru", 3, head="gru")]


def offline(path, audio: np.ndarray) -> np.ndarray:
    from wakeword.train import load_model

    net, _ = load_model(path)
    return score_audio(net, load_encoder(), audio)


def streamed(bottom, top, audio: np.ndarray) -> np.ndarray:
    b_state, t_state = bottom.initial_state(), top.initial_state(bottom)
    frames, out = FrameStream(), []
    dtype = next(bottom.parameters()).dtype
    with torch.no_grad():
        for start in range(0, len(audio) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
            f = torch.from_numpy(frames.push(audio[start : start + CHUNK_SAMPLES])).to(dtype)
            acts, b_state = bottom(f[None], b_state)
            score, t_state = top(acts, t_state)
            out.append(float(score))
    return np.array(out)


@pytest.mark.parametrize("head", ["conv", "gru"])
def test_streaming_equals_offline_in_float64(head, real_speech):
    net = random_net(head=head).double()
    encoder = load_encoder().double()
    audio = real_speech[: 1000 * CHUNK_SAMPLES + 77]  # >= 1000 steps of real speech
    offline_scores = score_audio(net, encoder, audio)
    online = streamed(StreamingBottom(encoder), StreamingTop(net), audio)
    assert len(online) == len(offline_scores) >= 1000
    assert np.abs(online - offline_scores).max() <= 1e-6  # offline is float32 at the end


@pytest.mark.parametrize("head", ["conv", "gru"])
def test_streaming_equals_offline_on_synthetic_audio(head):
    """The same without the shared data set (shorter, float64)."""
    net = random_net(head=head).double()
    encoder = load_encoder().double()
    audio = speechlike(8.0)
    online = streamed(StreamingBottom(encoder), StreamingTop(net), audio)
    np.testing.assert_allclose(online, score_audio(net, encoder, audio), atol=1e-6)


def test_streaming_embeddings_equal_the_windowed_encoder():
    """The streaming bottom + top give exactly the embeddings of the 76-frame windows (float64)."""
    from wakeword.frontend import log_mel

    encoder = load_encoder().double()
    net = WakeWordNet(encoder).double().eval()
    bottom, top = StreamingBottom(encoder), StreamingTop(net)
    audio = speechlike(4.0)
    b_state = bottom.initial_state()
    caches = top.layout.unpack(top.initial_state(bottom))[:2]
    frames = FrameStream()
    online = []
    with torch.no_grad():
        for start in range(0, len(audio) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
            f = torch.from_numpy(frames.push(audio[start : start + CHUNK_SAMPLES])).double()
            acts, b_state = bottom(f[None], b_state)
            embedding, caches = top.embed(acts, caches)
            online.append(embedding[0, :, 0].numpy())
        padded = np.concatenate([np.zeros(11232, np.float32), audio])
        windowed = encoder(torch.from_numpy(log_mel(padded)).double()[None])[0].numpy()
    n = min(len(online), len(windowed))
    assert n >= 40
    assert np.abs(np.array(online[:n]) - windowed[:n]).max() <= 1e-9


def test_onnx_streaming_embeddings_equal_the_windowed_encoder(model_dir):
    """bottom.onnx + top.onnx, float32, over 1000+ steps: the embedding in the top's state equals the
    windowed (openWakeWord-style) encoder of the wake word's fine-tuned top, in float64, within 1e-5 of
    the embeddings' scale (they reach +-60: float32 rounding through 20 layers is ~1e-6 of that)."""
    from wakeword.runtime import WakeWordModel, run_bottom_steps
    from wakeword.train import load_model

    audio = speechlike(90.0, seed=4)  # 1125 steps
    model = WakeWordModel.load(model_dir, providers="CPUExecutionProvider")
    _, top_feeds = run_bottom_steps(model, audio)
    layout = {p["name"]: p for p in json.loads(model.top_session().get_modelmeta().custom_metadata_map["state_layout"])}
    entry = layout["embeddings"]
    # The state a step receives holds the embeddings up to the step before: the newest is the last row.
    online = np.array([f["state"].reshape(-1)[entry["offset"] :][: np.prod(entry["shape"])] for f in top_feeds])
    online = online.reshape(len(top_feeds), *entry["shape"])[1:, -1]
    net, _ = load_model(model_dir)
    encoder = load_encoder().double()
    encoder.blocks[-1].layers[-2] = net.top.layers[0].double()  # the fine-tuned top in the encoder's place
    encoder.blocks[-1].layers[-1] = net.top.layers[1].double()
    encoder.out = net.top.out.double()
    windowed = embed_audio(audio, TorchEncoder(encoder))
    assert len(online) >= 1000
    assert np.abs(online - windowed[: len(online)]).max() <= 1e-5 * np.abs(windowed).max()


@pytest.mark.parametrize("head", ["conv", "gru"])
def test_runtime_matches_offline_scores(head, model_dir, more_models, real_speech):
    from wakeword.runtime import Detector

    path = model_dir if head == "conv" else more_models[2]
    audio = real_speech[: 400 * CHUNK_SAMPLES]
    expected = offline(path, audio)
    detector = Detector([path], providers="CPUExecutionProvider")
    rng = np.random.default_rng(0)
    rows, i = [], 0
    while i < len(audio):  # odd chunk sizes: the runtime buffers
        n = int(rng.integers(1, 3000))
        rows.append(detector.process_scores(audio[i : i + n])[1])
        i += n
    online = np.concatenate(rows)[:, 0]
    assert len(online) == len(expected)
    assert np.abs(online - expected).max() <= 1e-4
    assert np.std(expected) > 0.01  # the comparison means something: the scores move


def test_runtime_matches_offline_scores_on_synthetic_audio(model_dir):
    from wakeword.runtime import Detector

    audio = speechlike(20.0, seed=6)
    online = Detector([model_dir], providers="CPUExecutionProvider").process_scores(audio)[1][:, 0]
    expected = offline(model_dir, audio)
    assert np.abs(online - expected).max() <= 1e-4
    assert np.std(expected) > 0.01


def test_stacked_words_score_as_each_word_alone(model_dir, more_models):
    """Conv-head words share one graph (stacked tops), a GRU-head word runs its own top: every column
    equals that word's single-word detector and the offline scorer."""
    from wakeword.runtime import Detector

    words = [model_dir, *more_models]
    audio = speechlike(6.0, seed=7)
    together = Detector(words, providers="CPUExecutionProvider")
    assert len(together._groups) == 1  # one bottom run per chunk
    assert len(together._groups[0].alone) == 1  # the GRU head
    scores = together.process_scores(audio)[1]
    assert scores.shape[1] == len(words)
    for column, path in enumerate(words):
        alone = Detector([path], providers="CPUExecutionProvider").process_scores(audio)[1][:, 0]
        np.testing.assert_allclose(scores[:, column], alone, atol=1e-6)
        assert np.abs(scores[:, column] - offline(path, audio)).max() <= 1e-4


def test_order_of_words_is_kept(model_dir, more_models):
    from wakeword.runtime import Detector

    words = [more_models[2], model_dir, more_models[0]]  # GRU first: stacked columns are not consecutive
    audio = speechlike(3.0, seed=8)
    scores = Detector(words, providers="CPUExecutionProvider").process_scores(audio)[1]
    for column, path in enumerate(words):
        alone = Detector([path], providers="CPUExecutionProvider").process_scores(audio)[1][:, 0]
        np.testing.assert_allclose(scores[:, column], alone, atol=1e-6)


def test_stacked_top_graph_is_valid_onnx_and_reads_back(model_dir, more_models):
    """The runtime's own protobuf writer makes graphs onnx accepts, and its reader gets the weights back."""
    import onnx

    from wakeword.runtime import (
        CONV_TOP_WEIGHTS,
        WakeWordModel,
        conv_top_graph,
        merged_graph,
        read_graph_info,
        read_initializers,
    )

    models = [WakeWordModel.load(p, "CPUExecutionProvider") for p in (model_dir, *more_models[:2])]
    for graph in (
        conv_top_graph([m.top_weights for m in models], {"k": "v"}),
        merged_graph(models[0].bottom_path.read_bytes(), [m.top_weights for m in models], keep_acts=True),
    ):
        onnx.checker.check_model(onnx.load_from_string(graph), full_check=True)
    meta, graph = read_graph_info(conv_top_graph([models[1].top_weights], {"k": "v"}))
    tensors = read_initializers(graph)
    assert meta == {"k": "v"}
    for name in CONV_TOP_WEIGHTS:
        np.testing.assert_array_equal(tensors[name], models[1].top_weights[name])
    # and top.onnx's weights are conv_top_weights of the trained net
    from wakeword.train import load_model

    net, _ = load_model(model_dir)
    for name, value in conv_top_weights(StreamingTop(net)).items():
        np.testing.assert_array_equal(models[0].top_weights[name], value)


def test_int16_and_float_chunks_agree(model_dir):
    from wakeword.runtime import Detector

    audio = speechlike(3.0)
    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    a = Detector([model_dir]).process_scores(pcm)[1]
    b = Detector([model_dir]).process_scores(pcm.astype(np.float32) / 32768)[1]
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_reset_starts_the_stream_afresh_without_settling_again(model_dir, more_models, monkeypatch):
    from wakeword.runtime import Detector

    detector = Detector([model_dir, more_models[2]])
    audio = speechlike(2.0)
    first = detector.process_scores(audio)[1]
    detector.process(speechlike(1.0, seed=5)[:777])
    monkeypatch.setattr(Detector, "_settle", lambda self: pytest.fail("reset() ran the silence warm-up again"))
    detector.reset()
    np.testing.assert_array_equal(detector.process_scores(audio)[1], first)
    # A new Detector on the same loaded models reuses their silence states and graphs too.
    again = Detector(detector.models)
    np.testing.assert_array_equal(again.process_scores(audio)[1], first)


def test_silence_state_is_a_fixed_point(model_dir):
    from wakeword.runtime import Detector

    detector = Detector([model_dir])
    before = [list(run.states) for g in detector._groups for run in g.runs]
    detector.process(np.zeros(CHUNK_SAMPLES * 3, np.float32))
    after = [run.states for g in detector._groups for run in g.runs]
    for old, new in zip(before, after, strict=True):
        for a, b in zip(old, new, strict=True):
            np.testing.assert_array_equal(a, b)


def test_bad_chunks_are_refused(model_dir):
    from wakeword.runtime import Detector

    detector = Detector([model_dir])
    with pytest.raises(AudioError, match="NaN"):
        detector.process(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="dtype"):
        detector.process(np.zeros(10, np.int64))
    with pytest.raises(AudioError, match="mono"):
        detector.process(np.zeros((10, 2), np.float32))


def test_identical_copies_share_one_bottom(model_dir, tmp_path):
    from wakeword.runtime import Detector

    other = tmp_path / "other"
    shutil.copytree(model_dir, other)
    detector = Detector([model_dir, other])
    assert len(detector._groups) == 1
    scores = detector.process_scores(speechlike(2.0))[1]
    assert scores.shape[1] == 2
    np.testing.assert_allclose(scores[:, 0], scores[:, 1], atol=1e-7)


def test_cpu_sessions_do_not_keep_the_model_bytes(model_dir, more_models):
    """onnxruntime's wrapper holds a session's model bytes for its life (to rebuild it on another
    provider); a CPU-only runtime lets them go: 3.3 MB of the daemon's memory with 5 wake words."""
    from wakeword.runtime import Detector

    detector = Detector([model_dir, more_models[1], more_models[2]], providers="CPUExecutionProvider")
    sessions = [run.session for group in detector._groups for run in group.runs]
    assert sessions and all(hasattr(s, "_model_bytes") for s in sessions), "onnxruntime renamed _model_bytes"
    assert all(s._model_bytes is None for s in sessions)
    assert detector.process_scores(speechlike(1.0))[1].shape[1] == 3  # and the sessions still run


def test_onnx_graphs_pass_the_checker_and_carry_metadata(model_dir, more_models):
    import onnx

    for folder in (model_dir, more_models[2]):
        for name in ("bottom.onnx", "top.onnx"):
            model = onnx.load(str(folder / name))
            onnx.checker.check_model(model)
            meta = {p.key: p.value for p in model.metadata_props}
            assert meta["feature_version"] == str(FEATURE_VERSION)
            assert meta["wakeword_role"] == name.split(".")[0]
            assert meta["graph_version"] == "2"
            layout = json.loads(meta["state_layout"])
            state = next(i for i in model.graph.input if i.name == "state")
            size = np.prod([d.dim_value for d in state.type.tensor_type.shape.dim])
            assert sum(np.prod(p["shape"]) for p in layout) == size


def test_broken_model_files_are_clear_errors(model_dir, tmp_path):
    from wakeword.runtime import Detector, WakeWordModel

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
    bad_bottom = tmp_path / "bad_bottom"
    shutil.copytree(model_dir, bad_bottom)
    (bad_bottom / "bottom.onnx").write_bytes((model_dir / "bottom.onnx").read_bytes()[:900])
    with pytest.raises(ModelError, match=r"bottom\.onnx: not a loadable ONNX graph"):
        Detector([bad_bottom])


def test_graphs_of_the_first_export_format_ask_for_a_re_export(model_dir, tmp_path):
    """A folder exported before the flat state (one input per cache, no graph_version) is refused in one line."""
    import onnx

    old = tmp_path / "old"
    shutil.copytree(model_dir, old)
    for name in ("bottom.onnx", "top.onnx"):
        model = onnx.load(str(old / name))
        kept = [(p.key, p.value) for p in model.metadata_props if p.key not in ("graph_version", "state_layout")]
        del model.metadata_props[:]
        for key, value in kept:
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(model, str(old / name))
    from wakeword.runtime import WakeWordModel

    with pytest.raises(ModelError, match=r"graph version 1.*re-export with 'wakeword export") as error:
        WakeWordModel.load(old)
    assert "\n" not in str(error.value)


def test_runtime_imports_no_torch(model_dir, more_models):
    code = (
        "import sys, numpy as np; from wakeword.runtime import Detector; "
        f"d = Detector([{str(model_dir)!r}, {str(more_models[0])!r}, {str(more_models[2])!r}]); "
        "d.process(np.zeros(16000, np.float32)); "
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules, 'torch or onnx imported'; print('ok')"
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

    def score_csv(model, name: str) -> list[str]:
        out = tmp_path / name
        args = [sys.executable, "-m", "wakeword", "score", str(model), str(path), "--out", str(out)]
        result = subprocess.run(args, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return out.read_text().splitlines()

    rows = score_csv(model_dir, "s.csv")
    assert rows[0].startswith("time,score_") and len(rows) == 1 + len(audio) // CHUNK_SAMPLES
    # A card that smooths its decision adds the score its threshold is compared with.
    import shutil

    smoothing = tmp_path / "smoothing"
    shutil.copytree(model_dir, smoothing)
    card = json.loads((smoothing / "card.json").read_text())
    (smoothing / "card.json").write_text(json.dumps(card | {"decision": {"smoothing": 3}}))
    header, *lines = score_csv(smoothing, "s3.csv")
    assert header.split(",")[2].startswith("decision_")
    table = np.array([[float(v) for v in line.split(",")] for line in lines])
    np.testing.assert_allclose(table[:, 1], [float(r.split(",")[1]) for r in rows[1:]], atol=1e-6)
    np.testing.assert_allclose(table[5, 2], table[3:6, 1].mean(), atol=2e-6)


def test_eval_cli_reports_and_names_the_deciding_clips(model_dir, tmp_path):
    import soundfile as sf

    for kind, seeds in (("pos", range(3)), ("neg", range(10, 16))):
        (tmp_path / kind).mkdir()
        for seed in seeds:
            sf.write(tmp_path / kind / f"{kind}{seed}.wav", speechlike(1.5, seed=seed), 16000)
    out = tmp_path / "report"
    args = ["eval", str(model_dir), "--positives", str(tmp_path / "pos"), "--negatives", str(tmp_path / "neg")]
    args += ["--out", str(out)]
    result = subprocess.run([sys.executable, "-m", "wakeword", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "highest-scoring negative:" in result.stdout
    report = json.loads((out / "report.json").read_text())["reports"][0]
    named = {Path(row["clip"]).name for row in report["highest_negatives"]}
    assert named == {f"neg{seed}.wav" for seed in range(10, 16)}  # six clips, all named, none invented
    scores = [row["score"] for row in report["highest_negatives"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    assert "lowest-scoring positives" in (out / "report.md").read_text()
    again = subprocess.run([sys.executable, "-m", "wakeword", *args], capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr and "Traceback" not in again.stderr


def test_detections_fire_once_per_crossing(model_dir):
    """The vectorised skip of the per-word decisions gives the same events as checking every step."""
    from wakeword.runtime import Detector

    audio = speechlike(12.0, seed=9)
    scores = Detector([model_dir]).process_scores(audio)[1][:, 0]
    threshold = float(np.median(scores))
    detector = Detector([model_dir], threshold=threshold, refractory_s=0.0)
    events = detector.process(audio)
    above = scores >= threshold
    rising = int(above[0]) + int(np.sum(above[1:] & ~above[:-1]))
    assert len(events) == rising > 0


def test_int8_export_runs_and_is_marked(model_dir, tmp_path):
    import onnx

    from wakeword.export import export_model
    from wakeword.runtime import Detector, WakeWordModel

    path = tmp_path / "m"
    shutil.copytree(model_dir, path)
    export_model(path, int8=True, calibration_audio=speechlike(8.0))
    meta = {p.key: p.value for p in onnx.load(str(path / "bottom.int8.onnx")).metadata_props}
    assert meta["wakeword_role"] == "bottom" and meta["quantization"] == "int8 static QDQ"
    meta = {p.key: p.value for p in onnx.load(str(path / "top.int8.onnx")).metadata_props}
    assert meta["wakeword_role"] == "top" and meta["quantization"].startswith("int8 weights")
    model = WakeWordModel.load(path, "CPUExecutionProvider", int8=True)
    assert model.stacks and model.top is None  # int8 weights, read back as floats: stacked with the others
    for name, weight in WakeWordModel.load(path, "CPUExecutionProvider").top_weights.items():
        assert np.abs(model.top_weights[name] - weight).max() <= np.abs(weight).max() / 254 + 1e-7
    audio = speechlike(3.0, seed=2)
    fp32 = Detector([path]).process_scores(audio)[1]
    int8 = Detector([path], int8=True).process_scores(audio)[1]
    assert int8.shape == fp32.shape and np.all(np.isfinite(int8))
    assert np.abs(int8 - fp32).max() < 0.2
