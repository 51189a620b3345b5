"""Reporting: metrics, uncertainty calibration, surface meshes, PNG figures and the atomic output folder."""
