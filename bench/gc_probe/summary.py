"""Sum up the logs of ``bench/gc_probe/sitecustomize.py``: for each log, the
collections per generation after the first ``--skip`` seconds (the seeding), their
milliseconds a second, and the longest of each generation.

    .venv/bin/python bench/gc_probe/summary.py [--skip 25] /tmp/screening-gc-*.log
"""

from __future__ import annotations

import argparse
from pathlib import Path


def summarize(path: Path, skip: float) -> str:
    rows = [[float(x) for x in line.split()] for line in path.read_text().split("\n") if line]
    if not rows:
        return f"{path}: empty (the process lived less than a second)"
    first = rows[0][0]
    kept = [row for row in rows if row[0] - first >= skip] or rows[-1:]
    seconds = kept[-1][0] - kept[0][0] + 1
    counts = [int(sum(row[1 + g] for row in kept)) for g in range(3)]
    total = [sum(row[4 + g] for row in kept) for g in range(3)]
    longest = [max(row[7 + g] for row in kept) for g in range(3)]
    return (
        f"{path}: {seconds:.0f} s; collections by generation {counts};"
        f" {sum(total) / seconds:.1f} ms a second;"
        f" longest {', '.join(f'{x:.1f}' for x in longest)} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip", type=float, default=25)
    parser.add_argument("logs", nargs="+", type=Path)
    args = parser.parse_args()
    for log in args.logs:
        print(summarize(log, args.skip))


if __name__ == "__main__":
    main()
