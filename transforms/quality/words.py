"""Words as spaCy's English tokenizer splits them, in pure Python, for the Gopher, C4 and FineWeb rules.

datatrove's Gopher and FineWeb filters count words with ``spacy.blank("en")`` (spaCy 3.8) and C4 counts
sentences with spaCy's sentencizer over the same tokens, so a word splitter that differs from spaCy's
moves documents across thresholds. This module follows spaCy's documented algorithm
(https://spacy.io/usage/linguistic-features#how-tokenizer-works), re-implemented here:

1. split the text on whitespace; a chunk that is an exception (``cannot`` -> ``can not``, ``Mr.``,
   ``:)``) is split as the exception says;
2. otherwise strip prefixes (opening punctuation, quotes, currency, symbols) and suffixes (closing
   punctuation, quotes, ``'s``, units after a number, a period after a lowercase letter, ...) one at a
   time, stopping early when what is left is an exception;
3. what remains is kept whole if it is an exception or a URL, else split at infixes (``...``, a symbol,
   a hyphen or ``/ : < > =`` between letters, a period between a lowercase and an uppercase letter, a
   comma between letters, an operator between digits);
4. token sequences inside a chunk that spell an exception containing punctuation (``) :`` -> ``):``)
   are merged back as the exception says.

The character classes, affix lists and exceptions are spaCy's English defaults (MIT licence,
spacy/lang/char_classes.py, punctuation.py, tokenizer_exceptions.py, en/), written out again here
as data. Chunks repeat a lot in web text, so each chunk's split is cached.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from itertools import chain, pairwise
from typing import Any

# ---------------------------------------------------------------------------------------------
# Character classes
# ---------------------------------------------------------------------------------------------

# Code point ranges spaCy's English tokenizer counts as letters (its ALPHA class: Latin, Greek,
# Cyrillic, Hebrew, Arabic/Persian, Indic, Ethiopic, Hangul, kana and CJK).
_ALPHA_RANGES = (
    "41-5A 61-7A C0-D6 D8-F6 F8-1BF 1C4-2AF 386 388-38A 38C 38E-38F 391-3A9 3AC-3AF 3B1-3C9 "
    "3CC-3CE 400-401 403-40A 40C-40D 410-451 453-45A 45C-45D 490-491 496-497 4A2-4A3 4AE-4AF "
    "4BA-4BB 4D8-4D9 4E8-4E9 591-5F4 620-64A 66E-6D5 6E5-6FF 750-77F 8A0-8BD 900-9FF B80-CFF "
    "D80-DFF 1100-137F 1D00-1D25 1D6B-1D77 1D79-1D9A 1E00-1EFF 2C60-2C7B 2C7E-2C7F 2E80-2FDF "
    "2FF0-30FF 31C0-31EF 3200-4DBF 4E00-9FFF A722-A76F A771-A787 A78B-A78E A790-A7B9 A7FA "
    "AB30-AB5A AB60-AB64 AC00-D7AF F900-FAFF FB1D-FBB1 FBD3-FD3D FD50-FDC7 FDF0-FDFB FE30-FE4F "
    "FE70-FEFC FF21-FF3A FF41-FF5A 1EE00-1EEBB 1F200-1F2FF 20000-2A6DF 2A700-2EBEF 2F800-2FA1F")
# Letters of those ranges that spaCy lists as neither lowercase nor uppercase although Unicode has a
# case for them (title-case digraphs and a few phonetic letters), per side.
_NOT_LOWER = frozenset((0x1BB, 0x1C5, 0x1C8, 0x1CB, 0x1F2, 0x3A2))
_NOT_UPPER = frozenset((0x1BB, 0x1C5, 0x1C8, 0x1CB, 0x1F2, 0x294))
# spaCy's "icons" are the Unicode "other symbol" (So) characters of an older Unicode version: these
# later additions are not among them.
_ICONS_EXCLUDED = (
    "166D 2B97 2BC9 2BFF 2E50-2E51 32FF FD40-FD4F FDCF FDFE-FDFF 1019C 11FD5-11FDC 11FE1-11FF1 "
    "1CF50-1CFC3 1D1E9-1D1EA 1E14F 1ED2E 1F10D-1F10F 1F16C-1F16F 1F1AD 1F6D5-1F6D7 1F6DD-1F6DF "
    "1F6FA-1F6FC 1F7E0-1F7EB 1F7F0 1F8B0-1F8B1 1F90C-1F90F 1F93F 1F971-1F972 1F977-1F979 1F97B "
    "1F9A3-1F9AF 1F9BA-1F9BF 1F9C3-1F9CF 1FA00-1FA53 1FA70-1FA74 1FA78-1FA7C 1FA80-1FA86 "
    "1FA90-1FAAC 1FAB0-1FABA 1FAC0-1FAC5 1FAD0-1FAD9 1FAE0-1FAE7 1FAF0-1FAF6 1FB00-1FB92 "
    "1FB94-1FBCA")

QUOTES = "'\",`«´»‘’‚“”„〈〉⟦⟧〈〉《》「」『』【】〔〕（）"
# Punctuation split off either end of a chunk ("…" and "……" are whole marks).
_PUNCT = ",:;!?¿؟¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪"
_CURRENCY = "$£€¥฿₽﷼₴₠₡₢₣₤₥₦₧₨₩₪₫₭₮₯₰₱₲₳₵₶₷₸₹₺₻₼₾₿"
_UNITS = (
    "km km² km³ m m² m³ dm dm² dm³ cm cm² cm³ mm mm² mm³ ha µm nm yd in ft kg g mg µg t lb oz m/s "
    "km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB T G M K % км км² км³ м м² м³ дм дм² дм³ см "
    "см² см³ мм мм² мм³ нм кг г мг м/с км/ч кПа Па мбар Кб КБ кб Мб МБ мб Гб ГБ гб Тб ТБ тбكم كم² "
    "كم³ م م² م³ سم سم² سم³ مم مم² مم³ كم غرام جرام جم كغ ملغ كوب اكواب")  # "тбكم": sic, as spaCy
_HYPHENS = ("-", "–", "—", "--", "---", "——", "~")


def _ranges(spec: str) -> list[tuple[int, int]]:
    out = []
    for part in spec.split():
        lo, _, hi = part.partition("-")
        out.append((int(lo, 16), int(hi or lo, 16)))
    return out


def char_class(code_points: list[int]) -> str:
    """A regex character class body for a sorted list of code points, as ranges."""
    parts: list[str] = []
    start = prev = None
    for c in code_points + [-2]:
        if prev is not None and c == prev + 1:
            prev = c
            continue
        if start is not None:
            parts.append(re.escape(chr(start)) if start == prev
                         else f"{re.escape(chr(start))}-{re.escape(chr(prev))}")
        start = prev = c
    return "".join(parts)


def _escape_all(chars: str) -> str:
    return "".join(re.escape(c) for c in chars)


@lru_cache(maxsize=1)
def _patterns() -> dict[str, Any]:
    """The prefix, suffix, infix and URL expressions (built once, on first use)."""
    alpha = [c for lo, hi in _ranges(_ALPHA_RANGES) for c in range(lo, hi + 1)]
    lower = [c for c in alpha if not chr(c).isupper() and c not in _NOT_LOWER]
    upper = [c for c in alpha if not chr(c).islower() and c not in _NOT_UPPER]
    excluded = {c for lo, hi in _ranges(_ICONS_EXCLUDED) for c in range(lo, hi + 1)}
    icons = [c for c in range(0x1FC00) if c not in excluded and unicodedata.category(chr(c)) == "So"]
    a, al, au, ic = (char_class(x) for x in (alpha, lower, upper, icons))
    q, p = _escape_all(QUOTES), _escape_all(_PUNCT)
    currency = _escape_all(_CURRENCY)
    units = "|".join(re.escape(u) for u in _UNITS.split())
    hyphens = "|".join(re.escape(h) for h in _HYPHENS)
    # Prefixes: the first alternative that matches wins, so a run of "…" comes off one at a time.
    prefix = (rf"\.\.+|US\$|C\$|A\$|\+(?![0-9])"
              rf"|[§%=—–…{p}{q}{currency}{ic}]")
    # Suffixes: the longest one (the leftmost start) wins, whatever the order.
    suffix = (rf"(?:……|\.\.+|[…{p}{q}{ic}—–]|'s|'S|’s|’S"
              rf"|(?<=[0-9])\+|(?<=°[FfCcKk])\."
              rf"|(?<=[0-9])(?:[{currency}]|US\$|C\$|A\$)"
              rf"|(?<=[0-9])(?:{units})"
              rf"|(?<=[0-9{al}%²\-+{p}…|(?:){q}])\."
              rf"|(?<=[{au}][{au}])\.)$")
    infix = (rf"\.\.+|…|[{ic}]"
             rf"|(?<=[0-9])[+\-*^](?=[0-9-])"
             rf"|(?<=[{al}{q}])\.(?=[{au}{q}])"
             rf"|(?<=[{a}]),(?=[{a}])"
             rf"|(?<=[{a}0-9])(?:{hyphens})(?=[{a}])"
             rf"|(?<=[{a}0-9])[:<>=/](?=[{a}])")
    host = r"[A-Za-z0-9\u00a1-\uffff]"
    url = (r"(?:[\w+\-.]{2,}://)?"                       # scheme
           r"(?:\S+(?::\S*)?@)?"                          # user:password@
           r"(?:(?!(?:10|127)(?:\.\d{1,3}){3})"           # a public IPv4 address ...
           r"(?!(?:169\.254|192\.168)(?:\.\d{1,3}){2})"
           r"(?!172\.(?:1[6-9]|2\d|3[0-1])(?:\.\d{1,3}){2})"
           r"(?:[1-9]\d?|1\d\d|2[01]\d|22[0-3])"
           r"(?:\.(?:1?\d{1,2}|2[0-4]\d|25[0-5])){2}"
           r"(?:\.(?:[1-9]\d?|1\d\d|2[0-4]\d|25[0-4]))"
           rf"|(?:(?:{host}[A-Za-z0-9\u00a1-\uffff_-]{{0,62}})?{host}\.)+"  # ... or host names
           rf"[{al}]{{2,63}})"                            # and a lowercase top-level domain
           r"(?::\d{2,5})?"                               # port
           r"(?:[/?#]\S*)?")                              # path
    # Without a digit (units, currency and "+" need one before them) a suffix ends with one of these.
    suffix_ends = frozenset(_PUNCT + QUOTES + "….—–sS" + "".join(map(chr, icons)))
    return {"prefix": re.compile(prefix), "suffix": re.compile(suffix), "suffix_ends": suffix_ends,
            "infix": re.compile(infix), "url": re.compile(url)}


# ---------------------------------------------------------------------------------------------
# Exceptions (spaCy's English tokenizer exceptions)
# ---------------------------------------------------------------------------------------------

_EMOTICONS = r"""
:) :-) :)) :-)) :))) :-))) (: (-: =) (= :] :-] [: [-: [= =] :o) (o: :} :-} 8) 8-) (-8 ;) ;-) (; (-;
:( :-( :(( :-(( :((( :-((( ): )-: =( >:( :') :'-) :'( :'-( :/ :-/ =/ =| :| :-| ]= =[ :1 :P :-P :p
:-p :O :-O :o :-o :0 :-0 :() >:o :* :-* :3 :-3 =3 :> :-> :X :-X :x :-x :D :-D ;D ;-D =D xD XD xDD
XDD 8D 8-D ^_^ ^__^ ^___^ >.< >.> <.< ._. ;_; -_- -__- v.v V.V v_v V_V o_o o_O O_o O_O 0_o o_0 0_0
o.O O.o O.O o.o 0.0 o.0 0.o @_@ <3 <33 <333 </3 (^_^) (-_-) (._.) (>_<) (*_*) (¬_¬) ಠ_ಠ ಠ︵ಠ (ಠ_ಠ)
¯\(ツ)/¯ (╯°□°）╯︵┻━┻ ><(((*>"""
_WHOLE = (
    # base: marks and letters with a period
    "' \\\") <space> '' C++ \\t \\n — " + " ".join(f"{c}." for c in "abcdefghijklmnopqrstuvwxyzäöü")
    # English: clitics, colloquial forms, abbreviations
    + " 'S 's ‘S ‘s and/or w/o 're 'Cause 'cause 'cos 'Cos 'coz 'Coz 'cuz 'Cuz 'bout ma'am Ma'am"
    " o'clock O'clock lovin' Lovin' lovin Lovin havin' Havin' havin Havin doin' Doin' doin Doin goin'"
    " Goin' goin Goin nothin nothin' Nothin Nothin' nuthin nuthin' Nuthin Nuthin' ol ol' Ol Ol'"
    " somethin somethin' Somethin Somethin' em 'em ll 'll nuff 'nuff 'd"
    " Mt. Ak. Ala. Apr. Ariz. Ark. Aug. Calif. Colo. Conn. Dec. Del. Feb. Fla. Ga. Ia. Id. Ill. Ind."
    " Jan. Jul. Jun. Kan. Kans. Ky. La. Mar. Mass. Mich. Minn. Miss. N.C. N.D. N.H. N.J. N.M. N.Y."
    " Neb. Nebr. Nev. Nov. Oct. Okla. Ore. Pa. S.C. Sep. Sept. Tenn. Va. Wash. Wis."
    " a.m. Adm. Bros. co. Co. Corp. D.C. Dr. e.g. E.g. E.G. Gen. Gov. i.e. I.e. I.E. Inc. Jr. Ltd."
    " Md. Messrs. Mo. Mont. Mr. Mrs. Ms. p.m. Ph.D. Prof. Rep. Rev. Sen. St. vs. v.s.")
# Split forms, "piece|piece".
_SPLIT = (
    "y'|all y|all how|'d|'y How|'d|'y not|'ve not|ve Not|'ve Not|ve can|not Can|not gon|na Gon|na"
    " got|ta Got|ta let|'s Let|'s c'm|on C'm|on")
# Forms the contraction rules would produce that are ordinary words.
_NOT_CONTRACTIONS = frozenset(("Ill", "ill", "Its", "its", "Hell", "hell", "Shell", "shell", "Shed",
                               "shed", "were", "Were", "Well", "well", "Whore", "whore"))


def _contractions() -> list[tuple[str, ...]]:
    """Pronoun, wh-word and auxiliary contractions, with and without the apostrophe."""
    out: list[tuple[str, ...]] = []

    def both(word: str, *clitics: str) -> None:
        for w in (word, word.title()):
            out.append((w, *clitics))
            out.append((w, *(c.replace("'", "") for c in clitics)))

    both("i", "'m")
    both("i", "'m", "a")
    for pron in ("i", "you", "he", "she", "it", "we", "they"):
        for clitics in (("'ll",), ("'ll", "'ve"), ("'d",), ("'d", "'ve")):
            both(pron, *clitics)
    for pron in ("i", "you", "we", "they"):
        both(pron, "'ve")
    for pron in ("you", "we", "they"):
        both(pron, "'re")
    for pron in ("he", "she", "it"):
        both(pron, "'s")
    for word in ("who", "what", "when", "where", "why", "how", "there", "that", "this", "these",
                 "those"):
        if word not in ("these", "those"):
            both(word, "'s")
        for clitics in (("'ll",), ("'ll", "'ve"), ("'d",), ("'d", "'ve")):
            both(word, *clitics)
        if word not in ("that", "this"):
            both(word, "'re")
            both(word, "'ve")
    for verb in ("ca", "could", "do", "does", "did", "had", "may", "might", "must", "need", "ought",
                 "sha", "should", "wo", "would"):
        both(verb, "n't")
        both(verb, "n't", "'ve")
    for verb in ("could", "might", "must", "should", "would"):
        both(verb, "'ve")
    for verb in ("ai", "are", "is", "was", "were", "have", "has", "dare"):
        both(verb, "n't")
    for hour in range(1, 13):
        for period in ("a.m.", "am", "p.m.", "pm"):
            out.append((str(hour), period))
    return out


@lru_cache(maxsize=1)
def exceptions() -> dict[str, tuple[str, ...]]:
    """Chunk -> its tokens, for every special case of spaCy's English tokenizer."""
    table: dict[str, tuple[str, ...]] = {}
    for pieces in _contractions():
        key = "".join(pieces)
        if key not in _NOT_CONTRACTIONS:
            table[key] = pieces
    for form in _SPLIT.split():
        pieces = tuple(form.split("|"))
        table["".join(pieces)] = pieces
    for word in _WHOLE.split() + _EMOTICONS.split():
        table[word] = (word,)
    for unit in "cfkCFK":
        table[f"°{unit}."] = ("°", unit, ".")
    for key, pieces in list(table.items()):  # the same with a typographic apostrophe
        if "'" in key:
            table[key.replace("'", "’")] = tuple(p.replace("'", "’") for p in pieces)
    return table


# ---------------------------------------------------------------------------------------------
# The tokenizer
# ---------------------------------------------------------------------------------------------


def _split_chunk(chunk: str, specials: dict[str, tuple[str, ...]]) -> list[str]:
    """Tokens of one whitespace-free chunk (steps 2 and 3 of the module docstring)."""
    pat = _patterns()
    prefix_match, suffix_search = pat["prefix"].match, pat["suffix"].search
    suffix_ends, has_digit = pat["suffix_ends"], _HAS_DIGIT
    prefixes: list[str] = []
    suffixes: list[str] = []
    s = chunk
    last = -1
    while s and len(s) != last:
        if s in specials:
            break
        last = len(s)
        m = prefix_match(s)
        pre = m.end() if m else 0
        if pre and s[pre:] in specials:
            prefixes.append(s[:pre])
            s = s[pre:]
            break
        rest = s[pre:]
        suf = 0
        if rest and (rest[-1] in suffix_ends or has_digit(rest)):
            # The longest suffix wins; only a run of periods can be longer than _SUFFIX_WINDOW, so
            # the search starts near the end (lookbehinds still see the characters before it).
            m = suffix_search(rest, 0 if rest.endswith("..") else len(rest) - _SUFFIX_WINDOW)
            suf = len(rest) - m.start() if m else 0
        if suf and s[:-suf] in specials:
            suffixes.append(s[-suf:])
            s = s[:-suf]
            break
        if pre:
            prefixes.append(s[:pre])
        if suf:
            suffixes.append(s[-suf:])
        s = s[pre:len(s) - suf]
    out = prefixes
    if s:
        hit = specials.get(s)
        if hit is not None:
            out.extend(hit)
        elif s.isalnum() or ("." in s and pat["url"].fullmatch(s)):  # no infix in letters/digits
            out.append(s)
        else:
            start = 0
            for m in pat["infix"].finditer(s):
                i, j = m.span()
                if i == 0:  # an infix cannot start the string
                    continue
                if i != start:
                    out.append(s[start:i])
                out.append(s[i:j])
                start = j
            if start < len(s):
                out.append(s[start:])
    out.extend(reversed(suffixes))
    return out


@lru_cache(maxsize=1)
def _merge_table() -> tuple[dict[tuple[str, ...], tuple[str, ...]], int, frozenset]:
    """Token sequences that spell a punctuated exception -> the exception's tokens (step 4), the
    longest sequence, and the sequences' first two tokens (a quick test that none can match)."""
    pat = _patterns()
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for key, pieces in exceptions().items():
        if pat["prefix"].match(key) or pat["suffix"].search(key) or pat["infix"].search(key):
            tokens = tuple(_split_chunk(key, {}))
            if tokens != pieces:
                table[tokens] = pieces
    return table, max(map(len, table)), frozenset(t[:2] for t in table)


def _merge_exceptions(tokens: list[str]) -> list[str]:
    """Step 4: merge token runs that spell an exception, longest first, without overlaps."""
    table, longest, starts = _merge_table()
    if starts.isdisjoint(pairwise(tokens)):
        return tokens
    n = len(tokens)
    found = [(size, i) for size in range(min(longest, n), 1, -1) for i in range(n - size + 1)
             if tuple(tokens[i:i + size]) in table]
    if not found:
        return tokens
    taken: set[int] = set()
    chosen = []
    for size, i in sorted(found, key=lambda f: (-f[0], f[1])):  # longest, then leftmost
        if i not in taken and i + size - 1 not in taken:
            chosen.append((i, size))
        taken.update(range(i, i + size))
    out: list[str] = []
    pos = 0
    for i, size in sorted(chosen):
        out.extend(tokens[pos:i])
        out.extend(table[tuple(tokens[i:i + size])])
        pos = i + size
    out.extend(tokens[pos:])
    return out


_HAS_DIGIT = re.compile("[0-9]").search
# Single marks that are always a suffix after a word ("." only after some letters), and always a
# prefix before one: a word with one of them at one end splits without the general loop, since no
# other affix or infix can match inside a run of letters.
_CLOSING = frozenset(",:;?!).")
# After letters, the clitic suffix and nothing else applies (no other affix ends with a letter).
_POSSESSIVE = frozenset(("'s", "'S", "’s", "’S"))
# No suffix is longer than this (the units, e.g. "км/ч"), except a run of periods.
_SUFFIX_WINDOW = 6
_OPENING = frozenset("([{\"“„«‘'<")
class _ChunkCache(dict):
    """Chunk -> its tokens; a chunk seen for the first time is split on lookup."""

    def __missing__(self, chunk: str) -> tuple[str, ...]:
        if chunk.isalpha() and chunk not in exceptions():  # most new chunks: one word
            self[chunk] = tokens = (chunk,)
            return tokens
        return tokenize_chunk(chunk)


_CACHE = _ChunkCache()
_CACHE_LIMIT = 200_000  # chunks (about 50 MB)


def trim_cache() -> None:
    """Empty the per-chunk cache once it holds ``_CACHE_LIMIT`` chunks (bounded memory)."""
    if len(_CACHE) >= _CACHE_LIMIT:
        _CACHE.clear()


def tokenize_chunk(chunk: str) -> tuple[str, ...]:
    """Tokens of one whitespace-free chunk, as spaCy's English tokenizer gives them."""
    tokens = _CACHE.get(chunk)
    if tokens is not None:
        return tokens
    specials = exceptions()
    hit = specials.get(chunk)
    if hit is not None:
        tokens = hit
    elif chunk.isalpha() or chunk.isdecimal():  # no affix or infix can apply
        tokens = (chunk,)
    elif chunk[-1] in _CLOSING and (chunk[:-1].isalpha() or chunk[:-1].isdecimal()):
        core = chunk[:-1]  # word, word) word? 19, 2019! ... (fast path)
        if chunk[-1] == "." and not _patterns()["suffix"].search(chunk[-3:], len(chunk[-3:]) - 1):
            tokens = (chunk,)  # "A." keeps its period
        else:
            tokens = tuple(_merge_exceptions([*specials.get(core, (core,)), chunk[-1]]))
    elif chunk[-2:] in _POSSESSIVE and chunk[:-2].isalpha():  # word's (fast path)
        core = chunk[:-2]
        tokens = tuple(_merge_exceptions([*specials.get(core, (core,)), chunk[-2:]]))
    elif chunk[0] in _OPENING and chunk[1:].isalpha():  # (word "word ... (fast path)
        core = chunk[1:]
        tokens = tuple(_merge_exceptions([chunk[0], *specials.get(core, (core,))]))
    else:
        parts = _split_chunk(chunk, specials)
        if len(parts) > 1:
            parts = _merge_exceptions(parts)
        tokens = tuple(parts)
    _CACHE[chunk] = tokens
    return tokens


def split_words(text: str) -> list[str]:
    """Words and punctuation marks of ``text``, split as spaCy's English tokenizer splits them
    (datatrove's ``split_into_words``: whitespace is not a token)."""
    trim_cache()
    return list(chain.from_iterable(map(_CACHE.__getitem__, text.split())))
