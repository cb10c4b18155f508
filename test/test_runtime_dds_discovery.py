"""ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST keeps the dds backend on the loopback interface (the
suite sets it in conftest.py); a user's own CYCLONEDDS_URI always wins."""
import subprocess
import sys

import pytest

from effdl_ros.runtime.backends.dds import LOOPBACK_CONFIG, discovery_config


def test_range_maps_to_cyclone_configuration():
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}) == LOOPBACK_CONFIG
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "localhost"}) == LOOPBACK_CONFIG
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}) is None
    assert discovery_config({}) is None
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                             "CYCLONEDDS_URI": "file:///etc/mine.xml"}) is None
    assert "127.0.0.1" in LOOPBACK_CONFIG and "<AllowMulticast>false" in LOOPBACK_CONFIG


SCRIPT = """
import time
from effdl_ros.runtime import Node, init, shutdown
init()
node = Node("probe")
time.sleep(0.5)
print(open("/proc/net/igmp").read())
shutdown()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/net/igmp")
def test_loopback_participant_joins_no_multicast_group_on_a_network_interface():
    pytest.importorskip("cyclonedds")
    env = {"EFFDL_ROS_BACKEND": "dds", "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
           "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    device = None
    for line in out.splitlines():
        if not line.startswith("\t"):
            device = line.split()[1] if len(line.split()) > 1 else None
        elif device != "lo":
            # 239.255.0.1, Cyclone's discovery group, as /proc prints it (little-endian hex)
            assert "0100FFEF" not in line, out
