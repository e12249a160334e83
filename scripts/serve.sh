#!/usr/bin/env bash
# `make serve`: the production stack of one host, in the foreground, with DEBUG off:
# migrate, collectstatic, load the shipped knowledge base if the database has none, then run
# nginx (deploy/nginx.conf.template) on HOST:PORT in front of gunicorn (config/gunicorn.conf.py) on
# a unix socket, and `manage.py runscheduler`. When any one exits, the others are stopped too;
# SIGTERM or Ctrl-C stops them all (SIGTERM lets gunicorn finish its requests and the scheduler
# its running jobs; nginx quits gracefully). Exit status: 0 after a requested stop, otherwise that
# of the process that died first (1 if it exited 0 on its own).
#
# Why nginx: a gunicorn thread reads its request itself, so clients that send slowly (slowloris:
# 8 connections each sending a header line every 3 s) held every worker. nginx reads whole requests
# before gunicorn sees them, with timeouts, and answers its own errors in the API's JSON envelope.
# `make nginx-deps` installs Debian's nginx-light. SERVE_PROXY=none runs gunicorn alone on
# HOST:PORT (not for production).
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
# SERVE_SKIP_POPULATE=true (never load documents/), SERVE_PROXY (nginx | none), NGINX_BIN, the
# NGINX_* settings of scripts/nginx_conf.py, and the GUNICORN_* ones of config/gunicorn.conf.py.
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

PROXY="${SERVE_PROXY:-nginx}"
RUN_DIR="${VAR_DIR:-var}/run"
if [ "$PROXY" = nginx ]; then
  NGINX="${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}"
  [ -x "$NGINX" ] || die "nginx is not installed: run \`make nginx-deps\` (Debian's nginx-light), or set
SERVE_PROXY=none to run gunicorn alone (not for production: slow clients can hold every worker)."
  mkdir -p "$RUN_DIR" || exit 2
  RUN_DIR="$(cd "$RUN_DIR" && pwd)"
  # gunicorn behind nginx: plain sync workers on a unix socket (sizes in config/gunicorn.conf.py),
  # header-count limit out of the way (nginx bounds headers by size and answers 431 in JSON).
  : "${GUNICORN_BIND:=unix:$RUN_DIR/gunicorn.sock}"
  : "${GUNICORN_WORKER_CLASS:=sync}"
  : "${GUNICORN_LIMIT_REQUEST_FIELDS:=32768}"
  # Client addresses (throttles) come from nginx's X-Forwarded-For; add one per proxy in front.
  : "${NUM_PROXIES:=1}"
  export GUNICORN_BIND GUNICORN_WORKER_CLASS GUNICORN_LIMIT_REQUEST_FIELDS NUM_PROXIES
  case "$GUNICORN_BIND" in unix:*) rm -f "${GUNICORN_BIND#unix:}" ;; esac
  LISTEN="${NGINX_LISTEN:-${HOST:-127.0.0.1}:${PORT:-8000}}"
  NGINX_CONF="$($BIN/python scripts/nginx_conf.py "$LISTEN" "$GUNICORN_BIND" "$RUN_DIR/nginx")" || exit 2
  "$NGINX" -t -q -e stderr -p "$RUN_DIR/nginx" -c "$NGINX_CONF" || die "nginx refused $NGINX_CONF"
elif [ "$PROXY" = none ]; then
  echo "serve: SERVE_PROXY=none: gunicorn alone on ${GUNICORN_BIND:-${HOST:-127.0.0.1}:${PORT:-8000}} (slow clients can hold every worker)" >&2
else
  die "SERVE_PROXY must be nginx or none, not '$PROXY'."
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
  # nginx quits gracefully on SIGQUIT (SIGTERM would drop open connections at once).
  for pid in "${PIDS[@]}"; do
    if [ "$pid" = "${PROXY_PID:-}" ]; then kill -QUIT "$pid" 2>/dev/null; else kill -TERM "$pid" 2>/dev/null; fi
  done
}
on_signal() {
  if [ "$STOPPING" -eq 0 ]; then
    STOPPING=1
    echo "serve: stopping the stack" >&2
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
PROXY_PID=""
if [ "$PROXY" = nginx ]; then
  "$NGINX" -e stderr -p "$RUN_DIR/nginx" -c "$NGINX_CONF" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  echo "serve: nginx pid $PROXY_PID on $LISTEN, in front of gunicorn on $GUNICORN_BIND"
fi

all_alive() {
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# Whichever ends first (a signal to this script interrupts the wait: wait again for a child).
status=0
while :; do
  wait -n "${PIDS[@]}"
  status=$?
  if all_alive && [ "$STOPPING" -eq 0 ]; then
    continue # interrupted without a stop request: nothing ended
  fi
  break
done

if [ "$STOPPING" -eq 0 ]; then
  first="gunicorn"
  kill -0 "$SCHEDULER" 2>/dev/null || first="the scheduler"
  [ -n "$PROXY_PID" ] && ! kill -0 "$PROXY_PID" 2>/dev/null && first="nginx"
  kill -0 "$WEB" 2>/dev/null || first="gunicorn"
  echo "serve: $first exited with status $status; stopping the others" >&2
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
