"""The documentation site: `mkdocs build --strict` passes, and every page, the API reference
(from the docstrings) and the CLI reference (from the click commands) are in the HTML."""

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tfp_realnvp.cli import cli

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                           "--config-file", str(config), "--site-dir", str(site)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)


def text_of(page: Path) -> str:
    """A built page's visible text, whitespace collapsed."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.read_text())))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    done = build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def built(site: Path, page: str) -> Path:
    """docs/a/b.md -> site/a/b/index.html (directory URLs), docs/index.md -> index.html."""
    stem = page.removesuffix(".md")
    return site / ("index.html" if stem == "index" else f"{stem.removesuffix('/index')}/index.html")


def test_every_page_is_built(site):
    pages = sorted(str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md"))
    assert "index.md" in pages and "cli.md" in pages and "api/training.md" in pages
    for page in pages:
        assert built(site, page).is_file(), page
    for image in ("moons.png", "step_cost.png"):  # used by README.md and the pages
        assert (site / image).read_bytes()[:4] == b"\x89PNG"


def test_the_api_reference_is_made_from_the_docstrings(site):
    page = built(site, "api/training.md").read_text()
    assert 'id="tfp_realnvp.training.api.fit"' in page
    assert "Trains a new flow on the rows of" in text_of(built(site, "api/training.md"))
    # Every module a reference page names is rendered with its heading.
    for source in sorted((DOCS / "api").glob("*.md")):
        html_page = built(site, f"api/{source.name}").read_text()
        for module in re.findall(r"^::: (\S+)", source.read_text(), re.M):
            assert f'id="{module}"' in html_page, (source.name, module)
    index = built(site, "api/index.md").read_text()
    for name in ("fit", "load", "export", "build_flow", "FlowConfig"):
        assert f">{name}</code></a>" in index, name  # a resolved cross-reference


def test_the_cli_reference_is_made_from_the_click_commands(site):
    text = text_of(built(site, "cli.md"))
    for name in cli.commands:
        assert f"tfp-realnvp {name}" in text, name
    for option in ("--data", "--time-budget", "--ensemble-size", "--export", "--resume"):
        assert option in text, option
    assert "Train a flow." in text  # the fit command's own help


# The pages the broken-reference build needs: design.md and what it links to (a site of
# three pages builds in a fraction of the whole site's time, with the same config).
LINKED_PAGES = {"design.md": "Design notes", "benchmarks.md": "Benchmarks",
                "api/bijectors.md": "Bijectors"}


def test_a_broken_reference_fails_the_build(tmp_path):
    for page in (*LINKED_PAGES, "step_cost.png"):
        (tmp_path / "docs" / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DOCS / page, tmp_path / "docs" / page)
    config = (ROOT / "mkdocs.yml").read_text().replace('paths: ["."]', f'paths: ["{ROOT}"]')
    nav = "".join(f"  - {title}: {page}\n" for page, title in LINKED_PAGES.items())
    config = re.sub(r"^nav:\n(?:  .*\n)+", f"nav:\n{nav}", config, count=1, flags=re.M)
    assert config.count(".md") == len(LINKED_PAGES)  # the project's config, those pages only
    (tmp_path / "mkdocs.yml").write_text(config)
    page = tmp_path / "docs" / "design.md"
    page.write_text(page.read_text() + "\nSee [the missing page](missing.md) and "
                    "[a function][tfp_realnvp.no_such_function].\n")
    done = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    for named in ("'missing.md'", "tfp_realnvp.no_such_function"):  # each one reported
        assert named in done.stdout + done.stderr, done.stdout + done.stderr


def test_the_guarantees_name_tests_that_exist():
    """Each promise on the Guarantees page names the test that checks it: those exist."""
    named = 0
    for row in (DOCS / "guarantees.md").read_text().splitlines():
        if not row.startswith("| ") or "test_" not in row:
            continue
        current = None
        for file, name in re.findall(r"`(test_\w+\.py)?(?:::(\w+))?`", row.split("|")[-2]):
            current = file or current
            source = (ROOT / "tests" / current).read_text()
            assert not name or f"def {name}(" in source, (current, name)
            named += 1
    assert named >= 15
