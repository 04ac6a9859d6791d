"""python-tripleoclient's command lines, typed as operators type them.

``prepare --templates -e ...`` hands the stack update to python-tripleoclient
(tests/test_coexistence.py runs that handoff in a venv that has it); here,
without python-tripleoclient, it is refused in one line that says why.
``run --limit ROLE --playbook all`` without ``--stage`` runs the stage of
those hosts, or names the ``--stage`` options to use.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.helpers import error_line, tree, upgrade

FIXTURE = Path(__file__).parent / "fixtures" / "tht18" / "stack-outputs.json"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("tripleoclient") is not None,
    reason="python-tripleoclient is installed in this venv")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("home")
    done = upgrade("prepare", "--outputs-file", str(FIXTURE), home=home)
    assert done.returncode == 0, done.stderr
    return home


@pytest.mark.parametrize("argv,option", [
    (["--templates", "-e", "/env/upgrade-prepare.yaml"], "--templates"),
    (["-e", "/env/upgrade-prepare.yaml", "-r", "/roles.yaml"], "--environment-file"),
    (["--templates=/tht", "--ntp-server", "pool.ntp.org", "--stack-only"],
     "--templates"),
])
def test_templates_need_python_tripleoclient(tmp_path, argv, option):
    done = upgrade("prepare", *argv, "-y", home=tmp_path)
    line = error_line(done)
    assert line.startswith(f"{option}: needs python-tripleoclient"), line
    assert "--outputs-file" in line
    assert not (tmp_path / "overcloud-deploy").exists()


def test_templates_and_another_source_are_refused(tmp_path):
    done = upgrade("prepare", "--templates", "--outputs-file", str(FIXTURE),
                   home=tmp_path)
    assert error_line(done) == (
        "--templates: updates the stack with python-tripleoclient; it cannot "
        "be used with --outputs-file")
    assert not (tmp_path / "overcloud-deploy").exists()


def test_run_limit_playbook_all_runs_the_stage_of_those_hosts(prepared):
    done = upgrade("run", "--limit", "Compute", "--playbook", "all", "--dry-run",
                   home=prepared)
    assert done.returncode == 0, done.stderr
    assert "note: --limit Compute is in stage compute: running --stage compute" \
        in done.stderr
    assert "compute_step0.yaml" in done.stderr
    assert "controlplane_step" not in done.stderr
    assert "overcloud-novacompute-0" in done.stdout


def test_tripleoclient_run_line_without_playbook_maps_too(prepared):
    done = upgrade("run", "--limit", "overcloud-controller-0", "--dry-run",
                   home=prepared)
    assert done.returncode == 0, done.stderr
    assert "running --stage controlplane" in done.stderr


@pytest.mark.parametrize("argv,expected", [
    (["--limit", "Compute,Controller", "--playbook", "all"],
     "--playbook all: --limit Compute,Controller spans stages controlplane, "
     "compute; run them one at a time, in order: --stage controlplane, then "
     "--stage compute"),
    ([], "--stage: is needed: one of external, controlplane, compute, converge"),
    (["--limit", "Compute", "--playbook", "compute_step3.yaml"],
     "--stage: is needed with --playbook compute_step3.yaml: one of external, "
     "controlplane, compute, converge"),
    (["--limit", "Comptue", "--playbook", "all"],
     None),
])
def test_run_without_stage_names_the_stage(prepared, argv, expected):
    before = tree(prepared / "overcloud-deploy")
    done = upgrade("run", *argv, "-y", home=prepared)
    line = error_line(done)
    if expected is None:  # a typo is a typo, as with --stage
        assert "Comptue" in line and "--limit" in line, line
    else:
        assert line == expected
    assert tree(prepared / "overcloud-deploy") == before
