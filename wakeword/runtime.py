"""The streaming detector: numpy + onnxruntime, no torch. What `detect`, `score`, `eval` and `listen` run.

    PCM chunks (any size, int16 or float32)
      -> FrameStream (wakeword.frontend: the training front end)       8 mel frames per 80 ms
      -> ONE onnxruntime run per chunk for all wake words sharing a    1 score per word per 80 ms
         bottom: bottom.onnx and the stacked tops of every conv-head
         word, merged into one graph here (merged_graph); a top that
         cannot be stacked (GRU head, a foreign graph) runs its own
         top.onnx after it
      -> decision: optional moving average, threshold, refractory         Detection

Each graph takes its input and flat states, and returns its output and the new states
(wakeword.streaming); the runtime only hands the states back at the next step. Every graph starts
from the state silence leaves, the state the offline scorer assumes, so a file scored here equals
the training code's scores step by step. That state is found once (silence is run through the graphs
until their state stops changing), kept on the WakeWordModels, and restored by reset().

Why stack the tops: per 80 ms a wake word's top is ~0.3 M multiply-adds on 0.5 MB of weights, so its
cost is onnxruntime's per-node overhead (~50 nodes) and the weights' trip from memory, not
arithmetic. Stacked, N words share every node and each layer is one batched matrix-vector product
over all words' weights: a word then costs about what moving its weights costs. Why merge them with
the bottom: one run instead of two saves the call and keeps the step's data in the cache. The graphs
are written here as ONNX bytes by a small protobuf reader/writer: the runtime does not depend on the
onnx package (~12 MB of memory). tools/bench_runtime.py measures the result.

int8 (Detector(int8=True)): bottom.int8.onnx, static int8 (compute-bound convolutions, which int8
arithmetic speeds up), and top.int8.onnx, whose conv-head form stores int8 weights with fp32
arithmetic, so that it still stacks.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from wakeword import FEATURE_VERSION
from wakeword.audio import SAMPLE_RATE
from wakeword.errors import AudioError, ModelError
from wakeword.frontend import CHUNK_SAMPLES, FEATURE_OFFSET, FEATURE_SCALE, FLOOR_DB, N_MELS, FrameStream

log = logging.getLogger(__name__)

CARD = "card.json"
BOTTOM, TOP = "bottom.onnx", "top.onnx"
INT8_BOTTOM, INT8_TOP = "bottom.int8.onnx", "top.int8.onnx"
# The graphs' signature: input + one flat state in, output + state out. wakeword.export writes it into
# every graph; graphs of another version are refused with a "re-export" message.
GRAPH_VERSION = 2
# Silence steps run at most to reach the silence state: the longest chain of caches spans 25 steps.
MAX_SETTLE_STEPS = 64
SILENCE_FRAME = FLOOR_DB * FEATURE_SCALE + FEATURE_OFFSET
ADAPTATION_KEY = "input_adaptation"  # card entry `wakeword adapt` writes (wakeword/channel.py)
DEFAULT_REFRACTORY_S = 2.0
STEP_S = CHUNK_SAMPLES / SAMPLE_RATE
OPSET = 17


@dataclass
class Detection:
    phrase: str
    score: float
    end_s: float  # end of the 80 ms step whose score crossed the threshold
    start_s: float  # estimated: end minus the phrase's typical duration (from the card)
    model: str = ""

    def as_dict(self) -> dict:
        return {
            "phrase": self.phrase,
            "start": round(self.start_s, 3),
            "end": round(self.end_s, 3),
            "score": round(self.score, 4),
            "model": self.model,
        }


# ------------------------------------------------------------------------------------------------------
# ONNX bytes: just enough protobuf to read a graph's metadata and weights, and to write a graph.
# Field numbers are onnx.proto's (ModelProto, GraphProto, NodeProto, TensorProto, ...).

_FLOAT, _INT8, _INT64 = 1, 3, 7  # TensorProto.DataType
_DTYPES = {_FLOAT: np.float32, _INT8: np.int8, _INT64: np.int64}


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos, shift = pos + 1, shift + 7
        if byte < 0x80:
            return value, pos


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of a serialised message: an int for varints, bytes for everything else."""
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(data, pos)
        elif wire in (1, 2, 5):
            if wire == 2:
                size, pos = _read_varint(data, pos)
            else:
                size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        yield number, value


def _read_tensor(data: bytes) -> tuple[str, np.ndarray | None]:
    """A TensorProto's name and value: float32, int8 or int64 in raw_data, or float32 in float_data;
    None for anything else (not needed here)."""
    dims: list[int] = []
    name, dtype, raw, floats = "", _FLOAT, None, b""
    for number, value in _fields(data):
        if number == 1:  # dims, packed or not
            dims += [value] if isinstance(value, int) else _packed_varints(value)
        elif number == 2:
            dtype = value
        elif number == 8:
            name = value.decode()
        elif number == 9:
            raw = value
        elif number == 4 and isinstance(value, bytes):  # float_data, packed
            floats += value
    if raw is None and dtype == _FLOAT:
        raw = floats
    if raw is None or dtype not in _DTYPES or len(raw) != math.prod(dims) * np.dtype(_DTYPES[dtype]).itemsize:
        return name, None
    return name, np.frombuffer(raw, _DTYPES[dtype]).reshape(dims).copy()


def _packed_varints(data: bytes) -> list[int]:
    values, pos = [], 0
    while pos < len(data):
        value, pos = _read_varint(data, pos)
        values.append(value)
    return values


def read_graph_info(data: bytes) -> tuple[dict[str, str], bytes]:
    """A serialised ModelProto's metadata, and its graph (serialised GraphProto)."""
    metadata: dict[str, str] = {}
    graph = b""
    for number, value in _fields(data):
        if number == 14:  # metadata_props
            entry = dict(_fields(value))
            metadata[entry.get(1, b"").decode()] = entry.get(2, b"").decode()
        elif number == 7:
            graph = value
    return metadata, graph


def read_initializers(graph: bytes) -> dict[str, np.ndarray]:
    """A serialised GraphProto's float32/int8/int64 initialisers, by name."""
    tensors = {}
    for number, value in _fields(graph):
        if number == 5:
            name, array = _read_tensor(value)
            if array is not None:
                tensors[name] = array
    return tensors


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: ten bytes of two's complement, as protobuf does
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes(number: int, payload: bytes | str) -> bytes:
    payload = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field(number: int, parts: list) -> list:
    """A length-delimited field as parts (bytes or uint8 arrays), not yet joined. Graphs are built
    from parts and joined once, so that each weight is copied once: 20 stacked tops weigh 12 MB, and
    each concatenation on the way cost a copy that the process's peak memory kept (46 MB here)."""
    return [_varint(number << 3 | 2) + _varint(sum(len(p) for p in parts)), *parts]


def _tensor(name: str, array: np.ndarray) -> list:
    dtype = next((code for code, kind in _DTYPES.items() if array.dtype == kind), _INT64)
    dims = b"".join(_int(1, d) for d in array.shape)
    raw = np.ascontiguousarray(array, _DTYPES[dtype]).reshape(-1).view(np.uint8)  # a view: no copy
    return [dims + _int(2, dtype) + _bytes(8, name), *_field(9, [raw])]


def _attribute(name: str, value: int | float | list[int]) -> bytes:
    if isinstance(value, list):  # INTS
        return _bytes(1, name) + b"".join(_int(8, v) for v in value) + _int(20, 7)
    if isinstance(value, float):  # FLOAT
        return _bytes(1, name) + _varint(2 << 3 | 5) + np.float32(value).tobytes() + _int(20, 1)
    return _bytes(1, name) + _int(3, value) + _int(20, 2)  # INT


def _value_info(name: str, shape: list[int]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d)) for d in shape)
    tensor_type = _int(1, _FLOAT) + _bytes(2, dims)
    return _bytes(1, name) + _bytes(2, _bytes(1, tensor_type))


class GraphWriter:
    """Nodes and constants in, a serialised ONNX model out: the runtime's graphs without the onnx package.

    Every name it makes starts with `prefix`, so that its nodes can join another graph's (see merged_graph).
    """

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.nodes: list[bytes] = []
        self.initializers: list[list] = []  # each a _tensor's parts
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{self.prefix}{hint}_{self.count}"

    def const(self, array: np.ndarray, name: str | None = None) -> str:
        name = self.prefix + name if name else self.name("const")
        self.initializers.append(_tensor(name, np.asarray(array)))
        return name

    def op(self, op_type: str, *inputs: str, outputs: int = 1, **attributes: int | float | list[int]) -> str:
        """Add a node; returns its output's name (a list of names when outputs > 1)."""
        names = [self.name(op_type.lower()) for _ in range(outputs)]
        node = b"".join(_bytes(1, i) for i in inputs) + b"".join(_bytes(2, o) for o in names)
        node += _bytes(4, op_type) + b"".join(_bytes(5, _attribute(k, v)) for k, v in attributes.items())
        self.nodes.append(node)
        return names[0] if outputs == 1 else names

    def rename(self, tensor: str, name: str) -> str:
        """Give a tensor a public name (a graph output) through an Identity."""
        self.nodes.append(_bytes(1, tensor) + _bytes(2, name) + _bytes(4, "Identity"))
        return name

    def graph_fields(self) -> list:
        """The nodes and initialisers as GraphProto fields, in parts (see _field)."""
        return [_bytes(1, n) for n in self.nodes] + [part for t in self.initializers for part in _field(5, t)]

    def model(
        self, inputs: list[tuple[str, list[int]]], outputs: list[tuple[str, list[int]]], metadata: dict[str, str]
    ) -> bytes:
        graph = [*self.graph_fields(), _bytes(2, "wakeword")]
        graph += [_bytes(11, _value_info(n, s)) for n, s in inputs]
        graph += [_bytes(12, _value_info(n, s)) for n, s in outputs]
        opset = _bytes(1, "") + _int(2, OPSET)
        props = [_bytes(14, _bytes(1, k) + _bytes(2, v)) for k, v in metadata.items()]
        return b"".join([_int(1, 8), _bytes(2, "wakeword"), *_field(7, graph), _bytes(8, opset), *props])


def _value_info_name(data: bytes) -> str:
    return next((v.decode() for n, v in _fields(data) if n == 1), "")


# ------------------------------------------------------------------------------------------------------
# The conv-head top of N wake words as one graph (the same computation as wakeword.streaming.StreamingTop)

LEAK, ACTIVATION_FLOOR = 0.2, -0.4  # wakeword.encoder's activation: max(leaky_relu(x, 0.2), -0.4)
# Per wake word, in top.onnx (W = 1) and stacked over W words here: name -> the axis words stack on.
CONV_TOP_WEIGHTS = {
    "mel_w": 1,  # (192, 192) the mel convolution on 2 mel positions as one matrix: (mel, ch) -> (mel, ch)
    "mel_b": 0,  # (192,)
    "time_w": 0,  # (96, 288, 1, 1) the time convolution (3 taps x 96 channels per output): a grouped Conv
    "time_b": 0,  # (96,)
    "out_w": 0,  # (1, 288, 96) the encoder's output convolution (3 taps, no bias)
    "h0_w": 0,  # (1, 288, 64) head layer 0 (3 taps x 96), EMBEDDING_SCALE folded in
    "h0_b": 0,  # (1, 1, 64)
    "h1_w": 0,  # (1, 192, 64) head layer 1 (3 taps at dilation 2)
    "h1_b": 0,
    "h2_w": 0,  # (1, 192, 64) head layer 2 (3 taps at dilation 4)
    "h2_b": 0,
    "lin_w": 0,  # (1, 128, 1) the output layer over the last 2 positions
    "lin_b": 0,  # (1, 1, 1)
}
# One word's state: each cache's shape, in order (time-major: the oldest position first).
CONV_TOP_STATE = {
    "time_cache": (2, 2, 96),  # the time convolution's last 2 input positions (time, mel, channel)
    "out_cache": (2, 96),  # the output convolution's last 2 input positions
    "embeddings": (2, 96),  # the last 2 embeddings
    "head_0": (4, 64),  # head layer 0's last 4 outputs
    "head_1": (8, 64),  # head layer 1's last 8 outputs
    "head_2": (1, 64),  # head layer 2's last output
}
CONV_TOP_STATE_SIZE = sum(math.prod(s) for s in CONV_TOP_STATE.values())
CONV_TOP_KIND = "conv-stacked"  # the metadata "top_kind" of a top.onnx that conv_top_graph can stack


# Each weight matrix's output axis: an int8 top.int8.onnx keeps one scale per output channel.
CONV_TOP_OUTPUT_AXIS = {"mel_w": 1, "time_w": 0, "out_w": 2, "h0_w": 2, "h1_w": 2, "h2_w": 2, "lin_w": 2}


def int8_weight(weight: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 with one scale per output channel (max |w| / 127), the scale kept broadcastable."""
    others = tuple(i for i in range(weight.ndim) if i != axis)
    scale = np.abs(weight).max(axis=others, keepdims=True) / np.float32(127.0)
    scale[scale == 0] = 1.0  # an all-zero channel: any scale gives back zeros
    return np.clip(np.round(weight / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


def dequantized(tensors: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    """A weight as top.onnx (float) or top.int8.onnx (NAME_int8 * NAME_scale) stores it, or None."""
    if name in tensors:
        return tensors[name]
    if f"{name}_int8" in tensors and f"{name}_scale" in tensors:
        return tensors[f"{name}_int8"].astype(np.float32) * tensors[f"{name}_scale"]
    return None


def stack_weights(words: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([w[name] for w in words], axis=axis) for name, axis in CONV_TOP_WEIGHTS.items()}


def conv_top_nodes(
    g: GraphWriter, words: list[dict[str, np.ndarray]], acts: str, state: str, int8: bool = False
) -> tuple[str, str]:
    """Add the tops of len(words) conv-head wake words to g: acts (1, 96, 2, 2) + state (W, 1600) -> the
    names of scores (W,) and the new state (W, 1600).

    Every layer is one node for all W words: the mel convolution (its input is shared) one matrix
    product over the words' side-by-side matrices, the time convolution a grouped Conv, the rest
    batched matrix-vector products, the form onnxruntime runs at memory speed. With int8, the weight
    matrices are stored as int8 and a scale per output channel (NAME_int8, NAME_scale), made float by
    a Cast and a Mul that onnxruntime folds into constants when it loads the graph.
    """
    w = len(words)
    weights = {}
    for name, array in stack_weights(words).items():
        if int8 and name in CONV_TOP_OUTPUT_AXIS:
            q, scale = int8_weight(array, CONV_TOP_OUTPUT_AXIS[name])
            weights[name] = g.op(
                "Mul", g.op("Cast", g.const(q, f"{name}_int8"), to=_FLOAT), g.const(scale, f"{name}_scale")
            )
        else:
            weights[name] = g.const(array, name)

    def shape(*dims: int) -> str:
        return g.const(np.array(dims, np.int64))

    def act(x: str) -> str:
        return g.op("Clip", g.op("LeakyRelu", x, alpha=LEAK), g.const(np.array(ACTIVATION_FLOOR, np.float32)))

    def gelu(x: str) -> str:  # erf GELU, written the way onnxruntime's Gelu fusion recognises it
        erf = g.op("Erf", g.op("Div", x, g.const(np.array(math.sqrt(2.0), np.float32))))
        one_plus = g.op("Add", erf, g.const(np.array(1.0, np.float32)))
        return g.op("Mul", g.op("Mul", x, one_plus), g.const(np.array(0.5, np.float32)))

    def window(x: str, start: int, stop: int, step: int = 1) -> str:  # positions start:stop:step of (W, T, ...)
        axis = g.const(np.array([1], np.int64))
        bounds = [g.const(np.array([v], np.int64)) for v in (start, stop, step)]
        return g.op("Slice", x, bounds[0], bounds[1], axis, bounds[2])

    def dense(x: str, layer: str, positions: int, width: int) -> str:  # (W, positions, width) -> (W, 1, out)
        y = g.op("MatMul", g.op("Reshape", x, shape(w, 1, positions * width)), weights[f"{layer}_w"])
        return g.op("Add", y, weights[f"{layer}_b"]) if f"{layer}_b" in weights else y

    sizes = [math.prod(s) for s in CONV_TOP_STATE.values()]
    parts = g.op("Split", state, g.const(np.array(sizes, np.int64)), axis=1, outputs=len(sizes))
    cache = {n: g.op("Reshape", p, shape(w, *s)) for (n, s), p in zip(CONV_TOP_STATE.items(), parts, strict=True)}

    # Encoder top: mel convolution (shared input: one matrix product), time convolution, max-pool.
    rows = g.op("Reshape", g.op("Transpose", acts, perm=[0, 2, 3, 1]), shape(2, 192))  # (time, mel * ch)
    y = act(g.op("Add", g.op("MatMul", rows, weights["mel_w"]), weights["mel_b"]))  # (2, W * 192)
    y = g.op("Transpose", g.op("Reshape", y, shape(2, w, 2, 96)), perm=[1, 0, 2, 3])  # (W, time, mel, ch)
    x = g.op("Concat", cache["time_cache"], y, axis=1)  # (W, 4, 2, 96): 2 cached + 2 new positions
    taps = g.op("Concat", window(x, 0, 3), window(x, 1, 4), axis=2)  # (W, tap, window, ch)
    taps = g.op("Reshape", g.op("Transpose", taps, perm=[0, 1, 3, 2]), shape(1, w * 288, 1, 4))
    z = act(g.op("Conv", taps, weights["time_w"], weights["time_b"], group=w))  # (1, W * 96, 1, 4 windows)
    pooled = g.op("Reshape", g.op("ReduceMax", z, axes=[3], keepdims=0), shape(w, 1, 96))  # the (2, 2) max-pool
    x2 = g.op("Concat", cache["out_cache"], pooled, axis=1)  # (W, 3, 96)
    embedding = dense(x2, "out", 3, 96)  # (W, 1, 96)
    # Conv head: one new position per layer, from the cached past positions of its input.
    x3 = g.op("Concat", cache["embeddings"], embedding, axis=1)  # (W, 3, 96)
    h0 = gelu(dense(x3, "h0", 3, 96))
    y0 = g.op("Concat", cache["head_0"], h0, axis=1)  # (W, 5, 64)
    h1 = gelu(dense(window(y0, 0, 5, 2), "h1", 3, 64))  # dilation 2
    y1 = g.op("Concat", cache["head_1"], h1, axis=1)  # (W, 9, 64)
    h2 = gelu(dense(window(y1, 0, 9, 4), "h2", 3, 64))  # dilation 4
    y2 = g.op("Concat", cache["head_2"], h2, axis=1)  # (W, 2, 64)
    scores = g.op("Reshape", g.op("Sigmoid", dense(y2, "lin", 2, 64)), shape(w))
    new = [window(x, 2, 4), window(x2, 1, 3), window(x3, 1, 3), window(y0, 1, 5), window(y1, 1, 9), h2]
    flat = [g.op("Reshape", t, shape(w, size)) for t, size in zip(new, sizes, strict=True)]
    return scores, g.op("Concat", *flat, axis=1)


def conv_top_graph(
    words: list[dict[str, np.ndarray]], metadata: dict[str, str] | None = None, int8: bool = False
) -> bytes:
    """The tops of len(words) conv-head wake words as a graph of their own (top.onnx is this with W = 1,
    top.int8.onnx with int8 weights): acts (1, 96, 2, 2) + state (W, 1600) -> scores (W,) + state_out."""
    g = GraphWriter()
    scores, state = conv_top_nodes(g, words, "acts", "state", int8)
    g.rename(scores, "scores")
    g.rename(state, "state_out")
    w = len(words)
    inputs = [("acts", [1, 96, 2, 2]), ("state", [w, CONV_TOP_STATE_SIZE])]
    return g.model(inputs, [("scores", [w]), ("state_out", [w, CONV_TOP_STATE_SIZE])], metadata or {})


def merged_graph(bottom: bytes, words: list[dict[str, np.ndarray]], keep_acts: bool) -> bytes:
    """bottom.onnx and the stacked tops of `words` as ONE graph, run once per chunk:

        frames + state (bottom) + top_state (W, 1600) -> scores (W,) + state_out + top_state_out [+ acts]

    One run instead of two saves the second call's overhead and, more, keeps the step's data hot in
    the cache between the bottom and the tops. `acts` stays an output when other tops need it.
    """
    g = GraphWriter(prefix="top/")  # the exporter's names start with "/", "onnx::" or a module path
    scores, state = conv_top_nodes(g, words, "acts", "top_state")
    g.rename(scores, "scores")
    g.rename(state, "top_state_out")
    w = len(words)
    model, bottom_nodes, bottom_rest = [], [], []
    for number, value in _fields(bottom):
        if number == 7:  # the bottom's graph: its nodes, initialisers, inputs and outputs stay as they are
            for graph_number, graph_value in _fields(value):
                if graph_number == 12 and _value_info_name(graph_value) == "acts" and not keep_acts:
                    continue
                if graph_number == 1:
                    bottom_nodes.append(_bytes(1, graph_value))
                else:
                    bottom_rest.append(_bytes(graph_number, graph_value))
        elif number != 14:  # ir_version, producer, opset_import (metadata_props are the bottom's own)
            model.append(_bytes(number, value) if isinstance(value, bytes) else _int(number, value))
    # The bottom's nodes first: they make "acts", and ONNX wants the nodes in order.
    graph = [*bottom_nodes, *g.graph_fields(), *bottom_rest]
    graph.append(_bytes(11, _value_info("top_state", [w, CONV_TOP_STATE_SIZE])))
    graph.append(_bytes(12, _value_info("scores", [w])))
    graph.append(_bytes(12, _value_info("top_state_out", [w, CONV_TOP_STATE_SIZE])))
    return b"".join([*model, *_field(7, graph)])


# ------------------------------------------------------------------------------------------------------
# Sessions


def pick_providers(providers: str | list[str] = "auto") -> list[str]:
    """'auto': CUDA when onnxruntime-gpu is installed and sees a GPU, else CPU. A list is used as given."""
    if providers == "auto":
        available = ort.get_available_providers()
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if "CUDAExecutionProvider" in available
            else ["CPUExecutionProvider"]
        )
    if isinstance(providers, str):
        providers = [providers]
    if "CUDAExecutionProvider" in providers:
        preload_cuda()
    return list(providers)


@functools.cache
def preload_cuda() -> None:
    """Load CUDA and cuDNN from their pip packages (nvidia-*), where onnxruntime-gpu looks for them only
    when asked; without it the CUDA provider fails to load in a process that has not imported torch."""
    if hasattr(ort, "preload_dlls"):
        try:
            ort.preload_dlls()
        except Exception as exc:  # a system-wide CUDA install still works: onnxruntime then says what is missing
            log.info("onnxruntime.preload_dlls: %s", exc)


def session_options(threads: int = 1) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    # One stream's step is tiny: threads cost more than they give, and the daemon must stay light. The
    # server form (wakeword.server) on a CPU batches enough streams to use more.
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # NCHWc convolutions: -20 % here
    opts.log_severity_level = 3
    return opts


def new_session(model: str | bytes, providers: list[str], where: str, threads: int = 1) -> ort.InferenceSession:
    try:
        session = ort.InferenceSession(model, session_options(threads), providers=providers)
    except Exception as exc:  # onnxruntime raises several types for truncated or foreign files
        raise ModelError(f"{where}: not a loadable ONNX graph ({str(exc).splitlines()[0][:160]})") from None
    if providers == ["CPUExecutionProvider"] and getattr(session, "_model_bytes", None) is not None:
        # onnxruntime's Python wrapper keeps the model's bytes for the life of the session ("This is bad
        # as we're holding the memory indefinitely", says its source), only to rebuild the session on
        # another provider when one fails; CPU-only has none to fall back to. 3.3 MB of the daemon's
        # resident memory with 5 wake words (tools/bench_runtime.py).
        session._model_bytes = None
    return session


def check_metadata(path: Path, role: str, meta: dict[str, str]) -> None:
    if meta.get("wakeword_role") != role:
        raise ModelError(f"{path}: not a wakeword {role} graph (metadata role {meta.get('wakeword_role')!r})")
    if meta.get("feature_version") != str(FEATURE_VERSION):
        raise ModelError(
            f"{path}: made for feature version {meta.get('feature_version')}, this runtime uses "
            f"{FEATURE_VERSION}; re-export or retrain the model"
        )
    if meta.get("graph_version") != str(GRAPH_VERSION):
        raise ModelError(
            f"{path}: exported by another wakeword version (graph version {meta.get('graph_version', '1')}, "
            f"this runtime reads {GRAPH_VERSION}); re-export with 'wakeword export {path.parent}'"
        )


def read_graph(path: Path, role: str) -> tuple[bytes, dict[str, np.ndarray]]:
    """A graph file's bytes, after checking its metadata (role, versions), and its initialisers if it is
    a top the runtime can stack (else {})."""
    if not path.exists():
        raise ModelError(f"{path}: missing; run 'wakeword export {path.parent}'")
    data = path.read_bytes()
    try:
        meta, graph = read_graph_info(data)
        check_metadata(path, role, meta)
        return data, read_initializers(graph) if meta.get("top_kind") == CONV_TOP_KIND else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not a loadable ONNX graph ({exc})") from None


def stackable_weights(path: Path) -> dict[str, np.ndarray]:
    """A top graph's weights if conv_top_graph can stack it with others (a conv head's top.onnx), else {}."""
    _, tensors = read_graph(path, "top")
    weights = {n: dequantized(tensors, n) for n in CONV_TOP_WEIGHTS}
    return weights if all(v is not None for v in weights.values()) else {}


def open_session(path: Path, role: str, providers: list[str]) -> ort.InferenceSession:
    data, _ = read_graph(path, role)
    session = new_session(data, providers, str(path))
    names = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
    expected = ([INPUT[role], "state"], [OUTPUT[role], "state_out"])
    if names != expected:
        raise ModelError(f"{path}: graph inputs/outputs {names}, expected {expected}; re-export it")
    return session


INPUT = {"bottom": "frames", "top": "acts"}
OUTPUT = {"bottom": "acts", "top": "scores"}


class _Run:
    """One graph run per 80 ms chunk: its input (frames or acts) and its states in, the outputs wanted
    and the new states out. A state input NAME comes back as the output NAME_out and is handed back at
    the next step; it is never written in place, so reset() shares the silence snapshot, no copy."""

    def __init__(
        self, session: ort.InferenceSession, states: list[str], wanted: list[str], silence: list | None
    ) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name
        self.state_names = states
        self.wanted = wanted
        self.fetch = [*wanted, *(f"{n}_out" for n in states)]
        shapes = {i.name: i.shape for i in session.get_inputs()}
        self.silence = silence
        self.states = silence if silence is not None else [np.zeros(shapes[n], np.float32) for n in states]

    def step(self, x: np.ndarray) -> list[np.ndarray]:
        feed = dict(zip(self.state_names, self.states, strict=True))
        feed[self.input] = x
        out = self.session.run(self.fetch, feed)
        self.states = out[len(self.wanted) :]
        return out[: len(self.wanted)]

    def reset(self) -> None:
        self.states = self.silence


# ------------------------------------------------------------------------------------------------------
# Models and the detector


@dataclass
class WakeWordModel:
    """One exported model folder: its card and its graphs (with their silence states, once found)."""

    path: Path
    card: dict
    bottom_path: Path
    top_path: Path
    providers: list[str]
    top_weights: dict[str, np.ndarray]  # a conv-head top's weights (it joins the stacked graph), else {}
    top: ort.InferenceSession | None = None  # the top's own session, when it runs alone
    bottom: ort.InferenceSession | None = None  # opened by the first Detector that needs it
    silence: dict[str, np.ndarray] = field(default_factory=dict)  # "bottom", "top": the silence states
    # Graphs this model's Detectors built (the bottom merged with stacked tops), by the words they hold:
    # a Detector made again for the same words (one per file, say) reuses them.
    merged: dict[tuple, ort.InferenceSession] = field(default_factory=dict)

    @property
    def phrase(self) -> str:
        return self.card["phrase"]

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @property
    def smoothing(self) -> int:
        """Steps the decision averages (card "decision"; 1, each step alone, for cards without it)."""
        return int(self.card.get("decision", {}).get("smoothing", 1))

    @property
    def mel_offset(self) -> np.ndarray | None:
        """Per-band feature offset for this microphone (`wakeword adapt`), added before the encoder."""
        entry = self.card.get(ADAPTATION_KEY)
        if not entry:
            return None
        offset = np.asarray(entry.get("mel_offset", []), np.float32)
        if offset.shape != (N_MELS,) or not np.isfinite(offset).all():
            raise ModelError(
                f"{self.path / CARD}: {ADAPTATION_KEY}.mel_offset must be {N_MELS} finite numbers; "
                f"run 'wakeword adapt {self.path} --reset'"
            )
        return offset

    @property
    def stacks(self) -> bool:
        """Whether the top joins the graph of stacked conv-head tops (else it runs its own top.onnx)."""
        return bool(self.top_weights)

    @staticmethod
    def load(path: str | Path, providers: str | list[str] = "auto", int8: bool = False) -> WakeWordModel:
        path = Path(path)
        if path.is_file() and path.name == CARD:
            path = path.parent
        if not path.is_dir():
            raise ModelError(f"{path}: no such model folder")
        try:
            card = json.loads((path / CARD).read_text())
        except FileNotFoundError:
            raise ModelError(f"{path}: no {CARD}; is this a model folder made by 'wakeword train'?") from None
        except ValueError as exc:
            raise ModelError(f"{path / CARD}: unreadable ({exc})") from None
        if card.get("feature_version") != FEATURE_VERSION:
            raise ModelError(
                f"{path}: trained with feature version {card.get('feature_version')}, this runtime "
                f"uses {FEATURE_VERSION}; retrain it"
            )
        for key in ("phrase", "threshold"):
            if key not in card:
                raise ModelError(f"{path / CARD}: no {key!r}; the card is incomplete")
        chosen = pick_providers(providers)
        bottom_path, top_path = (path / INT8_BOTTOM, path / INT8_TOP) if int8 else (path / BOTTOM, path / TOP)
        if int8 and not top_path.exists():
            raise ModelError(f"{top_path}: missing; run 'wakeword export {path} --int8'")
        weights = stackable_weights(top_path)
        model = WakeWordModel(path, card, bottom_path, top_path, chosen, weights)
        if not model.stacks:
            model.top = open_session(top_path, "top", chosen)
        if not bottom_path.exists():
            raise ModelError(f"{bottom_path}: missing; run 'wakeword export {path}'" + (" --int8" if int8 else ""))
        return model

    def bottom_session(self) -> ort.InferenceSession:
        if self.bottom is None:
            self.bottom = open_session(self.bottom_path, "bottom", self.providers)
        return self.bottom

    def top_session(self) -> ort.InferenceSession:
        if self.top is None:
            self.top = open_session(self.top_path, "top", self.providers)
        return self.top


@dataclass
class _Decision:
    threshold: float
    smoothing: int
    refractory_steps: int
    recent: deque = field(default_factory=deque)
    last_event: int = -(10**9)
    above: bool = False

    def update(self, step: int, score: float) -> float | None:
        """The (smoothed) score if this step starts an event, else None."""
        if self.smoothing > 1:
            self.recent.append(score)
            if len(self.recent) > self.smoothing:
                self.recent.popleft()
            score = sum(self.recent) / len(self.recent)
        was_above, self.above = self.above, score >= self.threshold
        if self.above and not was_above and step - self.last_event >= self.refractory_steps:
            self.last_event = step
            return score
        return None

    def reset(self) -> None:
        self.recent.clear()
        self.above, self.last_event = False, -(10**9)


class _Group:
    """The wake words sharing one bottom graph: one run per chunk for the bottom and their stacked
    conv-head tops together, then one run per top that cannot be stacked (GRU head, int8)."""

    def __init__(self, models: list[WakeWordModel], indices: list[int]) -> None:
        stacked = [(i, m) for i, m in zip(indices, models, strict=True) if m.stacks]
        alone = [(i, m) for i, m in zip(indices, models, strict=True) if not m.stacks]
        self.models = [m for _, m in stacked] + [m for _, m in alone]
        first = models[0]
        silent = all("bottom" in m.silence and "top" in m.silence for m in models)
        wanted = (["scores"] if stacked else []) + (["acts"] if alone else [])
        if stacked:
            key = (tuple(str(m.top_path) for _, m in stacked), bool(alone))
            if key not in first.merged:
                bottom, _ = read_graph(first.bottom_path, "bottom")
                graph = merged_graph(bottom, [m.top_weights for _, m in stacked], bool(alone))
                where = f"{first.bottom_path} with the tops of {', '.join(str(m.path) for _, m in stacked)}"
                first.merged[key] = new_session(graph, first.providers, where)
            silence = [first.silence["bottom"], np.stack([m.silence["top"] for _, m in stacked])] if silent else None
            self.main = _Run(first.merged[key], ["state", "top_state"], wanted, silence)
        else:
            silence = [first.silence["bottom"]] if silent else None
            self.main = _Run(first.bottom_session(), ["state"], wanted, silence)
        # Each _Run's scores go to these columns of a step's row (a slice when consecutive, the usual case).
        self.columns = columns([i for i, _ in stacked])
        self.alone = []
        for i, m in alone:
            session = m.top_session()
            silence = [m.silence["top"].reshape(session.get_inputs()[1].shape)] if silent else None
            self.alone.append((_Run(session, ["state"], ["scores"], silence), i))

    @property
    def runs(self) -> list[_Run]:
        return [self.main, *(run for run, _ in self.alone)]

    def step(self, frames: np.ndarray, row: np.ndarray) -> None:
        """Run one chunk's frames; write each word's score into row."""
        out = self.main.step(frames)
        if self.columns is not None:
            row[self.columns] = out[0]
        for run, i in self.alone:
            row[i] = run.step(out[-1])[0].reshape(-1)[0]

    def keep_silence(self) -> None:
        """Snapshot the (settled) states as the silence states, here and on the models."""
        for run in self.runs:
            run.silence = run.states
        bottom = self.main.states[0]
        tops = list(self.main.states[1]) if len(self.main.states) > 1 else []
        tops += [run.states[0].reshape(-1) for run, _ in self.alone]
        for model, top in zip(self.models, tops, strict=True):
            model.silence = {"bottom": bottom, "top": top}


def columns(indices: list[int]) -> slice | np.ndarray | None:
    if not indices:
        return None
    if indices == list(range(indices[0], indices[-1] + 1)):
        return slice(indices[0], indices[-1] + 1)
    return np.array(indices)


class Detector:
    """Streams PCM through every wake word. process(chunk) -> the detections that chunk completed."""

    def __init__(
        self,
        models: list[str | Path | WakeWordModel],
        providers: str | list[str] = "auto",
        threshold: float | None = None,
        smoothing: int | None = None,
        refractory_s: float | None = None,
        int8: bool = False,
    ) -> None:
        if not models:
            raise ModelError("no model given")
        self.models = [m if isinstance(m, WakeWordModel) else WakeWordModel.load(m, providers, int8) for m in models]
        # Wake words whose bottom graph is byte-identical (the usual case: the encoder is frozen) share
        # one run of it per chunk.
        # A microphone offset (wakeword adapt) changes the bottom's input, so only words with the same
        # one share a run.
        by_bottom: dict[tuple[bytes, bytes], list[int]] = {}
        offsets = [m.mel_offset for m in self.models]
        for i, (m, offset) in enumerate(zip(self.models, offsets, strict=True)):
            key = (m.bottom_path.read_bytes(), b"" if offset is None else offset.tobytes())
            by_bottom.setdefault(key, []).append(i)
        self._groups = [_Group([self.models[i] for i in indices], indices) for indices in by_bottom.values()]
        self._offsets = [offsets[indices[0]] for indices in by_bottom.values()]
        self._decisions = []
        for m in self.models:
            decision = m.card.get("decision", {})
            refractory = (
                refractory_s if refractory_s is not None else decision.get("refractory_s", DEFAULT_REFRACTORY_S)
            )
            self._decisions.append(
                _Decision(
                    threshold if threshold is not None else m.threshold,
                    smoothing if smoothing is not None else m.smoothing,
                    round(refractory / STEP_S),
                )
            )
        self._durations = [float(m.card.get("phrase_seconds", 0.8)) for m in self.models]
        self._thresholds = np.array([d.threshold for d in self._decisions], np.float32)
        self._smoothed = any(d.smoothing > 1 for d in self._decisions)
        self._above = False  # whether some word's (smoothed) score was at its threshold at the last step
        self._frames = FrameStream()
        self._pending = np.zeros(0, np.float32)
        self.steps = 0
        if any(run.silence is None for g in self._groups for run in g.runs):
            self._settle()

    def _settle(self) -> None:
        """Run silence until no state changes any more; keep those states (here and on the models)."""
        silence = np.full((1, 8, N_MELS), SILENCE_FRAME, np.float32)
        runs = [run for g in self._groups for run in g.runs]
        for run in runs:
            run.states = [np.zeros_like(s) for s in run.states]
        row = np.zeros(len(self.models), np.float32)
        for _ in range(MAX_SETTLE_STEPS):
            before = [run.states for run in runs]
            for group, offset in zip(self._groups, self._offsets, strict=True):
                group.step(silence if offset is None else silence + offset, row)
            if all(
                all(np.array_equal(a, b) for a, b in zip(old, run.states, strict=True))
                for old, run in zip(before, runs, strict=True)
            ):
                break
        else:
            log.warning("the graphs' state did not settle on silence in %d steps", MAX_SETTLE_STEPS)
        for group in self._groups:
            group.keep_silence()

    def reset(self) -> None:
        """Forget the audio heard so far (as after a gap in the stream): silence state, no pending samples."""
        for group in self._groups:
            for run in group.runs:
                run.reset()
        for decision in self._decisions:
            decision.reset()
        self._above = False
        self._frames = FrameStream()
        self._pending = np.zeros(0, np.float32)
        self.steps = 0

    @staticmethod
    def as_float(chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk)
        if chunk.ndim == 2 and chunk.shape[1] == 1:
            chunk = chunk[:, 0]
        if chunk.ndim != 1:
            raise AudioError(f"chunk must be mono (n,) samples, got shape {chunk.shape}")
        if chunk.dtype == np.int16:
            return chunk.astype(np.float32) / 32768.0
        if chunk.dtype in (np.float32, np.float64):
            if not np.isfinite(chunk).all():
                raise AudioError("chunk contains NaN or infinite samples")
            return chunk.astype(np.float32, copy=False)
        raise AudioError(f"chunk dtype {chunk.dtype} not supported: use int16 or float32 PCM at 16 kHz")

    def process_scores(self, chunk: np.ndarray) -> tuple[list[Detection], np.ndarray]:
        """Detections and the raw score of every completed 80 ms step: (steps, models)."""
        audio = self.as_float(chunk)
        if len(self._pending):
            audio = np.concatenate([self._pending, audio])
        steps = len(audio) // CHUNK_SAMPLES
        self._pending = audio[steps * CHUNK_SAMPLES :]
        scores = np.empty((steps, len(self.models)), np.float32)
        detections: list[Detection] = []
        for i in range(steps):
            frames = self._frames.push(audio[i * CHUNK_SAMPLES : (i + 1) * CHUNK_SAMPLES])[None]
            row = scores[i]
            for group, offset in zip(self._groups, self._offsets, strict=True):
                group.step(frames if offset is None else frames + offset, row)
            # Most steps start no event: skip the per-word decisions when no score is at its threshold,
            # none was above it a step ago and no word averages its scores.
            if self._smoothed or self._above or (row >= self._thresholds).any():
                detections += self._decide(row)
            self.steps += 1
        return detections, scores

    def _decide(self, row: np.ndarray) -> list[Detection]:
        detections = []
        for j, decision in enumerate(self._decisions):
            fired = decision.update(self.steps, float(row[j]))
            if fired is not None:
                end = (self.steps + 1) * STEP_S
                model = self.models[j]
                start = max(0.0, end - self._durations[j])
                detections.append(Detection(model.phrase, fired, end, start, str(model.path)))
        self._above = any(d.above for d in self._decisions)
        return detections

    def process(self, chunk: np.ndarray) -> list[Detection]:
        return self.process_scores(chunk)[0]


def run_bottom_steps(model: WakeWordModel, audio: np.ndarray) -> tuple[list[dict], list[dict]]:
    """The feeds bottom.onnx and top.onnx receive while `audio` streams (for int8 calibration), from the
    silence state on: the model's own two graphs, run one after the other."""
    if "top" not in model.silence:
        Detector([model])  # finds the silence states
    bottom, top = model.bottom_session(), model.top_session()
    bottom_state = model.silence["bottom"]
    top_state = model.silence["top"].reshape(top.get_inputs()[1].shape)
    frames_stream = FrameStream()
    bottom_feeds, top_feeds = [], []
    for start in range(0, len(audio) - CHUNK_SAMPLES + 1, CHUNK_SAMPLES):
        frames = frames_stream.push(audio[start : start + CHUNK_SAMPLES])[None]
        bottom_feeds.append({"frames": frames, "state": bottom_state})
        acts, bottom_state = bottom.run(["acts", "state_out"], bottom_feeds[-1])
        top_feeds.append({"acts": acts, "state": top_state})
        _, top_state = top.run(["scores", "state_out"], top_feeds[-1])
    return bottom_feeds, top_feeds
