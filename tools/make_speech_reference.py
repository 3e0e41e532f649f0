"""Write wakeword/models/speech_reference.json: the band means of broad speech that `wakeword adapt`
moves a deployment's microphone toward (see wakeword/channel.py).

    python tools/make_speech_reference.py [--clips 3000]

The speech is the training half (tools/bench_accuracy.py's split, so no test recording is in it) of
the real recordings in ../shared/data: many speakers on their own microphones. The file holds 32
averages and where they came from, not audio.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tools import shared_data  # noqa: E402
from tools.bench_accuracy import is_train_half  # noqa: E402
from wakeword.audio import load_audio  # noqa: E402
from wakeword.channel import REFERENCE_FILE, band_means  # noqa: E402

OUT = ROOT / "models" / REFERENCE_FILE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not shared_data.available():
        raise SystemExit(shared_data.MISSING_REASON)
    speech = [c for c in shared_data.manifest() if c.role in ("positive", "negative") and is_train_half(c)]
    rng = np.random.default_rng(args.seed)
    chosen = [speech[i] for i in sorted(rng.choice(len(speech), min(args.clips, len(speech)), replace=False))]
    means, frames = band_means(load_audio(c.path) for c in chosen)
    sources = sorted({c.source for c in chosen})
    OUT.write_text(
        json.dumps(
            {
                "band_means": [round(float(v), 5) for v in means],
                "loud_frames": frames,
                "clips": len(chosen),
                "speakers": len({c.speaker for c in chosen}),
                "sources": sources,
                "made_by": "tools/make_speech_reference.py (training half of ../shared/data speech; see its LICENSES)",
            },
            indent=2,
        )
        + "\n"
    )
    print(f"{OUT.relative_to(ROOT)}: {len(chosen)} clips, {frames} loud frames, sources {', '.join(sources)}")


if __name__ == "__main__":
    main()
