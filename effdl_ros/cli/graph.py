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
                        help="stop after this many seconds (0 = until Ctrl-C, SIGTERM or SIGHUP)")
    add_remap_option(parser)
    parser.add_argument("--namespace", default="", metavar="NS",
                        help="push a namespace onto every node and relative topic, e.g. /robot1 "
                             "(as `ros2 launch ... namespace:=robot1`): two robots on one domain keep apart")
    from effdl_ros.viz.foxglove_bridge import add_arguments as add_foxglove_arguments

    add_foxglove_arguments(parser)


def add_remap_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                        help="remap a topic in every node, as `ros2 launch ... image:=/camera/image_raw` "
                             "(repeatable; wins over the file's remappings)")


from effdl_ros.graph.validate import checked_pipeline  # noqa: E402,F401 - the commands' entry to it


def default_config() -> str:
    from effdl_ros.graph.launch import default_pipeline

    return default_pipeline()


def _run(args: argparse.Namespace) -> int:
    from effdl_ros.graph.signals import StopRequested, stop_on_signals
    from effdl_ros.runtime import backend

    backend.select(args.backend)
    pipeline = checked_pipeline(args.config, args.remap, args.namespace)
    end = time.monotonic() + args.duration if args.duration > 0 else None
    started = time.monotonic()
    from effdl_ros.viz.foxglove_bridge import start_from_args as start_foxglove

    foxglove = start_foxglove(args)  # None without --foxglove
    with stop_on_signals():
        try:
            if args.backend == "inproc":
                _run_inproc(pipeline, end, started, foxglove)
            else:
                _run_supervised(pipeline, end, started, foxglove)
        except StopRequested as stop:
            print(f"effdl-ros run: {stop.args[0]} received, graph stopped", flush=True)
        finally:
            if foxglove is not None:
                foxglove.close()
    return 0


def _run_inproc(pipeline, end, started, foxglove=None) -> None:
    from effdl_ros.graph.launch import create_nodes
    from effdl_ros.runtime.testing import InprocGraph

    with InprocGraph(backend="inproc") as graph:
        create_nodes(pipeline, graph)
        if foxglove is not None:
            foxglove.attach(graph.context)
        print(f"graph ready: {len(pipeline.nodes)} nodes in {time.monotonic() - started:.1f} s", flush=True)
        while end is None or time.monotonic() < end:
            graph.executor.spin_once(timeout_sec=0.1)


def _run_supervised(pipeline, end, started, foxglove=None) -> None:
    import signal

    from effdl_ros.graph.launch import Supervisor
    from effdl_ros.graph.signals import StopRequested

    supervisor = Supervisor(pipeline, backend="dds")
    signum = signal.SIGINT
    announced = False
    try:
        supervisor.start_all()
        if foxglove is not None:
            foxglove.attach_new_context("dds")  # a DDS participant in this process
        while (end is None or time.monotonic() < end) and supervisor.alive():
            supervisor.poll()
            if not announced and len(supervisor.ready()) == len(pipeline.nodes):
                announced = True
                print(f"graph ready: {len(pipeline.nodes)} nodes in {time.monotonic() - started:.1f} s",
                      flush=True)
            time.sleep(0.2)
    except StopRequested as stop:
        signum = stop.signum
        raise
    finally:
        supervisor.stop(signum=signum)


def register(cli) -> None:
    cli.add(None, "run", help="start the graph of a pipeline YAML without ROS",
            configure=_configure_run, run=_run)
