"""Ray actors: thin hosts for the pipeline/ objects (one per network, one for pseudo labels)."""
