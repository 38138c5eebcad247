"""Run one benchmarked tool in this process and print one JSON line: times, peak RSS, extras.

    python -m bench.worker TOOL SIZE REPEAT OUTDIR
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> None:
    tool, size_name, repeat, outdir = argv[0], argv[1], int(argv[2]), Path(argv[3])
    from bench.data import SIZES, ensure
    from bench.tools import TOOLS

    size = SIZES[size_name]
    ensure(size)
    outdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    result = TOOLS[tool](size, repeat, outdir)
    result["tool"] = tool
    result["size"] = size_name
    result["wall_s"] = time.perf_counter() - started
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("BENCH-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
