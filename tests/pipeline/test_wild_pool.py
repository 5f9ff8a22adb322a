"""Unlabeled wild pool on the real samples (skipped when ../shared/data/real is absent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data.coco import AnnotationError
from pipeline.data.wild_pool import PoolItem, WildPool, list_image_folder, load_pool

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MM = REAL / "mmpose_testdata"
MINI = REAL / "coco_mini"
DETS = MM / "coco" / "test_coco_det_AP_H_56.json"


@pytest.fixture(scope="module", autouse=True)
def _need_real_data() -> None:
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")


def test_pool_from_coco_detections_has_all_person_boxes():
    pool = load_pool(
        image_dir=MM / "coco", image_list_json=MM / "coco" / "test_coco.json", detections_json=DETS
    )
    dets = json.loads(DETS.read_text())
    images = {i["id"]: i for i in json.loads((MM / "coco" / "test_coco.json").read_text())["images"]}
    assert isinstance(pool, WildPool) and len(pool) == len(dets) == 118 and pool.num_images == 4
    items = iter(pool)
    assert not isinstance(items, list)
    for item, det in zip(items, dets, strict=True):
        assert isinstance(item, PoolItem) and item.image_id == det["image_id"]
        assert item.bbox_xywh.shape == (4,) and item.score == pytest.approx(det["score"])
        img = images[item.image_id]
        assert Path(item.image_path) == MM / "coco" / img["file_name"]
        x, y, w, h = item.bbox_xywh
        assert w > 0 and h > 0 and x >= 0 and y >= 0
        assert x + w <= img["width"] - 1 + 1e-3 and y + h <= img["height"] - 1 + 1e-3
    confident = load_pool(
        image_dir=MM / "coco",
        image_list_json=MM / "coco" / "test_coco.json",
        detections_json=DETS,
        min_box_score=0.5,
    )
    assert len(confident) == sum(d["score"] >= 0.5 for d in dets) < len(pool)
    assert (confident.scores >= 0.5).all()


def test_pool_from_annotations_uses_non_crowd_persons_and_can_exclude_images():
    ann = MINI / "annotations" / "person_keypoints_train2017.json"
    raw = json.loads(ann.read_text())["annotations"]
    pool = load_pool(image_dir=MINI / "train2017", annotations_json=ann)
    assert len(pool) == sum(not a["iscrowd"] for a in raw) == 167 and pool.num_images == 36
    assert set(pool.box_ids.tolist()) == {a["id"] for a in raw if not a["iscrowd"]}
    assert (pool.scores == 1.0).all()
    first_image = int(pool.image_ids[0])
    rest = pool.without_images([first_image])
    assert first_image not in rest.image_ids and len(rest) == len(pool) - int(
        (pool.image_ids == first_image).sum()
    )
    assert len(
        load_pool(image_dir=MINI / "train2017", annotations_json=ann, exclude_image_ids=[first_image])
    ) == len(rest)
    big = load_pool(image_dir=MINI / "train2017", annotations_json=ann, min_box_size=32.0)
    assert 0 < len(big) < len(pool) and (big.boxes[:, 2:].min(axis=1) >= 32.0).all()


def test_detections_override_annotation_boxes():
    ann = MM / "posetrack18" / "annotations" / "test_posetrack18_val.json"
    dets = MM / "posetrack18" / "annotations" / "test_posetrack18_human_detections.json"
    pool = load_pool(
        image_dir=MM / "posetrack18", annotations_json=ann, detections_json=dets, min_box_score=0.5
    )
    expected = sum(d["score"] >= 0.5 for d in json.loads(dets.read_text()))
    assert len(pool) == expected and pool.num_images == 3
    assert all(Path(p).is_file() for p in pool.image_paths)


def _folder_pool(tmp_path: Path) -> Path:
    folder = tmp_path / "wild"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(MM / "coco" / "000000000785.jpg", folder / "b.jpg")
    shutil.copy(MM / "coco" / "000000040083.jpg", folder / "sub" / "a.JPG")
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_folder_pool_with_file_name_detections(tmp_path):
    folder = _folder_pool(tmp_path)
    assert list_image_folder(folder) == ["b.jpg", "sub/a.JPG"]
    dets = [
        {"image_id": "sub/a.JPG", "category_id": 1, "bbox": [10, 20, 50, 80], "score": 0.9},
        {"image_id": "b.jpg", "category_id": 1, "bbox": [0, 0, 30, 60], "score": 0.8},
        {"image_id": "b.jpg", "category_id": 3, "bbox": [0, 0, 30, 60], "score": 0.8},
    ]
    det_path = tmp_path / "dets.json"
    det_path.write_text(json.dumps(dets))
    pool = load_pool(image_dir=folder, detections_json=det_path)
    assert len(pool) == 2
    assert pool[0].image_id == 2 and pool[0].image_path == str(folder / "sub" / "a.JPG")
    assert pool[1].image_id == 1 and pool[-1].box_id == 1
    np.testing.assert_allclose(pool[0].bbox_xywh, [10, 20, 50, 80])
    with pytest.raises(IndexError):
        pool[2]

    # "file_name" names the image as well as a string "image_id" does
    by_name = [{k: v for k, v in d.items() if k != "image_id"} | {"file_name": d["image_id"]} for d in dets]
    det_path.write_text(json.dumps(by_name))
    again = load_pool(image_dir=folder, detections_json=det_path)
    np.testing.assert_array_equal(again.image_ids, pool.image_ids)
    np.testing.assert_array_equal(again.boxes, pool.boxes)

    det_path.write_text(json.dumps([{**dets[0], "image_id": 785}]))
    with pytest.raises(AnnotationError, match="'image_id' 785 is not a pool image"):
        load_pool(image_dir=folder, detections_json=det_path)
    det_path.write_text(json.dumps([{**dets[0], "image_id": 7.5}]))
    with pytest.raises(AnnotationError, match="detection 0: field 'image_id' must be a file name"):
        load_pool(image_dir=folder, detections_json=det_path)


def test_folder_pool_detections_by_the_number_in_the_file_name(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("000000000139.jpg", "000000000785.jpg"):
        cv2.imwrite(str(folder / name), np.zeros((40, 30, 3), np.uint8))
    dets = [{"image_id": 785, "category_id": 1, "bbox": [1, 2, 10, 20], "score": 0.5}]
    (tmp_path / "d.json").write_text(json.dumps(dets))
    pool = load_pool(image_dir=folder, detections_json=tmp_path / "d.json")
    assert len(pool) == 1 and pool[0].image_path.endswith("000000000785.jpg") and pool[0].image_id == 2


@pytest.mark.parametrize(
    ("det", "message"),
    [
        (
            {"image_id": 999, "category_id": 1, "bbox": [0, 0, 5, 5], "score": 1.0},
            "'image_id' 999 is not a pool image",
        ),
        ({"image_id": 785, "category_id": 1, "score": 1.0}, "detection 1: field 'bbox' is missing"),
        (
            {"image_id": 785, "category_id": 1, "bbox": [0, 0, 5], "score": 1.0},
            "detection 1: field 'bbox' must be 4",
        ),
        (
            {"image_id": 785, "category_id": 1, "bbox": [0, 0, 5, 5], "score": "x"},
            "detection 1: field 'score'",
        ),
    ],
)
def test_malformed_detections_name_file_index_and_field(tmp_path, det, message):
    good = json.loads(DETS.read_text())[0]
    path = tmp_path / "bad_dets.json"
    path.write_text(json.dumps([good, det]))
    with pytest.raises(AnnotationError) as err:
        load_pool(image_dir=MM / "coco", image_list_json=MM / "coco" / "test_coco.json", detections_json=path)
    assert "bad_dets.json" in str(err.value) and message in str(err.value)


def test_missing_image_file_and_missing_box_source_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match="000000000785.jpg: pool image not found"):
        load_pool(image_dir=tmp_path, image_list_json=MM / "coco" / "test_coco.json", detections_json=DETS)
    with pytest.raises(ValueError, match="needs person boxes"):
        load_pool(image_dir=MM / "coco", image_list_json=MM / "coco" / "test_coco.json")
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        load_pool(image_dir=tmp_path / "nope", detections_json=DETS)


def test_pool_leaves_out_persons_annotated_without_keypoints():
    """Reference pool: COCO persons with num_keypoints == 0 are not unlabeled samples."""
    ann = MINI / "annotations" / "person_keypoints_train2017.json"
    if not ann.is_file():
        ann = next(MINI.rglob("*.json"))
    data = json.loads(ann.read_text())
    persons = [a for a in data["annotations"] if a["category_id"] == 1 and not a.get("iscrowd", 0)]
    without = sum(1 for a in persons if a.get("num_keypoints", 0) == 0)
    assert without > 0  # the real sample has such persons
    images = MINI / "train2017"
    every = load_pool(image_dir=images, annotations_json=ann)
    labelled = load_pool(image_dir=images, annotations_json=ann, min_keypoints=1)
    assert len(every) == len(persons) and len(labelled) == len(persons) - without
