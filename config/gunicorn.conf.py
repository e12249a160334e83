"""gunicorn settings: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Threaded workers (``gthread``): a streamed answer (Server-Sent Events) holds one thread, not a
whole worker, so other clients keep being served while streams are open. Sizes come from the
environment.
"""

import multiprocessing
import os

bind = os.environ.get("GUNICORN_BIND", f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("GUNICORN_WORKERS", str(min(4, multiprocessing.cpu_count() + 1))))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A stream may last as long as the answer budget; the worker heartbeat is separate from threads.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "200"))
# Load the app (and the local embedder) once in the master; workers share its memory pages.
preload_app = os.environ.get("GUNICORN_PRELOAD", "false").lower() == "true"
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-")
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# The client address for throttles comes from REMOTE_ADDR (see NUM_PROXIES); never log headers.
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
