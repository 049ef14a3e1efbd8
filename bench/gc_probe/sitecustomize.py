"""A probe of the garbage collector in `screening serve` (stop 14), loaded by Python at
start-up when this folder is on ``PYTHONPATH``:

    PYTHONPATH=bench/gc_probe .venv/bin/python bench/load.py ...
    .venv/bin/python bench/gc_probe/summary.py /tmp/screening-gc-*.log

In every process whose command line says ``serve`` it times each collection
(``gc.callbacks``) and writes, once a second, to ``$GC_PROBE_DIR/screening-gc-<pid>.log``
(default ``/tmp``), one line for every second since the process started (zeros where
none ran, so a summary's seconds are the wall time): the second, then per generation
(0, 1, 2) the collections, their milliseconds in all, and the longest.
It changes nothing in the collector itself; to A/B older code put its checkout first:
``PYTHONPATH=/tmp/old:bench/gc_probe``.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time

if "serve" in sys.argv:
    _out = os.path.join(os.environ.get("GC_PROBE_DIR", "/tmp"), f"screening-gc-{os.getpid()}.log")
    _born = int(time.time())
    _started = [0.0]
    _seconds: dict[int, list[list[float]]] = {}  # second -> [counts, ms, longest ms]

    def _time_collection(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        took = (time.perf_counter() - _started[0]) * 1000
        counts, total, longest = _seconds.setdefault(
            int(time.time()), [[0, 0, 0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
        )
        generation = info["generation"]
        counts[generation] += 1
        total[generation] += took
        longest[generation] = max(longest[generation], took)

    def _write_every_second() -> None:
        while True:
            time.sleep(1)
            none = [[0, 0, 0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
            lines = [
                " ".join(
                    [str(second), *(f"{x:g}" for part in _seconds.get(second, none) for x in part)]
                )
                for second in range(_born, int(time.time()))
            ]
            with open(_out, "w") as out:
                out.write("\n".join(lines) + "\n")

    gc.callbacks.append(_time_collection)
    threading.Thread(target=_write_every_second, name="gc-probe", daemon=True).start()
