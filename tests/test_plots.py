"""The 2-D figure is drawn from the flow and written as a PNG."""

import numpy as np
import pytest

from tfp_realnvp import FlowConfig, build_flow
from tfp_realnvp.data import make_toy
from tfp_realnvp.plots import plot_flow


def test_plot_flow_writes_a_png(tmp_path):
    flow = build_flow(FlowConfig(num_couplings=2, hidden_units=8))
    plot_flow(flow, make_toy("moons", 200), tmp_path / "flow.png", num_samples=200,
              grid_size=40)
    data = (tmp_path / "flow.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_plot_flow_refuses_other_dimensions(tmp_path):
    flow = build_flow(FlowConfig(event_dim=3, num_couplings=2, hidden_units=8))
    with pytest.raises(ValueError, match="draws 2-D flows"):
        plot_flow(flow, np.zeros((5, 3), np.float32), tmp_path / "x.png")


def test_plot_flow_leaves_the_callers_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    flow = build_flow(FlowConfig(num_couplings=2, hidden_units=8))
    plot_flow(flow, make_toy("moons", 100), tmp_path / "flow.png", num_samples=100,
              grid_size=20)
    assert matplotlib.get_backend() == before
