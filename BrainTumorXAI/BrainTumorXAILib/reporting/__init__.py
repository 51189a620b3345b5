"""Reporting: an analysis's outputs (volumes, figures, surface meshes, metrics), its trust report (uncertainty
quality, review regions, explanation checks, the checkpoint's trust card) and the atomic output folder."""
