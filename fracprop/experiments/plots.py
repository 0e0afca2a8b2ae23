"""Figures of a training run."""

from __future__ import annotations

from pathlib import Path

from .tasks import TaskData


def _plots(history: list[dict], data: TaskData, params, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in history if "loss" in r]
    losses = [r["loss"] for r in history if "loss" in r]
    evals = [r for r in history if "train_loss" in r]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(steps, losses, lw=0.8, alpha=0.6, label="batch loss")
    ax.semilogy([r["step"] for r in evals], [r["train_loss"] for r in evals], "o-", label="train")
    ax.semilogy([r["step"] for r in evals], [r["test_loss"] for r in evals], "s-", label="test")
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "loss.png", dpi=110)
    plt.close(fig)
    if evals and "test_accuracy" in evals[-1]:
        fig, ax = plt.subplots(figsize=(6, 4))
        for split in ("train", "test"):
            ax.plot(
                [r["step"] for r in evals],
                [r[f"{split}_accuracy"] for r in evals],
                "o-",
                label=split,
            )
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "accuracy.png", dpi=110)
        plt.close(fig)
    if data.plot is not None:
        data.plot(params, out_dir / "trajectories.png")
