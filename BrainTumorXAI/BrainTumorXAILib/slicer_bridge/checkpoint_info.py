"""What the GUI process needs to know about a checkpoint, read without torch.

A BrainTumorXAI checkpoint is a ``torch.save`` zip whose ``<name>/data.pkl`` is a pickle of plain
values plus tensors (see ``models/checkpoint.py``).  The module must not import torch into Slicer's
GUI process, yet the Apply check needs the checkpoint's ``normalisation["optional_sequences"]``
(which inputs may be left empty).  :func:`checkpointOptionalSequences` reads that pickle with an
unpickler that builds nothing but plain containers: every global it meets is replaced by an inert
stand-in (tensors become ``None``), persistent ids (tensor storages) are never loaded, and no code
from the file runs.  Anything unexpected gives "no optional sequences" and the analysis process,
which loads the checkpoint properly, has the last word.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

from ..io.labels import SEQUENCES

_MAX_PICKLE_BYTES = 64 * 1024 * 1024


class _Dict(dict):
    """An OrderedDict stand-in: a dict that also takes the attributes pickle's BUILD sets (``_metadata``)."""


class _Inert:
    """Stands for any global of the pickle (torch's rebuild functions, OrderedDict, ...)."""

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        # OrderedDict() must stay a dict (the metadata is a dict of dicts); tensors become None.
        return _Dict() if self.dictLike else None

    def __setstate__(self, state):
        pass


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module, name):  # never imports anything
        stand_in = _Inert()
        stand_in.dictLike = (module, name) in (("collections", "OrderedDict"), ("builtins", "dict"))
        return stand_in

    def persistent_load(self, pid):
        return None


def readCheckpointMetadata(path) -> dict:
    """The checkpoint's plain entries (format, sequences, normalisation, ...) or {} when unreadable."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"]
            if len(names) != 1 or archive.getinfo(names[0]).file_size > _MAX_PICKLE_BYTES:
                return {}
            with archive.open(names[0]) as f:
                payload = _MetadataUnpickler(f).load()
    except Exception:  # not a zip, damaged, or a pickle we do not understand
        return {}
    if not isinstance(payload, dict):
        return {}
    return {k: v for k, v in payload.items() if k not in ("state_dict", "training_state")}


def checkpointOptionalSequences(path) -> tuple[str, ...]:
    """Sequences the checkpoint can do without (``normalisation["optional_sequences"]``); () if none or unknown."""
    normalisation = readCheckpointMetadata(path).get("normalisation")
    if not isinstance(normalisation, dict):
        return ()
    optional = normalisation.get("optional_sequences") or ()
    if not isinstance(optional, (list, tuple)):
        return ()
    return tuple(s for s in SEQUENCES if s in optional and s != "t1ce")
