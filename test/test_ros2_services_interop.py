"""Service interop with a real ROS 2 (rclpy on rmw_cyclonedds_cpp): what `ros2 param` and
`ros2 lifecycle` do, done by a real rclpy client against our dds-backend node.

Our side: a lifecycle node with a parameter on the dds backend in this process. Their side: a real
rclpy process (this file run as a script, `python test_ros2_services_interop.py peer DOMAIN`) that
lists, sets and gets the parameter and configures the node over its services, printing one JSON line.
Runs only where real rclpy imports (source a ROS 2 setup.bash first); skips with a reason elsewhere.
Not run on the development machine (no ROS 2 there).
"""
import importlib.util
import json
import os
import random
import subprocess
import sys
import time

import pytest

DOMAIN = random.Random(os.getpid() ^ time.time_ns()).randint(100, 200)
TIMEOUT = 30.0


def _peer_main() -> None:
    import rclpy
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters

    rclpy.init()
    node = rclpy.create_node("services_peer")

    def call(srv, name, request):
        client = node.create_client(srv, name)
        if not client.wait_for_service(timeout_sec=TIMEOUT):
            raise RuntimeError(f"{name} never appeared")
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=TIMEOUT)
        return future.result()

    out = {}
    out["names"] = list(call(ListParameters, "/managed/list_parameters", ListParameters.Request()).result.names)
    value = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=0.25)
    out["set"] = call(SetParameters, "/managed/set_parameters",
                      SetParameters.Request(parameters=[Parameter(name="gain", value=value)])).results[0].successful
    out["get"] = call(GetParameters, "/managed/get_parameters", GetParameters.Request(names=["gain"])).values[0].double_value
    out["configure"] = call(ChangeState, "/managed/change_state",
                            ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))).success
    out["state"] = call(GetState, "/managed/get_state", GetState.Request()).current_state.label
    print(json.dumps(out), flush=True)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__" and sys.argv[1:2] == ["peer"]:
    _peer_main()
    sys.exit(0)


pytestmark = pytest.mark.ros2

if importlib.util.find_spec("rclpy") is None:
    pytest.skip("real ROS 2 (rclpy) does not import here: source a ROS 2 setup.bash to run these",
                allow_module_level=True)
pytest.importorskip("cyclonedds", reason="the dds backend needs the cyclonedds package")


def test_rclpy_sets_a_parameter_and_configures_our_node(monkeypatch):
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN))
    from effdl_ros.runtime.local.lifecycle import LifecycleNode
    from effdl_ros.runtime.testing import InprocGraph

    with InprocGraph(backend="dds") as g:
        node = g.add(lambda **kw: LifecycleNode("managed", **kw))
        node.declare_parameter("gain", 1.0)
        env = dict(os.environ, ROS_DOMAIN_ID=str(DOMAIN), RMW_IMPLEMENTATION="rmw_cyclonedds_cpp")
        peer = subprocess.Popen([sys.executable, os.path.abspath(__file__), "peer"], env=env,
                                stdout=subprocess.PIPE, text=True)
        assert g.spin_until(lambda: peer.poll() is not None, 3 * TIMEOUT), "the rclpy peer did not finish"
        out = json.loads(peer.stdout.read().strip().splitlines()[-1])
    assert "gain" in out["names"] and out["set"] and out["get"] == 0.25
    assert out["configure"] and out["state"] == "inactive"
