"""Training configuration: every part of the recipe, with the defaults used for the demo weights."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .io_utils import atomic_write_text

#: The repository (the sources files' real cases lie under the data root, beside it by default).
REPOSITORY = Path(__file__).resolve().parents[1]
DATA_ROOT_ENV = "BRAINTUMORXAI_REALDATA"


def default_data_root() -> Path:
    """Where real cases are read from: ``$BRAINTUMORXAI_REALDATA``, else ``../shared/realdata`` beside the repository."""
    configured = os.environ.get(DATA_ROOT_ENV)
    return Path(configured).expanduser() if configured else REPOSITORY.parent / "shared" / "realdata"


@dataclass
class TrainConfig:
    data: str = ""
    out: str = ""
    # model
    model: str = "unet"
    base_channels: int = 16
    depth: int = 4
    dropout: float = 0.1
    decoder: str = "full"
    norm: str = "instance"
    # preprocessing (recorded in the checkpoint; analyze repeats it exactly)
    spacing: float | None = None  # mm; None keeps the native grid
    normalisation: str = "zscore"
    crop: str = "brain"
    # sliding-window size at inference (0: the training patch); a window covering the whole brain
    # at a coarse spacing means one window per case
    window: int = 0
    # mixed sources (synthetic on the fly + real cases, sequence dropout): a JSON file, see
    # training.generator.mixture; empty: train on --data alone
    sources: str = ""
    # the folder the sources' real case paths are relative to (empty: default_data_root(); config.json records
    # the folder used)
    data_root: str = ""
    # sequences the network can do without (zero channels); set from the sources' sequence dropout
    optional_sequences: tuple = ()
    # fine-tuning: start from this checkpoint's weights (same architecture) with a fresh optimiser and
    # schedule; empty: random initialisation
    init: str = ""
    # sampling and augmentation
    patch: int = 128
    batch: int = 2
    steps_per_epoch: int = 250
    foreground_fraction: float = 0.33
    flip: bool = True
    rotate_deg: float = 10.0
    scale: float = 0.10
    spatial_prob: float = 0.3
    intensity_shift: float = 0.1
    intensity_scale: float = 0.1
    gamma: float = 0.3
    gamma_prob: float = 0.3
    noise_std: float = 0.05
    noise_prob: float = 0.2
    # loss and optimisation
    focal_gamma: float = 2.0
    dice_weight: float = 1.0
    focal_weight: float = 1.0
    epochs: int = 100
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_steps: int = 200
    clip_grad: float = 1.0
    amp: bool | None = None  # mixed precision; None: on when training on CUDA, off on the CPU (config.json records which)
    # channels-last 3D tensors: oneDNN / cuDNN convolutions run faster
    channels_last: bool = True
    workers: int = 0  # DataLoader worker processes (samples are seeded per index, so results do not change)
    # CPU threads (0: PyTorch's default).  On a shared machine 1 thread can be much faster than
    # an oversubscribed 2 (OpenMP threads spin while waiting for each other).
    threads: int = 0
    # data split and validation
    split: tuple[float, float, float] = (0.75, 0.15, 0.10)
    max_cases: int | None = None
    val_mc_samples: int = 4
    seed: int = 0
    device: str = "auto"
    # torchrun: how long a rank waits at a collective for the others (PyTorch's NCCL default is 10 min)
    ddp_timeout_min: float = 120.0
    deterministic: bool = False
    quiet: bool = False
    # also keep each epoch's weights (epoch_NNN.pt) to select on criteria other than the validation loss
    keep_epochs: bool = False
    extra: dict = field(default_factory=dict)

    def save(self, path: Path) -> None:
        atomic_write_text(path, json.dumps(dataclasses.asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> "TrainConfig":
        data = json.loads(Path(path).read_text())
        data["split"] = tuple(data.get("split", (0.75, 0.15, 0.10)))
        data["optional_sequences"] = tuple(data.get("optional_sequences", ()))
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def model_params(self) -> dict:
        return {"base_channels": self.base_channels, "depth": self.depth, "dropout": self.dropout,
                "decoder": self.decoder, "norm": self.norm}

    def normalisation_record(self) -> dict:
        """What inference must repeat (stored in every checkpoint)."""
        return {"method": self.normalisation, "crop": self.crop,
                "spacing": None if self.spacing is None else [float(self.spacing)] * 3,
                "window": int(self.window or self.patch), "multiple_of": 2 ** int(self.depth), "reorient": True,
                "optional_sequences": list(self.optional_sequences)}
