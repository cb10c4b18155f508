"""One graph across three hosts, on one machine: network namespaces joined by a bridge.

Three namespaces (hosts A, B, C) each get one veth interface with an address from 198.51.100.0/24
(a documentation range, RFC 5737) and the other end of each veth sits on a Linux bridge in a fourth
namespace. Nothing is added to the machine's own interfaces. The dds backend discovers across the
bridge with ROS 2's settings: ROS_AUTOMATIC_DISCOVERY_RANGE=SUBNET and ROS_STATIC_PEERS listing the
three addresses. Every host runs `effdl-ros run` with its share of one pipeline file, as it would
on a real robot's computers, and a probe (a small recording node) listens on B and C.

`bench multihost` runs the same frames through the graph twice, all on host A (one host), then
split A (source) / B (model nodes) / C (energy monitor), and reports: images that crossed hosts,
the budgets the model nodes took from the monitor on another host, whether every frame's output
equals the one-host run's, latency per hop beside the one-host figure, and how long the graph took
to come back after host B's processes were killed and started again. Root only (namespaces).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from effdl_ros.errors import ConfigError
from effdl_ros.segmentation import DEFAULT_MODEL

PREFIX = "effdl-mh-"  # namespace names: effdl-mh-<pid>-<host>; the pid lets a later run clear leftovers
SUBNET = "198.51.100"
HOSTS = ("a", "b", "c")
READY_TIMEOUT_S = 90.0


def unavailable_reason() -> Optional[str]:
    """Why this machine cannot run the multi-host graph, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "network namespaces are a Linux feature"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    try:
        import cyclonedds  # noqa: F401
    except ImportError:
        return "the dds backend needs the cyclonedds package"
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise ConfigError(f"`ip {' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}")
    return proc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_namespaces() -> List[str]:
    """Delete namespaces that an earlier run (whose process is gone) left behind."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(PREFIX):
            continue
        pid = name[len(PREFIX):].split("-")[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            _ip("netns", "del", name, check=False)
            removed.append(name)
    return removed


class Network:
    """Hosts a, b, c on a bridge; `with Network() as net:` removes everything on the way out."""

    def __init__(self, hosts: Sequence[str] = HOSTS) -> None:
        self.tag = f"{PREFIX}{os.getpid()}-{random.randrange(16**4):04x}"
        self.hosts = list(hosts)
        self.bridge_ns = f"{self.tag}-br"
        self.namespaces: List[str] = []

    def ns(self, host: str) -> str:
        return f"{self.tag}-{host}"

    def address(self, host: str) -> str:
        return f"{SUBNET}.{self.hosts.index(host) + 1}"

    def __enter__(self) -> "Network":
        remove_stale_namespaces()
        try:
            self._create()
        except BaseException:
            self.remove()
            raise
        return self

    def _create(self) -> None:
        for name in [self.bridge_ns] + [self.ns(h) for h in self.hosts]:
            _ip("netns", "add", name)
            self.namespaces.append(name)
            _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", self.bridge_ns, "link", "add", "br0", "type", "bridge")
        _ip("-n", self.bridge_ns, "link", "set", "br0", "up")
        for host in self.hosts:
            ns = self.ns(host)
            # both ends are made inside the namespaces: the machine's own interfaces are never touched
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"port_{host}",
                "netns", self.bridge_ns)
            _ip("-n", self.bridge_ns, "link", "set", f"port_{host}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.address(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def remove(self) -> None:
        for name in reversed(self.namespaces):
            _ip("netns", "del", name, check=False)  # takes its veth ends and the bridge with it
        self.namespaces.clear()

    def __exit__(self, *exc) -> None:
        self.remove()

    def reachable(self, src: str, dst: str) -> bool:
        """A TCP connect from src to a closed port of dst: refused (an answer came back) = reachable."""
        probe = ("import socket,sys\ns=socket.socket();s.settimeout(3)\ntry: s.connect((sys.argv[1],9))\n"
                 "except ConnectionRefusedError: sys.exit(0)\nexcept OSError: sys.exit(1)\nsys.exit(0)")
        return subprocess.run(["ip", "netns", "exec", self.ns(src), sys.executable, "-c", probe,
                               self.address(dst)], capture_output=True, timeout=20).returncode == 0

    def env(self, domain_id: int) -> Dict[str, str]:
        """The environment of every process on the hosts: dds backend, SUBNET discovery with the
        hosts as static peers (multicast stays inside the bridge)."""
        env = {k: v for k, v in os.environ.items()
               if k not in ("CYCLONEDDS_URI", "EFFDL_ROS_GENERATED_CYCLONEDDS_URI", "ROS_LOCALHOST_ONLY")}
        env.update(EFFDL_ROS_BACKEND="dds", ROS_DOMAIN_ID=str(domain_id), PYTHONUNBUFFERED="1",
                   ROS_AUTOMATIC_DISCOVERY_RANGE="SUBNET", OMP_NUM_THREADS="1",
                   ROS_STATIC_PEERS=";".join(self.address(h) for h in self.hosts))
        return env


@dataclass
class Proc:
    """A process started on one host; its output goes to a log file."""
    host: str
    popen: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.time)

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""

    def kill(self) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)  # the supervisor and its node processes
            except ProcessLookupError:
                pass
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGINT)
                self.popen.wait(timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                self.kill()


class Cluster:
    """Starts processes on the hosts of a Network and ends every one of them on close()."""

    def __init__(self, net: Network, workdir: Path, domain_id: int) -> None:
        self.net, self.workdir, self.domain_id = net, workdir, domain_id
        self.procs: List[Proc] = []

    def start(self, host: str, args: List[str], label: str) -> Proc:
        log = self.workdir / f"{label}.log"
        handle = open(log, "w", encoding="utf-8")
        popen = subprocess.Popen(["ip", "netns", "exec", self.net.ns(host), sys.executable, *args],
                                 env=self.net.env(self.domain_id), stdout=handle, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        handle.close()
        proc = Proc(host, popen, log)
        self.procs.append(proc)
        return proc

    def run_graph(self, host: str, config: Path, label: str) -> Proc:
        return self.start(host, ["-m", "effdl_ros.cli.main", "run", str(config), "--backend", "dds"], label)

    def probe(self, host: str, out: Path, topics: Sequence[str], label: str) -> Proc:
        return self.start(host, ["-m", "effdl_ros.graph.multihost", "probe", str(out), *topics], label)

    def kill_host(self, host: str, keep: Sequence[Proc] = ()) -> int:
        """SIGKILL every process in the host's namespace but `keep`'s; how many were killed."""
        spared = {p.popen.pid for p in keep}
        pids = [int(p) for p in _ip("netns", "pids", self.net.ns(host), check=False).stdout.split()
                if p.isdigit() and int(p) not in spared]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for proc in self.procs:
            if proc.host == host and proc.popen.pid not in spared:
                proc.popen.wait(10)
        return len(pids)

    def close(self) -> None:
        for proc in self.procs:
            proc.stop(timeout=5.0)
        self.procs.clear()


def wait_for(predicate, timeout: float, what: str, procs: Sequence[Proc] = ()) -> float:
    """Wait until predicate() is true; the seconds it took. A clear error with the logs' tails if not."""
    start = time.monotonic()
    while not predicate():
        dead = [p for p in procs if p.popen.poll() is not None]
        if dead or time.monotonic() - start > timeout:
            tails = "\n".join(f"--- {p.log.name} (exit {p.popen.poll()}):\n" + p.text()[-1500:] for p in procs)
            raise RuntimeError(f"{what}: {'a process exited' if dead else f'not within {timeout:.0f} s'}\n{tails}")
        time.sleep(0.2)
    return time.monotonic() - start


# ---------------------------------------------------------------------------------------- probe
def probe_main(out: str, topics: Sequence[str]) -> int:
    """Record, one JSON line each, what arrives on `topics` (receive time beside the header stamp,
    an image's content hash, a classification's labels and scores, budget targets, reports)."""
    from effdl_ros.runtime import Node, init, ok, shutdown, spin_once
    from effdl_ros.runtime.messages import Classification, EnergyReport, Image, ResourceBudgetArray
    from effdl_ros.runtime.qos import latched, qos_profile_sensor_data

    init(args=["--ros-args", "-r", "__node:=probe"])
    node = Node("probe")
    handle = open(out, "a", encoding="utf-8")

    def write(kind: str, topic: str, **fields) -> None:
        handle.write(json.dumps({"k": kind, "topic": topic, "t": time.time_ns(), **fields}) + "\n")
        handle.flush()

    def stamp(msg) -> int:
        return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec

    def on_image(topic, kind="image"):
        return lambda m: write(kind, topic, stamp=stamp(m), hash=hashlib.sha1(
            bytes(memoryview(m.data))).hexdigest()[:16])

    def on_class(topic):
        return lambda m: write("output", topic, stamp=stamp(m), value=[
            [r.class_id, round(float(r.score), 5)] for r in m.results])

    for topic in topics:
        if topic == "image":
            node.create_subscription(Image, topic, on_image(topic), qos_profile_sensor_data)
        elif topic.endswith("classification"):
            node.create_subscription(Classification, topic, on_class(topic), 50)
        elif topic.endswith("labels"):
            node.create_subscription(Image, topic, on_image(topic, "output"), 50)
        elif topic == "energy/budget":
            node.create_subscription(ResourceBudgetArray, topic, lambda m: write(
                "budget", "energy/budget", targets=[b.target_node for b in m.budgets],
                total_w=float(m.total_power_w)), latched(1))
        elif topic == "energy/reports":
            node.create_subscription(EnergyReport, topic, lambda m: write(
                "report", "energy/reports", node=m.node, items=int(m.items_processed),
                latency_ms=float(m.latency_ms)), 50)
    write("ready", "")
    try:
        while ok():
            spin_once(node, timeout_sec=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        handle.close()
        node.destroy_node()
        if ok():
            shutdown()
    return 0


def read_records(path: Path) -> List[dict]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
    return out


# ---------------------------------------------------------------------------------------- graph
MODEL_PARAMS = {
    "ddi": {"model_path": "models/ddi_camvid_patches.pt"},
    "segmentation": {"model_path": DEFAULT_MODEL, "publish_overlay": False},
}
OUTPUTS = {"ddi": "ddi/classification", "segmentation": "segmentation/labels"}


def write_configs(folder: Path, models: Sequence[str], rate_hz: float,
                  width: int) -> Dict[str, Path]:
    """The pipeline file split by host (A: source, B: model nodes, C: energy monitor). The total power
    does not bind, so every frame runs the full model on both runs and their outputs can be compared frame by frame."""
    from effdl_ros.resources import share_path

    params = {
        "/source": {"input": str(share_path("samples", "vtest")), "rate_hz": rate_hz, "loop": True,
                    "max_frames": 0, "resize_width": width},
        "/energy_monitor": {"total_power_w": 1000.0, "mode": "fixed", "rate_hz": 2.0, "meter": "none",
                            "nodes": list(models), "priorities": [1.0] * len(models)},
    }
    for name in models:
        params[f"/{name}"] = {k: (str(share_path(*v.split("/"))) if k == "model_path" else v)
                              for k, v in MODEL_PARAMS[name].items()}
    parts = {"a": ["source"], "b": list(models), "c": ["energy_monitor"]}
    paths = {}
    for part, names in parts.items():
        doc = {"nodes": [{"executable": n, "name": n} for n in names],
               "parameters": {f"/{n}": {"ros__parameters": params[f"/{n}"]} for n in names}}
        paths[part] = folder / f"pipeline_{part}.yaml"
        paths[part].write_text(yaml.safe_dump(doc, sort_keys=False))
    return paths


def _graph_ready(proc: Proc) -> bool:
    return "graph ready" in proc.text()


def _outputs_by_frame(image_records: List[dict], output_records: List[dict]) -> Dict[str, dict]:
    """{frame content hash: {output topic: value}}: joins outputs to frames by header stamp."""
    frame_of = {r["stamp"]: r["hash"] for r in image_records}
    out: Dict[str, dict] = {}
    for r in output_records:
        frame = frame_of.get(r["stamp"])
        if frame is not None:
            out.setdefault(frame, {})[r["topic"]] = r.get("value", r.get("hash"))
    return out


def _latency(records: List[dict], kind: str, topic: str, after_ns: int = 0) -> dict:
    values = [(r["t"] - r["stamp"]) / 1e6 for r in records
              if r["k"] == kind and r["topic"] == topic and r["t"] >= after_ns]
    if not values:
        return {"n": 0}
    values.sort()
    return {"n": len(values), "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(values[min(len(values) - 1, int(0.9 * len(values)))], 2)}


def _run_phase(cluster: Cluster, configs: Dict[str, Path], models: Sequence[str], frames: int,
               split: bool, folder: Path, log) -> dict:
    """Start the graph (split over the hosts or all on A), collect `frames` outputs at the probe."""
    name = "multi" if split else "one"
    out_topics = [OUTPUTS[m] for m in models]
    probe_c = folder / f"{name}_probe_c.jsonl"
    probe_b = folder / f"{name}_probe_b.jsonl"
    host_c, host_b = ("c", "b") if split else ("a", "a")
    probes = [cluster.probe(host_c, probe_c, ["image", *out_topics, "energy/budget", "energy/reports"],
                            f"{name}_probe_c"),
              cluster.probe(host_b, probe_b, ["image"], f"{name}_probe_b")]
    started = time.monotonic()
    # the same three per-host files in both runs, started in the same order; only placement differs
    place = {"a": "a", "b": host_b, "c": host_c}
    graphs = {part: cluster.run_graph(place[part], configs[part], f"{name}_host_{part}") for part in ("c", "b")}
    wait_for(lambda: all(_graph_ready(p) for p in graphs.values())
             and all(read_records(f) for f in (probe_b, probe_c)), READY_TIMEOUT_S,
             f"{name}: graph start", [*graphs.values(), *probes])
    graphs["a"] = cluster.run_graph("a", configs["a"], f"{name}_host_a")
    wait_for(lambda: _graph_ready(graphs["a"]), READY_TIMEOUT_S, f"{name}: source start", graphs.values())
    log(f"{name}: graph ready in {time.monotonic() - started:.1f} s")

    def counted() -> int:
        recs = read_records(probe_c)
        return min(sum(1 for r in recs if r["k"] == "output" and r["topic"] == t) for t in out_topics)

    wait_for(lambda: counted() >= frames, READY_TIMEOUT_S, f"{name}: {frames} outputs at the probe",
             [*graphs.values(), *probes])
    return {"graphs": graphs, "probes": probes, "probe_c": probe_c, "probe_b": probe_b}


def _summary(phase: dict, models: Sequence[str], after_ns: int = 0) -> dict:
    rec_c, rec_b = read_records(phase["probe_c"]), read_records(phase["probe_b"])
    out_topics = [OUTPUTS[m] for m in models]
    images_c = [r for r in rec_c if r["k"] == "image" and r["topic"] == "image" and r["t"] >= after_ns]
    outputs = [r for r in rec_c if r["k"] == "output" and r["t"] >= after_ns]
    budgets = [r for r in rec_c if r["k"] == "budget"]
    reports = [r for r in rec_c if r["k"] == "report"]
    inference = {}
    for m in models:
        lat = [r["latency_ms"] for r in reports if r["node"].endswith("/" + m) and r["latency_ms"] > 0]
        inference[m] = round(statistics.median(lat), 2) if lat else None
    return {
        "images_at_b": sum(1 for r in rec_b if r["k"] == "image" and r["topic"] == "image"),
        "images_at_c": len(images_c),
        "outputs": {t: sum(1 for r in outputs if r["topic"] == t) for t in out_topics},
        "budget_targets": sorted({t for r in budgets for t in r["targets"]}),
        "latency": {"image A->B": _latency(rec_b, "image", "image", after_ns),
                    "image A->C": _latency(rec_c, "image", "image", after_ns),
                    **{f"{t} A->B->C": _latency(rec_c, "output", t, after_ns) for t in out_topics}},
        "inference_ms_median": inference,
        "by_frame": _outputs_by_frame(images_c, outputs),
    }


def compare_outputs(one: Dict[str, dict], multi: Dict[str, dict]) -> dict:
    """Frames seen in both runs, and those whose outputs differ (scores to 1e-4)."""
    def same(a, b) -> bool:
        if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
            return all(x[0] == y[0] and abs(x[1] - y[1]) <= 1e-4 for x, y in zip(a, b))
        return a == b

    common = sorted(set(one) & set(multi))
    differ = [f for f in common if not all(same(one[f].get(t), multi[f].get(t))
                                           for t in set(one[f]) | set(multi[f]))]
    return {"frames_compared": len(common), "frames_differing": len(differ), "differing": differ[:5]}


def run_multihost(*, models: Sequence[str] = ("ddi",), frames: int = 8, rate_hz: float = 4.0,
                  width: int = 320, log=print, keep: Optional[Path] = None) -> dict:
    """The whole experiment; everything it made is removed when it returns or fails."""
    reason = unavailable_reason()
    if reason is not None:
        raise ConfigError(f"bench multihost cannot run here: {reason}")
    unknown = [m for m in models if m not in OUTPUTS]
    if unknown:
        raise ConfigError(f"--models: {', '.join(unknown)} unknown; choose from {', '.join(OUTPUTS)}")
    domain_id = random.Random(os.getpid() ^ time.time_ns()).randint(1, 100)
    tmp = tempfile.TemporaryDirectory(prefix="effdl_ros_multihost_")
    folder = Path(tmp.name)
    result: dict = {"models": list(models), "frames": frames, "rate_hz": rate_hz, "width": width,
                    "domain_id": domain_id, "subnet": f"{SUBNET}.0/24"}
    try:
        with Network() as net:
            result["addresses"] = {h: net.address(h) for h in net.hosts}
            result["a_reaches_c"] = net.reachable("a", "c")
            configs = write_configs(folder, models, rate_hz, width)
            # one host: the whole graph on A
            cluster = Cluster(net, folder, domain_id)
            try:
                phase = _run_phase(cluster, configs, models, frames, False, folder, log)
                one = _summary(phase, models)
            finally:
                cluster.close()
            # three hosts: A source, B models, C monitor (a new domain id: nothing left over)
            cluster = Cluster(net, folder, domain_id + 1)
            try:
                phase = _run_phase(cluster, configs, models, frames, True, folder, log)
                multi = _summary(phase, models)
                host_b = phase["graphs"]["b"]
                multi["budget_taken"] = {m: _took_budget(host_b.text(), m) for m in models}
                # kill every process of host B, start them again, wait for outputs at C
                killed_at = time.time_ns()
                killed = cluster.kill_host("b", keep=[p for p in phase["probes"] if p.host == "b"])
                log(f"host B: {killed} processes killed")
                time.sleep(1.0)
                restarted_at = time.time_ns()
                host_b2 = cluster.run_graph("b", configs["b"], "multi_host_b_restart")
                out_topics = [OUTPUTS[m] for m in models]

                def restored() -> bool:
                    recs = read_records(phase["probe_c"])
                    return all(any(r["k"] == "output" and r["topic"] == t and r["t"] > restarted_at
                                   for r in recs) for t in out_topics)

                wait_for(restored, READY_TIMEOUT_S, "graph after host B restart",
                                     [host_b2, *phase["probes"]])
                wait_for(lambda: all(_took_budget(host_b2.text(), m) for m in models), 15.0,
                         "budgets after host B restart", [host_b2])
                recs = read_records(phase["probe_c"])
                gap = [r for r in recs if r["k"] == "output" and killed_at + 5e8 < r["t"] < restarted_at]
                back = min(r["t"] for r in recs if r["k"] == "output" and r["t"] > restarted_at)
                result["restart"] = {
                    "outage_s": round((back - killed_at) / 1e9, 2),
                    "restart_to_output_s": round((back - restarted_at) / 1e9, 2),
                    "processes_killed": killed,
                    "outputs_while_b_down": len(gap),
                    "budget_taken_after_restart": {m: _took_budget(host_b2.text(), m) for m in models},
                    "after": _summary(phase, models, after_ns=restarted_at)["outputs"]}
            finally:
                cluster.close()
            result["one_host"] = one
            result["multi_host"] = multi
            result["match"] = compare_outputs(one["by_frame"], multi["by_frame"])
            for summary in (one, multi):
                summary["frames_distinct"] = len(summary.pop("by_frame"))
        result["namespaces_left"] = [n for n in _ip("netns", "list", check=False).stdout.split()
                                     if n.startswith(net.tag)]
    finally:
        if keep is not None:
            shutil.copytree(folder, keep, dirs_exist_ok=True)
        tmp.cleanup()
    return result


def _took_budget(log_text: str, node: str) -> bool:
    """A model node says once that it follows the monitor's budget (BudgetClient, on its first
    budget addressed to it): the budget crossed from host C and was taken."""
    return any(f"[{node}]" in line and "following the energy monitor's budget" in line
               for line in log_text.splitlines())


def table(result: dict) -> str:
    one, multi = result["one_host"], result["multi_host"]
    rows = [("", "one host (A)", "three hosts (A/B/C)")]
    rows.append(("images seen at B / at C", f"{one['images_at_b']} / {one['images_at_c']}",
                 f"{multi['images_at_b']} / {multi['images_at_c']}"))
    for hop in multi["latency"]:
        a, b = one["latency"].get(hop, {}), multi["latency"][hop]
        def fmt(s):
            return f"{s['median_ms']:.1f} ms (p90 {s['p90_ms']:.1f}, n={s['n']})" if s.get("n") else "-"

        rows.append((f"latency {hop}", fmt(a), fmt(b)))
    for m, v in multi["inference_ms_median"].items():
        rows.append((f"{m} inference (node's report)", f"{one['inference_ms_median'][m]} ms", f"{v} ms"))
    width = max(len(r[0]) for r in rows)
    lines = [f"{r[0]:<{width}}  {r[1]:<32}  {r[2]}" for r in rows]
    match = result["match"]
    lines.append(f"outputs equal to the one-host run: {match['frames_compared'] - match['frames_differing']}"
                 f"/{match['frames_compared']} frames")
    lines.append(f"budgets addressed by the monitor on C: {', '.join(multi['budget_targets'])}; taken on B: "
                 + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in multi["budget_taken"].items()))
    r = result["restart"]
    lines.append(f"host B killed ({r['processes_killed']} processes) and restarted: outputs at C again "
                 f"{r['restart_to_output_s']:.1f} s after the restart ({r['outage_s']:.1f} s without; outputs "
                 f"while B was down: {r['outputs_while_b_down']}), budgets taken again: "
                 + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in r["budget_taken_after_restart"].items()))
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) >= 2 and argv[0] == "probe":
        return probe_main(argv[1], argv[2:])
    sys.stderr.write("usage: python -m effdl_ros.graph.multihost probe OUT TOPIC...\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
