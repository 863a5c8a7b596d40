"""Matplotlib figures of a flow: the notebook's four panels, density, marginals, NLL curves."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.gridspec import SubplotSpec
from matplotlib.ticker import MaxNLocator

from tfp_realnvp.bijectors.ensemble import num_members
from tfp_realnvp.config import FlowConfig
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.flow import decode, encode, flow_context_dim
from tfp_realnvp.rundir import atomic_write
from tfp_realnvp.sampling import stateless_seed

tfd = tfp.distributions

DPI = 100  # a figure of W x H inches is a PNG of (W * DPI) x (H * DPI) pixels
PANEL_INCHES = 3.2
MAX_PAIR_COLUMNS = 4  # pairwise marginals of the first 4 columns unless told otherwise
DATA_COLOR, MODEL_COLOR, LATENT_COLOR = "tab:blue", "tab:orange", "tab:green"


@dataclasses.dataclass(frozen=True)
class FlowPictures:
    """The arrays the figure draws, all `[rows, D]` float32 in data or latent units.

    ```none
    data     rows of the table (a seeded subset of at most `max_points`)
    latent   encode(flow, data)      = f^-1(data)       (member 0's map for an ensemble)
    base     z ~ N(0, I), tf.random.stateless_normal([num_samples, D], seed)
    decoded  decode(flow, base)      = f(z)             (member 0's map for an ensemble)
    samples  flow.sample(num_samples, seed)             (the whole model, every member)
    ```
    """

    data: np.ndarray
    latent: np.ndarray
    base: np.ndarray
    decoded: np.ndarray
    samples: np.ndarray


def base_samples(dim: int, num_samples: int, seed: int) -> np.ndarray:
    """`num_samples` draws of the flow's base N(0, I_dim), stateless: the seed decides."""
    return tf.random.stateless_normal([num_samples, dim], seed=stateless_seed(seed)).numpy()


def data_subset(data: np.ndarray, max_points: int, seed: int) -> np.ndarray:
    """At most `max_points` rows of `data`, a seeded choice kept in the table's order."""
    if len(data) <= max_points:
        return data
    keep = np.random.default_rng(seed).choice(len(data), max_points, replace=False)
    return data[np.sort(keep)]


def flow_pictures(flow: tfd.Distribution, data: np.ndarray, num_samples: int = 2000,
                  seed: int = 0, max_points: int = 2000) -> FlowPictures:
    """Maps the data to latent space and base draws to data space (see `FlowPictures`).

    Args:
      flow: an unconditional flow or ensemble over `[D]` events.
      data: `[N, D]` rows in data units (checked: finite, width D).
      num_samples: base draws and model samples.
      seed: seeds the draws and the choice of rows.
      max_points: rows of `data` drawn at most.
    """
    dim = int(flow.event_shape[-1])
    data = data_subset(_checked_data(data, dim), max_points, seed)
    base = base_samples(dim, num_samples, seed)
    return FlowPictures(
        data=data,
        latent=encode(flow, tf.constant(data)).numpy(),
        base=base,
        decoded=decode(flow, tf.constant(base)).numpy(),
        samples=flow.sample(num_samples, seed=stateless_seed(seed)).numpy(),
    )


def _checked_data(data: np.ndarray, dim: int) -> np.ndarray:
    from tfp_realnvp.tables import validate_array

    return validate_array(data, "plot data", expected_width=dim)


def check_columns(columns: Sequence[int] | None, dim: int) -> tuple[int, ...]:
    """The data columns to draw: `columns` checked (distinct, in [0, dim), at least 2), or
    the first `min(dim, MAX_PAIR_COLUMNS)`."""
    if columns is None:
        return tuple(range(min(dim, MAX_PAIR_COLUMNS)))
    columns = tuple(int(c) for c in columns)
    bad = [c for c in columns if not 0 <= c < dim]
    if bad or len(set(columns)) != len(columns) or len(columns) < 2:
        raise ConfigError(
            f"'columns' must be at least 2 distinct column indices in [0, {dim - 1}] (0-based; "
            f"the model has {dim} columns); got {list(columns)}.")
    return columns


def column_label(column: int, names: Sequence[str] | None = None, symbol: str = "x") -> str:
    """An axis label: the column's name from the table layout, else `x<position>`."""
    return names[column] if names is not None and symbol == "x" else f"{symbol}{column}"


def draw_maps(axes: Sequence[Axes], pictures: FlowPictures, columns: Sequence[int],
              ensemble: bool, names: Sequence[str] | None = None) -> None:
    """The original notebook's four panels, each a scatter of two columns `(a, b)`:
    data in data space, data in latent space, base draws, base draws in data space (their
    axes named by `names`, the event columns' names, when given)."""
    a, b = columns[:2]
    whose = "\n(member 0's map)" if ensemble else ""  # a line of its own: panels are narrow
    panels = [
        ("data", pictures.data, DATA_COLOR, "data in data space x", "x"),
        ("latent", pictures.latent, LATENT_COLOR, f"data mapped to latent z{whose}", "z"),
        ("base", pictures.base, "tab:gray", "base samples z ~ N(0, I)", "z"),
        ("decoded", pictures.decoded, MODEL_COLOR, f"base samples mapped to x{whose}", "x"),
    ]
    for axis, (label, rows, color, title, symbol) in zip(axes, panels, strict=True):
        axis.set_label(label)
        axis.scatter(rows[:, a], rows[:, b], s=2, color=color, alpha=0.6, linewidths=0)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel(column_label(a, names, symbol))
        axis.set_ylabel(column_label(b, names, symbol))
    limits = _limits(pictures.data, a), _limits(pictures.data, b)
    for axis in (axes[0], axes[3]):  # data space: the same window for data and samples
        axis.set_xlim(*limits[0])
        axis.set_ylim(*limits[1])
    for axis in (axes[1], axes[2]):
        axis.set_xlim(-4, 4)
        axis.set_ylim(-4, 4)


def _limits(rows: np.ndarray, column: int, pad: float = 0.15) -> tuple[float, float]:
    lo, hi = float(rows[:, column].min()), float(rows[:, column].max())
    margin = pad * (hi - lo) or 1.0
    return lo - margin, hi + margin


def log_density_grid(flow: tfd.Distribution, data: np.ndarray,
                     grid_size: int = 150) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(xs, ys, log_density)`: the 2-D flow's `log_prob` on a `grid_size` square grid
    over the data's range (plus 15%); `log_density[i, j]` is at `(xs[j], ys[i])`."""
    xs = np.linspace(*_limits(data, 0), grid_size, dtype=np.float32)
    ys = np.linspace(*_limits(data, 1), grid_size, dtype=np.float32)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    return xs, ys, flow.log_prob(grid).numpy().reshape(grid_size, grid_size)


def draw_log_density(axis: Axes, flow: tfd.Distribution, data: np.ndarray,
                     grid_size: int = 150, swap: bool = False,
                     names: Sequence[str] | None = None) -> np.ndarray:
    """The 2-D model's log-density map (floored 12 nats below its peak so the shape shows),
    x0 across and x1 up (`swap`: the other way round); returns the unfloored grid of
    `log_density_grid`."""
    xs, ys, log_density = log_density_grid(flow, data, grid_size)
    shown, extent = log_density, (xs[0], xs[-1], ys[0], ys[-1])
    if swap:
        shown, extent = log_density.T, (ys[0], ys[-1], xs[0], xs[-1])
    axis.set_label("log_density")
    image = axis.imshow(np.maximum(shown, log_density.max() - 12), origin="lower",
                        extent=extent, aspect="auto")
    axis.figure.colorbar(image, ax=axis)
    axis.set_xlabel(column_label(1 if swap else 0, names))
    axis.set_ylabel(column_label(0 if swap else 1, names))
    axis.set_title("model log-density log p(x)", fontsize=10)
    return log_density


def draw_pairs(figure: Figure, cell: SubplotSpec, data: np.ndarray, samples: np.ndarray,
               columns: Sequence[int], names: Sequence[str] | None = None) -> None:
    """Pairwise marginals: below the diagonal the data, above it the model's samples (axes
    labelled `pair_i_j`: column `columns[j]` across, `columns[i]` up), on the diagonal both
    histograms of column `columns[i]` (`pair_i_i`).

    The grid and its caption live in a subfigure of `cell`: the caption spans the whole
    grid, so the layout engine never widens one grid column to fit it."""
    k = len(columns)
    part = figure.add_subfigure(cell)
    grid = part.add_gridspec(k, k, wspace=0.05, hspace=0.05)
    for i, row in enumerate(columns):
        for j, col in enumerate(columns):
            axis = part.add_subplot(grid[i, j])
            axis.set_label(f"pair_{i}_{j}")
            if i == j:
                bins = np.linspace(*_limits(data, col), 40)
                axis.hist(data[:, col], bins=bins, density=True, color=DATA_COLOR, alpha=0.5)
                axis.hist(samples[:, col], bins=bins, density=True, color=MODEL_COLOR,
                          histtype="step")
                axis.set_yticks([])
            else:
                rows, color = (data, DATA_COLOR) if i > j else (samples, MODEL_COLOR)
                axis.scatter(rows[:, col], rows[:, row], s=1, color=color, alpha=0.5,
                             linewidths=0)
                axis.set_ylim(*_limits(data, row))
            axis.set_xlim(*_limits(data, col))
            if i == k - 1:
                axis.set_xlabel(column_label(col, names))
            else:
                axis.set_xticklabels([])
            if j == 0 and i != j:
                axis.set_ylabel(column_label(row, names))
            elif i != j:
                axis.set_yticklabels([])
    part.suptitle(
        "pairwise marginals: data (blue, below the diagonal) against model samples (orange, "
        "above; histograms of both on the diagonal)", fontsize=9, wrap=True)


def draw_history(axis: Axes, metrics: dict[str, Any]) -> None:
    """Train and validation NLL per epoch from metrics.json's `history`, with the Gaussian
    start (epoch 0's validation NLL) and, where recorded, the held-out test NLL as lines."""
    history = metrics["history"]
    epochs = [h["epoch"] for h in history]
    axis.set_label("history")
    axis.plot(epochs, [h["train_nll"] for h in history], color=DATA_COLOR, label="train")
    axis.plot(epochs, [h["validation_nll"] for h in history], color=MODEL_COLOR,
              label="validation")
    references = [("initial_validation_nll", "Gaussian start (epoch 0)", "tab:gray"),
                  ("test_nll", "held-out test", "tab:red")]
    for key, label, color in references:
        if metrics.get(key) is not None:
            axis.axhline(metrics[key], color=color, linestyle="--", linewidth=1, label=label)
    if metrics.get("best_epoch"):
        axis.axvline(metrics["best_epoch"], color="tab:green", linestyle=":", linewidth=1,
                     label=f"best epoch {metrics['best_epoch']}")
    values = [h[k] for h in history for k in ("train_nll", "validation_nll")]
    values += [metrics[k] for k, _, _ in references if metrics.get(k) is not None]
    top = metrics.get("initial_validation_nll")
    if top is not None and values:  # early epochs can sit far above: keep the start in view
        bottom = min(values)
        axis.set_ylim(bottom - 0.05 * (top - bottom + 1e-3),
                      top + 0.25 * (top - bottom + 1e-3))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(set(epochs)) == 1:  # one epoch: a window around it, so the ticks are integers
        axis.set_xlim(epochs[0] - 1, epochs[0] + 1)
    axis.set_xlabel("epoch")
    axis.set_ylabel("NLL (nats per row)")
    axis.set_title("training", fontsize=10)
    axis.legend(fontsize=8)


def has_history(metrics: dict[str, Any] | None) -> bool:
    return bool(metrics and metrics.get("history"))


def plot_model(flow: tfd.Distribution, data: np.ndarray, metrics: dict[str, Any] | None = None,
               columns: Sequence[int] | None = None, num_samples: int = 2000, seed: int = 0,
               grid_size: int = 150, max_points: int = 2000,
               title: str | None = None, names: Sequence[str] | None = None) -> Figure:
    """One figure of a trained flow, returned (`save_png` writes it).

    Rows of panels (axes carry labels, see `draw_*`):
      1. the notebook's four panels (`draw_maps`) in columns `columns[:2]`; for a 2-D
         model also its log-density map;
      2. for D > 2, pairwise marginals of data against model samples over `columns`
         (default: the first 4);
      3. with a `metrics` dict holding a `history`, the NLL curves per epoch.

    Args:
      flow: a trained unconditional flow or ensemble (from `fit`, `load`, ...).
      data: `[N, D]` rows in data units, e.g. the training table.
      metrics: a run's metrics.json (or None: no curves).
      columns: data columns (0-based) to draw; None: the first few.
      num_samples: base draws and model samples.
      seed: seeds the draws and the choice of at most `max_points` data rows.
      grid_size: points per axis of the log-density map.
      max_points: data rows drawn at most.
      title: a line above the figure.
      names: the event columns' names (`TableLayout.event_names`) for the axes; None:
        x0, x1, ...
    """
    if flow_context_dim(flow):
        raise ConfigError("Plots draw unconditional flows; this one is conditional "
                          "(context_dim > 0): map it per context with tfp_realnvp.flow.encode "
                          "and decode instead.")
    dim = int(flow.event_shape[-1])
    columns = check_columns(columns, dim)
    if names is not None and len(names) != dim:
        raise ConfigError(f"'names' must name the {dim} event columns; got {list(names)}.")
    pictures = flow_pictures(flow, data, num_samples, seed, max_points)
    width = 5 if dim == 2 else 4
    rows = [("maps", PANEL_INCHES)]
    if dim > 2:
        rows.append(("pairs", 2.4 * len(columns)))
    if has_history(metrics):
        rows.append(("history", PANEL_INCHES))
    figure = Figure(figsize=(width * PANEL_INCHES, sum(h for _, h in rows) + 0.6),
                    layout="constrained")
    outer = figure.add_gridspec(len(rows), 1, height_ratios=[h for _, h in rows])
    for index, (kind, _) in enumerate(rows):
        if kind == "maps":
            cells = outer[index].subgridspec(1, width)
            axes = [figure.add_subplot(cells[0, i]) for i in range(width)]
            draw_maps(axes[:4], pictures, columns, num_members(flow) > 1, names)
            if dim == 2:
                draw_log_density(axes[4], flow, pictures.data, grid_size,
                                 swap=tuple(columns[:2]) == (1, 0), names=names)
        elif kind == "pairs":
            draw_pairs(figure, outer[index], pictures.data, pictures.samples, columns, names)
        else:
            draw_history(figure.add_subplot(outer[index]), metrics)
    if title:
        figure.suptitle(title)
    return figure


def samples_figure(flow: tfd.Distribution, rows: np.ndarray, num_samples: int = 1000,
                   seed: int = 0, grid_size: int = 60, title: str | None = None) -> Figure:
    """A 2-D model at a glance (TensorBoard's image): data rows (`data`), model samples
    (`samples`) and the log-density map (`log_density`), on the data's window."""
    rows = data_subset(np.asarray(rows, np.float32), num_samples, seed)
    samples = flow.sample(num_samples, seed=stateless_seed(seed)).numpy()
    # Fixed margins: constrained layout would double the time of this figure, drawn
    # during training.
    figure = Figure(figsize=(3 * PANEL_INCHES, PANEL_INCHES))
    figure.subplots_adjust(left=0.05, right=0.97, bottom=0.09, top=0.82, wspace=0.22)
    axes = figure.subplots(1, 3)
    for axis, label, points, color in ((axes[0], "data", rows, DATA_COLOR),
                                       (axes[1], "samples", samples, MODEL_COLOR)):
        axis.set_label(label)
        axis.scatter(points[:, 0], points[:, 1], s=2, color=color, alpha=0.6, linewidths=0)
        axis.set_title("training rows" if label == "data" else "model samples", fontsize=10)
        axis.set_xlim(*_limits(rows, 0))
        axis.set_ylim(*_limits(rows, 1))
    draw_log_density(axes[2], flow, rows, grid_size)
    axes[2].set_xlabel("")
    axes[2].set_ylabel("")
    if title:
        figure.suptitle(title)
    return figure


def save_png(figure: Figure, path: str | os.PathLike) -> None:
    """Writes `figure` as a PNG of `figure size x DPI` pixels, atomically (a reader sees
    the old file or the new one). A bare `Figure` renders with the Agg canvas and leaves
    pyplot's backend (and a notebook's inline figures) alone."""
    if not str(path).lower().endswith(".png"):
        raise ConfigError(f"Figures are written as PNG: the file name must end in .png; got "
                          f"{os.fspath(path)!r}.")
    with atomic_write(path) as tmp:
        figure.savefig(tmp, dpi=DPI, format="png")


def figure_pixels(figure: Figure) -> np.ndarray:
    """The figure rendered as an RGBA `uint8` array `[height, width, 4]` (at `DPI`)."""
    figure.set_dpi(DPI)
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def plot_flow(flow: tfd.Distribution, data: np.ndarray, path: str | os.PathLike,
              num_samples: int = 3000, seed: int = 0, grid_size: int = 200,
              metrics: dict[str, Any] | None = None,
              columns: Sequence[int] | None = None) -> Figure:
    """`plot_model` written to `path` (a .png); returns the figure."""
    figure = plot_model(flow, data, metrics, columns, num_samples, seed, grid_size)
    save_png(figure, path)
    return figure


def config_title(config: FlowConfig, source: str) -> str:
    """A one-line description of a model for a figure's title."""
    members = f", ensemble of {config.ensemble_size}" if config.ensemble_size > 1 else ""
    return (f"{source}: {config.event_dim}-D, {config.num_couplings} {config.coupling} "
            f"couplings{members}")

