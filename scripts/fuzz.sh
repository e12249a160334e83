#!/usr/bin/env bash
# Schema fuzzing: schemathesis against /api/schema/ of a real gunicorn server, as a staff user.
#
#   scripts/fuzz.sh          # long local run (make fuzz)
#   scripts/fuzz.sh ci       # bounded run for CI (make fuzz-ci)
#
# The server runs on the embedded default (SQLite + fakeredis, local embedder, FAISS) in a
# temporary VAR_DIR, so var/ is never touched, on a free port of 127.0.0.1 with DEBUG off. Throttles
# and the chat quota are raised through their environment variables (the fuzzer would otherwise
# spend its budget on 429s); no check is relaxed. Exit status: schemathesis's (0 = no failure).
#
# Knobs (environment): FUZZ_MAX_EXAMPLES (per operation and phase), FUZZ_MAX_TIME (seconds for the
# whole schemathesis run: the fuzzing and stateful phases repeat until it is spent), FUZZ_PHASES,
# FUZZ_SEED, FUZZ_WORKERS, FUZZ_REPORT_DIR (keep the JUnit and NDJSON reports and the server's logs).
set -euo pipefail
cd "$(dirname "$0")/.."

MODE="${1:-full}"
BIN=.venv/bin
case "$MODE" in
  # CI sends one request at a time: concurrent requests find races (see README "Fuzzing"), which
  # the long local run is for; CI must pass or fail on the code, not on the interleaving.
  ci) MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-15}"; MAX_TIME="${FUZZ_MAX_TIME:-150}"; WORKERS="${FUZZ_WORKERS:-1}" ;;
  full) MAX_EXAMPLES="${FUZZ_MAX_EXAMPLES:-200}"; MAX_TIME="${FUZZ_MAX_TIME:-1800}"; WORKERS="${FUZZ_WORKERS:-2}" ;;
  *) echo "usage: $0 [ci|full]" >&2; exit 2 ;;
esac
PHASES="${FUZZ_PHASES:-examples,coverage,fuzzing,stateful}"

WORK="$(mktemp -d -t ragchat-fuzz.XXXXXX)"
SERVER_PID=""

cleanup() {
  local status=$?
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "${FUZZ_REPORT_DIR:-}" ] && [ -f "$WORK/server.log" ]; then
    mkdir -p "$FUZZ_REPORT_DIR" && cp "$WORK/server.log" "$WORK/access.log" "$FUZZ_REPORT_DIR/" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$WORK/server.log" ]; then
    echo "== server log (last 200 lines) =="
    tail -n 200 "$WORK/server.log"
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT="$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"

# A production-like server (DEBUG off) on throwaway state; plain HTTP on loopback, so no SSL redirect.
export DEBUG=false
export SECRET_KEY="fuzz-$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(32))')"
export ALLOWED_HOSTS=127.0.0.1,localhost
export PUBLIC_BASE_URL="$BASE"
export SECURE_SSL_REDIRECT=false
export VAR_DIR="$WORK/var"
export DATABASE_URL="sqlite:///$WORK/var/db.sqlite3"
export USE_FAKE_REDIS=true
export CACHE_KEY_PREFIX=fuzz
export EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend
export EMAIL_FILE_PATH="$WORK/var/mail"
export BACKUP_DIR="$WORK/var/backups"
export JWT_ACCESS_MINUTES=240
export THROTTLE_LOGIN=100000/min THROTTLE_REGISTER=100000/min THROTTLE_PASSWORD_RESET=100000/min
export THROTTLE_ACCOUNT_TOKEN=100000/min THROTTLE_CHAT=100000/min THROTTLE_SEARCH=100000/min CHAT_DAILY_QUOTA=1000000
export LOGIN_LOCKOUT_CLIENT_FAILURES=1000000 LOGIN_LOCKOUT_ACCOUNT_FAILURES=1000000
export LOG_LEVEL=WARNING
# fakeredis lives in one process: one worker (threads still serve concurrent requests).
export GUNICORN_WORKERS=1 GUNICORN_THREADS=8 GUNICORN_BIND="127.0.0.1:$PORT" GUNICORN_ACCESS_LOG="$WORK/access.log"
# No request-line limit: a fuzzed query string may run to tens of KB, and what is under test is
# how the application validates it, not gunicorn's 414 (which production keeps, see gunicorn.conf.py).
export GUNICORN_LIMIT_REQUEST_LINE=0

echo "== Preparing a throwaway database in $VAR_DIR =="
$BIN/python manage.py migrate --noinput >/dev/null
$BIN/python manage.py populate_documents --if-empty

# A verified user (owns a session and an answered message, so links and ids resolve) and the staff
# user the fuzzer authenticates as (every operation, including the staff-only ones, is reachable).
ACCESS="$(
  $BIN/python manage.py shell -v 0 -c '
from chat.models import ChatMessage
from chat.services import session_create
from users.models import User
from users.services import tokens_for
user = User.objects.create_user("fuzz-user", "fuzz-user@example.com", "fuzz-user-pw-8472", is_verified=True)
staff = User.objects.create_user("fuzz-staff", "fuzz-staff@example.com", "fuzz-staff-pw-8472", is_verified=True, is_staff=True)
for owner in (user, staff):
    session = session_create(user=owner, title="Fuzz")  # in their personal workspace
    ChatMessage.objects.create(session=session, sender="user", content="How do I reset my password?")
    ChatMessage.objects.create(session=session, sender="bot", content="Ask for a reset email.", metadata={"sources": []})
print(tokens_for(staff).access)
'
)"

echo "== Starting gunicorn on $BASE =="
$BIN/gunicorn -c config/gunicorn.conf.py config.wsgi >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 240); do
  if curl -fsS "$BASE/api/health/" >/dev/null 2>&1; then break; fi
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "gunicorn exited during start-up"; exit 1; }
  sleep 0.5
done
curl -fsS "$BASE/api/health/" >/dev/null

EXTRA_ARGS=()
[ -n "${FUZZ_SEED:-}" ] && EXTRA_ARGS+=(--seed "$FUZZ_SEED")
# Reports (JUnit, and NDJSON with every request: 100+ MB for a long run) only when asked for.
[ -n "${FUZZ_REPORT_DIR:-}" ] && EXTRA_ARGS+=(--report junit,ndjson --report-dir "$FUZZ_REPORT_DIR")

echo "== schemathesis: phases $PHASES, up to $MAX_EXAMPLES examples per operation, $MAX_TIME s, $WORKERS worker(s) =="
ROOT="$PWD"
set +e
# From the work directory: schemathesis keeps a cache of failures (.schemathesis/) in its cwd.
(cd "$WORK" && "$ROOT/$BIN/schemathesis" --no-color --config-file "$ROOT/scripts/schemathesis.toml" run "$BASE/api/schema/" \
  -H "Authorization: Bearer $ACCESS" \
  --phases "$PHASES" \
  --mode all \
  --checks all \
  --max-examples "$MAX_EXAMPLES" \
  --max-time "$MAX_TIME" \
  --workers "$WORKERS" \
  --request-timeout 30 \
  --generation-database none \
  "${EXTRA_ARGS[@]}")
STATUS=$?
set -e
if ! kill -0 "$SERVER_PID" 2>/dev/null; then
  echo "gunicorn died during the run"
  STATUS=1
fi
if grep -q '" 5[0-9][0-9] ' "$WORK/access.log"; then
  echo "== 5xx responses in the access log =="
  grep '" 5[0-9][0-9] ' "$WORK/access.log" | head -n 50
  # 503 from a provider outage cannot happen here (local providers); any 5xx is a failure.
  STATUS=1
fi
exit "$STATUS"
