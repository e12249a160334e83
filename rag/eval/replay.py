"""Offline replay of hybrid fusion: record each question's rankings once, then fuse them again under
other choices in a fraction of a second per corpus (``manage.py eval_replay``).

``recording()`` watches ``retrieve()`` (it wraps two of its internals for the duration of the
block, so it is an evaluation tool, not an API): for each question it keeps every ranking the
search fused (chunk ids and scores, in order, with their weights and which are BM25's), each
chunk's best cosine, each candidate document's centroid vote inputs (its similarity normalised over
the candidates' depth, and its rank), and whether release notes go last. ``replay()`` fuses and
groups them again as ``rag.services.retrieval`` does; with the default ``Variant`` it gives the
recorded ranking to the document (``tests/rag/test_replay.py`` checks it against ``retrieve()``),
so a variant's figures are what the live code would give if it fused that way. Only fusion and
grouping can be replayed: anything that changes the rankings themselves (chunking, the embedder,
BM25, spelling correction, how a follow-up is read) needs ``make eval-retrieval``.

The variants are the choices tried on the dev splits (README "Retrieval quality"): ``second=X``
adds X times a document's second-best chunk's fused score to its best's; ``separation=N`` shares
each reading's weight between its dense and BM25 rankings by how far each one's best candidate
stands out from the next N-1 (``separation`` below); ``document=X`` adds X (in place of
``RAG_DOCUMENT_FUSION``) of what fusing per document (each ranking's best normalised chunk per
document) adds to a document's best chunk's fused score (``document=1``: documents fused per document
alone); ``lexical=X`` and ``centroid=X`` multiply
BM25's and the centroid votes' weights; ``floor=0`` normalises each ranking by s/best (a floor of 0)
instead of over its candidates; ``zscore`` uses z-scores over the candidates.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from django.conf import settings

from rag.evaluation import Question, hit_at, reciprocal_rank_at
from rag.lexical import min_max, reciprocal_rank_fusion, score_fusion, sum_normalised
from rag.types import Turn

Ranking = list[tuple[int, float]]


@dataclass(frozen=True)
class Recorded:
    """One question's rankings as the search fused them."""

    question: Question
    lists: list[Ranking]
    weights: list[float]
    lexical: list[bool]  # which rankings are BM25's
    cosine: dict[int, float]
    # Per document ranking: the index of the dense ranking it goes with, and for every candidate
    # document its normalised similarity (``DocumentRanking.share``) and its rank.
    centroids: list[tuple[int, dict[int, tuple[float, int]]]]
    release_last: bool
    sources: list[str]  # what retrieve() returned, best first


@dataclass(frozen=True)
class Corpus:
    """A recorded question set: the settings it ran under, its documents and its questions."""

    method: str  # RAG_FUSION_METHOD
    rrf_k: int
    document_weight: float
    document_fusion: float
    min_score: float
    top_k: int
    documents: dict[int, tuple[str, bool]]  # document id: (source, is release notes)
    chunk_documents: dict[int, int]
    questions: list[Recorded]


@contextmanager
def recording() -> Iterator[list[dict[str, Any]]]:
    """Within the block, each ``retrieve()`` appends what it fused to the yielded list."""
    from rag.services import retrieval

    seen: list[dict[str, Any]] = []
    fuse, group = retrieval._Rankings.fuse, retrieval._group_by_document
    lexical_lists: set[int] = set()
    add_lexical = retrieval._Rankings.add_lexical

    def watch_lexical(self: Any, index: Any, text: str, candidates: int, weight: float) -> None:
        before = len(self.lists)
        add_lexical(self, index, text, candidates, weight)
        if len(self.lists) > before:
            lexical_lists.add(before)

    def watch_fuse(self: Any) -> list[tuple[int, float]]:
        candidates = {chunk_id for ranking in self.lists for chunk_id, _ in ranking}
        documents = dict(retrieval.Chunk.objects.filter(id__in=candidates).values_list("id", "document_id"))
        centroids = []
        for ranking, position in self.document_rankings:
            votes = {}
            for document_id in set(documents.values()):
                share, rank = ranking.share(document_id, self.candidates), ranking.rank(document_id)
                if share is not None and rank is not None:
                    votes[document_id] = (share, rank)
            centroids.append((position, votes))
        seen.append(
            {
                "lists": [list(ranking) for ranking in self.lists],
                "weights": list(self.weights),
                "lexical": [i in lexical_lists for i in range(len(self.lists))],
                "cosine": dict(self.cosine),
                "centroids": centroids,
                "chunk_documents": documents,
            }
        )
        lexical_lists.clear()
        return fuse(self)

    def watch_group(*args: Any, **kwargs: Any) -> Any:
        found = group(*args, **kwargs)
        seen[-1]["release_last"] = bool(kwargs.get("release_notes_last"))
        seen[-1]["sources"] = [document.source for document in found]
        return found

    retrieval._Rankings.fuse = watch_fuse  # type: ignore[method-assign]
    retrieval._Rankings.add_lexical = watch_lexical  # type: ignore[method-assign]
    retrieval._group_by_document = watch_group
    try:
        yield seen
    finally:
        retrieval._Rankings.fuse = fuse  # type: ignore[method-assign]
        retrieval._Rankings.add_lexical = add_lexical  # type: ignore[method-assign]
        retrieval._group_by_document = group


def record(questions: Sequence[Question], *, top_k: int = 10) -> dict[str, Any]:
    """Run each question through hybrid retrieval, recorded; a JSON-ready ``Corpus``."""
    from rag.models import Document
    from rag.release_notes import is_release_notes
    from rag.services.retrieval import retrieve

    rows: list[dict[str, Any]] = []
    chunk_documents: dict[int, int] = {}
    with recording() as seen:
        for question in questions:
            history = [Turn(role="user", content=text) for text in question.history]
            retrieve(query=question.q, history=history, top_k=top_k, fusion="hybrid", use_cache=False)
            if len(seen) != len(rows) + 1:
                raise RuntimeError(f"nothing was fused for {question.q!r}: is the knowledge base empty?")
            fused = seen[-1]
            chunk_documents.update(fused.pop("chunk_documents"))
            rows.append({"question": question.__dict__, **fused})
    # Only the fields the replay reads: a document's text can be hundreds of kilobytes.
    rows_of = Document.objects.filter(pk__in=set(chunk_documents.values())).values_list(
        "pk", "title", "source", "category"
    )
    documents = {pk: (source, is_release_notes(title, source, category)) for pk, title, source, category in rows_of}
    return {
        "method": settings.RAG_FUSION_METHOD,
        "rrf_k": settings.RAG_RRF_K,
        "document_weight": settings.RAG_DOCUMENT_WEIGHT,
        "document_fusion": settings.RAG_DOCUMENT_FUSION,
        "min_score": settings.RAG_MIN_SCORE,
        "top_k": top_k,
        "documents": documents,
        "chunk_documents": chunk_documents,
        "questions": rows,
    }


def load(path: Path) -> Corpus:
    data = json.loads(path.read_text(encoding="utf-8"))
    questions = []
    for row in data["questions"]:
        q = row["question"]
        question = Question(
            q=q["q"], expect=tuple(q["expect"]), history=tuple(q["history"]), split=q["split"], kind=q["kind"]
        )
        questions.append(
            Recorded(
                question=question,
                lists=[[(int(i), float(s)) for i, s in ranking] for ranking in row["lists"]],
                weights=[float(w) for w in row["weights"]],
                lexical=[bool(flag) for flag in row["lexical"]],
                cosine={int(i): float(s) for i, s in row["cosine"].items()},
                centroids=[
                    (int(position), {int(d): (float(share), int(rank)) for d, (share, rank) in votes.items()})
                    for position, votes in row["centroids"]
                ],
                release_last=bool(row["release_last"]),
                sources=list(row["sources"]),
            )
        )
    return Corpus(
        method=data["method"],
        rrf_k=int(data["rrf_k"]),
        document_weight=float(data["document_weight"]),
        # Recorded before RAG_DOCUMENT_FUSION: documents went by their best chunk alone.
        document_fusion=float(data.get("document_fusion", 0.0)),
        min_score=float(data["min_score"]),
        top_k=int(data["top_k"]),
        documents={int(d): (str(source), bool(notes)) for d, (source, notes) in data["documents"].items()},
        chunk_documents={int(c): int(d) for c, d in data["chunk_documents"].items()},
        questions=questions,
    )


# --- replaying --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A way to fuse the recorded rankings; the default is the recorded one."""

    second: float = 0.0
    separation: int = 0
    document: float | None = None
    lexical: float = 1.0
    centroid: float = 1.0
    floor: float | None = None
    zscore: bool = False

    @classmethod
    def parse(cls, text: str) -> Variant:
        """``default``, or comma-separated ``name[=value]`` (``second=0.1,lexical=1.5``)."""
        if text == "default":
            return cls()
        kinds = {f.name: f.type for f in fields(cls)}
        values: dict[str, Any] = {}
        for part in text.split(","):
            name, sep, value = part.partition("=")
            if name not in kinds:
                raise ValueError(f"unknown variant {name!r}: one of {', '.join(kinds)}")
            kind = str(kinds[name])
            if kind == "bool":
                values[name] = True
            elif kind == "int":
                values[name] = int(value) if sep else 10
            else:
                values[name] = float(value)
        return cls(**values)


def separation(scores: Sequence[float], window: int) -> float:
    """How far a ranking's best candidate stands out from the next ``window - 1``: 1 minus their
    mean score normalised over all the candidates; 1 for one candidate, 0 when all score alike."""
    if len(scores) < 2:
        return 1.0
    best, last = scores[0], scores[-1]
    if best <= last:
        return 0.0
    following = scores[1:window]
    return 1.0 - sum(min_max(score, best, last) for score in following) / len(following)


def _weights(row: Recorded, variant: Variant) -> list[float]:
    weights = [w * (variant.lexical if lexical else 1.0) for w, lexical in zip(row.weights, row.lexical, strict=True)]
    if variant.separation:
        # Pairs of a reading: the question's own dense and BM25 rankings, then the conversation's.
        dense = [i for i, lexical in enumerate(row.lexical) if not lexical]
        bm25 = [i for i, lexical in enumerate(row.lexical) if lexical]
        for pair in zip(dense, bm25, strict=False):
            members = [i for i in pair if row.lists[i]]
            if len(members) < 2:
                continue
            spread = {i: separation([s for _, s in row.lists[i]], variant.separation) for i in members}
            total, weighed = sum(weights[i] for i in members), sum(weights[i] * spread[i] for i in members)
            if weighed > 0:
                for i in members:
                    weights[i] *= spread[i] * total / weighed
    return weights


def _normalised(ranking: Ranking, variant: Variant) -> dict[int, float]:
    scores: dict[int, float] = {}
    values = [score for _, score in ranking]
    mean, spread = statistics.fmean(values), statistics.pstdev(values) or 1.0
    for item, score in ranking:
        if item in scores:
            continue
        if variant.zscore:
            scores[item] = (score - mean) / spread
        elif variant.floor is not None:
            scores[item] = min_max(score, values[0], variant.floor)
        else:
            scores[item] = min_max(score, values[0], values[-1])
    return scores


def _fused(
    corpus: Corpus, row: Recorded, variant: Variant, weights: list[float], group: Mapping[int, int] | None = None
) -> list[tuple[int, float]]:
    """The chunks (or with ``group``, their groups, as ``score_fusion`` fuses them) by fused score."""
    if corpus.method == "rrf":
        ids = [[chunk_id for chunk_id, _ in ranking] for ranking in row.lists]
        return reciprocal_rank_fusion(ids, k=corpus.rrf_k, weights=weights)
    if not (variant.zscore or variant.floor is not None):
        return score_fusion(row.lists, weights=weights, group=group)
    return sum_normalised((_normalised(ranking, variant).items() for ranking in row.lists), weights, group=group)


def replay(corpus: Corpus, row: Recorded, variant: Variant = Variant()) -> list[str]:
    """The sources ``row``'s question retrieves when its rankings are fused as ``variant`` says."""
    if corpus.method == "rrf" and variant != Variant():
        raise ValueError("variants replay rankings recorded under score fusion (RAG_FUSION_METHOD=scores)")
    weights = _weights(row, variant)

    def votes(document_id: int) -> float:
        total = 0.0
        for position, candidates in row.centroids:
            if document_id in candidates:
                share, rank = candidates[document_id]
                vote = 1.0 / (corpus.rrf_k + rank) if corpus.method == "rrf" else share
                total += weights[position] * corpus.document_weight * variant.centroid * vote
        return total

    fusion_share = 0.0 if corpus.method == "rrf" else corpus.document_fusion
    if variant.document is not None:
        fusion_share = variant.document
    per_document = dict(_fused(corpus, row, variant, weights, group=corpus.chunk_documents)) if fusion_share else {}
    similarity: dict[int, float] = {}
    best: dict[int, float] = {}
    chunks_seen: dict[int, int] = {}
    for chunk_id, score in _fused(corpus, row, variant, weights):
        document_id = corpus.chunk_documents[chunk_id]
        similarity[document_id] = max(similarity.get(document_id, 0.0), row.cosine.get(chunk_id, 0.0))
        chunks_seen[document_id] = chunks_seen.get(document_id, 0) + 1
        if document_id not in best:
            spread = max(per_document.get(document_id, score) - score, 0.0)
            best[document_id] = score + fusion_share * spread + votes(document_id)
        elif chunks_seen[document_id] == 2:
            best[document_id] += variant.second * score
    last = {d for d in best if corpus.documents[d][1]} if row.release_last else set()
    ordered = sorted(best, key=lambda d: (d in last, -best[d]))  # stable: ties keep first-seen order
    kept = [corpus.documents[d][0] for d in ordered if similarity[d] >= corpus.min_score]
    return kept[: corpus.top_k]


@dataclass(frozen=True)
class Figures:
    questions: int
    hit3: float
    mrr3: float


def figures(corpus: Corpus, split: str, variant: Variant) -> Figures | None:
    """hit@3 and MRR@3 of ``corpus``'s questions of ``split`` under ``variant``; None without any."""
    rows = [row for row in corpus.questions if row.question.split == split]
    if not rows:
        return None
    ranked = [(replay(corpus, row, variant), row.question.expect) for row in rows]
    return Figures(
        questions=len(rows),
        hit3=sum(hit_at(sources, expect, 3) for sources, expect in ranked) / len(rows),
        mrr3=sum(reciprocal_rank_at(sources, expect, 3) for sources, expect in ranked) / len(rows),
    )
