"""Embedded figures: MACs per 80 ms step, a Cortex-A72 estimate, x86 int8 vs fp32 timings, bundle sizes.

    python tools/bench_embedded.py [--model MODEL_DIR] [--json FILE]
    python tools/bench_embedded.py --test-bundle DIR      (for tools/test_arm64.sh: model, bundle, test.wav)

Without --model a model with random weights is made (MACs, timings and sizes do not depend on the
weights; its head is scaled so that its scores cross 0.5 now and then, which parity checks need).
Timings: one thread, median over the steps of 20 s of audio, on this machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SAMPLE_RATE = 16000
CHUNK = 1280
STEP_US = CHUNK / SAMPLE_RATE * 1e6  # 80 000 µs of audio per step

# Cortex-A72 (Raspberry Pi 4: 1.5 GHz, 1.8 GHz on boards since 2020) assumptions, one core:
# - peak: 2 NEON pipes x 4 fp32 lanes of fused multiply-add = 8 MAC/cycle = 12 GMAC/s fp32 at 1.5 GHz
#   (Arm Cortex-A72 Software Optimization Guide: two 128-bit ASIMD/FP execution pipes). The A72 has no
#   int8 dot-product instruction (Armv8.0-A), so int8 runs through widening multiply-accumulates at
#   about the fp32 MAC rate: int8's gain on a Pi 4 is size, not speed (a Pi 5's A76 has the dot product).
# - sustained on these tiny batch-1 convolutions (2-16 output positions, 32-96 channels): 15-35 % of
#   peak, 2-4 GMAC/s;
# - onnxruntime's dispatch: 3-6 µs per executed node (about 0.6 µs on the x86 core measured here,
#   whose single-thread speed is 4-8x an A72's: Geekbench-class ratios of a Pi 4 to a server core);
# - the Python around the graphs (numpy front end, state, decision): its x86 time x 4-8.
# Order-of-magnitude check: openWakeWord's README says "a single core of a Raspberry Pi 3 can run 15-20
# openWakeWord models simultaneously in real-time"; openWakeWord recomputes the same encoder over its
# whole 76-frame window every 80 ms (the MACs of its ONNX pair are printed when the dev extra is there).
A72_GMACS = (2.0, 4.0)
A72_NODE_US = (3.0, 6.0)
A72_X86_FACTOR = (4.0, 8.0)


# ---------------------------------------------------------------------------------------------------
# Test material


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise bursts under a moving tone with digital silence around: every band and the floor, no TTS needed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    noise = rng.normal(0, 0.1, n)
    envelope = (np.sin(2 * np.pi * 3.0 * t) > 0).astype(np.float64)
    chirp = np.sin(2 * np.pi * (200 + 1500 * np.arange(n) / n) * t)
    silence = np.zeros(n // 10)
    return np.concatenate([silence, (noise + 0.3 * chirp) * envelope, silence]).astype(np.float32)


def test_recording(seconds: float = 20.0) -> np.ndarray:
    """Synthetic speech (the TTS voices) when available, noise bursts otherwise."""
    try:
        from wakeword import tts
        from wakeword.train import general_sentences

        voices = tts.list_voices("negative", variations=False)[:2]
        texts = general_sentences()[20:32]  # not the ones int8 calibration uses
        clips = [a for _, _, a in tts.synthesize_many([(t, v) for t in texts for v in voices], progress=False)]
    except Exception:  # no voices installed: any varied sound serves for timing and parity
        clips = []
    if not clips:
        return speech_like(seconds)
    gap = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    audio = np.concatenate([np.concatenate([c, gap]) for c in clips])[: int(seconds * SAMPLE_RATE)] * 0.5
    return audio.astype(np.float32)


def write_wav(path: Path, audio: np.ndarray) -> None:
    import wave

    pcm = np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(pcm.tobytes())


def make_test_model(path: Path, audio: np.ndarray, seed: int = 0, phrase: str = "hey test") -> Path:
    """An untrained conv-head model whose scores on `audio` spread over (0, 1), about 1 step in 10 above 0.5.

    A random head's logits sit far from 0 (scores all 0 or all 1): its last layer is rescaled so that
    the logits have a spread of 2 and their 90th percentile at 0.
    """
    import torch

    from wakeword import FEATURE_VERSION
    from wakeword.encoder import load_encoder
    from wakeword.model import WakeWordNet, score_audio
    from wakeword.train import save

    torch.manual_seed(seed)
    encoder = load_encoder()
    net = WakeWordNet(encoder).eval()
    for p in net.head.parameters():
        p.data.normal_(0, 0.3)
    logits: list[torch.Tensor] = []
    hook = net.head.out.register_forward_hook(lambda _m, _i, out: logits.append(out.detach().reshape(-1)))
    score_audio(net, encoder, audio)
    hook.remove()
    values = torch.cat(logits).numpy()
    scale = 2.0 / max(float(values.std()), 1e-6)
    with torch.no_grad():
        net.head.out.weight.mul_(scale)
        net.head.out.bias.copy_((net.head.out.bias - float(np.percentile(values, 90))) * scale)
    card = {"phrase": phrase, "threshold": 0.5, "feature_version": FEATURE_VERSION, "phrase_seconds": 0.7}
    save(net, path, card, [])
    return path


def make_test_bundle(folder: Path, fp32: bool = True) -> dict:
    """folder/model (a test model), folder/bundle (its bundle), folder/test.wav (a recording it scores)."""
    from wakeword.bundle import export_bundle

    folder.mkdir(parents=True, exist_ok=True)
    audio = test_recording(20.0)
    write_wav(folder / "test.wav", audio)
    model = make_test_model(folder / "model", audio)
    return export_bundle(model, folder / "bundle", fp32=fp32)


# ---------------------------------------------------------------------------------------------------
# MACs


def count_macs(path: Path, input_shapes: dict[str, list[int]] | None = None) -> dict[str, int]:
    """Multiply-accumulates of one run of the graph, by operator: Conv, MatMul and Gemm (the rest is noise).

    input_shapes fixes the inputs' dynamic dimensions (batch, time), which the count needs.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    for value in model.graph.input:
        for dim, size in zip(value.type.tensor_type.shape.dim, (input_shapes or {}).get(value.name, []), strict=False):
            dim.dim_value = size
    model = shape_inference.infer_shapes(model)
    graph = model.graph
    shapes: dict[str, list[int]] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value for d in dims]
    for init in graph.initializer:
        shapes[init.name] = list(numpy_helper.to_array(init).shape)
    macs = {"Conv": 0, "MatMul": 0, "Gemm": 0}
    for node in graph.node:
        if node.op_type not in macs:
            continue
        out = shapes.get(node.output[0])
        if not out or 0 in out:
            raise ValueError(f"{path.name}: no static shape for {node.output[0]} ({node.op_type})")
        if node.op_type == "Conv":  # every output value: (input channels / groups) x kernel taps
            macs["Conv"] += int(np.prod(out)) * int(np.prod(shapes[node.input[1]][1:]))
        elif node.op_type == "MatMul":
            macs["MatMul"] += int(np.prod(out)) * shapes[node.input[0]][-1]
        else:
            trans_a = any(a.name == "transA" and a.i for a in node.attribute)
            a = shapes[node.input[0]]
            macs["Gemm"] += int(np.prod(out)) * (a[0] if trans_a else a[1])
    return {**macs, "total": sum(macs.values()), "nodes": len(graph.node)}


def executed_nodes(path: Path) -> int:
    """Nodes onnxruntime runs after its optimisations (QDQ fusion, constant folding): what dispatch costs."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        opts = ort.SessionOptions()
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        opts.log_severity_level = 3
        ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        return len(onnx.load(opts.optimized_model_filepath).graph.node)


# ---------------------------------------------------------------------------------------------------
# Timings


def median_us(run, feeds: list, repeat: int = 3) -> float:
    for feed in feeds[:10]:  # warm-up
        run(feed)
    times = []
    for _ in range(repeat):
        for feed in feeds:
            start = time.perf_counter()
            run(feed)
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e6)


def session(path: Path, config: dict[str, str] | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    for key, value in (config or {}).items():
        opts.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


# The graph variants timed: folder key, file suffix, session config (None: as the runtime opens them).
VARIANTS = {
    "fp32": ("weights", ".onnx", None),
    "int8_weights": ("weights", ".int8.onnx", None),
    "int8_static": ("static", ".int8.onnx", None),
}


def timings(folders: dict[str, Path], audio: np.ndarray) -> dict:
    """µs per 80 ms step, one thread: front end, each graph variant, and the whole detector."""
    from wakeword.frontend import FrameStream
    from wakeword.runtime import Detector, WakeWordModel, run_bottom_steps

    chunks = [audio[i : i + CHUNK] for i in range(0, len(audio) - CHUNK + 1, CHUNK)]
    frames = FrameStream()
    result = {"frontend": median_us(frames.push, chunks)}
    model = WakeWordModel.load(folders["weights"], ["CPUExecutionProvider"])
    bottom_feeds, top_feeds = run_bottom_steps(model, audio)
    for kind, (folder, suffix, config) in VARIANTS.items():
        for role, feeds in (("bottom", bottom_feeds), ("top", top_feeds)):
            graph = session(folders[folder] / f"{role}{suffix}", config)
            result[f"{role}_{kind}"] = median_us(lambda feed, g=graph: g.run(None, feed), feeds)
        if config is None:  # the runtime opens graphs its own way
            detector = Detector([folders[folder]], providers=["CPUExecutionProvider"], int8=suffix != ".onnx")
            result[f"detector_{kind}"] = median_us(detector.process, chunks)
    return {key: round(value, 1) for key, value in result.items()}


# ---------------------------------------------------------------------------------------------------


def a72_estimate(macs: int, nodes: int, python_x86_us: float) -> dict:
    """µs per step on one Cortex-A72 core: a range from the assumptions above."""
    low = macs / (A72_GMACS[1] * 1e3) + nodes * A72_NODE_US[0] + python_x86_us * A72_X86_FACTOR[0]
    high = macs / (A72_GMACS[0] * 1e3) + nodes * A72_NODE_US[1] + python_x86_us * A72_X86_FACTOR[1]
    return {
        "us_per_step": [round(low), round(high)],
        "cpu_percent_of_one_core": [round(low / STEP_US * 100, 1), round(high / STEP_US * 100, 1)],
    }


def reference_macs() -> int | None:
    """MACs per 80 ms step of openWakeWord's computation (mel over 1760 samples, embedding over 76 frames)."""
    try:
        from tools.reference_models import onnx_files

        files = onnx_files()
    except (ImportError, SystemExit):  # the reference wheel (dev extra) is not installed
        return None
    mel = count_macs(files["melspectrogram.onnx"], {"input": [1, 1760]})
    embedding = count_macs(files["embedding_model.onnx"], {"input_1": [1, 76, 32, 1]})
    return mel["total"] + embedding["total"]


def table(rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model folder (default: random weights)")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--test-bundle", metavar="DIR", help="only make DIR/model, DIR/bundle, DIR/test.wav")
    args = parser.parse_args()
    if args.test_bundle:
        report = make_test_bundle(Path(args.test_bundle))
        print(json.dumps({k: v for k, v in report.items() if k != "files"}))
        return 0

    import torch

    from wakeword.bundle import export_bundle

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-embedded-"))
    audio = test_recording(20.0)
    model = Path(args.model) if args.model else make_test_model(work / "model", audio)
    name = model.resolve().name
    calibration = np.concatenate([speech_like(10.0, seed=s) for s in (1, 2)])
    report = export_bundle(model, work / "weights", fp32=True)
    static = export_bundle(model, work / "static", calibration, quantization="static")
    folders = {"weights": work / "weights" / "models" / name, "static": work / "static" / "models" / name}
    macs = {role: count_macs(folders["weights"] / f"{role}.onnx") for role in ("bottom", "top")}
    total_macs = macs["bottom"]["total"] + macs["top"]["total"]
    nodes = {
        f"{role}_{kind}": executed_nodes(folders[folder] / f"{role}{suffix}")
        for kind, (folder, suffix, _) in VARIANTS.items()
        for role in ("bottom", "top")
    }
    times = timings(folders, audio)
    graphs = {kind: round(times[f"bottom_{kind}"] + times[f"top_{kind}"], 1) for kind in VARIANTS}
    # Everything in a detector step that is not the two graphs: front end, state handling, decision.
    python_us = round(times["detector_fp32"] - graphs["fp32"], 1)
    reference = reference_macs()
    files = report["files"]
    int8_bytes = sum(size for rel, size in files.items() if not rel.endswith(".onnx") or ".int8." in rel)
    estimate = {
        # fp32 arithmetic: the fp32 graphs, and the int8-weight ones (their weights are folded at load)
        "fp32_arithmetic": a72_estimate(total_macs, nodes["bottom_fp32"] + nodes["top_fp32"], python_us),
        "int8_static": a72_estimate(total_macs, nodes["bottom_int8_static"] + nodes["top_int8_static"], python_us),
    }
    figures = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "macs_per_step": {"bottom": macs["bottom"], "top": macs["top"], "total": total_macs},
        "openwakeword_macs_per_step": reference,
        "executed_nodes": nodes,
        "x86_us_per_step_one_thread": times,
        "x86_graphs_us": graphs,
        "x86_outside_graphs_us": python_us,
        "x86_effective_gmacs": {kind: round(total_macs / us / 1e3, 2) for kind, us in graphs.items()},
        "a72_estimate": estimate,
        "a72_assumptions": {
            "sustained_gmacs": A72_GMACS,
            "node_dispatch_us": A72_NODE_US,
            "python_x86_factor": A72_X86_FACTOR,
        },
        "bundle_bytes": {
            "front_end_bottom_int8": report["front_end_bytes"],
            "per_wake_word_top_int8_and_card": report["per_wake_word_bytes"],
            "runner_and_runtime_code": report["runner_bytes"],
            "int8_bundle_total": int8_bytes,
            "static_front_end": static["front_end_bytes"],
            "static_per_wake_word": static["per_wake_word_bytes"],
            "fp32_bottom": files[f"models/{name}/bottom.onnx"],
            "fp32_top": files[f"models/{name}/top.onnx"],
        },
    }
    kb = 1024

    def span(e: dict) -> str:
        (lo, hi), (plo, phi) = e["us_per_step"], e["cpu_percent_of_one_core"]
        return f"{lo / 1000:.1f}-{hi / 1000:.1f} ms ({plo}-{phi} % of a core)"

    rows = [
        ("MACs per 80 ms step", f"bottom {macs['bottom']['total']:,} + top {macs['top']['total']:,} = {total_macs:,}"),
        ("openWakeWord MACs per step (reference)", f"{reference:,}" if reference else "n/a (dev extra missing)"),
        ("x86 front end (numpy)", f"{times['frontend']:.0f} µs"),
        *(
            (
                f"x86 graphs {kind}",
                f"{graphs[kind]:.0f} µs (bottom {times[f'bottom_{kind}']:.0f} + top {times[f'top_{kind}']:.0f})",
            )
            for kind in VARIANTS
        ),
        *(
            (f"x86 whole step {kind}", f"{times[f'detector_{kind}']:.0f} µs")
            for kind in VARIANTS
            if f"detector_{kind}" in times
        ),
        ("A72 estimate, fp32 arithmetic", span(estimate["fp32_arithmetic"])),
        ("A72 estimate, int8 static", span(estimate["int8_static"])),
        (
            "bundle: front end (bottom.int8)",
            f"{report['front_end_bytes'] / kb:.0f} KB (static: {static['front_end_bytes'] / kb:.0f} KB)",
        ),
        (
            "bundle: per wake word (top.int8 + card)",
            f"{report['per_wake_word_bytes'] / kb:.0f} KB (static: {static['per_wake_word_bytes'] / kb:.0f} KB)",
        ),
        ("bundle: runner + runtime code", f"{report['runner_bytes'] / kb:.0f} KB"),
        ("bundle: int8 total", f"{int8_bytes / kb:.0f} KB"),
        (
            "fp32 graphs, for comparison",
            f"bottom {figures['bundle_bytes']['fp32_bottom'] / kb:.0f} KB, "
            f"top {figures['bundle_bytes']['fp32_top'] / kb:.0f} KB",
        ),
    ]
    print(table(rows))
    print(json.dumps(figures, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
