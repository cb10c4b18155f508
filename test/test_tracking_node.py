"""The tracker node on the inproc backend: an empty Detection2DArray before init, one detection per
image after init (id = track id, image header kept), a new init starts a new track, the budget
changes the knobs and the accountant counts the frames."""
import math

import numpy as np
import pytest
import torch

from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.images import cv2_to_imgmsg
from effdl_ros.runtime.messages import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    Header,
    Image,
    ResourceBudget,
    ResourceBudgetArray,
)
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.testing import InprocGraph


class Peer(Node):
    def __init__(self, **kw):
        super().__init__("peer", **kw)
        self.tracks = []
        self.create_subscription(Detection2DArray, "tracks", self.tracks.append, 10)
        self.images = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.inits = self.create_publisher(Detection2D, "tracker/init", 10)
        self.budgets = self.create_publisher(ResourceBudgetArray, "energy/budget", latched(1))

    def send_image(self, img, sec):
        header = Header(frame_id="cam")
        header.stamp.sec = sec
        self.images.publish(cv2_to_imgmsg(img, "rgb8", header=header))

    def send_init(self, cx, cy, w, h):
        det = Detection2D()
        det.bbox = BoundingBox2D(size_x=float(w), size_y=float(h))
        det.bbox.center.position.x = float(cx)
        det.bbox.center.position.y = float(cy)
        self.inits.publish(det)


def _scene(shift):
    img = np.full((120, 160, 3), 90, np.uint8)
    img[40 + shift:70 + shift, 50 + shift:80 + shift] = (230, 40, 40)
    return img


@pytest.fixture()
def graph(tmp_path):
    from pathlib import Path

    from effdl_ros.nodes.tracker import TrackerNode
    from effdl_ros.tracking.tracker import random_model
    from effdl_ros.tracking.train import save_atomic

    torch.set_num_threads(1)
    model = Path(__file__).resolve().parents[1] / "models" / "roam_hc16.pt"
    if not model.is_file():   # the node's plumbing does not depend on the weights: use an untrained model
        m = random_model()
        sd = {f"net.{k}": v for k, v in m.net.state_dict().items() if k not in ("mean", "std")}
        sd.update({f"init.{k}": v for k, v in m.init.state_dict().items()})
        sd.update({f"opt.{k}": v for k, v in m.optimizer.state_dict().items()})
        model = tmp_path / "roam.pt"
        save_atomic({"state_dict": sd, "config": m.net.config.to_dict()}, model)
    with InprocGraph(simulated=True) as g:
        node = g.add(TrackerNode, parameter_overrides=[Parameter("model_path", value=str(model))])
        peer = g.add(Peer)
        g.step(0.05)
        yield g, node, peer


def test_publishes_one_array_per_image_after_init(graph):
    g, node, peer = graph
    peer.send_image(_scene(0), 1)
    g.step(0.05)
    assert len(peer.tracks) == 1 and peer.tracks[0].detections == []       # nothing to track yet
    peer.send_init(65, 55, 30, 30)
    g.step(0.05)
    for i in range(4):
        peer.send_image(_scene(i), 2 + i)
        g.step(0.05)
    assert len(peer.tracks) == 5
    for i, arr in enumerate(peer.tracks[1:]):
        assert arr.header.stamp.sec == 2 + i and arr.header.frame_id == "cam"
        assert len(arr.detections) == 1
        det = arr.detections[0]
        assert det.id == "1"
        assert 0.0 <= det.results[0].hypothesis.score <= 1.0
        assert det.bbox.size_x > 0 and det.bbox.size_y > 0
    first = peer.tracks[1].detections[0]
    assert (first.bbox.center.position.x, first.bbox.center.position.y) == pytest.approx((65, 55))
    assert node.acct.snapshot() is not None and node.items == 5

    peer.send_init(100, 80, 20, 24)   # a new init restarts with a new track id
    g.step(0.05)
    peer.send_image(_scene(0), 9)
    g.step(0.05)
    assert peer.tracks[-1].detections[0].id == "2"


def test_budget_sets_knobs_and_bad_init_is_dropped(graph):
    g, node, peer = graph
    peer.send_init(65, 55, 30, 30)
    peer.send_image(_scene(0), 1)
    g.step(0.05)
    peer.budgets.publish(ResourceBudgetArray(budgets=[ResourceBudget(
        target_node="/tracker", power_w=math.inf, energy_per_item_j=math.inf,
        latency_deadline_ms=math.inf, compute_fraction=0.0)]))
    g.step(0.05)
    peer.send_image(_scene(1), 2)
    g.step(0.05)
    assert node.tracker.settings.update_interval == 0 and node.tracker.settings.search_size == 97
    assert len(peer.tracks) == 2
    peer.send_init(10, 10, 0, 5)       # zero width: dropped, the node keeps tracking
    g.step(0.05)
    peer.send_image(_scene(2), 3)
    g.step(0.05)
    assert len(peer.tracks) == 3 and peer.tracks[-1].detections[0].id == "1"


def test_a_stretched_or_outside_init_box_is_refused_quickly_and_tracking_goes_on():
    """Fuzzing found a 1e6 x 1 px init box kept init busy for minutes; such boxes are now refused."""
    import time

    import numpy as np

    from effdl_ros.errors import ConfigError
    from effdl_ros.resources import share_path
    from effdl_ros.tracking.tracker import RoamTracker, TrackerSettings, load_model

    tracker = RoamTracker(load_model(share_path("models", "roam_hc16.pt")), TrackerSettings())
    image = np.zeros((240, 320, 3), dtype=np.uint8)
    start = time.monotonic()
    for box in ([10, 10, 1e6, 1], [10, 10, 1, 300], [400, 10, 20, 20], [-50, -50, 20, 20]):
        with pytest.raises(ConfigError):
            tracker.init(image, box)
    assert time.monotonic() - start < 5.0
    tracker.init(image, [100, 100, 30, 40])  # a sane box still works


def test_lost_target_is_published_with_score_zero_same_id_and_named_in_diagnostics(tmp_path):
    """Issue 16: while the target is lost, `tracks` carries the same id with score 0, and /diagnostics
    names the state; when it comes back the same id goes on."""
    import sys
    from pathlib import Path

    from effdl_ros.nodes.tracker import TrackerNode
    from effdl_ros.runtime.messages import DiagnosticArray

    sys.path.insert(0, str(Path(__file__).parent))
    from test_tracking_model import vanishing_clip

    model = Path(__file__).resolve().parents[1] / "models" / "roam_hc16.pt"
    if not model.is_file():
        pytest.skip("models/roam_hc16.pt absent")
    torch.set_num_threads(1)
    frames, boxes = vanishing_clip()

    class Diag(Node):
        def __init__(self, **kw):
            super().__init__("diag", **kw)
            self.msgs = []
            self.create_subscription(DiagnosticArray, "/diagnostics", self.msgs.append, 10)

    with InprocGraph(simulated=True) as g:
        g.add(TrackerNode, parameter_overrides=[Parameter("model_path", value=str(model))])
        peer, diag = g.add(Peer), g.add(Diag)
        g.step(0.05)
        x, y, w, h = boxes[0]
        peer.send_init(x + w / 2, y + h / 2, w, h)
        g.step(0.05)
        for i, img in enumerate(frames):
            peer.send_image(img, i + 1)
            g.step(0.05)
    assert len(peer.tracks) == len(frames)
    dets = [arr.detections[0] for arr in peer.tracks]
    assert all(d.id == "1" for d in dets)                            # one track throughout
    scores = [d.results[0].hypothesis.score for d in dets]
    lost_at = [i for i, s in enumerate(scores) if s == 0.0]
    assert lost_at and all(boxes[i] is None for i in lost_at[:3])     # lost while the target is away
    assert scores[-1] > 0.5                                           # and found again, same id
    states = [s.message for m in diag.msgs for s in m.status if s.name.endswith(": track")]
    assert "lost" in states and states[-1] == "tracking" and "searching" in states
    assert any(s.level == s.WARN for m in diag.msgs for s in m.status if s.message == "lost")
