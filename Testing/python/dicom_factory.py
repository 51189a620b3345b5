"""Write DICOM MR series from arrays on a NIfTI grid (no package ships a real multi-slice brain MR series).

Each slice k of ``volume`` (column i, row j, slice k on the RAS ``affine``) becomes one single-frame MR image at
the patient position the affine gives it; the affine's in-plane axes must be orthogonal (DICOM cannot shear).
"""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def rotation(degrees_x: float, degrees_y: float, degrees_z: float) -> np.ndarray:
    ax, ay, az = np.radians([degrees_x, degrees_y, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def grid_affine(rot: np.ndarray, spacing, origin, flip_slices: bool = False) -> np.ndarray:
    """RAS affine with orthogonal axes ``rot`` scaled by ``spacing``; ``flip_slices`` makes it left-handed."""
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag(spacing)
    if flip_slices:
        affine[:3, 2] *= -1
    affine[:3, 3] = origin
    return affine


def study_ids(patient_id: str = "PAT001") -> dict:
    return {"PatientID": patient_id, "PatientName": f"Test^{patient_id}", "StudyInstanceUID": generate_uid(),
            "FrameOfReferenceUID": generate_uid(), "StudyID": "1", "AccessionNumber": "A1"}


def write_series(volume, affine, folder, ids: dict, number: int, description: str, *, te=10.0, tr=500.0, ti=None,
                 agent: str | None = None, shuffle_names: bool = False, modality: str = "MR", image_type=None,
                 seed: int = 0) -> list[Path]:
    """Write ``volume`` (int16 values) as one series in ``folder``; returns the files in slice order k."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    volume = np.asarray(volume)
    lps = LPS @ np.asarray(affine, float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    row_cos, col_cos = lps[:3, 0] / spacing[0], lps[:3, 1] / spacing[1]
    series_uid = generate_uid()
    names = [f"IM{number:03d}_{k:04d}.dcm" for k in range(volume.shape[2])]
    if shuffle_names:  # names that say nothing about the order, and a shuffled listing
        rng = random.Random(seed)
        names = [f"{rng.getrandbits(48):012x}" for _ in names]
    files = []
    for k in range(volume.shape[2]):
        ds = _slice_dataset(ids, series_uid, number, description, modality, image_type)
        ds.InstanceNumber = volume.shape[2] - k if shuffle_names else k + 1
        ds.ImagePositionPatient = [f"{v:.6f}" for v in (lps @ [0, 0, k, 1])[:3]]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*row_cos, *col_cos)]
        ds.PixelSpacing = [f"{spacing[1]:.6f}", f"{spacing[0]:.6f}"]
        ds.SliceThickness = f"{spacing[2]:.6f}"
        ds.EchoTime, ds.RepetitionTime = te, tr
        ds.ScanningSequence = ["SE", "IR"] if ti is not None else ["SE"]
        ds.SequenceVariant, ds.ScanOptions, ds.MRAcquisitionType, ds.EchoTrainLength = "NONE", "", "2D", 1
        if ti is not None:
            ds.InversionTime = ti
        if agent:
            ds.ContrastBolusAgent = agent
        pixels = np.ascontiguousarray(volume[:, :, k].T.astype(np.int16))
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = pixels.tobytes()
        path = folder / names[k]
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return files


def _slice_dataset(ids, series_uid, number, description, modality, image_type) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    for key, value in ids.items():
        setattr(ds, key, value)
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    today = datetime.date(2026, 1, 2)
    ds.StudyDate = ds.SeriesDate = today.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = "120000"
    ds.ReferringPhysicianName = ""
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber = modality, series_uid, number
    ds.SeriesDescription = ds.ProtocolName = description
    ds.ImageType = image_type or ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.Manufacturer = "TestScanner"
    ds.BodyPartExamined, ds.PatientPosition, ds.PositionReferenceIndicator = "BRAIN", "HFS", ""
    return ds


def write_case_study(volumes: dict, affine, folder, ids=None, shuffle: str | None = None, **kwargs) -> dict:
    """The four sequences of a case as four series with realistic headers; ``shuffle`` names one whose files are
    renamed at random.  Returns {sequence: files in slice order}."""
    ids = ids or study_ids()
    headers = {"t1": dict(description="AX T1 SE", te=12.0, tr=550.0),
               "t1ce": dict(description="AX T1 SE POST", te=12.0, tr=550.0, agent="Gadobutrol"),
               "t2": dict(description="AX T2 TSE", te=100.0, tr=5000.0),
               "flair": dict(description="AX FLAIR", te=120.0, tr=9000.0, ti=2500.0)}
    out = {}
    for number, (seq, vol) in enumerate(volumes.items(), start=2):
        out[seq] = write_series(vol, affine, Path(folder) / f"S{number}", ids, number, shuffle_names=(seq == shuffle),
                                **headers[seq], **kwargs)
    return out


def read_back(path) -> Dataset:
    return pydicom.dcmread(path)


def oblique_copy(files: dict, degrees=(12.0, -8.0, 6.0), spacing=(0.94, 0.94, 4.0)) -> tuple[dict, np.ndarray]:
    """The sequences of a NIfTI case resampled (linear; a label map 'seg' nearest) onto one oblique thick-slice
    grid covering the same head, as int16 (float inputs scaled to 0..4000): {sequence: array}, RAS affine."""
    import nibabel as nib
    from scipy.ndimage import map_coordinates

    ref = nib.load(files["t1ce"])
    corners = np.array([[i, j, k, 1] for i in (0, ref.shape[0] - 1) for j in (0, ref.shape[1] - 1)
                        for k in (0, ref.shape[2] - 1)], float) @ ref.affine.T
    rot = rotation(*degrees)
    local = corners[:, :3] @ rot  # corner coordinates along the oblique axes
    low, high = local.min(axis=0), local.max(axis=0)
    shape = tuple(int(np.ceil((high[a] - low[a]) / spacing[a])) + 1 for a in range(3))
    affine = grid_affine(rot, spacing, rot @ low)
    index = np.indices(shape).reshape(3, -1)
    out = {}
    for seq, path in files.items():
        image = nib.load(path)
        world = affine @ np.r_[index, np.ones((1, index.shape[1]))]
        src = np.linalg.solve(image.affine, world)[:3]
        data = np.asarray(image.dataobj, dtype=np.float32)
        values = map_coordinates(data, src, order=0 if seq == "seg" else 1, mode="constant", cval=0.0).reshape(shape)
        scale = 1.0 if np.issubdtype(image.get_data_dtype(), np.integer) else 4000.0 / max(float(data.max()), 1e-6)
        out[seq] = np.clip(np.rint(values * scale), -32768, 32767).astype(np.int16)
    return out, affine


def _flipped(data: np.ndarray, affine: np.ndarray, axis: int):
    """The same image with one voxel axis reversed (another NIfTI layout of the same grid)."""
    flip = np.eye(4)
    flip[axis, axis], flip[axis, 3] = -1, data.shape[axis] - 1
    return np.flip(data, axis).copy(), affine @ flip


def write_results_on(t1ce, folder, rng) -> Path:
    """An analysis results folder (seg.nii.gz in the BraTS 2021 convention, prob_*.nii.gz, entropy.nii.gz,
    summary.json) with random values on the grid of the NIfTI image ``t1ce``, in other voxel layouts of that grid
    (axes flipped, the entropy's also permuted), as a writer may leave them."""
    import json

    import nibabel as nib

    from BrainTumorXAILib.io.labels import CLASS_NAMES, from_internal

    folder = Path(folder)
    folder.mkdir(parents=True)
    classes = rng.integers(0, 4, t1ce.shape).astype(np.uint8)
    outputs = {"seg": "seg.nii.gz", "probabilities": {}, "entropy": "entropy.nii.gz"}
    seg, seg_affine = _flipped(from_internal(classes, "brats2021"), t1ce.affine, axis=1)
    nib.save(nib.Nifti1Image(seg, seg_affine), folder / "seg.nii.gz")
    for name in (*CLASS_NAMES, "entropy"):
        values, affine = _flipped(rng.random(t1ce.shape, dtype=np.float32), t1ce.affine, axis=0)
        if name == "entropy":  # also another axis order: (row, slice, column)
            values, affine = values.transpose(1, 2, 0).copy(), affine[:, [1, 2, 0, 3]]
        file = "entropy.nii.gz" if name == "entropy" else f"prob_{name}.nii.gz"
        nib.save(nib.Nifti1Image(values, affine), folder / file)
        if name != "entropy":
            outputs["probabilities"][name] = file
    (folder / "summary.json").write_text(json.dumps({"outputs": outputs, "case": {"label_convention": "brats2021"}}))
    return folder


def random_study_with_results(root, shape, affine, seed: int):
    """A four-series study of random volumes (the T1ce's files shuffled), its converted T1ce, a results folder of
    random values on that grid and the DICOM objects written from it: (study, results folder, written)."""
    import nibabel as nib

    from BrainTumorXAILib.dicom.export import write_dicom_results
    from BrainTumorXAILib.dicom.study import convert_study, open_study

    root = Path(root)
    rng = np.random.default_rng(seed)
    volumes = {s: rng.integers(0, 900, shape).astype(np.int16) for s in ("t1", "t1ce", "t2", "flair")}
    write_case_study(volumes, affine, root / "in", shuffle="t1ce")
    study = open_study(root / "in")
    results = write_results_on(nib.load(convert_study(study, root)["t1ce"]), root / "results", rng)
    return study, results, write_dicom_results(results, study.reference, root / "dicom")
