"""The ported encoder: same numbers as both reference runtimes, reproducible weights, clear load errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from tests.conftest import needs_shared_data, speechlike
from tools import reference_models as ref
from tools import shared_data
from wakeword import frontend as fe
from wakeword.encoder import CARD_FILE, MODELS_DIR, WEIGHTS_FILE, SpeechEmbedding, load_encoder
from wakeword.errors import ModelError


def test_shape_and_size():
    model = SpeechEmbedding()
    assert sum(p.numel() for p in model.parameters()) == 328_128
    out = model(torch.zeros(2, 76 + 8 * 5, 32))
    assert out.shape == (2, 6, 96)
    with pytest.raises(ValueError, match="at least 76"):
        model(torch.zeros(1, 75, 32))


def test_sequence_equals_sliding_windows(encoder):
    features = fe.log_mel(speechlike(3.0))
    whole = encoder(features)
    windows = np.concatenate([encoder(w) for w in ref.windows(features)])
    np.testing.assert_allclose(whole, windows, atol=1e-5, rtol=0)


def test_matches_references_on_random_windows(encoder):
    wins = np.random.default_rng(3).uniform(-8, 9, (16, 76, 32)).astype(np.float32)
    ours = np.concatenate([encoder(w) for w in wins])
    for reference in (ref.OnnxReference(), ref.TfliteReference()):
        assert np.abs(ours - reference.embed_windows(wins)).max() < 2e-4


@needs_shared_data
def test_parity_on_real_clips():
    """The parity report's own measurement, over >= 100 real clips, against the issue's targets."""
    from tools.parity_report import measure

    clips = shared_data.parity_clips()
    results = measure(clips)
    assert results["clips"]["speech"] >= 100 and results["speakers_or_contributors"] >= 20
    speech = results["figures"]["speech"]
    for name in ("pipeline_vs_onnx", "pipeline_vs_tflite", "encoder_vs_onnx", "encoder_vs_tflite"):
        assert speech[name]["cosine_mean"] >= 0.999, name
        assert speech[name]["cosine_min"] >= 0.99, name
        assert speech[name]["max_abs"] < 1e-2, name
    assert speech["mel_vs_onnx"]["max_abs"] < 2e-4
    noise = results["figures"]["noise"]
    assert noise["pipeline_vs_onnx"]["cosine_min"] >= 0.99


def test_conversion_is_reproducible():
    """Converting the reference file again gives exactly the shipped weights."""
    from tools.convert_encoder import SOURCE_FILE, convert

    source = ref.onnx_files()[SOURCE_FILE]
    assert ref.sha256(source) == ref.REFERENCE_SHA256[SOURCE_FILE]
    shipped = load_encoder().state_dict()
    fresh = convert(source)
    assert shipped.keys() == fresh.keys()
    for key in shipped:
        assert torch.equal(shipped[key], fresh[key]), key
    card = json.loads((MODELS_DIR / CARD_FILE).read_text())
    assert card["weights"]["sha256"] == ref.sha256(MODELS_DIR / WEIGHTS_FILE)
    assert card["source"]["sha256"] == ref.REFERENCE_SHA256[SOURCE_FILE]
    assert card["licence"] == "Apache-2.0"


@pytest.fixture
def models_copy(tmp_path):
    for name in (WEIGHTS_FILE, CARD_FILE):
        shutil.copy(MODELS_DIR / name, tmp_path / name)
    return tmp_path


def test_truncated_weights_are_refused(models_copy):
    path = models_copy / WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_encoder(models_copy)


def test_weights_from_another_feature_version_are_refused(models_copy):
    card = json.loads((models_copy / CARD_FILE).read_text())
    card["feature_version"] = 999
    (models_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="feature version 999"):
        load_encoder(models_copy)


def test_missing_weights(tmp_path):
    with pytest.raises(ModelError, match="weights missing"):
        load_encoder(tmp_path)


def test_foreign_weights_are_refused(models_copy):
    from safetensors.torch import save_file

    save_file({"something.else": torch.zeros(3)}, str(models_copy / WEIGHTS_FILE))
    with pytest.raises(ModelError, match="do not fit"):
        load_encoder(models_copy)
