"""Where the real MRI lies: ``$BRAINTUMORXAI_REALDATA``, else ``../shared/realdata`` beside the repository.

Tests that need it import ``REALDATA`` and ``needs_realdata`` from here; they skip, with the reason, where it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV_VAR = "BRAINTUMORXAI_REALDATA"


def realdata_root() -> Path:
    configured = os.environ.get(ENV_VAR)
    if configured:
        return Path(configured).expanduser().resolve()
    return Path(__file__).resolve().parents[3] / "shared" / "realdata"


REALDATA = realdata_root()
needs_realdata = pytest.mark.skipif(not REALDATA.is_dir(),
                                    reason=f"real MRI not present at {REALDATA} (set {ENV_VAR} to point elsewhere)")
