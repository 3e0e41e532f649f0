"""ONNX export of a trained wake word: the shared encoder bottom and the per-wake-word top, streaming.

    MODEL_DIR/bottom.onnx    8 mel frames + 9 caches -> 2 split positions + caches   (same for every wake word)
    MODEL_DIR/top.onnx       2 split positions + 2 caches + 15 embeddings -> score + state
    MODEL_DIR/*.int8.onnx    the same, int8 (static QDQ quantisation calibrated on audio), with --int8

Opset 17, exported by torch's TorchScript exporter (no onnxscript needed). Every graph carries its
role, the feature version and the package version as metadata, which the runtime checks. The mel
front end is not in the graphs: the runtime uses wakeword.frontend, the same numpy code training uses.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from wakeword import FEATURE_VERSION, __version__
from wakeword.errors import WakewordError
from wakeword.streaming import StreamingBottom, StreamingTop

log = logging.getLogger(__name__)

OPSET = 17
BOTTOM, TOP = "bottom.onnx", "top.onnx"


def int8_name(name: str) -> str:
    return name.replace(".onnx", ".int8.onnx")


def export_module(
    module: torch.nn.Module, example: tuple[torch.Tensor, ...], inputs: list[str], outputs: list[str], role: str
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, and enough
        torch.onnx.export(
            module,
            example,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    for key, value in {
        "wakeword_role": role,
        "feature_version": str(FEATURE_VERSION),
        "wakeword_version": __version__,
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def export_bottom(bottom: StreamingBottom) -> onnx.ModelProto:
    caches = bottom.initial_state()
    names = [f"cache_{i}" for i in range(len(caches))]
    example = (torch.zeros(1, 8, 32), *caches)
    return export_module(bottom, example, ["frames", *names], ["acts", *[n + "_out" for n in names]], "bottom")


def export_top(top: StreamingTop, bottom: StreamingBottom) -> onnx.ModelProto:
    state = top.initial_state(bottom)
    names = [f"cache_{i}" for i in range(len(state) - 1)] + ["embeddings"]
    example = (torch.zeros(1, 96, 2, 2), *state)
    return export_module(top, example, ["acts", *names], ["score", *[n + "_out" for n in names]], "top")


def calibration_inputs(model_dir: Path, audio: np.ndarray) -> dict[str, list[dict[str, np.ndarray]]]:
    """The inputs each graph sees when the fp32 pair streams `audio`: what int8 calibration needs."""
    from wakeword.runtime import WakeWordModel, run_bottom_steps

    model = WakeWordModel.load(model_dir, providers=["CPUExecutionProvider"], int8=False)
    bottom_feeds, top_feeds = run_bottom_steps(model, audio)
    return {"bottom": bottom_feeds, "top": top_feeds}


class FeedReader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantize(fp32: Path, feeds: list[dict[str, np.ndarray]], out: Path) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    quantize_static(
        str(fp32),
        str(out),
        FeedReader(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        # State tensors pass through unquantised: re-quantising them every step would compound error.
        nodes_to_exclude=[],
        extra_options={"ForceQuantizeNoInputCheck": False},
    )
    model = onnx.load(str(out))
    for key, value in {
        "wakeword_role": onnx.load(str(fp32)).metadata_props[0].value,
        "feature_version": str(FEATURE_VERSION),
        "wakeword_version": __version__,
        "quantization": "int8 static QDQ",
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(out))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_model(model_dir: Path, int8: bool = False, calibration_audio: np.ndarray | None = None) -> dict:
    """Write bottom.onnx and top.onnx (and int8 variants) into model_dir; record them in card.json."""
    from wakeword.train import CARD, load_model

    net, card = load_model(model_dir)
    from wakeword.encoder import load_encoder

    encoder = load_encoder()
    bottom, top = StreamingBottom(encoder).eval(), StreamingTop(net).eval()
    onnx.save(export_bottom(bottom), str(model_dir / BOTTOM))
    onnx.save(export_top(top, bottom), str(model_dir / TOP))
    files = {BOTTOM: sha256(model_dir / BOTTOM), TOP: sha256(model_dir / TOP)}
    if int8:
        if calibration_audio is None:
            calibration_audio = default_calibration_audio(card["phrase"])
        feeds = calibration_inputs(model_dir, calibration_audio)
        for name, role in ((BOTTOM, "bottom"), (TOP, "top")):
            quantize(model_dir / name, feeds[role], model_dir / int8_name(name))
            files[int8_name(name)] = sha256(model_dir / int8_name(name))
    card["export"] = {"opset": OPSET, "files": files, "bottom_shared_sha256": files[BOTTOM]}
    (model_dir / CARD).write_text(json.dumps(card, indent=2, default=float) + "\n")
    return card["export"]


def default_calibration_audio(phrase: str, seconds: float = 60.0) -> np.ndarray:
    """Speech for int8 calibration when none is given: the phrase and sentences in a few voices, with noise."""
    from wakeword import tts
    from wakeword.train import general_sentences

    voices = tts.list_voices("negative", variations=False)[:6]
    if not voices:
        raise WakewordError("int8 calibration needs audio: pass some, or install the TTS voices (make setup)")
    texts = [phrase, *general_sentences()[:12]]
    clips = [audio for _, _, audio in tts.synthesize_many([(t, v) for t in texts for v in voices[:2]], progress=False)]
    rng = np.random.default_rng(0)
    stream = np.concatenate([np.concatenate([c, np.zeros(int(0.3 * 16000), np.float32)]) for c in clips])
    stream = stream[: int(seconds * 16000)] * 0.5
    return (stream + rng.normal(0, 0.003, len(stream))).astype(np.float32)
