"""TensorBoard event files: read back, they hold metrics.json's history; the gradient norm."""

from collections import defaultdict

import numpy as np
import pytest
import tensorflow as tf
from conftest import randomise_weights
from tensorflow.core.util import event_pb2

import tfp_realnvp
from tfp_realnvp import FlowConfig, TrainConfig
from tfp_realnvp import prepare as prepare_lib
from tfp_realnvp import training as train_lib
from tfp_realnvp.tables import make_toy

TINY = {"epochs": 3, "ensemble_size": 1, "hidden_units": 8, "num_couplings": 2,
        "coupling": "affine", "jit_compile": False, "batch_size": 64, "time_budget": None}
SCALARS = {"nll/train": "train_nll", "nll/validation": "validation_nll",
           "optimizer/learning_rate": "learning_rate",
           "optimizer/gradient_norm": "gradient_norm",
           "speed/steps_per_second": "steps_per_second"}


def read_events(logdir):
    """{tag: {step: value}} for scalars and for images, read with TensorFlow alone."""
    scalars, images = defaultdict(dict), defaultdict(dict)
    files = sorted(logdir.glob("events.out.tfevents.*"))
    for path in files:
        for record in tf.data.TFRecordDataset(str(path)):
            event = event_pb2.Event.FromString(record.numpy())
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tensor = tf.make_ndarray(value.tensor)
                if plugin == "scalars":
                    scalars[value.tag][event.step] = float(tensor)
                elif plugin == "images":
                    images[value.tag][event.step] = tensor
    return scalars, images, files


def test_event_files_hold_the_history_and_resume_continues_them(tmp_path):
    data = make_toy("moons", 300, seed=0)
    run = tmp_path / "run"
    tfp_realnvp.fit(data, run, settings=TINY, tensorboard=True)
    result = tfp_realnvp.resume(run, data, epochs=5)  # not told: continues the run's events
    scalars, images, files = read_events(run / "tensorboard")
    assert len(files) == 2  # one per training process that wrote
    history = {h["epoch"]: h for h in result.metrics["history"]}
    assert sorted(history) == [1, 2, 3, 4, 5]
    for tag, key in SCALARS.items():
        expected_steps = [0, 1, 2, 3, 4, 5] if tag == "nll/validation" else [1, 2, 3, 4, 5]
        assert sorted(scalars[tag]) == expected_steps, tag
        for step in expected_steps:
            expected = (result.metrics["initial_validation_nll"] if step == 0
                        else history[step][key])
            assert scalars[tag][step] == pytest.approx(expected, rel=1e-6), (tag, step)
    norms = [scalars["optimizer/gradient_norm"][s] for s in (1, 2, 3)]
    assert all(np.isfinite(norms)) and min(norms) > 0
    rates = [scalars["optimizer/learning_rate"][s] for s in (1, 2, 3)]
    assert rates[0] > rates[1] > rates[2] > 0  # the cosine schedule, step by step
    assert sorted(images["samples/training"]) == [1, 2, 3, 4, 5]
    assert sorted(images["samples/best_model"]) == [3, 5]
    width, height, png = images["samples/best_model"][5]
    pixels = tf.io.decode_png(png).numpy()
    assert (int(width), int(height)) == (960, 320) and pixels.shape == (320, 960, 4)
    assert pixels.std() > 10  # a drawn figure, not a blank one


def test_more_columns_get_scalars_and_no_images(tmp_path):
    rows = np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32)
    result = tfp_realnvp.fit(rows, tmp_path / "run", settings={**TINY, "epochs": 1},
                             tensorboard=True)
    scalars, images, _ = read_events(tmp_path / "run" / "tensorboard")
    assert sorted(scalars["nll/train"]) == [1] and not images
    assert scalars["nll/train"][1] == pytest.approx(result.metrics["history"][0]["train_nll"],
                                                    rel=1e-6)


@pytest.mark.parametrize("strategy", ["default", "mirrored"])
def test_gradient_norm_is_the_norm_of_the_whole_batch_gradient(strategy):
    """One step per epoch: the norm the compiled epoch returns is the global norm of the
    gradient of the mean NLL over every training row (under MirroredStrategy's two
    replicas too: the gradient summed over replicas, not one replica's)."""
    data = make_toy("moons", 200, seed=1)
    flow_config = FlowConfig(num_couplings=2, hidden_units=8,
                             **prepare_lib.affine_stats(data, whiten=True))
    train_config = TrainConfig(epochs=1, batch_size=1000, schedule="constant")
    prepared = prepare_lib.prepare(data, None, flow_config, train_config)
    trainer = train_lib.Trainer(flow_config, train_config, prepared,
                                train_lib.make_strategy(strategy))
    assert trainer.steps_per_epoch == 1
    assert trainer.strategy.num_replicas_in_sync == (2 if strategy == "mirrored" else 1)
    randomise_weights(trainer.flow, seed=3, scale=0.3)
    rows = tf.constant(prepared.members[0].train_events)
    with tf.GradientTape() as tape:
        loss = -tf.reduce_mean(trainer.flow.log_prob(rows))
    expected = float(tf.linalg.global_norm(tape.gradient(loss, trainer.variables)))
    train_nll, norm = trainer.train_epoch(trainer.dataset_iterator(0))
    assert float(train_nll) == pytest.approx(float(loss), rel=1e-5)
    assert float(norm) == pytest.approx(expected, rel=1e-4)
    assert expected > 0.1


@pytest.mark.parametrize("event_dim, context_dim, pictures", [(2, 0, True), (2, 1, False),
                                                              (3, 0, False)])
def test_pictures_follow_the_flows_event_dim_not_the_tables_width(tmp_path, event_dim,
                                                                  context_dim, pictures):
    """The writer takes plain values: a flow, its event and context widths, rows, epochs.
    Pictures draw p(x): an unconditional flow of 2-D events only."""
    from tfp_realnvp.summaries import TensorBoardWriter

    rows = np.random.default_rng(0).normal(size=(50, event_dim)).astype(np.float32)
    flow = tfp_realnvp.build_flow(FlowConfig(num_couplings=2, hidden_units=8,
                                             event_dim=event_dim))
    writer = TensorBoardWriter(tmp_path, flow, event_dim, rows, epochs=1,
                               context_dim=context_dim, num_samples=50)
    writer.write_epoch({"epoch": 1, "train_nll": 2.0, "validation_nll": 2.5}, 3.0)
    writer.close()
    scalars, images, _ = read_events(tmp_path)
    assert scalars["nll/validation"] == {0: 3.0, 1: 2.5} and scalars["nll/train"] == {1: 2.0}
    assert writer.pictures is pictures and bool(images) is pictures
