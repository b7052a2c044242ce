#!/usr/bin/env python3
"""Trains the ml-100k version with `recsys train` on both protocol splits over several seeds
and prints the markdown table of docs/evaluation.md (mean ± sd over seeds, all / warm / cold
users, with each seed's paired NDCG@10 interval against recent popularity).

Usage: scripts/seed-table.py [--recsys target/release/recsys] [--seeds 7,8,9] [--work DIR]
"""

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

SYSTEMS = ["most-popular", "recent-popular", "two-tower", "two-tower+rules", "two-tower+ranker"]


def run(cmd):
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def cold_list(cold):
    """The cold-start choice of an `evaluation.json`, in words."""
    policy = cold["policy"]
    kind = policy["kind"]
    if kind == "window":
        what = f"{policy['days']}-day window"
    elif kind == "decay":
        what = f"decay, half-life {policy['half_life_days']} d"
    else:
        what = "all-time counts"
    what += f" of {cold.get('counted', 'all-events').replace('-', ' ')}"
    if cold.get("profile"):
        what += f", a list per {cold['profile']['key']}"
    return what


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recsys", default="target/release/recsys")
    ap.add_argument("--seeds", default="7,8,9")
    ap.add_argument("--work", default="/tmp/recsys-seeds")
    ap.add_argument("--splits", default="seed,global")
    args = ap.parse_args()
    work = Path(args.work)
    files = work / "ml-100k"
    run([args.recsys, "export-movielens", "--out", str(files)])
    seeds = [int(s) for s in args.seeds.split(",")]
    for split in args.splits.split(","):
        per_seed = []
        for seed in seeds:
            out = work / split
            version = f"s{seed}"
            if not (out / version / "evaluation.json").exists():
                run([
                    args.recsys, "train",
                    "--events", str(files / "events.csv"),
                    "--users", str(files / "users.csv"),
                    "--items", str(files / "items.csv"),
                    "--category-column", "genres",
                    "--labels", "rating>=4",
                    "--split", split,
                    "--seed", str(seed),
                    "--out", str(out),
                    "--version", version,
                ])
            per_seed.append(json.loads((out / version / "evaluation.json").read_text()))
        print(f"\n### {split} split, seeds {args.seeds}\n")
        print("| system | users | NDCG@10 mean ± sd | Recall@10 | Recall@50 | Cov@10 |")
        print("|---|---|---|---|---|---|")
        for subset in ["all", "warm", "cold"]:
            for system in SYSTEMS:
                rows = [
                    r for e in per_seed for r in e["rows"]
                    if r["subset"] == subset and r["system"].split("(")[0] == system
                ]
                if not rows:
                    continue
                ndcg = [r["ndcg_at_10"]["mean"] for r in rows]
                sd = statistics.stdev(ndcg) if len(ndcg) > 1 else 0.0
                mean = lambda k: statistics.mean(
                    r[k]["mean"] if isinstance(r[k], dict) else r[k] for r in rows
                )
                print(
                    f"| {system} | {subset} {rows[0]['users']} | {statistics.mean(ndcg):.4f} ± {sd:.4f}"
                    f" | {mean('recall_at_10'):.4f} | {mean('recall_at_50'):.4f} | {mean('coverage_at_10'):.4f} |"
                )
        print("\nPaired NDCG@10 two-tower+ranker − recent popularity (all users), per seed:")
        for seed, e in zip(seeds, per_seed):
            d = e["gates"]["versus_recent_popularity"]
            days = e["recent_popularity_days"]
            cold = cold_list(e["cold_start"])
            print(
                f"- seed {seed}: {d['mean']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}]"
                f" (recent window {days} d; cold list {cold})"
            )


if __name__ == "__main__":
    main()
