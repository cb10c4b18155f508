"""`--foxglove [PORT]`: watch the running graph in Foxglove, without ROS.

A Foxglove WebSocket server (the official `foxglove-sdk` package) is fed by one node,
`/foxglove_bridge`, that subscribes to the graph's topics through the project's runtime, like any
other node: in the process of `demo` / `replay` / `run --backend inproc`, or as a DDS participant in
the supervisor process of `run --backend dds`. Channels (README, "Seeing the graph"):

- the graph's own topics as ROS 2 messages (schema encoding `ros2msg`, message encoding `cdr`, the
  bytes a ROS 2 node puts on the wire): /image, /segmentation/overlay, /tracks, /ddi/classification,
  /energy/reports, /energy/budget, /diagnostics;
- /annotations (foxglove.ImageAnnotations): the tracks as boxes and the classification as text, drawn
  over /image by Foxglove's Image panel;
- /energy/power (JSON): per node `power_w` (its newest EnergyReport) and `budget_w` (the monitor's
  newest budget) in one message, so a Plot panel draws power against budget with paths such as
  `/energy/power.tracker.power_w`.

Bounded, never blocking: the node's callbacks run in the bridge's own thread (its own executor), not
in the graph's; a message is converted only while a viewer subscribes to its channel; what waits for
conversion is kept per channel in a short keep-newest queue, and an older message pushed out is
dropped and counted; the server keeps at most `backlog` messages per viewer and drops the oldest for a
viewer that reads too slowly. Drops are reported to the viewer (a status message), on stderr while
running (at most every 10 s) and in the summary line at the end.

Off by default and cheap when off: nothing here imports the SDK until a bridge is started.
"""
from __future__ import annotations

import argparse
import collections
import ipaddress
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from effdl_ros.errors import ConfigError

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
#: messages the server keeps per viewer before it drops the oldest (a 320x240 image is 230 kB)
DEFAULT_BACKLOG = 32
#: how long close() waits for the server to let its viewers go
STOP_TIMEOUT_S = 2.0

#: graph topics forwarded as ROS 2 messages (CDR): topic -> (type name, QoS kind, queue length)
ROS_TOPICS: Dict[str, Tuple[str, str, int]] = {
    "/image": ("sensor_msgs/msg/Image", "sensor", 1),
    "/segmentation/overlay": ("sensor_msgs/msg/Image", "sensor", 1),
    "/tracks": ("vision_msgs/msg/Detection2DArray", "default", 10),
    "/ddi/classification": ("vision_msgs/msg/Classification", "default", 10),
    "/energy/reports": ("effdl_ros/msg/EnergyReport", "default", 20),
    "/energy/budget": ("effdl_ros/msg/ResourceBudgetArray", "latched", 5),
    "/diagnostics": ("diagnostic_msgs/msg/DiagnosticArray", "default", 5),
}
ANNOTATIONS_TOPIC = "/annotations"
POWER_TOPIC = "/energy/power"
#: topics whose newest message a viewer gets when it subscribes (the graph's latched topics)
LATCHED = ("/energy/budget", POWER_TOPIC)

POWER_SCHEMA = {
    "title": "effdl_ros power and budget per node",
    "type": "object",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "power_w": {"type": "number", "description": "newest EnergyReport.power_w (W)"},
            "budget_w": {"type": "number", "description": "newest ResourceBudget.power_w (W)"},
            "energy_j": {"type": "number", "description": "energy since the node started (J)"},
            "source": {"type": "string", "description": "measured or modelled"},
        },
    },
}

INSTALL_HINT = "pip install 'effdl_ros[foxglove]' (or: pip install foxglove-sdk)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--foxglove [PORT]` and `--foxglove-host HOST` options of run, demo and replay."""
    group = parser.add_argument_group("live view in Foxglove")
    group.add_argument("--foxglove", nargs="?", type=int, const=DEFAULT_PORT, default=None, metavar="PORT",
                       help=f"serve the graph live to Foxglove over WebSocket on PORT (default {DEFAULT_PORT}; "
                            "0 = any free port); give it after the positional argument. Needs foxglove-sdk")
    group.add_argument("--foxglove-host", default=DEFAULT_HOST, metavar="HOST",
                       help=f"address the Foxglove server listens on (default {DEFAULT_HOST}, this machine "
                            "only; 0.0.0.0 lets anyone on the network watch, without authentication)")


def start_from_args(args: argparse.Namespace, *, log: Callable[[str], None] = print
                    ) -> Optional["FoxgloveBridge"]:
    """A started bridge when `--foxglove` was given, else None (and the SDK is not imported)."""
    port = getattr(args, "foxglove", None)
    if port is None:
        return None
    return FoxgloveBridge(host=getattr(args, "foxglove_host", DEFAULT_HOST) or DEFAULT_HOST, port=port, log=log)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _import_sdk():
    try:
        import foxglove
    except ImportError as err:
        raise ConfigError(f"--foxglove needs the foxglove-sdk package: {INSTALL_HINT} ({err})") from None
    return foxglove


def _stamp_ns(msg: Any) -> int:
    header = getattr(msg, "header", None)
    if header is not None and (header.stamp.sec or header.stamp.nanosec):
        return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)
    return time.time_ns()


class _Listener:
    """Server callbacks (from the SDK's threads): a new subscriber to a latched topic gets its newest."""

    def __init__(self, bridge: "FoxgloveBridge") -> None:
        self.bridge = bridge

    def on_subscribe(self, client, channel) -> None:  # noqa: ANN001 - SDK types
        if channel.topic in LATCHED:
            self.bridge._resend_latest(channel.topic)

    def on_unsubscribe(self, client, channel) -> None:  # noqa: ANN001
        return None


class FoxgloveBridge:
    """A Foxglove WebSocket server plus the node that feeds it; `attach(context)` starts forwarding.

    :param host: address to listen on (default 127.0.0.1; others are warned about).
    :param port: TCP port (0 = any free port; the bound one is `self.port`).
    :param backlog: messages the server keeps per viewer before dropping the oldest.
    :param log: where the URL, warnings and the summary go (default print).
    """

    def __init__(self, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, backlog: int = DEFAULT_BACKLOG,
                 log: Callable[[str], None] = print, name: str = "effdl_ros") -> None:
        if not 0 <= int(port) <= 65535:
            raise ConfigError(f"--foxglove port must be 0..65535, got {port}")
        foxglove = _import_sdk()
        self.log = log
        self.host = host
        if not is_loopback(host):
            self._warn(f"foxglove: serving on {host}, reachable from other machines; the Foxglove "
                       "WebSocket protocol has no authentication, so anyone who can reach the port sees "
                       "the camera")
        self._sdk = foxglove
        self.sdk_context = foxglove.Context()
        try:
            self.server = foxglove.start_server(
                name=name, host=host, port=int(port), context=self.sdk_context,
                server_listener=_Listener(self), message_backlog_size=int(backlog))
        except Exception as err:  # noqa: BLE001 - the SDK raises RuntimeError for a port in use etc.
            raise ConfigError(f"cannot start the Foxglove server on {host}:{port}: {err}") from None
        self.port = int(self.server.port)
        self.url = f"ws://{'localhost' if is_loopback(host) else host}:{self.port}"
        self.channels: Dict[str, Any] = {}
        self.forwarded: Dict[str, int] = collections.Counter()
        self.dropped: Dict[str, int] = collections.Counter()
        self.errors = 0
        self.cpu_s = 0.0  # CPU time of the bridge's thread (callbacks, conversion, handing to the server)
        self._pending: Dict[str, Deque[Tuple[Any, int]]] = {}
        self._latest: Dict[str, Tuple[Any, int]] = {}
        self._lock = threading.Lock()
        self._tracks = None
        self._classification = None
        self._power: Dict[str, Dict[str, Any]] = collections.defaultdict(dict)
        self._node = None
        self._executor = None
        self._thread: Optional[threading.Thread] = None
        self._own_context = None
        self._running = False
        self._last_drop_report = (0.0, 0)
        self._closed = False
        log(f"foxglove: live view on {self.url} (Foxglove: Open connection > Foxglove WebSocket; "
            "layout: foxglove/effdl_ros_layout.json)")

    # ----------------------------------------------------------------------------------- start, stop

    def attach(self, context) -> None:
        """Create the bridge node in `context` (a runtime Context, or anything with .context) and
        forward from a thread of its own."""
        from effdl_ros.runtime import Node
        from effdl_ros.runtime.local.executor import SingleThreadedExecutor
        from effdl_ros.runtime.messages import get_message_class
        from effdl_ros.runtime.qos import latched, qos_profile_sensor_data

        context = getattr(context, "context", context)
        if self._node is not None:
            raise RuntimeError("this Foxglove bridge is attached already")
        self._make_channels()
        node = Node("foxglove_bridge", context=context)
        for topic, (typename, kind, depth) in ROS_TOPICS.items():
            qos = {"sensor": qos_profile_sensor_data, "latched": latched(1)}.get(kind, 10)
            self._pending[topic] = collections.deque(maxlen=depth)
            node.create_subscription(get_message_class(typename), topic, self._make_callback(topic), qos)
        self._executor = SingleThreadedExecutor(context=context)
        self._executor.add_node(node)
        self._node = node
        self._running = True
        self._thread = threading.Thread(target=self._spin, name="foxglove_bridge", daemon=True)
        self._thread.start()

    def attach_new_context(self, backend: str = "dds") -> None:
        """Forward from a context of its own (the supervisor of `run --backend dds`: a DDS participant)."""
        from effdl_ros.runtime.local.context import Context

        context = Context(backend=backend)
        context.init([])
        self._own_context = context
        self.attach(context)

    def close(self) -> None:
        """Stop forwarding and the server; log the summary (messages forwarded, dropped)."""
        if self._closed:
            return
        self._closed = True
        self._running = False
        if self._executor is not None:
            self._executor.shutdown()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self._node is not None:
            try:
                self._node.destroy_node()
            except Exception:  # noqa: BLE001 - the graph's context may be shut already
                pass
        if self._own_context is not None:
            self._own_context.shutdown()
        # stop() waits for every viewer's connection to close, and a viewer that stopped reading
        # never does: give it a moment, then go on (the server's threads end with the process).
        stopper = threading.Thread(target=self.server.stop, name="foxglove_stop", daemon=True)
        stopper.start()
        stopper.join(timeout=STOP_TIMEOUT_S)
        self.log(self.summary())
        if stopper.is_alive():
            self._warn(f"foxglove: a viewer did not disconnect within {STOP_TIMEOUT_S:g} s; not waiting for it")

    def __enter__(self) -> "FoxgloveBridge":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def summary(self) -> str:
        sent = sum(self.forwarded.values())
        dropped = sum(self.dropped.values())
        text = f"foxglove: forwarded {sent} messages"
        if dropped:
            worst = ", ".join(f"{t} {n}" for t, n in sorted(self.dropped.items(), key=lambda kv: -kv[1])[:3])
            text += f", dropped {dropped} while the bridge was behind the graph ({worst})"
        else:
            text += ", dropped none"
        if self.errors:
            text += f", {self.errors} could not be converted"
        images = self.forwarded.get("/image", 0)
        text += f"; bridge thread CPU {self.cpu_s:.3f} s"
        if images:
            text += f" ({self.cpu_s / images * 1e3:.1f} ms per forwarded image)"
        return text + " (the server also drops the oldest for a viewer that reads too slowly)"

    # ----------------------------------------------------------------------------------- channels

    def _make_channels(self) -> None:
        from effdl_ros.runtime.local.typesupport import typestore

        fg = self._sdk
        store = typestore()
        for topic, (typename, _, _) in ROS_TOPICS.items():
            text = store.generate_msgdef(typename, ros_version=2)[0]
            schema = fg.Schema(name=typename, encoding="ros2msg", data=text.encode("utf-8"))
            self.channels[topic] = fg.Channel(topic, schema=schema, message_encoding="cdr",
                                              context=self.sdk_context)
        from foxglove.channels import ImageAnnotationsChannel

        self.channels[ANNOTATIONS_TOPIC] = ImageAnnotationsChannel(ANNOTATIONS_TOPIC, context=self.sdk_context)
        self.channels[POWER_TOPIC] = fg.Channel(POWER_TOPIC, schema=POWER_SCHEMA, context=self.sdk_context)

    # ----------------------------------------------------------------------------------- forwarding

    def _make_callback(self, topic: str) -> Callable[[Any], None]:
        queue = None

        def on_message(msg: Any) -> None:
            nonlocal queue
            queue = queue if queue is not None else self._pending[topic]
            if len(queue) == queue.maxlen:
                self.dropped[topic] += 1
            queue.append((msg, time.time_ns()))

        on_message.__name__ = f"forward_{topic.strip('/').replace('/', '_')}"
        return on_message

    def _spin(self) -> None:
        executor = self._executor
        context = executor.context
        while self._running and context.ok():
            start = time.thread_time()
            try:
                if executor.spin_once(timeout_sec=0.1):
                    executor.spin_until_idle()  # take everything that is ready, then convert
                self._drain()
                self._report_drops()
            except Exception as err:  # noqa: BLE001 - a viewer problem must never reach the graph
                self.errors += 1
                if self.errors <= 3:
                    self._warn(f"foxglove: forwarding failed: {type(err).__name__}: {err}")
            finally:
                self.cpu_s += time.thread_time() - start

    def _drain(self) -> None:
        for topic, queue in self._pending.items():
            while queue:
                msg, received = queue.popleft()
                try:
                    self._forward(topic, msg)
                except Exception as err:  # noqa: BLE001 - one bad message is counted, not fatal
                    self.errors += 1
                    if self.errors <= 3:
                        self._warn(f"foxglove: cannot forward a message on {topic}: "
                                   f"{type(err).__name__}: {err}")

    def _forward(self, topic: str, msg: Any) -> None:
        stamp = _stamp_ns(msg)
        if topic == "/tracks":
            self._tracks = msg
        elif topic == "/ddi/classification":
            self._classification = msg
        elif topic == "/energy/reports":
            entry = self._power[msg.node.strip("/") or "?"]
            entry.update(power_w=float(msg.power_w), energy_j=float(msg.energy_j),
                         source="measured" if int(msg.source) == 0 else "modelled")
        elif topic == "/energy/budget":
            self._power["total"]["budget_w"] = float(msg.total_power_w)
            for item in msg.budgets:
                self._power[item.target_node.strip("/") or "?"]["budget_w"] = float(item.power_w)
        if topic in LATCHED:
            self._latest[topic] = (msg, stamp)
        channel = self.channels[topic]
        if channel.has_sinks():
            channel.log(_serialize(msg), log_time=stamp)
            self.forwarded[topic] += 1
        if topic in ("/tracks", "/ddi/classification"):
            self._log_annotations(stamp)
        elif topic in ("/energy/reports", "/energy/budget"):
            self._log_power(stamp)

    def _log_annotations(self, stamp: int) -> None:
        channel = self.channels[ANNOTATIONS_TOPIC]
        if channel.has_sinks():
            channel.log(annotations(self._tracks, self._classification, stamp), log_time=stamp)
            self.forwarded[ANNOTATIONS_TOPIC] += 1

    def _power_message(self) -> Dict[str, Any]:
        message = {name: dict(values) for name, values in self._power.items()}
        nodes = [v for k, v in message.items() if k != "total"]
        message.setdefault("total", {})["power_w"] = float(sum(v.get("power_w", 0.0) for v in nodes))
        return message

    def _log_power(self, stamp: int) -> None:
        message = self._power_message()
        self._latest[POWER_TOPIC] = (message, stamp)
        channel = self.channels[POWER_TOPIC]
        if channel.has_sinks():
            channel.log(_json_bytes(message), log_time=stamp)
            self.forwarded[POWER_TOPIC] += 1

    def _resend_latest(self, topic: str) -> None:
        """Called from the SDK's thread on a new subscription; logs outside the graph's threads."""
        latest = self._latest.get(topic)
        channel = self.channels.get(topic)
        if latest is None or channel is None:
            return
        msg, stamp = latest

        def send() -> None:
            time.sleep(0.05)  # let the server register the subscription first
            try:
                channel.log(_json_bytes(msg) if topic == POWER_TOPIC else _serialize(msg), log_time=stamp)
            except Exception:  # noqa: BLE001 - a late value is a nicety
                pass

        threading.Thread(target=send, daemon=True).start()

    def _report_drops(self) -> None:
        dropped = sum(self.dropped.values())
        last_time, last_count = self._last_drop_report
        now = time.monotonic()
        if dropped > last_count and now - last_time >= 10.0:
            self._last_drop_report = (now, dropped)
            text = (f"foxglove: {dropped} messages dropped so far (the bridge was behind the graph; the "
                    "graph is not slowed down)")
            self._warn(text)
            try:
                self.server.publish_status(text, self._sdk.StatusLevel.Warning, "effdl_ros.drops")
            except Exception:  # noqa: BLE001 - older SDKs
                pass

    def _warn(self, text: str) -> None:
        if self.log is print:
            print(text, file=sys.stderr, flush=True)
        else:
            self.log(text)


def _serialize(msg: Any) -> bytes:
    """The CDR bytes a ROS 2 node would send (rclpy's serializer under real ROS 2)."""
    from effdl_ros.runtime.backend import uses_rclpy

    if uses_rclpy():
        from rclpy.serialization import serialize_message

        return bytes(serialize_message(msg))
    from effdl_ros.runtime.local.typesupport import serialize

    return serialize(msg)


def _json_bytes(message: Dict[str, Any]) -> bytes:
    import json

    return json.dumps(message, separators=(",", ":")).encode("utf-8")


#: box and text colours of the annotations (RGBA 0..1)
TRACK_RGBA = (0.1, 1.0, 0.3, 1.0)
TEXT_RGBA = (1.0, 1.0, 1.0, 1.0)
TEXT_BACKGROUND_RGBA = (0.0, 0.0, 0.0, 0.6)


def annotations(tracks: Any, classification: Any, stamp_ns: int) -> Any:
    """foxglove.ImageAnnotations: each track's box (line loop) and "id score" label, and the top
    classification results as text in the image's top-left corner."""
    from foxglove.messages import (
        Color,
        ImageAnnotations,
        Point2,
        PointsAnnotation,
        PointsAnnotationType,
        TextAnnotation,
        Timestamp,
    )

    stamp = Timestamp(sec=int(stamp_ns // 1_000_000_000), nsec=int(stamp_ns % 1_000_000_000))
    box_color = Color(r=TRACK_RGBA[0], g=TRACK_RGBA[1], b=TRACK_RGBA[2], a=TRACK_RGBA[3])
    text_color = Color(r=TEXT_RGBA[0], g=TEXT_RGBA[1], b=TEXT_RGBA[2], a=TEXT_RGBA[3])
    background = Color(r=TEXT_BACKGROUND_RGBA[0], g=TEXT_BACKGROUND_RGBA[1], b=TEXT_BACKGROUND_RGBA[2],
                       a=TEXT_BACKGROUND_RGBA[3])
    points, texts = [], []
    for i, det in enumerate(getattr(tracks, "detections", None) or []):
        cx, cy = float(det.bbox.center.position.x), float(det.bbox.center.position.y)
        w, h = float(det.bbox.size_x), float(det.bbox.size_y)
        x0, y0, x1, y1 = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
        points.append(PointsAnnotation(
            timestamp=stamp, type=PointsAnnotationType.LineLoop, thickness=2.0, outline_color=box_color,
            points=[Point2(x=x0, y=y0), Point2(x=x1, y=y0), Point2(x=x1, y=y1), Point2(x=x0, y=y1)]))
        label = str(det.id or i)
        if det.results:
            hyp = det.results[0].hypothesis
            label += f" {hyp.class_id} {float(hyp.score):.2f}"
        texts.append(TextAnnotation(timestamp=stamp, position=Point2(x=x0, y=max(0.0, y0 - 2.0)), text=label,
                                    font_size=10.0, text_color=text_color, background_color=background))
    results = list(getattr(classification, "results", None) or [])[:3]
    if results:
        text = "ddi: " + ", ".join(f"{r.class_id} {float(r.score):.2f}" for r in results)
        texts.append(TextAnnotation(timestamp=stamp, position=Point2(x=4.0, y=14.0), text=text, font_size=12.0,
                                    text_color=text_color, background_color=background))
    return ImageAnnotations(timestamp=stamp, points=points, texts=texts)
