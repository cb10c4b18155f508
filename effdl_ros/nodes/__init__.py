"""Thin ROS nodes, one module each. A module that defines NODE_CLASS is an executable of the same
name (`ros2 run effdl_ros <module>`, `executable:` in config/pipeline.yaml)."""
from __future__ import annotations

import importlib
import pkgutil
from typing import Dict


def executables() -> Dict[str, str]:
    """executable name -> module path, for every node module in this package."""
    import effdl_ros.nodes as package

    return {info.name: f"effdl_ros.nodes.{info.name}"
            for info in pkgutil.iter_modules(package.__path__) if not info.name.startswith("_")}


def node_class(executable: str):
    from effdl_ros.errors import ConfigError

    modules = executables()
    if executable not in modules:
        raise ConfigError(f"unknown node executable {executable!r}; known: {', '.join(sorted(modules))}")
    module = importlib.import_module(modules[executable])
    cls = getattr(module, "NODE_CLASS", None)
    if cls is None:
        raise ConfigError(f"module {modules[executable]} defines no NODE_CLASS")
    return cls
