"""The synthetic people generator: determinism, COCO structure, visibility from ownership, variety."""

from dataclasses import replace

import cv2
import numpy as np
import pytest
from pycocotools.coco import COCO

from pipeline.data.skeletons import COCO17
from pipeline.data.synthetic.dataset import generate_dataset, make_image
from pipeline.data.synthetic.figure import LEFT_SHADE, Figure, figure_keypoints
from pipeline.data.synthetic.render import Occluder, render_scene
from pipeline.data.synthetic.scene import render_image

SIZE = (320, 256)
J = {n: i for i, n in enumerate(COCO17.joint_names)}
GREY = np.full((SIZE[1], SIZE[0], 3), 128.0, dtype=np.float32)


def standing(**kw) -> Figure:
    """An upright frontal figure, arms hanging beside the body, in the middle of the image."""
    return replace(Figure(root_img=(160.0, 140.0), height_px=200.0, arms=((0.35, 0.1), (0.35, 0.1))), **kw)


def scene(items):
    return render_scene(np.random.default_rng(0), SIZE, items, background=GREY, photometric=False)


def test_same_seed_same_bytes_and_other_seed_differs(tmp_path):
    a = generate_dataset(tmp_path / "a", seed=7, num_images=3)
    b = generate_dataset(tmp_path / "b", seed=7, num_images=3)
    generate_dataset(tmp_path / "c", seed=8, num_images=3)
    assert a == b
    assert (tmp_path / "a/annotations.json").read_bytes() == (tmp_path / "b/annotations.json").read_bytes()
    for entry in a["images"]:
        name = entry["file_name"]
        assert (tmp_path / "a/images" / name).read_bytes() == (tmp_path / "b/images" / name).read_bytes()
        assert (tmp_path / "a/images" / name).read_bytes() != (tmp_path / "c/images" / name).read_bytes()
    assert not list(tmp_path.glob("a/.*tmp*")), "temporary json left behind"


def test_image_depends_only_on_seed_and_id():
    assert make_image(3, 12) == make_image(3, 12)
    assert make_image(3, 12)[0] != make_image(3, 13)[0]
    assert make_image(3, 12)[0] != make_image(4, 12)[0]


def test_coco_structure_loads_with_pycocotools(tmp_path):
    generate_dataset(tmp_path, seed=1, num_images=25, start_id=500, image_size=(200, 160), max_people=4)
    coco = COCO(str(tmp_path / "annotations.json"))
    assert sorted(coco.getImgIds()) == list(range(500, 525))
    (cat,) = coco.dataset["categories"]
    assert cat["id"] == 1 and cat["name"] == "person" and cat["keypoints"] == list(COCO17.joint_names)
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in COCO17.edge_indices]
    anns = coco.dataset["annotations"]
    assert len(anns) >= 25 and len({a["id"] for a in anns}) == len(anns)
    for img in coco.dataset["images"]:
        assert (img["width"], img["height"]) == (200, 160)
        assert cv2.imread(str(tmp_path / "images" / img["file_name"])).shape == (160, 200, 3)
    for a in anns:
        assert a["category_id"] == 1 and a["iscrowd"] == 0 and a["image_id"] in coco.imgs
        k = np.asarray(a["keypoints"], dtype=np.float64).reshape(17, 3)
        assert len(a["keypoints"]) == 51 and set(np.unique(k[:, 2])) <= {0, 1, 2}
        assert np.all(k[k[:, 2] == 0, :2] == 0)
        lab = k[k[:, 2] > 0]
        assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= 199) & (lab[:, 1] >= 0) & (lab[:, 1] <= 159))
        assert a["num_keypoints"] == len(lab) >= 3
        x, y, w, h = a["bbox"]
        assert x >= 0 and y >= 0 and x + w <= 200 and y + h <= 160 and min(w, h) >= 8
        assert 0 < a["area"] <= w * h
        vis = k[k[:, 2] == 2]  # a visible joint's pixel belongs to the person: inside its box
        assert np.all(
            (vis[:, 0] >= x - 0.5) & (vis[:, 0] <= x + w) & (vis[:, 1] >= y - 0.5) & (vis[:, 1] <= y + h)
        )


def test_unoccluded_frontal_figure_is_fully_visible():
    _, (p,) = scene([standing()])
    assert np.all(p.kpts_img[:, 2] == 2)
    np.testing.assert_allclose(p.kpts_img[:, :2], figure_keypoints(standing()), atol=0.01)


def test_occluder_in_front_hides_a_joint_but_not_behind():
    fig = standing()
    wrist = figure_keypoints(fig)[J["left_wrist"]]
    box = Occluder("box", (float(wrist[0]), float(wrist[1])), (14.0, 14.0), colour=(0.0, 200.0, 0.0))
    _, (front,) = scene([fig, box])
    _, (behind,) = scene([box, fig])
    assert front.kpts_img[J["left_wrist"], 2] == 1
    assert np.all(np.delete(front.kpts_img[:, 2], J["left_wrist"]) == 2)
    assert np.all(behind.kpts_img[:, 2] == 2)
    assert front.area < behind.area


def test_person_in_front_occludes_person_behind():
    back = standing(height_px=120.0, root_img=(120.0, 150.0))
    elbow = figure_keypoints(back)[J["right_elbow"]]
    front = standing(height_px=200.0)
    shift = elbow - (figure_keypoints(front)[J["left_shoulder"]] + figure_keypoints(front)[J["left_hip"]]) / 2
    front = replace(front, root_img=(160.0 + float(shift[0]), 140.0 + float(shift[1])))
    _, (p_back, p_front) = scene([back, front])
    assert p_back.kpts_img[J["right_elbow"], 2] == 1
    assert p_back.kpts_img[J["nose"], 2] == 2  # the back person's face is left of the front torso
    assert np.all(p_front.kpts_img[p_front.kpts_img[:, 2] > 0, 2] == 2)
    _, (alone,) = scene([back])
    assert alone.kpts_img[J["right_elbow"], 2] == 2


def test_joints_outside_the_image_get_v0_and_zeros():
    fig = standing(root_img=(10.0, 140.0))
    kp = figure_keypoints(fig)
    outside = (kp[:, 0] < 0) | (kp[:, 0] > SIZE[0] - 1) | (kp[:, 1] < 0) | (kp[:, 1] > SIZE[1] - 1)
    assert 0 < outside.sum() < 17
    _, (p,) = scene([fig])
    np.testing.assert_array_equal(p.kpts_img[:, 2] == 0, outside)
    assert np.all(p.kpts_img[outside, :2] == 0)
    assert p.bbox_xywh[0] == 0  # the visible box is clipped at the border


def test_figure_facing_away_hides_eyes_and_nose_but_shows_ears():
    _, (p,) = scene([standing(facing_camera=False)])
    v = p.kpts_img[:, 2]
    assert v[J["nose"]] == v[J["left_eye"]] == v[J["right_eye"]] == 1
    assert v[J["left_ear"]] == v[J["right_ear"]] == 2
    # Facing away, the figure's left is on the image left.
    assert p.kpts_img[J["left_shoulder"], 0] < p.kpts_img[J["right_shoulder"], 0]


def test_arm_in_front_of_torso_self_occludes_hip():
    fig = standing(arms=((-0.11, 0.0), (0.35, 0.1)), arms_in_front=(True, False))
    kp = figure_keypoints(fig)
    assert np.linalg.norm(kp[J["left_wrist"]] - kp[J["left_hip"]]) < 4  # the wrist lies on the hip
    _, (p,) = scene([fig])
    assert p.kpts_img[J["left_hip"], 2] == 1 and p.kpts_img[J["left_wrist"], 2] == 2
    _, (p2,) = scene([replace(fig, arms_in_front=(False, False))])
    assert p2.kpts_img[J["left_hip"], 2] == 2 and p2.kpts_img[J["left_wrist"], 2] == 1


@pytest.mark.parametrize(("facing", "shade"), [(True, LEFT_SHADE), (False, LEFT_SHADE), (True, 0.3)])
def test_left_limbs_are_darker(facing, shade):
    fig = standing(facing_camera=facing)
    img, _ = render_scene(
        np.random.default_rng(0), SIZE, [fig], background=GREY, photometric=False, left_shade=shade
    )
    kp = figure_keypoints(fig)

    def mean_colour(a: str, b: str) -> np.ndarray:
        x, y = np.round((kp[J[a]] + kp[J[b]]) / 2).astype(int)
        return img[y - 1 : y + 2, x - 1 : x + 2].reshape(-1, 3).astype(np.float64).mean(0)

    for upper, lower in (("knee", "ankle"), ("shoulder", "elbow")):
        left, right = (
            mean_colour(f"left_{upper}", f"left_{lower}"),
            mean_colour(f"right_{upper}", f"right_{lower}"),
        )
        assert left.sum() < 0.8 * right.sum()
        np.testing.assert_allclose(left.sum() / right.sum(), shade, atol=0.12)


def test_left_shade_changes_colours_not_labels(tmp_path):
    """A stronger left/right cue draws the same scene: same labels, other pixels, still seeded."""
    default, stronger = make_image(3, 12), make_image(3, 12, left_shade=0.3)
    assert stronger[1:] == default[1:] and stronger[0] != default[0]
    assert make_image(3, 12, left_shade=0.3) == stronger
    with pytest.raises(ValueError, match="left_shade must be in"):
        generate_dataset(tmp_path / "bad", seed=0, num_images=1, left_shade=0.0)
    assert not (tmp_path / "bad").exists()


def test_variety_over_100_images():
    n_people, persons = [], []
    for i in range(100):
        img, ps = render_image(np.random.default_rng([11, i]), SIZE, max_people=3)
        assert img.shape == (SIZE[1], SIZE[0], 3) and img.dtype == np.uint8
        n_people.append(len(ps))
        persons += ps
    v = np.stack([p.kpts_img[:, 2] for p in persons])
    heights = np.array([p.bbox_xywh[3] for p in persons])
    assert np.mean(np.array(n_people) >= 2) > 0.3
    assert 0.1 < np.mean((v == 0).any(1)) < 0.6  # truncated persons
    labelled = v[v > 0]
    assert 0.05 < np.mean(labelled == 1) < 0.45  # occluded among labelled joints
    assert np.percentile(heights, 90) > 2.5 * np.percentile(heights, 10)
    assert heights.max() > 0.75 * SIZE[1] and heights.min() < 0.3 * SIZE[1]
