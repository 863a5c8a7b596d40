"""The CLI of image models: `fit --data` of images, `evaluate`, `sample`, `info`, bad input."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import tfp_realnvp
from tfp_realnvp.cli import cli as main
from tfp_realnvp.errors import ConfigError, DataError
from tfp_realnvp.images import data as data_lib


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tiny_images(count: int = 40, seed: int = 0) -> np.ndarray:
    """uint8 [N, 4, 4, 1] images: a bright diagonal on noise."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(count, 4, 4, 1))
    images[:, np.arange(4), np.arange(4), 0] += 180
    return images.astype(np.uint8)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    """The file's one fitted image run (1 epoch, under the mirrored strategy: two
    replicas on conftest's two logical CPUs): (run, its data, fit's output). Read-only: a
    test that writes into a run copies it."""
    folder = tmp_path_factory.mktemp("images")
    data = folder / "tiny.npy"
    np.save(data, tiny_images())
    run = folder / "run"
    result = invoke("fit", "--data", data, "--out", run, "--epochs", 1, "--batch-size", 16,
                    "--strategy", "mirrored", "--quiet")
    assert result.exit_code == 0, result.output
    return run, data, result.output


def test_fit_on_a_npy_of_images_reports_nats_per_image_and_bits_per_dim(image_run):
    run, _, output = image_run
    assert "image model: 40 images of [4, 4, 1], 256 levels" in output
    assert "nats per image" in output and "bits/dim" in output
    assert (run / "image.json").is_file() and (run / "model").is_dir()
    config = json.loads((run / "image.json").read_text())
    assert (config["height"], config["levels"], config["num_scales"]) == (4, 256, 1)


def test_fit_honours_the_strategy_and_refuses_multiworker(image_run, tmp_path):
    run, data, _ = image_run
    assert json.loads((run / "metrics.json").read_text())["num_replicas"] == 2
    result = invoke("fit", "--data", data, "--out", tmp_path / "run", "--strategy",
                    "multiworker")
    assert result.exit_code == 2
    assert "--strategy multiworker trains tables only; train an image model with " \
           "--strategy default or mirrored" in result.output
    assert not (tmp_path / "run").exists()


def test_find_model_and_load_know_image_runs(image_run):
    run, _, _ = image_run
    model = tfp_realnvp.rundir.find_model(run)
    assert model.kind == "run" and model.image
    assert tfp_realnvp.rundir.load(run).event_shape == [4, 4, 1]
    assert model.config is None  # its ImageConfig is in image.json
    assert tfp_realnvp.info.describe(run)["flow"] is None


def test_info_says_it_is_an_image_model(image_run):
    run, _, _ = image_run
    result = invoke("info", run)
    assert result.exit_code == 0, result.output
    assert "image model (RealNVP multi-scale)" in result.output
    summary = json.loads(invoke("info", run, "--json").output)
    assert summary["model"] == "image" and summary["image_shape"] == [4, 4, 1]


def test_evaluate_scores_images_in_nats_and_bits(image_run):
    run, data, _ = image_run
    result = invoke("evaluate", run, "--data", data, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n"] == 40
    flow = tfp_realnvp.load(run)  # the package's one `load` knows image runs
    assert flow.event_shape == [4, 4, 1]
    assert np.isfinite(flow.log_prob(np.load(data)[:3].astype(np.float32) + 0.5)).all()
    assert summary["bits_per_dim"] == pytest.approx(summary["nll"] / (16 * np.log(2)))
    wrong = data.with_name("wrong.npy")
    np.save(wrong, np.zeros((3, 8, 8, 1), np.uint8))
    result = invoke("evaluate", run, "--data", wrong)
    assert result.exit_code == 1
    assert "the model expects [N, 4, 4, 1] with 256 levels" in result.output


def test_sample_writes_a_seeded_npy_and_a_png_grid(image_run, tmp_path):
    run, _, _ = image_run
    for name in ("a.npy", "b.npy"):
        result = invoke("sample", run, "-n", 6, "--seed", 3, "--temperature", 0.8,
                        "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    first, second = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert first.shape == (6, 4, 4, 1)
    np.testing.assert_array_equal(first, second)
    assert invoke("sample", run, "-n", 9, "-o", tmp_path / "grid.png").exit_code == 0
    assert Image.open(tmp_path / "grid.png").size == (16 * 8, 16 * 8)  # 3x3 of 4x4, zoom 8
    result = invoke("sample", run, "-n", 2)
    assert result.exit_code == 2 and "-o FILE.png" in result.output


def test_bad_images_get_one_line_errors(tmp_path):
    rank3 = tmp_path / "rank3.npy"
    np.save(rank3, np.zeros((5, 4, 4), np.uint8))
    floats = tmp_path / "floats.npy"
    np.save(floats, np.full((12, 4, 4, 1), 0.5, np.float32))
    with pytest.raises(Exception, match=r"images must have shape \[N, H, W, C\]; got"):
        data_lib.read_images(rank3)
    result = invoke("fit", "--data", floats, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "float32 images need their number of levels declared (--levels" in result.output
    result = invoke("fit", "--data", floats, "--levels", 4, "--out", tmp_path / "run")
    assert "image values must be whole levels in [0, 3]; got 0.5 at index [0, 0, 0, 0]" \
        in result.output
    folder = tmp_path / "pngs"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((6, 4), np.uint8)).save(folder / "b.png")
    result = invoke("fit", "--data", folder, "--out", tmp_path / "run")
    assert result.exit_code == 1
    assert "b.png: shape [6, 4, 1] [H, W, C]; expected [4, 4, 1] like a.png" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_folder_of_pngs_is_read_in_name_order(tmp_path):
    images = tiny_images(3)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i}.png")
    read, levels, info = data_lib.read_images(tmp_path)
    assert levels == 256 and info["kind"] == "images"
    np.testing.assert_array_equal(read, images.astype(np.float32))
    digits, levels, _ = data_lib.read_images(data_lib.BUILTIN)
    assert digits.shape == (1797, 8, 8, 1) and levels == 17 and digits.max() == 16



def test_export_then_info_and_sample_from_the_export(image_run, tmp_path):
    run, _, _ = image_run
    result = invoke("export", run, tmp_path / "models", "--name", "tiny")
    assert result.exit_code == 0, result.output
    version = tmp_path / "models" / "tiny" / "1"
    assert f"exported SavedModel: {version}" in result.output
    result = invoke("info", version.parent)
    assert result.exit_code == 0, result.output
    assert "image model (RealNVP multi-scale) export" in result.output
    assert "signatures: serving_default, log_prob, sample, encode, decode" in result.output
    for source, name in ((run, "run.npy"), (version, "export.npy")):
        result = invoke("sample", source, "-n", 3, "--seed", 5, "-o", tmp_path / name)
        assert result.exit_code == 0, result.output
    np.testing.assert_allclose(np.load(tmp_path / "export.npy"), np.load(tmp_path / "run.npy"),
                               rtol=1e-5, atol=1e-4)
    # the package's one `export` knows image exports too: exported again, as a new version
    again = tfp_realnvp.export(version.parent, tmp_path / "models", name="tiny")
    assert again.name == "2" and tfp_realnvp.rundir.find_model(again).image
    assert (again / "assets.extra" / "tf_serving_warmup_requests").is_file()


def test_plot_draws_an_image_run(image_run, tmp_path):
    run, _, _ = image_run
    result = invoke("plot", run, "-o", tmp_path / "run.png")
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "run.png").size[0] > 600


def test_resume_continues_an_image_run_on_its_own_images(image_run, tmp_path):
    source, data, _ = image_run
    run = tmp_path / "run"
    shutil.copytree(source, run)  # the module's run, 1 epoch in; resumed in a copy
    result = invoke("fit", "--resume", "--out", run, "--epochs", 2, "--quiet")
    assert result.exit_code == 0, result.output
    assert "epochs: 2 (best" in result.output
    history = json.loads((run / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    # the library's `resume` takes image runs too (`fit --resume` runs the same
    # `resume_images`), from an array or the images' path; it checks before it builds
    with pytest.raises(ConfigError, match="is an image run: it takes no context"):
        tfp_realnvp.resume(run, np.load(data), context=np.zeros((40, 1)), epochs=4)
    result = invoke("fit", "--resume", "--out", run, "--learning-rate", 0.1)
    assert result.exit_code == 1 and "cannot change ['learning_rate']" in result.output
    other = tmp_path / "other.npy"
    np.save(other, tiny_images(seed=2))
    result = invoke("fit", "--resume", "--out", run, "--data", other, "--epochs", 5)
    assert result.exit_code == 1 and "was trained on other images" in result.output
    with pytest.raises(DataError, match="was trained on other images"):
        tfp_realnvp.resume(run, other, epochs=5)
