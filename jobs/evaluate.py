"""Evaluate COCO keypoint results, or a trained network on ground-truth boxes.

    python -m jobs.evaluate --ann ANN.json --results RESULTS.json
    python -m jobs.evaluate --checkpoint CKPT --ann ANN.json --images DIR [--flip-test] [--decode dark]
    python -m jobs.evaluate --checkpoint CKPT --ann ANN.json --images DIR --boxes PERSON_DETECTIONS.json
        [--box-score-thr 0.0] [--oks-nms-thr 0.9]

CKPT is a ``<role>.pt`` file, a checkpoint directory or a run directory (its latest checkpoint,
``--role`` chooses the network, default the student). Every ground-truth image of ANN.json
counts, as in pycocotools (an image without results scores its persons as misses). With
``--checkpoint`` the network predicts in the ground-truth boxes, or with ``--boxes`` in detected
person boxes (COCO results format) the way the top-down papers report COCO numbers: boxes below
``--box-score-thr`` left out, each person rescored by its box score times the mean of its
keypoint scores above 0.2, then OKS-NMS per image. The last line printed is one JSON object with
AP, AP50, AP75, APm, APl, AR (and the other COCOeval stats) and ``protocol``, which says which of
these was used.
"""

from __future__ import annotations

import argparse
import json

import torch

from pipeline.cli import setup_logging
from pipeline.data.skeletons import get_skeleton
from pipeline.evaluation.checkpoint_eval import DetectionProtocol, evaluate_checkpoint
from pipeline.evaluation.metrics import coco_keypoint_eval


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ann", required=True, help="COCO person-keypoints annotation file")
    parser.add_argument("--results", help="COCO keypoint results JSON to evaluate")
    parser.add_argument("--checkpoint", help="network checkpoint (.pt), checkpoint dir or run dir")
    parser.add_argument("--images", help="image directory of --ann (with --checkpoint)")
    parser.add_argument("--boxes", help="person detections (COCO results format) to predict in")
    parser.add_argument(
        "--box-score-thr", type=float, default=0.0, help="with --boxes: leave out boxes below"
    )
    parser.add_argument("--oks-nms-thr", type=float, default=0.9, help="with --boxes: OKS-NMS threshold")
    parser.add_argument("--role", default="student", choices=["student", "teacher_a", "teacher_b"])
    parser.add_argument("--flip-test", action="store_true")
    parser.add_argument("--decode", choices=["argmax", "dark"])
    parser.add_argument("--skeleton", help="skeleton name for --results mode (default: from keypoint count)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--skip-bad-images", action="store_true", help="skip and count unreadable images")
    parser.add_argument("--results-out", help="also write the predictions as COCO results JSON")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    if bool(args.results) == bool(args.checkpoint):
        parser.error("give exactly one of --results or --checkpoint")
    if args.boxes and not args.checkpoint:
        parser.error("--boxes needs --checkpoint (a network to predict in the boxes)")
    if args.checkpoint:
        if not args.images:
            parser.error("--checkpoint needs --images")
        protocol = DetectionProtocol(box_score_thr=args.box_score_thr, oks_nms_thr=args.oks_nms_thr)
        stats = evaluate_checkpoint(
            args.checkpoint,
            args.ann,
            args.images,
            boxes=args.boxes,
            protocol=protocol,
            role=args.role,
            flip_test=args.flip_test,
            decode=args.decode,
            batch_size=args.batch_size,
            skip_bad_images=args.skip_bad_images,
            results_out=args.results_out,
            device=args.device,
        )
        described = protocol.describe() if args.boxes else "ground-truth boxes, every ground-truth image"
    else:
        sigmas = get_skeleton(args.skeleton).sigmas_array if args.skeleton else None
        stats = coco_keypoint_eval(args.ann, args.results, sigmas=sigmas)
        described = "results file, every ground-truth image (pycocotools)"
    stats = {k: float(v) for k, v in stats.items()}
    stats["protocol"] = described
    print(json.dumps(stats), flush=True)
    return stats


if __name__ == "__main__":
    main()
