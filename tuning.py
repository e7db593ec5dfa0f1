"""Process tuning for the entry points (``cli.py``, ``bench/speed.py``): environment settings that must
be in place before the process starts, applied by re-executing it once. Imports nothing heavy (``cli.py``
calls it before any library import, so ``--help`` stays fast).
"""
from __future__ import annotations

import os
import sys

# glibc's default malloc unmaps large freed blocks and page-faults them back on the next step;
# DenseNet's concatenations allocate 10-110 MB temporaries every layer. Keeping freed memory makes
# training faster on CPUs (measured in bench/README.md). oneDNN's primitive cache must hold the
# train/attack/eval variants at once. Both must be set before the process starts.
TUNED_ENV = {
    "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=68719476736",
    "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "16384",
}


def tune_process() -> None:
    """Re-exec this process once with ``TUNED_ENV`` unless the user set those variables or opted out
    (``ADVGEN_NO_TUNING=1``). Call first thing in an entry point (``cli.py``, ``bench/speed.py``)."""
    if not sys.platform.startswith("linux") or os.environ.get("ADVGEN_NO_TUNING"):
        return
    missing = {k: v for k, v in TUNED_ENV.items() if k not in os.environ}
    if missing:
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **missing})
