"""Inference: the case-level stage (``case_prediction``), sliding-window tiling, the MC Dropout predictor and its
statistics, Grad-CAM 3D, test-time flips, checkpoint ensembles, post-processing and compute precision."""
