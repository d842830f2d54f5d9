"""Acceptance check of a run trained on the synthetic demo set.

    python scripts/check_synthetic.py RUN [--split test] [--beam 1] [--json]

Prints (1) the fraction of test images whose greedy caption names the true finding(s) and location(s)
(goal >= 0.80) and (2) for the generated word naming a finding, the mean attention mass inside the
true box against the box's mean share of the image (goal: mass >= 2.5x share). Exit status 1 when a
goal is missed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from medcap.train.synthetic_check import check_run

GOAL_NAMED = 0.80
GOAL_RATIO = 2.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="run folder or id")
    parser.add_argument("--split", default="test")
    parser.add_argument("--beam", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    r = check_run(args.run, split=args.split, beam=args.beam)
    ok_named = r["named_fraction"] >= GOAL_NAMED
    ok_ratio = r["mass_over_share"] >= GOAL_RATIO
    r["goals"] = {"named_fraction": GOAL_NAMED, "mass_over_share": GOAL_RATIO,
                  "named_ok": ok_named, "attention_ok": ok_ratio}
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"run: {r['run']} ({r['split']} split, {r['n_images']} images, beam {r['beam']})")
        print(f"names true finding + location: {r['named_fraction']:.3f} (goal >= {GOAL_NAMED}) "
              f"{'OK' if ok_named else 'MISSED'}")
        print(f"attention mass in true box: {r['mean_box_mass']:.3f} vs box share {r['mean_box_share']:.3f} "
              f"-> {r['mass_over_share']:.2f}x (goal >= {GOAL_RATIO}x) {'OK' if ok_ratio else 'MISSED'}; "
              f"{r['n_findings_scored']} finding words scored, {r['findings_not_generated']} not generated, "
              f"median per-finding ratio {r['median_instance_ratio']:.2f}x")
        for ex in r["examples"]:
            print(f"  {ex['image_id']}: {ex['caption']}")
    return 0 if ok_named and ok_ratio else 1


if __name__ == "__main__":
    raise SystemExit(main())
