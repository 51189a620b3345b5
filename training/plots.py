"""Loss and Dice curves per epoch, and violin plots of per-case metrics."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .io_utils import atomic_savefig  # noqa: E402


def training_curves(history: list[dict], plot_dir: Path) -> list[Path]:
    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax.plot(epochs, [h["val_loss"] for h in history], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("Dice + Focal loss")
    ax.legend()
    loss = atomic_savefig(fig, Path(plot_dir) / "loss.png")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for region in ("WT", "TC", "ET"):
        ax.plot(epochs, [h[f"val_dice_{region}"] for h in history], label=region)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation Dice")
    ax.set_ylim(0, 1)
    ax.legend()
    dice = atomic_savefig(fig, Path(plot_dir) / "dice.png")
    plt.close(fig)
    return [loss, dice]


def violins(values: dict[str, list[float]], ylabel: str, path: Path) -> Path:
    names = [k for k, v in values.items() if v]
    fig, ax = plt.subplots(figsize=(1.4 * max(len(names), 2) + 1, 3.2))
    if names:
        ax.violinplot([values[n] for n in names], showmeans=True, showextrema=True)
        ax.set_xticks(range(1, len(names) + 1), names)
    ax.set_ylabel(ylabel)
    out = atomic_savefig(fig, path)
    plt.close(fig)
    return out
