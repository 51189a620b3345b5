"""A small case plus an ``analyze``-layout results folder written directly with nibabel.

Follows the analyze output contract (file names, summary.json keys, every
volume on the reference grid with the same affine) without running the
network, so the Slicer Logic tests stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from BrainTumorXAILib.io.labels import CLASS_NAMES, SEQUENCES, TUMOUR_CLASSES, from_internal

SHAPE = (28, 32, 24)


def flipped_oblique_affine() -> np.ndarray:
    """Rotated about all axes, x mirrored (negative determinant), anisotropic, off-centre."""
    ax, ay, az = np.deg2rad([15.0, -10.0, 25.0])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rx @ ry @ rz @ np.diag([-2.5, 2.2, 3.0])
    a[:3, 3] = (40.0, -25.0, 12.0)
    return a


def _save(array, affine, path: Path, dtype) -> str:
    img = nib.Nifti1Image(np.asarray(array, dtype=dtype), affine)
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    nib.save(img, str(path))
    return path.name


def make_case_and_results(root, case_id: str = "BraTS2021_00099", convention: str = "brats2021",
                          affine=None, with_metrics: bool = True) -> tuple[Path, Path, dict]:
    """(case folder, results folder, arrays) for an ellipsoid brain with a layered tumour."""
    root = Path(root)
    affine = flipped_oblique_affine() if affine is None else affine
    case_dir, out = root / case_id, root / f"{case_id}_results"
    case_dir.mkdir(parents=True)
    (out / "surfaces").mkdir(parents=True)
    grid = np.indices(SHAPE, dtype=np.float64)
    centre = (np.asarray(SHAPE) - 1) / 2
    r_brain = np.sqrt((((grid - centre[:, None, None, None]) / (0.42 * np.asarray(SHAPE))[:, None, None, None]) ** 2).sum(0))
    brain = r_brain < 1.0
    tc = np.asarray([SHAPE[0] * 0.6, SHAPE[1] * 0.45, SHAPE[2] * 0.5])
    r_t = np.sqrt(((grid - tc[:, None, None, None]) ** 2).sum(0))
    classes = np.zeros(SHAPE, np.uint8)
    classes[(r_t < 7.5) & brain] = 2  # ED
    classes[(r_t < 5.0) & brain] = 3  # ET
    classes[(r_t < 3.0) & brain] = 1  # NCR
    suffix = {"brats2021": "_{}", "brats2023": "-{}"}[convention]
    names = {"brats2021": dict(zip(SEQUENCES, SEQUENCES)),
             "brats2023": {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}}[convention]
    rng = np.random.default_rng(0)
    images = {}
    for i, seq in enumerate(SEQUENCES):
        img = (brain * (100 + 20 * i) + classes * (30 + 10 * i) + rng.normal(0, 2, SHAPE)).astype(np.float32)
        images[seq] = img
        _save(img, affine, case_dir / f"{case_id}{suffix.format(names[seq])}.nii.gz", np.float32)
    _save(from_internal(classes, convention), affine, case_dir / f"{case_id}{suffix.format('seg')}.nii.gz", np.uint8)

    onehot = np.stack([(classes == c) for c in range(4)]).astype(np.float32)
    probs = 0.85 * onehot + 0.05
    probs /= probs.sum(0)
    outputs: dict = {"seg": _save(from_internal(classes, convention), affine, out / "seg.nii.gz", np.uint8),
                     "probabilities": {}, "mc_variance": {}, "gradcam": {}, "surfaces": {}, "figures": []}
    arrays = {"classes": classes, "brain": brain, "images": images, "probabilities": probs}
    for c, name in enumerate(CLASS_NAMES):
        outputs["probabilities"][name] = _save(probs[c], affine, out / f"prob_{name}.nii.gz", np.float32)
        var = (0.02 * (c + 1) * probs[c] * (1 - probs[c])).astype(np.float32)
        outputs["mc_variance"][name] = _save(var, affine, out / f"mc_variance_{name}.nii.gz", np.float32)
    entropy = -(probs * np.log(probs)).sum(0)
    outputs["entropy"] = _save(entropy, affine, out / "entropy.nii.gz", np.float32)
    outputs["mutual_information"] = _save(0.1 * entropy, affine, out / "mutual_information.nii.gz", np.float32)
    for name in TUMOUR_CLASSES:
        cam = np.clip(1.0 - r_t / 10.0, 0, 1).astype(np.float32)
        outputs["gradcam"][name] = _save(cam, affine, out / f"gradcam_{name}.nii.gz", np.float32)

    # Sequence evidence of a model reading T1ce and FLAIR only (as the default does).
    evidence = {"method": "occlusion", "what_it_is": "an attribution of the network's output, not proof of tumour",
                "sequences": {s: {"read": s in ("t1ce", "flair"), "acquired": True} for s in SEQUENCES},
                "classes": {n: {"predicted_voxels": int((classes == c + 1).sum()),
                                "share": {"t1": 0.0, "t1ce": 0.25 * (c + 1), "t2": 0.0, "flair": 1 - 0.25 * (c + 1)},
                                "drop": None} for c, n in enumerate(TUMOUR_CLASSES)}}
    outputs["sequence_evidence"] = {"volumes": {n: {s: _save(np.clip(1.0 - r_t / (8.0 + i), 0, 1).astype(np.float32),
                                                          affine, out / f"evidence_{n}_{s}.nii.gz", np.float32)
                                                    for i, s in enumerate(("t1ce", "flair"))}
                                                for n in TUMOUR_CLASSES}, "figure": None}

    from BrainTumorXAILib.reporting.surfaces import case_surfaces, write_case_surfaces

    written = write_case_surfaces(case_surfaces(classes, brain, affine), out / "surfaces")
    outputs["surfaces"] = {n: {fmt: str(Path(p).relative_to(out)) for fmt, p in files.items()}
                           for n, files in written.items()}
    voxel_cm3 = abs(np.linalg.det(affine[:3, :3])) / 1000.0
    vol = {n: float((classes == c + 1).sum() * voxel_cm3) for c, n in enumerate(TUMOUR_CLASSES)}
    regions = {"WT": vol["NCR"] + vol["ED"] + vol["ET"], "TC": vol["NCR"] + vol["ET"], "ET": vol["ET"]}
    metrics = None
    if with_metrics:
        metrics = {"classes": {n: {"dice": 0.9 - 0.1 * i, "iou": 0.8, "hd95": 2.0 + i} for i, n in enumerate(TUMOUR_CLASSES)},
                   "regions": {n: {"dice": 0.95 - 0.05 * i, "iou": 0.9, "hd95": 1.5 + i, "sensitivity": 0.9,
                                   "specificity": 0.99, "precision": 0.92} for i, n in enumerate(("WT", "TC", "ET"))}}
    files = {seq: str(case_dir / f"{case_id}{suffix.format(names[seq])}.nii.gz") for seq in SEQUENCES}
    summary = {
        "case": {"id": case_id, "folder": str(case_dir), "naming": convention, "files": files,
                 "reference": "t1ce", "shape": list(SHAPE), "spacing": [2.5, 2.2, 3.0], "affine": affine.tolist(),
                 "label_convention": convention, "has_label": True},
        "model": {"weights": "none"}, "device": "cpu", "timings_s": {"total": 0.0},
        "volumes_cm3": {"classes": vol, "regions": regions}, "metrics": metrics, "uncertainty_quality": None,
        "outputs": outputs, "sequence_evidence": evidence,
        # NCR's map lies mostly away from its call; ET was not explained (no entry)
        "gradcam_locality": {"NCR": {"in_region": 0.1, "in_region_margin": 0.25},
                             "ED": {"in_region": 0.7, "in_region_margin": 0.9}},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return case_dir, out, arrays


def assert_segmentation_on_grid(seg_node, classes, affine) -> None:
    """Each segment's voxels sit exactly on the ``affine`` grid and match ``classes`` there
    (compared through the index map: readers may flip a left-handed grid or crop the extent)."""
    import vtk
    from vtk.util import numpy_support

    segmentation = seg_node.GetSegmentation()
    for index, name in enumerate(TUMOUR_CLASSES, start=1):
        segment_id = segmentation.GetSegmentIdBySegmentName(name)
        assert segment_id, name
        image = seg_node.GetBinaryLabelmapInternalRepresentation(segment_id)
        m = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(m)
        t = np.linalg.inv(affine) @ np.array([[m.GetElement(r, c) for c in range(4)] for r in range(4)])
        np.testing.assert_allclose(t, np.round(t), atol=1e-4, err_msg=f"{name}: not on the reference grid")
        t = np.round(t).astype(int)
        ext = image.GetExtent()
        dims = [ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1]
        if min(dims) <= 0:
            assert not (classes == index).any(), f"{name}: empty after reload"
            continue
        data = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(dims[::-1]).transpose(2, 1, 0)
        mask = data == segmentation.GetSegment(segment_id).GetLabelValue()
        idx = np.indices(dims).reshape(3, -1) + np.array(ext[::2])[:, None]
        src = t[:3, :3] @ idx + t[:3, 3:4]
        inside = np.all((src >= 0) & (src < np.array(classes.shape)[:, None]), axis=0)
        flat = mask.reshape(-1)
        assert not flat[~inside].any(), f"{name}: voxels outside the reference grid"
        expected = classes[src[0, inside], src[1, inside], src[2, inside]] == index
        np.testing.assert_array_equal(flat[inside], expected, err_msg=name)
        assert flat.sum() == (classes == index).sum(), name


def assert_same_world_array(node, array, affine, atol: float = 1e-4) -> None:
    """``node`` holds ``array`` (nibabel (i, j, k) order, on ``affine``) at the same world positions.

    Slicer's readers turn a left-handed voxel grid into the equivalent right-handed one (k reversed),
    so the node's grid may differ from the file's by an index flip; compared through the index map.
    """
    from BrainTumorXAILib.slicer_bridge.nodes import niftiArrayFromVolume

    data, m = niftiArrayFromVolume(node)
    t = np.linalg.inv(np.asarray(affine, float)) @ m  # node index -> file index
    np.testing.assert_allclose(t, np.round(t), atol=atol, err_msg=f"{node.GetName()}: not on the file's grid")
    t = np.round(t).astype(int)
    assert data.shape == tuple(np.abs(t[:3, :3]) @ np.asarray(array.shape)), (data.shape, array.shape)
    idx = np.indices(data.shape).reshape(3, -1)
    src = t[:3, :3] @ idx + t[:3, 3:4]
    np.testing.assert_array_equal(data.reshape(-1), np.asarray(array)[src[0], src[1], src[2]], err_msg=node.GetName())
