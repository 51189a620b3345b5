"""Clinical scans in: raw multi-sequence MRI -> co-registration, brain extraction, atlas space; every output of the
analysis is carried back onto the native T1ce grid (issue 26).  ``analyze`` calls ``stage.load_for_analysis``
first.  Only the options are imported here: the command line builds its parser without SimpleITK."""

from .options import ATLASES, BRAIN_EXTRACTIONS, MODES, ClinicalOptions

__all__ = ["ATLASES", "BRAIN_EXTRACTIONS", "MODES", "ClinicalOptions"]
