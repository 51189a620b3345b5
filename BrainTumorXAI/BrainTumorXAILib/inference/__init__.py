"""Inference: sliding-window tiling, the MC Dropout predictor, its statistics and Grad-CAM 3D."""
