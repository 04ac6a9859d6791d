"""The notebooks, executed headless, and the values they compute.

Each notebook runs with nbclient in a fresh ``python3`` kernel, from the
notebooks folder, with ``TMPDIR`` pointing at the test's temporary directory
(the notebooks write only to ``tempfile.mkdtemp()`` folders). A check cell
appended to the in-memory copy prints a JSON summary of the notebook's
variables; the tests assert on it. The committed notebooks carry no outputs.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

import composable_upgrades as cu

if TYPE_CHECKING:  # imported where used: nbformat takes a second to import
    import nbformat

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
DATA = NOTEBOOKS / "data"
FIXTURE = ROOT / "tests" / "fixtures" / "tht18"
NAMES = ("plan-review", "upgrade-rehearsal", "real-plan-rehearsal")
MARKER = "@@NOTEBOOK-CHECK@@"
CELL_TIMEOUT = 300

#: What a notebook may import.
ALLOWED_IMPORTS = {"os", "tempfile", "numpy", "pandas", "matplotlib.pyplot",
                   "composable_upgrades"}


#: Defined in the check cell: what a drawn timeline shows.
_TIMELINE = """
def _timeline(run):
    import matplotlib.pyplot as _plt
    ax = run.timeline()
    fig = ax.figure
    fig.canvas.draw()
    axes_box = ax.get_window_extent()
    legend = ax.get_legend()
    result = {
        "xaxis": type(ax.xaxis.get_major_formatter()).__name__,
        "xlim_year": int(__import__("matplotlib.dates").dates.num2date(
            ax.get_xlim()[0]).year),
        "bar_colours": len({tuple(c[:3]) for coll in ax.collections
                            for c in coll.get_facecolors()}),
        "legend": [t.get_text() for t in legend.get_texts()],
        "legend_outside": bool(legend.get_window_extent().x0 >= axes_box.x1),
        "legend_in_figure": bool(legend.get_window_extent().x1 <= fig.bbox.x1),
        "texts": [t.get_text() for t in ax.texts],
        "red_outlines": int(sum(1 for coll in ax.collections
                                for e in coll.get_edgecolors() if e[3] > 0)),
    }
    _plt.close(fig)
    return result
"""


def _check_cell(body: str) -> str:
    """A cell that prints ``MARKER`` + the JSON of the expression ``body``."""
    return ("import json as _json\n" + _TIMELINE +
            f"print({MARKER!r} + _json.dumps({body}, default=str))\n")


CHECKS = {
    "plan-review": _check_cell("""{
    "stages": [s.name for s in plan.stages],
    "stage_roles": {s.name: list(s.roles) for s in plan.stages},
    "hosts": len(plan.deployment.hosts),
    "tasks_by_stage": {k: int(v) for k, v in
                       frame.groupby("stage", sort=False)["tasks"].sum().items()},
    "tasks": [[stage, step, role, int(n)] for (stage, step, role), n in
              frame.groupby(["stage", "step", "role"], sort=False)["tasks"].sum().items()],
    "heat_total": int(heat.to_numpy().sum()),
    "order": [[stage, step, role, services.split(" → ")]
              for (stage, step, role), services in order.items()],
    "requires": {s: sorted(plan.dependencies.requires(s))
                 for s in frame["service"].unique()},
    "diff": diff.astype(object).where(diff.notna(), None).to_dict("records"),
    "previous_plan": workdir.load_plan("previous").sha256 == prepared.sha256,
    "working_dir": working_dir,
}"""),
    "upgrade-rehearsal": _check_cell("""{
    "stages": [s.name for s in plan.stages],
    "statuses": {name: run.status for name, run in [
        ("images", images), ("controlplane", controlplane), ("compute", compute),
        ("resumed", resumed), ("migrations", migrations), ("converged", converged)]},
    "after_controlplane": after_controlplane.ok,
    "after_compute": after_compute.ok,
    "report_ok": report.ok,
    "report_checks": report.to_frame()["check"].tolist(),
    "failed_hosts": compute.failed_hosts,
    "failures": failures[["stage", "batch", "step", "host", "status"]].to_dict("records"),
    "compute_batches": [list(b) for b in compute.batches],
    "resumed_units": sorted({(r.host, r.step) for r in resumed.records}),
    "runs": runs[["kind", "stage", "status", "failed_hosts"]].astype(object)
            .where(runs[["kind", "stage", "status", "failed_hosts"]].notna(), None)
            .to_dict("records"),
    "history_failures": history.run(compute.run_id).failures()["host"].tolist(),
    "status": {s.stage: s.state for s in cu.status(working_dir)},
    "base": base,
    "start_dtype": str(controlplane.tasks()["start"].dtype),
    "durations": controlplane.tasks()["duration"].tolist(),
    "resumed_steps": resumed.summary()["step"].tolist(),
    "resumed_columns": resumed.host_steps()[0],
    "batch_table": compute.batch_table().to_dict("records"),
    "tuple_cells": int(sum(isinstance(v, tuple) for frame in (
        stages, compute.batch_table(), resumed.tasks(), converged.summary())
        for v in frame.to_numpy().ravel())),
    "timelines": {name: _timeline(run) for name, run in [
        ("compute", compute), ("resumed", resumed), ("converged", converged)]},
    "kernel_changed": sorted(h for h in plan.hosts if open(os.path.join(
        fleet.host_root(h), "boot_count")).read().strip() != "1"),
}"""),
    "real-plan-rehearsal": _check_cell("""{
    "variant": plan.variant,
    "stages": list(runs),
    "statuses": {name: run.status for name, run in runs.items()},
    "plan_hosts": sorted(plan.hosts),
    "addresses": sorted(h.address for h in plan.hosts.values() if h.address),
    "record_hosts": sorted(set(records["host"])),
    "record_statuses": records["status"].value_counts().to_dict(),
    "units": [[stage, step, host, int(n)] for (stage, step, host), n in
              tasks.groupby(["stage", "step", "host"], sort=False).size().items()],
    "task_names": sorted(set(tasks["task"])),
    "messages": sorted(set(records["message"])),
    "per_role_step_total": int(per_role_step.to_numpy().sum()),
    "per_host_total": int(per_host.to_numpy().sum()),
    "tasks": len(tasks),
    "inventory": plan.file("inventory.yaml"),
    "fleet": fleet.root,
    "base": base,
}"""),
}


def _execute(name: str, tmp: Path) -> tuple[nbformat.NotebookNode, dict[str, Any]]:
    """Run notebook ``name`` plus its check cell; the notebook and the summary."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(CHECKS[name]))
    env = dict(os.environ, TMPDIR=str(tmp), MPLBACKEND="Agg")
    client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute(env=env)
    errors = [o for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    text = "".join(o.get("text", "") for o in nb.cells[-1].outputs
                   if o.output_type == "stream" and o.name == "stdout")
    line = next(line for line in text.splitlines() if line.startswith(MARKER))
    return nb, json.loads(line[len(MARKER):])


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Notebook name -> (executed notebook, summary, temp dir); each run once."""
    cache: dict[str, tuple[nbformat.NotebookNode, dict[str, Any], Path]] = {}

    def run(name: str):
        if name not in cache:
            tmp = tmp_path_factory.mktemp(name)
            before = _listing(NOTEBOOKS)
            nb, summary = _execute(name, tmp)
            assert _listing(NOTEBOOKS) == before, "the notebook wrote into notebooks/"
            cache[name] = (nb, summary, tmp)
        return cache[name]
    return run


def _images(nb: nbformat.NotebookNode) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells
               if c.cell_type == "code" for o in c.outputs)


# -- the committed notebooks ------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_committed_without_outputs(name):
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.parametrize("name", NAMES)
def test_uses_only_the_public_sdk(name):
    import nbformat

    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    imported: set[str] = set()
    used: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines()
                           if not line.startswith("%"))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module or "")
            elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                  and node.value.id == "cu"):
                used.add(node.attr)
    assert imported <= ALLOWED_IMPORTS, imported - ALLOWED_IMPORTS
    assert used and used <= set(cu.__all__), used - set(cu.__all__)


def test_data_is_small_and_the_fixture_copy_is_exact():
    assert (DATA / "tht18-stack-outputs.json").read_bytes() == \
        (FIXTURE / "stack-outputs.json").read_bytes()
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert size < 1_500_000


# -- plan-review -------------------------------------------------------------

def test_plan_review(executed):
    nb, summary, tmp = executed("plan-review")
    assert summary["working_dir"].startswith(str(tmp))
    assert summary["stages"] == ["external", "controlplane", "compute", "converge"]
    roles = summary["stage_roles"]
    assert roles["controlplane"] == ["Controller", "Database", "Messaging"]
    assert sorted(roles["compute"]) == ["CephStorage", "Compute", "ComputeHCI",
                                        "Networker"]
    assert roles["external"] == ["Undercloud"]
    assert summary["hosts"] == 26
    by_stage = summary["tasks_by_stage"]
    assert by_stage["external"] == 23  # RoleConfig's external upgrade tasks
    assert summary["heat_total"] == sum(by_stage.values())
    assert _images(nb) == 2

    # Tasks per role and step: the fixture's own counts (summary.json), each
    # step's bound tasks plus the tasks with no step, which run at every step.
    counts: dict[tuple[str, Any, str], int] = {}
    for stage, step, role, n in summary["tasks"]:
        counts[(stage, step, role)] = n
    facts = json.loads((FIXTURE / "summary.json").read_text())["per_role"]
    for role, fact in facts.items():
        stage = "controlplane" if role in roles["controlplane"] else "compute"
        for kind, plan_stage in (("upgrade_tasks", stage),
                                 ("post_upgrade_tasks", "converge")):
            per_step = fact[f"{kind}_per_step"]
            for step, bound in per_step["bound_per_step"].items():
                expected = bound + per_step["unbound_every_step"]
                assert counts.get((plan_stage, int(step), role), 0) == expected, \
                    (role, kind, step)
    assert by_stage["controlplane"] == sum(
        n for (stage, _, _), n in counts.items() if stage == "controlplane")

    # The services of each control-plane play come after their dependencies.
    requires = summary["requires"]
    pairs = 0
    for stage, step, role, services in summary["order"]:
        for position, service in enumerate(services):
            for dependency in requires.get(service, []):
                if dependency in services:
                    pairs += 1
                    assert services.index(dependency) < position, \
                        (stage, step, role, service, dependency)
    assert pairs > 0
    controlplane_roles = {role for stage, _, role, _ in summary["order"]
                          if stage == "controlplane"}
    assert controlplane_roles == {"Controller", "Database", "Messaging"}

    # The diff finds exactly the four edits of the changed outputs.
    assert summary["previous_plan"]
    changes = [(d["change"], d["stage"], d["role"], d["service"], d["task"],
                d["old_step"], d["new_step"]) for d in summary["diff"]]
    assert sorted(changes, key=str) == sorted([
        ("service added", "compute", "Compute", "neutron_sriov_agent", None, None, None),
        ("task removed", "compute", "Compute", "tripleo_packages",
         "Install libibverbs (https://bugs.launchpad.net/tripleo/+bug/1817743)", 2, None),
        ("task moved", "compute", "Compute", "nova_libvirt",
         "nova_libvirt_container_tmpfile_cleanup", 1, 2),
        ("task added", "compute", "Compute", "neutron_sriov_agent",
         "Stop neutron_sriov_agent before its upgrade", None, 1),
    ], key=str)


# -- upgrade-rehearsal -------------------------------------------------------

def test_upgrade_rehearsal(executed):
    nb, summary, tmp = executed("upgrade-rehearsal")
    assert summary["base"].startswith(str(tmp))
    assert summary["stages"] == ["external", "controlplane", "compute", "converge"]
    assert summary["statuses"] == {
        "images": "successful", "controlplane": "successful", "compute": "failed",
        "resumed": "successful", "migrations": "successful",
        "converged": "successful"}
    assert summary["after_controlplane"] is True
    assert summary["after_compute"] is True
    assert summary["report_ok"] is True
    assert "RPC versions unpinned" in summary["report_checks"]

    # The injected fault: one failed task, on its host, at its step.
    assert summary["failed_hosts"] == ["overcloud-novacompute-3"]
    assert summary["failures"] == [{"stage": "compute", "batch": 3, "step": 3,
                                    "host": "overcloud-novacompute-3",
                                    "status": "failed"}]
    assert summary["history_failures"] == ["overcloud-novacompute-3"]
    # Batches of two spread the roles: the Ceph host fills the second batch.
    batches = [["overcloud-novacompute-0", "overcloud-novacompute-1"],
               ["overcloud-novacompute-2", "overcloud-cephstorage-0"],
               ["overcloud-novacompute-3", "overcloud-novacompute-4"],
               ["overcloud-novacompute-5"]]
    assert summary["compute_batches"] == batches
    assert summary["batch_table"] == [
        {"batch": n, "count": len(b), "hosts": ", ".join(b)}
        for n, b in enumerate(batches, start=1)]

    # Resume: the finished batches are skipped, novacompute-4 goes on at step
    # 4, the failed host starts again at step 3, the last batch runs every step.
    units = {(host, step) for host, step in summary["resumed_units"]}
    hosts = {host for host, _ in units}
    assert hosts == {"overcloud-novacompute-3", "overcloud-novacompute-4",
                     "overcloud-novacompute-5"}
    assert {s for h, s in units if h == "overcloud-novacompute-3"} == {3, 4}
    assert {s for h, s in units if h == "overcloud-novacompute-4"} == {4}
    assert {s for h, s in units if h == "overcloud-novacompute-5"} == {0, 1, 2, 3, 4}
    # ... and its tables list the steps in step order all the same.
    assert summary["resumed_steps"] == [0, 1, 2, 3, 4]
    assert summary["resumed_columns"] == ["Host"] + [f"Step {n}" for n in range(5)]

    # Tables: start times as date-times, durations to 0.1 s, no tuples.
    assert summary["start_dtype"].startswith("datetime64")
    assert summary["durations"] and all(
        round(d, 1) == d for d in summary["durations"])
    assert summary["tuple_cells"] == 0

    # Timelines: wall-clock axis, a colour per role, one legend outside the
    # bars, the failed host-step outlined and named, batches and steps marked.
    timelines = summary["timelines"]
    for name, drawn in timelines.items():
        assert drawn["xaxis"] == "DateFormatter" and drawn["xlim_year"] >= 2024, name
        assert drawn["legend_outside"] is True and drawn["legend_in_figure"] is True
    compute = timelines["compute"]
    assert compute["bar_colours"] == 2
    assert compute["legend"][:2] == ["Compute", "CephStorage"]
    assert "outcome: failed" in compute["legend"]
    assert compute["red_outlines"] == 1
    assert "Rehearsal fault check (compute_step3)" in compute["texts"]
    assert [t for t in compute["texts"] if t.startswith("batch")] == [
        "batch 1", "batch 2", "batch 3"]
    assert timelines["resumed"]["red_outlines"] == 0
    converged = timelines["converged"]
    assert converged["bar_colours"] == 3
    assert "step reboot" in converged["texts"]
    # The reboot step: the hosts whose kernel changed rebooted (their boot
    # count went up), the controllers were skipped.
    assert len(summary["kernel_changed"]) == 7
    assert converged["texts"].count("rebooted") == len(summary["kernel_changed"])
    assert converged["texts"].count("skipped") == 3

    runs = [(r["kind"], r["stage"], r["status"]) for r in summary["runs"]]
    assert runs == [
        ("prepare", None, "successful"),
        ("stage", "external", "successful"),
        ("stage", "controlplane", "successful"),
        ("stage", "compute", "failed"),
        ("stage", "compute", "successful"),
        ("stage", "external", "successful"),
        ("converge", "converge", "successful"),
    ]
    assert summary["status"] == {"external": "finished", "controlplane": "finished",
                                 "compute": "finished", "converge": "finished"}
    assert _images(nb) == 4


# -- real-plan-rehearsal -----------------------------------------------------

def test_real_plan_rehearsal(executed):
    nb, summary, tmp = executed("real-plan-rehearsal")
    assert summary["base"].startswith(str(tmp))
    assert summary["fleet"].startswith(str(tmp))
    assert summary["variant"] == "noop"
    # The external stage runs by tags, after compute: THT 18's external tasks
    # that are not tagged never are the online data migrations.
    assert summary["stages"] == ["controlplane", "compute", "external", "converge"]
    assert set(summary["statuses"].values()) == {"successful"}
    assert set(summary["record_statuses"]) <= {"ok", "skipped"}

    # Every host of the plan, and the undercloud, recorded tasks.
    assert len(summary["plan_hosts"]) == 26
    assert set(summary["plan_hosts"]) <= set(summary["record_hosts"]) <= set(
        summary["plan_hosts"] + ["undercloud"])

    # Exactly the plan's tasks that are not tagged never, on each host of
    # each play, at each step (the external stage, run by tags: see
    # test_real_plan_rehearsal_runs_the_online_migrations_by_tag).
    outputs = cu.StackOutputs.from_file(FIXTURE / "stack-outputs.json")
    real = cu.plan_upgrade(outputs).to_dict()
    expected: dict[tuple[str, str, str], int] = {}
    never_names, other_names = set(), set()
    for stage in real["stages"]:
        for step in stage["steps"]:
            for play in step["plays"]:
                kept = [t for t in play["tasks"] if not t["never"]]
                never_names.update(t["name"] for t in play["tasks"] if t["never"])
                other_names.update(t["name"] for t in kept)
                for host in play["hosts"]:
                    key = (stage["name"], str(step["step"]), host)
                    expected[key] = expected.get(key, 0) + len(kept)
    expected = {k: n for k, n in expected.items() if n and k[0] != "external"}
    got = {(stage, str(step), host): n for stage, step, host, n in summary["units"]
           if stage != "external"}
    assert got == expected
    assert never_names - other_names
    assert not (never_names - other_names) & set(summary["task_names"])
    assert summary["tasks"] == sum(expected.values()) + sum(
        n for stage, _, _, n in summary["units"] if stage == "external")
    assert summary["per_role_step_total"] == summary["tasks"]
    assert summary["per_host_total"] == summary["tasks"]

    # No task went to a real address: every host of the inventory is a local
    # sandbox of the fleet, and no address shows up in a record.
    inventory = yaml.safe_load(Path(summary["inventory"]).read_text())
    hosts: dict[str, dict[str, Any]] = {}
    groups = [inventory["all"]]
    while groups:
        group = groups.pop()
        hosts.update(group.get("hosts") or {})
        groups.extend((group.get("children") or {}).values())
    assert sorted(hosts) == sorted(summary["plan_hosts"] + ["undercloud"])
    for name, variables in hosts.items():
        assert variables["ansible_connection"] == "local", name
        assert variables["ansible_become"] is False, name
        assert variables["rehearsal_root"] == os.path.join(summary["fleet"], name)
    assert len(summary["addresses"]) == 26
    assert not [m for m in summary["messages"]
                for a in summary["addresses"] if a in m]
    assert _images(nb) == 4


def test_real_plan_rehearsal_runs_the_online_migrations_by_tag(executed):
    """THT 18's external upgrade tasks not tagged never are two blocks of
    online data migrations (tagged online_upgrade inside the block), at step
    1 on the undercloud: the external stage, run by that tag, records both."""
    _, summary, _ = executed("real-plan-rehearsal")
    external = {(step, host): n for stage, step, host, n in summary["units"]
                if stage == "external"}
    assert external == {(1, "undercloud"): 2}


# -- the tools the README opens them with ---------------------------------------

@pytest.mark.parametrize("tool", ["nbconvert", "lab"])
def test_make_install_provides_jupyter(tool):
    """``make install`` (requirements-test.txt) provides ``jupyter nbconvert``
    and ``jupyter lab``, next to this Python."""
    import subprocess
    import sys

    jupyter = Path(sys.executable).with_name("jupyter")
    done = subprocess.run([str(jupyter), tool, "--version"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()[0].isdigit(), done.stdout


def test_nbconvert_exports_a_committed_notebook(tmp_path):
    import subprocess
    import sys

    jupyter = Path(sys.executable).with_name("jupyter")
    done = subprocess.run([str(jupyter), "nbconvert", "--to", "markdown",
                           "--output-dir", str(tmp_path),
                           str(NOTEBOOKS / "plan-review.ipynb")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "# Plan review" in (tmp_path / "plan-review.md").read_text()
