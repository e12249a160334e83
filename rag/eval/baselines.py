"""The two untuned prototypes issue 11 measured this project against, rebuilt on any folder of
documents so that every evaluation can show them beside the product's rankings.

- ``proto-dense``: the file's raw text cut into pieces of at most 800 characters (paragraph, then
  line, then word boundaries, no overlap: what LangChain's ``RecursiveCharacterTextSplitter``
  does), each embedded with its title in front; documents ranked by their best piece's cosine.
- ``proto-rrf``: the same over 1,200-character pieces, fused with BM25 (bm25s with its own
  tokenizer and English stop words) by reciprocal rank fusion with the textbook k=60.

Neither extracts structure, knows the conversation, corrects spelling or orders release notes:
they are what a newcomer would write in an afternoon, and a tuned retrieval that loses to them on
documents it never saw is fitted to the documents it did see. The embedder is the configured one
(``get_embedder``), so the comparison is about chunking and ranking, not about the model. Nothing
here is stored: the pieces are embedded in memory each run (about 20 s per 1,000 pieces locally).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from rag.eval.corpora import DOC_SUFFIXES
from rag.evaluation import DEPTH, Outcome, Question
from rag.files import iter_files
from rag.ingestion.extract import decode_text, extract_text
from rag.lexical import bm25s_module, reciprocal_rank_fusion
from rag.providers.factory import get_embedder

PROTOTYPES = {"proto-dense": 800, "proto-rrf": 1200}  # name: piece size in characters
CANDIDATES = 50  # pieces each ranking brings to the fusion
RRF_K = 60
_SEPARATORS = ("\n\n", "\n", " ")


def split_characters(text: str, size: int, separators: Sequence[str] = _SEPARATORS) -> list[str]:
    """``text`` in pieces of at most ``size`` characters, cut at the coarsest separator that
    makes them fit and packed greedily; a run with no separator at all is cut every ``size``."""
    if len(text) <= size:
        return [text] if text.strip() else []
    separator = next((s for s in separators if s in text), None)
    if separator is None:
        return [text[i : i + size] for i in range(0, len(text), size)]
    finer = separators[separators.index(separator) + 1 :]
    pieces: list[str] = []
    current = ""
    for part in text.split(separator):
        if len(part) > size:
            if current.strip():
                pieces.append(current)
            current = ""
            pieces.extend(split_characters(part, size, finer))
        elif not current or len(current) + len(separator) + len(part) <= size:
            current = f"{current}{separator}{part}" if current else part
        else:
            if current.strip():
                pieces.append(current)
            current = part
    if current.strip():
        pieces.append(current)
    return pieces


@dataclass(frozen=True)
class Pieces:
    sources: list[str]  # the document (path relative to the folder) of each piece
    texts: list[str]  # "title\n\npiece"


def pieces_of(folder: Path, size: int) -> Pieces:
    """Every text document under ``folder`` (as the eval corpora are laid out), in pieces."""
    sources: list[str] = []
    texts: list[str] = []
    # The files `manage.py ingest` takes from the folder, those in text formats: a prototype reads
    # the raw text.
    for path, _ in iter_files([folder]):
        if path.suffix.lower() not in DOC_SUFFIXES:
            continue
        data = path.read_bytes()
        title = extract_text(path.name, data).title or path.stem
        for piece in split_characters(decode_text(data), size):
            sources.append(path.relative_to(folder).as_posix())
            texts.append(f"{title}\n\n{piece}")
    return Pieces(sources, texts)


def documents_in_order(pieces: Sequence[int], sources: Sequence[str], depth: int = DEPTH) -> tuple[str, ...]:
    """The documents of ranked pieces, each at its best piece's place, the first ``depth``."""
    ranked: dict[str, None] = {}
    for piece in pieces:
        ranked.setdefault(sources[piece])
        if len(ranked) == depth:
            break
    return tuple(ranked)


class Prototype:
    """One prototype's index over a folder, built in memory."""

    def __init__(self, name: str, folder: Path) -> None:
        bm25s = bm25s_module()
        self.name = name
        self.pieces = pieces_of(folder, PROTOTYPES[name])
        self.vectors: npt.NDArray[np.float32] = np.asarray(get_embedder().embed_documents(self.pieces.texts))
        self._bm25 = None
        if name == "proto-rrf" and self.pieces.texts:
            self._bm25 = bm25s.BM25()
            tokens = bm25s.tokenize(self.pieces.texts, stopwords="en", show_progress=False)
            self._bm25.index(tokens, show_progress=False)

    def rank(self, query: str) -> tuple[str, ...]:
        if not self.pieces.texts:
            return ()
        cosines = self.vectors @ np.asarray(get_embedder().embed_query(query))
        dense = [int(i) for i in np.argsort(-cosines, kind="stable")[:CANDIDATES]]
        if self._bm25 is None:
            return documents_in_order(dense, self.pieces.sources)
        return documents_in_order(
            [piece for piece, _ in reciprocal_rank_fusion([dense, self._lexical(query)], k=RRF_K)],
            self.pieces.sources,
        )

    def _lexical(self, query: str) -> list[int]:
        assert self._bm25 is not None
        tokens = bm25s_module().tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:  # only stop words
            return []
        found, scores = self._bm25.retrieve(tokens, k=min(CANDIDATES, len(self.pieces.texts)), show_progress=False)
        return [int(piece) for piece, score in zip(found[0], scores[0], strict=True) if score > 0]


def run_prototype(prototype: Prototype, questions: Sequence[Question]) -> list[Outcome]:
    """Each question alone (a prototype keeps no conversation), as ``rag.evaluation.run`` does."""
    outcomes = []
    for question in questions:
        started = time.perf_counter()
        found = prototype.rank(question.q)
        outcomes.append(Outcome(question, found, (time.perf_counter() - started) * 1000))
    return outcomes
