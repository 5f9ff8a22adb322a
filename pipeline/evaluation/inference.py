"""Top-down inference on ground-truth (or detected) boxes: heatmaps -> image-space keypoints."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from pipeline.data.topdown import EvalDataset
from pipeline.evaluation.metrics import flip_test_heatmaps
from pipeline.geometry.heatmaps import HeatmapCodec, heatmap_to_image

PredictFn = Callable[[torch.Tensor], torch.Tensor]


def model_predict_fn(model: torch.nn.Module, device: str | torch.device = "cpu") -> PredictFn:
    """A no-grad eval-mode ``(N,3,H,W) -> (N,K,h,w)`` CPU function for a model."""
    dev = torch.device(device)

    @torch.no_grad()
    def predict(images: torch.Tensor) -> torch.Tensor:
        model.eval()
        return model(images.to(dev)).float().cpu()

    return predict


def predict_keypoints(
    predict_fns: Sequence[PredictFn],
    dataset: EvalDataset,
    codec: HeatmapCodec,
    *,
    batch_size: int = 64,
    flip_indices: Sequence[int] | None = None,
    num_workers: int = 0,
) -> dict[str, np.ndarray]:
    """Predict every person of ``dataset``; several functions are averaged (ensemble).

    Returns:
        ``image_ids`` (N,), ``kpts_img`` (N,K,3) (x, y, score) image space, ``box_scores`` (N,).
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers
    )
    ids, kpts, scores = [], [], []
    for batch in loader:
        images = batch["images"]
        heatmaps = None
        for fn in predict_fns:
            hm = flip_test_heatmaps(fn, images, flip_indices) if flip_indices is not None else fn(images)
            heatmaps = hm if heatmaps is None else heatmaps + hm
        heatmaps = heatmaps / len(predict_fns)
        kpts_hm, maxvals = codec.decode(heatmaps.numpy())
        xy = heatmap_to_image(
            np.asarray(kpts_hm), batch["matrix"].numpy(), codec.input_size, codec.heatmap_size
        )
        kpts.append(np.concatenate([xy, np.asarray(maxvals)[..., None]], axis=-1))
        ids.append(batch["image_id"].numpy())
        scores.append(batch["score"].numpy())
    if not ids:
        k = 0
        return {
            "image_ids": np.zeros(0, np.int64),
            "kpts_img": np.zeros((0, k, 3)),
            "box_scores": np.zeros(0),
        }
    return {
        "image_ids": np.concatenate(ids),
        "kpts_img": np.concatenate(kpts).astype(np.float64),
        "box_scores": np.concatenate(scores),
    }
