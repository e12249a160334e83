#!/usr/bin/env bash
# Retrieval evaluation end to end (what `make eval-retrieval` runs): fetch the documentation
# corpora (pinned PyPI sdists, see rag/eval/corpora.py), ingest each into its own knowledge base
# under var/eval/kb/<corpus> (own SQLite database and FAISS index), and run eval_retrieval on its
# question set; then the shipped help-centre sets on a knowledge base of documents/ alone.
# Ingestion is idempotent, so a second run only re-reads the files.
#
# Knobs: EVAL_CORPORA (names, default: all of them), EVAL_SPLITS (default "dev test"),
# EVAL_ARGS (more eval_retrieval options, e.g. "--fusion hybrid -v 2").
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CORPORA="${EVAL_CORPORA:-$($BIN/python -m rag.eval.corpora list | tr '\n' ' ')}"
SPLIT_ARGS=()
for split in ${EVAL_SPLITS:-dev test}; do SPLIT_ARGS+=(--split "$split"); done

# One isolated knowledge base per corpus: DEBUG for the embedded defaults (fake Redis, SQLite),
# and the local FAISS store since a shared remote index would mix the corpora.
in_kb() {
  local kb="$PWD/var/eval/kb/$1"
  shift
  mkdir -p "$kb"
  env DEBUG=true VAR_DIR="$kb" DATABASE_URL="sqlite:///$kb/db.sqlite3" VECTOR_INDEX_DIR="$kb/index" \
    RAG_VECTOR_STORE=faiss "$@"
}

$BIN/python -m rag.eval.corpora fetch $CORPORA
for corpus in $CORPORA; do
  echo "== $corpus"
  in_kb "$corpus" $BIN/python manage.py migrate --noinput -v 0
  in_kb "$corpus" $BIN/python manage.py ingest "var/eval/corpora/$corpus"
  in_kb "$corpus" $BIN/python manage.py eval_retrieval "rag/eval/retrieval/$corpus.jsonl" \
    "${SPLIT_ARGS[@]}" ${EVAL_ARGS:-}
done

echo "== help-centre (regression sets, no split)"
in_kb help-centre $BIN/python manage.py migrate --noinput -v 0
in_kb help-centre $BIN/python manage.py populate_documents
in_kb help-centre $BIN/python manage.py eval_retrieval rag/eval/questions.jsonl rag/eval/follow_ups.jsonl \
  ${EVAL_ARGS:-}
