"""A software sound card for end-to-end tests of `wakeword listen`: a private PulseAudio server whose
microphone is a FIFO this process feeds at real-time pace.

    AudioServer.play(samples)  ->  feeder thread  ->  mic.fifo  ->  module-pipe-source (16 kHz s16le mono)
        ->  PulseAudio  ->  ALSA "pulse" plugin (libasound2-plugins)  ->  PortAudio  ->  the daemon

Facts this relies on (Debian 12, measured): Debian's PortAudio has only ALSA/OSS backends and reaches
PulseAudio through ALSA's pulse plugin; as root a user-mode server runs with a private
XDG_RUNTIME_DIR and HOME; the pipe source is bit-exact when fed at real-time pace; a pipe source with
no writer makes PortAudio spin and hang on close, so the feeder writes silence whenever nothing plays.
Clients find this server through PULSE_SERVER (see `client_env`), never the user's own.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

RATE = 16000
CHUNK_S = 0.02  # feeder write size: fine-grained pacing, like a device's periods
PULSEAUDIO = shutil.which("pulseaudio")
MISSING_REASON = "pulseaudio not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)"


class Playback:
    """Samples queued on the virtual microphone, with the wall time each chunk of them was written."""

    def __init__(self, samples: np.ndarray) -> None:
        self.pcm = np.clip(np.round(np.asarray(samples, np.float64) * 32768), -32768, 32767).astype(np.int16)
        self.position = 0
        self.marks: list[tuple[int, float]] = []  # (samples written so far, time.time() just after the write)
        self.done = threading.Event()

    @property
    def audio(self) -> np.ndarray:
        """What the microphone heard, as float32 (the int16 the pipe carries, scaled like PortAudio does)."""
        return self.pcm.astype(np.float32) / 32768

    def wall_time(self, sample: int) -> float:
        """When `sample` (an index into this playback) reached the server."""
        counts, walls = zip(*self.marks, strict=True)  # samples [counts[i-1], counts[i]) went at walls[i]
        i = int(np.searchsorted(counts, sample, side="right"))
        return walls[min(i, len(walls) - 1)]

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class AudioServer:
    """A PulseAudio server in `root` with one source, `virtual_mic`, fed by `play`. Use as a context manager."""

    def __init__(self, root: Path) -> None:
        if PULSEAUDIO is None:
            raise RuntimeError(MISSING_REASON)
        self.root = Path(root)
        self.runtime = self.root / "run"
        self.home = self.root / "home"
        self.fifo = self.root / "mic.fifo"
        self.socket = self.runtime / "native"
        self.log_path = self.root / "pulseaudio.log"
        self.process: subprocess.Popen | None = None
        self.queue: deque[Playback] = deque()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.feeder: threading.Thread | None = None
        self.fd: int | None = None
        self.written = 0  # samples written since the feeder started (silence included)
        self.lost = 0  # samples that could not be written (server down)

    # --- the server ---

    def client_env(self) -> dict[str, str]:
        """Environment for a process that must use this server (and only it)."""
        return {
            **os.environ,
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_CLIENTCONFIG": str(self.home / "client.conf"),
            "XDG_RUNTIME_DIR": str(self.runtime),
        }

    def start(self, timeout: float = 10.0) -> None:
        self.runtime.mkdir(parents=True, exist_ok=True)
        self.runtime.chmod(0o700)  # libpulse refuses a runtime directory others can read
        (self.home / ".config" / "pulse").mkdir(parents=True, exist_ok=True)
        # Never autospawn a server of the user's configuration when ours is down: the daemon must see it gone.
        (self.home / "client.conf").write_text("autospawn = no\n")
        for stale in (self.fifo, self.socket):  # left by a killed server; the pipe source refuses an old FIFO
            stale.unlink(missing_ok=True)
        script = self.root / "server.pa"
        script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 socket={self.socket}\n"
            f"load-module module-pipe-source source_name=virtual_mic file={self.fifo} "
            f"format=s16le rate={RATE} channels=1\n"
            "set-default-source virtual_mic\n"
        )
        env = {**os.environ, "XDG_RUNTIME_DIR": str(self.runtime), "HOME": str(self.home)}
        env.pop("PULSE_SERVER", None)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    PULSEAUDIO,
                    "-n",
                    "-F",
                    str(script),
                    "--daemonize=no",
                    "--system=false",
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--use-pid-file=false",
                    "--realtime=false",
                    "--high-priority=false",
                    "--log-target=stderr",
                ],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while not (self.socket.exists() and self.fifo.exists()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.stop()
                raise RuntimeError(f"pulseaudio did not start; its log ends:\n{tail}")
            time.sleep(0.02)
        if self.feeder is None:
            self.stopping.clear()
            self.feeder = threading.Thread(target=self._feed, name="audio-server-feeder", daemon=True)
            self.feeder.start()

    def stop(self, kill: bool = False) -> None:
        """Stop the server (SIGKILL with kill=True: a crash). The feeder keeps its pace, writing nowhere."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def restart(self, kill: bool = True) -> None:
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        self.stopping.set()
        if self.feeder is not None:
            self.feeder.join(2)
            self.feeder = None
        self.stop()
        self._close_fd()

    def __enter__(self) -> AudioServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the microphone ---

    def play(self, samples: np.ndarray) -> Playback:
        """Queue float samples in [-1, 1] at 16 kHz on the microphone (after what is queued already)."""
        playback = Playback(samples)
        with self.lock:
            self.queue.append(playback)
        return playback

    def _open_fd(self) -> bool:
        try:
            # Non-blocking: opening a FIFO for writing blocks until a reader exists, and a full pipe
            # (a stuck reader) must cost samples, like a real microphone, not stall the clock.
            self.fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            return True
        except OSError:  # no FIFO yet (ENOENT) or no reader on it (ENXIO): the server is down
            return False

    def _close_fd(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def _write(self, pcm: np.ndarray) -> None:
        if self.fd is None and not self._open_fd():
            self.lost += len(pcm)
            return
        data = pcm.tobytes()
        try:
            n = os.write(self.fd, data)
            if n < len(data):  # a nearly full pipe: the rest is lost
                self.lost += (len(data) - n) // 2
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                self.lost += len(pcm)
                return
            self._close_fd()  # EPIPE: the server died; reopen the new FIFO when there is one
            self.lost += len(pcm)

    def _feed(self) -> None:
        chunk = round(RATE * CHUNK_S)
        deadline = time.monotonic()
        silence = np.zeros(chunk, np.int16)
        while not self.stopping.is_set():
            with self.lock:
                playback = self.queue[0] if self.queue else None
            if playback is None:
                self._write(silence)
            else:
                piece = playback.pcm[playback.position : playback.position + chunk]
                if len(piece) < chunk:  # pad the last piece with silence: whole chunks keep the pace exact
                    piece = np.concatenate([piece, silence[: chunk - len(piece)]])
                self._write(piece)
                playback.position = min(len(playback.pcm), playback.position + chunk)
                playback.marks.append((playback.position, time.time()))
                if playback.position >= len(playback.pcm):
                    with self.lock:
                        self.queue.popleft()
                    playback.done.set()
            self.written += chunk
            deadline += CHUNK_S
            delay = deadline - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1.0:  # starved for a second (a loaded machine): restart the clock, don't burst
                deadline = time.monotonic()
