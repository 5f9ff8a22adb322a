"""The export at scale on this machine: persons/s by labeling workers, and the driver's memory.

    python -m bench.export [--speed-persons 2000] [--memory-persons 10000,100000] [--workers 1,2]
                           [--batch-size 64] [--json]

Builds (once, cached under ``data/bench/export``) a synthetic image folder with no annotations
file and two small teachers (a seconds-long Dual Network run at 64x64), then writes person
detection files of any size by reusing the images' boxes (shifted by a pixel or two, so every
person is its own crop). Each export runs as its own ``python -m jobs.export_pseudo_labels
--runtime ray`` process, which starts a local Ray instance with this machine's CPUs:

- speed: ``--speed-persons`` persons with each of ``--workers`` labeling workers; persons/s is
  persons over the export's wall time (pool tables, labeling, compaction and the COCO JSON);
PCM's score threshold is 0, so every person is exported: the COCO file holds one annotation per
person.

- memory: the driver's peak RSS (``driver_peak_rss_mb`` in the export's summary: the driver
  process only, not the Ray workers) for each pool size of ``--memory-persons``, with the ratio
  of the largest to the smallest (a driver that does not hold the pool stays near 1).

The last line with ``--json`` is one JSON object with both tables.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from pipeline.cli import setup_logging
from pipeline.data.synthetic.dataset import generate_dataset

log = logging.getLogger("bench.export")
REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "data" / "bench" / "export"


def teachers(root: Path) -> Path:
    """A trained Dual Network run (two epochs, so PCM has previous-epoch teachers)."""
    run = root / "run"
    if (run / "eval.json").is_file():
        return run
    data = root / "src"
    if not (data / "train" / "annotations.json").is_file():
        generate_dataset(data / "train", seed=0, num_images=40, image_size=(256, 192))
        generate_dataset(data / "val", seed=1, num_images=8, start_id=100_000, image_size=(256, 192))
    overrides = [
        f"data.labeled_ann={data / 'train' / 'annotations.json'}",
        f"data.labeled_images={data / 'train' / 'images'}",
        f"data.val_ann={data / 'val' / 'annotations.json'}",
        f"data.val_images={data / 'val' / 'images'}",
        "codec.input_size=[64,64]",
        "codec.heatmap_size=[16,16]",
        "model.teacher=tiny",
        "model.student=tiny",
        "method.name=dual",
        "optim.batch_size=4",
        "optim.unlabeled_batch_size=4",
        "optim.steps_per_epoch=2",
        "optim.epochs=2",
        f"train.out_dir={run}",
    ]
    subprocess.run(
        [sys.executable, "-m", "jobs.train", *[f"--{o}" for o in overrides], "--log-level=WARNING"],
        cwd=REPO,
        check=True,
    )
    return run


def detections(root: Path, persons: int) -> Path:
    """A detection file of ``persons`` boxes on the synthetic images (named by file name)."""
    path = root / f"detections_{persons}.json"
    if path.is_file():
        return path
    truth = json.loads((root / "src" / "train" / "annotations.json").read_text())
    names = {img["id"]: img["file_name"] for img in truth["images"]}
    anns = truth["annotations"]
    rng = np.random.default_rng(0)
    shift = rng.uniform(-2, 2, size=(persons, 2))
    dets = []
    for i in range(persons):
        a = anns[i % len(anns)]
        x, y, w, h = a["bbox"]
        box = [round(x + shift[i, 0], 2), round(y + shift[i, 1], 2), w, h]
        dets.append({"file_name": names[a["image_id"]], "category_id": 1, "bbox": box, "score": 0.9})
    path.write_text(json.dumps(dets))
    return path


def export(root: Path, run: Path, persons: int, workers: int, batch_size: int, tag: str) -> dict:
    """One export in its own process; its summary (the last stdout line)."""
    out = root / "out" / tag
    subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = [
        sys.executable, "-m", "jobs.export_pseudo_labels", "--run", str(run),
        "--images", str(root / "src" / "train" / "images"), "--boxes", str(detections(root, persons)),
        "--out", str(out), "--runtime", "ray", "--workers", str(workers), "--batch-size", str(batch_size),
        "--score-thr", "0.0", "--log-level=WARNING",
    ]  # fmt: skip
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{tag}: the export printed no summary; stderr ends with: {done.stderr[-2000:]}")
    summary = json.loads(lines[-1])  # Ray may print its own lines after the summary
    summary["process_s"] = round(time.perf_counter() - t0, 1)
    return summary


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--speed-persons", type=int, default=2000)
    parser.add_argument("--memory-persons", default="10000,100000")
    parser.add_argument("--workers", default="1,2", help="labeling workers of the speed runs")
    parser.add_argument("--memory-workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ROOT.mkdir(parents=True, exist_ok=True)
    run = teachers(ROOT)
    result: dict = {"cpus": os.cpu_count(), "speed": [], "memory": []}
    for w in (int(v) for v in args.workers.split(",") if v):
        s = export(ROOT, run, args.speed_persons, w, args.batch_size, f"speed_w{w}")
        rate = s["labeled_persons"] / s["wall_s"]
        result["speed"].append(
            {
                "workers": w,
                "persons": s["labeled_persons"],
                "wall_s": s["wall_s"],
                "persons_per_s": round(rate, 1),
            }
        )
        log.info(
            "%d worker(s): %d persons in %.1f s, %.1f persons/s", w, s["labeled_persons"], s["wall_s"], rate
        )
    for n in (int(v) for v in args.memory_persons.split(",") if v):
        s = export(ROOT, run, n, args.memory_workers, args.batch_size, f"memory_{n}")
        result["memory"].append(
            {"persons": n, "driver_peak_rss_mb": s["driver_peak_rss_mb"], "wall_s": s["wall_s"]}
        )
        log.info("%d persons: driver peak RSS %.1f MB (%.1f s)", n, s["driver_peak_rss_mb"], s["wall_s"])
    if len(result["memory"]) > 1:
        rss = [m["driver_peak_rss_mb"] for m in result["memory"]]
        result["memory_ratio"] = round(rss[-1] / rss[0], 3)
        log.info("driver peak RSS, largest / smallest pool: %.3f", result["memory_ratio"])
    if len(result["speed"]) > 1:
        result["speed_up"] = round(
            result["speed"][-1]["persons_per_s"] / result["speed"][0]["persons_per_s"], 2
        )
        log.info(
            "speed-up, %d workers over %d: %.2f",
            result["speed"][-1]["workers"],
            result["speed"][0]["workers"],
            result["speed_up"],
        )
    if args.json:
        print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
