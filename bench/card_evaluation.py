"""Copy the quality suite's per-task table into a model card (the weights are not touched).

    python -m bench.card_evaluation bench/results/quality.json resources/models/damp_tiny.json

The card then carries the same figures as the README, with the suite's date, machine, crop and
the sha256 of the weights they were measured with.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from damp_engine.outputs import write_atomically


def card_table(results: dict) -> dict:
    """The suite's metadata and one row per task: input, best classical (named) and DAMP scores."""
    rows = []
    for entry in results["summary"]:
        best = entry["best_classical"]
        rows.append({"task": entry["task"], "label": entry["label"], "zero_shot": entry.get("zero_shot", False),
                     "input": entry["input"], "damp": entry["damp"], "best_classical": best,
                     "classical": entry["classical"][best], "gap_psnr": entry["gap_psnr"],
                     "network_gain_over_closed_form": entry.get("network_gain"),
                     "target_met": entry.get("target_met"), "scenes_below_input": entry.get("below_input", [])})
    return {"meta": results["meta"], "tasks": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="quality.json written by bench.quality_suite")
    parser.add_argument("card", type=Path, help="the model card (.json beside the .safetensors)")
    args = parser.parse_args(argv)
    results = json.loads(args.results.read_text())
    card = json.loads(args.card.read_text())
    weights = args.card.with_suffix(".safetensors")
    card["evaluation"] = card_table(results)
    if Path(results["meta"]["model"]).name != weights.name:
        print(f"warning: the results are for {results['meta']['model']}, not {weights}", file=sys.stderr)
    write_atomically(args.card, lambda tmp: tmp.write_text(json.dumps(card, indent=1)))
    print(f"added {len(card['evaluation']['tasks'])} task rows to {args.card}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
