"""Figures drawn without a GUI toolkit: the loss curve and input / actual / predicted grids."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from colorize_cli.files import atomic_path  # noqa: E402


def plot_losses(history, path: Path, title: str = "") -> None:
    """Train and validation loss per epoch."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    epochs = range(1, len(history.train_loss) + 1)
    ax.plot(epochs, history.train_loss, label="train")
    ax.plot(epochs, history.val_loss, label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
