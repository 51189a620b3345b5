"""A sequence file that is there but cannot be used (a dangling symbolic link, a file that cannot be read) is an
error naming it, optional sequence or not: never a case analysed as if the sequence were simply absent."""

from __future__ import annotations

import os
import shutil

import pytest
from BrainTumorXAILib.cli import main
from BrainTumorXAILib.errors import CaseError
from BrainTumorXAILib.io.case_io import load_case


@pytest.fixture
def case_copy(small_case, tmp_path):
    folder = tmp_path / small_case.name
    shutil.copytree(small_case, folder)
    return folder


def _file(folder, suffix):
    (path,) = folder.glob(f"*_{suffix}.nii.gz")
    return path


@pytest.mark.parametrize("sequence", ["t1", "flair"])  # optional for the model, and required
def test_a_dangling_link_is_an_error_naming_it(case_copy, sequence):
    path = _file(case_copy, sequence)
    path.unlink()
    path.symlink_to(case_copy / "gone" / path.name)
    with pytest.raises(CaseError) as info:
        load_case(case_copy, optional=("t1", "t2"))
    assert info.value.path == path and "dangling symbolic link" in str(info.value)


def test_the_command_line_says_so_in_one_line(case_copy, capsys):
    path = _file(case_copy, "t1")
    path.unlink()
    path.symlink_to(case_copy / "gone.nii.gz")
    assert main(["info", str(case_copy)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(path) in err[0] and "dangling" in err[0]


def test_an_explicit_mapping_to_a_dangling_link_names_it(case_copy):
    link = case_copy / "t1_link.nii.gz"
    link.symlink_to(case_copy / "gone.nii.gz")
    mapping = {s: _file(case_copy, s) for s in ("t1ce", "t2", "flair")}
    with pytest.raises(CaseError) as info:
        load_case(case_copy, mapping={**mapping, "t1": link}, optional=("t1",))
    assert info.value.path == link and "dangling symbolic link" in str(info.value)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_an_error_naming_it(case_copy):
    path = _file(case_copy, "t2")
    path.chmod(0)
    try:
        with pytest.raises(CaseError) as info:
            load_case(case_copy, optional=("t1", "t2"))
    finally:
        path.chmod(0o644)
    assert info.value.path == path and "cannot be read" in str(info.value)
