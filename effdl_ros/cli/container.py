"""`effdl-ros bench container`: an effdl-ros command inside an OCI container (effdl_ros.bench.container)."""
from __future__ import annotations

import argparse


def register(cli) -> None:
    cli.add("bench", "container",
            help="run an effdl-ros command in a runc/crun container on a Debian root filesystem, e.g. "
                 "`bench container --rootfs DIR -- bench dlbench --json /out/container.json`",
            configure=_configure, run=_run)


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rootfs", required=True,
                   help="root filesystem made from Debian packages: debootstrap --variant=minbase bookworm DIR")
    p.add_argument("--runtime", default="runc", help="OCI runtime: runc (default) or crun")
    p.add_argument("--out", default="container_out", help="host folder mounted at /out inside (default ./container_out)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the effdl-ros command to run inside")


def _run(args: argparse.Namespace) -> int:
    from effdl_ros.bench.container import run_in_container
    from effdl_ros.errors import ConfigError

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        raise ConfigError("give the command to run inside after --, e.g. -- bench dlbench --json /out/c.json")
    from effdl_ros.graph.signals import StopRequested, stop_on_signals

    with stop_on_signals():  # a stop signal still deletes the container (run_in_container's finally)
        try:
            return run_in_container(command, rootfs=args.rootfs, out_dir=args.out, runtime=args.runtime)
        except StopRequested as stop:
            print(f"effdl-ros bench container: {stop.args[0]} received, container deleted", flush=True)
            return 1
