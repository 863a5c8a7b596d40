"""Figures draw the model's own maps, samples, density and history; PNGs; `plot` CLI."""

import json
import struct

import matplotlib
import matplotlib.image
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner
from conftest import randomise_weights, suite_flow

import tfp_realnvp
from tfp_realnvp import FlowConfig, build_flow
from tfp_realnvp.cli import cli
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.flow import decode, encode
from tfp_realnvp.plots import (
    DPI,
    figure_pixels,
    plot_flow,
    plot_model,
    samples_figure,
    save_png,
)
from tfp_realnvp.tables import make_toy

HISTORY = {"history": [{"epoch": e, "train_nll": 2.0 - 0.1 * e, "validation_nll": 2.1 - 0.08 * e,
                        "seconds": 0.1} for e in range(1, 6)],
           "initial_validation_nll": 2.2, "best_epoch": 5, "test_nll": 1.75}


def axes_of(figure) -> dict:
    return {axis.get_label(): axis for axis in figure.axes if axis.get_label()}


def offsets(axis, index: int = 0) -> np.ndarray:
    return np.asarray(axis.collections[index].get_offsets())


@pytest.fixture(scope="module")
def flow_2d():
    """A 2-D flow far from the identity, with a data map fitted on moons."""
    data = make_toy("moons", 300, seed=1)
    config = FlowConfig(num_couplings=3, hidden_units=8,
                        **tfp_realnvp.prepare.affine_stats(data, whiten=True))
    flow = build_flow(config)
    randomise_weights(flow, seed=2, scale=0.3)
    return flow, data


def test_the_four_panels_are_the_flows_maps(flow_2d):
    flow, data = flow_2d
    figure = plot_model(flow, data, num_samples=256, seed=3, grid_size=30)
    axes = axes_of(figure)
    np.testing.assert_array_equal(offsets(axes["data"]), data)
    np.testing.assert_allclose(offsets(axes["latent"]), encode(flow, tf.constant(data)),
                               rtol=1e-5, atol=1e-5)
    base = tf.random.stateless_normal([256, 2], seed=[0, 3]).numpy()
    np.testing.assert_array_equal(offsets(axes["base"]), base)
    decoded = decode(flow, tf.constant(base)).numpy()
    np.testing.assert_allclose(offsets(axes["decoded"]), decoded, rtol=1e-5, atol=1e-5)
    assert np.abs(decoded - base).max() > 0.5  # the maps are not the identity
    # The panels are each other's inverse maps: encode(decoded samples) is the base.
    np.testing.assert_allclose(encode(flow, tf.constant(decoded)), base, atol=1e-3)
    assert "member 0" not in axes["latent"].get_title()
    assert "history" not in axes and "pair_0_1" not in axes  # no metrics, D = 2


def test_the_density_map_is_the_flows_log_prob(flow_2d):
    flow, data = flow_2d
    axis = axes_of(plot_model(flow, data, num_samples=64, grid_size=25))["log_density"]
    image = np.asarray(axis.images[0].get_array())
    left, right, bottom, top = axis.images[0].get_extent()
    xs, ys = np.linspace(left, right, 25), np.linspace(bottom, top, 25)
    points = np.array([[xs[j], ys[i]] for i in (0, 7, 24) for j in (0, 12, 24)], np.float32)
    expected = flow.log_prob(points).numpy()
    shown = np.array([image[i, j] for i in (0, 7, 24) for j in (0, 12, 24)])
    floor = image.max() - 12
    np.testing.assert_allclose(shown, np.maximum(expected, floor), rtol=1e-4, atol=1e-4)
    assert data[:, 0].min() > left and data[:, 1].max() < top  # the grid covers the data


def test_the_curves_are_the_metrics_history(flow_2d):
    flow, data = flow_2d
    axis = axes_of(plot_model(flow, data, HISTORY, num_samples=64, grid_size=10))["history"]
    train, validation = axis.get_lines()[:2]
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3, 4, 5])
    np.testing.assert_allclose(train.get_ydata(), [h["train_nll"] for h in HISTORY["history"]])
    np.testing.assert_allclose(validation.get_ydata(),
                               [h["validation_nll"] for h in HISTORY["history"]])
    levels = {line.get_label(): line.get_ydata()[0] for line in axis.get_lines()[2:]}
    assert levels["Gaussian start (epoch 0)"] == 2.2 and levels["held-out test"] == 1.75


def test_more_columns_draw_pairwise_marginals_and_ensembles_say_member_0():
    config, flow = suite_flow("ensemble-spline-lu-3d")
    data = flow.sample(150, seed=tf.constant([4, 4])).numpy()
    figure = plot_model(flow, data, num_samples=200, seed=5)
    axes = axes_of(figure)
    assert sorted(k for k in axes if k.startswith("pair")) == [
        f"pair_{i}_{j}" for i in range(3) for j in range(3)]
    assert "log_density" not in axes
    assert "member 0's map" in axes["latent"].get_title()
    np.testing.assert_allclose(offsets(axes["latent"]),
                               encode(flow, tf.constant(data), member=0)[:, :2], atol=1e-4)
    other = encode(flow, tf.constant(data), member=1).numpy()[:, :2]
    assert np.abs(offsets(axes["latent"]) - other).max() > 0.1  # member 0, not another
    samples = flow.sample(200, seed=tf.constant([0, 5])).numpy()
    np.testing.assert_allclose(offsets(axes["pair_2_0"]), data[:, [0, 2]])  # below: data
    np.testing.assert_allclose(offsets(axes["pair_0_2"]), samples[:, [2, 0]], rtol=1e-5)
    assert len(axes["pair_1_1"].patches) > 0  # histograms on the diagonal
    chosen = axes_of(plot_model(flow, data, columns=[2, 0], num_samples=50))
    assert sorted(k for k in chosen if k.startswith("pair")) == [
        "pair_0_0", "pair_0_1", "pair_1_0", "pair_1_1"]
    np.testing.assert_allclose(offsets(chosen["data"]), data[:, [2, 0]])
    np.testing.assert_allclose(offsets(chosen["pair_1_0"]), data[:, [2, 0]])


def png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n" and header[12:16] == b"IHDR"
    return struct.unpack(">II", header[16:24])


def test_png_is_the_figure_at_its_size_and_written_whole(flow_2d, tmp_path):
    flow, data = flow_2d
    figure = plot_flow(flow, data, tmp_path / "flow.png", num_samples=100, grid_size=20,
                       metrics=HISTORY)
    width, height = (round(v * DPI) for v in figure.get_size_inches())
    assert png_size(tmp_path / "flow.png") == (width, height) == (1600, 700)
    pixels = matplotlib.image.imread(tmp_path / "flow.png")
    assert pixels.shape[:2] == (700, 1600) and pixels.std() > 0.05  # not a blank image
    with pytest.raises(ConfigError, match="must end in .png; got '.*flow.jpg'"):
        save_png(figure, tmp_path / "flow.jpg")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flow.png"]  # no partial files


def test_bad_columns_and_conditional_flows_are_refused(flow_2d):
    flow, data = flow_2d
    for columns in ([0, 2], [1, 1], [0], [-1, 0]):
        with pytest.raises(ConfigError, match=r"at least 2 distinct column indices in \[0, 1\]"):
            plot_model(flow, data, columns=columns)
    conditional = build_flow(FlowConfig(num_couplings=2, hidden_units=8, context_dim=1))
    with pytest.raises(ConfigError, match="unconditional flows"):
        plot_model(conditional, data)
    with pytest.raises(tfp_realnvp.DataError, match="3 columns; this model expects 2"):
        plot_model(flow, np.zeros((5, 3), np.float32))


def test_samples_figure_draws_the_flows_samples(flow_2d):
    flow, data = flow_2d
    axes = axes_of(samples_figure(flow, data, num_samples=128, seed=6, grid_size=10))
    np.testing.assert_allclose(offsets(axes["samples"]),
                               flow.sample(128, seed=tf.constant([0, 6])), rtol=1e-5)
    assert offsets(axes["data"]).shape == (128, 2) and "log_density" in axes


def test_plots_leave_the_callers_backend_alone(flow_2d, tmp_path):
    before = matplotlib.get_backend()
    plot_flow(flow_2d[0], flow_2d[1], tmp_path / "flow.png", num_samples=50, grid_size=10)
    assert matplotlib.get_backend() == before


TINY = ["--num-points", "300", "--epochs", "3", "--num-couplings", "2", "--hidden-units", "8",
        "--batch-size", "64", "--coupling", "affine", "--ensemble-size", "1",
        "--no-jit-compile", "--quiet"]


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_cli_fit_plot_and_plot_draw_the_trained_model(tmp_path):
    run = tmp_path / "run"
    result = invoke("fit", "--out", run, "--plot", "--tensorboard", "--export",
                    tmp_path / "exports", *TINY)
    assert result.exit_code == 0, result.output
    assert f"figure: {run / 'flow.png'}" in result.output
    assert f"tensorboard --logdir {run / 'tensorboard'}" in result.output
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert png_size(run / "flow.png") == (1600, 700)  # 2-D: maps + density, curves
    # The CLI's picture is the library's picture of the saved model on the run's data.
    metrics = json.loads((run / "metrics.json").read_text())
    expected = plot_model(tfp_realnvp.load(run), make_toy("moons", 300, 0.05, 0), metrics,
                          title=f"{run}: 2-D, 2 affine couplings")
    save_png(expected, tmp_path / "expected.png")
    np.testing.assert_array_equal(matplotlib.image.imread(run / "flow.png"),
                                  matplotlib.image.imread(tmp_path / "expected.png"))
    other = invoke("plot", run, "-o", tmp_path / "seed1.png", "--seed", 1)
    assert other.exit_code == 0, other.output
    assert not np.array_equal(matplotlib.image.imread(tmp_path / "seed1.png"),
                              matplotlib.image.imread(run / "flow.png"))
    # An export has no data: --data is needed, and -o (an export is never written into).
    export = tmp_path / "exports" / "realnvp"
    refused = invoke("plot", export)
    assert refused.exit_code == 2 and "-o FILE.png" in refused.output
    refused = invoke("plot", export, "-o", tmp_path / "e.png")
    assert refused.exit_code == 2 and "pass the rows to draw with --data FILE" in refused.output
    np.save(tmp_path / "rows.npy", make_toy("moons", 200, seed=9))
    drawn = invoke("plot", export, "--data", tmp_path / "rows.npy", "-o", tmp_path / "e.png")
    assert drawn.exit_code == 0, drawn.output
    assert png_size(tmp_path / "e.png") == (1600, 700)  # the export keeps metrics.json
    bad = invoke("plot", run, "--columns", "0,7", "-o", tmp_path / "x.png")
    assert bad.exit_code == 1 and "column indices in [0, 1]" in bad.output
    assert invoke("plot", run, "-o", tmp_path / "x.svg").exit_code == 2
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "x.svg").exists()


def test_axes_carry_the_layouts_column_names(flow_2d):
    flow, data = flow_2d
    axes = axes_of(plot_model(flow, data, num_samples=64, grid_size=10,
                              names=("width", "height")))
    assert (axes["data"].get_xlabel(), axes["data"].get_ylabel()) == ("width", "height")
    assert axes["decoded"].get_xlabel() == "width" and axes["latent"].get_xlabel() == "z0"
    assert axes["log_density"].get_ylabel() == "height"
    unnamed = axes_of(plot_model(flow, data, num_samples=64, grid_size=10))
    assert unnamed["data"].get_xlabel() == "x0"
    with pytest.raises(ConfigError, match="'names' must name the 2 event columns"):
        plot_model(flow, data, num_samples=64, grid_size=10, names=("a",))


# --- layout: every width of table gets a figure with no gap and no cut-off text ---------------


def layout_faults(figure) -> list[str]:
    """What a reader would see as broken in `figure` drawn at `DPI`: an axes or a text out
    of the figure (cut off), two titles over each other, an axes with nothing drawn, or a
    wide empty stretch between neighbouring axes of a row (an empty grid column)."""
    figure_pixels(figure)  # draws it with the Agg canvas, at DPI
    renderer = figure.canvas.get_renderer()
    frame = figure.bbox
    faults = []

    def inside(box) -> bool:
        return (box.x0 >= frame.x0 - 1 and box.y0 >= frame.y0 - 1
                and box.x1 <= frame.x1 + 1 and box.y1 <= frame.y1 + 1)

    boxes = {}
    for index, axis in enumerate(figure.axes):
        name = axis.get_label() or f"axes {index}"
        if not axis.get_visible() or not (axis.has_data() or axis.images):
            faults.append(f"{name} is empty")
        boxes[name] = axis.get_tightbbox(renderer)
        if not inside(boxes[name]):
            faults.append(f"{name} is cut off: {boxes[name]}")
    titles = [(a.get_label(), a.title) for a in figure.axes if a.get_title()]
    for part in (figure, *figure.subfigs):  # the figure's title and the subfigures' captions
        if part.get_suptitle():
            titles.append((f"caption {part.get_suptitle()[:20]!r}", part._suptitle))
    extents = [(name, text.get_window_extent(renderer)) for name, text in titles]
    for name, box in extents:
        if not inside(box):
            faults.append(f"the title of {name} is cut off: {box}")
    for i, (name, box) in enumerate(extents):
        faults += [f"titles of {name} and {other} overlap" for other, box2 in extents[i + 1:]
                   if box.overlaps(box2)]
    gap_limit = 0.6 * DPI  # px: wider than any margin of tick labels and a y label
    for name, box in boxes.items():
        right = [b.x0 - box.x1 for other, b in boxes.items() if other != name
                 and b.x0 >= box.x1 - 1 and min(b.y1, box.y1) > max(b.y0, box.y0)]
        if right and min(right) > gap_limit:
            faults.append(f"an empty stretch of {min(right):.0f} px right of {name}")
    return faults


@pytest.mark.parametrize(("dim", "columns"), [(3, None), (4, None), (8, None),
                                               (8, list(range(8)))])
def test_figures_hold_at_every_width(dim, columns):
    rng = np.random.default_rng(dim)
    data = (rng.normal(size=(200, dim)) @ rng.normal(size=(dim, dim))).astype(np.float32)
    flow = build_flow(FlowConfig(event_dim=dim, num_couplings=2, hidden_units=4,
                                 ensemble_size=3))  # the longest titles: "member 0's map"
    figure = plot_model(flow, data, HISTORY, columns, num_samples=100, grid_size=10,
                        title=f"table.csv: {dim}-D, 2 affine couplings, ensemble of 3")
    shown = len(columns or range(min(dim, 4)))
    assert sum(a.get_label().startswith("pair_") for a in figure.axes) == shown ** 2
    assert layout_faults(figure) == []


def test_the_layout_check_sees_a_cut_title_and_an_empty_column(flow_2d):
    flow, data = flow_2d
    figure = plot_model(flow, data, num_samples=50, grid_size=10)
    axes = axes_of(figure)
    axes["data"].set_title("a title far too long for its narrow panel " * 4)
    figure.add_subplot(5, 9, 45).set_label("nothing")  # an empty axes at the bottom right
    faults = layout_faults(figure)
    assert any("title of data is cut off" in f for f in faults), faults
    assert "nothing is empty" in faults and any("titles of data and" in f for f in faults)


def test_a_one_epoch_history_gets_whole_epoch_ticks(flow_2d):
    flow, data = flow_2d
    one = {**HISTORY, "history": HISTORY["history"][:1], "best_epoch": 1}
    axis = axes_of(plot_model(flow, data, one, num_samples=50, grid_size=10))["history"]
    figure_pixels(axis.figure)
    ticks = [t for t in axis.get_xticks() if axis.get_xlim()[0] <= t <= axis.get_xlim()[1]]
    assert 1 in ticks and all(float(t).is_integer() for t in ticks)
