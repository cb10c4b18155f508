"""Energy: meters, the cost model, per-node accounting and the budget policy (no ROS here)."""
