"""Pure algorithm code for SSPCM: no Ray import anywhere in this package.

Packages by concern, each importing only its own layer and the layers below it
(``docs/architecture.md``; ``tests/test_layering.py`` checks it):

    0  config, cli           typed run configuration; logging set-up and ``--section.field`` overrides
    1  geometry, store       views and the heatmap codec; pseudo-label store, checkpoints, atomic files
    2  data, models          datasets, pools, skeletons, synthetic people; networks, optimizer, losses
    3  method                the schedule's steps, PCM, SSCO, pseudo labels and hard views
    4  evaluation, reporting COCO/PCKh evaluation, inference, label accuracy; drawings and figures
    5  run_setup, export     config -> data, networks and pseudo labeler; pseudo-label export
    6  trainer               the training loop
"""
