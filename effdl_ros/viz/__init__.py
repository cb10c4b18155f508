"""Seeing the graph: a live Foxglove WebSocket server fed from the graph's topics (foxglove_bridge),
the Foxglove layout that arranges its panels (layout), and a minimal client of the protocol (client)."""
