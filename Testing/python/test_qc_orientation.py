"""The registration QC figure shows every panel the same way round: anterior up, the patient's right on the image's
left, whatever the header (native scans and the atlas store their axes differently).  It draws through the
figures' own reorientation (``to_ras``) and axial view, checked here on the headers it meets."""

from __future__ import annotations

import numpy as np
import pytest

from BrainTumorXAILib.preprocess.qc import _axial
from BrainTumorXAILib.reporting.figures import to_ras

SHAPE = (20, 24, 16)


def _headers():
    ras = np.eye(4)
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # BraTS / SRI24 style
    # sagittal acquisition: i runs head-to-foot, j anterior-to-posterior, k right-to-left
    sagittal = np.array([[0, 0, -1, 0], [0, -1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]], float)
    return {"RAS": ras, "LPS": lps, "sagittal": sagittal}


def _view(volume, affine):
    """Every axial slice of the QC figure's view, stacked (row, column, slice foot to head)."""
    ras = to_ras(volume, affine)[0]
    return np.stack([_axial(ras, k) for k in range(ras.shape[2])], axis=-1)


@pytest.mark.parametrize("name", list(_headers()))
def test_a_right_anterior_superior_marker_lands_top_left_on_an_upper_slice(name):
    affine = _headers()[name]
    volume = np.zeros(SHAPE, np.float32)
    # the voxel nearest the patient's right, front and top corner of the box, found in physical space
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij"), -1).reshape(-1, 3)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    corner = ijk[np.argmax(xyz[:, 0] + xyz[:, 1] + xyz[:, 2])]  # largest R + A + S
    volume[tuple(corner)] = 1.0
    view = _view(volume, affine)
    row, col, k = np.argwhere(view == 1.0)[0]
    assert (row, col) == (0, 0)  # anterior at the top, patient's right at the image's left
    assert k == view.shape[2] - 1  # the most superior slice is the last one


def test_every_header_gives_the_same_view_of_the_same_anatomy():
    """One anatomy stored three ways (axis order and signs) gives the same radiological slices."""
    rng = np.random.default_rng(0)
    anatomy = rng.random((10, 12, 8)).astype(np.float32)  # stored LPS: i towards the left, j towards the back
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])
    reference = _view(anatomy, lps)
    ras_array = anatomy[::-1, ::-1, :]  # the same voxels stored RAS
    ras = np.eye(4)
    ras[:3, 3] = [-9.0, -11.0, 0.0]
    np.testing.assert_array_equal(_view(ras_array, ras), reference)
    sag_array = ras_array.transpose(2, 1, 0)[::-1]  # i: S->I, j: P->A (k of ras_array first)
    sag = np.zeros((4, 4))
    sag[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    sag[3, 3] = 1.0
    np.testing.assert_array_equal(_view(sag_array, sag), reference)
