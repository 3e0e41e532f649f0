"""The `wakeword` command line. Each subcommand is one small function; heavy imports stay inside them
so that `wakeword --help` and the torch-free commands start fast and work without the train extra."""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wakeword import __version__
from wakeword.errors import WakewordError

log = logging.getLogger("wakeword")

DEMO_PHRASE = "hey nova"


def require_torch(command: str) -> None:
    try:
        import torch  # noqa: F401
    except ImportError:
        raise WakewordError(
            f"'wakeword {command}' needs PyTorch: pip install 'wakeword[train]' (see README, Install)"
        ) from None


def refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise WakewordError(f"{path} already exists; pass --force to overwrite it")


def cmd_embed(args: argparse.Namespace) -> int:
    """Embeddings (T x 96, one per 80 ms) of each file: the encoder as a fixed feature extractor."""
    from wakeword.audio import SAMPLE_RATE, load_audio

    out = Path(args.out)
    if len(args.audio) > 1 and out.suffix != ".npz":
        raise WakewordError(f"{len(args.audio)} input files need an .npz output (one array per file), not {out}")
    if out.suffix not in (".npy", ".npz"):
        raise WakewordError(f"--out must end in .npy or .npz, not {out.name}")
    refuse_overwrite(out, args.force)
    clips = {name: load_audio(name) for name in args.audio}  # every file checked before any work
    require_torch("embed")
    from wakeword.encoder import TorchEncoder
    from wakeword.frontend import embed_audio

    encode = TorchEncoder()
    embeddings = {}
    for name, audio in clips.items():
        embeddings[name] = embed_audio(audio, encode)
        steps, dims = embeddings[name].shape
        print(f"{name}: {len(audio) / SAMPLE_RATE:.2f} s -> {steps} embeddings x {dims}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".npy":
        np.save(out, next(iter(embeddings.values())))
    else:
        np.savez(out, **embeddings)
    print(f"wrote {out}")
    return 0


def synthesize_espeak(text: str, path: Path, voice: str = "en-us") -> None:
    """Speak text to a WAV file with espeak-ng (Debian package espeak-ng)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise WakewordError("espeak-ng not found: apt-get install espeak-ng (or run 'make setup')")
    result = subprocess.run([exe, "-v", voice, "-w", str(path), text], capture_output=True, text=True)
    if result.returncode != 0:
        raise WakewordError(f"espeak-ng failed for voice {voice}: {result.stderr.strip()}")


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on a bundled default; for now: synthesise the phrase, embed it, show the result."""
    from wakeword.audio import load_audio

    require_torch("demo")
    from wakeword.encoder import TorchEncoder
    from wakeword.frontend import embed_audio

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="wakeword-demo-"))
    out.mkdir(parents=True, exist_ok=True)
    encode = TorchEncoder()
    summary = {}
    for voice in ("en-us", "en-gb"):
        wav = out / f"{args.phrase.replace(' ', '_')}.{voice}.wav"
        synthesize_espeak(args.phrase, wav, voice)
        emb = embed_audio(load_audio(wav), encode)
        np.save(wav.with_suffix(".npy"), emb)
        summary[voice] = emb
        print(f"{wav}: {emb.shape[0]} embeddings x {emb.shape[1]}")
    a, b = (e.mean(axis=0) for e in summary.values())
    print(f"cosine similarity of the two voices' mean embeddings: {a @ b / np.linalg.norm(a) / np.linalg.norm(b):.3f}")
    print(f"demo files in {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wakeword",
        description="Few-shot wake-word detection by transfer learning on Google's speech_embedding encoder.",
    )
    parser.add_argument("--version", action="version", version=f"wakeword {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("embed", help="write the encoder's embeddings (T x 96, one per 80 ms) of audio files")
    p.add_argument("audio", nargs="+", help="audio files (any rate, mono or stereo; WAV, FLAC, OGG, MP3)")
    p.add_argument("--out", required=True, help="EMB.npy for one file, EMB.npz for several (keyed by path)")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("demo", help="run the main job on a bundled default phrase")
    p.add_argument("--phrase", default=DEMO_PHRASE, help=f"phrase to synthesise (default: {DEMO_PHRASE!r})")
    p.add_argument("--out", help="folder for the demo's files (default: a new temporary folder)")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if args.command is None:
        parser.print_help()
        return 2
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except WakewordError as exc:
        print(f"wakeword: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
