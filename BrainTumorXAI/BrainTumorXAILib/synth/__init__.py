"""Realistic synthetic BraTS-like cases: MNI152 anatomy, a layered glioma, four MR contrasts.

Real BraTS data cannot be reached or redistributed, so the tests, the demo
network and the shipped sample case all use these.  A case is built in four
steps, every random choice drawn from one seeded generator:

1. anatomy: the MNI152 grey/white-matter and brain templates that the nilearn
   wheel ships, resampled into the target grid through a small random head pose;
2. tumour: nested deformed blobs - necrosis (NCR) inside an irregular enhancing
   rim (ET), edema (ED) around them spreading preferentially along white matter -
   with optional mass effect pushing the anatomy outward;
3. contrasts: per-tissue intensities for T1, T1ce, T2 and FLAIR following BraTS
   appearance, tumour texture, blur, a multiplicative bias field, Rician noise;
4. files: the real BraTS layout (2021 or 2023 naming), int16 images, uint8 labels.

The content depends only on the seed, shape, spacing and ``rng_params``; the
``affine`` argument changes the header geometry alone.

Modules: ``params`` (the per-case random choices), ``anatomy`` (atlas, head pose, mass effect),
``phantom_tumour`` (the layered glioma), ``contrasts`` (the four MR images), ``cases`` (the public API:
cases in memory and on disk, the shipped sample case); ``python -m BrainTumorXAILib.synth``
rewrites the sample case.
"""

from .cases import (SAMPLE_CASE_ID, SAMPLE_CASE_SEED, SIZE_PRESETS, SynthCase, case_file_names, case_id_for,
                    default_affine, generate_case, generate_cases, synthesize, write_sample_case)
from .params import CaseParams

__all__ = ["SAMPLE_CASE_ID", "SAMPLE_CASE_SEED", "SIZE_PRESETS", "CaseParams", "SynthCase", "case_file_names",
           "case_id_for", "default_affine", "generate_case", "generate_cases", "synthesize", "write_sample_case"]
