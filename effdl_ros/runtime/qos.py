"""QoS profiles: rclpy's own under real ROS 2, an equivalent with the same names otherwise.

Which QoS each topic uses (README, "Topics"): images use sensor data (best effort, keep last 5);
budgets, label info and model updates use `latched` (reliable, transient-local) so late joiners get
the current value; everything else the default (reliable, keep last 10).
"""
from effdl_ros.runtime.backend import uses_rclpy

if uses_rclpy():
    from rclpy.qos import (  # noqa: F401
        DurabilityPolicy,
        HistoryPolicy,
        QoSPresetProfiles,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
        qos_profile_system_default,
    )
else:
    from effdl_ros.runtime.local.qos import (  # noqa: F401
        DurabilityPolicy,
        HistoryPolicy,
        QoSPresetProfiles,
        QoSProfile,
        ReliabilityPolicy,
        qos_profile_sensor_data,
        qos_profile_system_default,
    )


def latched(depth: int = 1) -> "QoSProfile":
    """Reliable + transient-local, keep last `depth`: a late subscriber receives the last value(s)."""
    return QoSProfile(depth=depth, history=HistoryPolicy.KEEP_LAST,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)
