#!/usr/bin/env bash
# CI smoke test of the production stack: scripts/serve.sh (what `make serve` runs: migrate,
# collectstatic, populate, nginx + gunicorn + runscheduler, DEBUG off) on a free port of 127.0.0.1, against
# the local PostgreSQL (its own database, recreated each run) and Redis (database 13, keys under a
# prefix of this run). Then scripts/smoke.py walks the user flow and scripts/journey.py the workspaces
# journey over HTTP, the scheduler must be alive and hold the leader lock, and a SIGTERM must stop
# everything cleanly (lock released).
# Exits non-zero on any failure, printing the server's log.
#
# Knobs: SMOKE_DB (database name, default ragchat_smoke), SMOKE_REDIS_DB (default 13),
# SMOKE_START_TIMEOUT (seconds for the stack to answer /api/health/, default 600).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PGHOST_ARGS=(-h 127.0.0.1 -p 5432 -U postgres)
DB="${SMOKE_DB:-ragchat_smoke}"
REDIS_DB="${SMOKE_REDIS_DB:-13}"
PREFIX="ragchat-smoke-$$"
WORK="$(mktemp -d -t ragchat-smoke.XXXXXX)"
SERVE_PID=""

fail() {
  echo "ci_smoke: FAIL: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  if [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; then
    kill -TERM "$SERVE_PID" 2>/dev/null
    for _ in $(seq 1 120); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$SERVE_PID" 2>/dev/null
  fi
  if [ "$status" -ne 0 ] && [ -f "$WORK/serve.log" ]; then
    echo "== server log (last 300 lines) =="
    tail -n 300 "$WORK/serve.log"
  fi
  redis-cli -h 127.0.0.1 -n "$REDIS_DB" --scan --pattern "$PREFIX:*" 2>/dev/null |
    xargs -r redis-cli -h 127.0.0.1 -n "$REDIS_DB" DEL >/dev/null 2>&1
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

pg_isready -q -h 127.0.0.1 -p 5432 || fail "PostgreSQL does not answer on 127.0.0.1:5432"
redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG || fail "Redis does not answer on 127.0.0.1:6379"

# A fresh database each run: the FAISS index lives in this run's VAR_DIR and must match it.
dropdb "${PGHOST_ARGS[@]}" --if-exists "$DB" || fail "could not drop database $DB"
createdb "${PGHOST_ARGS[@]}" "$DB" || fail "could not create database $DB"

PORT="$($BIN/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
BASE="http://127.0.0.1:$PORT"
export SECRET_KEY="smoke-$($BIN/python -c 'import secrets; print(secrets.token_urlsafe(40))')"
export ALLOWED_HOSTS=127.0.0.1,localhost
export PUBLIC_BASE_URL="$BASE"
export SECURE_SSL_REDIRECT=false # plain HTTP on loopback; production sits behind TLS
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB"
export REDIS_URL="redis://127.0.0.1:6379/$REDIS_DB"
export CACHE_KEY_PREFIX="$PREFIX"
export VAR_DIR="$WORK/var"
export STATIC_ROOT="$WORK/static"
export EMAIL_BACKEND=django.core.mail.backends.filebased.EmailBackend
export EMAIL_FILE_PATH="$WORK/mail"
# nginx on 127.0.0.1:$PORT in front of gunicorn on a unix socket under VAR_DIR (serve.sh's layout).
export HOST=127.0.0.1 PORT GUNICORN_WORKERS=3
unset GUNICORN_BIND GUNICORN_WORKER_CLASS GUNICORN_THREADS NUM_PROXIES
export SERVE_STOP_TIMEOUT=60
unset DEBUG USE_FAKE_REDIS

echo "== make serve refuses a bad environment =="
out="$(env -u SECRET_KEY scripts/serve.sh 2>&1)"
[ $? -eq 2 ] && grep -q "SECRET_KEY is not set" <<<"$out" || fail "serve.sh without SECRET_KEY: $out"
out="$(env -u REDIS_URL scripts/serve.sh 2>&1)"
[ $? -eq 2 ] && grep -q "REDIS_URL" <<<"$out" || fail "serve.sh without REDIS_URL: $out"
echo "ok  refused without SECRET_KEY and without REDIS_URL"

echo "== Starting the stack on $BASE (database $DB, Redis db $REDIS_DB) =="
scripts/serve.sh >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
deadline=$((SECONDS + ${SMOKE_START_TIMEOUT:-600}))
until curl -fsS "$BASE/api/health/" >/dev/null 2>&1; do
  kill -0 "$SERVE_PID" 2>/dev/null || fail "the stack exited during start-up"
  [ $SECONDS -lt $deadline ] || fail "no answer from $BASE/api/health/ after ${SMOKE_START_TIMEOUT:-600} s"
  sleep 1
done
echo "ok  /api/health/ answers"

$BIN/python scripts/smoke.py --base-url "$BASE" --mail-dir "$EMAIL_FILE_PATH" || fail "smoke.py"
# The README's workspaces journey, then what is left of the deleted workspace, counted beside the server.
$BIN/python scripts/journey.py --base-url "$BASE" --mail-dir "$EMAIL_FILE_PATH" --check-residue || fail "journey.py"

NGINX_PID="$(sed -n 's/^serve: nginx pid \([0-9]*\) on .*$/\1/p' "$WORK/serve.log" | head -1)"
[ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null || fail "serve.sh did not start nginx"
long="$(curl -sS -o /dev/stderr -w '%{http_code} %{content_type}' "$BASE/api/health/?q=$(printf 'a%.0s' $(seq 1 9000))" 2>/dev/null)"
[[ "$long" == "414 application/json"* ]] || fail "a 9,000-byte URL through nginx: $long (expected a JSON 414)"
echo "ok  nginx (pid $NGINX_PID) in front of gunicorn; its 414 is the JSON envelope"

SCHEDULER_PID="$(sed -n 's/^serve: gunicorn pid [0-9]*, scheduler pid \([0-9]*\)$/\1/p' "$WORK/serve.log" | head -1)"
[ -n "$SCHEDULER_PID" ] || fail "serve.sh did not report the scheduler's pid"
holder=""
for _ in $(seq 1 60); do
  kill -0 "$SCHEDULER_PID" 2>/dev/null || fail "the scheduler (pid $SCHEDULER_PID) is not running"
  holder="$(redis-cli -h 127.0.0.1 -n "$REDIS_DB" GET "$PREFIX:scheduler:leader")"
  [[ "$holder" == *":$SCHEDULER_PID:"* ]] && break
  sleep 0.5
done
[[ "$holder" == *":$SCHEDULER_PID:"* ]] || fail "the leader lock is held by '${holder}', not the scheduler (pid $SCHEDULER_PID)"
echo "ok  the scheduler (pid $SCHEDULER_PID) is alive and holds the leader lock"

echo "== Stopping the stack (SIGTERM) =="
kill -TERM "$SERVE_PID"
status=0
wait "$SERVE_PID" || status=$?
SERVE_PID=""
[ "$status" -eq 0 ] || fail "serve.sh exited with $status after SIGTERM"
kill -0 "$SCHEDULER_PID" 2>/dev/null && fail "the scheduler outlived serve.sh"
kill -0 "$NGINX_PID" 2>/dev/null && fail "nginx outlived serve.sh"
[ -z "$(redis-cli -h 127.0.0.1 -n "$REDIS_DB" GET "$PREFIX:scheduler:leader")" ] || fail "the leader lock was not released"
echo "ok  stopped cleanly; leader lock released"
echo "ci_smoke: passed"
