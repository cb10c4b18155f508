"""What every node shares: its parameter table (declared with descriptors, checked before start-up)
and its start-up announcement. Nodes import from here and from effdl_ros.runtime; nothing here
imports a node."""
