"""The embedded bundle: contents and sizes, a torch-free runner that detects what the Detector detects,
one-line errors for bad input, and (slow) the same detections on arm64 under qemu."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from tools.bench_embedded import make_test_model, speech_like, write_wav
from wakeword import bundle
from wakeword.errors import WakewordError

ROOT = Path(__file__).resolve().parent.parent
NAME = "hey_test"
FRONT_END_LIMIT = 1.5 * 1024 * 1024  # the shared bottom
PER_WAKE_WORD_LIMIT = 150 * 1024  # top + card
BLOCKED = ("torch", "soundfile", "soxr")
# Installed as sitecustomize in the runner's subprocess: importing any of BLOCKED fails there.
BLOCKER = f"""
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {BLOCKED!r}:
            raise ImportError(f"{{name}} is blocked in this test")
        return None

sys.meta_path.insert(0, Block())
"""


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict:
    """A test model, its bundle (with fp32 graphs) and a recording with detections in it."""
    folder = tmp_path_factory.mktemp("bundle")
    audio = np.concatenate([speech_like(8.0, seed=7), speech_like(6.0, seed=8)])
    write_wav(folder / "test.wav", audio)
    model = make_test_model(folder / NAME, audio)
    report = bundle.export_bundle(model, folder / "out", fp32=True)
    return {"folder": folder, "model": model, "bundle": folder / "out", "wav": folder / "test.wav", "report": report}


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict:
    site = tmp_path_factory.mktemp("blocker")
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    return {**env, "PYTHONPATH": str(site)}


def expected_files(name: str, fp32: bool) -> set[str]:
    graphs = ["card.json", "bottom.int8.onnx", "top.int8.onnx", *(["bottom.onnx", "top.onnx"] if fp32 else [])]
    modules = ["__init__", "errors", "audio", "frontend", "runtime"]
    return {
        "README.md",
        "manifest.json",
        "run.py",
        *(f"wakeword/{m}.py" for m in modules),
        *(f"models/{name}/{g}" for g in graphs),
    }


def runner(made: dict, env: dict, *args: str, bundle_dir: Path | None = None) -> subprocess.CompletedProcess:
    """run.py of the bundle, by the test's python, from a folder outside the repository."""
    script = (bundle_dir or made["bundle"]) / "run.py"
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=made["folder"],
        timeout=120,
    )


def test_blocker_blocks(blocked_env):
    """The environment the runner is tested in really cannot import torch (else the test proves nothing)."""
    result = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=blocked_env)
    assert result.returncode != 0
    assert "blocked in this test" in result.stderr


def test_bundle_contents_and_sizes(made):
    out, files = made["bundle"], made["report"]["files"]
    expected = expected_files(NAME, fp32=True)
    assert set(files) == expected
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == expected
    assert made["report"]["front_end_bytes"] <= FRONT_END_LIMIT
    assert made["report"]["per_wake_word_bytes"] <= PER_WAKE_WORD_LIMIT
    manifest = json.loads((out / "manifest.json").read_text())
    for rel, entry in manifest["files"].items():
        assert entry["bytes"] == (out / rel).stat().st_size
        assert entry["sha256"] == bundle.sha256(out / rel)
    # The runtime is copied verbatim: nothing drifts from the package that made the bundle.
    for module in bundle.runtime_modules():
        assert (out / "wakeword" / module.name).read_bytes() == module.read_bytes()
    assert (out / "run.py").read_bytes() == (bundle.TEMPLATES / "run.py").read_bytes()
    readme = (out / "README.md").read_text()
    assert "$" not in readme and "hey test" in readme and f"models/{NAME}/top.int8.onnx" in readme
    card = json.loads((out / "models" / NAME / "card.json").read_text())
    assert card["phrase"] == "hey test"
    assert card["export"]["files"]["top.int8.onnx"] == bundle.sha256(out / "models" / NAME / "top.int8.onnx")


def test_model_folder_is_left_alone(made):
    assert not list(made["model"].glob("*.onnx"))


def initializer_bytes(model: onnx.ModelProto) -> dict[int, int]:
    by_type: dict[int, int] = {}
    for init in model.graph.initializer:
        size = len(init.raw_data) or onnx.numpy_helper.to_array(init).nbytes
        by_type[init.data_type] = by_type.get(init.data_type, 0) + size
    return by_type


def test_int8_graphs_store_int8_weights(made):
    for role in ("bottom", "top"):
        model = onnx.load(str(made["bundle"] / "models" / NAME / f"{role}.int8.onnx"))
        onnx.checker.check_model(model)  # also: no duplicate metadata keys
        by_type = initializer_bytes(model)
        assert by_type[onnx.TensorProto.INT8] > 0.9 * sum(by_type.values()), by_type  # no fp32 copies kept
        meta = {p.key: p.value for p in model.metadata_props}
        assert meta["wakeword_role"] == role
        assert meta["quantization"] == bundle.WEIGHT_QUANTIZATION
        # Only weights are quantised, as Cast(int8) * scale of initialisers, which onnxruntime folds at
        # load: no (De)QuantizeLinear, which it would run every step or fuse into CPU-dependent int8 kernels.
        int8 = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT8}
        ops = [node.op_type for node in model.graph.node]
        assert "QuantizeLinear" not in ops and "DequantizeLinear" not in ops
        casts = [node for node in model.graph.node if node.op_type == "Cast" and node.input[0] in int8]
        assert len(casts) == len(int8) >= 6


def test_static_quantization_keeps_score_and_state_float(made, tmp_path):
    """quantization="static": export.py's int8 graphs, with score and state taken off the 8-bit grid."""
    calibration = np.concatenate([speech_like(10.0, seed=s) for s in (1, 2)])
    report = bundle.export_bundle(made["model"], tmp_path / "static", calibration, quantization="static")
    assert report["quantization"] == "static"
    # Activation scales and zero points make the static top bigger than the int8-weight one: it may
    # pass the per-wake-word goal, which the default form is held to.
    assert report["front_end_bytes"] <= FRONT_END_LIMIT
    graphs = tmp_path / "static" / "models" / NAME
    for role in ("bottom", "top"):
        model = onnx.load(str(graphs / f"{role}.int8.onnx"))
        assert "QuantizeLinear" in [node.op_type for node in model.graph.node]  # activations are int8 here
        # Score and state are not the DequantizeLinear of a QuantizeLinear. (The bottom's acts stay the
        # int8 output of its last convolution, which the top quantises anyway.)
        producer = {out: node for node in model.graph.node for out in node.output}
        for output in model.graph.output:
            if output.name != "acts":
                assert bundle.requantization(producer, output.name) is None, output.name
    from wakeword.runtime import Detector

    scores = Detector([graphs], providers=["CPUExecutionProvider"], int8=True).process_scores(speech_like(6.0))[1]
    assert len(np.unique(scores)) > len(scores) // 2  # not 1/255 steps
    with pytest.raises(WakewordError, match="quantization must be"):
        bundle.export_bundle(made["model"], tmp_path / "other", quantization="dynamic")


def test_compact_changes_nothing_computed(made):
    import onnxruntime as ort

    source = made["bundle"] / "models" / NAME / "top.onnx"
    compacted = bundle.compact(onnx.load(str(source)))
    assert compacted.ByteSize() < onnx.load(str(source)).ByteSize()
    before = ort.InferenceSession(str(source), providers=["CPUExecutionProvider"])
    after = ort.InferenceSession(compacted.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        i.name: rng.normal(0, 0.5, [d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32)
        for i in before.get_inputs()
    }
    for a, b in zip(before.run(None, feed), after.run(None, feed), strict=True):
        np.testing.assert_array_equal(a, b)


def detector_events(made: dict, int8: bool) -> tuple[list[dict], np.ndarray]:
    """What the package's own Detector finds in the test recording, fed as `wakeword detect` feeds it."""
    from wakeword.audio import load_audio
    from wakeword.runtime import Detector

    detector = Detector([made["bundle"] / "models" / NAME], providers=["CPUExecutionProvider"], int8=int8)
    audio = load_audio(made["wav"])
    events, rows = [], []
    for start in range(0, len(audio), 1280):
        found, scores = detector.process_scores(audio[start : start + 1280])
        events += [d.as_dict() for d in found]
        rows.append(scores)
    return events, np.concatenate(rows)[:, 0]


@pytest.mark.parametrize("int8", [True, False], ids=["int8", "fp32"])
def test_runner_without_torch_matches_the_detector(made, blocked_env, int8):
    flag = [] if int8 else ["--fp32"]
    detected = runner(made, blocked_env, "detect", str(made["wav"]), *flag)
    assert detected.returncode == 0, detected.stderr
    events = [json.loads(line) for line in detected.stdout.splitlines()]
    expected, scores = detector_events(made, int8)
    assert len(expected) >= 2  # the test model fires in this recording: the comparison means something
    assert [{k: v for k, v in e.items() if k != "model"} for e in events] == [
        {"file": str(made["wav"]), **{k: v for k, v in e.items() if k != "model"}} for e in expected
    ]
    scored = runner(made, blocked_env, "score", str(made["wav"]), *flag)
    assert scored.returncode == 0, scored.stderr
    table = np.loadtxt(scored.stdout.splitlines()[1:], delimiter=",", ndmin=2)
    assert len(table) == len(scores)
    np.testing.assert_allclose(table[:, 1], scores, atol=1e-6)


def test_runner_check_uses_the_bundled_runtime(made, blocked_env):
    result = runner(made, blocked_env, "check", "--seconds", "1")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert Path(info["runtime"]) == made["bundle"] / "wakeword"
    assert info["torch_loaded"] is False
    assert info["graphs"] == "int8" and info["us_per_step"] > 0


def test_int8_scores_stay_near_fp32(made):
    """int8 weights move scores a little (this model's rescaled head makes its scores very sensitive)."""
    _, int8 = detector_events(made, True)
    _, fp32 = detector_events(made, False)
    assert 0 < np.abs(int8 - fp32).mean() < 0.05


def write_bad(folder: Path, kind: str) -> Path:
    import soundfile as sf

    path = folder / f"{kind}.wav"
    audio = speech_like(1.0)
    if kind == "stereo":
        sf.write(str(path), np.stack([audio, audio], axis=1), 16000, subtype="PCM_16")
    elif kind == "rate":
        sf.write(str(path), audio, 8000, subtype="PCM_16")
    elif kind == "float":
        sf.write(str(path), audio, 16000, subtype="FLOAT")
    elif kind == "text":
        path.write_text("not audio\n")
    elif kind == "truncated":
        sf.write(str(path), audio, 16000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:20])
    elif kind == "empty":
        sf.write(str(path), audio[:0], 16000, subtype="PCM_16")
    return path


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run.py: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("stereo", ["2 channels", "mono"]),
        ("rate", ["8000 Hz", "16000"]),
        ("float", ["not a PCM WAV"]),
        ("text", ["not a PCM WAV"]),
        ("truncated", ["not a PCM WAV"]),
        ("empty", ["no audio samples"]),
        ("missing", ["no such file"]),
    ],
)
def test_bad_audio_is_one_line(made, blocked_env, kind, words):
    path = made["folder"] / "missing.wav" if kind == "missing" else write_bad(made["folder"], kind)
    assert_one_line_error(runner(made, blocked_env, "detect", str(path)), str(path), *words)


@pytest.mark.parametrize("damage", ["missing_top", "missing_bottom", "truncated_bottom", "no_models"])
def test_bad_model_is_one_line(made, blocked_env, tmp_path, damage):
    copy = shutil.copytree(made["bundle"], tmp_path / "bundle")
    graphs = copy / "models" / NAME
    if damage == "missing_top":
        (graphs / "top.int8.onnx").unlink()
        words = ["top.int8.onnx", "missing"]
    elif damage == "missing_bottom":
        (graphs / "bottom.int8.onnx").unlink()
        words = ["bottom.int8.onnx", "missing"]
    elif damage == "truncated_bottom":
        data = (graphs / "bottom.int8.onnx").read_bytes()
        (graphs / "bottom.int8.onnx").write_bytes(data[: len(data) // 2])
        words = ["bottom.int8.onnx"]
    else:
        shutil.rmtree(copy / "models")
        words = ["no models"]
    assert_one_line_error(runner(made, blocked_env, "detect", str(made["wav"]), bundle_dir=copy), *words)


def test_missing_board_package_is_one_line(made, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER.replace(repr(BLOCKED), repr((*BLOCKED, "onnxruntime"))))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}, "PYTHONPATH": str(site)}
    assert_one_line_error(runner(made, env, "detect", str(made["wav"])), "onnxruntime", "pip install")


def test_stand_ins_agree_with_the_runner():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bundle_run", bundle.TEMPLATES / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert tuple(module.IMPORTED_BUT_UNUSED) == bundle.STAND_INS


def test_runtime_modules_are_computed_and_checked(tmp_path, monkeypatch):
    assert [p.name for p in bundle.runtime_modules()] == [
        "__init__.py",
        "audio.py",
        "errors.py",
        "frontend.py",
        "runtime.py",
    ]
    # A runtime that starts importing torch when it loads stops the export, with the file and the reason.
    fake = tmp_path / "wakeword"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "helper.py").write_text("import json\n\ndef later():\n    import torch\n")
    (fake / "runtime.py").write_text("import numpy\nfrom wakeword import helper\nimport torch.nn\n")
    monkeypatch.setattr(bundle, "PACKAGE_DIR", fake)
    with pytest.raises(WakewordError, match=r"runtime\.py imports torch"):
        bundle.runtime_modules()
    (fake / "runtime.py").write_text("import numpy\nfrom wakeword import helper\n")
    assert [p.name for p in bundle.runtime_modules()] == ["__init__.py", "helper.py", "runtime.py"]


def test_bottom_is_shared_between_wake_words(made, tmp_path):
    """Two wake words ship the same bottom file: the runtime runs it once for both."""
    audio = speech_like(6.0, seed=3)
    other = make_test_model(tmp_path / "hey_other", audio, seed=1, phrase="hey other")
    report = bundle.export_bundle(other, tmp_path / "other")
    ours = made["bundle"] / "models" / NAME
    theirs = tmp_path / "other" / "models" / "hey_other"
    assert (ours / "bottom.int8.onnx").read_bytes() == (theirs / "bottom.int8.onnx").read_bytes()
    assert (ours / "top.int8.onnx").read_bytes() != (theirs / "top.int8.onnx").read_bytes()
    assert set(report["files"]) == expected_files("hey_other", fp32=False)


def test_cli_export_embedded(made, tmp_path):
    """`wakeword export --target embedded`: writes the bundle, refuses an existing --out, replaces it with --force."""
    out = tmp_path / "cli_bundle"
    calibration = made["wav"]
    args = ["export", str(made["model"]), "--target", "embedded", "--out", str(out), "--calibration", str(calibration)]
    from wakeword.cli import main

    assert main(args) == 0
    assert (out / "run.py").is_file() and (out / "models" / NAME / "top.int8.onnx").is_file()
    assert main(args) == 2  # exists, no --force
    (out / "stray.txt").write_text("left from before")
    assert main([*args, "--force"]) == 0
    assert not (out / "stray.txt").exists()


def test_export_refuses_to_replace_what_is_not_a_bundle(made, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(WakewordError, match="not a wakeword bundle"):
        bundle.export_bundle(made["model"], out)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("qemu-aarch64-static") is None or shutil.which("debootstrap") is None,
    reason="needs qemu-user-static and debootstrap (apt-get install qemu-user-static debootstrap)",
)
def test_arm64_detections_equal_x86(made):
    """tools/test_arm64.sh: the bundle on Debian arm64 under qemu gives x86's fp32 scores and int8 detections."""
    result = subprocess.run(
        ["bash", str(ROOT / "tools" / "test_arm64.sh"), str(made["bundle"]), str(made["wav"])],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["arm_machine"] == "aarch64"
    assert figures["fp32_max_score_diff"] <= 1e-3
    assert figures["int8_events_equal"] and figures["int8_events"] >= 2
