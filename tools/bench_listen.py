"""Figures for the microphone daemon, `wakeword listen` (issue 6).

    python tools/bench_listen.py [--model MODEL_DIR [--positives DIR]] [--live-seconds 75] [--hours 2]
                                 [--gate-hours 1] [--parts live live-gate memory gate] [--out docs/listen.json]

- live: the daemon as a user runs it (a subprocess; the device's own 44.1 kHz, soxr to 16 kHz) listening
  to a private PulseAudio server's virtual microphone (tests/audio_server.py) fed in real time with
  a chime every 4 to 6 s among speech-like sound: its CPU from /proc/PID/stat (utime + stime) over all
  but the first 10 s, and the latency from the end of each phrase (when the feeder wrote its last
  sample) to its JSON line;
- live-gate: the same in a quiet room (the gate's hour below), with --gate off and --gate energy;
- memory: `--hours` of audio through the daemon's processing path (queue -> worker -> converter ->
  detector -> JSON line, --exec) as fast as it goes, in a torch-free process; RSS sampled as it runs;
- gate: a mostly silent hour (-60 dBFS noise; two phrases a minute at -50 to -6 dBFS and some
  speech-like sound) through the processing path with the gate off and on: CPU seconds, and the
  phrases each finds (FRR).

Without --model the synthetic wake word below is used: a two-note chime that a head fitted in seconds
detects (the test of the daemon uses it too). With --model, --positives DIR gives clips of its phrase.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SR = 16000


# --- the synthetic wake word: a chime among speech-like sound and noise ----------------------------


def tone(seconds: float, hz: float, amplitude: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    ramp = np.minimum(1.0, np.minimum(t, seconds - t) / 0.01)  # 10 ms fades: no clicks
    return (amplitude * np.sin(2 * np.pi * hz * t) * ramp).astype(np.float32)


def chime(amplitude: float = 0.3) -> np.ndarray:
    """The 'phrase': 880 Hz then 1320 Hz, 0.25 s each."""
    return np.concatenate([tone(0.25, 880, amplitude), tone(0.25, 1320, amplitude)])


def speechlike(seconds: float, seed: int) -> np.ndarray:
    """Noise bursts at a syllable rate under a moving band (as tests/conftest.py's)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = rng.normal(0, 0.1, n).astype(np.float32)
    envelope = (np.sin(2 * np.pi * 3.0 * np.arange(n) / SR) > 0).astype(np.float32)
    sweep = np.sin(2 * np.pi * (200 + 1500 * np.arange(n) / n) * np.arange(n) / SR).astype(np.float32)
    return (x + 0.3 * sweep) * envelope


def distractor(rng: np.random.Generator) -> np.ndarray:
    """Something that is not the phrase: speech-like sound, a noise burst, or a tone away from its notes."""
    kind = rng.integers(3)
    if kind == 0:
        return speechlike(rng.uniform(1.0, 2.5), int(rng.integers(1 << 30))) * rng.uniform(0.3, 1.0)
    if kind == 1:
        return rng.normal(0, rng.uniform(0.005, 0.05), int(rng.uniform(0.5, 1.5) * SR)).astype(np.float32)
    hz = rng.choice([rng.uniform(200, 600), rng.uniform(2000, 4000)])
    return tone(rng.uniform(0.2, 0.6), hz, rng.uniform(0.05, 0.4))


def scene(
    rng: np.random.Generator, count: int, phrases: bool = True, amplitude: tuple[float, float] = (0.1, 0.5)
) -> tuple[np.ndarray, list[int]]:
    """Distractors and (with phrases) `count` chimes, 2.2 to 2.8 s apart (past the 2 s refractory time).
    Returns the audio and the sample index where each chime ends."""
    parts: list[np.ndarray] = [np.zeros(SR // 2, np.float32)]
    ends: list[int] = []
    for _ in range(count):
        if rng.random() < 0.8 or not phrases:
            parts += [distractor(rng), np.zeros(int(rng.uniform(0.3, 1.0) * SR), np.float32)]
        if phrases:
            parts.append(chime(rng.uniform(*amplitude)))
            ends.append(sum(len(p) for p in parts))
        parts.append(np.zeros(int(rng.uniform(2.2, 2.8) * SR), np.float32))
    audio = np.concatenate(parts)
    noise = rng.choice([0.0, rng.uniform(0.0005, 0.004)])
    audio = audio + rng.normal(0, noise, len(audio)).astype(np.float32)
    return np.clip(audio, -1, 1), ends


def build_chime_model(folder: Path, seed: int = 0, threshold: float = 0.5) -> Path:
    """An exported wake word for the chime, made in a few seconds: the pretrained encoder, a ConvHead with
    its random convolutions kept, and only its last linear layer fitted (logistic regression) on scenes.
    Needs torch (the train extra); the daemon that runs it does not."""
    import torch

    from wakeword import FEATURE_VERSION
    from wakeword.encoder import load_encoder
    from wakeword.export import export_model
    from wakeword.frontend import CHUNK_SAMPLES, log_mel
    from wakeword.model import EMBEDDING_SCALE, HEAD_STEPS, STREAM_PREROLL, WakeWordNet
    from wakeword.train import save

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: on a shared 2-core machine threads cost 5x more than they give
    try:
        torch.manual_seed(seed)
        encoder = load_encoder()
        net = WakeWordNet(encoder).eval()
        rng = np.random.default_rng(seed)
        features, labels = [], []
        with torch.no_grad():
            for k in range(8):
                audio, ends = scene(rng, 5, phrases=k % 4 != 3)
                padded = np.concatenate([np.zeros(STREAM_PREROLL, np.float32), audio])
                steps = len(audio) // CHUNK_SAMPLES
                mel = torch.from_numpy(log_mel(padded[: STREAM_PREROLL + steps * CHUNK_SAMPLES]))[None]
                embeddings = net.top(encoder.forward_bottom(mel))[0]
                windows = embeddings.unfold(0, HEAD_STEPS, 1).permute(0, 2, 1)  # one per step
                step_end = (np.arange(len(windows)) + 1) * CHUNK_SAMPLES
                label = np.zeros(len(windows))
                for end in ends:  # fire in the 3 steps after the chime ends; don't care about its tail
                    label[(step_end > end - 0.3 * SR) & (step_end < end + 1.2 * SR)] = -1
                    label[(step_end >= end) & (step_end < end + 3 * CHUNK_SAMPLES)] = 1
                keep = label >= 0
                features.append(net.head.convs(windows[keep].transpose(1, 2) * EMBEDDING_SCALE).flatten(1))
                labels.append(torch.from_numpy(label[keep]).float())
        x, y = torch.cat(features), torch.cat(labels)
        optimiser = torch.optim.Adam(net.head.out.parameters(), 0.05)
        for _ in range(2000):
            optimiser.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net.head.out(x).squeeze(-1), y)
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
    path = Path(folder) / "chime"
    card = {"phrase": "chime", "threshold": threshold, "feature_version": FEATURE_VERSION, "phrase_seconds": 0.5}
    save(net, path, card, [])
    export_model(path)
    return path


def match(found_s: list[float], truth_s: list[float], before: float = 0.5, after: float = 1.0) -> int:
    """How many true phrase ends have a detection within [end - before, end + after]."""
    return sum(any(t - before <= f <= t + after for f in found_s) for t in truth_s)


# --- live: CPU and latency through the virtual microphone ----------------------------------------------


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime (fields 14, 15)


def busy_audio(seconds: float) -> tuple[np.ndarray, list[int]]:
    """Scenes back to back: a chime every 4 to 6 s among speech-like sound and noise."""
    rng = np.random.default_rng(7)
    parts, ends, position = [], [], 0
    while position < seconds * SR:
        audio, scene_ends = scene(rng, 6, amplitude=(0.2, 0.5))
        ends += [position + e for e in scene_ends]
        parts.append(audio)
        position += len(audio)
    audio = np.concatenate(parts)[: int(seconds * SR)]
    return audio, [e for e in ends if e < len(audio) - 1.5 * SR]


def quiet_audio(seconds: float) -> tuple[np.ndarray, list[int]]:
    """The gate's quiet room (quiet_hour), as long as asked."""
    parts, ends = [], []
    for audio, minute_ends in quiet_hour(np.ceil(seconds / 60) / 60, None):
        ends += [len(parts) * 60 * SR + e for e in minute_ends]
        parts.append(audio)
    audio = np.concatenate(parts)[: int(seconds * SR)]
    return audio, [e for e in ends if e < len(audio) - 1.5 * SR]


def bench_live(model: Path, audio: np.ndarray, ends: list[int], extra: list[str]) -> dict:
    from tests.audio_server import AudioServer

    with tempfile.TemporaryDirectory() as tmp, AudioServer(Path(tmp)) as server:
        command = [sys.executable, "-m", "wakeword", "listen", str(model), "--device", "pulse", *extra]
        daemon = subprocess.Popen(
            command, env=server.client_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        lines: list[dict] = []
        errors: list[str] = []
        ready = threading.Event()

        def read_out() -> None:
            for line in daemon.stdout:
                lines.append(json.loads(line))

        def read_err() -> None:
            for line in daemon.stderr:
                errors.append(line)
                if "listening on" in line:
                    ready.set()

        threading.Thread(target=read_out, daemon=True).start()
        threading.Thread(target=read_err, daemon=True).start()
        if not ready.wait(30):
            daemon.kill()
            raise RuntimeError("daemon did not start:\n" + "".join(errors))
        playback = server.play(audio)
        time.sleep(10)  # warm-up: imports, first allocations, PulseAudio's first buffers
        cpu0, wall0 = process_cpu_s(daemon.pid), time.monotonic()
        playback.wait()
        cpu1, wall1 = process_cpu_s(daemon.pid), time.monotonic()
        time.sleep(1.0)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(5)
    walls = [playback.wall_time(e - 1) for e in ends]
    latencies, reported = [], []
    for wall in walls:
        near = [d for d in lines if wall - 0.5 <= d["epoch"] <= wall + 1.0]
        if near:
            latencies.append(near[0]["epoch"] - wall)
            reported.append(near[0]["latency_ms"])
    ms = np.array(latencies) * 1000
    return {
        # The model folder is a temporary one: shown by name, not by this machine's path.
        "command": " ".join(["wakeword", *(Path(a).name if a.startswith("/") else a for a in command[3:])]),
        "cpu_percent_of_one_core": round(100 * (cpu1 - cpu0) / (wall1 - wall0), 2),
        "measured_seconds": round(wall1 - wall0, 1),
        "phrases": len(ends),
        "detected": len(latencies),
        "false_accepts": len(lines) - len(latencies),
        "latency_ms_median": round(float(np.median(ms)), 1) if len(ms) else None,
        "latency_ms_p90": round(float(np.percentile(ms, 90)), 1) if len(ms) else None,
        "latency_ms_max": round(float(ms.max()), 1) if len(ms) else None,
        "daemon_reported_latency_ms_median": float(np.median(reported)) if reported else None,
    }


# --- memory: hours of audio through the processing path -------------------------------------------------


class LineCounter:
    """A stdout stand-in that keeps nothing (a list of lines would itself grow)."""

    def __init__(self) -> None:
        self.lines = 0

    def write(self, text: str) -> int:
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass


def memory_worker(model: str, hours: float, rate: int = 44100) -> dict:
    """Runs in its own process (no torch): the daemon's worker fed as fast as it consumes."""
    import soxr

    from wakeword.listen import CommandRunner, Daemon, NewStream, Processor, rss_bytes
    from wakeword.runtime import Detector

    rng = np.random.default_rng(3)
    loop16, _ = scene(rng, 20)  # ~70 s with chimes, so events and --exec run all along
    loop = soxr.resample(loop16, SR, rate).astype(np.float32)[:, None]
    block = round(rate * 0.08)
    sink = LineCounter()
    daemon = Daemon(Processor(Detector([model])), runner=CommandRunner("true"), out=sink)
    daemon.worker.start()
    daemon.queue.put(NewStream(rate, 1))
    total = int(hours * 3600 * rate)
    sample_every = int(300 * rate)  # an RSS sample per 5 min of audio
    samples, fed, next_sample, started = [], 0, 0, time.monotonic()
    while fed < total:
        start = fed % (len(loop) - block)
        daemon.queue.put((loop[start : start + block], time.time()))  # blocking: measure, don't drop
        fed += block
        if fed >= next_sample:
            samples.append((round(fed / rate / 60, 1), round(rss_bytes() / 2**20, 2)))
            next_sample += sample_every
    while not daemon.queue.empty():
        time.sleep(0.05)
    time.sleep(0.2)
    samples.append((round(fed / rate / 60, 1), round(rss_bytes() / 2**20, 2)))
    daemon.stop.set()
    daemon.worker.join(2)
    elapsed = time.monotonic() - started
    baseline = next(mb for minute, mb in samples if minute >= 10)  # after warm-up (allocator, caches)
    return {
        "audio_hours": hours,
        "capture_rate": rate,
        "seconds": round(elapsed, 1),
        "faster_than_real_time": round(hours * 3600 / elapsed, 1),
        "detections": sink.lines,
        "rss_mb_at_10_min": baseline,
        "rss_mb_end": samples[-1][1],
        "rss_growth_mb": round(samples[-1][1] - baseline, 2),
        "rss_mb_max_minus_min_after_10_min": round(
            max(mb for m, mb in samples if m >= 10) - min(mb for m, mb in samples if m >= 10), 2
        ),
        "rss_samples_minute_mb": samples,
    }


def bench_memory(model: Path, hours: float) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from tools.bench_listen import memory_worker; "
        "print(json.dumps(memory_worker(sys.argv[2], float(sys.argv[3]))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(ROOT), str(model), str(hours)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"memory worker failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --- gate: a mostly silent hour -----------------------------------------------------------------------


def quiet_hour(hours: float, positives: list[np.ndarray] | None, seed: int = 11):
    """Minutes of low noise (-60 dBFS), each with two phrases at random levels (-50 to -6 dBFS peak; one
    right after speech-like sound, one alone after silence) and one more speech-like distractor: about 5 %
    of the time is sound. Yields (minute of audio, where its phrases end)."""
    rng = np.random.default_rng(seed)
    minute = 60 * SR
    for m in range(round(hours * 60)):
        audio = rng.normal(0, 0.001, minute).astype(np.float32)
        ends = []
        for k, at in enumerate((rng.uniform(3, 20), rng.uniform(26, 40))):
            level = float(np.exp(rng.uniform(np.log(0.003), np.log(0.5))))
            if positives:
                clip = positives[(2 * m + k) % len(positives)]
                phrase = clip / (np.abs(clip).max() + 1e-9) * level
            else:
                phrase = chime(level)
            at = int(at * SR)
            if k == 0:  # speech-like sound just before: the gate is already open when the phrase starts
                lead = speechlike(1.5, m) * 0.5
                audio[at - len(lead) - SR // 2 : at - SR // 2] += lead
            audio[at : at + len(phrase)] += phrase
            ends.append(at + len(phrase))
        other = speechlike(rng.uniform(1, 2), 1000 + m) * rng.uniform(0.2, 0.6)
        audio[45 * SR : 45 * SR + len(other)] += other
        yield np.clip(audio, -1, 1), ends


def bench_gate(model: Path, hours: float, positives: list[np.ndarray] | None) -> dict:
    from wakeword.listen import EnergyGate, Processor
    from wakeword.runtime import Detector

    results = {}
    for name in ("off", "energy"):
        processor = Processor(Detector([model]), EnergyGate() if name == "energy" else None)
        truth, found, cpu, offset = [], [], 0.0, 0
        for audio, ends in quiet_hour(hours, positives):
            truth += [(offset + e) / SR for e in ends]
            start = time.process_time()
            for i in range(0, len(audio), 1280):
                found += [e.stream_s for e in processor.push(audio[i : i + 1280])]
            cpu += time.process_time() - start
            offset += len(audio)
        hits = match(found, truth)
        results[name] = {
            "cpu_s": round(cpu, 1),
            "cpu_percent_of_one_core": round(100 * cpu / (offset / SR), 2),
            "steps_run_percent": round(100 * processor.steps_fed / processor.steps, 1),
            "phrases": len(truth),
            "detected": hits,
            "frr_percent": round(100 * (1 - hits / len(truth)), 1),
            "false_accepts": len(found) - hits,
        }
    off, on = results["off"], results["energy"]
    results["cpu_saved_percent"] = round(100 * (1 - on["cpu_s"] / off["cpu_s"]), 1)
    results["frr_change_points"] = round(on["frr_percent"] - off["frr_percent"], 1)
    results["hours"] = hours
    return results


# --- main ---------------------------------------------------------------------------------------------


def load_positives(folder: str | None) -> list[np.ndarray] | None:
    if not folder:
        return None
    from wakeword.audio import load_audio

    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
    return [load_audio(p) for p in files[:200]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="exported model folder (default: the synthetic chime wake word)")
    parser.add_argument("--positives", help="folder of clips of --model's phrase (for the gate's FRR)")
    parts = ["live", "live-gate", "memory", "gate"]
    parser.add_argument("--parts", nargs="+", default=parts, choices=parts)
    parser.add_argument("--live-seconds", type=float, default=75.0, help="audio played live (CPU over all but 10 s)")
    parser.add_argument("--hours", type=float, default=2.0, help="audio for the memory run")
    parser.add_argument("--gate-hours", type=float, default=1.0, help="audio for the gate run")
    parser.add_argument("--listen-args", default="", help="extra 'wakeword listen' options for the live run")
    parser.add_argument("--out", default=str(ROOT / "docs" / "listen.json"), help="JSON report ('-': stdout only)")
    args = parser.parse_args()

    out = Path(args.out) if args.out != "-" else None
    # Parts run one by one and each is saved as it ends: a rerun of some parts keeps the others' figures.
    report: dict = json.loads(out.read_text()) if out is not None and out.exists() else {}

    def save(key: str, value: dict, label: str) -> None:
        report[key] = value
        report["runs"] = {**report.get("runs", {}), key: run_info}
        print(f"{label}:", json.dumps({k: v for k, v in value.items() if k != "rss_samples_minute_mb"}), flush=True)
        if out is not None:
            out.write_text(json.dumps(report, indent=2) + "\n")

    run_info = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "model": args.model or "synthetic chime (tools/bench_listen.py build_chime_model)",
    }
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else build_chime_model(Path(tmp))
        if "live" in args.parts:
            audio, ends = busy_audio(args.live_seconds)
            save("live", bench_live(model, audio, ends, args.listen_args.split()), "live")
        if "live-gate" in args.parts:
            audio, ends = quiet_audio(args.live_seconds)
            runs = {
                gate: bench_live(model, audio, ends, ["--gate", gate, *args.listen_args.split()])
                for gate in ("off", "energy")
            }
            runs["cpu_saved_percent"] = round(
                100 * (1 - runs["energy"]["cpu_percent_of_one_core"] / runs["off"]["cpu_percent_of_one_core"]), 1
            )
            save("live_quiet_room", runs, "live, quiet room")
        if "memory" in args.parts:
            save("memory", bench_memory(model, args.hours), "memory")
        if "gate" in args.parts:
            save("gate", bench_gate(model, args.gate_hours, load_positives(args.positives)), "gate")
    if out is not None:
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
