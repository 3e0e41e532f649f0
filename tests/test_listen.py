"""`wakeword listen`: the processing path in-process, then the real daemon end to end through a software
sound card (a private PulseAudio server whose microphone this test feeds in real time; tests/audio_server.py).

The wake word is the synthetic chime of tools/bench_listen.py: a head fitted in seconds, its threshold
set between the scores of the phrases and of everything else in the recordings played here, so these
tests are about the daemon's audio path, not about a model's accuracy. The invariant they check: with
a bit-exact source, the live daemon reports exactly the events the file path (`Detector` over the
audio it heard) gives.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import soxr

from tests.audio_server import MISSING_REASON, PULSEAUDIO, AudioServer
from tools.bench_listen import SR, build_chime_model, chime, scene

ROOT = Path(__file__).resolve().parent.parent
needs_pulseaudio = pytest.mark.skipif(PULSEAUDIO is None, reason=MISSING_REASON)


def scores_around(model: Path, audio: np.ndarray, ends: list[int]) -> tuple[list[float], float]:
    """Peak score near each phrase end, and the highest score everywhere else (file path, 1 s lead-in)."""
    from wakeword.runtime import Detector

    lead = np.zeros(SR, np.float32)
    scores = Detector([model], threshold=2.0).process_scores(np.concatenate([lead, audio]))[1][:, 0]
    step_end = (np.arange(len(scores)) + 1) * 1280 - SR
    near = np.zeros(len(scores), bool)
    peaks = []
    for end in ends:
        near |= (step_end > end - 0.5 * SR) & (step_end < end + 1.3 * SR)
        peaks.append(float(scores[(step_end > end - 0.3 * SR) & (step_end < end + 0.5 * SR)].max()))
    return peaks, float(scores[~near].max())


@pytest.fixture(scope="module")
def chime_model(tmp_path_factory):
    """The chime wake word and the recordings played to it; the threshold splits their offline scores."""
    model = build_chime_model(tmp_path_factory.mktemp("listen"))
    recordings = {
        "positives": scene(np.random.default_rng(100), 5, amplitude=(0.2, 0.5)),
        "negatives": scene(np.random.default_rng(200), 3, phrases=False),
        "before": scene(np.random.default_rng(300), 1, amplitude=(0.2, 0.5)),
        "after": scene(np.random.default_rng(301), 1, amplitude=(0.2, 0.5)),
    }
    peaks, others = [], []
    for audio, ends in recordings.values():
        # As heard at 16 kHz, and through the 16 -> 44.1 -> 16 kHz trip the default-rate daemon makes.
        trip = soxr.resample(soxr.resample(audio, SR, 44100), 44100, SR).astype(np.float32)
        for version in (audio, trip):
            p, other = scores_around(model, version, ends)
            peaks += p
            others.append(other)
    low, high = max(others), min(peaks)
    assert high - low > 0.3, f"the chime model does not separate its recordings (phrases >= {high}, rest <= {low})"
    threshold = (low + high) / 2
    card = json.loads((model / "card.json").read_text())
    (model / "card.json").write_text(json.dumps({**card, "threshold": threshold}))
    return SimpleNamespace(path=model, threshold=threshold, **recordings)


# --- the processing path, in-process --------------------------------------------------------------


def test_converter_streams_like_one_resampling():
    from wakeword.listen import Converter

    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, (44100 * 2, 2)).astype(np.float32)
    converter = Converter(44100, 2)
    out, i = [], 0
    while i < len(audio):  # odd block sizes: the resampler's state must carry across them
        n = int(rng.integers(100, 5000))
        out.append(converter(audio[i : i + n]))
        i += n
    streamed = np.concatenate(out)
    whole = soxr.resample(audio.mean(axis=1), 44100, SR)
    assert 0 <= converter.delay < 200
    assert len(streamed) + converter.delay == pytest.approx(len(audio) * SR / 44100, abs=1)
    np.testing.assert_allclose(streamed[1000:-1000], whole[1000 : len(streamed) - 1000], atol=2e-3)


def test_processor_events_equal_the_file_path_and_are_dated(chime_model):
    from wakeword.listen import Processor
    from wakeword.runtime import Detector

    audio, ends = chime_model.positives
    offline = Detector([chime_model.path]).process(audio)
    assert len(offline) == len(ends)
    processor = Processor(Detector([chime_model.path]))
    t0, events, i = 1000.0, [], 0
    rng = np.random.default_rng(1)
    while i < len(audio):
        n = int(rng.integers(1, 4000))
        block = audio[i : i + n]
        i += len(block)
        events += processor.push(block, end_time=t0 + i / SR)  # the block's end captured at t0 + i / SR
    assert [e.stream_s for e in events] == pytest.approx([d.end_s for d in offline], abs=1e-9)
    assert [e.detection.score for e in events] == pytest.approx([d.score for d in offline], abs=1e-6)
    for e in events:  # the capture time of the step's last sample
        assert e.captured_at == pytest.approx(t0 + e.stream_s, abs=1e-6)


def test_restart_after_a_gap_is_a_fresh_stream(chime_model):
    from wakeword.listen import Processor
    from wakeword.runtime import Detector

    audio, _ = chime_model.positives
    fresh = Processor(Detector([chime_model.path])).push(audio)
    processor = Processor(Detector([chime_model.path]))
    processor.push(chime(0.4)[:3000])  # half a phrase, then the device is lost
    processor.restart()
    origin = processor.heard
    again = processor.push(audio)
    assert len(fresh) == len(again) == len(chime_model.positives[1])
    assert [e.stream_s - origin / SR for e in again] == pytest.approx([e.stream_s for e in fresh], abs=1e-9)
    assert [e.detection.score for e in again] == pytest.approx([e.detection.score for e in fresh], abs=1e-6)


def quiet_room(ends_at: list[float], seconds: float) -> tuple[np.ndarray, list[int]]:
    """Low noise (-60 dBFS) with a chime ending at each of `ends_at` seconds: the gate must open for each."""
    audio = np.random.default_rng(5).normal(0, 0.001, int(seconds * SR)).astype(np.float32)
    ends = []
    for t in ends_at:
        phrase = chime(0.3)
        end = int(t * SR)
        audio[end - len(phrase) : end] += phrase
        ends.append(end)
    return audio, ends


def test_energy_gate_saves_steps_and_keeps_the_phrases(chime_model):
    from wakeword.listen import EnergyGate, Processor
    from wakeword.runtime import Detector

    audio, _ = quiet_room([6.0, 16.0, 26.0], 30.0)
    always = Processor(Detector([chime_model.path])).push(audio)
    assert len(always) == 3
    processor = Processor(Detector([chime_model.path]), EnergyGate())
    gated = processor.push(audio)
    assert processor.steps_fed < 0.5 * processor.steps  # most of the quiet room is skipped
    assert [e.stream_s for e in gated] == pytest.approx([e.stream_s for e in always], abs=0.081)


class Recorder:
    """A Detector stand-in that keeps what it is fed and when it is reset."""

    def __init__(self) -> None:
        self.calls: list = []

    def reset(self) -> None:
        self.calls.append("reset")

    def process(self, chunk: np.ndarray) -> list:
        self.calls.append(chunk.copy())
        return []


def test_gate_reopens_from_the_silence_state_with_its_preroll():
    from wakeword.listen import EnergyGate, Processor

    audio, _ = quiet_room([10.0], 14.0)  # the chime: 9.5 s to 10 s
    detector = Recorder()
    processor = Processor(detector, EnergyGate(), preroll_s=1.0)
    processor.push(audio)
    assert isinstance(detector.calls[0], str), "the detector must be reset before it hears the reopened gate"
    fed = np.concatenate(detector.calls[1:])
    opened = processor.origin + 1.0 * SR  # the step that opened the gate, 1 s of pre-roll before it
    assert 9.4 * SR <= opened <= 9.5 * SR + 1280
    # What the detector heard is the audio itself, contiguous from 1 s before the opening step.
    np.testing.assert_array_equal(fed, audio[processor.origin : processor.origin + len(fed)])
    assert len(fed) >= 2.0 * SR  # pre-roll, the phrase, and the hold after it


def test_energy_gate_opens_on_sound_and_closes_after_its_hold():
    from wakeword.listen import EnergyGate

    gate = EnergyGate(open_db=10, hold_s=0.4)
    rng = np.random.default_rng(0)
    quiet = [rng.normal(0, 0.001, 1280).astype(np.float32) for _ in range(20)]
    assert not any(gate.update(s) for s in quiet)
    assert gate.update(rng.normal(0, 0.05, 1280).astype(np.float32))  # +34 dB
    assert [gate.update(s) for s in quiet[:6]] == [True] * 4 + [False] * 2  # 0.4 s = 5 steps of hold


def test_callback_never_blocks_and_counts_drops_and_overflows():
    from wakeword.listen import Daemon

    daemon = Daemon(processor=None)  # no worker: the queue fills
    daemon.stream_rate = SR
    block = np.zeros((1280, 1), np.float32)
    info = SimpleNamespace(currentTime=10.0, inputBufferAdcTime=9.9)
    started = time.perf_counter()
    for i in range(daemon.queue.maxsize + 7):
        daemon.callback(block, 1280, info, SimpleNamespace(input_overflow=i % 2 == 0))
    assert time.perf_counter() - started < 0.5
    assert daemon.queue.qsize() == daemon.queue.maxsize
    assert daemon.dropped == 7
    assert daemon.overflows == (daemon.queue.maxsize + 7 + 1) // 2
    _, end_time = daemon.queue.get_nowait()
    # Captured 0.1 s before the callback ran (ADC time), plus the block's 80 ms: 20 ms ago.
    assert time.time() - end_time == pytest.approx(0.02, abs=0.4)


def test_a_stream_that_stops_or_goes_silent_is_lost():
    from wakeword.listen import STALL_S, Daemon

    daemon = Daemon(processor=None)
    daemon.stream = SimpleNamespace(active=True)
    daemon.last_data = time.monotonic()
    assert daemon.lost() is None
    daemon.last_data -= STALL_S + 0.5  # PortAudio still says active, but no callback for 2.5 s
    assert "no audio" in daemon.lost()
    daemon.last_data = time.monotonic()
    daemon.stream = SimpleNamespace(active=False)  # PortAudio stopped it (device error)
    assert "stopped" in daemon.lost()


def test_exec_gets_the_detection_and_never_piles_up(tmp_path):
    from wakeword.listen import CommandRunner

    out = tmp_path / "env.txt"
    runner = CommandRunner(f'echo "$WAKEWORD_PHRASE $WAKEWORD_SCORE" >> {out}; exit 3')
    runner.start({"WAKEWORD_PHRASE": "hey test", "WAKEWORD_SCORE": "0.9"})
    deadline = time.monotonic() + 5
    while runner.running and time.monotonic() < deadline:
        runner.reap()  # a failing command is logged, not raised
        time.sleep(0.02)
    assert out.read_text() == "hey test 0.9\n"
    slow = CommandRunner("sleep 5", limit=2)
    started = time.perf_counter()
    for _ in range(5):
        slow.start({})
    assert time.perf_counter() - started < 1.0  # never waits for a command
    assert len(slow.running) == 2 and slow.skipped == 3
    for p in slow.running:
        p.kill()
        p.wait()


def test_missing_portaudio_is_one_line_naming_the_package(chime_model, tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), str(ROOT)])}
    result = subprocess.run(
        [sys.executable, "-m", "wakeword", "listen", str(chime_model.path)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "libportaudio2" in result.stderr and result.stderr.startswith("wakeword: error:")


# --- the daemon, end to end ------------------------------------------------------------------------


class Listening:
    """`python -m wakeword listen ...` as a subprocess; its JSON lines and its log, collected as they come."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wakeword", "listen", *args],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.detections: list[dict] = []
        self.log: list[str] = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        for line in self.process.stdout:
            self.detections.append(json.loads(line))

    def _read_err(self) -> None:
        for line in self.process.stderr:
            self.log.append(line)

    def wait_for(self, text: str, timeout: float = 30.0, after: int = 0) -> int:
        """Index of the first log line from `after` on that contains `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, line in enumerate(self.log[after:], after):
                if text in line:
                    return i
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"no {text!r} in the daemon's log:\n{''.join(self.log)}")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, float]:
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code, time.monotonic() - started


@pytest.fixture
def server(tmp_path):
    if PULSEAUDIO is None:
        pytest.skip(MISSING_REASON)
    with AudioServer(tmp_path / "pulse") as s:
        yield s


def locate(heard: np.ndarray, played: np.ndarray) -> int:
    """Where `played` lies, sample for sample, in `heard` (AssertionError if nowhere)."""
    first = int(np.flatnonzero(np.abs(played) > 0.01)[0])
    for start in np.flatnonzero(heard == played[first]) - first:
        if start >= 0 and np.array_equal(heard[start : start + len(played)], played):
            return int(start)
    raise AssertionError("the played audio is not in what the daemon heard, bit for bit")


@needs_pulseaudio
def test_live_daemon_detects_each_phrase_exactly_as_the_file_path(server, chime_model, tmp_path):
    from wakeword.runtime import Detector

    audio, ends = chime_model.positives
    heard_path, exec_log = tmp_path / "heard.wav", tmp_path / "exec.txt"
    daemon = Listening(
        [
            str(chime_model.path),
            "--device",
            "pulse",
            "--rate",
            "16000",  # the pipe source's own rate: no resampler, so the path is bit-exact
            "--record",
            str(heard_path),
            "--exec",
            f'echo "$WAKEWORD_PHRASE $WAKEWORD_SCORE" >> {exec_log}',
        ],
        server.client_env(),
    )
    daemon.wait_for("listening on")
    playback = server.play(audio)
    assert playback.wait(len(audio) / SR + 20)
    time.sleep(1.5)  # the last phrase's decision, then its JSON line
    code, seconds = daemon.stop(signal.SIGINT)
    assert code == 0 and seconds < 1.0, "".join(daemon.log)

    found = daemon.detections
    assert len(found) == len(ends), (found, "".join(daemon.log))
    heard, rate = sf.read(heard_path, dtype="float32")
    assert rate == SR
    offset = locate(heard, playback.audio)
    # The invariant: the daemon's events are the file path's events on the audio it heard.
    offline = Detector([chime_model.path]).process(heard)
    assert [f["stream_s"] for f in found] == [round(d.end_s, 3) for d in offline]
    assert [f["score"] for f in found] == pytest.approx([d.score for d in offline], abs=1e-4)
    latencies = []
    for f, end in zip(found, ends, strict=True):
        assert abs(f["stream_s"] - (offset + end) / SR) <= 0.5  # the phrase that really ended there
        latencies.append(f["epoch"] - playback.wall_time(end - 1))  # its end reached the server -> JSON line
        assert f["phrase"] == "chime" and f["score"] >= chime_model.threshold
    assert all(abs(latency) <= 0.5 for latency in latencies), latencies
    print(f"median latency {1000 * np.median(latencies):.0f} ms (daemon's estimate {found[0]['latency_ms']} ms)")
    lines = exec_log.read_text().splitlines()
    assert len(lines) == len(ends) and all(line.startswith("chime 0.") for line in lines)


@needs_pulseaudio
def test_live_daemon_stays_quiet_on_speech_and_noise(server, chime_model):
    audio, _ = chime_model.negatives
    # The device's own rate (44.1 kHz: PulseAudio resamples up, soxr down), as users run it.
    daemon = Listening([str(chime_model.path), "--device", "pulse", "--stats", "1"], server.client_env())
    daemon.wait_for("listening on")
    rate = int(re.search(r"at (\d+) Hz", "".join(daemon.log)).group(1))
    assert rate != SR  # PortAudio's rate for PulseAudio (44.1 kHz): the resampling path is the one tested
    assert server.play(audio).wait(len(audio) / SR + 20)
    time.sleep(1.0)
    daemon.wait_for("stats: cpu")
    code, seconds = daemon.stop()
    assert code == 0 and seconds < 1.0
    assert daemon.detections == []


@needs_pulseaudio
def test_live_daemon_reconnects_when_the_audio_server_restarts(server, chime_model):
    before, after = chime_model.before, chime_model.after
    daemon = Listening([str(chime_model.path), "--device", "pulse"], server.client_env())
    daemon.wait_for("listening on")
    assert server.play(before[0]).wait(30)
    time.sleep(1.0)
    assert len(daemon.detections) == 1

    server.restart(kill=True)  # the server crashes and comes back (the fifo, the socket: all new)
    lost = daemon.wait_for("audio device lost")
    back = daemon.wait_for("reconnected", timeout=15, after=lost)
    assert any("detector reset" in line for line in daemon.log[lost:])
    playback = server.play(after[0])
    assert playback.wait(30)
    time.sleep(1.0)
    code, seconds = daemon.stop()
    assert code == 0 and seconds < 1.0
    assert len(daemon.detections) == 2, (daemon.detections, "".join(daemon.log[back:]))
    latency = daemon.detections[1]["epoch"] - playback.wall_time(after[1][0] - 1)
    assert abs(latency) <= 0.5


def test_no_audio_server_is_one_line_pointing_at_devices(chime_model, tmp_path):
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/nothing", "PULSE_CLIENTCONFIG": str(tmp_path / "c.conf")}
    (tmp_path / "c.conf").write_text("autospawn = no\n")
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "wakeword", "listen", str(chime_model.path), "--device", "pulse"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wakeword: error: no input device") and "wakeword devices" in last
    assert time.monotonic() - started < 30  # an error at start, not a retry loop
