"""Lexical ranking (BM25 over chunk texts), spelling correction from the corpus vocabulary, and
reciprocal rank fusion.

The tokenizer (lower-case words, English stop words removed, a light suffix-stripping stemmer) is
shared with the extractive answerer so that both match "refunds", "refunded" and "refund" alike.
bm25s offers no stemmer without PyStemmer, which is not installed, hence the small one here
(Snowball's English stemmer through PyStemmer was tried in session 14 and gained nothing on the
dev splits). BM25 also indexes the parts of compound words (``index_terms``: "QuerySet" is found
by "query set").
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import OSA

logger = logging.getLogger(__name__)

STOP_WORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "am", "an", "and", "any", "are", "as", "at", "be",
    "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do",
    "does", "doing", "don", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "let", "me", "more", "most", "my", "myself", "no", "nor", "not", "of",
    "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "please",
    "same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves",
    "then", "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very",
    "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would",
    "you", "your", "yours", "yourself", "yourselves", "also", "may", "might", "must", "shall", "s", "t", "ll",
    "re", "ve", "d", "m"
})  # fmt: skip
_WORD = re.compile(r"[^\W_]+")
_MIN_STEM = 3
_SUFFIXES = ("ational", "ations", "ation", "ments", "ment", "ness", "ingly", "ing", "edly", "ed", "ly")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light English stemmer: plural, verb and a few derivational suffixes, consistently stripped."""
    if len(word) <= _MIN_STEM or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > _MIN_STEM + 1:
        word = word[:-3] + "y"
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= _MIN_STEM:
            word = word[: -len(suffix)]
            break
    if word.endswith("e") and len(word) > _MIN_STEM:
        word = word[:-1]
    # "shipp(ing)" and "ship", "cancell(ed)" and "cancel" meet here.
    if len(word) > _MIN_STEM and word[-1] == word[-2] and word[-1] not in "aeiousz":
        word = word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Stemmed content words of ``text``, in order (stop words and single letters dropped)."""
    return [
        stem(word)
        for word in _WORD.findall(text.casefold())
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit())
    ]


def word_parts(word: str) -> list[str]:
    """The parts of a word written in camel case or with digits: "ImageDraw" is "Image" and
    "Draw", "HTTPResponse" is "HTTP" and "Response", "10am" is "10" and "am"; any other word is
    one part. Letters are told upper or lower case by Unicode ("ÉtatCivil", but "Schönheit" whole)."""
    if word.isupper() or (word.isalpha() and (word.islower() or word[1:].islower())):
        return [word]
    parts, start = [], 0
    for i in range(1, len(word)):
        before, here = word[i - 1], word[i]
        if (
            before.isdigit() != here.isdigit()
            or (before.islower() and here.isupper())
            or (before.isupper() and here.isupper() and i + 1 < len(word) and word[i + 1].islower())
        ):
            parts.append(word[start:i])
            start = i
    parts.append(word[start:])
    return parts


def with_word_parts(text: str) -> str:
    """``text``'s words, each compound one (``QuerySet``, ``getHTTPResponse``, ``utf8``) followed by
    its parts, so that "query set" finds ``QuerySet`` and "QuerySet" finds "queryset". A word in
    capitals (``RGBA``, ``2FA``) or without a case or digit change is left alone. This is how code
    search tokenizes identifiers (Elasticsearch's word_delimiter_graph with preserve_original);
    documentation is full of them, and users write them either way."""
    words = []
    for word in _WORD.findall(text):
        parts = word_parts(word)
        words.append(word if len(parts) < 2 else f"{word} {' '.join(parts)}")
    return " ".join(words)


def index_terms(text: str) -> list[str]:
    """The BM25 terms of ``text``: ``tokenize`` over its words and their parts (``with_word_parts``).
    The extractive answerer keeps ``tokenize``, whose constants were chosen on whole words."""
    return tokenize(with_word_parts(text))


_SURFACE_WORD = re.compile(r"[^\W\d_]{3,}")
_MIN_CORRECTED_CHARS = 5  # shorter words are too often real words of another corpus


def _max_edits(word: str) -> int:
    return 1 if len(word) < 8 else 2


class SpellingCorrector:
    """Replaces a query word that the corpus never uses by the corpus's most frequent word within
    one edit (two for long words; a swap of two letters is one edit), so that "chnage my pasword"
    finds what "change my password" finds. Words the corpus knows are never touched, and a word
    whose stem it knows only becomes a word of that stem."""

    def __init__(self, frequencies: dict[str, int]) -> None:
        self._frequencies = frequencies
        self._words = list(frequencies)
        self._stems = {stem(word) for word in frequencies}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> SpellingCorrector:
        counts: dict[str, int] = {}
        for text in texts:
            for word in _SURFACE_WORD.findall(text.casefold()):
                counts[word] = counts.get(word, 0) + 1
        return cls(counts)

    def correct_word(self, word: str) -> str:
        folded = word.casefold()
        if len(folded) < _MIN_CORRECTED_CHARS or folded in self._frequencies or folded in STOP_WORDS:
            return word
        if not folded.isalpha():
            return word
        limit = _max_edits(folded)
        matches = process.extract(folded, self._words, scorer=OSA.distance, score_cutoff=limit, limit=20)
        # A word with a stem the corpus knows is another form of one of its words ("finds", "looks"
        # where it says "find", "look"), or a typo that kept the stem ("instal", "commited"): it
        # may become a word of that stem, not another word ("kinds", "books").
        own_stem = stem(folded)
        if own_stem in self._stems:
            matches = [match for match in matches if stem(match[0]) == own_stem]
        if not matches:
            return word
        best = min(matches, key=lambda match: (match[1], -self._frequencies[match[0]], match[0]))
        return best[0]

    def correct(self, text: str) -> str:
        """``text`` with each unknown word replaced by its correction, if it has one."""
        return _SURFACE_WORD.sub(lambda match: self.correct_word(match.group(0)), text)


def _weighted_tokens(text: str, heading_weight: int) -> list[str]:
    """The tokens of a chunk, those of its heading path repeated ``heading_weight`` times."""
    heading, sep, body = text.partition("\n\n")
    if not sep or heading_weight == 1:
        return index_terms(text)
    return index_terms(heading) * heading_weight + index_terms(body)


class LexicalIndex:
    """An immutable BM25 index over chunk texts, keyed by chunk id, with its corpus's speller."""

    def __init__(self, ids: Sequence[int], retriever: Any, speller: SpellingCorrector | None = None) -> None:
        self._ids = np.asarray(ids, dtype=np.int64)
        self._retriever = retriever
        self.speller = speller or SpellingCorrector({})

    @classmethod
    def build(cls, ids: Sequence[int], texts: Sequence[str], *, heading_weight: int = 1) -> LexicalIndex:
        """Tokenize and index ``texts``; ``ids[i]`` is the chunk id of ``texts[i]``.

        ``heading_weight``: how many times a chunk's heading path (its first paragraph, see
        ``rag.ingestion.chunking``) counts, a simple form of BM25F's field weights: a word that
        names the section says more about it than the same word met once in its body.
        """
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids for {len(texts)} texts")
        if heading_weight < 1:
            raise ValueError(f"heading_weight must be at least 1, not {heading_weight}")
        retriever = bm25s_module().BM25(method="lucene")
        if texts:
            retriever.index([_weighted_tokens(text, heading_weight) for text in texts], show_progress=False)
        return cls(ids, retriever, SpellingCorrector.from_texts(texts))

    def __len__(self) -> int:
        return int(self._ids.size)

    def unknown_terms(self, text: str) -> list[str]:
        """The content terms of ``text`` (stemmed) that no chunk of the knowledge base contains."""
        vocabulary = self._retriever.vocab_dict if self._ids.size else {}
        return [term for term in dict.fromkeys(tokenize(text)) if term not in vocabulary and not term.isdigit()]

    def search(self, query: str, top_k: int) -> list[tuple[int, float]]:
        """Up to ``top_k`` (chunk id, BM25 score) pairs sharing at least one term with ``query``."""
        if top_k <= 0 or not self._ids.size:
            return []
        vocabulary = self._retriever.vocab_dict
        terms = [term for term in dict.fromkeys(index_terms(query)) if term in vocabulary]
        if not terms:
            return []
        scores = np.asarray(self._retriever.get_scores(terms), dtype=np.float32)
        hits = np.flatnonzero(scores > 0)
        if hits.size > top_k:
            hits = hits[np.argpartition(-scores[hits], top_k - 1)[:top_k]]
        # Highest score first; ties in index order, so the result is deterministic.
        ordered = hits[np.lexsort((hits, -scores[hits]))]
        return [(int(self._ids[i]), float(scores[i])) for i in ordered]


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Fuse ranked id lists: each id scores sum(weight / (k + rank)), best first."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, _weights(len(rankings), weights), strict=True):
        # A repeated id counts once, at its best rank, and does not push the others down.
        for rank, item in enumerate(dict.fromkeys(ranking), start=1):
            scores[item] = scores.get(item, 0.0) + weight / (k + rank)
    return _best_first(scores)


def _weights(count: int, weights: Sequence[float] | None) -> Sequence[float]:
    """One weight per ranking (1 each by default); raises ``ValueError`` if the counts differ."""
    if weights is None:
        return [1.0] * count
    if len(weights) != count:
        raise ValueError(f"{len(weights)} weights for {count} rankings")
    return weights


def _best_first(scores: dict[int, float]) -> list[tuple[int, float]]:
    # dicts keep first-seen order, and sorted() is stable: ties go to the id seen first.
    return sorted(scores.items(), key=lambda pair: -pair[1])


def min_max(score: float, best: float, last: float) -> float:
    """``score`` as a share of the span from ``last`` (0) to ``best`` (1), clipped to 0-1; 1 when
    the span is empty (every candidate scored alike, or there is one)."""
    if best <= last:
        return 1.0
    return min(max((score - last) / (best - last), 0.0), 1.0)


def score_fusion(
    rankings: Sequence[Sequence[tuple[int, float]]],
    *,
    weights: Sequence[float] | None = None,
    group: Mapping[int, int] | None = None,
) -> list[tuple[int, float]]:
    """Fuse scored rankings (id, score; best first): each id scores the weighted sum of its
    min-max normalised scores, the best candidate of a ranking counting 1 and its last 0 (an id a
    ranking did not return gets nothing from it); best first.

    A convex combination of normalised scores, which Bruch, Gai and Ingber ("An analysis of fusion
    functions for hybrid retrieval", ACM TOIS 2023) found to beat reciprocal rank fusion in and out
    of domain and to depend little on the normalisation: unlike ranks, scores keep how far apart
    the candidates are, so a chunk far ahead in one ranking is not levelled with its runner-up.
    Each ranking is normalised over its own candidates, so cosine similarities and BM25 scores of
    any scale add up, and there is no constant to tune besides the weights.

    With ``group`` (id: group, such as a chunk's document) the groups are fused instead: each
    counts once per ranking, at its best id's normalised score (an id without a group is left out).
    """
    normalised = (
        [(item, min_max(score, ranking[0][1], ranking[-1][1])) for item, score in ranking] for ranking in rankings
    )
    return sum_normalised(normalised, _weights(len(rankings), weights), group=group)


def sum_normalised(
    rankings: Iterable[Iterable[tuple[int, float]]],
    weights: Sequence[float],
    *,
    group: Mapping[int, int] | None = None,
) -> list[tuple[int, float]]:
    """The weighted sum of each id's (or with ``group``, each group's) normalised scores over
    ``rankings`` (id, normalised score; best first), best first: ``score_fusion``'s sum, shared with
    the replay's other normalisations (``rag/eval/replay.py``)."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        seen: set[int] = set()
        # A repeated id (or group) counts once, at its first (best) place.
        for item, value in ranking:
            key = item if group is None else group.get(item)
            if key is not None and key not in seen:
                seen.add(key)
                scores[key] = scores.get(key, 0.0) + weight * value
    return _best_first(scores)


def bm25s_module() -> Any:
    """The bm25s module, imported on first use: it costs about 0.2 s and only the retrieval path
    needs it, not the extractive answerer that shares this module's tokenizer. Its import sets its
    logger to DEBUG; the level the logging configuration gave it (WARNING) is put back."""
    bm25s_logger = logging.getLogger("bm25s")
    level = bm25s_logger.level
    import bm25s

    bm25s_logger.setLevel(level)
    return bm25s
