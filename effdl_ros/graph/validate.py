"""Check a whole pipeline file before any node starts: executables, parameter names, types and
constraints against each node's declared table, remappings and model files. One sentence per error,
naming the file, the node and what is wrong, so a mistake never shows up as a crash mid-start."""
from __future__ import annotations

import importlib
from typing import Iterable, Sequence, Tuple

from effdl_ros.errors import ConfigError


def parse_remap(text: str, origin: str = "--remap") -> Tuple[str, str]:
    """'from:=to' -> (from, to), both valid ROS names; a ConfigError naming `origin` otherwise."""
    src, sep, dst = str(text).partition(":=")
    if not sep:
        raise ConfigError(f"{origin}: remapping {text!r} must look like from:=to, e.g. image:=/camera/image_raw")
    check_remap(src, dst, origin)
    return src, dst


def check_remap(src: str, dst: str, origin: str) -> None:
    from effdl_ros.runtime.local.names import expand_topic_name

    for name in (src, dst):
        try:
            expand_topic_name(str(name), "node", "/")
        except ValueError:
            raise ConfigError(f"{origin}: remapping {src}:={dst} has an invalid topic name {name!r} "
                              "(letters, digits, _ and / only, not starting with a digit)") from None


def node_parameters(executable: str):
    """The declared parameter table of a node executable (effdl_ros.nodekit.parameters.Param)."""
    from effdl_ros.nodes import executables

    modules = executables()
    if executable not in modules:
        raise KeyError(executable)
    return getattr(importlib.import_module(modules[executable]), "PARAMETERS", None)


def validate_pipeline(pipeline, *, extra_remaps: Sequence[Tuple[str, str]] = ()) -> None:
    """Raise ConfigError with one sentence at the first problem of the pipeline (file order)."""
    from effdl_ros.nodekit.parameters import find
    from effdl_ros.nodes import executables
    from effdl_ros.runtime.local.names import validate_node_name

    origin = str(pipeline.path)
    known = sorted(executables())
    names = {spec.fully_qualified_name for spec in pipeline.nodes}
    for key in (pipeline.document.get("parameters") or {}):
        if key in ("/**", "**"):
            continue
        fqn = key if str(key).startswith("/") else "/" + str(key)
        if fqn not in names and not any(n.rsplit("/", 1)[-1] == key for n in names):
            raise ConfigError(f"{origin}: parameters are given for {key}, which is not a node of this file "
                              f"(nodes: {', '.join(sorted(names))})")
    for spec in pipeline.nodes:
        where = f"{origin}: node {spec.fully_qualified_name}"
        try:
            validate_node_name(spec.name)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        try:
            table = node_parameters(spec.executable)
        except KeyError:
            raise ConfigError(f"{where}: unknown executable {spec.executable!r}; known: "
                              f"{', '.join(known)}") from None
        for src, dst in list(spec.remappings) + list(extra_remaps):
            check_remap(src, dst, where)
        if table is None:
            continue
        for name, value in spec.parameters.items():
            param = find(table, name)
            if param is None:
                raise ConfigError(f"{where}: unknown parameter {name!r}; its parameters: "
                                  f"{', '.join(p.name for p in table)}")
            problem = param.problem(value)
            if problem is not None:
                raise ConfigError(f"{where}: parameter {name!r} {problem}")


def apply_remaps(pipeline, remaps: Iterable[Tuple[str, str]]) -> None:
    """Add command-line remappings (as `ros2 launch ... image:=/camera/image_raw` does for every node)
    in front of each node's own, so they win."""
    remaps = list(remaps)
    for spec in pipeline.nodes:
        spec.remappings = remaps + [r for r in spec.remappings if r[0] not in {s for s, _ in remaps}]


def checked_pipeline(config, remaps=(), namespace=None):
    """Load and validate the whole pipeline file (and the command-line remappings) before any node
    starts; a ConfigError names the file, the node and the problem. `namespace` is pushed onto
    every node afterwards (effdl_ros.graph.names)."""
    from effdl_ros.graph.launch import default_pipeline, load_pipeline
    from effdl_ros.graph.names import apply_namespace, normalize_namespace

    normalize_namespace(namespace)  # a bad --namespace is refused before the file is read
    pipeline = load_pipeline(config or default_pipeline())
    extra = [parse_remap(text) for text in remaps]
    validate_pipeline(pipeline, extra_remaps=extra)
    apply_remaps(pipeline, extra)
    apply_namespace(pipeline, namespace)
    return pipeline
