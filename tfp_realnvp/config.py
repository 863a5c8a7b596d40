"""`FlowConfig` and `TrainConfig`: plain data (no TensorFlow), one table of settings.

Each setting is a dataclass field whose metadata (`Setting`) holds its help text and its
rules (choices, bounds). The same table validates the dataclass, builds the CLI options and
documents the JSON a run keeps beside its weights.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, ClassVar

from tfp_realnvp.errors import ConfigError

ACTIVATIONS = ("relu", "tanh", "gelu", "silu", "elu")
COUPLINGS = ("affine", "spline", "autoregressive")
SPLINE_DIRECTIONS = ("density", "sampling")
MIXINGS = ("reverse", "random", "lu")
SCHEDULES = ("cosine", "constant")
DEQUANTIZE = ("none", "uniform", "auto")
STRATEGIES = ("default", "mirrored", "multiworker")
TOY_DATASET_NAMES = ("moons", "circles", "blobs", "swissroll")
QUALITY_TABLES = ("moons", "circles", "swissroll", "iris", "wine", "diabetes", "breast_cancer",
                  "digits")
# Every method of `bench quality`, in the order of its table's columns; the peers need the
# optional `bench` extra (JAX), so the default run leaves them out.
QUALITY_METHOD_CHOICES = ("exact", "gaussian", "gmm", "kde", "maf", "flowjax_maf",
                          "flowjax_coupling", "flow")
QUALITY_PEERS = ("flowjax_maf", "flowjax_coupling")
QUALITY_METHODS = tuple(m for m in QUALITY_METHOD_CHOICES if m not in QUALITY_PEERS)
SPEED_MODELS = ("flow", "flow_xla", "tfp_realnvp", "tfp_realnvp_xla", "keras_notebook",
                "default", "affine_default", "affine_default_xla")


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

    # Fields added after configs were first written, with the value that rebuilds what a
    # config written before them described (a missing key is read as this, not as the
    # field's default for new configs).
    LEGACY_VALUES: ClassVar[dict[str, Any]] = {}
    # Keys configs once held that no field reads any more.
    LEGACY_IGNORED: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_dict(cls, values: dict[str, Any]):
        values = {k: v for k, v in values.items() if k not in cls.LEGACY_IGNORED}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"Unknown {cls.__name__} fields {unknown}; known: {sorted(known)}.")
        return cls(**{**cls.LEGACY_VALUES, **values})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str):
        return cls.from_dict(json.loads(text))


@dataclasses.dataclass(frozen=True)
class FlowConfig(_Config):
    """Everything needed to rebuild a flow exactly; weights live in checkpoints.

    The data fields hold the affine map fitted on the training split that takes the
    flow's standardised space to data units: `x = data_shift + data_scale * (L u)`, with
    `data_shift` the column means, `data_scale` the column standard deviations and `L`
    (`data_tril`, row-major lower-triangular) the Cholesky factor of the columns'
    correlation matrix. With it, a fresh flow (couplings at the identity) *is* the
    full-covariance Gaussian of the training data. `data_tril=None` leaves the columns
    uncorrelated (per-column standardisation only).

    A conditional flow (`context_dim > 0`) standardises its context inside the flow,
    `(c - context_shift) / context_scale` with the training context's column means and
    standard deviations, so callers always pass raw context values. Where a table's
    columns went is no flow fact: see `tfp_realnvp.tables.TableLayout`.
    """

    LEGACY_VALUES: ClassVar[dict[str, Any]] = {"spline_direction": "sampling",
                                               "base_components": 1}
    # Keys of configs written before the table layout left FlowConfig; `from_dict` skips
    # them (`tables.split_legacy_flow` reads them into a TableLayout).
    LEGACY_IGNORED: ClassVar[tuple[str, ...]] = ("event_columns", "context_columns",
                                                 "column_names")

    event_dim: int = setting(2, "Width of an event (columns of the data).", low=2, cli=False)
    coupling: str = setting(
        "affine", "Layer kind: affine (RealNVP) or rational-quadratic spline couplings, or "
        "autoregressive (MAF: a rational-quadratic spline per coordinate from a masked "
        "network; log_prob is one network pass, sampling D passes).", choices=COUPLINGS)
    num_couplings: int = setting(8, "Number of coupling layers.", low=2)
    hidden_units: int = setting(64, "Width of each conditioner's hidden layers.", low=1)
    num_hidden_layers: int = setting(3, "Hidden layers per conditioner.", low=1)
    activation: str = setting("silu", "Conditioner activation.", choices=ACTIVATIONS)
    log_scale_bound: float = setting(
        2.0, "Affine couplings: bound B on each log-scale, s = B tanh(raw / B).", low=0,
        low_open=True)
    spline_bins: int = setting(8, "Spline couplings: bins per spline.", low=2)
    spline_bound: float = setting(
        4.0, "Spline couplings: the spline acts on [-bound, bound] (standardised units) and "
        "is the identity outside.", low=0, low_open=True)
    spline_direction: str = setting(
        "density", "Spline couplings: 'density' runs the spline from data to latent "
        "(training and log_prob evaluate it in float32, sampling inverts it in float64); "
        "'sampling' the other way round (runs written before this setting).",
        choices=SPLINE_DIRECTIONS)
    mixing: str = setting("reverse", "Between couplings: reverse or random permutation, or "
                          "a learned LU-factored linear map.", choices=MIXINGS)
    mixing_seed: int = setting(0, "Seed of random permutations and LU initialisations.",
                               low=0, cli=False)
    ensemble_size: int = setting(
        1, "Flows averaged into one density, each trained on its own K-fold split and "
        "early-stopped on its held-out fold (1: a single flow).", low=1)
    whiten: bool = setting(True, "Fit the training data's full covariance (not only "
                           "per-column scales) in the flow's affine data map.")
    base_components: int = setting(
        1, "Components of the Gaussian-mixture base, fitted on the training rows so that "
        "the fresh flow is that mixture (1: a standard Normal base, the fresh flow the "
        "training rows' Gaussian; 0: chosen on held-out rows by fit). Unconditional flows "
        "only.", low=0)
    blend: bool = setting(
        False, "After training, blend the flow with a Gaussian mixture fitted on the "
        "training rows, w p_flow + (1 - w) p_mixture, its components and the flow's weight "
        "w chosen on held-out rows (w = 1: the flow alone). Unconditional flows only.")
    blend_components: int = setting(
        0, "Components of the blended mixture, set by fit (0: no blend).", low=0, cli=False)
    context_dim: int = setting(0, "Width of the conditioning context (0: none).", low=0,
                               cli=False)
    data_shift: tuple[float, ...] | None = setting(
        None, "Column means of the training data.", cli=False)
    data_scale: tuple[float, ...] | None = setting(
        None, "Column standard deviations of the training data.", cli=False)
    data_tril: tuple[tuple[float, ...], ...] | None = setting(
        None, "Cholesky factor of the training data's correlation matrix.", cli=False)
    context_shift: tuple[float, ...] | None = setting(
        None, "Column means of the training context (conditional flows).", cli=False)
    context_scale: tuple[float, ...] | None = setting(
        None, "Column standard deviations of the training context.", cli=False)

    def __post_init__(self) -> None:
        for name in ("data_shift", "data_scale", "context_shift", "context_scale"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))
        if self.data_tril is not None:
            object.__setattr__(self, "data_tril",
                               tuple(tuple(float(v) for v in row) for row in self.data_tril))
        self._check_settings()
        for name in ("data_shift", "data_scale", "data_tril"):
            value = getattr(self, name)
            if value is not None and len(value) != self.event_dim:
                raise ConfigError(
                    f"'{name}' must have event_dim={self.event_dim} entries; got {len(value)}.")
        if self.data_scale is not None and not all(s > 0 for s in self.data_scale):
            raise ConfigError(f"'data_scale' entries must be > 0; got {self.data_scale}.")
        if self.data_tril is not None:
            _check_tril(self.data_tril)
        self._check_context_fields()
        if self.context_dim and self.base_components > 1:
            raise ConfigError(
                f"'base_components' must be 1 (or 0) for a conditional flow (context_dim="
                f"{self.context_dim}): a mixture base does not depend on the context; got "
                f"{self.base_components}.")
        if self.context_dim and (self.blend or self.blend_components):
            raise ConfigError(
                f"'blend' must be off for a conditional flow (context_dim={self.context_dim}): "
                "the blended mixture does not depend on the context; use --no-blend.")

    def _check_context_fields(self) -> None:
        for name in ("context_shift", "context_scale"):
            value = getattr(self, name)
            if value is not None and len(value) != self.context_dim:
                raise ConfigError(f"'{name}' must have context_dim={self.context_dim} "
                                  f"entries; got {len(value)}.")
        if self.context_scale is not None and not all(s > 0 for s in self.context_scale):
            raise ConfigError(f"'context_scale' entries must be > 0; got {self.context_scale}.")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.data_tril is not None:
            out["data_tril"] = [list(row) for row in self.data_tril]
        return out


def _check_tril(rows: tuple[tuple[float, ...], ...]) -> None:
    dim = len(rows)
    for i, row in enumerate(rows):
        if len(row) != dim:
            raise ConfigError(f"'data_tril' must be {dim}x{dim}; row {i} has {len(row)} entries.")
        if any(v != 0 for v in row[i + 1:]) or not row[i] > 0:
            raise ConfigError(
                f"'data_tril' must be lower-triangular with a positive diagonal; row {i} is "
                f"{list(row)}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig(_Config):
    """Optimisation settings. Defaults are tuned for two moons on a 2-core CPU."""

    epochs: int = setting(400, "Maximum number of epochs.", low=1, resumable=True)
    batch_size: int = setting(256, "Rows per training step.", low=1)
    max_steps_per_epoch: int | None = setting(
        None, "Cap on the steps of one epoch (None: a full pass over the training rows). "
        "Each epoch still draws a fresh random order, so a big table's epoch is a random "
        "subset of it, and validation, early stopping, checkpoints and the time budget are "
        "checked at least every this many steps.", low=1)
    learning_rate: float = setting(2e-3, "Peak learning rate (AdamW).", low=0, low_open=True)
    schedule: str = setting(
        "cosine", "Learning-rate schedule: 'cosine' decays to 2% of the peak by the last "
        "epoch, or by the end of the time budget when that comes first; 'constant'.",
        choices=SCHEDULES)
    weight_decay: float = setting(0.0, "Decoupled weight decay (AdamW).", low=0)
    clip_norm: float = setting(10.0, "Global gradient-norm clip.", low=0, low_open=True)
    validation_fraction: float = setting(
        0.1, "Share of the rows held out for early stopping.", low=0, low_open=True, high=1,
        high_open=True)
    patience: int = setting(100, "Stop after this many epochs without a better validation "
                            "NLL.", low=1, resumable=True)
    seed: int = setting(0, "Seed of the split, the shuffle and the weights.", low=0, cli=False)
    time_budget: float | None = setting(
        None, "Stop training after this many seconds (None: no limit).", low=0,
        low_open=True, resumable=True)
    dequantize: str = setting(
        "none", "Grid-valued columns: 'uniform' adds U(-step/2, step/2) noise to every column "
        "(step: its smallest gap), 'auto' only to columns found on a regular grid.",
        choices=DEQUANTIZE)
    dequantize_steps: tuple[float, ...] | None = setting(
        None, "Per-column noise width found from the training data (0: none).", cli=False)
    jit_compile: bool = setting(False, "Compile the loss and gradients with XLA.")
    checkpoint_every: int = setting(25, "Epochs between checkpoints.", low=1, resumable=True)
    distill: bool = setting(
        False, "After an unconditional ensemble trains, train one student flow on rows drawn "
        "from it (early-stopped on the real rows) into RUN/student: load and export serve "
        "the student (one flow's price), `export --ensemble` the ensemble. Off unless asked: "
        "see docs/guide/ensembles.md for when it pays.", resumable=True)

    def __post_init__(self) -> None:
        if self.dequantize_steps is not None:
            object.__setattr__(self, "dequantize_steps",
                               tuple(float(v) for v in self.dequantize_steps))
        self._check_settings()
