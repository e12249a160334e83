"""Project configuration.

Importing this package (every entry point does, before numpy loads: ``manage.py``, ``config.wsgi``,
``config.asgi``, pytest-django) caps OpenBLAS at one thread per process, unless the environment
sets ``OPENBLAS_NUM_THREADS``. Our BLAS work is small matrix-vector products on the request path
(centroid and unit similarities), and several server workers each waking a team of spinning BLAS
threads on a few cores starved one another: with 3 gunicorn workers on 2 cores, send p50 went from
43 ms to 8.5 s (queueing) once retrieval multiplied a 2,000-row centroid matrix per search
(docs/BENCHMARKS.md). The read happens when OpenBLAS loads, so it must be set here, not in settings.
"""

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
