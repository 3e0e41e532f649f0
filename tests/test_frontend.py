"""The front end reproduces the reference mel graph, and streaming in any chunking equals one pass."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import SR, needs_shared_data, speechlike, tone
from tools import reference_models as ref
from tools import shared_data
from wakeword import frontend as fe


def test_mel_filterbank_is_librosas_slaney():
    librosa = pytest.importorskip("librosa", reason="librosa comes with the train extra")
    expected = librosa.filters.mel(sr=SR, n_fft=512, n_mels=32, fmin=60, fmax=3800, htk=False, norm="slaney")
    np.testing.assert_allclose(fe.mel_filterbank(), expected.T, atol=1e-8)


def test_stft_and_mel_weights_match_the_reference_graph():
    onnx = pytest.importorskip("onnx", reason="onnx comes with the train extra")
    from onnx import numpy_helper

    graph = onnx.load(str(ref.onnx_files()["melspectrogram.onnx"])).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    real, imag = fe.stft_basis()
    np.testing.assert_allclose(real, weights["0.stft.conv_real.weight"][:, 0], atol=1e-7)
    np.testing.assert_allclose(imag, weights["0.stft.conv_imag.weight"][:, 0], atol=1e-7)
    np.testing.assert_allclose(fe.mel_filterbank(), weights["1.melW"], atol=1e-7)


def test_frame_counts():
    assert fe.num_frames(511) == 0
    assert fe.num_frames(512) == 1
    assert fe.num_frames(512 + 160) == 2
    assert fe.log_mel(np.zeros(100, np.float32)).shape == (0, 32)
    assert fe.CONTEXT_SAMPLES == 11232


@needs_shared_data
def test_reference_clamp_reproduces_reference_mel_on_real_clips():
    onnx_ref = ref.OnnxReference()
    clips = [c for c in shared_data.parity_clips() if c.role != "noise"][::6]
    assert len(clips) >= 20
    from wakeword.audio import load_audio

    for clip in clips:
        audio = load_audio(clip.path)
        ours, theirs = fe.log_mel(audio, clamp="reference"), onnx_ref.features(audio)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() < 2e-4, clip.path


def test_floor_is_per_frame_and_fixed():
    audio = speechlike(2.0)
    features = fe.log_mel(audio)
    floor = fe.FLOOR_DB * fe.FEATURE_SCALE + fe.FEATURE_OFFSET
    assert features.min() == pytest.approx(floor)
    silent = fe.log_mel(np.zeros(SR, np.float32))
    assert np.all(silent == np.float32(floor))
    # A frame depends on its own samples only: a slice gives the same frames as the whole.
    part = fe.log_mel(audio[160 * 50 : 160 * 50 + 512 + 160 * 30])
    np.testing.assert_array_equal(part, features[50:81])


def test_reference_clamp_depends_on_the_buffer_and_ours_does_not():
    audio = np.concatenate([tone(1.0, amplitude=0.001), tone(1.0, amplitude=0.9)])
    quiet = audio[:SR]
    ours_alone, ours_within = fe.log_mel(quiet), fe.log_mel(audio)[: len(fe.log_mel(quiet))]
    np.testing.assert_array_equal(ours_alone, ours_within)
    theirs_alone = fe.log_mel(quiet, clamp="reference")
    theirs_within = fe.log_mel(audio, clamp="reference")[: len(theirs_alone)]
    assert np.abs(theirs_alone - theirs_within).max() > 1.0


@pytest.mark.parametrize("seconds", [0.0, 0.05, 0.079, 0.08, 1.0, 10.0, 10.07])
def test_one_embedding_per_80_ms(seconds):
    n = round(seconds * SR)
    out = fe.FeatureStream(lambda f: np.zeros((fe.num_embeddings(len(f)), 96), np.float32)).push(np.zeros(n))
    assert out.shape == (n // fe.CHUNK_SAMPLES, 96)


def chunked(stream: fe.FeatureStream, audio: np.ndarray, sizes) -> np.ndarray:
    out, i = [], 0
    for size in sizes:
        if i >= len(audio):
            break
        out.append(stream.push(audio[i : i + size]))
        i += size
    return np.concatenate(out)


def check_streaming(audio: np.ndarray, encoder) -> None:
    whole = fe.embed_audio(audio, encoder)
    assert len(whole) == len(audio) // fe.CHUNK_SAMPLES
    rng = np.random.default_rng(0)
    for sizes in ([1280] * 10_000, [1000] * 10_000, [333] * 10_000, rng.integers(1, 4000, 10_000)):
        out = chunked(fe.FeatureStream(encoder), audio, sizes)
        assert out.shape == whole.shape
        assert np.abs(out - whole).max() <= 1e-5


def test_streaming_equals_whole_on_synthetic_audio(encoder):
    check_streaming(speechlike(6.0), encoder)


def test_streaming_equals_whole_on_real_speech(encoder, real_speech):
    assert len(real_speech) > 20 * SR
    check_streaming(real_speech, encoder)


@pytest.mark.parametrize("seed", [0, 1])
def test_chunk_fast_path_is_bit_identical_to_log_mel(seed):
    """FrameStream's preallocated path for 1280-sample pushes (the runtime's) returns exactly log_mel's
    frames, also when pushes of other sizes come in between; so does mel_power's strided framing."""
    rng = np.random.default_rng(seed)
    audio = np.concatenate([speechlike(6.0, seed=seed), np.zeros(5000, np.float32), tone(2.0, amplitude=0.9)])
    expected = fe.log_mel(np.concatenate([np.zeros(fe.N_FFT - fe.HOP_LENGTH, np.float32), audio]))
    stream, out, i = fe.FrameStream(), [], 0
    while i < len(audio):
        n = fe.CHUNK_SAMPLES if rng.random() < 0.8 else int(rng.integers(1, 3000))
        out.append(stream.push(audio[i : i + n]))
        i += n
    out = np.concatenate(out)
    assert len(out) == len(expected)
    np.testing.assert_array_equal(out, expected)
    whole = np.concatenate([np.zeros(fe.N_FFT - fe.HOP_LENGTH, np.float32), audio])
    strided = np.lib.stride_tricks.sliding_window_view(whole, fe.N_FFT)[:: fe.HOP_LENGTH]
    np.testing.assert_array_equal(fe.frame_view(whole, len(strided)), strided)


def test_chunk_fast_path_returns_fresh_arrays():
    stream = fe.FrameStream()
    first = stream.push(speechlike(0.08, seed=3))
    kept = first.copy()
    stream.push(speechlike(0.08, seed=4))
    np.testing.assert_array_equal(first, kept)


def test_embedding_k_only_sees_audio_before_its_end(encoder):
    audio = speechlike(3.0, seed=1)
    base = fe.embed_audio(audio, encoder)
    k = 10
    changed = audio.copy()
    changed[fe.CHUNK_SAMPLES * (k + 1) :] = 0.5  # alter everything after embedding k's end
    after = fe.embed_audio(changed, encoder)
    np.testing.assert_array_equal(after[: k + 1], base[: k + 1])
    assert np.abs(after[k + 1] - base[k + 1]).max() > 0
