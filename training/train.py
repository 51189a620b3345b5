"""Headless training: ``python -m training.train --config training/recipes/default.json --out RUN_DIR [...]``
(or ``--data DIR`` / ``--sources FILE`` and flags; under torchrun too).  A recipe file holds the settings of a
run (``TrainConfig`` fields); flags given with it override it.

The recipe: deterministic 75/15/10 split saved in the run folder; random patches
with foreground oversampling; flips, small rotation/scaling, intensity
shift/scale, gamma and noise; Dice + Focal loss; AdamW; linear warm-up then
cosine annealing (per step); AMP on CUDA; gradient clipping; validation every
epoch on whole validation cases (sliding window, MC Dropout accuracy); ``best.pt``
by validation loss and ``last.pt`` every epoch in the self-describing checkpoint
format, so ``--resume`` continues bit-for-bit on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from BrainTumorXAILib import __version__
from BrainTumorXAILib.models.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state, save_checkpoint
from BrainTumorXAILib.errors import BrainTumorXAIError, exit_code
from BrainTumorXAILib.io.labels import CLASS_NAMES, REGIONS, SEQUENCES
from BrainTumorXAILib.reporting.metrics import mc_accuracy, overlap_metrics
from BrainTumorXAILib.models.factory import build_model
from BrainTumorXAILib.inference.predictor import Predictor
from BrainTumorXAILib.inference.precision import autocast

from . import distributed as ddp
from .config import TrainConfig, default_data_root
from .data import CaseStore, PatchDataset, make_split
from .export import widen_sequences
from .generator.mixture import MixtureDataset, RealStore, load_sources
from .io_utils import atomic_write_text
from .losses import DiceFocalLoss
from .plots import training_curves

CSV_FIELDS = ["epoch", "lr", "train_loss", "val_loss", "val_dice_WT", "val_dice_TC", "val_dice_ET",
              "val_iou_WT", "val_iou_TC", "val_iou_ET", "val_mc_accuracy", "epoch_time_s"]


#: TrainConfig fields a recipe may not set: where the run goes, and what training derives itself.
NOT_IN_RECIPES = ("out", "extra", "optional_sequences")


def read_recipe(path: Path) -> dict:
    """A recipe: a JSON object of ``TrainConfig`` fields (keys starting with ``_`` are comments)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BrainTumorXAIError(f"{path}: cannot read the recipe ({exc})") from None
    if not isinstance(data, dict):
        raise BrainTumorXAIError(f"{path}: a recipe is a JSON object of training settings")
    known = {f.name for f in dataclasses.fields(TrainConfig)} - set(NOT_IN_RECIPES)
    unknown = sorted(k for k in data if not k.startswith("_") and k not in known)
    if unknown:
        raise BrainTumorXAIError(f"{path}: not a training setting: {', '.join(unknown)}")
    return {k: v for k, v in data.items() if not k.startswith("_")}


def parse_args(argv=None) -> tuple[TrainConfig, bool, int | None]:
    defaults = TrainConfig()
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, help="recipe file (JSON; e.g. training/recipes/default.json); the other "
                   "flags override it")
    p.add_argument("--data", default="", help="BraTS-layout case folders, or a training.build_cache cache "
                   "(not needed with --sources)")
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, plots)")
    p.add_argument("--model", default=defaults.model, choices=("unet", "resunet", "attunet"))
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/last.pt")
    p.add_argument("--stop-after-epochs", type=int, help="end this invocation after N epochs (a wall-time "
                   "slot); continue later with --resume")
    for f in dataclasses.fields(TrainConfig):
        if f.name in ("data", "out", "model", "split", "extra", "optional_sequences"):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default)
        elif f.name == "amp":
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help="mixed precision: fp16 on CUDA, bf16 on the CPU (default: on when training on CUDA, off on "
                           "the CPU; bf16 pays only on CPUs with AMX or AVX512-BF16)")
        elif f.name == "data_root":
            p.add_argument(flag, default=default, metavar="DIR", help="the folder the sources' real case paths are "
                           "relative to (default: $BRAINTUMORXAI_REALDATA, else ../shared/realdata beside the repository)")
        elif f.name in ("spacing", "max_cases"):
            p.add_argument(flag, type=float if f.name == "spacing" else int, default=default)
        else:
            p.add_argument(flag, type=type(default), default=default)
    config, _ = p.parse_known_args(argv)
    recipe = {}
    if config.config is not None:
        try:
            recipe = read_recipe(config.config)
        except BrainTumorXAIError as exc:
            p.error(str(exc))
        p.set_defaults(**{k: v for k, v in recipe.items() if k != "split"})
    args = p.parse_args(argv)
    if not args.data and not args.sources:
        p.error("give --data or --sources")
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if f.name not in ("split", "extra", "optional_sequences")}
    if "split" in recipe:
        values["split"] = tuple(recipe["split"])
    return TrainConfig(**values), args.resume, args.stop_after_epochs


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up, then cosine annealing to zero."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def resolve_amp(amp: bool | None, device: torch.device) -> bool:
    """--amp / --no-amp as given; unset: on when training on CUDA, off elsewhere (opt-in on the CPU)."""
    return device.type == "cuda" if amp is None else bool(amp)


def amp_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of mixed precision: float16 with a GradScaler on CUDA, bfloat16 on the CPU
    (bf16 keeps float32's exponent range, so no loss scaling)."""
    if not amp or device.type not in ("cuda", "cpu"):
        return None
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class Trainer:
    def __init__(self, cfg: TrainConfig, resume: bool):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.dist, self.device = ddp.setup(cfg.device, cfg.ddp_timeout_min)
        cfg.amp = resolve_amp(cfg.amp, self.device)  # before config.json is written: it records the choice
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        self.log = print if (self.dist.main and not cfg.quiet) else (lambda *a, **k: None)
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)
        self.sources = self._load_sources()
        if self.sources is None:
            self.store = CaseStore(Path(cfg.data), cfg.normalisation_record(), log=self._warn)
            self._adopt_cache_preprocessing()
        else:
            self.store = RealStore(self.sources.real + self.sources.validation, cfg.normalisation_record(),
                                   log=self._warn)
        self.split = self._split(resume)
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, **cfg.model_params()).to(self.device)
        self.memory_format = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
        if cfg.init and not resume:  # a resumed run already holds its own weights in last.pt
            self._initialise_from(Path(cfg.init))
        self.model = self.model.to(memory_format=self.memory_format)
        self.net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda"
                                           else None) if self.dist.active else self.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.total_steps = cfg.epochs * cfg.steps_per_epoch
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_factor(s, cfg, self.total_steps))
        self.amp_dtype = amp_dtype(bool(cfg.amp), self.device)
        self.amp = self.amp_dtype is not None
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.loss = DiceFocalLoss(cfg.focal_gamma, cfg.dice_weight, cfg.focal_weight)
        self.start_epoch, self.step, self.best, self.history = 0, 0, math.inf, []
        if resume:
            self._resume()
            if self.dist.main:  # a run killed after last.pt but before its logs: rewrite them from the history
                self._write_logs()
        train_keys = self.store.usable(self.split["train"])
        length = cfg.steps_per_epoch * cfg.batch * self.dist.world
        if self.sources is None:
            self.dataset = PatchDataset(self.store, train_keys, cfg, length)
        else:
            self.dataset = MixtureDataset(self.sources, self.store, train_keys, cfg, length)
        self.sampler = DistributedSampler(self.dataset, num_replicas=self.dist.world, rank=self.dist.rank,
                                          shuffle=True, seed=cfg.seed)
        self.loader = DataLoader(self.dataset, batch_size=cfg.batch, sampler=self.sampler, num_workers=cfg.workers,
                                 pin_memory=self.device.type == "cuda")

    def _warn(self, message: str) -> None:
        if self.dist.main:
            print(message, file=sys.stderr)

    def _load_sources(self):
        """The mixture of synthetic and real sources (--sources), or None to train on --data alone."""
        if not self.cfg.sources:
            return None
        root = Path(self.cfg.data_root) if self.cfg.data_root else default_data_root()
        self.cfg.data_root = str(root)  # config.json records the folder used
        spec = load_sources(Path(self.cfg.sources), root)
        if spec.synthetic_weight > 0:
            if self.cfg.spacing is None:
                raise BrainTumorXAIError(f"{self.cfg.sources}: synthetic data needs --spacing (the grid it is made on)")
            spec.synth.spacing = float(self.cfg.spacing)
        self.cfg.optional_sequences = tuple(spec.optional_sequences)
        return spec

    def _adopt_cache_preprocessing(self) -> None:
        """A cache was preprocessed once: train on, and record in the checkpoints, what it actually holds."""
        norm = self.store.cache_normalisation
        if not norm:
            return
        spacing = norm.get("spacing")
        cached = {"spacing": None if spacing is None else float(spacing[0]), "normalisation": norm["method"],
                  "crop": norm["crop"]}
        changed = {k: v for k, v in cached.items() if getattr(self.cfg, k) != v}
        if changed:
            self._warn(f"{self.cfg.data}: using the cache's preprocessing "
                       + ", ".join(f"{k}={v}" for k, v in changed.items()))
        for key, value in cached.items():
            setattr(self.cfg, key, value)

    def _split(self, resume: bool) -> dict:
        path = self.out / "split.json"
        if path.exists():  # a run's split never changes, also on resume
            return json.loads(path.read_text())
        if resume:
            raise BrainTumorXAIError(f"{path}: nothing to resume (no split.json)")
        if self.sources is not None:
            split = {"train": sorted(Path(c["path"]).name for c in self.sources.real),
                     "val": sorted(Path(c["path"]).name for c in self.sources.validation), "test": []}
            if self.dist.main:
                atomic_write_text(path, json.dumps(split, indent=2))
                self.cfg.save(self.out / "config.json")
            return split
        keys = self.store.keys()
        if self.cfg.max_cases:
            keys = keys[: self.cfg.max_cases]
        split = make_split(keys, self.cfg.split, self.cfg.seed)
        if self.dist.main:
            atomic_write_text(path, json.dumps(split, indent=2))
            self.cfg.save(self.out / "config.json")
        return split

    # -- checkpoints ------------------------------------------------------------
    def _initialise_from(self, path: Path) -> None:
        """Fine-tuning: the weights of an earlier run's checkpoint; its architecture must be this run's.  An exported
        checkpoint that reads fewer sequences (``export --sequences``) gets zero weights for the others."""
        ckpt = load_checkpoint(path, map_location="cpu")
        if set(ckpt["sequences"]) <= set(SEQUENCES):  # anything else fails the architecture check below
            ckpt = widen_sequences(ckpt, list(SEQUENCES))
        ours = dict(self.model.config)
        if dict(ckpt["architecture"]) != ours:
            raise BrainTumorXAIError(f"{path}: --init checkpoint has architecture {dict(ckpt['architecture'])}, "
                                     f"this run builds {ours}")
        self.model.load_state_dict(ckpt["state_dict"], strict=True)
        self.log(f"weights initialised from {path} (epoch {ckpt['provenance'].get('epoch')})")

    def _resume(self) -> None:
        ckpt = load_checkpoint(self.out / "last.pt", map_location=self.device)
        state = ckpt["training_state"]
        self.model.load_state_dict(ckpt["state_dict"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        restore_rng_state(state["rng"])
        self.start_epoch, self.step = int(state["epoch"]) + 1, int(state["global_step"])
        self.best, self.history = float(state["best_val_loss"]), list(state["history"])
        self.log(f"resumed from epoch {self.start_epoch - 1} (step {self.step})")

    def _save(self, epoch: int, is_best: bool) -> None:
        training_state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                          "scaler": self.scaler.state_dict(), "rng": capture_rng_state(), "epoch": epoch,
                          "global_step": self.step, "best_val_loss": self.best, "history": self.history}
        provenance = {"trained_by": "training.train", "data": str(Path(self.cfg.data).resolve()),
                      "split": self.split, "seed": self.cfg.seed, "config": dataclasses.asdict(self.cfg),
                      "git_commit": git_commit(), "braintumorxai_version": __version__, "epoch": epoch,
                      "world_size": self.dist.world, "device": str(self.device),
                      "sources": None if self.sources is None else self.sources.record(),
                      "initialised_from": self.cfg.init or None}
        common = dict(sequences=SEQUENCES, class_names=CLASS_NAMES, normalisation=self.cfg.normalisation_record(),
                      provenance=provenance)
        # best.pt first: a run killed between the two writes resumes from the previous last.pt and redoes
        # this epoch (rewriting best.pt); the other order would leave a last.pt whose best_val_loss
        # records a best.pt that was never written.
        if is_best:
            save_checkpoint(self.out / "best.pt", self.model, **common)
        save_checkpoint(self.out / "last.pt", self.model, training_state=training_state, **common)
        if self.cfg.keep_epochs:
            # numbered as metrics.csv numbers epochs (from 1); weights only, like best.pt
            save_checkpoint(self.out / f"epoch_{epoch + 1:03d}.pt", self.model, **common)

    # -- loops ------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        self.net.train()
        self.dataset.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        total, count = 0.0, 0
        bar = self._bar(len(self.loader), f"epoch {epoch + 1}/{self.cfg.epochs}")
        for image, label in self.loader:
            image = image.to(self.device, non_blocking=True, memory_format=self.memory_format)
            label = label.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with autocast(self.device, self.amp_dtype):
                logits = self.net(image)
            loss = self.loss(logits.float(), label)
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_grad)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.step += 1
            total += float(loss.detach())
            count += 1
            if bar:
                bar.set_postfix(loss=f"{total / count:.4f}")
                bar.update(1)
        if bar:
            bar.close()
        return ddp.mean_over_ranks(total / max(count, 1), self.dist, self.device)

    @torch.no_grad()
    def validate(self) -> dict:
        """Whole validation cases on the network grid: loss, Dice/IoU per region, MC accuracy.

        Under torchrun every rank takes every world-th case (the predictor is seeded, so a case's
        numbers do not depend on the rank); the rows are gathered and averaged in case order,
        exactly as in a single process.
        """
        self.model.eval()
        keys = self.store.usable(self.split["val"]) or self.store.usable(self.split["train"])[:1]
        mine = list(range(self.dist.rank, len(keys), self.dist.world))
        rows = []
        predictor = Predictor(self.model, self.device, window=(self.cfg.window or self.cfg.patch,) * 3,
                              mc_samples=self.cfg.val_mc_samples, keep_deterministic=True, seed=self.cfg.seed)
        for key in (keys[i] for i in mine):
            case = self.store.get(key)
            maps = predictor.predict(case.image)
            label = torch.from_numpy(case.label.astype(np.int64))[None]
            log_probs = torch.from_numpy(np.log(np.clip(maps.deterministic, 1e-8, 1.0)))[None]
            row = {"loss": float(self.loss.from_log_probs(log_probs, label))}
            pred = maps.deterministic.argmax(axis=0)
            for region, classes in REGIONS.items():
                m = overlap_metrics(np.isin(pred, classes), np.isin(case.label, classes))
                row[f"dice_{region}"], row[f"iou_{region}"] = m["dice"], m["iou"]
            row["mc_accuracy"] = mc_accuracy(maps.probabilities, case.label, mask=np.any(case.image != 0, axis=0))
            rows.append(row)
        if self.dist.active:
            by_index = {i: r for part in ddp.gather_objects(list(zip(mine, rows)), self.dist) for i, r in part}
            rows = [by_index[i] for i in sorted(by_index)]
        return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}

    def _bar(self, total: int, desc: str):
        if not self.dist.main or self.cfg.quiet:
            return None
        return tqdm(total=total, desc=desc, file=sys.stderr, dynamic_ncols=True, leave=False)

    def _write_logs(self) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in self.history:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        atomic_write_text(self.out / "metrics.csv", buf.getvalue())
        training_curves(self.history, self.out / "plots")

    def run(self, stop_after_epochs: int | None = None) -> list[dict]:
        last = self.cfg.epochs if stop_after_epochs is None else min(self.cfg.epochs,
                                                                      self.start_epoch + stop_after_epochs)
        try:
            for epoch in range(self.start_epoch, last):
                t0 = time.perf_counter()
                train_loss = self.train_epoch(epoch)
                val = self.validate()  # every rank validates its share of the cases
                if self.dist.main:
                    row = {"epoch": epoch + 1, "lr": self.optimizer.param_groups[0]["lr"], "train_loss": train_loss,
                           "val_loss": val["loss"], **{f"val_{k}": v for k, v in val.items() if k != "loss"},
                           "epoch_time_s": time.perf_counter() - t0}
                    self.history.append(row)
                    is_best = val["loss"] < self.best
                    self.best = min(self.best, val["loss"])
                    self._save(epoch, is_best)
                    self._write_logs()
                    self.log(f"epoch {epoch + 1}: train {train_loss:.4f} val {val['loss']:.4f} dice WT "
                             f"{val['dice_WT']:.3f} TC {val['dice_TC']:.3f} ET {val['dice_ET']:.3f}"
                             f"{' *' if is_best else ''} ({row['epoch_time_s']:.0f} s)")
                ddp.barrier(self.dist)
        finally:
            ddp.teardown(self.dist)
        return self.history


#: What a resumed run may change; everything else comes from the run's config.json.
RESUME_OVERRIDES = ("data", "data_root", "epochs", "device", "quiet", "workers", "threads", "ddp_timeout_min")


def resumed_config(cli: TrainConfig) -> TrainConfig:
    """The run's saved recipe (a resume with different model flags would not even load), plus runtime flags."""
    saved = Path(cli.out) / "config.json"
    if not saved.exists():
        raise BrainTumorXAIError(f"{saved}: nothing to resume (no config.json)")
    cfg = TrainConfig.load(saved)
    for name in RESUME_OVERRIDES:
        setattr(cfg, name, getattr(cli, name))
    if cli.sources:  # a curriculum: a resumed run may continue on another mixture (recorded in config.json)
        cfg.sources = cli.sources
    cfg.out = cli.out
    return cfg


def main(argv=None) -> int:
    cfg, resume, stop_after = parse_args(argv)

    def train() -> None:
        Trainer(resumed_config(cfg) if resume else cfg, resume).run(stop_after)

    return exit_code("training.train", train)


if __name__ == "__main__":
    sys.exit(main())
