"""The command line: embed writes one embedding per 80 ms; bad input is one line and a non-zero exit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SR, speechlike, tone
from wakeword import __version__
from wakeword.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wakeword", *args], capture_output=True, text=True, timeout=900)


def test_version_and_help():
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"wakeword {__version__}"
    result = run_cli("--help")
    assert result.returncode == 0 and "embed" in result.stdout
    script = Path(sys.executable).parent / "wakeword"  # the console script pip installed
    result = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


def test_embed_ten_seconds_gives_125_embeddings(write, tmp_path):
    path = write("ten.wav", speechlike(10.0)[: 10 * SR])
    out = tmp_path / "emb.npy"
    result = run_cli("embed", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    emb = np.load(out)
    assert emb.shape == (125, 96) and emb.dtype == np.float32
    assert "125 embeddings x 96" in result.stdout


def test_embed_several_files_to_npz(write, tmp_path, capsys):
    a = write("a.wav", tone(2.0))
    b = write("b.flac", speechlike(1.0), rate=SR)
    c = write("c48k.wav", tone(1.0, rate=48000), rate=48000)
    out = tmp_path / "emb.npz"
    assert main(["embed", str(a), str(b), str(c), "--out", str(out)]) == 0
    data = np.load(out)
    assert data[str(a)].shape == (25, 96)
    assert data[str(c)].shape == (12, 96)


def test_embed_never_overwrites_without_force(write, tmp_path, capsys):
    path = write("a.wav", tone(1.0))
    out = tmp_path / "emb.npy"
    out.write_bytes(b"precious")
    assert main(["embed", str(path), "--out", str(out)]) == 2
    assert out.read_bytes() == b"precious"
    assert "--force" in capsys.readouterr().err
    assert main(["embed", str(path), "--out", str(out), "--force"]) == 0
    assert np.load(out).shape == (12, 96)


def bad_inputs(tmp_path, write):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(500))
    text = tmp_path / "notes.wav"
    text.write_text("hello")
    nan = tone(0.5)
    nan[10] = np.nan
    return {
        "missing": (str(tmp_path / "missing.wav"), "no such file"),
        "empty": (str(empty), "empty"),
        "corrupt": (str(corrupt), "cannot decode"),
        "not audio": (str(text), "cannot decode"),
        "nan": (str(write("nan.wav", nan, subtype="FLOAT")), "NaN"),
        "4 kHz": (str(write("low.wav", tone(0.5, 300, rate=4000), rate=4000)), "below 8000"),
    }


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "not audio", "nan", "4 kHz"])
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, write, capsys):
    path, message = bad_inputs(tmp_path, write)[case]
    out = tmp_path / "out.npy"
    assert main(["embed", path, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("wakeword: error:") and message in err[0]
    assert not out.exists()


def test_bad_input_through_the_console_script(tmp_path):
    result = run_cli("embed", str(tmp_path / "missing.wav"), "--out", str(tmp_path / "o.npy"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def test_several_inputs_need_npz(write, tmp_path, capsys):
    a = write("a.wav", tone(1.0))
    assert main(["embed", str(a), str(a), "--out", str(tmp_path / "x.npy")]) == 2
    assert ".npz" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (make setup installs it)")
def test_demo_runs(tmp_path):
    result = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert "4/4 detections" in result.stdout and "summary:" in result.stdout
    assert (tmp_path / "demo" / "test_recording.wav").exists()
    assert (tmp_path / "demo" / "hey_nova" / "top.onnx").exists()
    again = run_cli("demo", "--out", str(tmp_path / "demo"))
    assert again.returncode == 2 and "--force" in again.stderr
