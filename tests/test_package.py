"""The public surface: a side-effect-free import, typed errors, one version, the doctest."""

import dataclasses
import doctest
import importlib
import importlib.metadata
import importlib.util
import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

import tfp_realnvp
from tfp_realnvp.bijectors import coupling
from tfp_realnvp.cli import cli
from tfp_realnvp.config import (
    ACTIVATIONS,
    COUPLINGS,
    MIXINGS,
    SCHEDULES,
    STRATEGIES,
    TOY_DATASET_NAMES,
    FlowConfig,
    TrainConfig,
    settings,
)


def fresh_python(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND")}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={**clean, **env}, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_changes_nothing_for_the_caller():
    """Importing the package starts no TensorFlow; using it leaves the environment as
    TensorFlow's own import leaves it (with JAX installed, TF imports it, and JAX sets
    TF_CPP_MIN_LOG_LEVEL=1): the package adds nothing. One fresh interpreter: TensorFlow's
    import is measured first, then the package is imported and used in the same process."""
    got = fresh_python("""
import json, os, sys
import matplotlib
matplotlib.use("svg")
before = dict(os.environ)
import tfp_realnvp
lazy = "tensorflow" not in sys.modules
imported_unchanged = dict(os.environ) == before
import tensorflow, tensorflow_probability
after_tensorflow = dict(os.environ)
config = tfp_realnvp.FlowConfig(num_couplings=3)
flow = tfp_realnvp.build_flow(config.replace(event_dim=2))
print(json.dumps({"lazy": lazy, "import_unchanged": imported_unchanged,
                  "use_unchanged": dict(os.environ) == after_tensorflow,
                  "backend": matplotlib.get_backend()}))
""")
    assert got == {"lazy": True, "import_unchanged": True, "use_unchanged": True,
                   "backend": "svg"}


def test_cli_help_does_not_import_tensorflow():
    got = fresh_python("""
import json, sys
from click.testing import CliRunner
from tfp_realnvp.cli import cli
result = CliRunner().invoke(cli, ["fit", "--help"])
print(json.dumps({"code": result.exit_code, "tf": "tensorflow" in sys.modules,
                  "has_options": "--num-couplings" in result.output}))
""")
    assert got == {"code": 0, "tf": False, "has_options": True}


def test_cli_options_are_the_config_fields():
    fit = cli.commands["fit"]
    options = {p.name: p for p in fit.params}
    for cls in (FlowConfig, TrainConfig):
        for field, rule in settings(cls):
            if field.name != "seed":  # one --seed sets TrainConfig.seed and permutation_seed
                assert (field.name in options) == rule.cli, field.name
    choices = {name: tuple(options[name].type.choices) for name in
               ("activation", "coupling", "mixing", "schedule", "strategy", "dataset")}
    assert choices == {"activation": ACTIVATIONS, "coupling": COUPLINGS, "mixing": MIXINGS,
                       "schedule": SCHEDULES, "strategy": STRATEGIES,
                       "dataset": TOY_DATASET_NAMES}
    # Bounds come from the same table: the CLI refuses what the dataclass refuses.
    result = CliRunner().invoke(cli, ["fit", "--num-couplings", "1"])
    assert result.exit_code == 2 and "1 is not in the range x>=2" in result.output


def test_library_errors_say_what_happened(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        tfp_realnvp.tables.load_array(tmp_path / "absent.csv")
    with pytest.raises(FileNotFoundError, match="a directory, not a file"):
        tfp_realnvp.tables.load_array(tmp_path)
    with pytest.raises(tfp_realnvp.ConfigError, match="'num_couplings' must be >= 2; got 1"):
        FlowConfig(num_couplings=1)
    assert issubclass(tfp_realnvp.ConfigError, ValueError)
    with pytest.raises(FileNotFoundError, match="neither a run directory"):
        tfp_realnvp.load(tmp_path)


def test_cli_keeps_the_traceback_of_a_bug(monkeypatch, tmp_path):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug, not bad input")

    monkeypatch.setattr(tfp_realnvp.tables, "make_toy", broken)
    result = CliRunner().invoke(cli, ["fit", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_one_version_string():
    assert importlib.metadata.version("tfp-realnvp") == tfp_realnvp.__version__
    assert CliRunner().invoke(cli, ["--version"]).output.strip().endswith(
        tfp_realnvp.__version__)


def test_coupling_docstring_example_runs():
    result = doctest.testmod(coupling, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 5 and result.failed == 0


def test_configs_are_frozen_plain_data():
    config = FlowConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_couplings = 3
    assert FlowConfig.from_json(config.to_json()) == config
    assert TrainConfig.from_dict(TrainConfig(epochs=5).to_dict()).epochs == 5


def test_bijectors_live_in_their_own_package():
    bijectors = importlib.import_module("tfp_realnvp.bijectors")
    for name in bijectors.__all__:
        assert getattr(bijectors, name).__module__.startswith("tfp_realnvp.bijectors.")
    assert tfp_realnvp.AffineCoupling is bijectors.AffineCoupling
    package = os.path.dirname(tfp_realnvp.__file__)
    for old in ("coupling", "mixing", "ensemble"):  # moved, no shims left behind
        assert not os.path.exists(os.path.join(package, f"{old}.py"))
        assert old not in tfp_realnvp._SUBMODULES


def test_speed_report_and_options_need_no_tensorflow():
    got = fresh_python("""
import json, sys
from tfp_realnvp.bench.options import SpeedOptions
from tfp_realnvp.bench.report import format_report, ratios
print(json.dumps({"tf": "tensorflow" in sys.modules, "dim": SpeedOptions().dim}))
""")
    assert got == {"tf": False, "dim": 2}


@pytest.mark.parametrize("package", ["tfp_realnvp", "tfp_realnvp.bijectors", "tfp_realnvp.mixed"])
def test_dir_lists_only_the_packages_own_names(package):
    module = importlib.import_module(package)
    names = [n for n in dir(module) if not (n.startswith("__") and n.endswith("__"))]
    # Every name is a public export or a submodule: no helper the package module imports.
    for name in names:
        assert name in module.__all__ or importlib.util.find_spec(f"{package}.{name}"), name
    for stray in ("TYPE_CHECKING", "annotations", "lazy_namespace", "Any", "importlib",
                  "_EXPORTS", "_SUBMODULES"):
        assert stray not in names
    assert set(module.__all__) <= set(names)
