"""`FlowConfig` and `TrainConfig`: plain data (no TensorFlow), one table of settings.

Each setting is a dataclass field whose metadata (`Setting`) holds its help text and its
rules (choices, bounds). The same table validates the dataclass, builds the CLI options and
documents the JSON a run keeps beside its weights.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

from tfp_realnvp.errors import ConfigError

ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "elu")
PERMUTATIONS = ("reverse", "random")
SCHEDULES = ("cosine", "constant")
STRATEGIES = ("default", "mirrored")
TOY_DATASET_NAMES = ("moons", "circles", "blobs", "swissroll")


@dataclasses.dataclass(frozen=True)
class Setting:
    """How a config field is checked and shown: help text, allowed values, bounds.

    `cli=False` marks fields that the library sets itself (data statistics, seeds derived
    from `--seed`); `resumable=True` marks the ones a resumed run may change.
    """

    help: str
    choices: tuple[str, ...] | None = None
    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False
    cli: bool = True
    resumable: bool = False

    def check(self, name: str, value: Any) -> None:
        """Raises ConfigError quoting the field, the rule and the value it got."""
        if value is None:
            return
        if self.choices is not None and value not in self.choices:
            raise ConfigError(f"'{name}' must be one of {self.choices}; got {value!r}.")
        below = self.low is not None and (value <= self.low if self.low_open else value < self.low)
        above = self.high is not None and (
            value >= self.high if self.high_open else value > self.high)
        if not (below or above):
            return
        if self.high is None:
            sign = ">" if self.low_open else ">="
            raise ConfigError(f"'{name}' must be {sign} {self.low:g}; got {value!r}.")
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        raise ConfigError(f"'{name}' must be in {left}{self.low:g}, {self.high:g}{right}; "
                          f"got {value!r}.")


def setting(default: Any, help: str, **rules: Any) -> Any:
    """A dataclass field carrying its `Setting`."""
    return dataclasses.field(default=default, metadata={"setting": Setting(help, **rules)})


def settings(cls: type) -> Iterator[tuple[dataclasses.Field, Setting]]:
    """The fields of a config class that carry a `Setting`, in declaration order."""
    for field in dataclasses.fields(cls):
        if "setting" in field.metadata:
            yield field, field.metadata["setting"]


class _Config:
    """JSON round trip and table-driven validation shared by the two configs."""

    def _check_settings(self) -> None:
        for field, rule in settings(type(self)):
            rule.check(field.name, getattr(self, field.name))

    def replace(self, **changes: Any):
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown {cls.__name__} fields {unknown}; known: {sorted(known)}.")
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class FlowConfig(_Config):
    """Everything needed to rebuild a flow exactly; weights live in checkpoints.

    `data_shift`/`data_scale` are the standardisation statistics of the training data
    (per-dimension mean and standard deviation): the flow's last bijector maps the
    standardised space back to data units, so `log_prob` and `sample` are in data units.
    """

    event_dim: int = setting(2, "Width of an event (columns of the data).", low=2, cli=False)
    num_couplings: int = setting(8, "Number of coupling layers.", low=2)
    hidden_units: int = setting(64, "Width of each conditioner's hidden layers.", low=1)
    num_hidden_layers: int = setting(3, "Hidden layers per conditioner.", low=1)
    activation: str = setting("silu", "Conditioner activation.", choices=ACTIVATIONS)
    log_scale_bound: float = setting(
        2.0, "Bound B on each log-scale: s = B tanh(raw / B).", low=0, low_open=True)
    permutation: str = setting("reverse", "Permutation between couplings.",
                               choices=PERMUTATIONS)
    permutation_seed: int = setting(0, "Seed of random permutations.", low=0, cli=False)
    context_dim: int = setting(0, "Width of the conditioning context (0: none).", low=0,
                               cli=False)
    data_shift: tuple[float, ...] | None = setting(
        None, "Per-column mean of the training data.", cli=False)
    data_scale: tuple[float, ...] | None = setting(
        None, "Per-column standard deviation of the training data.", cli=False)

    def __post_init__(self) -> None:
        for name in ("data_shift", "data_scale"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        self._check_settings()
        for name in ("data_shift", "data_scale"):
            value = getattr(self, name)
            if value is not None and len(value) != self.event_dim:
                raise ConfigError(
                    f"'{name}' must have event_dim={self.event_dim} entries; got {len(value)}.")
        if self.data_scale is not None and not all(s > 0 for s in self.data_scale):
            raise ConfigError(f"'data_scale' entries must be > 0; got {self.data_scale}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation settings. Defaults are tuned for two moons on a 2-core CPU."""

    epochs: int = setting(400, "Maximum number of epochs.", low=1, resumable=True)
    batch_size: int = setting(256, "Rows per training step.", low=1)
    learning_rate: float = setting(2e-3, "Peak learning rate (AdamW).", low=0, low_open=True)
    schedule: str = setting("cosine", "Learning-rate schedule.", choices=SCHEDULES)
    weight_decay: float = setting(0.0, "Decoupled weight decay (AdamW).", low=0)
    clip_norm: float = setting(10.0, "Global gradient-norm clip.", low=0, low_open=True)
    validation_fraction: float = setting(
        0.1, "Share of the rows held out for early stopping.", low=0, low_open=True, high=1,
        high_open=True)
    patience: int = setting(100, "Stop after this many epochs without a better validation "
                            "NLL.", low=1, resumable=True)
    seed: int = setting(0, "Seed of the split, the shuffle and the weights.", low=0, cli=False)
    jit_compile: bool = setting(False, "Compile the loss and gradients with XLA.")
    checkpoint_every: int = setting(25, "Epochs between checkpoints.", low=1, resumable=True)

    def __post_init__(self) -> None:
        self._check_settings()
