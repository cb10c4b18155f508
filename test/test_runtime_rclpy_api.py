"""Our local node API must keep rclpy's signatures (checked where real rclpy is installed)."""
import inspect

import pytest

from effdl_ros.runtime.local.node import Node as LocalNode

METHODS = ["__init__", "create_publisher", "create_subscription", "create_timer", "declare_parameter",
           "declare_parameters", "get_parameter", "get_parameter_or", "has_parameter", "set_parameters",
           "add_on_set_parameters_callback", "get_logger", "get_clock", "destroy_node",
           "count_publishers", "count_subscribers", "resolve_topic_name", "get_fully_qualified_name"]


def _names(fn):
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.ros2
def test_signatures_match_real_rclpy():
    rclpy_node = pytest.importorskip("rclpy.node", reason="real ROS 2 (rclpy) is not installed here")
    for method in METHODS:
        ours, theirs = _names(getattr(LocalNode, method)), _names(getattr(rclpy_node.Node, method))
        assert ours[: len(theirs)] == theirs or ours == theirs, method


def test_local_signatures_as_recorded_from_rclpy_source():
    """Recorded from ros2/rclpy rclpy/node.py (Jazzy/Rolling): names, order, keyword-only marks."""
    kw = inspect.Parameter.KEYWORD_ONLY
    init = dict(_names(LocalNode.__init__))
    for name in ("context", "cli_args", "namespace", "use_global_arguments", "enable_rosout",
                 "start_parameter_services", "parameter_overrides", "allow_undeclared_parameters",
                 "automatically_declare_parameters_from_overrides", "enable_logger_service"):
        assert init[name] == kw, name
    assert [n for n, _ in _names(LocalNode.create_publisher)][:4] == ["self", "msg_type", "topic", "qos_profile"]
    assert [n for n, _ in _names(LocalNode.create_subscription)][:5] == [
        "self", "msg_type", "topic", "callback", "qos_profile"]
    assert dict(_names(LocalNode.create_subscription))["raw"] == kw
    assert [n for n, _ in _names(LocalNode.create_timer)] == [
        "self", "timer_period_sec", "callback", "callback_group", "clock", "autostart"]
    assert [n for n, _ in _names(LocalNode.declare_parameter)] == [
        "self", "name", "value", "descriptor", "ignore_override"]
