"""What every benchmark prints: the machine it ran on, and its table."""

from __future__ import annotations

import importlib.metadata
import os
import platform


def version(dist: str) -> str:
    """Installed version of a distribution, or "not installed"."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine(*versions: str) -> list[tuple[str, str]]:
    """CPU, cores, load, OS, Python, and the versions of ``versions``."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle
                        if line.startswith("model name")), cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
        else os.cpu_count()
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) \
        if hasattr(os, "getloadavg") else "unknown"
    return [
        ("CPU", cpu),
        ("Cores", f"{os.cpu_count()} logical, {usable} usable by this process"),
        ("Load average at the end (1, 5, 15 min)", load),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
    ] + [(dist, version(dist)) for dist in versions]


def print_text(rows: list[list[str]], *, left: int = 1) -> None:
    """The table as aligned text; the first ``left`` columns left-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for index, row in enumerate(rows):
        print("  ".join(cell.ljust(w) if i < left else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def print_rst(rows: list[list[str]], facts: list[tuple[str, str]]) -> None:
    """The table and the machine as reST, for doc/performance.rst."""
    print(".. list-table::\n   :header-rows: 1\n")
    for row in rows:
        print("   * - " + "\n     - ".join(row))
    print()
    for key, value in facts:
        print(f"- {key}: {value}")


def print_machine(facts: list[tuple[str, str]], *, rst_rows: list[list[str]] | None
                  = None) -> None:
    """The machine's facts; with ``rst_rows``, the table and facts as reST too."""
    print()
    for key, value in facts:
        print(f"{key}: {value}")
    if rst_rows is not None:
        print()
        print_rst(rst_rows, facts)


def print_ansible_run_report(header: list[str], rows: list[list[str]], *,
                             rst: bool) -> None:
    """The table and the machine of a benchmark that runs Ansible (with the
    reST form for doc/performance.rst when ``rst``)."""
    print_text([header, *rows])
    print_machine(machine("ansible-core", "ansible-runner"),
                  rst_rows=[header, *rows] if rst else None)
