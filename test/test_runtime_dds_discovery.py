"""ROS 2's discovery settings on the dds backend, as rmw_cyclonedds_cpp maps them onto Cyclone:
ROS_AUTOMATIC_DISCOVERY_RANGE (LOCALHOST, SUBNET, OFF, SYSTEM_DEFAULT), ROS_STATIC_PEERS, and a user's
CYCLONEDDS_URI after ours (it wins). The suite sets LOCALHOST in conftest.py: loopback only."""
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from effdl_ros.errors import ConfigError
from effdl_ros.runtime.backends.dds_discovery import (
    GENERATED_MARKER,
    LOOPBACK_CONFIG,
    discovery_config,
    discovery_options,
    export_config,
)


def _parse(config):
    """The XML fragment of a config string (the part before a user's URI) as an element tree."""
    return ET.fromstring(config.split(",", 1)[0])


def _peers(root):
    return [p.get("address") for p in root.iter("Peer")]


def test_localhost_keeps_to_the_loopback_interface():
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}) == LOOPBACK_CONFIG
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "localhost"}) == LOOPBACK_CONFIG
    assert discovery_config({"ROS_LOCALHOST_ONLY": "1"}) == LOOPBACK_CONFIG  # deprecated, still honoured
    root = _parse(LOOPBACK_CONFIG)
    assert root.find("Domain/General/AllowMulticast").text == "false"
    assert [i.get("address") for i in root.iter("NetworkInterface")] == ["127.0.0.1"]
    assert _peers(root) == ["localhost"]


def test_localhost_with_static_peers_adds_them_and_unpins_the_interface():
    root = _parse(discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                                    "ROS_STATIC_PEERS": "198.51.100.2; robot2.local;;"}))
    assert root.find("Domain/General/AllowMulticast").text == "false"
    assert _peers(root) == ["localhost", "198.51.100.2", "robot2.local"]
    assert root.find("Domain/General/Interfaces") is None  # the peers must be reachable
    assert root.find("Domain/Discovery/ParticipantIndex").text == "auto"


def test_subnet_is_the_default_and_keeps_multicast():
    assert discovery_options({}).range == "SUBNET"
    assert discovery_config({}) is None  # Cyclone's own defaults: multicast on the subnet
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}) is None
    root = _parse(discovery_config({"ROS_STATIC_PEERS": "198.51.100.1;198.51.100.3"}))
    assert root.find("Domain/General") is None  # multicast stays on
    assert _peers(root) == ["198.51.100.1", "198.51.100.3"]


def test_off_discovers_nothing_and_ignores_static_peers():
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF", "ROS_STATIC_PEERS": "198.51.100.2"}
    root = _parse(discovery_config(env, pid=4242))
    assert root.find("Domain/General/AllowMulticast").text == "false"
    assert root.find("Domain/Discovery/ParticipantIndex").text == "none"
    assert root.find("Domain/Discovery/Tag").text == "ros_discovery_off_4242"
    assert _peers(root) == []
    assert discovery_config(env, pid=1) != discovery_config(env, pid=2)  # each process its own


def test_system_default_leaves_cyclone_alone():
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT",
                             "ROS_STATIC_PEERS": "198.51.100.2"}) is None


def test_users_cyclonedds_uri_comes_last_and_wins():
    user = "file:///etc/mine.xml"
    config = discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "CYCLONEDDS_URI": user})
    assert config.endswith("," + user)
    assert "NetworkInterface" not in config  # the user's file chooses the interfaces
    assert discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SYSTEM_DEFAULT", "CYCLONEDDS_URI": user}) == user


def test_a_generated_uri_is_not_taken_for_the_users():
    env = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}
    export_config(env, discovery_config(env, pid=1))
    assert env["CYCLONEDDS_URI"] == env[GENERATED_MARKER]
    assert discovery_config(env, pid=2) == discovery_config({"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}, pid=2)
    user = {"CYCLONEDDS_URI": "file:///etc/mine.xml"}
    export_config(user, LOOPBACK_CONFIG)
    assert user == {"CYCLONEDDS_URI": "file:///etc/mine.xml"}  # never overwritten


@pytest.mark.parametrize("env, words", [
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LAN"}, "is not one of"),
    ({"ROS_STATIC_PEERS": "a;<b>"}, "ROS_STATIC_PEERS"),
])
def test_bad_settings_are_refused_in_one_sentence(env, words):
    with pytest.raises(ConfigError, match=words):
        discovery_config(env)


def test_cyclone_accepts_every_generated_configuration():
    """Each fragment really creates a Cyclone domain (an unknown element would be refused)."""
    pytest.importorskip("cyclonedds")
    from cyclonedds.domain import Domain

    from effdl_ros.runtime.backends.dds import _delete

    for i, env in enumerate([{"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"},
                             {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_STATIC_PEERS": "127.0.0.2"},
                             {"ROS_AUTOMATIC_DISCOVERY_RANGE": "OFF"}]):
        _delete(Domain(220 + i, discovery_config(env)))


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
