"""ROS 2 name rules: expanding relative and private (~) names, applying remappings."""
from __future__ import annotations

import re
from typing import Iterable, Optional, Tuple

_TOKEN = re.compile(r"^[A-Za-z_~{][A-Za-z0-9_/{}~]*$")


def normalize_namespace(namespace: Optional[str]) -> str:
    if not namespace or namespace == "/":
        return "/"
    return "/" + namespace.strip("/")


def validate_node_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise ValueError(f"invalid node name {name!r}: use letters, digits and underscores, "
                         "not starting with a digit")


def expand_topic_name(name: str, node_name: str, namespace: str) -> str:
    if not name or not _TOKEN.match(name.lstrip("/")) and name != "/":
        raise ValueError(f"invalid topic name {name!r}")
    ns = normalize_namespace(namespace)
    if name.startswith("~"):
        base = (ns.rstrip("/") + "/" + node_name)
        rest = name[1:].lstrip("/")
        return base + ("/" + rest if rest else "")
    if name.startswith("/"):
        return "/" + name.strip("/")
    return ns.rstrip("/") + "/" + name.strip("/")


def resolve(name: str, node_name: str, namespace: str,
            remaps: Iterable[Tuple[Optional[str], str, str]]) -> str:
    """Expand, then apply the first remapping whose `from` matches (relative or absolute)."""
    expanded = expand_topic_name(name, node_name, namespace)
    for target, src, dst in remaps:
        if target not in (None, node_name) or src.startswith("__"):
            continue
        if expand_topic_name(src, node_name, namespace) == expanded:
            return expand_topic_name(dst, node_name, namespace)
    return expanded
