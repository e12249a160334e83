#!/usr/bin/env bash
# `make serve`: the production stack of one host, in the foreground, with DEBUG off:
# migrate, collectstatic, load the shipped knowledge base if the database has none, then run
# gunicorn (config/gunicorn.conf.py) and `manage.py runscheduler` side by side. When either one
# exits, the other is stopped too; SIGTERM or Ctrl-C stops both (SIGTERM lets gunicorn finish its
# requests and the scheduler its running jobs). Exit status: 0 after a requested stop, otherwise
# that of the process that died first (1 if it exited 0 on its own).
#
# Needs SECRET_KEY, and REDIS_URL (or REDIS_HOST): the gunicorn workers and the scheduler are
# separate processes, and the in-process fakeredis cannot share throttles or the scheduler's
# leader lock between them. DATABASE_URL is PostgreSQL in production; without it the SQLite file
# under VAR_DIR is used (one host only). See README "Production".
#
# VAR_DIR defaults to var/serve, not make run's var/: the two keep their own SQLite file, FAISS
# index, mail and backups, so a checkout can run both without one answering from the other's data.
#
# Knobs: SERVE_STOP_TIMEOUT (seconds to wait for a graceful stop, default 60),
# SERVE_SKIP_POPULATE=true (never load documents/).
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

die() {
  echo "serve: $*" >&2
  exit 2
}
is_true() { case "${1,,}" in 1 | true | yes | on) return 0 ;; *) return 1 ;; esac }

# .env (when present) fills in what the environment does not set, as the settings read it.
exports="$($BIN/python -m config.env)" || die "could not read .env"
eval "$exports"

if [ -n "${DEBUG:-}" ] && is_true "$DEBUG"; then
  die "DEBUG is on; make serve is the production stack (use make run for development)."
fi
export DEBUG=false
export VAR_DIR="${VAR_DIR:-var/serve}"
[ -n "${SECRET_KEY:-}" ] || die "SECRET_KEY is not set. Generate one with
  python3 -c 'import secrets; print(secrets.token_urlsafe(50))'
and export it (with ALLOWED_HOSTS and the other production settings, see .env.example)."
if [ -z "${REDIS_URL:-}${REDIS_HOST:-}" ] || is_true "${USE_FAKE_REDIS:-false}"; then
  die "REDIS_URL (or REDIS_HOST) must name a real Redis: gunicorn's workers and the scheduler are separate
processes, and the in-process fakeredis would give each its own throttles and leader lock."
fi
echo "serve: data (FAISS index, mail, backups) in $VAR_DIR"
if [ -z "${DATABASE_URL:-}" ]; then
  echo "serve: DATABASE_URL is not set; using the SQLite file under $VAR_DIR (fine for one host only)." >&2
fi

echo "serve: migrating the database"
$BIN/python manage.py migrate --noinput || exit $?
echo "serve: collecting static files"
$BIN/python manage.py collectstatic --noinput -v 0 || exit $?
if ! is_true "${SERVE_SKIP_POPULATE:-false}"; then
  $BIN/python manage.py populate_documents --if-empty || exit $?
fi

STOPPING=0
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
}
on_signal() {
  if [ "$STOPPING" -eq 0 ]; then
    STOPPING=1
    echo "serve: stopping gunicorn and the scheduler" >&2
    stop_all
  fi
}
trap on_signal INT TERM

$BIN/gunicorn -c config/gunicorn.conf.py config.wsgi &
WEB=$!
PIDS+=("$WEB")
$BIN/python manage.py runscheduler &
SCHEDULER=$!
PIDS+=("$SCHEDULER")
echo "serve: gunicorn pid $WEB, scheduler pid $SCHEDULER"

# Whichever ends first (a signal to this script interrupts the wait: wait again for a child).
status=0
while :; do
  wait -n "$WEB" "$SCHEDULER"
  status=$?
  if kill -0 "$WEB" 2>/dev/null && kill -0 "$SCHEDULER" 2>/dev/null && [ "$STOPPING" -eq 0 ]; then
    continue # interrupted without a stop request: nothing ended
  fi
  break
done

if [ "$STOPPING" -eq 0 ]; then
  if kill -0 "$WEB" 2>/dev/null; then first="the scheduler"; else first="gunicorn"; fi
  echo "serve: $first exited with status $status; stopping the other" >&2
  STOPPING=1
  stop_all
  [ "$status" -eq 0 ] && status=1
else
  status=0
fi

# Reap both; past the timeout, kill what is left.
(
  for _ in $(seq $((${SERVE_STOP_TIMEOUT:-60} * 2))); do sleep 0.5; done
  echo "serve: still running after ${SERVE_STOP_TIMEOUT:-60} s; killing" >&2
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
) &
WATCHDOG=$!
for pid in "${PIDS[@]}"; do
  while kill -0 "$pid" 2>/dev/null; do wait "$pid" 2>/dev/null; done
done
kill "$WATCHDOG" 2>/dev/null
wait "$WATCHDOG" 2>/dev/null
echo "serve: stopped" >&2
exit "$status"
