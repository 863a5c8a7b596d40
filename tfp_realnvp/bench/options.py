"""`SpeedOptions`: what the speed benchmark measures (plain settings, no TensorFlow)."""

from __future__ import annotations

import dataclasses

from tfp_realnvp.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class SpeedOptions:
    """What `run_speed` measures. The architecture fields give the notebook's architecture
    (6 couplings, conditioners of 4 x 256 ReLU, batch 256, 2 columns) by default."""

    dim: int = 2
    batch_size: int = 256
    hidden_units: int = 256
    num_hidden_layers: int = 4
    num_couplings: int = 6
    steps: int = 50
    repeats: int = 3
    eval_points: int = 16384
    time_to_quality: bool = True
    quality_seed: int = 0
    quality_points: int = 3000
    notebook_max_epochs: int = 300
    fit_time_budget: float | None = None
    scaling: bool = False
    scaling_dims: tuple[int, ...] = (2, 8, 32, 64)
    scaling_widths: tuple[int, ...] = (64, 128, 256, 512)
    images: bool = False  # the image step at 32x32x3 (`image_speed`): minutes, so opt-in

    def __post_init__(self) -> None:
        for name in ("dim", "batch_size", "hidden_units", "num_hidden_layers",
                     "num_couplings", "steps", "repeats", "eval_points", "quality_points",
                     "notebook_max_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"'{name}' must be >= 1; got {getattr(self, name)}.")
        if self.dim < 2 or min(self.scaling_dims, default=2) < 2:
            raise ConfigError(f"A flow needs at least 2 columns; got dim {self.dim}, scaling "
                              f"dims {list(self.scaling_dims)}.")
