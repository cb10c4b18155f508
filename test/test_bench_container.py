"""The container side of issue 22. No Docker engine runs on these machines (`docker` is only the
client: "Cannot connect to the Docker daemon"), so the Dockerfile gets a dry check: its base image,
that every COPY source exists, and that the command it runs is one this package installs. The OCI
bundle of `bench container` is checked as data, and run for real where runc and a root filesystem
are present (EFFDL_ROS_ROOTFS)."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from effdl_ros.bench.container import OUT, interpreter_roots, oci_spec

ROOT = Path(__file__).resolve().parents[1]


def _dockerfile():
    parse = pytest.importorskip("dockerfile_parse", reason="dockerfile-parse (the test extra) is not installed")
    parser = parse.DockerfileParser(path=str(ROOT / "Dockerfile"))
    return parser


def test_dockerfile_base_image_copy_sources_and_command():
    parser = _dockerfile()
    froms = [i["value"] for i in parser.structure if i["instruction"] == "FROM"]
    assert froms == ["ros:${ROS_DISTRO}-ros-base"]
    assert parser.args.get("ROS_DISTRO") in ("jazzy", "humble")
    copies = [i["value"].split() for i in parser.structure if i["instruction"] == "COPY"]
    assert copies
    for words in copies:
        for source in words[:-1]:
            assert source == "." or (ROOT / source).exists(), f"COPY {source}: not in the checkout"
    cmd = json.loads(next(i["value"] for i in parser.structure if i["instruction"] == "CMD"))
    setup = (ROOT / "setup.py").read_text()
    assert f'"{cmd[0]} = effdl_ros.cli.main:main"' in setup, cmd  # the console script pip installs
    runs = " ".join(i["value"] for i in parser.structure if i["instruction"] == "RUN")
    assert "effdl-ros --help" in runs  # the build itself proves the command runs
    assert parser.envs.get("EFFDL_ROS_BACKEND") == "dds"


def test_oci_spec_is_read_only_with_binds_and_no_rlimits():
    default = {"process": {"args": ["sh"], "terminal": True, "rlimits": [{"type": "RLIMIT_NOFILE"}]},
               "root": {"path": "rootfs"}, "mounts": [{"destination": "/proc", "type": "proc"}]}
    spec = oci_spec(default, rootfs="/r", args=["/py", "-m", "x"], binds=["/venv"], out_dir="/o",
                    env={"A": "1"}, cwd="/tmp")
    assert spec["root"] == {"path": "/r", "readonly": True}
    assert "rlimits" not in spec["process"] and spec["process"]["terminal"] is False
    assert spec["process"]["env"] == ["A=1"] and spec["process"]["args"] == ["/py", "-m", "x"]
    binds = {m["destination"]: m["options"] for m in spec["mounts"] if m["type"] == "bind"}
    assert binds == {"/venv": ["rbind", "ro"], OUT: ["rbind", "rw"]}
    assert default["process"]["rlimits"]  # the runtime's default is left alone
    assert any(Path(sys.executable).resolve().is_relative_to(r) for r in interpreter_roots())


@pytest.mark.skipif(shutil.which("runc") is None or not os.environ.get("EFFDL_ROS_ROOTFS"),
                    reason="needs runc and a Debian root filesystem in EFFDL_ROS_ROOTFS "
                           "(debootstrap --variant=minbase bookworm DIR)")
def test_effdl_ros_runs_inside_a_runc_container(tmp_path):
    out = subprocess.run([sys.executable, "-m", "effdl_ros.cli.main", "bench", "container", "--rootfs",
                          os.environ["EFFDL_ROS_ROOTFS"], "--out", str(tmp_path), "--", "--help"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "usage: effdl-ros" in out.stdout, out.stderr
