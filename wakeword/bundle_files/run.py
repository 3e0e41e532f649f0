#!/usr/bin/env python3
"""Wake-word runner of an embedded bundle: numpy and onnxruntime only (sounddevice for `listen`).

    python3 run.py detect recording.wav [...]   one JSON line per detection, as `wakeword detect`
    python3 run.py score recording.wav          time and score of every 80 ms step (CSV), as `wakeword score`
    python3 run.py listen [--device NAME]       detect from the microphone until stopped
    python3 run.py check                        versions, models, and the CPU one 80 ms step takes here

Recordings must be 16-bit PCM WAV at 16 kHz, mono: the board has no resampler. Convert elsewhere,
e.g. `sox in.wav -r 16000 -c 1 -b 16 out.wav`. Errors are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import sys
import time
import types
import wave
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = HERE / "models"
SAMPLE_RATE = 16000
CHUNK = 1280  # 80 ms: one step of the detector, and the block the microphone is read in
# Imported when wakeword/audio.py loads (to decode and resample any file) but never called here.
# Where they are not installed, a stand-in takes their place; it raises if anything does use it.
IMPORTED_BUT_UNUSED = ("soundfile", "soxr")

log = logging.getLogger("wakeword.run")


class StartupError(Exception):
    """A one-line error before the bundle's own error types can be imported."""


def stand_in(name: str, error: type[Exception]) -> types.ModuleType:
    class Absent(types.ModuleType):
        def __getattr__(self, attr: str):
            if attr.startswith("__"):
                raise AttributeError(attr)
            raise error(f"{name} is not installed: the bundle reads 16 kHz mono 16-bit WAV itself")

    return Absent(name)


def load_runtime() -> types.ModuleType:
    """The bundle's copy of wakeword.runtime (never an installed wakeword package)."""
    # The package targets 3.11, but a board's python may be older: say so instead of a SyntaxError later.
    if sys.version_info < (3, 10):  # noqa: UP036
        raise StartupError(f"Python {platform.python_version()} is too old: the runtime needs Python 3.10 or newer")
    for required in ("numpy", "onnxruntime"):
        try:
            importlib.import_module(required)
        except ImportError as exc:
            raise StartupError(f"{required} is not usable ({exc}): pip install numpy onnxruntime") from None
    sys.path.insert(0, str(HERE))  # the copy next to this file comes first, whatever else is installed
    from wakeword.errors import AudioError

    for name in IMPORTED_BUT_UNUSED:
        try:
            importlib.import_module(name)
        except (ImportError, OSError):  # soundfile raises OSError when libsndfile is missing
            sys.modules[name] = stand_in(name, AudioError)
    return importlib.import_module("wakeword.runtime")


def read_wav(path: Path):
    """int16 samples of a 16 kHz mono 16-bit PCM WAV file; AudioError with the reason for anything else."""
    import numpy as np

    from wakeword.errors import AudioError

    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            data = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        reason = str(exc) or "truncated header"
        raise AudioError(
            f"{path}: not a PCM WAV file ({reason}); convert it: sox IN -r 16000 -c 1 -b 16 OUT.wav"
        ) from None
    convert = f"; convert it: sox {path} -r 16000 -c 1 -b 16 OUT.wav"
    if channels != 1:
        raise AudioError(f"{path}: {channels} channels, the runner takes mono" + convert)
    if width != 2:
        raise AudioError(f"{path}: {8 * width}-bit samples, the runner takes 16-bit PCM" + convert)
    if rate != SAMPLE_RATE:
        raise AudioError(f"{path}: {rate} Hz, the runner takes {SAMPLE_RATE} Hz" + convert)
    samples = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise AudioError(f"{path}: contains no audio samples")
    return samples


def model_dirs(chosen: list[str] | None) -> list[Path]:
    from wakeword.errors import ModelError

    if chosen:
        return [Path(m) for m in chosen]
    found = sorted(card.parent for card in MODELS.glob("*/card.json"))
    if not found:
        raise ModelError(f"{MODELS}: no models (expected models/NAME/card.json)")
    return found


def make_detector(runtime: types.ModuleType, args: argparse.Namespace):
    return runtime.Detector(
        model_dirs(args.model), providers=["CPUExecutionProvider"], threshold=args.threshold, int8=not args.fp32
    )


def file_steps(runtime: types.ModuleType, args: argparse.Namespace, path: Path):
    """Stream a file through a fresh detector in 80 ms chunks, as the microphone feeds it."""
    import numpy as np

    samples = read_wav(path)
    detector = make_detector(runtime, args)
    detections, rows = [], []
    for start in range(0, len(samples), CHUNK):
        found, scores = detector.process_scores(samples[start : start + CHUNK])
        detections += found
        rows.append(scores)
    return detector, detections, np.concatenate(rows)


def cmd_detect(runtime: types.ModuleType, args: argparse.Namespace) -> int:
    for name in args.audio:
        _, detections, _ = file_steps(runtime, args, Path(name))
        for d in detections:
            print(json.dumps({"file": name, **d.as_dict()}), flush=True)
    return 0


def cmd_score(runtime: types.ModuleType, args: argparse.Namespace) -> int:
    detector, _, scores = file_steps(runtime, args, Path(args.audio))
    names = [m.phrase.replace(" ", "_") for m in detector.models]
    print("time," + ",".join(f"score_{n}" for n in names))
    for step, row in enumerate(scores):
        print(f"{(step + 1) * CHUNK / SAMPLE_RATE:.2f}," + ",".join(f"{v:.6f}" for v in row))
    return 0


def cmd_listen(runtime: types.ModuleType, args: argparse.Namespace) -> int:
    from wakeword.errors import WakewordError

    try:
        import sounddevice as sd
    except ImportError:
        raise WakewordError("listening needs sounddevice: pip install sounddevice") from None
    except OSError:  # raised at import when PortAudio is missing
        raise WakewordError("PortAudio library not found: sudo apt install libportaudio2") from None
    if args.list_devices:
        print(sd.query_devices())
        return 0
    detector = make_detector(runtime, args)
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    try:
        # 16 kHz mono int16 straight from the device: ALSA's default and plughw devices convert rate and
        # channels themselves, so nothing needs resampling here.
        stream = sd.InputStream(samplerate=SAMPLE_RATE, channels=1, dtype="int16", blocksize=CHUNK, device=device)
    except (sd.PortAudioError, ValueError) as exc:
        raise WakewordError(
            f"cannot open the microphone at 16 kHz mono ({str(exc).splitlines()[0]}); "
            "list devices with --list-devices and pick one with --device "
            "(an ALSA 'default' or 'plughw' device converts)"
        ) from None
    with stream:
        log.info("listening for %s", ", ".join(repr(m.phrase) for m in detector.models))
        while True:
            block, overflowed = stream.read(CHUNK)
            if overflowed:
                log.warning("input overflow: audio was dropped (is the CPU busy?)")
            for d in detector.process(block[:, 0]):
                print(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **d.as_dict()}), flush=True)


def cmd_check(runtime: types.ModuleType, args: argparse.Namespace) -> int:
    """Everything a deployment wants to know in one JSON object, including the CPU a step takes here."""
    import numpy as np
    import onnxruntime as ort

    detector = make_detector(runtime, args)
    audio = np.random.default_rng(0).normal(0, 0.05, args.seconds * SAMPLE_RATE).astype(np.float32)
    start = time.process_time()
    for i in range(0, len(audio), CHUNK):
        detector.process(audio[i : i + CHUNK])
    cpu_s = time.process_time() - start
    steps = len(audio) // CHUNK
    info = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": ort.__version__,
        "runtime": str(Path(runtime.__file__).parent),
        "models": [{"path": str(m.path), "phrase": m.phrase, "threshold": m.threshold} for m in detector.models],
        "graphs": "fp32" if args.fp32 else "int8",
        "torch_loaded": "torch" in sys.modules,
        "us_per_step": round(cpu_s / steps * 1e6, 1),
        "cpu_percent_of_one_core": round(cpu_s / (steps * CHUNK / SAMPLE_RATE) * 100, 2),
    }
    print(json.dumps(info))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="run.py", description="wake-word detection from an embedded bundle")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", action="append", help="model folder (repeatable; default: every one in models/)")
        p.add_argument("--threshold", type=float, help="override the card's threshold")
        p.add_argument("--fp32", action="store_true", help="use the fp32 graphs (bundles exported with them)")

    p = sub.add_parser("detect", help="one JSON line per detection in each WAV file")
    p.add_argument("audio", nargs="+", help="16 kHz mono 16-bit WAV files")
    common(p)
    p.set_defaults(func=cmd_detect)
    p = sub.add_parser("score", help="CSV of the score of every 80 ms step of a WAV file")
    p.add_argument("audio", help="a 16 kHz mono 16-bit WAV file")
    common(p)
    p.set_defaults(func=cmd_score)
    p = sub.add_parser("listen", help="detect from the microphone (needs sounddevice)")
    p.add_argument("--device", help="input device: index or part of its name (default: the system's)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    common(p)
    p.set_defaults(func=cmd_listen)
    p = sub.add_parser("check", help="versions, models and CPU per 80 ms step, as JSON")
    p.add_argument("--seconds", type=int, default=20, help="seconds of noise to time (default 20)")
    common(p)
    p.set_defaults(func=cmd_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="run.py: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        runtime = load_runtime()
        from wakeword.errors import WakewordError
    except StartupError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        return args.func(runtime, args)
    except WakewordError as exc:
        print(f"run.py: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `run.py score x.wav | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
