"""`make bench`: run every area's benchmark in one process and print one table.

Ratios are measured in the same run (both sides under the same machine load), because these machines
are shared and noisy; absolute numbers are for information. A full run (no area named) also writes
bench/results.json and docs/benchmarks.md (bench/report.py): the figures the README links to.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import time
import traceback
from pathlib import Path


def discover() -> list[str]:
    here = Path(__file__).resolve().parent
    return sorted(f"bench.{m.name}" for m in pkgutil.iter_modules([str(here)]) if m.name.startswith("bench_"))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("only", nargs="*", help="area names, e.g. firewall ids")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str]] = []
    seconds: dict[str, float] = {}
    failed = 0
    began = time.time()
    for name in discover():
        area = name.removeprefix("bench.bench_")
        if args.only and area not in args.only:
            continue
        started = time.monotonic()
        print(f"running {name} …", file=sys.stderr, flush=True)
        try:
            for metric, value, target in importlib.import_module(name).run():
                rows.append((area, metric, value, target))
        except Exception:  # one area's failure is reported, the others still run
            failed += 1
            traceback.print_exc()
            rows.append((area, "FAILED", "see the traceback above", ""))
        seconds[area] = time.monotonic() - started
        print(f"  {name}: {seconds[area]:.1f} s", file=sys.stderr)
    widths = [max(len(r[i]) for r in [("area", "metric", "value", "target"), *rows]) for i in range(4)]
    header = ("area", "metric", "value", "target / ratio")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    if not args.only:
        from bench.report import PAGE, collect, write

        write(collect(rows, seconds, began))
        print(
            f"results written to bench/results.json and {PAGE.relative_to(PAGE.parents[1])}", file=sys.stderr
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
