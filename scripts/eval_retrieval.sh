#!/usr/bin/env bash
# Retrieval evaluation end to end (what `make eval-retrieval` runs): fetch the documentation
# corpora (pinned PyPI sdists, see rag/eval/corpora.py), ingest each into its own knowledge base
# under var/eval/kb/<corpus> (own SQLite database and FAISS index), and run eval_retrieval on its
# question set; then the shipped help-centre sets on a knowledge base of documents/ alone.
# A knowledge base is kept between runs and rebuilt from scratch when its documents or the code
# that turns documents into chunks and vectors (rag/ingestion, rag/providers, the embedder
# setting) changed since it was built: ingestion skips unchanged files, so it would otherwise keep
# chunks made by the old code.
#
# Knobs: EVAL_CORPORA (names, default: all of them), EVAL_SPLITS (default "dev test"),
# EVAL_ARGS (more eval_retrieval options, e.g. "--fusion hybrid -v 2"), EVAL_REBUILD=1 (rebuild
# every knowledge base), EVAL_RECORD=1 (also record each set's hybrid rankings under
# var/eval/replay/ for `make eval-replay`: rag/eval/replay.py), EVAL_HISTORY=1 (the corpora with
# their release notes and changelogs too, under var/eval/corpora-history/ and knowledge bases
# <name>-history; same questions, and the help-centre sets are skipped), EVAL_MERGED=1 (the corpora in one knowledge base instead, each
# set asked there: the scale check; the help-centre sets are skipped), EVAL_BASELINES=1 (issue 11's
# two untuned prototypes too, rows proto-dense and proto-rrf: rag/eval/baselines.py; they embed
# every document again in memory, about 5 minutes more for all the corpora).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CORPORA="${EVAL_CORPORA:-$($BIN/python -m rag.eval.corpora list | tr '\n' ' ')}"
SPLIT_ARGS=()
# The folder each set's documents were ingested from, for the prototypes (EVAL_BASELINES=1).
baselines() { [ "${EVAL_BASELINES:-0}" = 1 ] && echo "--baselines $1" || true; }
# Where each set's rankings are recorded (EVAL_RECORD=1).
recording() { [ "${EVAL_RECORD:-0}" = 1 ] && echo "--record var/eval/replay$1" || true; }
for split in ${EVAL_SPLITS:-dev test}; do SPLIT_ARGS+=(--split "$split"); done

# One isolated knowledge base per corpus: DEBUG for the embedded defaults (fake Redis, SQLite),
# DOCUMENTS_DIR pinned so the help-centre base is the shipped documents/,
# the local FAISS store since a shared remote index would mix the corpora, only warnings logged
# so the tables stand out, and room for a changelog kept whole (pytest's has 531,238 characters,
# Dask's makes 939 chunks): the upload limits, 500,000 characters and 800 chunks, bound the time an
# upload takes in a request, not what retrieval is measured on.
in_kb() {
  local kb="$PWD/var/eval/kb/$1"
  shift
  mkdir -p "$kb"
  env DEBUG=true VAR_DIR="$kb" DATABASE_URL="sqlite:///$kb/db.sqlite3" VECTOR_INDEX_DIR="$kb/index" \
    DOCUMENTS_DIR="$PWD/documents" RAG_VECTOR_STORE=faiss LOG_LEVEL="${LOG_LEVEL:-WARNING}" \
    INGEST_MAX_CHARS="${INGEST_MAX_CHARS:-1000000}" INGEST_MAX_CHUNKS="${INGEST_MAX_CHUNKS:-2000}" "$@"
}

# Everything a knowledge base's chunks and vectors depend on, besides its documents.
code_stamp() {
  { find rag/ingestion rag/providers rag/services/ingestion.py -name '*.py' -type f -print0 | LC_ALL=C sort -z |
      xargs -0 cat
    echo "${RAG_EMBEDDER:-auto} ${MISTRAL_API_KEY:+mistral} ${MISTRAL_EMBED_MODEL:-}"; } | sha256sum | cut -d' ' -f1
}

# Build (or keep) the knowledge base NAME from the files under FOLDER with the manage.py command
# given after them; the stamp is written last, so an interrupted build is redone.
build_kb() {
  local name="$1" folder="$2" kb="var/eval/kb/$1"
  shift 2
  local stamp
  stamp="$(code_stamp) $(find "$folder" -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"
  if [ "${EVAL_REBUILD:-0}" = 1 ] || [ "$(cat "$kb/.built" 2>/dev/null)" != "$stamp" ]; then
    rm -rf "$kb"
    in_kb "$name" $BIN/python manage.py migrate --noinput -v 0
    in_kb "$name" $BIN/python manage.py "$@"
    echo "$stamp" >"$kb/.built"
  fi
}

if [ "${EVAL_HISTORY:-0}" = 1 ]; then
  SOURCES=var/eval/corpora-history SUFFIX=-history
  $BIN/python -m rag.eval.corpora fetch --with-history --dest "$SOURCES" $CORPORA
else
  SOURCES=var/eval/corpora SUFFIX=
  $BIN/python -m rag.eval.corpora fetch $CORPORA
fi
if [ "${EVAL_MERGED:-0}" = 1 ]; then
  # The scale check: every corpus in one knowledge base (about 13k chunks with the first eleven, the
  # scale of the outside held-out check; 18k with eighteen), each set asked there with its corpus's
  # folder before its paths.
  MERGED=var/eval/corpora-merged
  rm -rf "$MERGED" && mkdir -p "$MERGED/docs" "$MERGED/questions"
  SETS=()
  for corpus in $CORPORA; do
    cp -r "$SOURCES/$corpus" "$MERGED/docs/$corpus"
    $BIN/python -c 'import json, sys
name = sys.argv[1]
for line in open(f"rag/eval/retrieval/{name}.jsonl", encoding="utf-8"):
    if line.strip():
        row = json.loads(line)
        row["expect"] = [f"{name}/{path}" for path in row["expect"]]
        print(json.dumps(row))' "$corpus" >"$MERGED/questions/$corpus.jsonl"
    SETS+=("$MERGED/questions/$corpus.jsonl")
  done
  echo "== merged$SUFFIX: $CORPORA"
  build_kb "merged$SUFFIX" "$MERGED/docs" ingest "$MERGED/docs"
  in_kb "merged$SUFFIX" $BIN/python manage.py eval_retrieval "${SETS[@]}" "${SPLIT_ARGS[@]}" \
    $(baselines "$MERGED/docs") $(recording "-merged$SUFFIX") ${EVAL_ARGS:-}
  exit 0
fi
for corpus in $CORPORA; do
  echo "== $corpus$SUFFIX"
  build_kb "$corpus$SUFFIX" "$SOURCES/$corpus" ingest "$SOURCES/$corpus"
  in_kb "$corpus$SUFFIX" $BIN/python manage.py eval_retrieval "rag/eval/retrieval/$corpus.jsonl" \
    "${SPLIT_ARGS[@]}" $(baselines "$SOURCES/$corpus") $(recording "$SUFFIX") ${EVAL_ARGS:-}
done
[ "${EVAL_HISTORY:-0}" = 1 ] && exit 0

echo "== help-centre (regression sets, no split)"
build_kb help-centre documents populate_documents
in_kb help-centre $BIN/python manage.py eval_retrieval rag/eval/questions.jsonl rag/eval/follow_ups.jsonl \
  rag/eval/topic_switches.jsonl \
  $(baselines documents) ${EVAL_ARGS:-}
