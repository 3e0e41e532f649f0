"""ONNX export of a trained wake word: the shared encoder bottom and the per-wake-word top, streaming.

    MODEL_DIR/bottom.onnx    frames (1, 8, 32) + state (8896,) -> acts (1, 96, 2, 2) + state   (same for every word
                             but a 'full' one, whose bottom is its own)
    MODEL_DIR/top.onnx       acts + state (1, 1600) -> scores (1,) + state                   (conv head)
                             acts + state (1984,) -> scores (1,) + state                     (GRU head)
    MODEL_DIR/*.int8.onnx    with --int8: the bottom (and a GRU top) static QDQ int8 calibrated on audio; a
                             conv top with int8 weights and fp32 arithmetic (it stays stackable)

Opset 17. The bottom (and a GRU head's top) are exported by torch's TorchScript exporter from
wakeword.streaming; a conv head's top is written by the runtime's own conv_top_graph from the weights
(conv_top_weights), because the runtime stacks the tops of all conv-head wake words into one graph
and reads their weights back from these files. Every graph carries its role, the feature version,
the graph (signature) version, the package version and its state layout as metadata; the runtime
checks them. The mel front end is not in the graphs: the runtime uses wakeword.frontend, the same
numpy code training uses.
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
from wakeword.frontend import CHUNK_SAMPLES
from wakeword.runtime import CONV_TOP_KIND, CONV_TOP_STATE, GRAPH_VERSION, conv_top_graph
from wakeword.server import SERVER
from wakeword.streaming import BatchedStep, StateLayout, StreamingBottom, StreamingTop, conv_top_weights

log = logging.getLogger(__name__)

OPSET = 17
BOTTOM, TOP = "bottom.onnx", "top.onnx"


def int8_name(name: str) -> str:
    return name.replace(".onnx", ".int8.onnx")


def set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    """Replace the model's metadata with `values` (one entry per key)."""
    del model.metadata_props[:]
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def export_module(
    module: torch.nn.Module,
    example: tuple[torch.Tensor, ...],
    inputs: list[str],
    outputs: list[str],
    role: str,
    layout: StateLayout,
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is deprecated, and enough
        # The GRU's trace notes (batch size fixed at 1, shape checks become constants) are what we want.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*", category=UserWarning)
        torch.onnx.export(
            module,
            example,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buffer.getvalue())
    set_metadata(model, graph_metadata(role, layout))
    onnx.checker.check_model(model)
    return model


def graph_metadata(role: str, layout: StateLayout) -> dict[str, str]:
    """What the runtime checks (role, versions) and what tools read (where each cache sits in the state)."""
    return {
        "wakeword_role": role,
        "feature_version": str(FEATURE_VERSION),
        "wakeword_version": __version__,
        "graph_version": str(GRAPH_VERSION),
        "state_layout": json.dumps(layout.as_json()),
    }


def export_bottom(bottom: StreamingBottom) -> onnx.ModelProto:
    example = (torch.zeros(1, 8, 32), bottom.initial_state())
    return export_module(bottom, example, ["frames", "state"], ["acts", "state_out"], "bottom", bottom.layout)


def export_top(top: StreamingTop, bottom: StreamingBottom, int8: bool = False) -> onnx.ModelProto:
    """The wake word's top. For a conv head, the graph the runtime stacks, written by the runtime's own
    conv_top_graph (W = 1); int8 stores its weight matrices as int8 with a scale per output channel
    (the arithmetic stays fp32: these are memory-bound matrix-vector products, where static int8 with
    its quantise/requantise steps measured slower than fp32). For a GRU head, the torch module's graph,
    which runs on its own (int8: static QDQ, see quantize)."""
    if not top.streaming_head:
        example = (torch.zeros(1, 96, 2, 2), top.initial_state(bottom))
        return export_module(top, example, ["acts", "state"], ["scores", "state_out"], "top", top.layout)
    layout = StateLayout(tuple(CONV_TOP_STATE), tuple(CONV_TOP_STATE.values()))
    metadata = graph_metadata("top", layout) | {"top_kind": CONV_TOP_KIND}
    if int8:
        metadata["quantization"] = "int8 weights, one scale per output channel; fp32 arithmetic"
    model = onnx.load_from_string(conv_top_graph([conv_top_weights(top)], metadata, int8=int8))
    onnx.checker.check_model(model)
    return model


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
        # The state is quantised too. That does not compound: re-rounding a value onto the grid it is
        # already on changes nothing, and the bottom's caches are replaced every step anyway.
        nodes_to_exclude=[],
        extra_options={"ForceQuantizeNoInputCheck": False},
    )
    model = onnx.load(str(out))
    source = {p.key: p.value for p in onnx.load(str(fp32)).metadata_props}
    # Not "top_kind": an int8 top runs as its own graph, it is not stacked with the fp32 tops.
    kept = {k: v for k, v in source.items() if k != "top_kind"}
    set_metadata(model, kept | {"quantization": "int8 static QDQ"})
    onnx.save(model, str(out))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def export_model(model_dir: Path, int8: bool = False, calibration_audio: np.ndarray | None = None) -> dict:
    """Write bottom.onnx and top.onnx (and int8 variants) into model_dir; record them in card.json."""
    from wakeword.train import CARD, load_model

    net, card = load_model(model_dir)
    from wakeword.encoder import load_encoder

    # A 'full' model carries its own bottom: it is exported instead of the pretrained one, and the
    # runtime (which groups wake words by identical bottom.onnx bytes) then runs it on its own.
    shared = net.bottom is None
    encoder = load_encoder() if shared else net.bottom
    bottom, top = StreamingBottom(encoder).eval(), StreamingTop(net).eval()
    onnx.save(export_bottom(bottom), str(model_dir / BOTTOM))
    onnx.save(export_top(top, bottom), str(model_dir / TOP))
    files = {BOTTOM: sha256(model_dir / BOTTOM), TOP: sha256(model_dir / TOP)}
    if int8:
        if calibration_audio is None:
            calibration_audio = default_calibration_audio(card["phrase"])
        feeds = calibration_inputs(model_dir, calibration_audio)
        quantize(model_dir / BOTTOM, feeds["bottom"], model_dir / int8_name(BOTTOM))
        if top.streaming_head:
            onnx.save(export_top(top, bottom, int8=True), str(model_dir / int8_name(TOP)))
        else:
            quantize(model_dir / TOP, feeds["top"], model_dir / int8_name(TOP))
        for name in (BOTTOM, TOP):
            files[int8_name(name)] = sha256(model_dir / int8_name(name))
    card["export"] = {
        "opset": OPSET,
        "files": files,
        "bottom_shared": shared,
        "bottom_shared_sha256": files[BOTTOM] if shared else None,
    }
    (model_dir / CARD).write_text(json.dumps(card, indent=2, default=float) + "\n")
    return card["export"]


def export_server(model_dir: Path) -> Path:
    """Write MODEL_DIR/server.onnx: the wake word for B streams at once, PCM to score (wakeword.server).

    audio (B, 1280) + state (B, S) -> scores (B,) + state (B, S), B free. The mel front end is in the
    graph (StreamingMel), so that a GPU runs the whole step; the state layout is in its metadata.
    """
    from wakeword.encoder import load_encoder
    from wakeword.train import CARD, load_model

    net, card = load_model(model_dir)
    bottom = StreamingBottom(load_encoder() if net.bottom is None else net.bottom).eval()
    step = BatchedStep(bottom, StreamingTop(net).eval()).eval()
    example = (torch.zeros(2, CHUNK_SAMPLES), step.initial_state().repeat(2, 1))  # 2 streams; any number runs
    names = ["audio", "state"], ["scores", "state_out"]
    axes = {name: {0: "streams"} for name in names[0] + names[1]}
    model = export_module(step, example, *names, "server", step.layout, dynamic_axes=axes)
    path = model_dir / SERVER
    onnx.save(model, str(path))
    card.setdefault("export", {}).setdefault("files", {})[SERVER] = sha256(path)
    (model_dir / CARD).write_text(json.dumps(card, indent=2, default=float) + "\n")
    return path


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
