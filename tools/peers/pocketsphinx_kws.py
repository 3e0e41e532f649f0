"""PocketSphinx keyphrase spotting (pocketsphinx 5.1.1 with its bundled en-us model): the classic
HMM baseline. Any phrase whose words are in the bundled CMU dictionary can be spotted, no training.

How it runs. The stream is fed in 80 ms chunks to a Decoder in keyphrase mode, in the loop
PocketSphinx's own KWS examples use: after each chunk, if hyp() reports a detection, read it and
restart the utterance. A detection fires when the log-likelihood ratio of the keyphrase HMM against
the phone loop reaches kws_threshold; we decode at a very permissive SCAN_THRESHOLD (1e-50) so that
every candidate is seen, and keep each one's ratio.

Scores. The score of the step at which PocketSphinx reports a detection is that detection's ratio
expressed as log10 of the largest kws_threshold at which it would still have fired (so -30 means
"fires at kws_threshold = 1e-30"); steps with no detection get FLOOR_SCORE, below every detection.
Sweeping our threshold over these scores therefore stands in for re-running PocketSphinx at each
kws_threshold. Honest caveat: that stand-in is exact for a detection's own decision but not for
what follows it, because each reported detection restarts the utterance, and a stricter
kws_threshold would not have restarted it there; and detections are sparse events, not a continuous
confidence, so the DET curve has as many distinct points as there were detections. It is the
threshold sweep PocketSphinx users do by hand, done in one pass.

Threshold: PocketSphinx's own default kws_threshold is 1e-30 (MODEL_THRESHOLD = -30 on this scale).

The ratio comes back through the Python binding as Segment.prob = logmath_exp(ratio - KWS_MAX):
log base 1.0001 (the default logbase), in score units shifted right by SENSCR_SHIFT = 10 bits, with
KWS_MAX = 1500 subtracted (kws_search.c). Checked: a detection scored -24.68 here fires at
kws_threshold 1e-24.63 and not at 1e-24.73.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tools.peers import chunks, require, to_int16

SCAN_THRESHOLD = 1e-50  # the loosest value PocketSphinx's documentation suggests tuning towards
MODEL_THRESHOLD = -30.0  # log10 of PocketSphinx's default kws_threshold, 1e-30
LOG_BASE = 1.0001
SENSCR_SHIFT = 10
KWS_MAX = 1500
FLOOR_SCORE = math.log10(SCAN_THRESHOLD) - 10.0  # "no detection even at the scan threshold"


def _log10_threshold(segment_prob: float) -> float:
    """The kws_threshold (as log10) at which this detection would just still have fired."""
    ratio = math.log(segment_prob) / math.log(LOG_BASE) + KWS_MAX  # in shifted log units
    return ratio * (1 << SENSCR_SHIFT) * math.log10(LOG_BASE)


def _decoder(keyphrase: str):
    from pocketsphinx import Decoder

    decoder = Decoder(keyphrase=keyphrase, kws_threshold=SCAN_THRESHOLD, loglevel="FATAL")
    missing = [word for word in keyphrase.split() if decoder.lookup_word(word) is None]
    if missing:
        raise ValueError(f"not in PocketSphinx's en-us dictionary: {', '.join(missing)}")
    return decoder


def pocketsphinx_scorer(keyphrase: str) -> Callable[[np.ndarray], np.ndarray]:
    """A Scorer spotting `keyphrase` (lower case, dictionary words); a fresh decoder per stream."""
    require("pocketsphinx")
    keyphrase = keyphrase.lower().replace("_", " ")
    _decoder(keyphrase)  # fail now, not on the first stream, if a word is missing

    def score(audio: np.ndarray) -> np.ndarray:
        decoder = _decoder(keyphrase)
        decoder.start_utt()
        pcm_chunks = chunks(to_int16(audio))
        scores = np.full(len(pcm_chunks), FLOOR_SCORE)
        for k, chunk in enumerate(pcm_chunks):
            decoder.process_raw(chunk.tobytes(), False, False)
            if decoder.hyp() is not None:
                scores[k] = max(_log10_threshold(seg.prob) for seg in decoder.seg())
                decoder.end_utt()
                decoder.start_utt()
        decoder.end_utt()
        return scores

    return score
