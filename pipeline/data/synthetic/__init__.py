"""Synthetic people: articulated 2D figures with COCO-17 keypoints on cluttered backgrounds.

The embedded default data set for the demo, the benchmark and the tests, in modules from the
person up:

- ``figure``: one articulated person (kinematics, appearance, the left/right shading cue) and
  how one is sampled;
- ``render``: figures and occluders drawn into an ownership map over a cluttered background,
  photometric noise, visibility and boxes from what is visible;
- ``scene``: a random scene (figures + occluders in depth order) and one random image;
- ``dataset``: COCO-format sets on disk, deterministic by (seed, image id);
- ``benchmark_sets``: the synthetic benchmark's labeled set, pool and validation set of a seed.
"""
