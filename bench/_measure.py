"""Run one ``automator`` command in this process and print its wall time and peak memory.

``python bench/_measure.py ARGS...`` behaves like ``automator ARGS...`` but prints one JSON
line to stdout at the end: exit code, wall seconds, peak RSS of this Python process and
the peak RSS of its children (git), both in MiB. The command's own output goes to a file
named by ``$BENCH_OUTPUT`` (default: discarded) so the JSON stays parseable.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import time


def main() -> int:
    from automator.cli import main as automator

    out_path = os.environ.get("BENCH_OUTPUT", os.devnull)
    start = time.perf_counter()
    with open(out_path, "w") as out, contextlib.redirect_stdout(out):
        code = automator(sys.argv[1:])
    wall = time.perf_counter() - start
    self_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "exit": code,
                "wall_s": round(wall, 3),
                "peak_rss_mib": round(self_kib / 1024, 1),
                "children_peak_rss_mib": round(kids_kib / 1024, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
