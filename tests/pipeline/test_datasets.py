"""COCO person-keypoint reader on the real sample data (skipped when ../shared/data/real is absent)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.data.coco import AnnotationError, CocoPersonDataset, clean_bbox, load_coco_persons, summarize
from pipeline.data.image_checks import BadImageError, check_image_files, images_of, verify_image_file

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MM = REAL / "mmpose_testdata"
MINI = REAL / "coco_mini"


@pytest.fixture(scope="module", autouse=True)
def _need_real_data() -> None:
    if not REAL.is_dir():
        pytest.skip(f"real data not found at {REAL}")


# (ann file, image dir, skeleton, {with keypoints}, {all non-crowd persons}) -- counts from SOURCES.md
CASES = [
    ("coco/test_coco.json", "coco", "coco17", (4, 12, 181), (4, 14, 181)),
    ("crowdpose/test_crowdpose.json", "crowdpose", "crowdpose14", (2, 4, 47), (2, 5, 47)),
    ("ochuman/test_ochuman.json", "ochuman", "coco17", (3, 5, 73), (3, 5, 73)),
    ("aic/test_aic.json", "aic", "aic14", (3, 9, 101), (3, 9, 101)),
    (
        "posetrack18/annotations/test_posetrack18_val.json",
        "posetrack18",
        "posetrack18",
        (3, 14, 182),
        (3, 14, 182),
    ),
]


def _counts(records) -> tuple[int, int, int]:
    s = summarize(records)
    return s["images"], s["persons"], s["labelled_keypoints"]


@pytest.mark.parametrize(("ann", "img_dir", "skeleton", "with_kpts", "all_persons"), CASES)
def test_mmpose_samples_load_with_documented_counts(ann, img_dir, skeleton, with_kpts, all_persons):
    ds = CocoPersonDataset.load(MM / ann, MM / img_dir, check_images=True)
    assert ds.skeleton.name == skeleton
    assert _counts(ds.records) == with_kpts
    assert _counts(load_coco_persons(MM / ann, MM / img_dir, require_keypoints=False)) == all_persons
    k = ds.skeleton.num_joints
    for r in ds.records:
        assert r.kpts_img.shape == (k, 3) and r.kpts_img.dtype == np.float32
        assert r.bbox_xywh.shape == (4,) and r.bbox_xywh.dtype == np.float32
        assert Path(r.image_path).is_absolute() and Path(r.image_path).is_file()
        assert r.num_keypoints == int((r.kpts_img[:, 2] > 0).sum()) > 0


@pytest.mark.parametrize(
    ("split", "with_kpts", "all_persons"),
    [("val2017", (32, 68, 652), (39, 117, 652)), ("train2017", (28, 86, 800), (36, 167, 800))],
)
def test_coco_mini_counts_crowd_and_zero_keypoint_persons(split, with_kpts, all_persons):
    ann = MINI / "annotations" / f"person_keypoints_{split}.json"
    raw = json.loads(ann.read_text())["annotations"]
    crowd_ids = {a["id"] for a in raw if a["iscrowd"]}
    zero_ids = {a["id"] for a in raw if not a["iscrowd"] and a["num_keypoints"] == 0}
    labeled = load_coco_persons(ann, MINI / split)
    everyone = load_coco_persons(ann, MINI / split, require_keypoints=False)
    assert _counts(labeled) == with_kpts
    assert _counts(everyone) == all_persons
    assert len(raw) == all_persons[1] + len(crowd_ids)  # val: 118 = 117 + 1 crowd
    assert not crowd_ids & {r.ann_id for r in everyone}
    assert not zero_ids & {r.ann_id for r in labeled}
    assert zero_ids <= {r.ann_id for r in everyone}


def test_first_n_persons_follow_the_chosen_order():
    ann = MINI / "annotations" / "person_keypoints_val2017.json"
    data = json.loads(ann.read_text())
    file_order = [a["id"] for a in data["annotations"] if not a["iscrowd"] and a["num_keypoints"] > 0]
    first = load_coco_persons(ann, MINI / "val2017", max_persons=10)
    assert [r.ann_id for r in first] == file_order[:10]
    image_rank = {img["id"]: i for i, img in enumerate(data["images"])}
    by_image = load_coco_persons(ann, MINI / "val2017", order="images")
    ranks = [image_rank[r.image_id] for r in by_image]
    assert ranks == sorted(ranks) and [r.ann_id for r in by_image] != file_order
    assert sorted(r.ann_id for r in by_image) == sorted(file_order)


def test_keypoints_and_box_values_match_the_file():
    ann = MM / "coco" / "test_coco.json"
    raw = {a["id"]: a for a in json.loads(ann.read_text())["annotations"]}
    for r in load_coco_persons(ann, MM / "coco"):
        a = raw[r.ann_id]
        np.testing.assert_allclose(r.kpts_img.reshape(-1), a["keypoints"], rtol=1e-6)
        assert r.image_id == a["image_id"] and r.area == pytest.approx(a["area"])


def _write_modified(tmp_path: Path, edit) -> Path:
    data = json.loads((MM / "coco" / "test_coco.json").read_text())
    edit(data)
    out = tmp_path / "modified.json"
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("keypoints", list(range(48)), "48 values, expected 51"),
        ("keypoints", [0.0] * 50 + [3], "visibility 3"),
        ("keypoints", [float("nan")] + [0.0] * 50, "non-finite"),
        ("bbox", None, "'bbox' is missing"),
        ("bbox", [1, 2, 3], "'bbox' must be 4"),
    ],
)
def test_malformed_annotation_names_file_record_and_field(tmp_path, field, value, message):
    def edit(data):
        ann = data["annotations"][3]
        if value is None:
            del ann[field]
        else:
            ann[field] = value

    bad_id = json.loads((MM / "coco" / "test_coco.json").read_text())["annotations"][3]["id"]
    path = _write_modified(tmp_path, edit)
    with pytest.raises(AnnotationError) as err:
        load_coco_persons(path, MM / "coco")
    text = str(err.value)
    assert str(path) in text and f"annotation {bad_id}" in text and f"'{field}'" in text and message in text


def test_unknown_image_id_and_missing_category_fields_raise(tmp_path):
    path = _write_modified(tmp_path, lambda d: d["annotations"][0].update(image_id=123456789))
    with pytest.raises(AnnotationError, match="'image_id' 123456789 not in 'images'"):
        load_coco_persons(path, MM / "coco")
    path = _write_modified(tmp_path, lambda d: d["annotations"][0].pop("category_id"))
    with pytest.raises(AnnotationError, match="'category_id' is missing"):
        load_coco_persons(path, MM / "coco")


def test_explicit_skeleton_must_match_keypoint_count():
    crowd = MM / "crowdpose" / "test_crowdpose.json"
    assert len(load_coco_persons(crowd, MM / "crowdpose", skeleton="crowdpose14")) == 4
    with pytest.raises(AnnotationError, match="skeleton coco17 has 17"):
        load_coco_persons(crowd, MM / "crowdpose", skeleton="coco17")


def test_boxes_are_clipped_and_empty_boxes_dropped(tmp_path):
    def edit(data):
        w, h = data["images"][0]["width"], data["images"][0]["height"]
        anns = [a for a in data["annotations"] if a["image_id"] == data["images"][0]["id"]]
        anns[0]["bbox"] = [-10.0, -5.0, w + 100.0, h + 100.0]
        data["annotations"] = [anns[0], {**anns[0], "id": 1, "bbox": [w + 5.0, 10.0, 30.0, 30.0]}]

    records = load_coco_persons(_write_modified(tmp_path, edit), MM / "coco")
    img = json.loads((MM / "coco" / "test_coco.json").read_text())["images"][0]
    assert len(records) == 1
    np.testing.assert_allclose(records[0].bbox_xywh, [0, 0, img["width"] - 1, img["height"] - 1])
    assert clean_bbox(np.array([5.0, 5.0, 0.0, 10.0]), None, None) is None


def _tmp_copy_of_coco_sample(tmp_path: Path) -> Path:
    img_dir = tmp_path / "images"
    img_dir.mkdir()
    for jpg in (MM / "coco").glob("*.jpg"):
        shutil.copy(jpg, img_dir / jpg.name)
    return img_dir


def test_missing_and_truncated_images_are_reported_or_skipped(tmp_path):
    img_dir = _tmp_copy_of_coco_sample(tmp_path)
    data = json.loads((MM / "coco" / "test_coco.json").read_text())
    truncated = img_dir / data["images"][1]["file_name"]
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    (img_dir / data["images"][2]["file_name"]).unlink()
    records = load_coco_persons(MM / "coco" / "test_coco.json", img_dir)
    assert len(records) == 12

    with pytest.raises(BadImageError) as err:
        check_image_files(records)
    assert data["images"][1]["file_name"] in str(err.value) or data["images"][2]["file_name"] in str(
        err.value
    )

    good, bad = check_image_files(records, skip_bad=True)
    reasons = dict(bad)
    assert reasons[str(truncated)].startswith("truncated JPEG")
    assert reasons[str(img_dir / data["images"][2]["file_name"])] == "file not found"
    bad_ids = {data["images"][1]["id"], data["images"][2]["id"]}
    assert [r for r in records if r.image_id not in bad_ids] == good
    assert len(good) < len(records)

    skipped = load_coco_persons(
        MM / "coco" / "test_coco.json", img_dir, check_images=True, skip_bad_images=True
    )
    assert [r.ann_id for r in skipped] == [r.ann_id for r in good]
    with pytest.raises(BadImageError, match="truncated JPEG"):
        verify_image_file(truncated)


def test_verify_image_file_accepts_good_and_rejects_truncated_png(tmp_path):
    verify_image_file(MM / "coco" / "000000000785.jpg")
    ok, png = cv2.imencode(".png", np.full((20, 30, 3), 128, dtype=np.uint8))
    assert ok
    good, cut, junk = tmp_path / "good.png", tmp_path / "cut.png", tmp_path / "junk.jpg"
    good.write_bytes(png.tobytes())
    cut.write_bytes(png.tobytes()[:-20])
    junk.write_bytes(b"\xff\xd8 not a real jpeg \xff\xd9")
    verify_image_file(good)
    with pytest.raises(BadImageError, match="truncated PNG"):
        verify_image_file(cut)
    with pytest.raises(BadImageError, match="does not decode"):
        verify_image_file(junk)


def test_images_of_and_summarize():
    records = load_coco_persons(MM / "coco" / "test_coco.json", MM / "coco")
    pairs = images_of(records)
    assert [i for i, _ in pairs] == list(dict.fromkeys(r.image_id for r in records))
    assert summarize(records[:0]) == {"images": 0, "persons": 0, "labelled_keypoints": 0}
