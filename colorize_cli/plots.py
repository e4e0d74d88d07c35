"""Figures drawn without a GUI toolkit: the loss curve and input / actual / predicted grids."""

from pathlib import Path

from colorize_cli.files import atomic_path
from colorize_cli.process import configure_process


def _pyplot():
    """matplotlib's pyplot, imported only when a figure is drawn, after configure_process chose its backend."""
    configure_process()
    import matplotlib.pyplot as plt

    return plt


def plot_losses(history, path: Path, title: str = "") -> None:
    """Train and validation loss per epoch."""
    plt = _pyplot()
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


GRID_TILE_INCHES = 2.0
GRID_DPI = 100  # each tile is GRID_TILE_INCHES * GRID_DPI pixels square


def plot_comparison_grid(names, grey, actual, predicted: dict, errors: dict, path: Path) -> None:
    """Rows input (grey) / actual / one predicted row per label in `predicted`, one column per image;
    each predicted tile labelled with its MSE from `errors`. The PNG is exactly rows x columns tiles."""
    plt = _pyplot()
    rows = [("input (grey)", grey, None), ("actual", actual, None)]
    rows += [(f"predicted\n{label}", images, errors[label]) for label, images in predicted.items()]
    size = (len(names) * GRID_TILE_INCHES, len(rows) * GRID_TILE_INCHES)
    fig, axes = plt.subplots(len(rows), len(names), figsize=size, dpi=GRID_DPI, squeeze=False, layout="constrained")
    for r, (label, images, mses) in enumerate(rows):
        for c, image in enumerate(images):
            ax = axes[r][c]
            ax.imshow(image, vmin=0.0, vmax=1.0, interpolation="antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                name = names[c] if len(names[c]) <= 28 else "..." + names[c][-25:]  # keep the tile width
                ax.set_title(name, fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
            if mses is not None:
                ax.set_xlabel(f"MSE {mses[c]:.4f}", fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=GRID_DPI)
    plt.close(fig)
