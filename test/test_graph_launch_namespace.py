"""launch/pipeline.launch.py's `namespace:=robot1` without ROS 2: the launch modules are replaced by
recording stand-ins, so the test sees the launch_ros Node arguments the file would create."""
import importlib.util
import sys
import types
from pathlib import Path

import pytest

LAUNCH_FILE = Path(__file__).resolve().parents[1] / "launch" / "pipeline.launch.py"


class _Config:
    def __init__(self, name, **_):
        self.name = name

    def perform(self, context):
        return context[self.name]


class _Record:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


@pytest.fixture
def launch_file(monkeypatch):
    stubs = {
        "ament_index_python": {}, "ament_index_python.packages": {"get_package_share_directory": lambda _: "/share"},
        "launch": {"LaunchDescription": _Record}, "launch.actions": {"DeclareLaunchArgument": _Record,
                                                                     "OpaqueFunction": _Record},
        "launch.conditions": {"IfCondition": _Record}, "launch.substitutions": {"LaunchConfiguration": _Config},
        "launch_ros": {}, "launch_ros.actions": {"Node": _Record},
    }
    for name, attrs in stubs.items():
        monkeypatch.setitem(sys.modules, name, types.SimpleNamespace(**attrs))
    spec = importlib.util.spec_from_file_location("pipeline_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_namespace_argument_prefixes_relative_namespaces_only(launch_file, tmp_path):
    config = tmp_path / "graph.yaml"
    config.write_text("nodes:\n  - {executable: synthetic_load, name: load}\n"
                      "  - {executable: synthetic_load, name: arm_load, namespace: arm}\n"
                      "  - {executable: synthetic_load, name: map, namespace: /shared}\n"
                      "parameters:\n  /arm/arm_load: {ros__parameters: {item_rate_hz: 5.0}}\n")
    nodes = launch_file._nodes({"config": str(config), "image": "", "namespace": "robot1"})
    got = {n.kwargs["name"]: n.kwargs["namespace"] for n in nodes}
    assert got == {"load": "/robot1", "arm_load": "/robot1/arm", "map": "/shared"}
    assert nodes[1].kwargs["parameters"] == [{"item_rate_hz": 5.0}]  # found under the file's own name
    plain = launch_file._nodes({"config": str(config), "image": "", "namespace": ""})
    assert [n.kwargs["namespace"] for n in plain] == ["/", "/arm", "/shared"]
    names = [a.args[0] for a in launch_file.generate_launch_description().args[0] if a.args]
    assert "namespace" in names
