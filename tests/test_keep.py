"""`wakeword listen --keep`: the ring buffer, the clips and snippets written, and the disk cap (no microphone)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from wakeword.keep import AMBIENT_S, AudioRing, Keeper, KeepError, KeepFolder, folder_bytes, wav_bytes

SR = 16000
BLOCK = 1280


def ramp(n: int, start: int = 0) -> np.ndarray:
    """Sample i is (start + i) / 2^20: every sample says where it sits on the timeline."""
    return ((np.arange(start, start + n) % 2**19) / 2**20).astype(np.float32)


def test_ring_buffer_gives_back_any_span_it_still_holds():
    ring = AudioRing(1.0)
    rng = np.random.default_rng(0)
    fed = 0
    while fed < 5 * SR:
        n = int(rng.integers(1, 7000))  # blocks smaller and larger than the ring wraps
        ring.append(ramp(n, fed))
        fed += n
    assert ring.end == fed and ring.start == fed - SR
    audio, start = ring.span(fed - 3000, fed - 1000)
    assert start == fed - 3000
    np.testing.assert_array_equal(audio, ramp(2000, fed - 3000))
    audio, start = ring.span(fed - 2 * SR, fed + 500)  # clipped to what is held
    assert start == fed - SR
    np.testing.assert_array_equal(audio, ramp(SR, fed - SR))
    ring.append(ramp(3 * SR, fed))  # one block longer than the ring: its newest second stays
    np.testing.assert_array_equal(ring.span(0, 10**9)[0], ramp(SR, fed + 2 * SR))


def feed(keeper: Keeper, audio: np.ndarray, detections_at: dict[int, float], t0: float = 1_800_000_000.0) -> None:
    """As the daemon's worker: per block, the detections it completed, then the block itself."""
    for i in range(0, len(audio), BLOCK):
        chunk = audio[i : i + BLOCK]
        for end, score in detections_at.items():
            if i < end <= i + len(chunk):
                keeper.detected(end, t0 + end / SR, "hey nova", score, "models/hey_nova")
        keeper.hear(chunk, t0 + (i + len(chunk)) / SR)


def test_a_detection_is_kept_from_2_s_before_to_half_a_second_after(tmp_path):
    folder = KeepFolder(tmp_path / "keep", 10 * 2**20)
    folder.create()
    keeper = Keeper(folder, ambient_every_s=0)
    audio = ramp(12 * SR)
    end = 7 * SR + 5 * BLOCK
    feed(keeper, audio, {end: 0.97})
    [meta] = sorted((tmp_path / "keep" / "detections").glob("*.json"))
    record = json.loads(meta.read_text())
    assert record["label"] is None and record["phrase"] == "hey nova" and record["score"] == 0.97
    assert record["id"] == meta.stem and record["id"].endswith("-hey_nova")
    assert record["detection_at_s"] == 2.0 and record["seconds"] == 2.5
    assert record["stream_s"] == pytest.approx(end / SR, abs=1e-3)
    clip, rate = sf.read(meta.with_suffix(".wav"), dtype="int16")
    assert rate == SR and clip.ndim == 1
    expected = np.round(audio[end - 2 * SR : end + SR // 2] * 32767).astype(np.int16)
    assert np.abs(clip.astype(int) - expected).max() <= 1  # int16 of exactly that span


def test_detection_near_the_start_and_at_a_stop_keeps_what_there_is(tmp_path):
    folder = KeepFolder(tmp_path, 10 * 2**20)
    folder.create()
    keeper = Keeper(folder, ambient_every_s=0)
    feed(keeper, ramp(3 * SR), {SR: 0.9, 3 * SR - BLOCK: 0.8})
    keeper.flush()  # the daemon stops 80 ms after the second detection
    records = [json.loads(p.read_text()) for p in sorted((tmp_path / "detections").glob("*.json"))]
    assert [(r["detection_at_s"], r["seconds"]) for r in records] == [(1.0, 1.5), (2.0, 2.08)]


def test_ambient_snippets_are_sampled_on_schedule_and_never_hold_a_detection(tmp_path):
    folder = KeepFolder(tmp_path, 50 * 2**20)
    folder.create()
    keeper = Keeper(folder, ambient_every_s=10)
    audio = np.random.default_rng(1).normal(0, 0.1, 60 * SR).astype(np.float32)
    detections = {round(19.5 * SR): 0.9}  # would sit inside the snippet due at 20 s
    feed(keeper, audio, detections)
    snippets = sorted((tmp_path / "ambient").glob("*.wav"))
    assert 4 <= len(snippets) <= 6
    for path in snippets:
        clip, rate = sf.read(path, dtype="float32")
        assert rate == SR and len(clip) == AMBIENT_S * SR
        start = int(np.flatnonzero(np.isclose(audio, clip[0], atol=1e-4))[0])  # where it was taken
        assert not start <= detections[round(19.5 * SR)] <= start + len(clip) + 2 * SR


def test_the_cap_is_never_exceeded_and_the_oldest_ambient_goes_first(tmp_path):
    snippet = len(wav_bytes(np.zeros(round(AMBIENT_S * SR), np.float32)))
    cap = 6 * snippet
    folder = KeepFolder(tmp_path, cap)
    folder.create()
    keeper = Keeper(folder, ambient_every_s=5)
    rng = np.random.default_rng(2)
    t0 = 1_800_000_000.0
    sizes = []
    ends = {round(s * SR): 0.9 for s in (13.0, 51.0, 89.0)}
    for i in range(0, 120 * SR, BLOCK):
        for end, score in ends.items():
            if i < end <= i + BLOCK:
                keeper.detected(end, t0 + end / SR, "hey nova", score)
        keeper.hear(rng.normal(0, 0.1, BLOCK).astype(np.float32), t0 + (i + BLOCK) / SR)
        sizes.append(folder_bytes(tmp_path))
    assert max(sizes) <= cap
    assert len(list((tmp_path / "detections").glob("*.wav"))) == 3  # detections outlive ambient audio
    ambient = sorted(p.name for p in (tmp_path / "ambient").glob("*.wav"))
    assert 0 < len(ambient) < keeper.kept_ambient  # the oldest were dropped...
    assert ambient == sorted(ambient)[-len(ambient) :]  # ...and the newest kept
    assert keeper.kept_ambient >= 20


def test_unlabelled_detections_go_before_labelled_ones(tmp_path, caplog):
    clip = np.zeros(round(2.5 * SR), np.float32)
    one = len(wav_bytes(clip)) + 400  # a detection: its wav and json
    folder = KeepFolder(tmp_path, 3 * one)
    folder.create()
    records = []
    for n in range(3):
        record = {"id": f"2027011{n}-120000-000-hey_nova", "phrase": "hey nova", "label": None}
        assert folder.write_detection(record, clip)
        records.append(record)
    first = tmp_path / "detections" / f"{records[0]['id']}.json"
    first.write_text(json.dumps({**records[0], "label": "false"}))  # the user marked the oldest
    assert folder.write_detection({"id": "20270114-120000-000-hey_nova", "label": None}, clip)
    left = sorted(p.stem for p in (tmp_path / "detections").glob("*.wav"))
    assert records[0]["id"] in left and records[1]["id"] not in left  # the oldest unlabelled went
    assert folder_bytes(tmp_path) <= 3 * one
    # Only labelled ones left: they go too (the newest audio wins), with a warning.
    for p in (tmp_path / "detections").glob("*.json"):
        p.write_text(json.dumps({**json.loads(p.read_text()), "label": "true"}))
    assert folder.write_detection({"id": "20270115-120000-000-hey_nova", "label": None}, clip)
    assert "only labelled detections left" in caplog.text
    assert folder_bytes(tmp_path) <= 3 * one


def test_a_file_larger_than_the_cap_is_not_kept(tmp_path):
    folder = KeepFolder(tmp_path, 1000)
    folder.create()
    assert not folder.write_ambient("20270101-000000-000", np.zeros(SR, np.float32))
    assert folder_bytes(tmp_path) == 0


def test_an_unwritable_keep_folder_is_one_error_at_start(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(KeepError, match="cannot write there"):
        KeepFolder(blocker / "keep", 2**20).create()


def test_a_failing_disk_does_not_stop_the_keeper(tmp_path, caplog):
    folder = KeepFolder(tmp_path / "keep", 10 * 2**20)
    folder.create()
    keeper = Keeper(folder, ambient_every_s=5)
    for sub in ("detections", "ambient"):
        (tmp_path / "keep" / sub).rmdir()
        (tmp_path / "keep" / sub).write_text("")  # writing inside it now fails
    feed(keeper, np.zeros(12 * SR, np.float32), {3 * SR: 0.9})
    assert keeper.failed >= 2 and keeper.kept_detections == 0
    assert "cannot write" in caplog.text


def test_listen_flags_and_their_defaults(tmp_path):
    from wakeword import keep, listen
    from wakeword.cli import build_parser
    from wakeword.errors import WakewordError

    args = build_parser().parse_args(["listen", "m"])
    assert args.keep is None  # opt-in
    assert (args.keep_mb, args.ambient_every) == (keep.DEFAULT_CAP_MB, keep.DEFAULT_AMBIENT_EVERY_S)
    assert listen.AMBIENT_SNIPPET_S == keep.AMBIENT_S
    help_text = build_parser()._subparsers._group_actions[0].choices["listen"].format_help()
    assert "--keep DIR" in help_text and "wakeword feedback" in help_text
    for bad in (["--keep-mb", "0"], ["--ambient-every", "2"], ["--ambient-every", "-1"]):
        args = build_parser().parse_args(["listen", "m", "--keep", str(tmp_path), *bad])
        with pytest.raises(WakewordError):
            listen.make_keeper(args.keep, args.keep_mb, args.ambient_every)


@pytest.fixture(scope="module")
def chime_model(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from tools.bench_listen import build_chime_model

    return build_chime_model(tmp_path_factory.mktemp("chime"))


def test_the_daemon_path_keeps_each_detection_it_prints(chime_model, tmp_path):
    """Daemon.hear (the worker's path) with --keep: one kept clip per JSON line, named in that line."""
    import io

    from tools.bench_listen import scene
    from wakeword.listen import Daemon, Processor, make_keeper
    from wakeword.runtime import Detector

    audio, ends = scene(np.random.default_rng(100), 4, amplitude=(0.2, 0.5))
    out = io.StringIO()
    keeper = make_keeper(str(tmp_path / "keep"), 5.0, 4.0)
    daemon = Daemon(Processor(Detector([chime_model])), out=out, keeper=keeper)
    t0 = 1_800_000_000.0
    for i in range(0, len(audio), 1000):  # blocks that are not 80 ms steps, as a 44.1 kHz device gives
        daemon.hear(audio[i : i + 1000], t0 + (i + 1000) / SR)
    keeper.flush()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == len(ends) and len(lines) > 0
    for line in lines:
        record = json.loads((tmp_path / "keep" / "detections" / f"{line['id']}.json").read_text())
        assert record["stream_s"] == line["stream_s"] and record["score"] == line["score"]
        clip, _ = sf.read(tmp_path / "keep" / "detections" / f"{line['id']}.wav", dtype="float32")
        start = round((line["stream_s"] - record["detection_at_s"]) * SR)
        np.testing.assert_allclose(clip, audio[start : start + len(clip)], atol=1 / 32767)
    # A chime every 2-3 s leaves no 4 s stretch clear of detections: no ambient snippet is taken.
    assert not list((tmp_path / "keep" / "ambient").glob("*.wav"))


@pytest.mark.skipif(shutil.which("pulseaudio") is None, reason="pulseaudio not installed")
def test_live_daemon_with_keep_writes_what_it_printed(chime_model, tmp_path):
    """`wakeword listen --keep` end to end through the software sound card of tests/test_listen.py."""
    import signal
    import time

    from tests.audio_server import AudioServer
    from tests.test_listen import Listening
    from tools.bench_listen import scene

    audio, ends = scene(np.random.default_rng(100), 3, amplitude=(0.2, 0.5))
    keep = tmp_path / "keep"
    with AudioServer(tmp_path / "pulse") as server:
        daemon = Listening(
            [str(chime_model), "--device", "pulse", "--rate", "16000", "--keep", str(keep), "--ambient-every", "5"],
            server.client_env(),
        )
        daemon.wait_for("listening on")
        assert server.play(audio).wait(len(audio) / SR + 20)
        time.sleep(1.5)
        code, _ = daemon.stop(signal.SIGINT)
    assert code == 0, "".join(daemon.log)
    assert len(daemon.detections) == len(ends), "".join(daemon.log)
    kept = sorted(p.stem for p in (keep / "detections").glob("*.wav"))
    assert kept == sorted(d["id"] for d in daemon.detections)
    assert any("keeping detections" in line for line in daemon.log)


def test_an_ambient_snippet_never_pushes_out_a_detection(tmp_path):
    clip = np.zeros(round(2.5 * SR), np.float32)
    folder = KeepFolder(tmp_path, 2 * (len(wav_bytes(clip)) + 400))
    folder.create()
    for n in range(2):
        assert folder.write_detection({"id": f"2027011{n}-120000-000-hey_nova", "label": None}, clip)
    assert not folder.write_ambient("20270113-000000-000", np.zeros(SR, np.float32))
    assert len(list((tmp_path / "detections").glob("*.wav"))) == 2
