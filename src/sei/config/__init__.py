"""Experiment configuration: the typed schema, the recipe of defaults, resolution, and a run folder's layout."""
