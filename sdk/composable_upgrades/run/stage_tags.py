"""The tags of a stage's tasks, read from its playbooks and task files: what
a run of a stage that runs by tags (``external``) may be given."""

from __future__ import annotations

import yaml

from composable_upgrades.planning.prepared import PreparedPlan, PreparedStage


def stage_tags(plan: PreparedPlan, stage: PreparedStage) -> list[str]:
    """The tags of the tasks of ``stage`` (from its task files), sorted."""
    found: set[str] = set()
    for step in stage.steps:
        try:
            with open(plan.file(step.playbook), encoding="utf-8") as handle:
                plays = yaml.safe_load(handle) or []
        except (OSError, yaml.YAMLError):
            continue
        for play in plays if isinstance(plays, list) else []:
            for item in (play.get("tasks") or []) if isinstance(play, dict) else []:
                included = isinstance(item, dict) and item.get("import_tasks")
                if not included:
                    _collect_tags([item], found)
                    continue
                try:
                    with open(plan.file(included), encoding="utf-8") as handle:
                        _collect_tags(yaml.safe_load(handle) or [], found)
                except (OSError, yaml.YAMLError):
                    continue
    return sorted(found)


def _collect_tags(tasks: object, found: set[str]) -> None:
    for task in tasks if isinstance(tasks, list) else []:
        if not isinstance(task, dict):
            continue
        tags = task.get("tags") or []
        found.update(str(t) for t in ([tags] if isinstance(tags, str) else tags))
        for key in ("block", "rescue", "always"):
            _collect_tags(task.get(key), found)
