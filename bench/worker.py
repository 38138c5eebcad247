"""Run one benchmarked tool in this process and print one JSON line: times, peak RSS, extras.

    python -m bench.worker TOOL SIZE REPEAT OUTDIR
"""

from __future__ import annotations

import json
import os
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
    load_before = os.getloadavg()[0]
    result = TOOLS[tool](size, repeat, outdir)
    result["loadavg_1min"] = [load_before, os.getloadavg()[0]]
    result["tool"] = tool
    result["size"] = size_name
    result["wall_s"] = time.perf_counter() - started
    from bench.tools import PEAK, _peak_mb

    # the high-water mark right after the timed runs (before outputs were converted for the checks)
    result["peak_rss_mb"] = PEAK.get("timed_peak_rss_mb", _peak_mb())
    result["peak_rss_mb_incl_output_handling"] = _peak_mb()
    print("BENCH-RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
