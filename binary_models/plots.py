"""Plots people would rather look at than read: training curves (matplotlib PNG, written atomically)."""
from .storage import atomic_path


def save_png(fig, path, **savefig_options):
    """Write a matplotlib figure to ``path`` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt
    savefig_options.setdefault("dpi", 100)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig_options)
    plt.close(fig)


def plot_curves(path, history, title="", batch_losses=None):
    """Rewrite the training-curve PNG: one panel per metric group of ``history`` (a dict name -> list of
    per-epoch values; names containing 'loss' share the left panel, the rest the right one). Epochs are
    numbered from 0, as in the logs and checkpoint names; ``batch_losses`` (``[(x, loss), ...]``, ``x`` the
    epoch plus the fraction of it done) adds the training loss of every batch, centred on its epoch."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    losses = {k: v for k, v in history.items() if "loss" in k and v}
    scores = {k: v for k, v in history.items() if "loss" not in k and v}
    panels = [(p, label) for p, label in ((losses, "loss"), (scores, "score")) if p]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, (series, label) in zip(axes[0], panels):
        if label == "loss" and batch_losses:
            x, y = zip(*batch_losses)
            ax.plot([v - 0.5 for v in x], y, linewidth=0.8, alpha=0.5, label="training loss per batch")
        for name, values in sorted(series.items()):
            ax.plot(range(len(values)), values, marker="o", label=name)
        epochs = max(len(v) for v in series.values())
        ax.set_xlim(-0.5, epochs - 0.5)  # epoch e spans [e - 0.5, e + 0.5): its batches, centred on its point
        ax.set_xlabel("epoch (from 0, as in the log)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
