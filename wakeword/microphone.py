"""Microphone access through sounddevice/PortAudio, with one-line errors for every way it can be missing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from wakeword.errors import WakewordError


class MicrophoneError(WakewordError):
    """No PortAudio, no input device, or a device that cannot be opened."""


def sounddevice() -> ModuleType:
    try:
        import sounddevice as sd
    except OSError:  # raised at import when libportaudio2 is missing
        raise MicrophoneError(
            "PortAudio library not found: apt-get install libportaudio2 (or your system's portaudio package)"
        ) from None
    return sd


def input_devices() -> list[dict[str, Any]]:
    """Every device with input channels: index, name, channels, default rate, and whether it is the default."""
    sd = sounddevice()
    default = sd.default.device[0] if isinstance(sd.default.device, (list, tuple)) else sd.default.device
    devices = []
    for index, dev in enumerate(sd.query_devices()):
        if dev["max_input_channels"] > 0:
            devices.append(
                {
                    "index": index,
                    "name": dev["name"],
                    "channels": dev["max_input_channels"],
                    "rate": int(dev["default_samplerate"]),
                    "default": index == default,
                }
            )
    return devices


def resolve_device(device: int | str | None) -> dict[str, Any]:
    """The input device for an index, a (part of a) name, or None for the system default."""
    devices = input_devices()
    if not devices:
        raise MicrophoneError("no input device found (is a microphone connected and the audio server running?)")
    if device is None:
        chosen = [d for d in devices if d["default"]] or devices[:1]
        return chosen[0]
    if isinstance(device, int) or str(device).isdigit():
        matches = [d for d in devices if d["index"] == int(device)]
    else:
        matches = [d for d in devices if str(device).lower() in d["name"].lower()]
    if not matches:
        names = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
        raise MicrophoneError(f"no input device matches {device!r}; input devices: {names}")
    return matches[0]


def pick_channels(sd: Any, info: dict[str, Any], rate: int) -> int:
    """Mono when the device offers it (PulseAudio/PipeWire downmix well; their ALSA devices report 32
    channels), else all its channels (averaged later)."""
    try:
        sd.check_input_settings(device=info["index"], channels=1, samplerate=rate, dtype="float32")
        return 1
    except Exception:  # sd.PortAudioError or ValueError: 1 channel is not a native configuration
        return int(info["channels"])


@contextmanager
def open_input_stream(device: int | str | None, blocksize: int = 0) -> Iterator[tuple[Any, int]]:
    """A started blocking InputStream at the device's native rate and channel count (float32)."""
    sd = sounddevice()
    info = resolve_device(device)
    try:
        stream = sd.InputStream(
            device=info["index"],
            samplerate=info["rate"],
            channels=pick_channels(sd, info, info["rate"]),
            dtype="float32",
            blocksize=blocksize,
        )
        stream.start()
    except sd.PortAudioError as exc:
        raise MicrophoneError(f"cannot open input device {info['index']} ({info['name']}): {exc}") from None
    try:
        yield stream, info["rate"]
    finally:
        stream.close()
