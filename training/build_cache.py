"""Optional cache: ``python -m training.build_cache --data BRATS_DIR --out CACHE_DIR [--spacing MM]``.

Each case is preprocessed exactly as training and inference do it and saved as
``<id>.npz`` (image float16, label uint8) plus ``<id>.json`` with the exact
crop box and every other step (PreprocessTransform.to_dict()).  Bad cases are
reported one line each and skipped.  ``training.train --data CACHE_DIR`` reads it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from BrainTumorXAILib.io.case_files import list_cases
from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code

from .config import TrainConfig
from .data import CACHE_INDEX, prepare_case, save_prepared
from .io_utils import atomic_write_text


def build_cache(data: Path, out: Path, cfg: TrainConfig, quiet: bool = False) -> tuple[int, int]:
    out.mkdir(parents=True, exist_ok=True)
    if (out / CACHE_INDEX).exists():
        raise BrainTumorXAIError(f"{out}: already holds a cache (remove it first)")
    records, bad = [], 0
    for folder in list_cases(data):
        try:
            records.append(save_prepared(prepare_case(folder, cfg.normalisation_record()), out))
            if not quiet:
                print(f"cached {folder.name}")
        except (BrainTumorXAIError, ValueError, OSError) as exc:
            bad += 1
            print(f"skipping {folder.name}: {exc}", file=sys.stderr)
    atomic_write_text(out / CACHE_INDEX, json.dumps({"normalisation": cfg.normalisation_record(),
                                                     "cases": records}, indent=1))
    print(f"{len(records)} case(s) cached, {bad} skipped")
    return len(records), bad


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.build_cache", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--spacing", type=float)
    p.add_argument("--method", default="zscore", choices=("zscore", "minmax"))
    p.add_argument("--crop", default="brain", choices=("brain", "fixed", "none"))
    p.add_argument("--patch", type=int, default=128, help="network window the cache is meant for")
    p.add_argument("--depth", type=int, default=4, help="U-Net depth (the volume is padded to 2**depth)")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    cfg = TrainConfig(spacing=a.spacing, normalisation=a.method, crop=a.crop, patch=a.patch, depth=a.depth)
    return exit_code("training.build_cache", lambda: build_cache(a.data, a.out, cfg, a.quiet))


if __name__ == "__main__":
    sys.exit(main())
