"""Training, run from the repository root (not installed): ``python -m training.train --config
training/recipes/default.json``, evaluation, calibration, export and the on-the-fly data generator."""
