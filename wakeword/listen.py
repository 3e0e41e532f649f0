"""The live microphone daemon: `wakeword listen MODEL...` prints one JSON line per detection, for months.

    PortAudio thread   callback: copy the block into a bounded queue (never blocks; counts drops)
    worker thread      queue -> 16 kHz mono (soxr stream) -> [energy gate] -> Detector -> JSON line, --exec
                       [--keep: ring buffer of the newest audio -> detection clips, ambient snippets]
    main thread        supervisor: signals, --stats, overflow log, device lost -> reconnect with backoff

The device is opened at its own rate (a plughw/ALSA resampler is worse than soxr) with a fixed 80 ms
block. With the gate off the detector sees exactly the samples `--record` writes, so `wakeword detect`
on that file gives the same events: the live path and the file path are one code path.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TextIO

import numpy as np
import soxr

from wakeword.audio import SAMPLE_RATE
from wakeword.errors import WakewordError
from wakeword.frontend import CHUNK_SAMPLES
from wakeword.microphone import MicrophoneError, input_devices, pick_channels, resolve_device, sounddevice
from wakeword.runtime import Detection, Detector

if TYPE_CHECKING:
    from wakeword.keep import Keeper

log = logging.getLogger(__name__)
stats_log = logging.getLogger(__name__ + ".stats")

BLOCK_S = 0.08  # one detector step per callback: the lowest latency that costs no extra wake-ups
QUEUE_S = 4.0  # audio the queue holds while the worker is late (then blocks are dropped, and counted)
STALL_S = 2.0  # no callback for this long: the device is gone even if PortAudio did not say so
BACKOFF_MIN_S, BACKOFF_MAX_S = 0.5, 5.0
STABLE_S = 10.0  # a stream that ran this long resets the backoff (one that dies at once keeps doubling it)
TICK_S = 0.1  # supervisor period: bounds the reaction to a signal (exit within 1 s) and to a lost device
CLOSE_TIMEOUT_S = 0.5  # PortAudio can hang closing a stream whose device stopped delivering
STEP_S = CHUNK_SAMPLES / SAMPLE_RATE
# --keep defaults (wakeword.keep holds the same values; that module is imported only when --keep is on).
DEFAULT_KEEP_MB = 200.0
DEFAULT_AMBIENT_EVERY_S = 60.0
AMBIENT_SNIPPET_S = 4.0


# --- 16 kHz mono, streaming ---------------------------------------------------------------------------


class Converter:
    """Device blocks (frames, channels) at any rate -> 16 kHz mono float32, resampled as one stream."""

    def __init__(self, rate: int, channels: int) -> None:
        self.rate, self.channels = rate, channels
        # A stream resampler keeps its filter state between blocks: resampling each block alone would
        # click at every block edge. soxr aligns output sample j with input time j / 16000.
        self.resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32") if rate != SAMPLE_RATE else None
        self.frames_in = 0
        self.samples_out = 0

    def __call__(self, block: np.ndarray) -> np.ndarray:
        mono = block[:, 0] if block.shape[1] == 1 else block.mean(axis=1, dtype=np.float32)
        out = self.resampler.resample_chunk(mono) if self.resampler is not None else mono
        self.frames_in += len(mono)
        self.samples_out += len(out)
        return np.ascontiguousarray(out, dtype=np.float32)

    @property
    def delay(self) -> float:
        """16 kHz samples the resampler has taken in but not yet given out."""
        return self.frames_in * SAMPLE_RATE / self.rate - self.samples_out


# --- voice-activity gate ------------------------------------------------------------------------------


class EnergyGate:
    """Open while an 80 ms step is `open_db` above the tracked noise floor, and for `hold_s` after.

    The floor follows quiet steps down at once and creeps up slowly, so a fan that starts keeps the
    gate open for a while (costs CPU, loses nothing) rather than closing it on speech.
    """

    MIN_FLOOR_DB = -70.0  # digital silence must not set a floor every hiss would open the gate from
    RISE_DB_PER_S = 0.5

    def __init__(self, open_db: float = 10.0, hold_s: float = 2.0) -> None:
        self.open_db = open_db
        self.hold_steps = round(hold_s / STEP_S)
        self.floor_db: float | None = None
        self.left = 0

    def reset(self) -> None:
        self.floor_db, self.left = None, 0

    def update(self, step: np.ndarray) -> bool:
        level = 10 * float(np.log10(np.mean(np.square(step, dtype=np.float64)) + 1e-12))
        if self.floor_db is None or level < self.floor_db:
            self.floor_db = max(level, self.MIN_FLOOR_DB)
        else:
            self.floor_db = min(level, self.floor_db + self.RISE_DB_PER_S * STEP_S)
        if level >= self.floor_db + self.open_db:
            self.left = self.hold_steps
        elif self.left > 0:
            self.left -= 1
        return self.left > 0


# --- the processing path: 16 kHz audio -> events ------------------------------------------------------


@dataclass
class Event:
    detection: Detection
    stream_s: float  # end of the firing step on the timeline of all 16 kHz audio heard (what --record holds)
    captured_at: float  # wall clock (time.time()) when that sample was captured


class Processor:
    """Cuts 16 kHz audio into 80 ms steps, gates them, runs the detector, maps events to wall time.

    Timeline: index 0 is the first 16 kHz sample heard; `origin` is the timeline index of the
    detector's sample 0 (it restarts at every reset), so an event's place is origin + end_s * 16000.
    """

    def __init__(self, detector: Detector, gate: EnergyGate | None = None, preroll_s: float = 1.0) -> None:
        self.detector = detector
        self.gate = gate
        self.preroll: deque[np.ndarray] = deque(maxlen=round(preroll_s / STEP_S))
        self.pending = np.zeros(0, np.float32)
        self.heard = 0  # 16 kHz samples converted so far (timeline length)
        self.origin = 0
        self.feeding = gate is None
        self.steps = 0  # steps cut
        self.steps_fed = 0  # steps the detector ran (the rest were gated out)

    def restart(self) -> None:
        """A gap in the audio (new stream): drop the partial step, back to the silence state."""
        self.pending = np.zeros(0, np.float32)
        self.detector.reset()
        self.origin = self.heard
        self.preroll.clear()
        self.feeding = self.gate is None
        if self.gate is not None:
            self.gate.reset()

    def push(self, audio: np.ndarray, end_time: float | None = None, delay: float = 0.0) -> list[Event]:
        """Feed 16 kHz mono; `end_time` is when the sample `delay` samples after the last one was captured."""
        start = self.heard - len(self.pending)  # timeline index of the first sample of the next step
        self.heard += len(audio)
        end_time = time.time() if end_time is None else end_time
        samples = np.concatenate([self.pending, audio]) if len(self.pending) else audio
        whole = len(samples) // CHUNK_SAMPLES * CHUNK_SAMPLES
        self.pending = samples[whole:].copy()
        events = []
        for offset in range(0, whole, CHUNK_SAMPLES):
            step = samples[offset : offset + CHUNK_SAMPLES]
            self.steps += 1
            if self.gate is not None:
                is_open = self.gate.update(step)
                if is_open and not self.feeding:
                    # The detector skipped the quiet audio, so its state is stale: back to the silence
                    # state (right: the gate closed on near-silence), then replay the buffered pre-roll
                    # so the onset of the phrase that opened the gate is heard.
                    self.detector.reset()
                    self.origin = start + offset - len(self.preroll) * CHUNK_SAMPLES
                    for old in self.preroll:
                        events += self._run(old, end_time, delay)
                    self.preroll.clear()
                self.feeding = is_open
                if not is_open:
                    self.preroll.append(step)
                    continue
            events += self._run(step, end_time, delay)
        return events

    def _run(self, step: np.ndarray, end_time: float, delay: float) -> list[Event]:
        self.steps_fed += 1
        events = []
        for d in self.detector.process(step):
            index = self.origin + round(d.end_s * SAMPLE_RATE)
            captured = end_time - (self.heard + delay - index) / SAMPLE_RATE
            events.append(Event(d, index / SAMPLE_RATE, captured))
        return events


# --- --exec -------------------------------------------------------------------------------------------


class CommandRunner:
    """Starts `--exec` per detection without waiting; reaps finished ones; at most `limit` at once."""

    def __init__(self, command: str, limit: int = 4) -> None:
        self.command, self.limit = command, limit
        self.running: list[subprocess.Popen] = []
        self.skipped = 0
        self.lock = threading.Lock()  # the worker starts commands, the supervisor reaps them too

    def start(self, env: dict[str, str]) -> None:
        with self.lock:
            self._reap()
            if len(self.running) >= self.limit:
                self.skipped += 1
                log.warning("--exec: %d commands still running; not starting one for this detection", self.limit)
                return
            try:
                process = subprocess.Popen(
                    self.command,
                    shell=True,
                    env={**os.environ, **env},
                    stdin=subprocess.DEVNULL,
                    stdout=sys.stderr.fileno(),  # stdout carries only the JSON lines
                    start_new_session=True,  # a Ctrl-C in the terminal is for the daemon, not its commands
                )
            except OSError as exc:
                log.error("--exec: cannot start %r: %s", self.command, exc)
                return
            self.running.append(process)

    def reap(self) -> None:
        with self.lock:
            self._reap()

    def _reap(self) -> None:
        still = []
        for p in self.running:
            code = p.poll()
            if code is None:
                still.append(p)
            elif code != 0:
                log.warning("--exec: command exited with status %d", code)
        self.running = still


# --- the daemon ---------------------------------------------------------------------------------------


@dataclass
class NewStream:
    """Queue marker: the blocks that follow come from a newly opened stream."""

    rate: int
    channels: int


def detection_record(event: Event, now: float) -> dict[str, Any]:
    d = event.detection
    return {
        "time": datetime.fromtimestamp(now).astimezone().isoformat(timespec="milliseconds"),
        "epoch": round(now, 3),
        "phrase": d.phrase,
        "score": round(d.score, 4),
        "latency_ms": round((now - event.captured_at) * 1000),
        "stream_s": round(event.stream_s, 3),
        "model": d.model,
    }


def process_cpu_seconds() -> float:
    return time.process_time()  # user + system time of every thread of this process


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Daemon:
    """Owns the stream, the queue and the worker. serve() runs until stop is set; returns the exit code."""

    def __init__(
        self,
        processor: Processor,
        device: int | str | None = None,
        rate: int | None = None,
        channels: int | None = None,
        runner: CommandRunner | None = None,
        record: Any = None,  # an open soundfile.SoundFile, 16 kHz mono
        stats_s: float = 0.0,
        out: TextIO | None = None,
        stop: threading.Event | None = None,
        keeper: Keeper | None = None,
    ) -> None:
        self.processor = processor
        self.keeper = keeper
        self.device, self.rate, self.channels = device, rate, channels
        self.runner = runner
        self.record = record
        self.stats_s = stats_s
        self.out = out or sys.stdout
        self.queue: queue.Queue = queue.Queue(maxsize=max(2, round(QUEUE_S / BLOCK_S)))
        self.stop = stop or threading.Event()
        self.exit_code = 0
        self.stream: Any = None
        self.stream_rate = 0
        self.stream_info: dict[str, Any] = {}
        self.finished = threading.Event()  # set by PortAudio when the stream ends by itself (device error)
        self.last_data = time.monotonic()
        self.opened_at = 0.0
        self.overflows = self.dropped = self.detections = self.reconnects = 0
        self.worker = threading.Thread(target=self.work, name="wakeword-worker", daemon=True)

    # PortAudio's thread: copy and go. No locks, no logging, no waiting.
    def callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.time()
        self.last_data = time.monotonic()
        if status.input_overflow:
            self.overflows += 1
        # The ADC time of the block's first frame is on PortAudio's clock; its distance from "now" on
        # the same clock dates the block on the wall clock. It is an estimate (ALSA's delay report):
        # a last frame dated after "now" is dated "now", and so are backends that leave it 0.
        lag = time_info.currentTime - time_info.inputBufferAdcTime
        end_time = now
        if time_info.inputBufferAdcTime > 0 and 0 <= lag < 1:
            end_time = min(now, now - lag + frames / self.stream_rate)
        try:
            self.queue.put_nowait((indata.copy(), end_time))
        except queue.Full:
            self.dropped += 1

    def open_stream(self) -> None:
        """Open and start the input stream; MicrophoneError (or PortAudioError) when it cannot be."""
        sd = sounddevice()
        info = self.pick_device()
        rate = self.rate or info["rate"]
        channels = self.channels or pick_channels(sd, info, rate)
        self.finished.clear()
        try:
            stream = sd.InputStream(
                device=info["index"],
                samplerate=rate,
                channels=channels,
                dtype="float32",
                blocksize=round(rate * BLOCK_S),  # fixed: with 0, ALSA hands over 1 to 139 frames at a time
                callback=self.callback,
                finished_callback=self.finished.set,
            )
        except sd.PortAudioError as exc:
            raise MicrophoneError(
                f"cannot open input device {info['index']} ({info['name']}) at {rate} Hz, {channels} channel(s): "
                f"{exc}; pick another with --device (see 'wakeword devices')"
            ) from None
        self.stream_rate = rate
        self.queue.put(NewStream(rate, channels))
        self.last_data = self.opened_at = time.monotonic()
        try:
            stream.start()
        except sd.PortAudioError as exc:
            stream.close()
            raise MicrophoneError(f"cannot start input device {info['index']} ({info['name']}): {exc}") from None
        self.stream, self.stream_info = stream, info
        log.info("listening on %s (device %d) at %d Hz, %d channel(s)", info["name"], info["index"], rate, channels)

    def pick_device(self) -> dict[str, Any]:
        if self.stream_info:  # reconnecting: the same device by name (indexes move as devices come and go)
            same = [d for d in input_devices() if d["name"] == self.stream_info["name"]]
            if same:
                return same[0]
        try:
            return resolve_device(self.device)
        except MicrophoneError as exc:
            raise MicrophoneError(f"{exc}; see 'wakeword devices'") from None

    def close_stream(self) -> bool:
        """Close the stream; False if PortAudio hung (then nothing else of PortAudio can be trusted)."""
        stream, self.stream = self.stream, None
        if stream is None:
            return True
        closer = threading.Thread(target=stream.close, kwargs={"ignore_errors": True}, daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        return not closer.is_alive()

    def lost(self) -> str | None:
        """Why the open stream is no good any more, or None."""
        if self.finished.is_set() or not self.stream.active:
            return "the stream stopped"
        silent = time.monotonic() - self.last_data
        if silent > STALL_S:
            return f"no audio for {silent:.1f} s"
        return None

    def reconnect(self) -> None:
        """Re-read the device list (PortAudio reads it only at initialisation) and open the stream."""
        sd = sounddevice()
        if sd._initialized:  # a failed _initialize leaves it at 0: terminating again would raise
            sd._terminate()
        sd._initialize()
        self.open_stream()

    def serve(self) -> int:
        """Supervise until stop: reconnect lost devices, log overflows, drops and stats."""
        sd = sounddevice()
        self.worker.start()
        backoff, retry_at = BACKOFF_MIN_S, 0.0
        logged = {"overflows": 0, "dropped": 0}
        next_warning = 0.0
        next_stats = time.monotonic() + self.stats_s
        cpu_mark, wall_mark = process_cpu_seconds(), time.monotonic()
        while not self.stop.wait(TICK_S):
            now = time.monotonic()
            if self.stream is None and now >= retry_at:
                try:
                    self.reconnect()
                    self.reconnects += 1
                    log.warning("audio device back: reconnected to %s", self.stream_info["name"])
                except (MicrophoneError, sd.PortAudioError) as exc:
                    log.warning("audio device unavailable (%s); next try in %.1f s", exc, backoff)
                    retry_at, backoff = now + backoff, min(backoff * 2, BACKOFF_MAX_S)
            elif self.stream is not None and (reason := self.lost()):
                if now - self.opened_at > STABLE_S:
                    backoff = BACKOFF_MIN_S
                log.warning("audio device lost (%s); reconnecting in %.1f s", reason, backoff)
                if not self.close_stream():
                    return self.give_up("PortAudio hung closing the lost stream")
                retry_at, backoff = now + backoff, min(backoff * 2, BACKOFF_MAX_S)
            counts = {"overflows": self.overflows, "dropped": self.dropped}
            if counts != logged and now >= next_warning:  # at most one warning per 10 s
                log.warning(
                    "lost audio: %d input overflow(s) (the device), %d block(s) dropped (the detector was late)",
                    counts["overflows"] - logged["overflows"],
                    counts["dropped"] - logged["dropped"],
                )
                logged, next_warning = counts, now + 10.0
            if self.runner is not None:
                self.runner.reap()
            if self.stats_s > 0 and now >= next_stats:
                cpu, wall = process_cpu_seconds(), time.monotonic()
                stats_log.info(
                    "stats: cpu %.1f%% rss %.0f MB queue %d/%d overflows %d dropped %d reconnects %d "
                    "detections %d detector ran %.0f%% of steps",
                    100 * (cpu - cpu_mark) / max(wall - wall_mark, 1e-9),
                    rss_bytes() / 2**20,
                    self.queue.qsize(),
                    self.queue.maxsize,
                    self.overflows,
                    self.dropped,
                    self.reconnects,
                    self.detections,
                    100 * self.processor.steps_fed / max(self.processor.steps, 1),
                )
                cpu_mark, wall_mark, next_stats = cpu, wall, now + self.stats_s
        if not self.close_stream():
            return self.give_up("PortAudio hung closing the stream")
        self.worker.join(CLOSE_TIMEOUT_S)
        return self.exit_code

    def give_up(self, why: str) -> int:
        # Pa_Terminate (at exit, or to reconnect) would hang the same way: leave now and let the
        # service manager (Restart=on-failure) start a fresh process.
        log.error("%s; exiting so that the service manager restarts the daemon", why)
        logging.shutdown()
        sys.stdout.flush()
        os._exit(1)

    # The worker thread.
    def work(self) -> None:
        converter: Converter | None = None
        try:
            while not self.stop.is_set():
                try:
                    item = self.queue.get(timeout=TICK_S)
                except queue.Empty:
                    continue
                if isinstance(item, NewStream):
                    if self.processor.heard:
                        log.info("new stream: detector reset (the audio had a gap)")
                        self.processor.restart()
                    converter = Converter(item.rate, item.channels)
                    continue
                if converter is None:
                    continue
                block, end_time = item
                self.hear(converter(block), end_time, converter.delay)
        except BrokenPipeError:
            log.error("stdout was closed; stopping")
            self.exit_code = 1
            self.stop.set()
        except Exception:
            log.exception("the detector failed; stopping")
            self.exit_code = 1
            self.stop.set()
        finally:
            if self.keeper is not None:
                self.keeper.flush()  # the detections still waiting for their last AFTER_S of audio

    def hear(self, audio: np.ndarray, end_time: float, delay: float = 0.0) -> None:
        """One block of 16 kHz mono through the processing path: --record, detect, JSON line, --keep.

        `end_time` is when the sample `delay` samples after the block's last one was captured. The
        benchmark of adaptation (tools/bench_adapt.py) feeds a file through here: the same path.
        """
        if self.record is not None:
            self.record.write(audio)
        for event in self.processor.push(audio, end_time, delay):
            kept = None
            if self.keeper is not None:
                d = event.detection
                index = round(event.stream_s * SAMPLE_RATE)
                kept = self.keeper.detected(index, event.captured_at, d.phrase, d.score, d.model, event.stream_s)
            self.emit(event, kept)
        if self.keeper is not None:
            self.keeper.hear(audio, end_time - delay / SAMPLE_RATE)

    def emit(self, event: Event, kept: str | None = None) -> None:
        now = time.time()
        record = detection_record(event, now)
        if kept is not None:
            record["id"] = kept  # the name `wakeword feedback` knows it by
        line = json.dumps(record)
        self.out.write(line + "\n")
        self.out.flush()
        self.detections += 1
        if self.runner is not None:
            env = {f"WAKEWORD_{k.upper()}": str(v) for k, v in record.items()}
            self.runner.start({**env, "WAKEWORD_JSON": line})


# --- command line -------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="+", help="model folder(s) (exported: card.json + ONNX graphs)")
    p.add_argument("--device", help="input device index or (part of its) name; see 'wakeword devices'")
    p.add_argument("--rate", type=int, help="capture rate in Hz (default: the device's own rate)")
    p.add_argument("--channels", type=int, help="capture channels, averaged to mono (default: 1 when offered)")
    p.add_argument("--threshold", type=float, help="override the models' calibrated thresholds")
    p.add_argument("--refractory", type=float, help="seconds after a detection during which it cannot fire again")
    p.add_argument("--int8", action="store_true", help="run the int8 graphs (made by 'wakeword export --int8')")
    # The steps are tiny: a GPU adds transfer latency and memory for nothing.
    p.add_argument("--providers", default="CPUExecutionProvider", help="onnxruntime providers (default CPU)")
    p.add_argument("--exec", dest="exec_cmd", metavar="CMD", help="shell command run per detection (WAKEWORD_* env)")
    p.add_argument("--exec-limit", type=int, default=4, help="at most this many --exec commands at once (default 4)")
    p.add_argument(
        "--gate",
        choices=["off", "energy"],
        default="off",
        help="energy: skip the detector while the room is quiet (saves CPU)",
    )
    p.add_argument("--gate-db", type=float, default=10.0, help="energy gate: dB above the noise floor that opens it")
    p.add_argument("--stats", type=float, default=0.0, metavar="SECONDS", help="log a health line every SECONDS")
    p.add_argument("--record", metavar="WAV", help="also write the 16 kHz audio the detector hears (debugging)")
    keep = p.add_argument_group(
        "keeping audio for adaptation (off unless --keep is given)",
        "With --keep DIR the daemon writes the audio around each detection (DIR/detections/<id>.wav, 2 s "
        "before to 0.5 s after, with <id>.json) and a short ambient snippet every --ambient-every seconds "
        "(DIR/ambient/). DIR never grows past --keep-mb: the oldest ambient snippets go first, then the "
        "oldest unmarked detections. Mark detections with 'wakeword feedback DIR', then adapt the model "
        "with 'wakeword train --resume MODEL --feedback DIR'. The audio stays on this machine.",
    )
    keep.add_argument("--keep", metavar="DIR", help="keep detections and ambient audio in DIR (opt-in)")
    keep.add_argument(
        "--keep-mb",
        type=float,
        default=DEFAULT_KEEP_MB,
        metavar="MB",
        help=f"disk cap for DIR in MB (default {DEFAULT_KEEP_MB:g})",
    )
    keep.add_argument(
        "--ambient-every",
        type=float,
        default=DEFAULT_AMBIENT_EVERY_S,
        metavar="SECONDS",
        help=f"keep a {AMBIENT_SNIPPET_S:g} s ambient snippet with no detection this often "
        f"(default {DEFAULT_AMBIENT_EVERY_S:g}; 0: none)",
    )
    p.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="stderr log level"
    )


def run(args: argparse.Namespace) -> int:
    logging.getLogger().setLevel(args.log_level.upper())
    stats_log.setLevel(logging.INFO)  # --stats was asked for: show it whatever the level
    if args.rate is not None and args.rate < 8000:
        raise WakewordError(f"--rate {args.rate}: below 8000 Hz there is no speech band left")
    keeper = make_keeper(args.keep, args.keep_mb, args.ambient_every) if args.keep else None
    # SIGTERM (systemd stop) and Ctrl-C only set this: the supervisor notices within TICK_S, closes the
    # stream and returns 0. Installed first, so a stop during start-up is clean too.
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    record = None
    try:
        sounddevice()  # MicrophoneError naming the package when PortAudio is missing
        detector = Detector(
            args.model, providers=args.providers, threshold=args.threshold, refractory_s=args.refractory, int8=args.int8
        )
        if not input_devices():
            raise MicrophoneError(
                "no input device found: connect a microphone or start the audio server (PulseAudio/PipeWire); "
                "'wakeword devices' lists what PortAudio sees"
            )
        if args.record:
            import soundfile as sf

            try:
                record = sf.SoundFile(args.record, "w", SAMPLE_RATE, 1, "FLOAT")
            except (sf.LibsndfileError, RuntimeError, OSError) as exc:
                raise WakewordError(f"--record {args.record}: cannot write it ({exc})") from None
        device: int | str | None = int(args.device) if args.device and args.device.isdigit() else args.device
        daemon = Daemon(
            Processor(detector, EnergyGate(args.gate_db) if args.gate == "energy" else None),
            device,
            args.rate,
            args.channels,
            CommandRunner(args.exec_cmd, args.exec_limit) if args.exec_cmd else None,
            record,
            args.stats,
            stop=stop,
            keeper=keeper,
        )
        daemon.open_stream()  # at start a missing device is the user's to fix: a clear error, exit 2
        phrases = ", ".join(m.phrase for m in detector.models)
        extra = f"; --exec {shlex.quote(args.exec_cmd)}" if args.exec_cmd else ""
        log.info("wake word(s): %s; gate %s%s", phrases, args.gate, extra)
        if keeper is not None:
            log.info(
                "keeping detections and an ambient snippet every %g s in %s (at most %g MB)",
                args.ambient_every,
                args.keep,
                args.keep_mb,
            )
        code = daemon.serve()
        log.info("stopped")
        return code
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if record is not None:
            record.close()


def make_keeper(folder: str, cap_mb: float, ambient_every_s: float) -> Keeper:
    """The --keep writer, its folder created and checked now (a bad DIR is an error at start, exit 2)."""
    from pathlib import Path

    from wakeword.keep import AMBIENT_S, Keeper, KeepFolder

    if not cap_mb > 0:
        raise WakewordError(f"--keep-mb {cap_mb:g}: give a positive size in MB")
    if ambient_every_s != 0 and not ambient_every_s >= AMBIENT_S:
        raise WakewordError(
            f"--ambient-every {ambient_every_s:g}: give 0 (no ambient audio) or at least {AMBIENT_S:g} s "
            "(the snippet's length)"
        )
    keep_folder = KeepFolder(Path(folder), round(cap_mb * 2**20))
    keep_folder.create()
    return Keeper(keep_folder, ambient_every_s)
