"""Plots people would rather look at than read: training curves (matplotlib PNG, written atomically)."""
from .files import atomic_path


def save_png(fig, path, **savefig_options):
    """Write a matplotlib figure to ``path`` as PNG, atomically, and close it."""
    import matplotlib.pyplot as plt
    savefig_options.setdefault("dpi", 100)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", **savefig_options)
    plt.close(fig)


def plot_curves(path, history, title=""):
    """Rewrite the training-curve PNG: one panel per metric group of ``history`` (a dict name -> list of
    per-epoch values; names containing 'loss' share the left panel, the rest the right one)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    losses = {k: v for k, v in history.items() if "loss" in k and v}
    scores = {k: v for k, v in history.items() if "loss" not in k and v}
    panels = [(p, label) for p, label in ((losses, "loss"), (scores, "score")) if p]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5.5 * max(len(panels), 1), 4), squeeze=False)
    for ax, (series, label) in zip(axes[0], panels):
        for name, values in sorted(series.items()):
            ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    save_png(fig, path)
