"""Run every benchmark in turn (``make bench``); each prints its own table."""

from __future__ import annotations

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: Each script and its arguments (the long sweeps of makespan.py, transport.py
#: and forecast.py are run by hand; see doc/performance.rst).
BENCHMARKS = [["prepare.py"], ["startup.py"], ["run_overhead.py"], ["ingest.py"],
              ["makespan.py", "--hosts", "50", "--forks", "100"]]


def main() -> int:
    failed = []
    for name, *args in BENCHMARKS:
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, os.path.join(HERE, name), *args])
        print(f"== {name}: {time.perf_counter() - started:.0f} s", flush=True)
        if done.returncode:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
