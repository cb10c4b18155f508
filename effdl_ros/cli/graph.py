"""`effdl-ros run CONFIG`: start the configured graph without ROS (inproc or a process per node)."""
from __future__ import annotations

import argparse
import time


def _configure_run(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", default=None,
                        help="pipeline YAML (default: the shipped config/pipeline.yaml)")
    parser.add_argument("--backend", choices=("dds", "inproc"), default="dds",
                        help="dds: one supervised process per node; inproc: all in this process")
    parser.add_argument("--duration", type=float, default=0.0,
                        help="stop after this many seconds (0 = until Ctrl-C)")
    from effdl_ros.viz.foxglove_bridge import add_arguments as add_foxglove_arguments

    add_foxglove_arguments(parser)


def default_config() -> str:
    from effdl_ros.resources import share_path

    return str(share_path("config", "pipeline.yaml"))


def _run(args: argparse.Namespace) -> int:
    from effdl_ros.runtime import backend

    backend.select(args.backend)
    from effdl_ros.runtime.launch import Supervisor, create_nodes, load_pipeline

    from effdl_ros.viz.foxglove_bridge import start_from_args as start_foxglove

    pipeline = load_pipeline(args.config or default_config())
    end = time.monotonic() + args.duration if args.duration > 0 else None
    foxglove = start_foxglove(args)  # None without --foxglove
    if args.backend == "inproc":
        from effdl_ros.runtime.testing import InprocGraph

        with InprocGraph(backend="inproc") as graph:
            create_nodes(pipeline, graph)
            if foxglove is not None:
                foxglove.attach(graph.context)
            try:
                while end is None or time.monotonic() < end:
                    graph.executor.spin_once(timeout_sec=0.1)
            except KeyboardInterrupt:
                pass
            if foxglove is not None:
                foxglove.close()
        return 0
    supervisor = Supervisor(pipeline, backend="dds")
    supervisor.start_all()
    if foxglove is not None:
        foxglove.attach_new_context("dds")  # a DDS participant in this process
    try:
        while (end is None or time.monotonic() < end) and supervisor.alive():
            supervisor.poll()
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        if foxglove is not None:
            foxglove.close()
        supervisor.stop()
    return 0


def register(cli) -> None:
    cli.add(None, "run", help="start the graph of a pipeline YAML without ROS",
            configure=_configure_run, run=_run)
