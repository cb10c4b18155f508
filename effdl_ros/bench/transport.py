"""The measurement behind `effdl-ros bench transport` (effdl_ros.cli.transport parses and prints):
640x480 rgb8 images between two nodes, latency / rate / loss / CPU.

dds: the publisher node in this process, the subscriber node in a second OS process (spawned), both
on Cyclone DDS in a private random domain. inproc: both nodes in this process. Each rate (30 Hz,
100 Hz, then as fast as the publisher can go) runs for --duration seconds. Latency is receive time
in the subscriber's callback minus header.stamp set just before publish (both CLOCK_REALTIME on the
same machine), so it includes serialisation, transport, decoding and the executor's hand-over.
"""
from __future__ import annotations

import array
import os
import platform
import time
from typing import Dict, List, Optional

from effdl_ros.errors import ConfigError

WIDTH, HEIGHT = 640, 480


def _qos(kind: str):
    from effdl_ros.runtime.local.qos import QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.BEST_EFFORT if kind == "sensor" else ReliabilityPolicy.RELIABLE
    return QoSProfile(depth=5, reliability=reliability)


def _image(seq: int, pixels):
    from effdl_ros.runtime.local.typesupport import get_class

    Image = get_class("sensor_msgs/msg/Image")
    msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=pixels)
    msg.header.frame_id = str(seq)
    return msg


def _stamp(msg) -> None:
    now = time.time_ns()
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(now, 1_000_000_000)


class _Recorder:
    """The subscriber's callback: receive time minus publish stamp, and which frames came."""

    def __init__(self) -> None:
        self.latency_ms: List[float] = []
        self.seqs: List[int] = []

    def __call__(self, msg) -> None:
        now = time.time_ns()
        sent = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        seq = int(msg.header.frame_id) if msg.header.frame_id.isdigit() else -1
        if seq >= 0:
            self.latency_ms.append((now - sent) / 1e6)
            self.seqs.append(seq)
        else:
            self.seqs.append(-1)  # warm-up

    def take(self):
        lat, seqs = self.latency_ms, [s for s in self.seqs if s >= 0]
        self.latency_ms, self.seqs = [], []
        return lat, seqs


def _summary(rate, sent: int, wall_s: float, lat: List[float], seqs: List[int],
             cpu: Dict[str, float]) -> dict:
    import numpy as np

    got = len(set(seqs))
    arr = np.asarray(lat, dtype=np.float64)
    return {
        "rate_hz": rate if rate is not None else "max",
        "sent": sent, "received": got,
        "loss": (sent - got) / sent if sent else 0.0,
        "in_order": seqs == sorted(seqs),
        "achieved_hz": got / wall_s if wall_s > 0 else 0.0,
        "sent_hz": sent / wall_s if wall_s > 0 else 0.0,
        "latency_ms": {k: float(v) for k, v in (
            ("p50", np.percentile(arr, 50)), ("p99", np.percentile(arr, 99)),
            ("mean", arr.mean()), ("max", arr.max()))} if arr.size else {},
        "cpu_share": cpu,
        # CPU per frame that process handled: the subscriber's per frame received
        "cpu_ms_per_frame": {k: v * wall_s * 1000 / (got if k == "subscriber" else sent)
                             for k, v in cpu.items() if (got if k == "subscriber" else sent)},
    }


def _pace(start: float, index: int, period: Optional[float], wait) -> None:
    if period is None:
        return
    target = start + index * period
    while True:
        remaining = target - time.perf_counter()
        if remaining <= 0:
            return
        wait(remaining)


# -- inproc: both nodes in this process, one executor ------------------------------------------
def _bench_inproc(rates, duration: float, qos_kind: str, pixels) -> List[dict]:
    from effdl_ros.runtime.local.node import Node
    from effdl_ros.runtime.local.typesupport import get_class
    from effdl_ros.runtime.testing import InprocGraph

    Image = get_class("sensor_msgs/msg/Image")
    results = []
    with InprocGraph(backend="inproc") as g:
        pub = g.add(lambda **kw: Node("bench_source", **kw)).create_publisher(
            Image, "bench/image", _qos(qos_kind))
        record = _Recorder()
        g.add(lambda **kw: Node("bench_sink", **kw)).create_subscription(
            Image, "bench/image", record, _qos(qos_kind))
        for rate in rates:
            period = 1.0 / rate if rate else None
            cpu0, start = time.process_time(), time.perf_counter()
            sent = 0
            while time.perf_counter() - start < duration:
                _pace(start, sent, period, lambda s: g.executor.spin_once(timeout_sec=s))
                msg = _image(sent, pixels)
                _stamp(msg)
                pub.publish(msg)
                sent += 1
                g.spin_until_idle()
            wall = time.perf_counter() - start
            cpu = {"process (both nodes)": (time.process_time() - cpu0) / wall}
            lat, seqs = record.take()
            results.append(_summary(rate, sent, wall, lat, seqs, cpu))
    return results



def _serve_sink(conn, record: "_Recorder", spin_once) -> None:
    """The subscriber side of the protocol, whatever the middleware: spin_once(timeout_s) runs its
    callbacks; the parent asks "warm?", "start", "stop" (sent, drain s) and "quit" over conn."""
    conn.send(("up",))
    cpu0 = wall0 = 0.0
    while True:
        spin_once(0.05)  # a frame wakes it at once; this only paces polls
        if not conn.poll():
            continue
        cmd = conn.recv()
        if cmd[0] == "warm?":
            conn.send(("warm", any(s < 0 for s in record.seqs)))
        elif cmd[0] == "start":
            record.take()
            cpu0, wall0 = time.process_time(), time.perf_counter()
        elif cmd[0] == "stop":
            sent, drain_s = cmd[1], cmd[2]
            end = time.perf_counter() + drain_s
            while len(record.seqs) < sent and time.perf_counter() < end:
                spin_once(0.005)
            share = (time.process_time() - cpu0) / max(1e-9, time.perf_counter() - wall0)
            lat, seqs = record.take()
            conn.send(("result", lat, seqs, share))
        elif cmd[0] == "quit":
            return

# -- dds: a subscriber process --------------------------------------------------------------------
def _sink_main(domain: int, qos_kind: str, conn) -> None:
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    from effdl_ros.runtime.local.node import Node
    from effdl_ros.runtime.local.typesupport import get_class
    from effdl_ros.runtime.testing import InprocGraph

    Image = get_class("sensor_msgs/msg/Image")
    with InprocGraph(backend="dds") as g:
        record = _Recorder()
        g.add(lambda **kw: Node("bench_sink", **kw)).create_subscription(
            Image, "bench/image", record, _qos(qos_kind))
        _serve_sink(conn, record, lambda timeout: g.executor.spin_once(timeout_sec=timeout))


def _bench_dds(rates, duration: float, qos_kind: str, pixels, domain: int) -> List[dict]:
    import multiprocessing as mp

    from effdl_ros.runtime.local.node import Node
    from effdl_ros.runtime.local.typesupport import get_class
    from effdl_ros.runtime.testing import InprocGraph

    os.environ["ROS_DOMAIN_ID"] = str(domain)
    Image = get_class("sensor_msgs/msg/Image")
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    sink = ctx.Process(target=_sink_main, args=(domain, qos_kind, theirs), daemon=True)
    sink.start()
    results = []
    try:
        if not ours.poll(60) or ours.recv()[0] != "up":
            raise ConfigError("the dds subscriber process did not start within 60 s")
        with InprocGraph(backend="dds") as g:
            pub = g.add(lambda **kw: Node("bench_source", **kw)).create_publisher(
                Image, "bench/image", _qos(qos_kind))
            if not _warm_up(pub, lambda: _image(0, pixels), ours, 30):
                raise ConfigError(f"no dds match on domain {domain} within 30 s")
            results = _drive(pub, lambda seq: _image(seq, pixels), ours, rates, duration)
    finally:
        _stop_sink(ours, sink)
    return results


def _stop_sink(ours, sink) -> None:
    """Ask the subscriber process to quit; terminate it if it has not within 10 s."""
    try:
        ours.send(("quit",))
    except (OSError, BrokenPipeError):
        pass
    sink.join(10)
    if sink.is_alive():
        sink.terminate()
        sink.join(5)



def _warm_up(pub, make_msg, ours, timeout_s: float) -> bool:
    """Publish until the subscriber process has heard us (discovery both ways); False on timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        msg = make_msg()
        msg.header.frame_id = "warm"
        _stamp(msg)
        pub.publish(msg)
        time.sleep(0.05)
        ours.send(("warm?",))
        if ours.recv()[1]:
            return True
        if time.monotonic() > deadline:
            return False


def _drive(pub, make_msg, ours, rates, duration: float) -> list:
    """Each rate for `duration` s: publish paced frames, then ask the subscriber what arrived."""
    results = []
    for rate in rates:
        period = 1.0 / rate if rate else None
        ours.send(("start",))
        time.sleep(0.05)
        cpu0, start = time.process_time(), time.perf_counter()
        sent = 0
        while time.perf_counter() - start < duration:
            _pace(start, sent, period, time.sleep)
            msg = make_msg(sent)
            _stamp(msg)
            pub.publish(msg)
            sent += 1
        wall = time.perf_counter() - start
        pub_share = (time.process_time() - cpu0) / wall
        ours.send(("stop", sent, 2.0))
        _, lat, seqs, sink_share = ours.recv()
        results.append(_summary(rate, sent, wall, lat, seqs, {"publisher": pub_share, "subscriber": sink_share}))
    return results

# -- rclpy: two real ROS 2 nodes, the same protocol as dds (needs a sourced ROS 2) ---------------
def _rclpy_qos(kind: str):
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = ReliabilityPolicy.BEST_EFFORT if kind == "sensor" else ReliabilityPolicy.RELIABLE
    return QoSProfile(depth=5, history=HistoryPolicy.KEEP_LAST, reliability=reliability,
                      durability=DurabilityPolicy.VOLATILE)


def _rclpy_sink_main(domain: int, qos_kind: str, conn) -> None:
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    import rclpy
    from rclpy.node import Node
    from sensor_msgs.msg import Image

    rclpy.init()
    node = Node("bench_sink")
    record = _Recorder()
    node.create_subscription(Image, "bench/image", record, _rclpy_qos(qos_kind))
    try:
        _serve_sink(conn, record, lambda timeout: rclpy.spin_once(node, timeout_sec=timeout))
    finally:
        node.destroy_node()
        rclpy.shutdown()


def _bench_rclpy(rates, duration: float, qos_kind: str, pixels, domain: int) -> List[dict]:
    """The dds protocol between two real rclpy nodes; run in a child process so that this process
    never loads two Cyclone DDS libraries (rclpy's and the cyclonedds package's)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    child = ctx.Process(target=_rclpy_source_main, args=(rates, duration, qos_kind, pixels, domain,
                                                        theirs))  # not daemonic: it has a child
    child.start()
    if not ours.poll(300):
        child.terminate()
        child.join(5)
        raise ConfigError("the rclpy publisher process gave no result within 300 s")
    status, payload = ours.recv()
    child.join(10)
    if status != "ok":
        raise ConfigError(f"rclpy transport bench failed: {payload}")
    return payload


def _rclpy_source_main(rates, duration, qos_kind, pixels, domain, result_conn) -> None:
    import multiprocessing as mp

    try:
        import rclpy
        from rclpy.node import Node
        from sensor_msgs.msg import Image
    except ImportError as err:
        result_conn.send(("error", f"rclpy does not import ({err}): source a ROS 2 setup.bash"))
        return
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    ctx = mp.get_context("spawn")
    ours, theirs = ctx.Pipe()
    sink = ctx.Process(target=_rclpy_sink_main, args=(domain, qos_kind, theirs), daemon=True)
    sink.start()
    rclpy.init()
    node = Node("bench_source")
    results = []
    try:
        if not ours.poll(120) or ours.recv()[0] != "up":
            raise RuntimeError("the rclpy subscriber process did not start within 120 s")
        pub = node.create_publisher(Image, "bench/image", _rclpy_qos(qos_kind))
        data = array.array("B", pixels.tobytes())

        def image(seq):
            msg = Image(height=HEIGHT, width=WIDTH, encoding="rgb8", step=WIDTH * 3, data=data)
            msg.header.frame_id = str(seq)
            return msg

        if not _warm_up(pub, lambda: image(0), ours, 60):
            raise RuntimeError(f"no rclpy match on domain {domain} within 60 s")
        results = _drive(pub, image, ours, rates, duration)
        result_conn.send(("ok", results))
    except Exception as err:  # noqa: BLE001 - reported to the parent as one sentence
        result_conn.send(("error", str(err)))
    finally:
        _stop_sink(ours, sink)
        node.destroy_node()
        rclpy.shutdown()


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}"


def _table(results: Dict[str, List[dict]], title: str):
    from rich.table import Table

    table = Table(title=title)
    repeated = any(r.get("repetition", 1) > 1 for rows in results.values() for r in rows)
    for col in ("backend",) + (("run",) if repeated else ()) + (
            "rate", "sent/s", "recv/s", "loss", "p50 ms", "p99 ms", "max ms", "CPU pub/sub"):
        table.add_column(col, justify="right" if col != "backend" else "left")
    for backend, rows in results.items():
        for r in rows:
            lat = r["latency_ms"]
            rate = r["rate_hz"]
            cpu = "/".join(f"{v:.0%}" for v in r["cpu_share"].values())
            run = (f"{r.get('repetition', 1)}",) if repeated else ()
            table.add_row(backend, *run, f"{rate:g} Hz" if rate != "max" else "max",
                          f"{r['sent_hz']:.1f}", f"{r['achieved_hz']:.1f}", f"{r['loss']:.1%}",
                          f"{lat.get('p50', float('nan')):.2f}", f"{lat.get('p99', float('nan')):.2f}",
                          f"{lat.get('max', float('nan')):.2f}", cpu)
    return table


def _medians(results: Dict[str, List[dict]]) -> Dict[str, Dict[str, dict]]:
    """Per backend and rate, over the repetitions: median p50 and p99, and the worst p99."""
    import numpy as np

    out: Dict[str, Dict[str, dict]] = {}
    for backend, rows in results.items():
        by_rate: Dict[str, List[dict]] = {}
        for r in rows:
            if r["latency_ms"]:
                by_rate.setdefault(str(r["rate_hz"]), []).append(r["latency_ms"])
        out[backend] = {rate: {"runs": len(lats),
                               "p50_median": float(np.median([x["p50"] for x in lats])),
                               "p99_median": float(np.median([x["p99"] for x in lats])),
                               "p99_worst": float(max(x["p99"] for x in lats))}
                        for rate, lats in by_rate.items()}
    return out


def run(backends: List[str], rates: List[Optional[float]], *, duration: float, qos: str, repeat: int,
        domain: int) -> dict:
    """Every backend `repeat` times, interleaved (the order reversed every other time, so all see the
    same load); returns the runs, their medians, the machine and the load average before/after."""
    import numpy as np

    pixels = np.random.default_rng(0).integers(0, 256, WIDTH * HEIGHT * 3, dtype=np.uint8)
    results: Dict[str, List[dict]] = {backend: [] for backend in backends}
    load_before = os.getloadavg()[0]
    for repetition in range(1, repeat + 1):
        for backend in (backends if repetition % 2 else backends[::-1]):
            if backend == "dds":
                rows = _bench_dds(rates, duration, qos, pixels, domain)
            elif backend == "rclpy":
                rows = _bench_rclpy(rates, duration, qos, pixels, domain)
            else:
                rows = _bench_inproc(rates, duration, qos, pixels)
            for row in rows:
                row["repetition"] = repetition
                row["load_average_1min"] = os.getloadavg()[0]
            results[backend].extend(rows)
    return {"machine": _machine(), "load_average_1min": (load_before, os.getloadavg()[0]), "qos": qos,
            "duration_s": duration, "repeat": repeat, "image": f"{WIDTH}x{HEIGHT} rgb8",
            "results": results, "medians": _medians(results)}


def table(results: Dict[str, List[dict]], title: str):
    """The rich table of every run (one row per backend, rate and repetition)."""
    return _table(results, title)
