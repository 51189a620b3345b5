"""The ``braintumorxai`` command line: synth, info, analyze, view.

Each subcommand imports what it needs when it runs: ``view`` serves pages without torch (its analyses run in a
child process), and ``analyze --scene`` and ``view`` need the optional slicer/web extras, which the other
subcommands must run without.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from functools import partial
from pathlib import Path

from tqdm import tqdm

from .console import AnalysisProgress, print_analysis
from .errors import BrainTumorXAIError, exit_code
from .inference.explanation_options import (DEFAULT_EVIDENCE_METHOD, DEFAULT_GRADCAM_METHOD, EVIDENCE_METHODS,
                                            GRADCAM_METHODS)
from .inference.precision import PRECISIONS
from .preprocess.options import ATLASES, BRAIN_EXTRACTIONS, MODES, ClinicalOptions
from .runtime import Cancelled, JobControl, json_progress_printer

DEVICES = ("auto", "cpu", "cuda")
_DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N"


def _device_arg(text: str) -> str:
    """argparse type for --device: auto, cpu, cuda or cuda:N, checked before any work starts."""
    name = text.strip().lower()
    if name in DEVICES or re.fullmatch(r"cuda:\d+", name):
        return name
    raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from auto, cpu, cuda, cuda:N)")


def _cmd_synth(args) -> int:
    from .synth import SIZE_PRESETS, generate_cases

    shape, spacing = SIZE_PRESETS[args.size]
    if args.shape:
        shape = tuple(args.shape)
    if args.spacing is not None:
        if not args.spacing > 0:
            raise BrainTumorXAIError(f"--spacing must be a positive voxel size in mm, got {args.spacing:g}")
        spacing = args.spacing
    bar = _progress_bar(args.cases, "synth", args.quiet)
    paths = generate_cases(args.out, args.cases, args.seed, naming=args.naming, shape=shape, spacing=spacing,
                           progress=(lambda i, n: bar.update(1)) if bar else None)
    if bar:
        bar.close()
    for p in paths:
        print(p)
    return 0


def _cmd_info(args) -> int:
    from .dicom.scan import looks_like_dicom_folder
    from .io.case_io import load_case

    if looks_like_dicom_folder(args.case_dir):
        from .dicom.study import describe_folder

        table, problem = describe_folder(args.case_dir, _sequence_choices(args))
        print(table)
        if problem is not None:
            raise problem
        return 0

    case = load_case(args.case_dir, optional=("t1", "t2"))  # what a model can do without is the model's to say
    print(json.dumps(case.summary(), indent=2))
    return 0


def _flips_arg(text: str) -> int:
    from .inference.tta import FLIPS

    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= len(FLIPS):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of flips from 1 to {len(FLIPS)}")
    return n


def _cmd_analyze(args) -> int:
    from .analyze import STAGE_WEIGHTS, AnalysisOptions

    if args.scene is not None:
        _check_scene_target(args.scene, args.overwrite)
    weights = args.weights or [None]  # --weights repeated: a checkpoint ensemble, the first one explains
    options = AnalysisOptions(
        weights=weights[0], ensemble=tuple(weights[1:]), tta=args.tta, min_et_ml=args.min_et_ml,
        enhancement_check=not args.no_enhancement_check,
        device=args.device, precision=args.precision, mc_samples=args.mc_samples, mc_batch=args.mc_batch,
        gradcam=args.gradcam, gradcam_layer=args.gradcam_layer, gradcam_method=args.gradcam_method,
        sequence_evidence=args.sequence_evidence, seed=args.seed, overlap=args.overlap,
        surfaces=not args.no_surfaces, figures=not args.no_figures, overwrite=args.overwrite,
        explanation_checks=args.explanation_checks, clinical=_clinical_options(args),
    )
    analyse = _dicom_or_nifti(args, options)  # a refused option fails before the progress bar appears
    bar = None
    if args.progress_json:
        callback = json_progress_printer()
    elif not args.quiet:
        callback = bar = AnalysisProgress()
    else:
        callback = None
    control = JobControl(callback, stage_weights=STAGE_WEIGHTS)
    try:
        summary = analyse(args.case_dir, args.out, options, control)
        if args.scene is not None:
            from .slicer_bridge.mrb_from_results import write_scene_from_results

            write_scene_from_results(args.out, args.scene)
            summary["scene"] = str(args.scene)
    finally:
        if bar:
            bar.close()
    for warning in (summary.get("preprocessing_clinical") or {}).get("warnings", ()):
        print(f"braintumorxai analyze: warning: {warning}", file=sys.stderr)
    if not args.quiet and not args.progress_json:
        print_analysis(summary, args.out)
    return 0


def _check_scene_target(scene: Path, overwrite: bool) -> None:
    """``--scene``: fail before any heavy work when slicer-core is missing or the file would be replaced."""
    try:
        import slicer  # noqa: F401  (the slicer-core wheel: an optional extra)
    except ImportError as exc:
        raise BrainTumorXAIError("--scene needs the slicer-core wheel: pip install 'braintumorxai[slicer]'") from exc
    if Path(scene).exists() and not overwrite:
        raise BrainTumorXAIError(f"{scene}: scene file exists (use --overwrite to replace it)")


def _sequence_choices(args) -> dict:
    return {seq: getattr(args, seq, None) for seq in ("t1", "t1ce", "t2", "flair") if getattr(args, seq, None)}


def _dicom_or_nifti(args, options):
    """``analyze_dicom`` for a DICOM folder (with the series choices and DICOM outputs), else ``analyze_case``."""
    from .analyze import analyze_case
    from .dicom.scan import looks_like_dicom_folder

    if looks_like_dicom_folder(args.case_dir):
        from .dicom.run import analyze_dicom

        dicom_out = False if args.no_dicom_out else args.dicom_out
        return partial(analyze_dicom, overrides=_sequence_choices(args), dicom_out=dicom_out, maps=args.dicom_maps)
    if args.dicom_out is not None:
        raise BrainTumorXAIError(f"--dicom-out {args.dicom_out}: needs a DICOM input folder "
                                 "(the DICOM SEG references the source series; NIfTI input has none)")
    if _sequence_choices(args):
        options.mapping = _sequence_choices(args)
    return analyze_case


def _dicom_maps_arg(text: str) -> tuple[str, ...]:
    from .dicom.pmap_writer import MAP_KINDS

    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in MAP_KINDS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown map {', '.join(unknown)} (choose from {', '.join(MAP_KINDS)})")
    return kinds


def _add_sequence_choices(p, analyze: bool) -> None:
    for seq, title in (("t1", "T1"), ("t1ce", "T1ce"), ("t2", "T2"), ("flair", "FLAIR")):
        p.add_argument(f"--{seq}", metavar="SERIES" if not analyze else "FILE_OR_SERIES",
                       help=f"the {title} series of a DICOM folder (series number or UID)"
                            + (f"; for NIfTI input, the {title} file" if analyze else ""))


def _clinical_options(args) -> ClinicalOptions:
    return ClinicalOptions(mode=args.preprocess, brain_extraction=args.brain_extraction, brain_mask=args.brain_mask,
                           atlas=args.atlas, atlas_outputs=args.atlas_outputs, n4=args.n4)


def _cmd_view(args) -> int:
    from .web.launcher import serve_sessions

    if args.data_dir is not None and not args.data_dir.is_dir():
        raise BrainTumorXAIError(f"{args.data_dir}: data folder does not exist or is not a folder")
    viewer = [str(args.data_dir.resolve())] if args.data_dir else []
    for flag, value in (("--results", args.results), ("--weights", args.weights), ("--device", args.device),
                        ("--mc-samples", args.mc_samples), ("--gradcam", args.gradcam),
                        ("--max-upload-mb", args.max_upload_mb)):
        if value is not None:
            viewer += [flag, str(Path(value).resolve() if isinstance(value, Path) else value)]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach it can upload and run analyses", file=sys.stderr)
    return serve_sessions(viewer, host=args.host, port=args.port, max_sessions=args.max_sessions,
                          open_browser=args.open, idle_s=args.session_idle)


def _progress_bar(total: int, desc: str, quiet: bool):
    if quiet:
        return None
    return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True)


#: Defaults the help states without importing the inference code (torch) for ``--help``; a test holds them equal.
TTA_DEFAULT_FLIPS = 1
MIN_ET_ML_DEFAULT = 0.5
MC_BATCH_DEFAULT_HELP = ("MC samples decoded together per window (default: as many as fit a voxel budget per call: "
                         "1 on CPU and up to 11 on CUDA with the default 128^3 window)")
_D = " (default: %(default)s)"


def _add_clinical_arguments(p) -> None:
    p.add_argument("--preprocess", choices=MODES, default="auto",
                   help="raw scans: co-registration, brain extraction, atlas space, outputs back on the T1ce grid "
                        "(auto: full unless the case is BraTS-preprocessed)")
    p.add_argument("--brain-extraction", default="auto", metavar="METHOD",
                   choices=(*BRAIN_EXTRACTIONS, "hd-bet", "synthstrip"),
                   help="auto (none when the T1ce is already brain-extracted, else atlas), atlas, robex, none")
    p.add_argument("--brain-mask", type=Path, metavar="FILE", help="a brain mask on the T1ce grid (e.g. from Slicer)")
    p.add_argument("--atlas", choices=ATLASES, default="sri24", help="the atlas space the model runs in")
    p.add_argument("--atlas-outputs", action="store_true", help="also keep the atlas-space maps (OUT/atlas/)")
    p.add_argument("--n4", action="store_true", help="N4 bias-field correction before the analysis")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="braintumorxai", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="write synthetic BraTS-layout cases")
    p.add_argument("--out", type=Path, required=True, help="folder to write the case folders into")
    p.add_argument("--cases", type=int, default=1, help="number of cases" + _D)
    p.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same cases" + _D)
    p.add_argument("--naming", choices=("brats2021", "brats2023"), default="brats2021",
                   help="file names: brats2021 (<id>_t1ce.nii.gz) or brats2023 (<id>-t1c.nii.gz)" + _D)
    p.add_argument("--size", choices=("brats", "small"), default="brats",
                   help="brats: 240x240x155 at 1 mm; small: the same field of view at 2 mm" + _D)
    p.add_argument("--shape", type=int, nargs=3, metavar=("X", "Y", "Z"), help="grid size in voxels (overrides --size)")
    p.add_argument("--spacing", type=float, help="voxel size in mm (overrides --size)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_synth)

    p = sub.add_parser("info", help="check a case folder (NIfTI, or a DICOM study: its series table) "
                                    "and print what was found")
    p.add_argument("case_dir", type=Path, help="case folder (BraTS file names) or DICOM study folder")
    _add_sequence_choices(p, analyze=False)
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("analyze", help="segment a case with probabilities, uncertainty, Grad-CAM, surfaces")
    p.add_argument("case_dir", type=Path, help="case folder (BraTS file names: <id>_t1ce.nii.gz, _flair, _t1, _t2, "
                                               "optional _seg)")
    p.add_argument("--out", type=Path, required=True, help="output folder (must be empty unless --overwrite)")
    p.add_argument("--weights", type=Path, action="append",
                   help="checkpoint (default: the bundled demo weights); repeat it for a checkpoint ensemble "
                        "(samples pooled; Grad-CAM from the first)")
    p.add_argument("--device", default="auto", type=_device_arg, metavar="{auto,cpu,cuda}", help=_DEVICE_HELP + _D)
    p.add_argument("--mc-samples", type=int, default=20,
                   help="Monte Carlo Dropout samples (0: deterministic only)" + _D)
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="the network's compute precision: fp32 (exact, the default), bf16 (about 2x faster on CPUs "
                        "with AMX or AVX512-BF16, and on GPUs; slower where it is emulated), fp16 (CUDA only), auto "
                        "(bf16 where the hardware has it, else fp32)")
    p.add_argument("--tta", type=_flips_arg, metavar="1..8",
                   help="test-time augmentation: flips of the image (1: none, 2: also left-right, ... 8: all); "
                        f"the MC samples are spread over them (default: {TTA_DEFAULT_FLIPS}, no flips)")
    p.add_argument("--min-et-ml", type=float, metavar="ML",
                   help="a predicted enhancing tumour smaller than this becomes necrotic core in the segmentation "
                        f"(default: {MIN_ET_ML_DEFAULT} mL; 0: off)")
    p.add_argument("--no-enhancement-check", action="store_true",
                   help="keep predicted enhancing tumour that is not brighter on T1ce than on T1 (by default such a "
                        "component becomes necrotic core when the case has a T1 image)")
    p.add_argument("--mc-batch", type=int, metavar="N", help=MC_BATCH_DEFAULT_HELP)
    p.add_argument("--gradcam", default="all", help="Grad-CAM maps: all, none, or classes like NCR,ET" + _D)
    p.add_argument("--gradcam-layer", help="network layer for Grad-CAM (default: the method's: the finest decoder stage "
                                           "for the *-finest methods, a mid decoder stage for the others)")
    p.add_argument("--gradcam-method", metavar="NAME",
                   help=f"how the class activation maps are made: {', '.join(GRADCAM_METHODS)} "
                        f"(default {DEFAULT_GRADCAM_METHOD})")
    p.add_argument("--sequence-evidence", metavar="METHOD",
                   help=f"how much each class's call rests on each sequence: {', '.join(EVIDENCE_METHODS)} "
                        f"(default {DEFAULT_EVIDENCE_METHOD}: one extra pass per sequence the model reads; "
                        "ig: integrated gradients, several times slower)")
    p.add_argument("--seed", type=int, default=0, help="seed of the MC Dropout masks" + _D)
    p.add_argument("--overlap", type=float, default=0.5, help="overlap of neighbouring sliding windows, a fraction of the window" + _D)
    p.add_argument("--scene", type=Path, help="also write a 3D Slicer scene bundle (.mrb)")
    p.add_argument("--no-surfaces", action="store_true", help="skip the 3D surface meshes (surfaces/)")
    p.add_argument("--no-figures", action="store_true", help="skip the PNG figures (figures/)")
    p.add_argument("--explanation-checks", action="store_true",
                   help="trust report: Grad-CAM randomisation and deletion checks (extra forward passes)")
    _add_clinical_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    _add_sequence_choices(p, analyze=True)
    p.add_argument("--dicom-out", type=Path, metavar="DIR",
                   help="DICOM input only: where the DICOM SEG and parametric maps go (default OUT/dicom)")
    p.add_argument("--no-dicom-out", action="store_true", help="DICOM input: write no DICOM outputs")
    p.add_argument("--dicom-maps", type=_dicom_maps_arg, default=("probability", "entropy"), metavar="KINDS",
                   help="parametric maps written for DICOM input: probability, entropy, variance, mutual_information, "
                        "gradcam (comma-separated; default probability,entropy)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    p.add_argument("--progress-json", action="store_true", help="one JSON progress object per line on stdout")
    p.set_defaults(func=_cmd_analyze)

    p = sub.add_parser("view", help="web viewer (trame-slicer) for a folder of cases")
    p.add_argument("data_dir", type=Path, nargs="?", help="folder of case folders to list (optional: cases can also "
                                                          "be uploaded in the page)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 serves other machines too" + _D)
    p.add_argument("--port", type=int, default=8080, help="port to listen on" + _D)
    p.add_argument("--results", type=Path, help="where analyses are cached (default: a per-user cache folder)")
    p.add_argument("--weights", type=Path, help="checkpoint (default: the bundled demo weights)")
    p.add_argument("--device", default="auto", type=_device_arg, metavar="{auto,cpu,cuda}", help=_DEVICE_HELP + _D)
    p.add_argument("--mc-samples", type=int, default=20,
                   help="Monte Carlo Dropout samples per analysis (0: deterministic only)" + _D)
    p.add_argument("--gradcam", default="all", help="Grad-CAM maps: all, none, or classes like NCR,ET" + _D)
    p.add_argument("--max-upload-mb", type=int, default=2048, help="largest upload accepted, in MB" + _D)
    p.add_argument("--max-sessions", type=int, default=4,
                   help="browser sessions served at once, each with its own scene; one more is told to wait" + _D)
    p.add_argument("--session-idle", type=float, default=60.0, metavar="S",
                   help="seconds a session's viewer process waits without an open page before it stops" + _D)
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=_cmd_view)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    prog = f"braintumorxai {args.command}"
    try:
        return exit_code(prog, lambda: args.func(args))
    except Cancelled:
        print(f"{prog}: cancelled", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
