"""ROS 2 name resolution for a whole graph: a launch namespace pushed onto every node, and the name
each node's topic ends up on. Pure functions (no middleware), so two robots' graphs can be planned
and checked before anything starts.

Rules (ROS 2 "Topic and Service name mapping", as rcl and launch_ros apply them):
- a node's namespace given without a leading slash is relative: a pushed namespace goes in front
  (`--namespace /robot1`, node namespace `arm` -> `/robot1/arm`); one with a leading slash is
  absolute and stays as it is (launch_ros does the same with PushRosNamespace);
- a relative topic (`tracks`) expands against the node's namespace (`/robot1/tracks`), a private
  one (`~/state`) against the node's fully qualified name (`/robot1/tracker/state`), an absolute
  one (`/diagnostics`) is left alone;
- remappings are matched after expansion: the first rule whose `from` expands to the same name
  wins, and its `to` is expanded the same way.
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence, Tuple

from effdl_ros.errors import ConfigError
from effdl_ros.runtime.local import names as _rules


def normalize_namespace(namespace: Optional[str]) -> str:
    """'' / None / '/' -> '/'; 'robot1' and '/robot1/' -> '/robot1'. ConfigError on a bad token."""
    ns = _rules.normalize_namespace(namespace)
    if ns != "/":
        for part in ns.strip("/").split("/"):
            try:
                _rules.validate_node_name(part)
            except ValueError:
                raise ConfigError(f"namespace {namespace!r} is not a valid ROS 2 namespace (each part: "
                                  "letters, digits and _, not starting with a digit)") from None
    return ns


def push_namespace(outer: Optional[str], inner: Optional[str]) -> str:
    """The namespace of a node whose own namespace is `inner`, started under `outer`."""
    if inner and str(inner).startswith("/"):
        return normalize_namespace(inner)
    outer_ns = normalize_namespace(outer)
    inner_ns = normalize_namespace(inner)
    if inner_ns == "/":
        return outer_ns
    return normalize_namespace(outer_ns.rstrip("/") + inner_ns)


def fully_qualified(name: str, namespace: Optional[str]) -> str:
    """A node's fully qualified name; a name already absolute (`/x/y`) is kept as it is."""
    if name.startswith("/"):
        return "/" + name.strip("/")
    return normalize_namespace(namespace).rstrip("/") + "/" + name


def resolve_topic(name: str, *, node: str, namespace: Optional[str] = "/",
                  remappings: Iterable[Tuple[str, str]] = ()) -> str:
    """The absolute topic that node `node` in `namespace` uses for `name`, after its remappings."""
    try:
        return _rules.resolve(name, node, normalize_namespace(namespace),
                              [(None, src, dst) for src, dst in remappings])
    except ValueError as err:
        raise ConfigError(f"node {fully_qualified(node, namespace)}: {err}") from None


def apply_namespace(pipeline, namespace: Optional[str]) -> None:
    """Push `namespace` onto every node of a loaded pipeline (in place).

    A node whose file entry has an absolute namespace ("/shared") keeps it; parameters were already
    picked for each node by its name in the file, so they stay with it.
    """
    ns = normalize_namespace(namespace)
    if ns == "/":
        return
    entries = (pipeline.document.get("nodes") or []) if isinstance(pipeline.document, dict) else []
    for i, spec in enumerate(pipeline.nodes):
        raw = entries[i].get("namespace", "") if i < len(entries) and isinstance(entries[i], dict) else ""
        spec.namespace = push_namespace(ns, str(raw or ""))


def graph_topics(pipeline, topics: Sequence[str]) -> dict:
    """{node fqn: {topic as the node names it: the absolute topic}}: what a namespace does to a graph."""
    return {spec.fully_qualified_name: {
        topic: resolve_topic(topic, node=spec.name, namespace=spec.namespace, remappings=spec.remappings)
        for topic in topics} for spec in pipeline.nodes}
