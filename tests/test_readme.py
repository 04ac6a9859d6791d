"""The README's demo walkthrough, run as it stands: each of its lines, in
order, in an empty directory, must succeed."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.helpers import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def walkthrough() -> list[list[str]]:
    """The command lines of the README's ``prepare --demo`` block."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    block = next(b for b in blocks if "prepare --demo" in b)
    return [shlex.split(line) for line in block.splitlines()
            if line.strip() and not line.startswith("#")]


def test_the_readme_demo_walkthrough_works_verbatim(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    monkeypatch.chdir(tmp_path)
    lines = walkthrough()
    assert [line[:3] for line in lines] == [["openstack", "overcloud", "upgrade"]] * len(lines)
    verbs = [line[3] for line in lines]
    assert verbs[0] == "prepare" and "converge" in verbs
    for line in lines:
        done = cli(line[1:])
        assert done.returncode == 0, (line, done.stderr)
        if line[3] == "prepare":
            assert "seeded the demo fleet" in done.stderr
    assert (tmp_path / "demo-fleet").is_dir()
    assert (tmp_path / "demo-wd" / "composable-upgrade" / "plan" / "plan.json").is_file()
    # The last line, history, lists the runs of the walkthrough.
    assert "converge" in done.stdout and "controlplane" in done.stdout
