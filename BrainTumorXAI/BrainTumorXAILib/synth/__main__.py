"""``python -m BrainTumorXAILib.synth --sample DIR``: (re)write the shipped sample case."""

from __future__ import annotations

import argparse

from . import __doc__ as _doc
from .cases import SAMPLE_CASE_SEED, write_sample_case


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m BrainTumorXAILib.synth", description=_doc.splitlines()[0])
    parser.add_argument("--sample", metavar="DIR", required=True, help="write the shipped sample case into DIR")
    parser.add_argument("--seed", type=int, default=SAMPLE_CASE_SEED)
    args = parser.parse_args(argv)
    print(write_sample_case(args.sample, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
