"""The aggregator's fold against another commit's, in one process: CPU an event of each,
run after run, alternating, on the same events. This machine's speed moves 1.5-2x within
minutes (bench/README.md), so two `bench.fold` runs minutes apart cannot tell a 10 %
change; runs a few seconds apart in one process can. Prints each run and the median ratio.

Usage: python -m bench.fold_ab REV [--events N] [--runs R] [--messages-per-batch M]

REV's `services` package is checked out into a temporary directory and imported under
another name (its `services.` imports rewritten); `dti` and `dti_pulse` are this tree's.
"""
from __future__ import annotations

import argparse
import asyncio
import importlib
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from dti_pulse.bootstrap import tune_gc
from dti_pulse.config import Settings
from bench.fold import EVENTS_PER_MESSAGE, fold_us_per_event, simulated_payloads

ROOT = Path(__file__).resolve().parent.parent


def import_services_of(rev: str, into: Path):
    """REV's Aggregator class, from a copy of its services package named services_at_rev."""
    checkout = into / "checkout"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(checkout), rev], check=True)
    try:
        package = into / "services_at_rev"
        shutil.copytree(checkout / "services", package)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(checkout)], check=True)
    for source in package.rglob("*.py"):
        text = source.read_text()
        source.write_text(re.sub(r"\bservices\.", "services_at_rev.", text))
    sys.path.insert(0, str(into))
    return importlib.import_module("services_at_rev.aggregator.processor").Aggregator


def main() -> int:
    from services.aggregator.processor import Aggregator

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rev", help="the commit to compare with (e.g. HEAD~1)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=12, help="runs of each, alternating which goes first")
    parser.add_argument("--messages-per-batch", type=int, default=40)
    args = parser.parse_args()
    payloads, events = simulated_payloads(args.events)
    with tempfile.TemporaryDirectory(prefix="fold-ab-") as work:
        theirs = import_services_of(args.rev, Path(work))
        tune_gc(Settings().gc_young_threshold)
        runs: dict[str, list[float]] = {"this tree": [], args.rev: []}
        for run in range(args.runs):
            order = [("this tree", Aggregator), (args.rev, theirs)]
            for name, aggregator_class in (order if run % 2 == 0 else order[::-1]):
                runs[name].append(asyncio.run(fold_us_per_event(payloads, len(events), aggregator_class,
                                                                 args.messages_per_batch)))
    for name, figures in runs.items():
        print(f"{name:>12}: " + " ".join(f"{figure:.2f}" for figure in figures) + " µs of CPU an event")
    ratios = [ours / theirs for ours, theirs in zip(runs["this tree"], runs[args.rev])]
    print(f"this tree / {args.rev}: median {statistics.median(ratios):.3f} "
          f"(runs {min(ratios):.3f}-{max(ratios):.3f}; {len(events):,} events, "
          f"{args.messages_per_batch} messages of {EVENTS_PER_MESSAGE} a batch)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
