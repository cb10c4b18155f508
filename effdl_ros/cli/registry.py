"""A tiny registry so each capability adds its own sub-commands without editing a shared file."""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Callable, Optional

#: Groups of verbs: `effdl-ros train ddi`, `effdl-ros bench transport`, ...
GROUPS = {
    "train": "train a model with the project's own commands",
    "eval": "evaluate a model or tracker on data with ground truth",
    "bench": "benchmarks that print a table (and write JSON)",
    "prune": "find compact models (Early-Bird tickets)",
    "energy": "meters, budgets and modelled energy",
}


@dataclass
class Command:
    group: Optional[str]
    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], Optional[int]]


class CommandRegistry:
    def __init__(self) -> None:
        self.commands: list[Command] = []

    def add(
        self,
        group: Optional[str],
        name: str,
        *,
        help: str,
        configure: Callable[[argparse.ArgumentParser], None],
        run: Callable[[argparse.Namespace], Optional[int]],
    ) -> None:
        """Add `effdl-ros [group] name`; group None makes a top-level command (demo, run, ...)."""
        if group is not None and group not in GROUPS:
            raise ValueError(f"unknown command group {group!r}; known: {sorted(GROUPS)}")
        for existing in self.commands:
            if (existing.group, existing.name) == (group, name):
                raise ValueError(f"command {group or ''} {name} registered twice")
        self.commands.append(Command(group, name, help, configure, run))
