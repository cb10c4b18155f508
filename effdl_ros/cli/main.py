"""Entry point of `effdl-ros`."""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import Optional, Sequence

from effdl_ros.cli.registry import GROUPS, CommandRegistry
from effdl_ros.errors import EffdlError

_NOT_COMMAND_MODULES = {"main", "registry"}


def build_parser() -> argparse.ArgumentParser:
    registry = CommandRegistry()
    import effdl_ros.cli as cli_package

    for info in sorted(pkgutil.iter_modules(cli_package.__path__), key=lambda i: i.name):
        if info.name in _NOT_COMMAND_MODULES or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"effdl_ros.cli.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(registry)

    parser = argparse.ArgumentParser(
        prog="effdl-ros",
        description="Energy-efficient deep learning for ROS 2 robots.",
    )
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    top.required = True
    group_parsers = {}
    for group, text in GROUPS.items():
        if any(c.group == group for c in registry.commands):
            sub = top.add_parser(group, help=text, description=text)
            group_parsers[group] = sub.add_subparsers(dest="verb", metavar="WHAT")
            group_parsers[group].required = True
    for command in sorted(registry.commands, key=lambda c: (c.group or "", c.name)):
        holder = top if command.group is None else group_parsers[command.group]
        sub = holder.add_parser(command.name, help=command.help, description=command.help)
        command.configure(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "bench":  # benchmarks keep their DDS traffic on the loopback unless told otherwise
        os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    try:
        code = args._run(args)
    except EffdlError as err:
        print(f"effdl-ros: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("effdl-ros: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
