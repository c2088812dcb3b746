"""Each process's thread budget, applied before its first tensor op and reported as it is.

Torch, OpenMP, the BLAS numpy brings and OpenCV each start one thread per core by default. On a
16-core machine eight actor processes then run 8 x 16 spinning threads on 16 cores, and acting runs
~40x slower than its parts. So every hive process (learner, actors, evaluator, the monitor, the
trainer that runs the indexer) calls :func:`limit_threads` first with its budget (the session's
``torch_threads``), and says what it got in its ``started`` event (:func:`thread_counts`).

The environment variables are set too, so any helper process started from here inherits the budget;
libraries already loaded (numpy's OpenBLAS is, by the time a role runs) are capped at run time
through threadpoolctl.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

#: Variables the OpenMP, MKL, OpenBLAS, BLIS, numexpr and OpenCV runtimes read when they load.
THREAD_ENV_VARS = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "OPENCV_FOR_THREADS_NUM",
)

_limits: Any = None  # threadpoolctl's limiter, kept alive for the life of the process


def limit_threads(threads: int) -> dict[str, int]:
    """Cap every thread pool of this process at ``threads`` (>= 1); return :func:`thread_counts`.

    Torch is capped only where it is imported already (a monitor never imports it); its inter-op
    pool can be sized once per process, before its first parallel work, so a second role in the
    same process (a solo hive's actor) keeps the first one's inter-op size.
    """
    global _limits
    if threads < 1:
        raise ValueError(f"torch_threads must be >= 1 (got {threads})")
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
        if torch.get_num_interop_threads() != threads:
            # Already sized, or parallel work already ran: it keeps what it has.
            with contextlib.suppress(RuntimeError):
                torch.set_num_interop_threads(threads)
    cv2 = sys.modules.get("cv2")  # not imported yet: it reads OPENCV_FOR_THREADS_NUM when it is
    if cv2 is not None:
        cv2.setNumThreads(threads)
    from threadpoolctl import threadpool_limits

    _limits = threadpool_limits(limits=threads)
    return thread_counts()


def thread_counts() -> dict[str, int]:
    """The threads this process runs with, as measured now.

    ``torch_threads`` / ``torch_interop_threads`` (-1 where torch is not loaded), ``blas_threads``
    (the largest pool threadpoolctl finds: OpenBLAS, MKL, OpenMP), ``cv2_threads`` (-1 without
    OpenCV) and ``os_threads`` (every thread of the process, from ``/proc``).
    """
    from threadpoolctl import threadpool_info

    torch = sys.modules.get("torch")
    cv2 = sys.modules.get("cv2")
    pools = [int(info.get("num_threads", 0)) for info in threadpool_info()]
    try:
        os_threads = len(os.listdir("/proc/self/task"))
    except OSError:  # no /proc (macOS): the interpreter's own view
        import threading

        os_threads = threading.active_count()
    return {
        "torch_threads": torch.get_num_threads() if torch is not None else -1,
        "torch_interop_threads": torch.get_num_interop_threads() if torch is not None else -1,
        "blas_threads": max(pools, default=-1),
        "cv2_threads": int(cv2.getNumThreads()) if cv2 is not None else -1,
        "os_threads": os_threads,
    }
