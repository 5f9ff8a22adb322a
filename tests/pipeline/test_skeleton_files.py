"""A skeleton is data: built-in by name, or a YAML/JSON file; a data set must match it by name."""

from __future__ import annotations

import json

import pytest

from pipeline.data.coco import AnnotationError, load_coco_persons, resolve_skeleton
from pipeline.data.skeletons import (
    COCO17,
    SkeletonError,
    get_skeleton,
    skeleton_from_dict,
    skeleton_reference,
)
from pipeline.evaluation.checkpoint_eval import skeleton_from_state

FIVE = {
    "name": "hand5",
    "joint_names": ["wrist", "thumb_a", "thumb_b", "index", "little"],
    "sigmas": [0.05, 0.03, 0.03, 0.02, 0.02],
    "flip_pairs": [["thumb_a", "thumb_b"]],
    "limbs": [["wrist", "index"], ["wrist", "little"]],
}


def test_a_skeleton_file_in_yaml_or_json(tmp_path):
    import yaml

    (tmp_path / "hand.yaml").write_text(yaml.safe_dump(FIVE))
    (tmp_path / "hand.json").write_text(json.dumps({k: v for k, v in FIVE.items() if k != "name"}))
    a, b = get_skeleton(tmp_path / "hand.yaml"), get_skeleton(str(tmp_path / "hand.json"))
    assert a.name == "hand5" and b.name == "hand"  # the file's stem when it names none
    for sk in (a, b):
        assert sk.num_joints == 5 and sk.flip_indices == (0, 2, 1, 3, 4)
        assert sk.edge_indices == ((0, 3), (0, 4))
        assert list(sk.sigmas_array) == FIVE["sigmas"]
    # a checkpoint keeps a file's skeleton as data (plain types), a built-in one by name
    assert skeleton_reference(COCO17) == "coco17"
    assert skeleton_from_state({"skeleton": skeleton_reference(a)}) == a
    assert get_skeleton("posetrack18").joint_names[1:3] == ("head_bottom", "head_top")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sigmas": [0.1, 0.1]}, "'sigmas'"),
        ({"flip_pairs": [["wrist", "elbow"]]}, "'flip_pairs': unknown joint 'elbow'"),
        ({"joint_names": "wrist"}, "'joint_names'"),
        ({"flip_pairs": [["thumb_a", "thumb_b"], ["thumb_b", "index"]]}, "flip pair"),
    ],
)
def test_a_bad_skeleton_file_names_file_and_field(tmp_path, change, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**FIVE, **change}))
    with pytest.raises(SkeletonError, match="bad.json") as err:
        get_skeleton(path)
    assert field in str(err.value)


def test_joint_names_must_match_the_chosen_skeleton(tmp_path, synthetic_data):
    ann = json.loads(synthetic_data["val_ann"].read_text())
    category = ann["categories"][0]
    assert resolve_skeleton(category, "coco17", "a.json") is COCO17
    renamed = {**category, "keypoints": ["head_top", *category["keypoints"][1:]]}
    with pytest.raises(
        AnnotationError, match=r"a\.json: category 1: field 'keypoints'.*head_top.*coco17.*nose"
    ):
        resolve_skeleton(renamed, "coco17", "a.json")
    with pytest.raises(AnnotationError, match=r"match no built-in skeleton.*skeleton file"):
        resolve_skeleton(renamed, None, "a.json")  # no silent fallback by joint count
    # the same data set with its own skeleton file loads
    own = {**COCO17.to_dict(), "name": "own17", "joint_names": renamed["keypoints"], "limbs": []}
    (tmp_path / "own.json").write_text(json.dumps(own))
    ann["categories"] = [renamed]
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(ann))
    persons = load_coco_persons(path, synthetic_data["val_images"], skeleton=str(tmp_path / "own.json"))
    assert len(persons) > 0


def test_from_dict_round_trip():
    assert skeleton_from_dict(COCO17.to_dict()) == COCO17
