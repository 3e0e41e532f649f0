"""An embedded bundle: everything a Raspberry Pi-class board needs to detect a wake word, without torch.

    BUNDLE/
      run.py                          the runner: detect | score | listen | check (numpy + onnxruntime)
      README.md                       what is here and how to run it
      manifest.json                   versions, models, every file's size and sha256
      wakeword/                       the torch-free runtime modules, copied verbatim from this package
      models/NAME/card.json           the model card (phrase, threshold, decision settings)
      models/NAME/bottom.int8.onnx    the encoder's front part: the same file for every wake word,
                                      except one trained with --strategy full (its own bottom)
      models/NAME/top.int8.onnx       this wake word's part
      models/NAME/{bottom,top}.onnx   fp32 graphs, only with fp32=True (cross-platform parity checks)

Two int8 forms (quantization=):

- "weights" (default): every Conv/Gemm weight stored as int8 with a per-output-channel scale and a
  DequantizeLinear; the arithmetic stays fp32. A Raspberry Pi 4's Cortex-A72 has no int8 dot product,
  so int8 arithmetic buys it little speed, while fp32 arithmetic gives the same scores on every CPU
  (within float rounding) and needs no calibration audio: the bottom is then the same file for every
  wake word, and the runtime runs it once per 80 ms for all of them.
- "static": export.py's own static int8 quantisation (activations too, calibrated on audio), faster
  where int8 arithmetic is fast (x86 with VNNI, Armv8.2+ with the dot product: Pi 5), but its scores
  differ between CPUs by a rounding step here and there, enough to move a detection by a step. Its
  outputs are made float again (see float_outputs): score and state must not be rounded to 8 bits.

Either way the graphs are compacted (see compact): the quantiser's and exporter's long tensor and node
names, shape annotations and unused initialisers are a fifth of a top graph's bytes.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import shutil
import string
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

import wakeword
from wakeword import FEATURE_VERSION, __version__
from wakeword.errors import ModelError, WakewordError
from wakeword.export import (
    BOTTOM,
    TOP,
    calibration_inputs,
    default_calibration_audio,
    export_model,
    int8_name,
    quantize,
)

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(wakeword.__file__).parent
TEMPLATES = PACKAGE_DIR / "bundle_files"
RUNTIME_ENTRY = "wakeword.runtime"
# Third-party packages the copied modules may import when they load: what the board installs.
BOARD_PACKAGES = {"numpy", "onnxruntime"}
# Imported at load time by wakeword/audio.py (file decoding, resampling) but never called by the bundle:
# run.py puts a stand-in in their place where they are not installed. Keep in step with run.py.
STAND_INS = ("soundfile", "soxr")
# quantization="static": the bottom's calibration speech. Any ordinary sentence will do, as long as it
# is the same for every wake word, so that every bundle's bottom.int8.onnx is the same file.
SHARED_CALIBRATION_TEXT = "the quick brown fox jumps over the lazy dog"
# Operators that only move, reshape or squash data: the paths from a graph's outputs back through these
# need no requantisation (see float_outputs).
FLOAT_PATH = {
    "Concat",
    "Slice",
    "Split",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Flatten",
    "Transpose",
    "Identity",
    "Sigmoid",
}
# ...and whose int8 output is rounded once more before it moves along such a path: the head's last layer.
REQUANTIZED_AFTER = FLOAT_PATH | {"Gemm"}
MANIFEST = "manifest.json"
BUNDLE_FORMAT = 1
QUANTIZATIONS = ("weights", "static")
WEIGHT_QUANTIZATION = "int8 weights per output channel, fp32 arithmetic"
QUANTIZED_OPS = {"Conv": 0, "Gemm": None, "MatMul": None}  # op -> axis of the weight's output channels
# Smaller weights stay fp32: they save little, and the smallest is the encoder's first convolution,
# which sees the raw mel features and alone makes two thirds of the int8 error at the bottom's output
# (measured: 3.2 % -> 1.9 % relative RMS error, for 650 bytes).
MIN_INT8_WEIGHTS = 1024


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------
# Which modules the runtime needs


def load_time_imports(tree: ast.Module, package: str = "wakeword") -> set[str]:
    """Absolute names of the modules a module imports when it loads (not inside functions)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue  # runs later, if ever: a lazy import is the way to keep a dependency optional
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                module = child.module or ""
                if child.level:  # relative: resolve against the (flat) package
                    module = f"{package}.{module}".rstrip(".")
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in child.names if module == package)
            visit(child)

    visit(tree)
    return names


def module_file(name: str) -> Path:
    if name == "wakeword":
        return PACKAGE_DIR / "__init__.py"
    return PACKAGE_DIR / (name.removeprefix("wakeword.").replace(".", "/") + ".py")


def runtime_modules(entry: str = RUNTIME_ENTRY) -> list[Path]:
    """The package's files that `entry` loads, transitively, checked to need nothing the board lacks.

    Computed rather than listed, so a new import in runtime.py either travels with the bundle or
    stops the export with the reason, instead of failing on the board.
    """
    todo, seen, files = [entry, "wakeword"], set(), []
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = module_file(name)
        if not path.is_file():
            raise WakewordError(f"{name}: no module file at {path}")
        files.append(path)
        for imported in sorted(load_time_imports(ast.parse(path.read_text(), str(path)))):
            top = imported.partition(".")[0]
            if top == "wakeword":
                if module_file(imported).is_file():  # not `from wakeword import FEATURE_VERSION`
                    todo.append(imported)
            elif top not in sys.stdlib_module_names and top not in BOARD_PACKAGES and top not in STAND_INS:
                raise WakewordError(
                    f"{path.name} imports {top} when it loads, which the embedded bundle does not ship "
                    f"(it needs only {', '.join(sorted(BOARD_PACKAGES))}); import it inside the function that uses it"
                )
    return sorted(set(files))


# ---------------------------------------------------------------------------------------------------
# Graphs


def int8_weights(model: onnx.ModelProto) -> int:
    """Store every Conv/Gemm/MatMul weight initialiser as int8 times a scale; returns how many.

    Symmetric, one scale per output channel (max |w| / 127): the error is at most half a step of the
    channel's own range. Weights under MIN_INT8_WEIGHTS values stay fp32.

    Written as Cast(int8 -> float) * scale rather than DequantizeLinear, which computes the same
    values: onnxruntime folds Cast and Mul of constants into fp32 weights when it loads the graph, so
    it then runs exactly an fp32 graph. A DequantizeLinear it would keep, and run every step (+50 %
    time on x86), or fuse with a MatMul into an int8 kernel whose results differ between x86 and arm.
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    done: set[str] = set()
    dequantize: list[onnx.NodeProto] = []
    for node in graph.node:
        if node.op_type not in QUANTIZED_OPS or len(node.input) < 2 or node.input[1] not in initializers:
            continue
        name = node.input[1]
        weight = onnx.numpy_helper.to_array(initializers[name]).astype(np.float32)
        axis = QUANTIZED_OPS[node.op_type]
        if axis is None:  # Gemm (transB: rows are the outputs) or MatMul (columns are)
            trans_b = any(a.name == "transB" and a.i for a in node.attribute)
            axis = 0 if node.op_type == "Gemm" and trans_b else weight.ndim - 1
        if name in done or weight.ndim < 2 or weight.size < MIN_INT8_WEIGHTS:
            continue
        done.add(name)
        others = tuple(i for i in range(weight.ndim) if i != axis)
        scale = np.abs(weight).max(axis=others, keepdims=True) / 127.0
        scale[scale == 0] = 1.0  # an all-zero channel: any scale gives back zeros
        quantized = np.clip(np.round(weight / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(initializers[name])
        graph.initializer.extend(
            [
                onnx.numpy_helper.from_array(quantized, f"{name}_int8"),
                onnx.numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
            ]
        )
        dequantize += [
            onnx.helper.make_node("Cast", [f"{name}_int8"], [f"{name}_float"], to=onnx.TensorProto.FLOAT),
            onnx.helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name]),
        ]
    # Initialisers are not nodes: the new nodes go first, so the graph stays topologically sorted.
    nodes = [*dequantize, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    entry = model.metadata_props.add()  # compact() keeps the last entry of each key
    entry.key, entry.value = "quantization", WEIGHT_QUANTIZATION
    return len(done)


def requantization(producer: dict[str, onnx.NodeProto], name: str) -> str | None:
    """The tensor that a QuantizeLinear -> DequantizeLinear pair rounds into `name`, or None."""
    dq = producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear":
        return None
    q = producer.get(dq.input[0])
    return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else None


def float_outputs(model: onnx.ModelProto) -> int:
    """Take the QuantizeLinear -> DequantizeLinear pairs off the paths that only move data to the outputs.

    The quantiser rounds every tensor to 8 bits, outputs included. For the score that is a step of
    1/255, coarser than the thresholds trained models use (0.99x); for the state, one vector that
    packs every cache, it is one scale for tensors of very different ranges, re-applied every 80 ms.
    The computations stay int8: only pairs after data movement (Concat, Slice, Split, Reshape, ...),
    after the Sigmoid and after the final Gemm go. The state then leaves as exactly what it was
    computed as, and the score has the resolution of the last layer's int8 output, in logits.
    Returns the number of pairs taken off a path.
    """
    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    bypassed = 0
    for output in graph.output:
        source = requantization(producer, output.name)
        if source is None or producer[source].op_type not in REQUANTIZED_AFTER:
            continue
        dq = producer[output.name]
        dq.output[0] = f"{output.name}_requantized"  # dead from here on; removed below
        graph.node.append(onnx.helper.make_node("Identity", [source], [output.name]))
        bypassed += 1
        todo, seen = [source], set()
        while todo:
            node = producer.get(todo.pop())
            if node is None or node.op_type not in FLOAT_PATH or id(node) in seen:
                continue  # a graph input, or a computation: its own (fused) int8 output stays as it is
            seen.add(id(node))
            for i, name in enumerate(node.input):
                unrounded = requantization(producer, name)
                if unrounded is not None and (
                    unrounded not in producer or producer[unrounded].op_type in REQUANTIZED_AFTER
                ):
                    node.input[i] = unrounded
                    bypassed += 1
                todo.append(node.input[i])
    # Drop what no longer feeds anything (the bypassed pairs that had no other consumer).
    while True:
        used = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
        dead = [node for node in graph.node if not any(name in used for name in node.output)]
        if not dead:
            return bypassed
        for node in dead:
            graph.node.remove(node)


def compact(model: onnx.ModelProto) -> onnx.ModelProto:
    """The same graph in fewer bytes: short activation names, no node names, shape notes or unused initialisers.

    Initialisers named after the module's parameters keep their names (a runtime may read weights by
    name); those named after activations ("/layers.0/conv/Conv_output_0_scale") or by the exporter
    ("onnx::...") are shortened like activations.
    Also keeps one entry per metadata key: quantize() adds its keys to those the fp32 graph already has.
    """
    graph = model.graph
    subgraph = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
    if any(attr.type in subgraph for node in graph.node for attr in node.attribute):
        raise WakewordError("cannot compact a graph with subgraphs (If/Loop/Scan)")
    used = {name for node in graph.node for name in node.input} | {v.name for v in graph.output}
    initializers = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    parameters = {init.name for init in initializers if not init.name.startswith(("/", "onnx::"))}
    keep = {v.name for v in graph.input} | {v.name for v in graph.output} | parameters
    short: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name or name in keep:
            return name
        if name not in short:
            candidate = format(len(short), "x")
            while candidate in keep:  # never reuse an input's, output's or initialiser's name
                candidate += "_"
            short[name] = candidate
        return short[name]

    for node in graph.node:
        node.name, node.doc_string = "", ""
        node.input[:] = [rename(n) for n in node.input]
        node.output[:] = [rename(n) for n in node.output]
    for init in graph.initializer:  # (extend() copied them: rename the graph's own)
        init.name = rename(init.name)
    del graph.value_info[:]
    graph.doc_string = ""
    model.doc_string = ""
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def compact_file(source: Path, target: Path, feeds: list[dict[str, np.ndarray]]) -> None:
    """Write source compacted to target, after checking both give identical outputs on feeds."""
    import onnxruntime as ort

    onnx.save(compact(onnx.load(str(source))), str(target))
    options = ort.SessionOptions()
    options.log_severity_level = 3  # the quantiser's unused initialisers warn in the original
    before = ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(str(target), options, providers=["CPUExecutionProvider"])
    for feed in feeds:
        for a, b in zip(before.run(None, feed), after.run(None, feed), strict=True):
            if not np.array_equal(a, b):
                raise WakewordError(f"{source.name}: the compacted graph computes something else; please report this")


def static_graphs(stage: Path, phrase: str, calibration_audio: np.ndarray | None) -> dict[str, list[dict]]:
    """export.py's static int8 graphs in stage (next to the fp32 ones); returns a few feeds of each."""
    if calibration_audio is None:
        bottom_audio = default_calibration_audio(SHARED_CALIBRATION_TEXT)
        top_audio = default_calibration_audio(phrase)
    else:  # the user's audio calibrates both; bundles share their bottom only if made with the same audio
        bottom_audio = top_audio = np.asarray(calibration_audio, dtype=np.float32)
    bottom_feeds = calibration_inputs(stage, bottom_audio)["bottom"]
    top_feeds = calibration_inputs(stage, top_audio)["top"]
    if not bottom_feeds or not top_feeds:
        raise WakewordError("calibration audio shorter than one 80 ms step; give at least a few seconds of speech")
    for graph, feeds in ((BOTTOM, bottom_feeds), (TOP, top_feeds)):
        quantize(stage / graph, feeds, stage / int8_name(graph))
        model = onnx.load(str(stage / int8_name(graph)))
        log.info("%s: %d requantisations taken off the output paths", graph, float_outputs(model))
        onnx.save(model, str(stage / int8_name(graph)))
    # A few feeds from well into the audio (past the silence warm-up) to check compaction on.
    return {"bottom": bottom_feeds[-3:], "top": top_feeds[-3:]}


def weight_graphs(stage: Path) -> dict[str, list[dict]]:
    """int8-weight graphs in stage (next to the fp32 ones); returns a few feeds of each."""
    for graph in (BOTTOM, TOP):
        model = onnx.load(str(stage / graph))
        log.info("%s: %d weights stored as int8", graph, int8_weights(model))
        onnx.save(model, str(stage / int8_name(graph)))
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)  # any input will do for the check
    feeds = calibration_inputs(stage, noise)
    return {"bottom": feeds["bottom"][-3:], "top": feeds["top"][-3:]}


# ---------------------------------------------------------------------------------------------------
# The bundle


def is_bundle(path: Path) -> bool:
    try:
        return json.loads((path / MANIFEST).read_text()).get("format") is not None
    except (OSError, ValueError, AttributeError):
        return False


def write_readme(out: Path, card: dict, name: str, files: dict[str, int]) -> None:
    rows = "\n".join(f"| `{rel}` | {size / 1024:.1f} KB |" for rel, size in sorted(files.items()))
    text = string.Template((TEMPLATES / "README.md").read_text()).substitute(
        phrase=card["phrase"],
        name=name,
        threshold=f"{float(card['threshold']):.3f}",
        version=__version__,
        feature_version=FEATURE_VERSION,
        files=rows,
    )
    (out / "README.md").write_text(text)


def export_bundle(
    model_dir: Path,
    out: Path,
    calibration_audio: np.ndarray | None = None,
    *,
    fp32: bool = False,
    quantization: str = "weights",
) -> dict:
    """Write an embedded bundle for the trained model in model_dir to out (replacing an earlier bundle there).

    calibration_audio: 16 kHz speech for quantization="static" (None synthesises some); "weights" needs none.
    fp32: also ship the fp32 graphs (for parity checks across machines; about 1.5 MB more).
    quantization: "weights" or "static" (see the module's docstring).
    Returns {"files": {relative name: bytes}, "front_end_bytes", "per_wake_word_bytes", "runner_bytes",
    "total_bytes", "quantization", "path"}.
    """
    from wakeword.train import CARD, CHECKPOINT

    model_dir, out = Path(model_dir), Path(out)
    if quantization not in QUANTIZATIONS:
        raise WakewordError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, not {quantization!r}")
    for required in (CARD, CHECKPOINT):
        if not (model_dir / required).is_file():
            raise ModelError(f"{model_dir}: not a model folder (needs {CARD} and {CHECKPOINT})")
    replaceable = out.is_dir() and (is_bundle(out) or not any(out.iterdir()))
    if out.exists() and not replaceable:
        raise WakewordError(f"{out}: exists and is not a wakeword bundle; refusing to replace it")
    modules = runtime_modules()
    name = model_dir.resolve().name

    with tempfile.TemporaryDirectory(prefix="wakeword-bundle-") as tmp:
        # Export in a copy, so that model_dir's own graphs and card stay as they are.
        stage = Path(tmp) / name
        stage.mkdir()
        for required in (CARD, CHECKPOINT):
            shutil.copy2(model_dir / required, stage / required)
        export_model(stage, int8=False)
        card = json.loads((stage / CARD).read_text())
        if quantization == "static":
            feeds = static_graphs(stage, card["phrase"], calibration_audio)
        else:
            if calibration_audio is not None:
                log.warning("calibration audio is not used: int8 weights need none (quantization='static' does)")
            feeds = weight_graphs(stage)

        build = Path(tmp) / "bundle"
        model_out = build / "models" / name
        model_out.mkdir(parents=True)
        for graph, role in ((BOTTOM, "bottom"), (TOP, "top")):
            compact_file(stage / int8_name(graph), model_out / int8_name(graph), feeds[role])
            if fp32:
                shutil.copy2(stage / graph, model_out / graph)
        shipped = sorted(p.name for p in model_out.glob("*.onnx"))
        card["export"]["files"] = {graph: sha256(model_out / graph) for graph in shipped}
        card["export"]["bundle"] = {"quantization": quantization}
        if quantization == "static":
            card["export"]["bundle"]["calibration"] = "given audio" if calibration_audio is not None else "synthetic"
        (model_out / CARD).write_text(json.dumps(card, indent=2, default=float) + "\n")

        (build / "wakeword").mkdir()
        for module in modules:
            shutil.copy2(module, build / "wakeword" / module.name)
        shutil.copy2(TEMPLATES / "run.py", build / "run.py")

        files = {p.relative_to(build).as_posix(): p.stat().st_size for p in sorted(build.rglob("*")) if p.is_file()}
        write_readme(build, card, name, files)
        files["README.md"] = (build / "README.md").stat().st_size
        manifest = {
            "format": BUNDLE_FORMAT,
            "wakeword_version": __version__,
            "feature_version": FEATURE_VERSION,
            "requires": {"python": ">=3.10", "packages": sorted(BOARD_PACKAGES), "microphone": "sounddevice"},
            "models": [{"name": name, "phrase": card["phrase"], "threshold": card["threshold"], "graphs": shipped}],
            "quantization": quantization,
            "files": {rel: {"bytes": size, "sha256": sha256(build / rel)} for rel, size in sorted(files.items())},
        }
        (build / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        files[MANIFEST] = (build / MANIFEST).stat().st_size

        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(build, out)

    files = dict(sorted(files.items()))
    report = {
        "path": str(out),
        "files": files,
        "front_end_bytes": files[f"models/{name}/{int8_name(BOTTOM)}"],
        "per_wake_word_bytes": files[f"models/{name}/{int8_name(TOP)}"] + files[f"models/{name}/{CARD}"],
        "runner_bytes": sum(size for rel, size in files.items() if rel.endswith(".py")),
        "total_bytes": sum(files.values()),
        "quantization": quantization,
    }
    log.info("bundle %s: %.0f KB in all", out, report["total_bytes"] / 1024)
    return report
