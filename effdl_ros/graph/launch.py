"""Start the graph that config/pipeline.yaml describes, without ROS: in one process (inproc) or a
supervised process per node (dds). launch/pipeline.launch.py reads the same file for ROS users.

The file:
    nodes:                       # which nodes, in start order
      - {executable: source, name: source, namespace: "", respawn: true, respawn_delay: 1.0,
         remappings: {image: /camera/image}}
    parameters:                  # ROS 2 params-file form
      /source: {ros__parameters: {input: samples/vtest, rate_hz: 10.0}}
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import yaml

from effdl_ros.errors import ConfigError
from effdl_ros.resources import share_path


@dataclass
class NodeSpec:
    executable: str
    name: str
    namespace: str = "/"
    parameters: Dict[str, Any] = field(default_factory=dict)
    remappings: List[Tuple[str, str]] = field(default_factory=list)
    respawn: bool = False
    respawn_delay: float = 1.0

    @property
    def fully_qualified_name(self) -> str:
        return self.namespace.rstrip("/") + "/" + self.name

    def ros_args(self) -> List[str]:
        args = ["--ros-args", "-r", f"__node:={self.name}", "-r", f"__ns:={self.namespace}"]
        for src, dst in self.remappings:
            args += ["-r", f"{src}:={dst}"]
        return args


@dataclass
class Pipeline:
    path: Path
    nodes: List[NodeSpec]
    document: Dict[str, Any]


def default_pipeline() -> str:
    """The shipped config/pipeline.yaml (source tree or install space)."""
    return str(share_path("config", "pipeline.yaml"))


def load_pipeline(path: os.PathLike) -> Pipeline:
    """Parse and check a pipeline file; errors name the file and the entry."""
    from effdl_ros.runtime.local.parameters import overrides_from_dict

    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as err:
        raise ConfigError(f"cannot read pipeline file {path}: {err.strerror}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"pipeline file {path} is not valid YAML: {err}") from err
    entries = document.get("nodes")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"pipeline file {path} needs a non-empty 'nodes' list")
    parameters = document.get("parameters") or {}
    specs = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "executable" not in entry:
            raise ConfigError(f"{path}: nodes[{i}] needs an 'executable'")
        name = entry.get("name", entry["executable"])
        namespace = "/" + str(entry.get("namespace", "")).strip("/")
        remaps = entry.get("remappings") or {}
        if not isinstance(remaps, dict):
            raise ConfigError(f"{path}: nodes[{i}].remappings must map topic -> topic")
        spec = NodeSpec(executable=entry["executable"], name=name, namespace=namespace,
                        remappings=list(remaps.items()), respawn=bool(entry.get("respawn", False)),
                        respawn_delay=float(entry.get("respawn_delay", 1.0)))
        spec.parameters = {p.name: p.value for p in
                           overrides_from_dict(parameters, spec.fully_qualified_name, origin=str(path))}
        specs.append(spec)
    names = [s.fully_qualified_name for s in specs]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ConfigError(f"{path}: node names must be unique, repeated: {', '.join(sorted(duplicates))}")
    return Pipeline(path=path, nodes=specs, document=document)


def create_nodes(pipeline: Pipeline, graph, *, only: Optional[List[str]] = None,
                 overrides: Optional[Dict[str, Dict[str, Any]]] = None) -> Dict[str, Any]:
    """Create every node of the pipeline in an InprocGraph-like object (add(cls, **kwargs))."""
    from effdl_ros.nodes import node_class
    from effdl_ros.runtime import Parameter

    nodes = {}
    for spec in pipeline.nodes:
        if only is not None and spec.name not in only:
            continue
        params = dict(spec.parameters)
        params.update((overrides or {}).get(spec.name, {}))
        nodes[spec.name] = graph.add(
            node_class(spec.executable), cli_args=spec.ros_args(),
            parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
    return nodes


class Supervisor:
    """Runs each node as its own process (dds backend) and restarts those with respawn, backing off
    from respawn_delay up to 30 s while a node keeps dying young."""

    MAX_DELAY = 30.0
    CONFIG_ERROR = 2  # a node's exit code for a configuration or data error (effdl_ros.nodekit.entry)

    def __init__(self, pipeline: Pipeline, *, backend: str = "dds", log=print) -> None:
        self.pipeline = pipeline
        self.backend = backend
        self.log = log
        self.processes: Dict[str, subprocess.Popen] = {}
        self.started_at: Dict[str, float] = {}
        self.delays: Dict[str, float] = {}
        self.restart_at: Dict[str, float] = {}
        self.restarts: Dict[str, int] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="effdl_ros_run_")

    def _params_file(self, spec: NodeSpec) -> str:
        path = Path(self._tmp.name) / f"{spec.name}.yaml"
        path.write_text(yaml.safe_dump({spec.fully_qualified_name: {"ros__parameters": spec.parameters}}))
        return str(path)

    def start(self, spec: NodeSpec) -> None:
        from effdl_ros.graph.signals import child_setup
        from effdl_ros.nodekit.entry import STATUS_DIR_ENV, SUPERVISOR_PID_ENV
        from effdl_ros.nodes import executables

        env = dict(os.environ, EFFDL_ROS_BACKEND=self.backend, PYTHONUNBUFFERED="1",
                   **{SUPERVISOR_PID_ENV: str(os.getpid()), STATUS_DIR_ENV: self._tmp.name})
        module = executables().get(spec.executable)
        if module is None:
            raise ConfigError(f"unknown node executable {spec.executable!r}; known: "
                              f"{', '.join(sorted(executables()))}")
        for marker in ("ready", "error"):
            Path(self._tmp.name, f"{spec.name}.{marker}").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", module] + spec.ros_args() + ["--params-file", self._params_file(spec)]
        self.processes[spec.name] = subprocess.Popen(cmd, env=env, preexec_fn=child_setup(os.getpid()))
        self.started_at[spec.name] = time.monotonic()
        self.log(f"started {spec.fully_qualified_name} (pid {self.processes[spec.name].pid})")

    def ready(self) -> List[str]:
        """Names of the nodes that finished starting (each writes a marker once constructed)."""
        return [spec.name for spec in self.pipeline.nodes
                if Path(self._tmp.name, f"{spec.name}.ready").exists()]

    def start_all(self) -> None:
        for spec in self.pipeline.nodes:
            self.start(spec)

    def poll(self) -> None:
        now = time.monotonic()
        for spec in self.pipeline.nodes:
            proc = self.processes.get(spec.name)
            if proc is not None and proc.poll() is not None:
                code = proc.returncode
                del self.processes[spec.name]
                if code == self.CONFIG_ERROR:
                    marker = Path(self._tmp.name, f"{spec.name}.error")
                    sentence = marker.read_text(encoding="utf-8").strip() if marker.exists() else (
                        f"exited with code {code} (a configuration or data error) while starting")
                    raise ConfigError(f"node {spec.fully_qualified_name} cannot start: {sentence}; "
                                      "the graph is stopped")
                if not spec.respawn:
                    self.log(f"{spec.fully_qualified_name} exited with code {code}; respawn is off")
                    continue
                lived = now - self.started_at[spec.name]
                delay = spec.respawn_delay if lived > self.MAX_DELAY else min(
                    self.MAX_DELAY, self.delays.get(spec.name, spec.respawn_delay / 2) * 2)
                self.delays[spec.name] = delay
                self.restart_at[spec.name] = now + delay
                self.log(f"{spec.fully_qualified_name} died (code {code}); restarting in {delay:.1f} s")
            if spec.name in self.restart_at and now >= self.restart_at[spec.name]:
                del self.restart_at[spec.name]
                self.restarts[spec.name] = self.restarts.get(spec.name, 0) + 1
                self.start(spec)

    def alive(self) -> bool:
        return bool(self.processes) or bool(self.restart_at)

    def stop(self, timeout: float = 5.0, signum: int = signal.SIGINT) -> None:
        """Send every node `signum` (the stop signal the supervisor got), wait up to `timeout` s in
        all, then kill what is left: no node outlives this call."""
        self.restart_at.clear()
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signum)
        end = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.processes.clear()
        self._tmp.cleanup()
