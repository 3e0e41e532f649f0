"""Server throughput: many streams of one wake word through wakeword.server.BatchDetector, CUDA and CPU.

    python tools/bench_server.py [--model MODEL_DIR] [--streams 1 100 1000] [--steps 200] [--providers all]
                                 [--json PATH]

For each provider found (CUDA when onnxruntime-gpu sees a GPU; always the CPU, with one thread and
with all cores) and each number of streams B: the time of one 80 ms step of all B streams (PCM in,
scores and decisions out, states kept on the device), its median and p99 over --steps steps after
a warm-up, and what that makes: streams served in real time (B x 80 ms / step time) and µs per
stream per step. The single-stream Detector on one CPU thread is the baseline (its streams per
core). Without --model a model with random weights is exported (cost does not depend on them).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_runtime import random_model  # noqa: E402

STEP_US = 80_000
CHUNK = 1280
POOL = 8  # distinct (B, 1280) blocks of audio, cycled


def time_steps(step, blocks: list[np.ndarray], steps: int, warmup: int = 20) -> dict:
    for i in range(warmup):
        step(blocks[i % len(blocks)])
    times = []
    for i in range(steps):
        start = time.perf_counter()
        step(blocks[i % len(blocks)])
        times.append(time.perf_counter() - start)
    us = np.array(times) * 1e6
    return {"median_us": round(float(np.median(us)), 1), "p99_us": round(float(np.percentile(us, 99)), 1)}


def capacity(row: dict, streams: int) -> dict:
    """Streams one such process serves in real time, and µs per stream per step."""
    row["streams_real_time"] = int(streams * STEP_US / row["median_us"])
    row["us_per_stream"] = round(row["median_us"] / streams, 2)
    return row


def variants(which: str) -> list[tuple[str, list[str], int]]:
    """(name, providers, threads): CUDA if there is one, then the CPU with 1 thread and with every core."""
    import onnxruntime as ort

    found = []
    if which in ("all", "cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            print("no CUDA provider (onnxruntime-gpu and a GPU are needed): CUDA rows skipped", file=sys.stderr)
        else:
            found.append(("CUDA", ["CUDAExecutionProvider", "CPUExecutionProvider"], 1))
    if which in ("all", "cpu"):
        found.append(("CPU, 1 thread", ["CPUExecutionProvider"], 1))
        cores = os.cpu_count() or 1
        if cores > 1:
            found.append((f"CPU, {cores} threads", ["CPUExecutionProvider"], cores))
    return found


def gpu_name() -> str | None:
    try:
        import subprocess

        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True
        )
        return out.stdout.strip() or None
    except OSError:
        return None


def table(results: dict) -> str:
    lines = [
        "| provider | streams | ms per 80 ms step (median) | p99 | streams in real time | µs per stream |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['provider']} | {row['streams']} | {row['median_us'] / 1000:.2f} | {row['p99_us'] / 1000:.2f} "
            f"| {row['streams_real_time']} | {row['us_per_stream']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="an exported model folder (default: random weights)")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--steps", type=int, default=200, help="timed steps per row")
    parser.add_argument("--providers", default="all", choices=["all", "cuda", "cpu"], help="which rows to run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    from wakeword.export import export_server
    from wakeword.runtime import Detector
    from wakeword.server import SERVER, BatchDetector

    work = Path(tempfile.mkdtemp(prefix="wakeword-bench-server-"))
    try:
        model = Path(args.model) if args.model else random_model(work, int8=False)
        if not (model / SERVER).exists():
            if args.model:  # never write into the user's folder unasked: export a copy
                model = shutil.copytree(model, work / "model")
            export_server(model)
        rng = np.random.default_rng(0)
        rows = []
        single = Detector([model], providers="CPUExecutionProvider")
        blocks = [rng.normal(0, 0.1, CHUNK).astype(np.float32) for _ in range(POOL)]
        row = time_steps(single.process, blocks, args.steps)
        rows.append(capacity({"provider": "single-stream Detector, CPU 1 thread", "streams": 1, **row}, 1))
        for name, providers, threads in variants(args.providers):
            for streams in args.streams:
                batch = BatchDetector(model, streams, providers=providers, threads=threads)
                blocks = [rng.normal(0, 0.1, (streams, CHUNK)).astype(np.float32) for _ in range(POOL)]
                row = time_steps(batch.process, blocks, args.steps)
                rows.append(capacity({"provider": name, "streams": streams, **row}, streams))
                print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results = {
        "command": shared_data.shown_command("tools/bench_server.py", sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores" + (f", {gpu_name()}" if gpu_name() else ""),
        "rows": rows,
    }
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
