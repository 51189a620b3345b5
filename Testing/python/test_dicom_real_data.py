"""A real case as a DICOM study (oblique thick slices, renamed and shuffled T1ce files): the series read back voxel
for voxel onto the same grid, assigned right, and its silver labels written as a DICOM SEG lie on the source
slices.  (The analysis of such a study against the same case as NIfTI: Testing/dicom_real_case.py.)"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from BrainTumorXAILib.dicom.seg_writer import write_segmentation
from BrainTumorXAILib.dicom.frames import frames_for_source, volume_on_source
from BrainTumorXAILib.dicom.study import convert_study, open_study
from BrainTumorXAILib.io.case_files import find_case_files
from BrainTumorXAILib.io.labels import to_internal

sys.path.insert(0, str(Path(__file__).parent))
from dicom_checks import seg_mismatches  # noqa: E402
from dicom_factory import oblique_copy, write_case_study  # noqa: E402
from realdata import REALDATA, needs_realdata  # noqa: E402


@needs_realdata
def test_real_case_as_dicom_study(tmp_path):
    _, files = find_case_files(REALDATA / "TCGA-FG-6692")
    vols, affine = oblique_copy(files, degrees=(-10.0, 14.0, 4.0), spacing=(1.2, 1.2, 5.5))
    labels = vols.pop("seg").astype(np.uint8)  # silver labels {0, 1, 2, 4}, carried by nearest neighbour
    written = write_case_study(vols, affine, tmp_path / "in", shuffle="t1ce")
    study = open_study(tmp_path / "in")
    assert {s: series.number for s, series in study.chosen.items()} == {"t1": "2", "t1ce": "3", "t2": "4",
                                                                          "flair": "5"}
    converted = convert_study(study, tmp_path)
    for seq, path in converted.items():
        image = nib.load(path)
        assert np.allclose(image.affine, affine, atol=1e-4)  # right-handed oblique grid: the same voxel order
        assert np.array_equal(np.asarray(image.dataobj), vols[seq])
    seg_path = tmp_path / "seg.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), seg_path)
    frames = frames_for_source(to_internal(volume_on_source(seg_path, study.reference), "brats2021"),
                               study.reference)
    assert np.count_nonzero(frames) > 3_000  # the tumour (about 30 mL, 7.9 mm3 voxels) is in the frames
    write_segmentation(frames, study.reference, tmp_path / "seg.dcm")
    internal = nib.Nifti1Image(to_internal(labels, "brats2021"), affine)
    assert seg_mismatches(tmp_path / "seg.dcm", written["t1ce"], internal) == 0
