"""FlowJAX's flows as peers in `bench quality`: real fits, data units, seeds, the table."""

import ast
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import tfp_realnvp
from tfp_realnvp.bench import quality
from tfp_realnvp.cli import cli
from tfp_realnvp.errors import ConfigError
from tfp_realnvp.tables import make_toy

PEERS = ("flowjax_maf", "flowjax_coupling")
EPOCHS = 20  # 450 fitting rows in batches of 100: 80 Adam steps
MOONS = quality.Table("moons", make_toy("moons", 500, 0.05, 0),
                      make_toy("moons", 2000, 0.05, 1))


@pytest.fixture(scope="module", autouse=True)
def jax_compile_cache(tmp_path_factory):
    """Each fit builds a new flow, which JAX compiles anew (several seconds); its on-disk
    cache turns the repeats into look-ups. It changes how long a fit takes, not its result."""
    import jax  # the test extra installs it
    saved = {name: getattr(jax.config, name) for name in (
        "jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes")}
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    for name, value in saved.items():
        jax.config.update(name, value)


@pytest.mark.parametrize("method", PEERS)
def test_a_peer_fits_two_moons_seeded_in_data_units_through_the_benchmark(method, monkeypatch):
    # One test per peer: a worker process compiles only the flow it fits. Four fits (each
    # about 6 CPU-seconds, whatever the epochs: JAX traces every new flow): seed 0 directly,
    # seed 0 through the benchmark (which also proves the seed decides the fit), seed 1,
    # and seed 0 on wider columns.
    fit = quality.METHOD_FUNCTIONS[method]
    nll, note = fit(MOONS.train, MOONS.test, 0, max_epochs=EPOCHS)
    assert nll.shape == (len(MOONS.test),) and nll.dtype == np.float64
    assert np.all(np.isfinite(nll))
    gaussian, _ = quality.gaussian_nll(MOONS.train, MOONS.test, 0)
    # Measured over seeds 0-2 at 20 epochs: 0.62-0.99 nats against the Gaussian's 1.88.
    assert nll.mean() < gaussian.mean() - 0.5, (nll.mean(), gaussian.mean())
    kind = {"flowjax_maf": "MAF-RQS", "flowjax_coupling": "coupling-RQS"}[method]
    best, run = map(int, re.fullmatch(rf"{kind}, (\d+) of (\d+) epochs", note).groups())
    assert 1 <= best <= run <= EPOCHS

    # Through the benchmark (same rows, same seed): the same fit, a column with its seconds.
    # The benchmark calls the peer's own function; what that call returned is kept here.
    returned = []

    def kept(*args, **kwargs):
        returned.append(fit(*args, **kwargs))
        return returned[-1]

    monkeypatch.setitem(quality.METHOD_FUNCTIONS, method, kept)
    monkeypatch.setattr(quality, "load_table", lambda name, seed=0: MOONS)
    records = quality.run_quality(tables=("moons",), methods=("gaussian", method),
                                  max_epochs=EPOCHS)
    assert records[1]["nll"] == float(np.mean(nll)) and records[1]["detail"] == note
    summary = quality.summarise(records)["moons"]
    lines = quality.format_table(records).splitlines()
    assert lines[0] == f"| table (train x dims) | gaussian | {method} | flow beats |"
    assert lines[2] == (f"| moons (500 x 2) | {summary['gaussian']['nll']:.3f} "
                        f"({summary['gaussian']['seconds']:.0f} s) | "
                        f"{summary[method]['nll']:.3f} ({summary[method]['seconds']:.0f} s) |  |")

    # The seed decides the fit: seed 0 again (the benchmark's fit) is the same, bit for bit.
    [(again, _)] = returned
    np.testing.assert_array_equal(again, nll)
    assert not np.allclose(fit(MOONS.train, MOONS.test, 1, max_epochs=EPOCHS)[0], nll)

    # Columns 16x wider (a power of two: the standardised rows are the same bits): the same
    # fit, each row's density 16^-2 as high.
    wide, _ = fit(16 * MOONS.train, 16 * MOONS.test, 0, max_epochs=EPOCHS)
    np.testing.assert_allclose(wide, nll + 2 * math.log(16), rtol=0, atol=1e-4)


def test_the_quality_table_puts_the_peers_before_the_flow_and_scores_them():
    records = [{"table": "digits", "seed": 0, "method": m, "nll": nll, "seconds": seconds,
                "rows": [1438, 359], "dim": 64}
               for m, nll, seconds in (("flow", 123.93, 300), ("flowjax_coupling", 110.59, 12),
                                       ("gaussian", 133.10, 0.1), ("flowjax_maf", 104.72, 9))]
    lines = quality.format_table(records).splitlines()
    assert lines[0] == ("| table (train x dims) | gaussian | flowjax_maf | flowjax_coupling | "
                        "flow | flow beats |")
    assert lines[2] == ("| digits (1438 x 64) | 133.100 (0 s) | 104.720 (9 s) | 110.590 (12 s) "
                        "| 123.930 (300 s) | gaussian |")


def test_peers_are_opt_in_and_only_their_fit_imports_jax():
    assert not set(PEERS) & set(quality.METHODS)
    assert set(PEERS) <= set(quality.METHOD_CHOICES)
    importers = set()
    for path in Path(tfp_realnvp.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] in ("jax", "flowjax") for n in names):
                owner = node
                while owner in parents and not isinstance(owner, ast.FunctionDef):
                    owner = parents[owner]
                importers.add((path.name, getattr(owner, "name", "<module>")))
    assert importers == {("peers.py", "_import_flowjax")}


def test_without_flowjax_a_peer_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)  # what an environment without JAX sees
    with pytest.raises(ConfigError, match=r"'flowjax_maf' needs FlowJAX and JAX .*"
                                          r'pip install -e "\.\[bench\]"'):
        quality.METHOD_FUNCTIONS["flowjax_maf"](MOONS.train, MOONS.test, 0)
    result = CliRunner().invoke(cli, ["bench", "quality", "--tables", "iris", "--methods",
                                      "gaussian,flowjax_coupling", "--json"])
    assert result.exit_code == 1
    assert 'flowjax_coupling\' needs FlowJAX and JAX' in result.output
    assert "Traceback" not in result.output


def test_bench_quality_cli_accepts_the_peers_by_name():
    result = CliRunner().invoke(cli, ["bench", "quality", "--help"])
    assert 'flowjax_maf and flowjax_coupling (FlowJAX\'s spline flows) need the bench extra: ' \
        'pip install -e ".[bench]"' in " ".join(result.output.split())
    bad = CliRunner().invoke(cli, ["bench", "quality", "--methods", "flowjax_nsf"])
    assert bad.exit_code == 2 and "flowjax_maf, flowjax_coupling" in bad.output
