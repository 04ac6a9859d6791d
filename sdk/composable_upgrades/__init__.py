"""composable_upgrades: staged, service-by-service TripleO overcloud upgrades.

The workflow: load :class:`StackOutputs`, :func:`prepare` a plan into the
stack's working directory, review it, run its stages, converge. Every step is
a typed function over plain data; nothing here prints.
"""

from composable_upgrades.run.converge import converge
from composable_upgrades.rehearsal.demo import demo_dependencies_path, demo_outputs, seed_fleet
from composable_upgrades.planning.dependencies import Dependencies
from composable_upgrades.views.diff import plan_diff
from composable_upgrades.run.events import ProgressEvent, StopRequest
from composable_upgrades.run.execute import check_run, run_stage
from composable_upgrades.run.nodes import ExecutionNode, ExecutionNodes
from composable_upgrades.run.options import RunOptions
from composable_upgrades.run.preview import RunPreview
from composable_upgrades.errors import (
    DependencyCycleError, HeatError, InputFileError, LockedError, OptionError,
    OutputsError, PlanNotFoundError, RunError, StageError, StageNotFinishedError,
    UnfinishedWorkError, UnknownHostError, UnknownRoleError, UnsafeNameError,
    UpgradeError, WorkdirError)
from composable_upgrades.model.fleet import Fleet
from composable_upgrades.model.releases import Releases, find_releases
from composable_upgrades.views.history import History
from composable_upgrades.views.forecast import Forecast, forecast, what_if
from composable_upgrades.rehearsal.invariants import Check, InvariantReport, check_invariants
from composable_upgrades.model.deployment import Deployment, Host, Role, Task
from composable_upgrades.sources.outputs import StackOutputs
from composable_upgrades.planning.plan import RolePlay, Stage, Step, UpgradePlan, build_plan
from composable_upgrades.state.prepare import PrepareResult, plan_upgrade, prepare
from composable_upgrades.state.results import RunResult, StepOutcome, TaskRecord
from composable_upgrades.views.status import StageStatus, status
from composable_upgrades.state.store import HistoryStore
from composable_upgrades.planning.prepared import PreparedPlan
from composable_upgrades.state.workdir import Workdir, default_working_dir

__all__ = [
    "StackOutputs", "Deployment", "Host", "Role", "Task", "Dependencies",
    "UpgradePlan", "Stage", "Step", "RolePlay", "build_plan", "plan_upgrade",
    "prepare", "PrepareResult", "PreparedPlan", "Workdir",
    "default_working_dir", "Fleet", "run_stage", "check_run", "converge", "status",
    "RunOptions", "RunPreview", "ExecutionNode", "ExecutionNodes", "ProgressEvent", "StopRequest", "demo_outputs", "demo_dependencies_path",
    "seed_fleet", "check_invariants", "InvariantReport", "Check",
    "History", "HistoryStore", "plan_diff", "Releases", "find_releases", "forecast", "what_if", "Forecast",
    "StageStatus", "RunResult", "StepOutcome", "TaskRecord",
    "UpgradeError", "OutputsError", "InputFileError", "UnknownRoleError",
    "UnknownHostError", "UnsafeNameError", "DependencyCycleError",
    "WorkdirError", "PlanNotFoundError", "StageError",
    "StageNotFinishedError", "UnfinishedWorkError", "LockedError", "RunError", "HeatError", "OptionError",
]
