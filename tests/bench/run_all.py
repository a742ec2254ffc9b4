"""Run every benchmark in this folder, then print a summary table of their figures.

A benchmark is any `bench_*.py` file here: adding one is creating the file (see
harness.py for what it should end with). Each runs as its own process, so one crashing
does not stop the others. Exit status: 0 when every benchmark ran and reported, 1 when
one crashed or reported nothing. A missed target is shown in the table, not an error:
benchmarks give figures, not verdicts.

Usage: `.venv/bin/python tests/bench/run_all.py [NAME ...]` (names like `drain`, to run
only those; `make bench` runs them all).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import REPORT_ENV, ROOT

HERE = Path(__file__).resolve().parent
TIMEOUT_SECONDS = 30 * 60


@dataclass(frozen=True)
class Outcome:
    name: str
    returncode: int | None  # None: timed out
    seconds: float
    report: dict[str, Any] | None

    @property
    def crashed(self) -> bool:
        return self.returncode != 0 or self.report is None

    @property
    def status(self) -> str:
        if self.returncode is None:
            return f"timed out after {TIMEOUT_SECONDS} s"
        if self.returncode != 0:
            return f"crashed (exit {self.returncode})"
        if self.report is None:
            return "reported nothing"
        return "ok"


def discover() -> dict[str, Path]:
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def run(name: str, script: Path) -> Outcome:
    print(f"\n=== {name} ({script.relative_to(ROOT)})", flush=True)
    with tempfile.TemporaryDirectory(prefix="syncd-bench-report-") as tmp:
        report_file = Path(tmp) / "report.json"
        env = dict(os.environ, **{REPORT_ENV: str(report_file)})
        started = time.monotonic()
        try:
            # Output goes straight to the terminal: long benchmarks show their progress.
            returncode: int | None = subprocess.run(
                [sys.executable, str(script)], cwd=ROOT, env=env, timeout=TIMEOUT_SECONDS
            ).returncode
        except subprocess.TimeoutExpired:
            returncode = None
        seconds = time.monotonic() - started
        report = json.loads(report_file.read_text()) if report_file.exists() else None
    return Outcome(name, returncode, seconds, report)


def _value(figure: dict[str, Any]) -> str:
    unit = figure["unit"]
    return (
        f"{figure['value']:.2f}{unit}" if unit.startswith("x") else f"{figure['value']:.1f} {unit}"
    )


def summary(outcomes: list[Outcome]) -> str:
    rows = [("benchmark", "figure", "value", "target", "met")]
    for o in outcomes:
        if o.report is None or o.crashed:
            rows.append((o.name, o.status, "", "", ""))
            continue
        for f in o.report["figures"]:
            met = {True: "yes", False: "NO", None: ""}[f["met"]]
            target = f"{f['target']}{f['unit'] if f['unit'].startswith('x') else ' ' + f['unit']}"
            rows.append((o.name, f["name"], _value(f), target if f["target"] else "", met))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines += [o.report["line"] for o in outcomes if o.report is not None and not o.crashed]
    return "\n".join(line.rstrip() for line in lines)


def main() -> int:
    available = discover()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=", ".join(available))
    args = parser.parse_args()
    unknown = [n for n in args.names if n not in available]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (have: {', '.join(available)})")
    chosen = args.names or list(available)

    outcomes = [run(name, available[name]) for name in chosen]
    print("\n=== summary")
    print(summary(outcomes))
    crashed = [o.name for o in outcomes if o.crashed]
    if crashed:
        print(f"\nbenchmarks that did not finish: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
