"""Is one method's AP really above another's? A paired bootstrap over validation images.

    python -m bench.paired_bootstrap --ann VAL.json --a RESULTS_A.json --b RESULTS_B.json \
        [--draws 200] [--seed 0] [--json]

Both results files are COCO keypoint results on the same validation set (e.g. the
``results_student.json`` of an SSPCM run and the ``results_teacher_a.json`` of a Dual run). Each
draw resamples the validation images with replacement (a repeated image counts twice, with its
persons and both methods' predictions), scores both methods on it with pycocotools and keeps
the difference. Prints AP of each on the full set, the difference, its 95 % bootstrap interval
and the fraction of draws in which A is above B. With ``--json`` the last line is one object.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipeline.cli import setup_logging
from pipeline.evaluation.paired_bootstrap import paired_bootstrap


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ann", required=True, type=Path, help="validation ground truth (COCO keypoints)")
    parser.add_argument("--a", required=True, type=Path, help="results of method A (COCO keypoint results)")
    parser.add_argument("--b", required=True, type=Path, help="results of method B")
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error("--draws must be >= 1")
    setup_logging(args.log_level)
    out = paired_bootstrap(args.ann, args.a, args.b, args.draws, args.seed)
    print(f"A {args.a}: AP {out['AP_a']:.4f}")
    print(f"B {args.b}: AP {out['AP_b']:.4f}")
    print(
        f"A - B = {out['diff']:+.4f}, 95 % interval [{out['ci95'][0]:+.4f}, {out['ci95'][1]:+.4f}] over "
        f"{out['draws']} resamples of the images; A above B in {100 * out['p_a_above_b']:.0f} % of them"
    )
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
