#!/usr/bin/env python3
"""Fold `perf script` output into one line per stack ("root;...;leaf count"), the input of
flame graph tools (inferno-flamegraph, flamegraph.pl), and optionally summarise it.

  perf script -i perf.data | bench/stackcollapse.py > folded.txt
  perf script -i perf.data | bench/stackcollapse.py --top 25      # self cost by function
  perf script -i perf.data | bench/stackcollapse.py --blame clear_page_erms,memmove --top 10

--inclusive ferrymq_,__x64_sys counts the samples with a matching frame anywhere on the stack.
--blame attributes the samples whose leaf matches one of the words to the nearest frame of
our own code (ferrymq_*), to see which of our functions cause kernel or libc time.
Standard library only.
"""
import argparse
import collections
import re
import sys


def stacks(lines):
    frames = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if frames:
                yield frames
            frames = []
            continue
        if not line.startswith((" ", "\t")):
            continue  # the sample header (comm pid time: event)
        parts = line.strip().split(None, 1)
        if len(parts) < 2:
            continue
        name = re.sub(r"\+0x[0-9a-f]+$", "", parts[1].split(" (")[0])
        frames.append(name)
    if frames:
        yield frames


def short(name):
    name = re.sub(r"<[^<>]*>", "", name)
    name = re.sub(r"<[^<>]*>", "", name)
    return name[:140]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--blame", default="")
    ap.add_argument("--inclusive", default="", help="comma-separated prefixes: inclusive cost of matching frames")
    opts = ap.parse_args()
    folded = collections.Counter()
    self_cost = collections.Counter()
    blamed = collections.Counter()
    words = [w for w in opts.blame.split(",") if w]
    prefixes = [w for w in opts.inclusive.split(",") if w]
    inclusive = collections.Counter()
    total = 0
    for frames in stacks(sys.stdin):  # leaf first
        total += 1
        folded[";".join(short(f) for f in reversed(frames))] += 1
        leaf = short(frames[0])
        self_cost[leaf] += 1
        if prefixes:
            for name in {short(f) for f in frames if any(p in f for p in prefixes)}:
                inclusive[name] += 1
        if words and any(w in frames[0] for w in words):
            owner = next((short(f) for f in frames if f.startswith(("ferrymq", "<ferrymq"))), "(no ferrymq frame)")
            blamed[f"{leaf[:40]} <- {owner}"] += 1
    if opts.top:
        for name, n in (inclusive if prefixes else blamed if words else self_cost).most_common(opts.top):
            print(f"{100 * n / max(total, 1):6.2f}%  {name}")
        return
    for stack, n in folded.items():
        print(f"{stack} {n}")


if __name__ == "__main__":
    main()
