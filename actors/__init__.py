"""Ray actors and the Ray driver: thin hosts for ``pipeline/`` objects.

One actor per network (``network_actor``), one for PCM + SSCO + hard views
(``pseudo_label_actor``), the executor that turns the schedule's calls into actor calls
(``executor``), placement (``placement``), the Ray Data batch stream (``data_stream``), the
export's Ray Data worker (``export_labeler``), and ``driver``, which puts them together
(``train_ray``). May import ``pipeline/``; never ``jobs/`` or ``bench/``.
"""
