"""A word n-gram language model with interpolated Kneser-Ney smoothing, and truncated sampling.

The model-collapse simulation (`pipeline/simulate.py`) trains one model per generation and regime,
so it needs a generative text model that fits in about a second on a CPU. Interpolated Kneser-Ney
(Kneser & Ney 1995; Chen & Goodman 1999, "An empirical study of smoothing techniques") is the
best-performing classical n-gram smoothing, and three of its properties matter here:

- it is a normalized distribution over the whole vocabulary for every context, so perplexity on
  held-out text is meaningful and top-p truncation is well defined ("the smallest set with mass
  >= p"); stupid backoff (Brants et al. 2007) is cheaper but not normalized;
- every word keeps some probability in every context (the lowest order interpolates with the
  uniform distribution), so a rare word disappears from the next generation through *sampling and
  truncation*, as in the collapse papers, not through a hole in the model;
- its lower orders use continuation counts (in how many contexts a word appears), the usual guard
  against words that are frequent only inside one phrase.

Tokens: words (letter/digit runs with inner apostrophes or hyphens) and single punctuation
characters, each with the space before it if there was one (so tokens give the text back exactly),
``<nl>`` for a line break and ``</s>`` at the end of a document; ``<s>`` pads the start of each
document (it is never predicted). The discount per order is D = n1 / (n1 + 2 n2) (Ney et al. 1994),
and n-grams that begin with ``<s>`` keep their raw counts at lower orders, as KenLM does.

Sampling: the distribution for a context is a sparse part (the words seen after the context or
one of its suffixes) plus a constant times one fixed vector (the lowest order), so the top-p / top-k
nucleus is found exactly by merging the sorted sparse part into the presorted lowest order
(`Nucleus`), without materialising the vocabulary-sized distribution for every token. The dense
`distribution()` is the reference the tests check it against.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

BOS, EOS, NL = "<s>", "</s>", "<nl>"
SPECIALS = (BOS, EOS, NL)
BOS_ID, EOS_ID, NL_ID = 0, 1, 2

_TOKEN = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*|[^\w\s]|_+")
_CACHE_LIMIT = 500_000  # nuclei kept per model (small: they point into shared levels)


# ---------------------------------------------------------------------------------------------
# Text <-> tokens.


def tokenize(text: str) -> list[str]:
    """Words and punctuation, each carrying the space before it (`" word"`), and ``<nl>`` between
    non-empty lines: `detokenize` gives the text back (spaces collapsed, blank lines dropped), so
    real text reaches the pipeline as written and the model learns where spaces go."""
    out: list[str] = []
    for line in text.split("\n"):
        toks = [(" " if m.start() and line[m.start() - 1].isspace() else "") + m.group()
                for m in _TOKEN.finditer(line)]
        if toks:
            if out:
                out.append(NL)
            out.extend(toks)
    return out


def detokenize(tokens: Iterable[str]) -> str:
    """The text of tokens from `tokenize` (or sampled by the model)."""
    lines: list[str] = []
    cur: list[str] = []
    for tok in tokens:
        if tok == NL:
            lines.append("".join(cur).strip())
            cur = []
        elif tok not in (BOS, EOS):
            cur.append(tok)
    lines.append("".join(cur).strip())
    return "\n".join(line for line in lines if line)


def truncate(ids: np.ndarray, max_tokens: int, sentence_ends: np.ndarray | None = None,
             open_end: bool = False) -> np.ndarray:
    """The first `max_tokens` tokens, cut at the last line break or sentence end (`sentence_ends`:
    a mask over ids) in the second half: a text cut mid-sentence would fail line-based quality
    rules (C4 drops lines without terminal punctuation) for a reason no writer caused.
    `open_end`: the document did not end by itself (a sample that hit the limit); cut it the same."""
    if len(ids) <= max_tokens and not open_end:
        return ids
    head = ids[:max_tokens]
    clean = head == NL_ID  # cut before a line break ...
    if sentence_ends is not None:
        clean[1:] |= sentence_ends[head[:-1]]  # ... or after a sentence end
    cuts = np.nonzero(clean)[0]
    cuts = cuts[cuts >= max(max_tokens // 2, 1)]
    return head[: cuts[-1]] if len(cuts) else head


class Vocabulary:
    """Word <-> id; the specials first, then the words in sorted order (deterministic ids)."""

    def __init__(self, words: Iterable[str]):
        self.words: list[str] = [*SPECIALS, *sorted(set(words) - set(SPECIALS))]
        self.index: dict[str, int] = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str]) -> np.ndarray:
        try:
            return np.fromiter((self.index[t] for t in tokens), dtype=np.int64, count=len(tokens))
        except KeyError as exc:
            raise ValueError(f"token {exc.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[i] for i in ids]

    def sentence_ends(self) -> np.ndarray:
        """Mask of the ids after which a sentence ends (for `truncate`)."""
        return np.array([w.strip() in (".", "!", "?", "…") for w in self.words])


# ---------------------------------------------------------------------------------------------
# The model.


@dataclass
class _Order:
    """One order k >= 2: the k-grams seen, keyed `context_id * V + word`, sorted."""

    keys: np.ndarray      # int64, sorted
    alpha: np.ndarray     # (adjusted count - D) / denominator of the context, per k-gram
    lam: np.ndarray       # back-off weight D * types / denominator per context id (1 if unseen)
    discount: float


class KneserNeyLM:
    """Interpolated Kneser-Ney over a fixed vocabulary of `vocab_size` ids (0 = ``<s>``)."""

    def __init__(self, order: int, vocab_size: int, unigram: np.ndarray,
                 orders: dict[int, _Order], contexts: dict[int, np.ndarray]):
        self.order = order
        self.V = vocab_size
        self.unigram = unigram                  # lowest order, dense, sums to 1, 0 at <s>
        self._orders = orders                   # k -> _Order for k = 2..order
        self._contexts = contexts               # j -> sorted keys of the j-grams (j = 2..order-1)
        self._rank_order = np.argsort(-unigram, kind="stable")
        self._sorted_u = unigram[self._rank_order]
        self._cum_u = np.concatenate([[0.0], np.cumsum(self._sorted_u)])
        self._rank = np.empty(vocab_size, dtype=np.int64)
        self._rank[self._rank_order] = np.arange(vocab_size)
        self._neg_sorted_u = -self._sorted_u
        self._cache: dict[tuple, Nucleus] = {}
        self._cache_key: tuple[float, int] | None = None
        self._bigram_cache: dict[int, _Level] = {}
        self._unigram_level = self._make_level(np.empty(0, dtype=np.int64), np.empty(0), 1.0)

    # -- fitting ------------------------------------------------------------------------------

    @classmethod
    def fit(cls, docs: Sequence[np.ndarray], vocab_size: int, order: int = 3) -> KneserNeyLM:
        """Counts every n-gram of the documents (each padded with order-1 ``<s>`` and closed by
        ``</s>``) with numpy: about a second per million tokens for a trigram model."""
        if order < 1:
            raise ValueError("order must be >= 1")
        V = int(vocab_size)
        pad = order - 1
        parts: list[np.ndarray] = []
        for d in docs:
            d = np.asarray(d, dtype=np.int64)
            if len(d) and (d.min() < 0 or d.max() >= V):
                raise ValueError("token id outside the vocabulary")
            parts.append(np.concatenate([np.full(pad, BOS_ID, np.int64), d, [EOS_ID]]))
        if not parts:
            raise ValueError("no documents to fit")
        lengths = np.array([len(p) for p in parts], dtype=np.int64)
        tok = np.concatenate(parts)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        pos = np.arange(len(tok), dtype=np.int64) - np.repeat(starts, lengths)

        # Ids of the j-grams ending at each position (context tables), j = 1..order-1.
        gram_ids: dict[int, np.ndarray] = {1: tok}
        contexts: dict[int, np.ndarray] = {}
        for j in range(2, order):
            t = np.nonzero(pos >= j - 1)[0]
            uniq, inv = np.unique(gram_ids[j - 1][t - 1] * V + tok[t], return_inverse=True)
            contexts[j] = uniq
            ids = np.full(len(tok), -1, dtype=np.int64)
            ids[t] = inv
            gram_ids[j] = ids

        # Events: every predicted token (not <s>), with its k-gram at each order.
        ev = np.nonzero(tok != BOS_ID)[0]
        keys, inverse, first, raw = {}, {}, {}, {}
        for k in range(1, order + 1):
            key = tok[ev] if k == 1 else gram_ids[k - 1][ev - 1] * V + tok[ev]
            keys[k], first[k], inverse[k], raw[k] = np.unique(
                key, return_index=True, return_inverse=True, return_counts=True)

        def adjusted(k: int) -> np.ndarray:
            if k == order:
                return raw[k].astype(np.float64)
            # Continuation count: distinct (k+1)-grams whose last k tokens are this k-gram.
            cont = np.bincount(inverse[k][first[k + 1]], minlength=len(keys[k])).astype(np.float64)
            starts_bos = tok[ev[first[k]] - k + 1] == BOS_ID if k > 1 else np.zeros(len(cont), bool)
            return np.where(starts_bos, raw[k], cont)

        orders: dict[int, _Order] = {}
        for k in range(2, order + 1):
            adj = adjusted(k)
            d = _discount(adj)
            ctx = keys[k] // V
            n_ctx = V if k == 2 else len(contexts[k - 1])
            den = np.bincount(ctx, weights=adj, minlength=n_ctx)
            types = np.bincount(ctx, minlength=n_ctx).astype(np.float64)
            seen = den > 0
            lam = np.ones(n_ctx)
            lam[seen] = d * types[seen] / den[seen]
            orders[k] = _Order(keys[k], (adj - d) / den[ctx], lam, d)

        adj1 = adjusted(1)
        d1 = _discount(adj1)
        total = adj1.sum()
        unigram = np.zeros(V)
        unigram[keys[1]] = np.maximum(adj1 - d1, 0.0) / total
        unigram[1:] += d1 * len(adj1) / total / (V - 1)  # uniform over every predictable id
        unigram[BOS_ID] = 0.0
        unigram /= unigram.sum()  # exact to rounding already; this removes the rounding
        return cls(order, V, unigram, orders, contexts)

    # -- probabilities --------------------------------------------------------------------------

    def _context_id(self, ctx: Sequence[int], j: int) -> int | None:
        """Id of the j-gram made of the last j context tokens, or None if it was never seen."""
        grams = ctx[len(ctx) - j:]
        cid = int(grams[0])
        for step in range(2, j + 1):
            table = self._contexts[step]
            key = cid * self.V + int(grams[step - 1])
            i = int(np.searchsorted(table, key))
            if i == len(table) or table[i] != key:
                return None
            cid = i
        return cid

    def _continuations(self, k: int, cid: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(words seen after context `cid` at order k, their alpha, the context's lambda)."""
        o = self._orders[k]
        base = cid * self.V
        lo, hi = np.searchsorted(o.keys, [base, base + self.V])
        return o.keys[lo:hi] - base, o.alpha[lo:hi], float(o.lam[cid])

    def _bigram_level(self, word: int) -> _Level:
        """The order-2 distribution after `word`, sorted once and kept (one per word)."""
        level = self._bigram_cache.get(word)
        if level is None:
            ids, alpha, lam = self._continuations(2, word)
            level = (self._make_level(ids, alpha + lam * self.unigram[ids], lam) if len(ids)
                     else self._unigram_level)
            self._bigram_cache[word] = level
        return level

    def _make_level(self, ids: np.ndarray, probs: np.ndarray, coef: float) -> _Level:
        """A level from its sparse words (any order) and their full probabilities."""
        srt = np.argsort(-probs, kind="stable")
        words, probs = ids[srt], probs[srt]
        ranks = np.sort(self._rank[words])
        lo = np.concatenate([[0], ranks + 1])
        hi = np.concatenate([ranks, [self.V]])
        base = _Base(ranks, np.concatenate([[0.0], np.cumsum(self._sorted_u[ranks])]), lo, hi,
                     np.concatenate([[0.0], np.cumsum(self._cum_u[hi] - self._cum_u[lo])]),
                     np.concatenate([[0], np.cumsum(hi - lo)]))
        # Per sparse word: the non-sparse words more probable than it (a rank bound), their mass.
        ab = (np.searchsorted(self._neg_sorted_u, -probs / coef, side="left") if coef > 0
              else np.full(len(probs), self.V))
        n_ab = np.searchsorted(ranks, ab, side="left")
        cum = np.concatenate([[0.0], np.cumsum(probs)])
        by_id = np.argsort(words, kind="stable")
        return _Level(words=words, probs=probs, coef=coef, base=base, cum=cum, neg_probs=-probs,
                      ab=ab, after=cum[1:] + coef * (self._cum_u[ab] - base.s_cum_u[n_ab]),
                      after_n=np.arange(1, len(words) + 1) + (ab - n_ab),
                      ids=words[by_id], row=by_id)

    def _parts(self, ctx: Sequence[int]) -> tuple[_Level, np.ndarray, np.ndarray, float]:
        """P(w | ctx) = lam * level(w) + alpha(w) for the top order's words: (level, words,
        alpha, lam). The level is the suffix's (cached for bigrams); orders between 2 and the
        top are materialised (only for order >= 4 models)."""
        empty = np.empty(0, dtype=np.int64)
        if self.order == 1:
            return self._unigram_level, empty, np.empty(0), 1.0
        level = self._bigram_level(int(ctx[-1]))
        for k in range(3, self.order + 1):
            cid = self._context_id(ctx, k - 1)
            if cid is None:
                break  # an unseen context has no longer seen contexts either
            words, alpha, lam = self._continuations(k, cid)
            if k == self.order:
                return level, words, alpha, lam
            if len(words):
                p = lam * level.probs
                p[level.row_of(words)] += alpha
                level = self._make_level(level.words, p, lam * level.coef)
        return level, empty, np.empty(0), 1.0

    def _check_context(self, ctx: Sequence[int]) -> tuple[int, ...]:
        ctx = [int(t) for t in ctx][-(self.order - 1):] if self.order > 1 else []
        return tuple([BOS_ID] * (self.order - 1 - len(ctx)) + ctx)

    def distribution(self, context: Sequence[int]) -> np.ndarray:
        """P(w | context) for every id w (dense; the reference the sampler is tested against)."""
        level, words, alpha, lam = self._parts(self._check_context(context))
        dist = lam * level.coef * self.unigram
        dist[level.words] = lam * level.probs
        dist[words] += alpha
        return dist

    def logprobs(self, docs: Sequence[np.ndarray]) -> np.ndarray:
        """ln P of every predicted token (the words and the closing ``</s>``), vectorized."""
        pad = self.order - 1
        parts = [np.concatenate([np.full(pad, BOS_ID, np.int64), np.asarray(d, np.int64), [EOS_ID]])
                 for d in docs]
        if not parts:
            return np.empty(0)
        lengths = np.array([len(p) for p in parts])
        tok = np.concatenate(parts)
        pos = np.arange(len(tok)) - np.repeat(np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)
        ev = np.nonzero(pos >= pad)[0]
        w = tok[ev]
        prob = self.unigram[w]
        for k in range(2, self.order + 1):
            o = self._orders[k]
            cid = self._chain(tok, ev - 1, k - 1)  # the (k-1)-gram before each token, -1 = unseen
            known = cid >= 0
            safe = np.where(known, cid, 0)
            key = safe * self.V + w
            i = np.minimum(np.searchsorted(o.keys, key), len(o.keys) - 1)
            hit = known & (o.keys[i] == key)
            prob = np.where(known, np.where(hit, o.alpha[i], 0.0) + o.lam[safe] * prob, prob)
        return np.log(prob)

    def _chain(self, tok: np.ndarray, end: np.ndarray, j: int) -> np.ndarray:
        """Ids of the j-grams ending at positions `end` (-1 when unseen)."""
        ids = tok[end - j + 1]
        for step in range(2, j + 1):
            ids = self._lookup(self._contexts[step], ids, tok[end - j + step])
        return ids

    def _lookup(self, table: np.ndarray, prefix_ids: np.ndarray, last: np.ndarray) -> np.ndarray:
        if not len(table):
            return np.full(len(last), -1, dtype=np.int64)
        known = prefix_ids >= 0
        key = np.where(known, prefix_ids, 0) * self.V + last
        i = np.minimum(np.searchsorted(table, key), len(table) - 1)
        return np.where(known & (table[i] == key), i, -1)

    def perplexity(self, docs: Sequence[np.ndarray]) -> float:
        lp = self.logprobs(docs)
        return float(np.exp(-lp.mean())) if len(lp) else float("nan")

    # -- truncated sampling -------------------------------------------------------------------

    def nucleus(self, context: Sequence[int], top_p: float = 1.0, top_k: int = 0) -> Nucleus:
        """The truncated distribution for a context: the smallest prefix of the words in
        decreasing probability with mass >= top_p, and at most top_k words (0 = no limit)."""
        return self._nucleus(self._check_context(context), top_p, top_k)

    def _nucleus(self, ctx: Sequence[int], top_p: float, top_k: int) -> Nucleus:
        """Finds the cut without materialising the distribution. In decreasing probability the
        words are: the top order's words T (moved up by their alpha), the level's sparse words
        (rows, minus T) and the remaining words in unigram order (ranks, minus the sparse ones),
        interleaved. A cut is (T words kept, level rows kept, unigram ranks kept)."""
        lv, tw, ta, lam = self._parts(ctx)
        b, V = lv.base, self.V
        m, c_l = len(lv.words), lv.coef
        rows = lv.row_of(tw)
        tv = lam * lv.probs[rows] + ta
        srt = np.argsort(-tv, kind="stable")
        tw, tv, rows = tw[srt], tv[srt], rows[srt]
        t_cum = np.concatenate([[0.0], np.cumsum(tv)])
        t_rows = np.sort(rows)                       # T's rows in the level, by row
        t_row_cum = np.concatenate([[0.0], np.cumsum(lv.probs[t_rows])])
        t_lp = np.sort(lv.probs[rows])[::-1]         # T's level probabilities, decreasing
        t_lp_cum = np.concatenate([[0.0], np.cumsum(t_lp)])

        def n_s(r):
            return b.ranks.searchsorted(r, side="left")

        def mass_rest(r):  # unigram mass of the non-sparse words among the first r ranks
            return self._cum_u[r] - b.s_cum_u[n_s(r)]

        def t_before(i):  # T rows before row i
            return t_rows.searchsorted(i, side="left")

        # Level items strictly above level value x (T excluded): rows, ranks, mass, count.
        x = tv / lam
        rows_above = lv.neg_probs.searchsorted(-x, side="left")
        ranks_above = (self._neg_sorted_u.searchsorted(-x / c_l, side="left") if c_l > 0
                       else np.full(len(x), V))
        t_above = np.searchsorted(-t_lp, -x, side="left")
        cuts: list[tuple[int, int, int]] = []

        def rest_cut(n_t: int, need: float, count: bool) -> tuple[int, int, int]:
            """T words [0, n_t) kept; the level's items (T excluded) up to mass or count `need`."""
            after = lv.after_n if count else lv.after
            corr_all = np.arange(len(t_rows) + 1) if count else t_row_cum
            i, corr = 0, 0.0
            while True:  # smallest row i whose prefix (T rows excluded) reaches `need`
                i_next = int(after.searchsorted(need + corr, side="left"))
                corr_next = corr_all[t_rows.searchsorted(min(i_next, m - 1), side="right")] \
                    if i_next < m else corr_all[-1]
                if i_next == i and corr_next == corr:
                    break
                i, corr = i_next, corr_next
            n_before = t_before(i)
            is_t = i < m and n_before < len(t_rows) and t_rows[n_before] == i
            if i < m and not is_t:
                before = (after[i] - 1 - (corr_all[n_before])) if count else \
                    (after[i] - lv.probs[i] - t_row_cum[n_before])
                if before < need:
                    return n_t, i + 1, int(lv.ab[i])
            # Inside the run of unigram ranks before row i (or after the last row).
            kept = (i - n_before) if count else (lv.cum[i] - t_row_cum[n_before])
            rest = need - kept
            if count:
                j = min(max(int(b.run_n.searchsorted(rest, side="left")) - 1, 0), len(b.run_lo) - 1)
                r = min(int(b.run_lo[j]) + int(rest) - int(b.run_n[j]), int(b.run_hi[j]))
            else:
                rest = rest / c_l if c_l > 0 else 0.0
                j = min(max(int(b.run_cum.searchsorted(rest, side="left")) - 1, 0), len(b.run_lo) - 1)
                lo, hi = int(b.run_lo[j]), int(b.run_hi[j])
                r = int(self._cum_u.searchsorted(self._cum_u[lo] + rest - b.run_cum[j], side="left"))
                r = min(max(r, lo + 1), hi) if hi > lo else hi
            return n_t, i, max(r, 0)

        if top_p < 1.0:
            before = t_cum[:-1] + lam * (lv.cum[rows_above] + c_l * mass_rest(ranks_above)
                                         - t_lp_cum[t_above])
            hit = before + tv >= top_p
            j = int(np.argmax(hit)) if hit.any() else len(tv)
            if j < len(tv) and before[j] < top_p:
                cuts.append((j + 1, int(rows_above[j]), int(ranks_above[j])))
            else:
                cuts.append(rest_cut(j, (top_p - t_cum[j]) / lam, False))
        if top_k > 0:
            before_n = np.arange(len(tv)) + rows_above + (ranks_above - n_s(ranks_above)) - t_above
            hit = before_n + 1 >= top_k
            j = int(np.argmax(hit)) if hit.any() else len(tv)
            if j < len(tv) and before_n[j] < top_k:
                cuts.append((j + 1, int(rows_above[j]), int(ranks_above[j])))
            else:
                cuts.append(rest_cut(j, top_k - j, True))
        if not cuts:
            cuts.append((len(tv), m, V))

        def size(cut):
            return cut[0] + cut[1] - int(t_before(cut[1])) + cut[2] - int(n_s(cut[2]))

        n_t, i_cut, r_cut = min(cuts, key=size)
        return Nucleus.build(self, lv, lam, tw[:n_t], t_cum[: n_t + 1], t_rows, i_cut, r_cut)

    def sample(self, rng: np.random.Generator, max_tokens: int, top_p: float = 1.0,
               top_k: int = 0) -> np.ndarray:
        """One document: tokens until ``</s>`` or `max_tokens` (a document of exactly
        `max_tokens` did not end by itself: cut it like a real one, `truncate(..., open_end=True)`)."""
        n = self.order - 1
        if self._cache_key != (top_p, top_k):
            self._cache, self._cache_key = {}, (top_p, top_k)
        cache = self._cache
        ctx = (BOS_ID,) * n
        out: list[int] = []
        for _ in range(max_tokens):
            nuc = cache.get(ctx)
            if nuc is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                nuc = cache[ctx] = self._nucleus(ctx, top_p, top_k)
            w = nuc.draw(rng)
            if w == EOS_ID:
                break
            out.append(w)
            if n:
                ctx = ctx[1:] + (w,)
        return np.asarray(out, dtype=np.int64)


@dataclass
class _Base:
    """A level's sparse words placed in the unigram ranking."""

    ranks: np.ndarray     # sorted unigram ranks of the sparse words
    s_cum_u: np.ndarray   # their cumulative unigram mass in rank order (length + 1)
    run_lo: np.ndarray    # runs [lo, hi) of non-sparse ranks between them, covering 0..V
    run_hi: np.ndarray
    run_cum: np.ndarray   # cumulative unigram mass of the runs (length + 1)
    run_n: np.ndarray     # cumulative number of ranks in the runs (length + 1)


@dataclass
class _Level:
    """P(w) = probs for the sparse words (decreasing) and coef * unigram[w] for every other word,
    with what the nucleus search needs per sparse word: `ab` = how many unigram ranks hold
    non-sparse words more probable than it, `after` / `after_n` = mass / number of all words up
    to and including it in decreasing probability."""

    words: np.ndarray
    probs: np.ndarray
    coef: float
    base: _Base
    cum: np.ndarray
    neg_probs: np.ndarray
    ab: np.ndarray
    after: np.ndarray
    after_n: np.ndarray
    ids: np.ndarray       # the words sorted by id, and each one's row
    row: np.ndarray

    def row_of(self, words: np.ndarray) -> np.ndarray:
        """Rows of `words`, which must be sparse words of this level."""
        return self.row[self.ids.searchsorted(words)]


@dataclass
class Nucleus:
    """A truncated distribution, in three parts: T words (cumulative mass `t_cum`); the level's
    rows [0, i_cut) without T's rows, scaled by lam (in runs between T rows); the non-sparse words
    among the first `r_cut` unigram ranks, scaled by lam * coef. `total` is the kept mass."""

    t_words: np.ndarray
    t_cum: np.ndarray
    row_lo: np.ndarray     # runs of level rows [lo, hi) kept
    row_hi: np.ndarray
    row_cum: np.ndarray    # their cumulative (level) mass
    lam: float
    r_cut: int
    last_run: int
    total: float
    level: _Level
    model: KneserNeyLM

    @classmethod
    def build(cls, lm: KneserNeyLM, lv: _Level, lam: float, t_words: np.ndarray,
              t_cum: np.ndarray, t_rows: np.ndarray, i_cut: int, r_cut: int) -> Nucleus:
        inside = t_rows[t_rows < i_cut]
        lo = np.concatenate([[0], inside + 1])
        hi = np.concatenate([inside, [i_cut]])
        row_cum = np.concatenate([[0.0], np.cumsum(lv.cum[hi] - lv.cum[lo])])
        last_run = int(lv.base.ranks.searchsorted(r_cut, side="left"))
        b = lv.base
        rest = lm._cum_u[r_cut] - b.s_cum_u[last_run]
        total = float(t_cum[-1] + lam * row_cum[-1] + lam * lv.coef * rest)
        return cls(t_words, t_cum, lo, hi, row_cum, lam, r_cut, last_run, total, lv, lm)

    def ids(self) -> set[int]:
        lm, lv = self.model, self.level
        rows = {int(w) for a, b in zip(self.row_lo, self.row_hi) for w in lv.words[a:b]}
        rest = set(lm._rank_order[: self.r_cut].tolist()) - set(lv.words.tolist())
        return set(self.t_words.tolist()) | rows | {w for w in rest if lm.unigram[w] > 0}

    def draw(self, rng: np.random.Generator) -> int:
        u = rng.random() * self.total
        head = self.t_cum[-1]
        if u < head:
            j = int(self.t_cum.searchsorted(u, side="right")) - 1
            return int(self.t_words[min(j, len(self.t_words) - 1)])
        lv = self.level
        v = (u - head) / self.lam
        if v < self.row_cum[-1] or self.r_cut == 0:
            j = min(int(self.row_cum.searchsorted(v, side="right")) - 1, len(self.row_lo) - 1)
            while j > 0 and self.row_hi[j] <= self.row_lo[j]:
                j -= 1  # an empty run (adjacent T rows), reached only through rounding
            lo, hi = int(self.row_lo[j]), int(self.row_hi[j])
            r = int(lv.cum.searchsorted(lv.cum[lo] + v - self.row_cum[j], side="right")) - 1
            return int(lv.words[min(max(r, lo), hi - 1)])
        lm, b = self.model, lv.base
        v = (v - self.row_cum[-1]) / lv.coef  # unigram mass into the non-sparse prefix
        j = min(int(b.run_cum.searchsorted(v, side="right")) - 1, self.last_run)
        while j > 0 and min(b.run_hi[j], self.r_cut) <= b.run_lo[j]:
            j -= 1
        lo, hi = int(b.run_lo[j]), min(int(b.run_hi[j]), self.r_cut)
        r = int(lm._cum_u.searchsorted(lm._cum_u[lo] + (v - b.run_cum[j]), side="right")) - 1
        return int(lm._rank_order[min(max(r, lo), hi - 1)])


def _discount(counts: np.ndarray) -> float:
    """D = n1 / (n1 + 2 n2) (Ney, Essen & Kneser 1994), kept inside (0, 1)."""
    n1 = float((counts == 1).sum())
    n2 = float((counts == 2).sum())
    if n1 == 0 or n2 == 0:
        return 0.5
    return min(max(n1 / (n1 + 2 * n2), 0.05), 0.95)
