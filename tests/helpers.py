"""Helpers shared by tests (importable as ``tests.helpers``)."""

from __future__ import annotations

from pathlib import Path


def tiny_overrides(data: dict[str, Path], out_dir: Path, method: str = "supervised") -> list[str]:
    """Config overrides for a seconds-long CPU run on the synthetic fixture."""
    return [
        f"data.labeled_ann={data['train_ann']}",
        f"data.labeled_images={data['train_images']}",
        f"data.val_ann={data['val_ann']}",
        f"data.val_images={data['val_images']}",
        "codec.input_size=[64,64]",
        "codec.heatmap_size=[16,16]",
        "codec.sigma=1.5",
        "model.teacher=tiny",
        "model.student=tiny",
        f"method.name={method}",
        "optim.batch_size=4",
        "optim.unlabeled_batch_size=4",
        "optim.steps_per_epoch=2",
        "optim.epochs=2",
        f"train.out_dir={out_dir}",
        "train.log_every=1",
    ]


def plain_pycocotools_stats(ann: Path, results: list[dict]) -> list[float]:
    """The 10 COCOeval keypoint stats of plain pycocotools, with its own defaults (every image
    of ``ann``, COCO's sigmas), on a copy of ``results`` (``loadRes`` changes its input)."""
    import contextlib
    import copy
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann))
        ev = COCOeval(gt, gt.loadRes(copy.deepcopy(results)), iouType="keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)
