"""The part of ROS 2's command-line arguments a node uses: --ros-args -p, --params-file, -r, --log-level."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple


@dataclass
class RosArguments:
    parameters: Dict[str, object] = field(default_factory=dict)        # -p name:=value
    params_files: List[str] = field(default_factory=list)              # --params-file
    remaps: List[Tuple[Optional[str], str, str]] = field(default_factory=list)  # (node or None, from, to)
    log_level: Optional[str] = None
    unparsed: List[str] = field(default_factory=list)                  # everything not ROS's

    def node_name(self, node: str) -> Optional[str]:
        return self._special("__node", node)

    def namespace(self, node: str) -> Optional[str]:
        return self._special("__ns", node)

    def _special(self, key: str, node: str) -> Optional[str]:
        for target, src, dst in self.remaps:
            if src == key and target in (None, node):
                return dst
        return None


def parse(args: Optional[Sequence[str]]) -> RosArguments:
    from effdl_ros.errors import ConfigError
    from effdl_ros.runtime.local.parameters import parse_value

    out = RosArguments()
    if not args:
        return out
    args = list(args)
    i, in_ros = 0, False
    while i < len(args):
        token = args[i]
        if token == "--ros-args":
            in_ros = True
        elif token == "--" and in_ros:
            in_ros = False
        elif not in_ros:
            out.unparsed.append(token)
        elif token in ("-p", "--param", "-r", "--remap", "--params-file", "--log-level"):
            if i + 1 >= len(args):
                raise ConfigError(f"ROS argument {token} needs a value")
            value = args[i + 1]
            i += 1
            if token in ("-p", "--param"):
                name, sep, text = value.partition(":=")
                if not sep:
                    raise ConfigError(f"parameter argument {value!r} must look like name:=value")
                out.parameters[name] = parse_value(text)
            elif token in ("-r", "--remap"):
                src, sep, dst = value.partition(":=")
                if not sep:
                    raise ConfigError(f"remapping {value!r} must look like from:=to")
                target = None
                if ":" in src:
                    target, src = src.split(":", 1)
                out.remaps.append((target, src, dst))
            elif token == "--params-file":
                out.params_files.append(value)
            else:
                out.log_level = value
        else:
            out.unparsed.append(token)
        i += 1
    return out
