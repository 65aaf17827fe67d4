"""How long `gradhub list` takes, warm (listing cache filled) and cold (cache off): median of N runs.

    python benchmarks/cli_list.py [--runs 10]

Each run is a fresh process (`python -m gradhub list`), as a user types it; the figures include the
interpreter's start-up and every installed plugin's metadata. Run by hand, not as a test: the
machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(env: dict[str, str], runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "gradhub", "list"], env=env, check=True, capture_output=True)
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as cache:
        warm_env = {**os.environ, "GRADHUB_CACHE_DIR": cache}
        subprocess.run([sys.executable, "-m", "gradhub", "list"], env=warm_env, check=True, capture_output=True)
        warm = timed(warm_env, runs)
    cold = timed({**os.environ, "GRADHUB_CACHE_DIR": "off"}, runs)
    bare = timed_python(runs)
    print(
        f"gradhub list, median of {runs}: warm {statistics.median(warm) * 1000:.0f} ms, "
        f"cold {statistics.median(cold) * 1000:.0f} ms; bare `python -c pass` {statistics.median(bare) * 1000:.0f} ms"
    )


def timed_python(runs: int) -> list[float]:
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        seconds.append(time.perf_counter() - start)
    return seconds


if __name__ == "__main__":
    main()
