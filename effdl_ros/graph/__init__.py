"""The graph harness: checking, starting, supervising and stopping a configured graph of nodes
(`effdl-ros run`, `demo`, `replay`). It builds on the node kit and the runtime; nodes never import it."""
