"""MPII and AI Challenger -> COCO converters on the real samples (skipped without ../shared/data/real)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO

from pipeline.data.coco import AnnotationError, CocoPersonDataset, summarize
from pipeline.data.converters import aic_to_coco, mpii_to_coco, write_coco_json
from pipeline.data.skeletons import AIC14, MPII16

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MM = REAL / "mmpose_testdata"


@pytest.fixture(scope="module", autouse=True)
def _need_real_data() -> None:
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")


def _pycocotools_load(path: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def test_mpii_converts_to_coco_with_0_based_joints(tmp_path):
    src = json.loads((MM / "mpii" / "test_mpii.json").read_text())
    out = tmp_path / "mpii_coco.json"
    write_coco_json(mpii_to_coco(MM / "mpii" / "test_mpii.json", MM / "mpii"), out)

    coco = _pycocotools_load(out)
    assert len(coco.imgs) == 5 and len(coco.anns) == 5
    assert coco.loadCats(1)[0]["keypoints"] == list(MPII16.joint_names)
    for entry, ann in zip(src, coco.dataset["annotations"], strict=True):
        img = coco.imgs[ann["image_id"]]
        assert img["file_name"] == entry["image"] and img["width"] > 0 and img["height"] > 0
        kpts = np.asarray(ann["keypoints"], dtype=np.float64).reshape(16, 3)
        vis = np.asarray(entry["joints_vis"]) > 0
        np.testing.assert_allclose(kpts[vis, :2], np.asarray(entry["joints"])[vis] - 1.0)
        assert (kpts[vis, 2] == 2).all() and (kpts[~vis] == 0).all()
        assert ann["num_keypoints"] == int(vis.sum())
        np.testing.assert_allclose(ann["center"], np.asarray(entry["center"]) - 1.0)
        assert ann["scale"] == pytest.approx(entry["scale"])
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= img["width"] - 1 + 1e-6 and y + h <= img["height"] - 1 + 1e-6
        assert (kpts[vis, 0] >= x).all() and (kpts[vis, 0] <= x + w).all()

    ds = CocoPersonDataset.load(out, MM / "mpii", check_images=True)
    assert ds.skeleton is MPII16
    assert summarize(ds.records) == {"images": 5, "persons": 5, "labelled_keypoints": 76}


def test_mpii_box_is_the_mmpose_square_around_the_shifted_centre(tmp_path):
    entry = json.loads((MM / "mpii" / "test_mpii.json").read_text())[0]
    entry = {**entry, "center": [500.0, 300.0], "scale": 1.0}
    path = tmp_path / "one.json"
    path.write_text(json.dumps([entry]))
    ann = mpii_to_coco(path, MM / "mpii")["annotations"][0]
    # centre (499, 299) 0-based, moved down 15 px; square side 200
    np.testing.assert_allclose(ann["bbox"], [399.0, 214.0, 200.0, 200.0])


def test_mpii_malformed_entry_names_file_entry_and_field(tmp_path):
    entries = json.loads((MM / "mpii" / "test_mpii.json").read_text())
    entries[2]["joints"] = entries[2]["joints"][:15]
    path = tmp_path / "bad_mpii.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(AnnotationError, match=r"bad_mpii\.json: entry 2: field 'joints'"):
        mpii_to_coco(path, MM / "mpii")


COCO_TO_AIC_VISIBILITY = {2: 1, 1: 2, 0: 3}


def _raw_aic_from_coco_style(path: Path) -> tuple[list[dict], dict]:
    """Rebuild the raw AI Challenger format from the shared COCO-style sample."""
    coco = json.loads(path.read_text())
    raw = []
    for img in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        kp, hu = {}, {}
        for i, a in enumerate(anns, start=1):
            k = np.asarray(a["keypoints"], dtype=np.float64).reshape(14, 3)
            k[:, 2] = [COCO_TO_AIC_VISIBILITY[int(v)] for v in k[:, 2]]
            kp[f"human{i}"] = [int(v) for v in k.reshape(-1)]
            x, y, w, h = a["bbox"]
            hu[f"human{i}"] = [x, y, x + w, y + h]
        raw.append(
            {"image_id": Path(img["file_name"]).stem, "keypoint_annotations": kp, "human_annotations": hu}
        )
    return raw, coco


def test_aic_raw_converts_to_coco_matching_the_shared_conversion(tmp_path):
    raw, reference = _raw_aic_from_coco_style(MM / "aic" / "test_aic.json")
    raw_path, out = tmp_path / "aic_raw.json", tmp_path / "aic_coco.json"
    raw_path.write_text(json.dumps(raw))
    write_coco_json(aic_to_coco(raw_path, MM / "aic"), out)

    coco = _pycocotools_load(out)
    assert coco.loadCats(1)[0]["keypoints"] == list(AIC14.joint_names)
    ref_imgs = {i["id"]: i for i in reference["images"]}
    ref_by_image = [
        [a for a in reference["annotations"] if a["image_id"] == img["id"]] for img in reference["images"]
    ]
    ref_anns = [a for group in ref_by_image for a in group]
    assert len(coco.anns) == len(ref_anns) == 9
    for ann, ref in zip(coco.dataset["annotations"], ref_anns, strict=True):
        ref_img, img = ref_imgs[ref["image_id"]], coco.imgs[ann["image_id"]]
        assert img["file_name"] == ref_img["file_name"]
        assert (img["width"], img["height"]) == (ref_img["width"], ref_img["height"])
        ref_k = np.asarray(ref["keypoints"], dtype=np.float64).reshape(14, 3)
        ref_k[ref_k[:, 2] == 0] = 0.0
        np.testing.assert_allclose(np.asarray(ann["keypoints"]).reshape(14, 3), ref_k)
        np.testing.assert_allclose(ann["bbox"], ref["bbox"])
        assert ann["num_keypoints"] == ref["num_keypoints"]

    ds = CocoPersonDataset.load(out, MM / "aic")
    assert ds.skeleton is AIC14
    assert summarize(ds.records) == {"images": 3, "persons": 9, "labelled_keypoints": 101}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda e: e["keypoint_annotations"]["human1"].__setitem__(2, 4), "visibility 4 not in 1/2/3"),
        (lambda e: e["keypoint_annotations"].pop("human1"), "no entry for 'human1'"),
        (lambda e: e["human_annotations"].__setitem__("human1", [10, 10, 5, 20]), "not x1,y1,x2,y2"),
        (lambda e: e.pop("human_annotations"), "field 'human_annotations' is missing"),
    ],
)
def test_aic_malformed_entries_name_file_entry_and_field(tmp_path, edit, message):
    raw, _ = _raw_aic_from_coco_style(MM / "aic" / "test_aic.json")
    edit(raw[1])
    path = tmp_path / "bad_aic.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(AnnotationError) as err:
        aic_to_coco(path, MM / "aic")
    assert "bad_aic.json: entry 1" in str(err.value) and message in str(err.value)


def test_missing_images_raise_unless_allowed(tmp_path):
    raw, _ = _raw_aic_from_coco_style(MM / "aic" / "test_aic.json")
    path = tmp_path / "aic_raw.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(FileNotFoundError, match="image missing"):
        aic_to_coco(path, tmp_path)
    data = aic_to_coco(path, tmp_path, require_images=False)
    assert len(data["images"]) == 3 and all("width" not in img for img in data["images"])


def test_write_coco_json_is_atomic(tmp_path):
    out = tmp_path / "sub" / "data.json"
    write_coco_json({"images": [], "value": np.float32(1.5), "ids": np.arange(3)}, out)
    assert json.loads(out.read_text()) == {"images": [], "value": 1.5, "ids": [0, 1, 2]}
    with pytest.raises(TypeError):
        write_coco_json({"images": [object()]}, out)
    assert json.loads(out.read_text())["value"] == 1.5  # the old file survives a failed write
    assert [p.name for p in out.parent.iterdir()] == ["data.json"]  # no temporary left behind
