"""The speed benchmark: training, `log_prob` and `sample` throughput of this package's flow
against TFP's built-in RealNVP and the original notebook's Keras model, side by side in one
process; time to quality on two moons; how the step cost scales; a profile of one step.

Every model trains in the same tight loop (a `tf.function` running `steps` steps in-graph:
a random batch gathered from a fixed table, the mean NLL's gradients, an Adam update), so
the figures compare models, not harnesses. Throughput is the best of `repeats` timed runs
after a warm-up run that traces (and, with XLA, compiles) the step; machines are noisy.
"""

from __future__ import annotations

import dataclasses
import math
import os
import platform
import resource
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from tfp_realnvp import auto, scoring
from tfp_realnvp.bench.notebook import NotebookRealNVP
from tfp_realnvp.config import FlowConfig
from tfp_realnvp.ensemble import stacked_flow
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.flow import build_flow
from tfp_realnvp.sampling import stateless_seed

tfb = tfp.bijectors
tfd = tfp.distributions

TABLE_ROWS = 8192  # the fixed table the training batches are gathered from


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

    def __post_init__(self) -> None:
        for name in ("dim", "batch_size", "hidden_units", "num_hidden_layers",
                     "num_couplings", "steps", "repeats", "eval_points", "quality_points",
                     "notebook_max_epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(f"'{name}' must be >= 1; got {getattr(self, name)}.")
        if self.dim < 2 or min(self.scaling_dims, default=2) < 2:
            raise ConfigError(f"A flow needs at least 2 columns; got dim {self.dim}, scaling "
                              f"dims {list(self.scaling_dims)}.")


@dataclasses.dataclass
class Subject:
    """One model under test: its per-row `log_prob`, the loss one training step minimises,
    its trainable variables, and a seeded sampler."""

    name: str
    arch: str
    log_prob: Callable[[tf.Tensor], tf.Tensor]
    loss: Callable[[tf.Tensor], tf.Tensor]
    variables: list[tf.Variable]
    sample: Callable[[int, tf.Tensor], tf.Tensor]
    jit_compile: bool = False


# ---------------------------------------------------------------------------------------
# The models


def flow_subject(name: str, config: FlowConfig, jit_compile: bool) -> Subject:
    """This package's flow (one, or an ensemble trained as one stacked flow, as `fit`
    does: the loss is the sum of the members' mean NLLs)."""
    flow = build_flow(config)
    stacked = stacked_flow(flow)
    members = config.ensemble_size

    def loss(x: tf.Tensor) -> tf.Tensor:
        if members == 1:
            return -tf.reduce_mean(stacked.log_prob(x))
        nll = -stacked.log_prob(flow.per_member(x))  # [B, M]
        return tf.reduce_sum(tf.reduce_mean(nll, axis=0))

    arch = (f"{config.ensemble_size} x " if members > 1 else "") + (
        f"{config.num_couplings} {config.coupling}, {config.num_hidden_layers}x"
        f"{config.hidden_units} {config.activation}, {config.mixing}")
    return Subject(name, arch, flow.log_prob, loss, list(stacked.trainable_variables),
                   lambda n, seed: flow.sample(n, seed=seed), jit_compile)


def architecture_config(options: SpeedOptions, dim: int | None = None,
                        hidden_units: int | None = None) -> FlowConfig:
    """The package's flow at the benchmark's architecture (affine, ReLU, reversals)."""
    return FlowConfig(event_dim=dim or options.dim, coupling="affine",
                      num_couplings=options.num_couplings,
                      hidden_units=hidden_units or options.hidden_units,
                      num_hidden_layers=options.num_hidden_layers, activation="relu",
                      mixing="reverse")


def tfp_realnvp_subject(name: str, options: SpeedOptions, jit_compile: bool) -> Subject:
    """TFP's `tfb.RealNVP` couplings with `tfb.Permute` reversals between them, each
    conditioner a tf-keras MLP (zero-initialised last layer) giving shift and log-scale."""
    dim, num_masked = options.dim, options.dim // 2
    networks, steps = [], []
    for layer in range(options.num_couplings):
        layers = [tf_keras.Input(shape=(num_masked,))]
        layers += [tf_keras.layers.Dense(options.hidden_units, activation="relu")
                   for _ in range(options.num_hidden_layers)]
        layers.append(tf_keras.layers.Dense(2 * (dim - num_masked), kernel_initializer="zeros"))
        network = tf_keras.Sequential(layers)
        networks.append(network)

        def shift_and_log_scale(x, output_units, network=network, **_):
            shift, log_scale = tf.split(network(x), 2, axis=-1)
            return shift, log_scale

        steps.append(tfb.RealNVP(num_masked=num_masked,
                                 shift_and_log_scale_fn=shift_and_log_scale))
        if layer < options.num_couplings - 1:
            steps.append(tfb.Permute(np.arange(dim)[::-1].copy()))
    distribution = tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(tf.zeros(dim)), tfb.Chain(list(reversed(steps))))
    variables = [v for network in networks for v in network.trainable_variables]
    arch = (f"{options.num_couplings} tfb.RealNVP, {options.num_hidden_layers}x"
            f"{options.hidden_units} relu, Permute")
    return Subject(name, arch, distribution.log_prob,
                   lambda x: -tf.reduce_mean(distribution.log_prob(x)), variables,
                   lambda n, seed: distribution.sample(n, seed=seed), jit_compile)


def notebook_subject(name: str, options: SpeedOptions) -> Subject:
    """The original notebook's Keras model (two MLPs per coupling)."""
    model = NotebookRealNVP(options.dim, options.num_couplings, options.hidden_units,
                            options.num_hidden_layers)
    arch = (f"{options.num_couplings} couplings x 2 nets, {options.num_hidden_layers}x"
            f"{options.hidden_units} relu")
    return Subject(name, arch, model.log_prob, lambda x: -tf.reduce_mean(model.log_prob(x)),
                   list(model.trainable_variables), model.sample)


def default_config(dim: int, rows: int = 3000) -> tuple[FlowConfig, bool]:
    """What `fit` picks for a table of `rows` x `dim` (`auto.choose`), and its XLA flag."""
    choice = auto.choose(rows, dim)
    return choice.flow.replace(event_dim=dim), choice.train.jit_compile


def subjects(options: SpeedOptions) -> list[Subject]:
    """Every model of the side-by-side table, in order."""
    arch = architecture_config(options)
    default, default_jit = default_config(options.dim)
    affine = FlowConfig(event_dim=options.dim)
    return [
        flow_subject("flow", arch, False),
        flow_subject("flow_xla", arch, True),
        tfp_realnvp_subject("tfp_realnvp", options, False),
        tfp_realnvp_subject("tfp_realnvp_xla", options, True),
        notebook_subject("keras_notebook", options),
        flow_subject("default", default, default_jit),
        flow_subject("affine_default", affine, False),
        flow_subject("affine_default_xla", affine, True),
    ]


# ---------------------------------------------------------------------------------------
# Measuring


class PeakMemory:
    """Peak memory while a block runs, above what was in use when it started.

    On a GPU: TensorFlow's allocator peak on GPU:0 (`get_memory_info`, reset first). On a
    CPU: the process's resident set size, read from /proc/self/statm every 5 ms by a
    thread (elsewhere: the growth of `ru_maxrss`, the process's high-water mark).
    """

    def __init__(self) -> None:
        self.gpu = bool(tf.config.list_logical_devices("GPU"))
        self.kind = ("GPU:0 allocator peak (tf.config.experimental.get_memory_info)"
                     if self.gpu else "process RSS peak above its start (sampled every 5 ms)")
        self.peak_bytes = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakMemory:
        if self.gpu:
            tf.config.experimental.reset_memory_stats("GPU:0")
            self._start = tf.config.experimental.get_memory_info("GPU:0")["current"]
            return self
        self._start = _rss_bytes()
        self._peak = self._start
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self._peak = max(self._peak, _rss_bytes())

    def __exit__(self, *exc_info: Any) -> None:
        if self.gpu:
            peak = tf.config.experimental.get_memory_info("GPU:0")["peak"]
        else:
            self._stop.set()
            self._thread.join()
            peak = max(self._peak, _rss_bytes())
        self.peak_bytes = max(0, peak - self._start)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def device_name() -> str:
    """The GPU's name, or the CPU's model and core count."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU: {details.get('device_name', gpus[0].name)}"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((line.split(":", 1)[1].strip() for line in handle
                          if line.startswith("model name")), model)
    except OSError:
        pass
    return f"CPU: {model} ({os.cpu_count()} cores)"


def _best_seconds(function: Callable[[], Any], repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        tick = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - tick)
    return best


def training_loop(subject: Subject, table: tf.Tensor, batch_size: int,
                  learning_rate: float = 1e-4) -> Callable[[tf.Tensor], tf.Tensor]:
    """A `tf.function` that runs `steps` Adam steps in-graph on batches gathered from
    `table` (the loss and gradients XLA-compiled when the subject says so)."""
    optimizer = tf_keras.optimizers.Adam(learning_rate)
    optimizer.build(subject.variables)

    @tf.function(jit_compile=subject.jit_compile)
    def loss_and_grads(x):
        with tf.GradientTape() as tape:
            loss = subject.loss(x)
        return loss, tape.gradient(loss, subject.variables)

    @tf.function
    def run(steps):
        loss = tf.constant(0.0)
        for step in tf.range(steps):
            index = tf.random.stateless_uniform([batch_size], tf.stack([0, step]), 0,
                                                tf.shape(table)[0], dtype=tf.int32)
            loss, grads = loss_and_grads(tf.gather(table, index))
            optimizer.apply_gradients(zip(grads, subject.variables, strict=True))
        return loss

    run.loss_and_grads = loss_and_grads
    return run


def measure_subject(subject: Subject, options: SpeedOptions, table: tf.Tensor,
                    points: tf.Tensor) -> dict[str, Any]:
    """Training steps/s (with rows/s), `log_prob` points/s, `sample` samples/s, the warm-up
    (trace, compile) seconds and peak memory of one subject."""
    with PeakMemory() as memory:
        run = training_loop(subject, table, options.batch_size)
        tick = time.perf_counter()
        loss = float(run(tf.constant(2)))
        warm_up = time.perf_counter() - tick
        steps = tf.constant(options.steps)
        train_s = _best_seconds(lambda: run(steps).numpy(), options.repeats)
        log_prob = tf.function(subject.log_prob)
        log_prob(points)
        log_prob_s = _best_seconds(lambda: log_prob(points).numpy(), options.repeats)
        n = int(points.shape[0])
        sample = tf.function(lambda seed: subject.sample(n, seed))
        seed = stateless_seed(0)
        sample(seed)
        sample_s = _best_seconds(lambda: sample(seed).numpy(), options.repeats)
    steps_per_s = options.steps / train_s
    return {
        "name": subject.name, "arch": subject.arch, "xla": subject.jit_compile,
        "parameters": int(sum(np.prod(v.shape) for v in subject.variables)),
        "train_steps_per_s": steps_per_s,
        "train_rows_per_s": steps_per_s * options.batch_size,
        "log_prob_points_per_s": n / log_prob_s,
        "sample_per_s": n / sample_s,
        "warm_up_s": warm_up,
        "peak_memory_mb": memory.peak_bytes / 2**20,
        "loss_finite": math.isfinite(loss),
    }


RATIOS = (
    ("flow / tfp_realnvp", "flow", "tfp_realnvp"),
    ("flow_xla / tfp_realnvp_xla", "flow_xla", "tfp_realnvp_xla"),
    ("best flow / best tfp_realnvp", ("flow", "flow_xla"), ("tfp_realnvp", "tfp_realnvp_xla")),
    ("best flow / keras_notebook", ("flow", "flow_xla"), "keras_notebook"),
    ("default / keras_notebook", "default", "keras_notebook"),
)
RATIO_FIELDS = ("train_steps_per_s", "log_prob_points_per_s", "sample_per_s")


def ratios(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Throughput ratios between the measured records (the best of a group where a name
    is a tuple): `{ratio name: {field: numerator / denominator}}`."""
    by_name = {r["name"]: r for r in records}

    def best(names, field) -> float | None:
        names = (names,) if isinstance(names, str) else names
        values = [by_name[n][field] for n in names if n in by_name]
        return max(values) if values else None

    out: dict[str, dict[str, float]] = {}
    for label, top, bottom in RATIOS:
        cells = {}
        for field in RATIO_FIELDS:
            a, b = best(top, field), best(bottom, field)
            if a is not None and b:
                cells[field] = a / b
        if cells:
            out[label] = cells
    return out


# ---------------------------------------------------------------------------------------
# Where the time of one step goes


def matmul_flops(graph: tf.Graph) -> float:
    """FLOPs of the MatMul, BatchMatMul and Einsum ops of a traced graph (2 per
    multiply-add; static shapes needed, ops with unknown shapes are skipped)."""
    total = 0.0
    for op in graph.get_operations():
        try:
            out = op.outputs[0].shape.as_list() if op.outputs else None
            if not out or None in out:
                continue
            if op.type == "MatMul":
                a = op.inputs[0].shape.as_list()
                inner = a[0] if op.get_attr("transpose_a") else a[1]
            elif op.type in ("BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
                a = op.inputs[0].shape.as_list()
                inner = a[-2] if op.get_attr("adj_x") else a[-1]
            elif op.type == "Einsum":
                inner = _einsum_inner(op)
            else:
                continue
            if inner is None:
                continue
            total += 2.0 * float(np.prod(out)) * inner
        except (ValueError, TypeError):
            continue
    return total


def _einsum_inner(op: tf.Operation) -> int | None:
    equation = op.get_attr("equation").decode()
    inputs, output = equation.split("->")
    sizes: dict[str, int] = {}
    for labels, tensor in zip(inputs.split(","), op.inputs, strict=True):
        shape = tensor.shape.as_list()
        if "." in labels or len(labels) != len(shape) or None in shape:
            return None
        sizes.update(zip(labels, shape, strict=True))
    contracted = set(sizes) - set(output)
    return int(np.prod([sizes[c] for c in contracted])) if contracted else 1


def machine_matmul_gflops(size: int = 1024, repeats: int = 3) -> float:
    """Sustained float32 GFLOP/s of one square matmul on the default device."""
    a = tf.random.stateless_normal([size, size], seed=[1, 2])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, a)))
    matmul()
    seconds = _best_seconds(lambda: matmul().numpy(), repeats)
    return 2.0 * size**3 / seconds / 1e9


def profile_step(subject: Subject, options: SpeedOptions, table: tf.Tensor,
                 peak_gflops: float) -> dict[str, Any]:
    """A timed breakdown of one training step: trace seconds, forward only, forward +
    gradients, the Adam update, the graph's op count and matmul FLOPs against the machine's
    matmul rate (what the step would cost if it were all arithmetic). Each part runs
    `steps` times in-graph, as the training loop does."""
    batch = tf.gather(table, tf.range(options.batch_size))
    run = training_loop(subject, table, options.batch_size)
    tick = time.perf_counter()
    concrete = run.loss_and_grads.get_concrete_function(batch)
    trace_s = time.perf_counter() - tick
    forward = tf.function(subject.loss, jit_compile=subject.jit_compile)

    def in_graph(part: Callable[[tf.Tensor], tf.Tensor]) -> Callable[[tf.Tensor], tf.Tensor]:
        @tf.function
        def loop(steps):
            total = tf.constant(0.0)
            for step in tf.range(steps):
                total += part(batch + tf.cast(step, tf.float32) * 1e-6)
            return total
        return loop

    parts = {"forward": in_graph(forward),
             "forward_and_gradients": in_graph(lambda x: run.loss_and_grads(x)[0]),
             "step": run}
    seconds = {}
    steps = tf.constant(options.steps)
    for name, loop in parts.items():
        loop(tf.constant(2))
        seconds[name] = _best_seconds(lambda loop=loop: loop(steps).numpy(),
                                      options.repeats) / options.steps
    flops = matmul_flops(concrete.graph)
    floor_s = flops / (peak_gflops * 1e9)
    step_s = seconds["step"]
    return {
        "name": subject.name, "arch": subject.arch, "xla": subject.jit_compile,
        "trace_s": trace_s,
        "forward_ms": seconds["forward"] * 1e3,
        "forward_and_gradients_ms": seconds["forward_and_gradients"] * 1e3,
        "step_ms": step_s * 1e3,
        "update_and_batch_ms": max(0.0, step_s - seconds["forward_and_gradients"]) * 1e3,
        "graph_ops": len(concrete.graph.get_operations()),
        "matmul_gflop_per_step": flops / 1e9,
        "achieved_gflops": flops / step_s / 1e9,
        "matmul_floor_ms": floor_s * 1e3,
        "overhead_share": max(0.0, 1.0 - floor_s / step_s),
    }


# ---------------------------------------------------------------------------------------
# Time to quality on two moons


QUALITY_THRESHOLDS = (0.40, 0.35)
QUALITY_SCORE_POINTS = 3000


class QualityClock:
    """Wall time since `start()`, less the time spent scoring: `score(log_prob)` measures
    the held-out NLL on fresh points and records when each threshold was first reached."""

    def __init__(self, points: np.ndarray, shift: float = 0.0,
                 thresholds: Sequence[float] = QUALITY_THRESHOLDS) -> None:
        self.points = tf.constant(points)
        self.shift = shift  # added to every NLL (a change of units)
        self.thresholds = tuple(thresholds)
        self.reached: dict[float, float] = {}
        self.history: list[tuple[float, float]] = []
        self.excluded = 0.0
        self.started = time.perf_counter()

    def start(self) -> None:
        self.started = time.perf_counter()
        self.excluded = 0.0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.excluded

    def score(self, log_prob: Callable[[tf.Tensor], tf.Tensor]) -> float:
        now = self.elapsed()
        tick = time.perf_counter()
        nll = float(-tf.reduce_mean(log_prob(self.points))) + self.shift
        self.history.append((now, nll))
        for threshold in self.thresholds:
            if threshold not in self.reached and nll <= threshold:
                self.reached[threshold] = now
        self.excluded += time.perf_counter() - tick
        return nll

    def done(self) -> bool:
        return len(self.reached) == len(self.thresholds)


def default_fit_time_to_quality(options: SpeedOptions) -> dict[str, Any]:
    """The default `fit` on two moons, scored on fresh points after every epoch (scoring
    time excluded from the clock, and from the fit's own time budget)."""
    from tfp_realnvp import tables as data_lib
    from tfp_realnvp.train import fit

    seed = options.quality_seed
    rows = data_lib.make_toy("moons", options.quality_points, 0.05, seed)
    clock = QualityClock(scoring.fresh_toy_points("moons", 0.05, seed, QUALITY_SCORE_POINTS))
    log_prob: dict[str, Callable] = {}

    def on_epoch(record) -> None:
        if "fn" not in log_prob:
            log_prob["fn"] = tf.function(record.flow.log_prob)
        clock.score(log_prob["fn"])

    settings: dict[str, Any] = {"seed": seed, "mixing_seed": seed}
    if options.fit_time_budget is not None:
        settings["time_budget"] = options.fit_time_budget
    with tempfile.TemporaryDirectory() as tmp:
        clock.start()
        result = fit(rows, f"{tmp}/run", on_epoch=on_epoch, settings=settings)
        total = clock.elapsed()
        fresh = scoring.score_fresh_toy(result.flow, "moons", 0.05, seed)
    return {"model": "default fit", "seconds_to": _reached(clock), "wall_s": total,
            "epochs": result.metrics["epochs_run"], "final_fresh_nll": fresh["nll"],
            "stop_reason": result.metrics["stop_reason"]}


def notebook_time_to_quality(options: SpeedOptions) -> dict[str, Any]:
    """The notebook's model and recipe (standardised data, Adam 1e-4, batch 256,
    `model.fit`) on the same moons, scored in data units after every epoch until it
    reaches 0.40 nats or has run the notebook's epochs."""
    from tfp_realnvp import tables as data_lib

    seed = options.quality_seed
    rows = data_lib.make_toy("moons", options.quality_points, 0.05, seed)
    mean, std = rows.mean(axis=0), rows.std(axis=0)
    fresh = scoring.fresh_toy_points("moons", 0.05, seed, QUALITY_SCORE_POINTS)
    # log p_data(x) = log p_model((x - mean) / std) - sum(log std)
    clock = QualityClock((fresh - mean) / std, shift=float(np.log(std).sum()),
                         thresholds=QUALITY_THRESHOLDS[:1])
    tf_keras.utils.set_random_seed(seed)
    model = NotebookRealNVP(2, options.num_couplings, 256, 4)
    model.compile(optimizer=tf_keras.optimizers.Adam(learning_rate=1e-4))
    log_prob = tf.function(model.log_prob)

    class Score(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            clock.score(log_prob)
            if clock.done():
                self.model.stop_training = True

    clock.start()
    history = model.fit((rows - mean) / std, batch_size=256, epochs=options.notebook_max_epochs,
                        verbose=0, callbacks=[Score()])
    return {"model": "keras notebook", "seconds_to": _reached(clock), "wall_s": clock.elapsed(),
            "epochs": len(history.history["loss"]), "final_fresh_nll": clock.history[-1][1],
            "max_epochs": options.notebook_max_epochs}


def _reached(clock: QualityClock) -> dict[str, float | None]:
    return {f"{t:.2f}": clock.reached.get(t) for t in clock.thresholds}


def time_to_quality(options: SpeedOptions) -> dict[str, Any]:
    """Both fits, and the ratio of the notebook's time to 0.40 nats to the default's (a
    lower bound, marked so, when the notebook never got there)."""
    default = default_fit_time_to_quality(options)
    notebook = notebook_time_to_quality(options)
    ours = default["seconds_to"]["0.40"]
    theirs = notebook["seconds_to"]["0.40"]
    speedup = None
    if ours:
        speedup = (theirs or notebook["wall_s"]) / ours
    return {"default": default, "notebook": notebook, "speedup_to_0.40": speedup,
            "speedup_is_lower_bound": theirs is None}


# ---------------------------------------------------------------------------------------
# Scaling


def scaling(options: SpeedOptions) -> list[dict[str, Any]]:
    """Training steps/s of the package's flow (benchmark architecture, no XLA) for every
    `dim` in `scaling_dims` and width in `scaling_widths`."""
    out = []
    for dim in options.scaling_dims:
        table = _table(dim)
        for width in options.scaling_widths:
            subject = flow_subject("flow", architecture_config(options, dim, width), False)
            run = training_loop(subject, table, options.batch_size)
            run(tf.constant(2))
            seconds = _best_seconds(lambda run=run: run(tf.constant(options.steps)).numpy(),
                                    options.repeats)
            out.append({"dim": dim, "hidden_units": width,
                        "train_steps_per_s": options.steps / seconds,
                        "step_ms": seconds / options.steps * 1e3})
    return out


def plot_scaling(records: Sequence[dict[str, Any]], path: str | os.PathLike,
                 device: str = "") -> None:
    """Step cost (ms per training step) against conditioner width, one line per `dim`."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    figure = Figure(figsize=(5.5, 3.6))
    axis = figure.subplots()
    for dim in sorted({r["dim"] for r in records}):
        rows = sorted((r for r in records if r["dim"] == dim), key=lambda r: r["hidden_units"])
        axis.plot([r["hidden_units"] for r in rows], [r["step_ms"] for r in rows], "o-",
                  label=f"D = {dim}")
    axis.set_xscale("log", base=2)
    axis.set_yscale("log")
    widths = sorted({r["hidden_units"] for r in records})
    axis.set_xticks(widths, [str(w) for w in widths])
    axis.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.yaxis.set_minor_formatter(NullFormatter())
    axis.set_xlabel("conditioner width (hidden units)")
    axis.set_ylabel("ms per training step")
    axis.set_title(f"training step cost{f' ({device})' if device else ''}", fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)


# ---------------------------------------------------------------------------------------
# The whole benchmark


def _table(dim: int, rows: int = TABLE_ROWS) -> tf.Tensor:
    """Rows to train on: two moons for 2 columns, else correlated Gaussian rows."""
    if dim == 2:
        from tfp_realnvp import tables as data_lib

        moons = data_lib.make_toy("moons", rows, 0.05, 0)
        return tf.constant((moons - moons.mean(0)) / moons.std(0))
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    return tf.constant((rng.normal(size=(rows, dim)) @ mixing).astype(np.float32))


def run_speed(options: SpeedOptions | None = None,
              names: Sequence[str] | None = None,
              on_result: Callable[[str, dict[str, Any]], None] | None = None
              ) -> dict[str, Any]:
    """Runs the benchmark; returns a JSON-ready dict.

    Args:
      options: what to measure (default: `SpeedOptions()`).
      names: only these subjects of the side-by-side table (default: all).
      on_result: called with (section, record) as each figure is measured.
    """
    options = options or SpeedOptions()
    report = on_result or (lambda section, record: None)
    table = _table(options.dim)
    points = tf.gather(table, tf.range(options.eval_points) % TABLE_ROWS)
    result: dict[str, Any] = {"device": device_name(), "tensorflow": tf.__version__,
                              "options": dataclasses.asdict(options),
                              "memory_measured": PeakMemory().kind}
    peak = machine_matmul_gflops()
    result["machine_matmul_gflops"] = peak
    records = []
    for subject in subjects(options):
        if names is not None and subject.name not in names:
            continue
        record = measure_subject(subject, options, table, points)
        records.append(record)
        report("throughput", record)
    result["throughput"] = records
    result["ratios"] = ratios(records)
    default, default_jit = default_config(options.dim)
    profiles = []
    for subject in (flow_subject("default", default, default_jit),
                    flow_subject("flow_xla", architecture_config(options), True)):
        if names is None or subject.name in names:
            profiles.append(profile_step(subject, options, table, peak))
            report("profile", profiles[-1])
    result["profile"] = profiles
    if options.time_to_quality:
        result["time_to_quality"] = time_to_quality(options)
        report("time_to_quality", result["time_to_quality"])
    if options.scaling:
        result["scaling"] = scaling(options)
    return result



# ---------------------------------------------------------------------------------------
# Text


def _rate(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def format_report(result: dict[str, Any]) -> str:
    """Markdown tables of what `run_speed` (and the big-table run) measured."""
    lines = [f"device: {result['device']}; TensorFlow {result['tensorflow']}; "
             f"matmul {result['machine_matmul_gflops']:.0f} GFLOP/s", ""]
    options = result["options"]
    if result.get("throughput"):
        lines += [f"Throughput (D={options['dim']}, batch {options['batch_size']}; best of "
                  f"{options['repeats']}; memory: {result['memory_measured']}):", "",
                  "| model | architecture | XLA | train steps/s | log_prob points/s | "
                  "sample /s | warm-up s | peak MB |",
                  "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
        for r in result["throughput"]:
            lines.append(f"| {r['name']} | {r['arch']} | {'yes' if r['xla'] else 'no'} | "
                         f"{_rate(r['train_steps_per_s'])} | "
                         f"{_rate(r['log_prob_points_per_s'])} | {_rate(r['sample_per_s'])} | "
                         f"{r['warm_up_s']:.1f} | {r['peak_memory_mb']:.0f} |")
        lines += ["", "| ratio | train steps/s | log_prob | sample |",
                  "| --- | ---: | ---: | ---: |"]
        for name, cells in result["ratios"].items():
            values = [f"{cells[f]:.2f}x" if f in cells else "" for f in RATIO_FIELDS]
            lines.append(f"| {name} | {' | '.join(values)} |")
    if result.get("profile"):
        lines += ["", "Profile of one training step:", "",
                  "| model | XLA | trace s | forward ms | fwd+grad ms | step ms | graph ops | "
                  "matmul GFLOP | matmul floor ms | overhead |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in result["profile"]:
            lines.append(f"| {p['name']} ({p['arch']}) | {'yes' if p['xla'] else 'no'} | "
                         f"{p['trace_s']:.1f} | {p['forward_ms']:.2f} | "
                         f"{p['forward_and_gradients_ms']:.2f} | {p['step_ms']:.2f} | "
                         f"{p['graph_ops']} | {p['matmul_gflop_per_step']:.3f} | "
                         f"{p['matmul_floor_ms']:.2f} | {p['overhead_share']:.0%} |")
    quality = result.get("time_to_quality")
    if quality:
        lines += ["", "Time to quality on two moons (held-out NLL on fresh points; scoring "
                  "time excluded):", "",
                  "| model | to 0.40 nats | to 0.35 nats | epochs | final NLL |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for key in ("default", "notebook"):
            q = quality[key]
            cells = [f"{q['seconds_to'][t]:.1f} s" if q["seconds_to"].get(t) is not None
                     else ("not reached" if t in q["seconds_to"] else "") for t in ("0.40", "0.35")]
            lines.append(f"| {q['model']} | {' | '.join(cells)} | {q['epochs']} | "
                         f"{q['final_fresh_nll']:.3f} |")
        if quality["speedup_to_0.40"] is not None:
            bound = ">= " if quality["speedup_is_lower_bound"] else ""
            lines.append(f"\nnotebook time to 0.40 / default time to 0.40: "
                         f"{bound}{quality['speedup_to_0.40']:.1f}x")
    if result.get("scaling"):
        widths = sorted({r["hidden_units"] for r in result["scaling"]})
        lines += ["", "Scaling (train steps/s, the flow without XLA):", "",
                  f"| D | {' | '.join(f'width {w}' for w in widths)} |",
                  f"| --- | {' | '.join('---:' for _ in widths)} |"]
        for dim in sorted({r["dim"] for r in result["scaling"]}):
            cells = {r["hidden_units"]: r for r in result["scaling"] if r["dim"] == dim}
            lines.append(f"| {dim} | " + " | ".join(
                _rate(cells[w]["train_steps_per_s"]) if w in cells else "" for w in widths)
                + " |")
    big = result.get("big_table")
    if big:
        lines += ["", f"Big table ({big['rows']:,} rows x {big['columns']} columns, "
                  f"{big['table_mb']:.0f} MB as float32, CSV {big['csv_mb']:.0f} MB):", "",
                  "| step | seconds | peak MB | |", "| --- | ---: | ---: | --- |",
                  f"| read CSV | {big['read_csv_s']:.1f} | {big['read_csv_peak_mb']:.0f} | |",
                  f"| read .npy | {big['read_npy_s']:.1f} | {big['read_npy_peak_mb']:.0f} | |",
                  f"| fit (budget {big['time_budget_s']:g} s) | {big['fit_s']:.1f} | "
                  f"{big['fit_peak_mb']:.0f} | {big['epochs']} epochs x "
                  f"{big['steps_per_epoch']} steps, training {big['training_s']:.1f} s, "
                  f"stopped by {big['stop_reason']}, validation NLL "
                  f"{big['best_validation_nll']:.3f} |",
                  f"| evaluate every row | {big['evaluate_s']:.1f} | "
                  f"{big['evaluate_peak_mb']:.0f} | {_rate(big['evaluate_rows_per_s'])} rows/s |",
                  f"| sample as many rows | {big['sample_s']:.1f} | {big['sample_peak_mb']:.0f} "
                  f"| {_rate(big['sample_rows_per_s'])} rows/s |"]
    return "\n".join(lines)
