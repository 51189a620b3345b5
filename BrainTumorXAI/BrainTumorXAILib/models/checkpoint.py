"""Self-describing, weights-only checkpoints.

A checkpoint is ``torch.save`` of a dict made only of tensors and plain Python
values, so ``torch.load(weights_only=True)`` reads it and no code inside a file
can ever run::

    format          'BrainTumorXAI-checkpoint'
    format_version  1
    architecture    model.config ({'name': 'unet'|'resunet'|'attunet', constructor kwargs})
    sequences       input channel order, e.g. ['t1', 't1ce', 't2', 'flair']
    class_names     output class order
    labels          label meaning (optional; absent in checkpoints written before it existed):
                    {'internal': {0: 'background', 1: 'NCR', 2: 'ED', 3: 'ET'},
                     'conventions': {'brats2021': {0: 0, 1: 1, 2: 2, 3: 4}, 'brats2023': {0: 0, ..., 3: 3}}}
                    i.e. output index -> class name, and per BraTS convention output index -> value on
                    disk; :func:`checkpoint_labels` gives it for old checkpoints too
    normalisation   preprocessing the network expects ({'method': 'zscore', 'window': 96, ...})
    provenance      date, code and torch versions, training data, seed, ...
    state_dict      the weights
    training_state  optional: optimizer/scheduler/scaler states, epoch, RNG states, best score
    extra           optional: anything else (plain values only)

Files are written atomically (temp file in the same folder, fsync, os.replace).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import pickletools
import random
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import CheckpointError
from ..io.labels import CLASS_NAMES, CONVENTIONS, SEQUENCES
from .factory import build_model_from_config
from .head_calibration import apply_class_bias, apply_temperature, checkpoint_class_bias, checkpoint_temperature

FORMAT = "BrainTumorXAI-checkpoint"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("architecture", "sequences", "class_names", "normalisation", "provenance", "state_dict")
_NON_METADATA = ("state_dict", "training_state")
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


# -- saving ------------------------------------------------------------------------
def save_checkpoint(path: str | os.PathLike, model: nn.Module, *, sequences: Sequence[str] = SEQUENCES,
                    class_names: Sequence[str] = CLASS_NAMES, normalisation: Mapping[str, Any],
                    provenance: Mapping[str, Any], training_state: Mapping[str, Any] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` and its description to ``path`` atomically; returns the path.

    ``provenance`` gets ``saved_at``, ``torch_version`` and ``braintumorxai_version``
    unless given.  Values that ``torch.load(weights_only=True)`` could not read
    raise TypeError naming their place (numpy arrays and scalars are converted).
    """
    path = Path(path)
    config = dict(model.config)
    sequences, class_names = [str(s) for s in sequences], [str(c) for c in class_names]
    if len(sequences) != config.get("in_channels", len(sequences)) or not set(sequences) <= set(SEQUENCES):
        raise ValueError(f"sequences {sequences} must be {config.get('in_channels')} of {list(SEQUENCES)}")
    if len(set(sequences)) != len(sequences):
        raise ValueError(f"sequences {sequences} repeat a name")
    if len(class_names) != config.get("num_classes", len(class_names)):
        raise ValueError(f"{len(class_names)} class names for a model with {config.get('num_classes')} classes")
    prov = {"saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "torch_version": torch.__version__, "braintumorxai_version": __version__, **dict(provenance)}
    state_dict = model.state_dict()  # kept as is: its OrderedDict _metadata carries layer versions
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state_dict[{key!r}] is {type(value).__name__}, not a tensor")
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": _plain(config, "architecture"),
        "sequences": sequences,
        "class_names": class_names,
        "labels": default_labels(class_names),
        "normalisation": _plain(normalisation, "normalisation"),
        "provenance": _plain(prov, "provenance"),
        "state_dict": state_dict,
    }
    if training_state is not None:
        payload["training_state"] = _plain(training_state, "training_state")
    if extra is not None:
        payload["extra"] = _plain(extra, "extra")
    _atomic_torch_save(payload, path)
    return path


def default_labels(class_names: Sequence[str] = CLASS_NAMES) -> dict:
    """The ``labels`` entry for a model with these output classes.

    The BraTS conventions (output index -> on-disk value) are included only when
    the classes are the project's internal ones, the only classes they describe.
    """
    class_names = [str(c) for c in class_names]
    labels: dict[str, Any] = {"internal": dict(enumerate(class_names))}
    if class_names == list(CLASS_NAMES):
        labels["conventions"] = {name: dict(enumerate(int(v) for v in values))
                                 for name, values in CONVENTIONS.items()}
    return labels


def checkpoint_labels(meta: Mapping[str, Any]) -> dict:
    """A checkpoint's ``labels`` entry; derived from ``class_names`` for checkpoints without one."""
    labels = meta.get("labels")
    return dict(labels) if isinstance(labels, Mapping) else default_labels(meta["class_names"])


def _plain(obj: Any, where: str) -> Any:
    """Copy of ``obj`` made of types the weights-only unpickler accepts."""
    if obj is None or isinstance(obj, (torch.Tensor, torch.dtype, torch.Size)):
        return obj
    for base in (bool, int, float, str, bytes):  # subclasses (TorchVersion, IntEnum) would pickle as globals
        if isinstance(obj, base):
            return base(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, torch.device):
        return str(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                raise TypeError(f"{where}: key {k!r} is {type(k).__name__}; only str and int keys are stored")
            out[k] = _plain(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        items = [_plain(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return tuple(items) if isinstance(obj, tuple) else items
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}; checkpoints store only "
                    "tensors, numbers, strings, None, lists, tuples and dicts")


def save_checkpoint_dict(ckpt: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """A loaded checkpoint dict, changed by its caller (a temperature, a trust card), written again:
    validated first, so a bad change fails before anything is written; atomic, as every checkpoint."""
    path = Path(path)
    validate_checkpoint(dict(ckpt), path)
    _atomic_torch_save(dict(ckpt), path)
    return path


def _atomic_torch_save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)  # make the rename itself durable


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not possible on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- RNG state helpers (for training_state) ------------------------------------------
def capture_rng_state() -> dict:
    """Python, numpy, torch (and CUDA) RNG states as weights-only-loadable values."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"]))


# -- loading -------------------------------------------------------------------------
def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; every problem raises CheckpointError(path, problem)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(path, "checkpoint not found")
    if path.is_dir():
        raise CheckpointError(path, "is a folder, not a checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the unpickler warns about protocols before failing clearly
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one clear line
        raise CheckpointError(path, _diagnose_load_failure(path, exc)) from exc
    validate_checkpoint(ckpt, path)
    return ckpt


def _diagnose_load_failure(path: Path, exc: Exception) -> str:
    refused = "refused: the file contains pickled code; only weights-only checkpoints are loaded"
    if isinstance(exc, PermissionError):
        return "cannot read the file (permission denied)"
    if path.stat().st_size == 0:
        return "empty file, not a checkpoint"
    message = str(exc)
    if "weights only load failed" in message.lower():
        if "global" in message.lower() or _contains_code(path):
            return refused
        return "not a PyTorch checkpoint, or corrupt (unreadable pickle)"
    if _starts_like_zip(path):
        return "corrupt or truncated checkpoint (incomplete or damaged PyTorch zip archive)"
    return "not a PyTorch checkpoint, or corrupt/truncated"


def _starts_like_zip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:
        return False


def _contains_code(path: Path) -> bool:
    """Whether a (non-zip) pickle would import or call anything; pickletools never executes it."""
    if _starts_like_zip(path):
        return False  # torch's own pickles reference globals; the unpickler's message decides
    try:
        with open(path, "rb") as f:
            return any(op.name in _CODE_OPCODES for op, _arg, _pos in pickletools.genops(f))
    except Exception:  # noqa: BLE001 - garbage bytes: not a pickle at all
        return False


def _first_line(text: str, limit: int = 160) -> str:
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "no details")
    return line if len(line) <= limit else line[: limit - 3] + "..."


def validate_checkpoint(ckpt: Any, path: str | os.PathLike | None = None) -> None:
    """Format tag, version, keys, metadata and the state_dict against the architecture."""
    if not isinstance(ckpt, dict):
        raise CheckpointError(path, f"not a BrainTumorXAI checkpoint (holds a {type(ckpt).__name__}, not a dict)")
    if ckpt.get("format") != FORMAT:
        found = ckpt.get("format")
        hint = " (a bare state_dict?)" if found is None and all(isinstance(v, torch.Tensor) for v in ckpt.values()) \
            else ""
        raise CheckpointError(path, f"not a BrainTumorXAI checkpoint: format tag is {found!r}, "
                                    f"expected {FORMAT!r}{hint}")
    version = ckpt.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(path, f"unsupported format_version {version!r}; this version of BrainTumorXAI "
                                    f"reads format_version {FORMAT_VERSION}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(path, f"checkpoint lacks key(s): {', '.join(missing)}")
    for key, kind in (("architecture", dict), ("normalisation", dict), ("provenance", dict),
                      ("state_dict", Mapping), ("sequences", (list, tuple)), ("class_names", (list, tuple))):
        if not isinstance(ckpt[key], kind):
            raise CheckpointError(path, f"'{key}' is a {type(ckpt[key]).__name__}")
    arch = ckpt["architecture"]
    sequences = list(ckpt["sequences"])
    if not set(sequences) <= set(SEQUENCES) or len(set(sequences)) != len(sequences):
        raise CheckpointError(path, f"sequences {sequences} are not distinct names from {list(SEQUENCES)}")
    if len(sequences) != arch.get("in_channels", len(sequences)):
        raise CheckpointError(path, f"{len(sequences)} sequences for a network with {arch.get('in_channels')} inputs")
    if len(ckpt["class_names"]) != arch.get("num_classes", len(ckpt["class_names"])):
        raise CheckpointError(path, f"{len(ckpt['class_names'])} class names for a network with "
                                    f"{arch.get('num_classes')} outputs")
    if "labels" in ckpt:
        _check_labels(ckpt["labels"], list(ckpt["class_names"]), path)
    _check_state_dict(ckpt["state_dict"], arch, path)


def _check_labels(labels: Any, class_names: list, path) -> None:
    """The optional ``labels`` entry: index -> name matching class_names; conventions index -> int value."""
    if not isinstance(labels, Mapping) or not isinstance(labels.get("internal"), Mapping):
        raise CheckpointError(path, "'labels' must be a dict with an 'internal' {index: class name} dict")
    internal = dict(labels["internal"])
    if internal != dict(enumerate(class_names)):
        raise CheckpointError(path, f"'labels' names classes {internal}, but class_names are {class_names}")
    conventions = labels.get("conventions", {})
    if not isinstance(conventions, Mapping):
        raise CheckpointError(path, f"'labels' conventions is a {type(conventions).__name__}, not a dict")
    for name, table in conventions.items():
        if (not isinstance(table, Mapping) or set(table) != set(range(len(class_names)))
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in table.values())):
            raise CheckpointError(path, f"'labels' convention {name!r} must map each of the "
                                        f"{len(class_names)} output indices to an integer label value")


#: Random in-place initialisers: on the meta device they have no values to fill, and their Python
#: meta kernels import torch._dynamo, most of the ``analyze`` load stage.
_RANDOM_FILLS = frozenset({"normal_", "uniform_", "log_normal_", "exponential_", "cauchy_", "geometric_",
                           "bernoulli_", "random_"})


class _SkipRandomFillsOnMeta(torch.overrides.TorchFunctionMode):
    """Makes the random initialisers of meta tensors no-ops (shapes are all a meta build is for)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        target = args[0] if args else None
        if (getattr(func, "__name__", "") in _RANDOM_FILLS and isinstance(target, torch.Tensor)
                and target.is_meta):
            return target
        return func(*args, **(kwargs or {}))


def _build(arch: Mapping[str, Any], path, device: str | torch.device | None = None) -> nn.Module:
    try:
        if device is None:
            return build_model_from_config(arch)
        with torch.device(device), _SkipRandomFillsOnMeta():
            return build_model_from_config(arch)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(path, f"bad architecture {dict(arch)}: {exc}") from None


def _check_state_dict(state_dict: Mapping[str, Any], arch: Mapping[str, Any], path) -> None:
    """Keys and shapes against the architecture, built on the meta device (no memory, no init cost)."""
    expected = {k: tuple(v.shape) for k, v in _build(arch, path, device="meta").state_dict().items()}
    problems = []
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing:
        problems.append(f"missing keys: {_some(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_some(unexpected)}")
    for key, shape in expected.items():
        value = state_dict.get(key)
        if value is not None and (not isinstance(value, torch.Tensor) or tuple(value.shape) != shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            problems.append(f"{key} has shape {got}, the architecture needs {shape}")
            break
    if problems:
        raise CheckpointError(path, f"state_dict does not match architecture {arch.get('name')!r} "
                                    f"({_arch_summary(arch)}): " + "; ".join(problems))


def _some(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


def _arch_summary(arch: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in arch.items() if k != "name")


def load_model(path_or_dict: str | os.PathLike | Mapping[str, Any],
               device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """Model in eval mode on ``device`` and the checkpoint's metadata.

    The metadata is the checkpoint without ``state_dict`` and ``training_state``
    (load_checkpoint gives the whole dict for resuming training).
    """
    if isinstance(path_or_dict, Mapping):
        path, ckpt = None, dict(path_or_dict)
        validate_checkpoint(ckpt, path)
    else:
        path = Path(path_or_dict)
        ckpt = load_checkpoint(path, map_location="cpu")
    model = _build(ckpt["architecture"], path)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:  # validation should have caught it; keep the one-line promise anyway
        raise CheckpointError(path, f"state_dict does not load: {_first_line(str(exc))}") from None
    temperature = checkpoint_temperature(ckpt, path)
    if temperature is not None:
        apply_temperature(model, temperature)
    class_bias = checkpoint_class_bias(ckpt, path)
    if class_bias is not None:
        apply_class_bias(model, class_bias, path)
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k not in _NON_METADATA}
    return model, meta
