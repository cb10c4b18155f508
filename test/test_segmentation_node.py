"""The segmentation node on the inproc backend: outputs keep the input's size and stamp, the budget
sets the input scale, LabelInfo is latched, weights hot-swap and bad files are refused."""
import math

import numpy as np
import pytest
import torch

from effdl_ros.nodes.segmentation import SegmentationNode
from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.images import cv2_to_imgmsg, imgmsg_to_cv2
from effdl_ros.runtime.messages import Header, Image, LabelInfo, ModelUpdate, ResourceBudget, ResourceBudgetArray
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.testing import InprocGraph
from effdl_ros.segmentation.network import TinySegNet, config_for, save_checkpoint


def _save(path, seed):
    torch.manual_seed(seed)
    save_checkpoint(path, TinySegNet(11, width=0.25), config_for(11, 0.25, (32, 48)))


class Peer(Node):
    def __init__(self, **kw):
        super().__init__("peer", **kw)
        self.labels, self.overlays, self.infos = [], [], []
        self.create_subscription(Image, "segmentation/labels", self.labels.append, 5)
        self.create_subscription(Image, "segmentation/overlay", self.overlays.append, 5)
        self.images = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.budgets = self.create_publisher(ResourceBudgetArray, "energy/budget", latched(1))
        self.updates = self.create_publisher(ModelUpdate, "trainer/model_update", latched(1))

    def late_info(self):  # a late joiner still receives the latched LabelInfo
        self.create_subscription(LabelInfo, "segmentation/label_info", self.infos.append, latched(1))

    def send_image(self, h=45, w=61, sec=7, nanosec=123):
        img = np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)
        header = Header(frame_id="cam")
        header.stamp.sec, header.stamp.nanosec = sec, nanosec
        self.images.publish(cv2_to_imgmsg(img, "rgb8", header=header))

    def send_budget(self, fraction):
        self.budgets.publish(ResourceBudgetArray(budgets=[ResourceBudget(
            target_node="/segmentation", power_w=math.inf, energy_per_item_j=math.inf,
            latency_deadline_ms=math.inf, compute_fraction=fraction)]))


@pytest.fixture()
def graph(tmp_path):
    torch.set_num_threads(1)
    models = tmp_path / "models"
    _save(models / "a.pt", 0)
    with InprocGraph(simulated=True) as g:
        node = g.add(SegmentationNode, parameter_overrides=[Parameter("model_path", value=str(models / "a.pt"))])
        peer = g.add(Peer)
        g.step(0.05)
        yield g, node, peer, models


def test_outputs_have_input_size_and_stamp_and_budget_sets_scale(graph):
    g, node, peer, _ = graph
    peer.send_image()
    g.step(0.05)
    assert len(peer.labels) == 1 and len(peer.overlays) == 1
    lab, ov = peer.labels[0], peer.overlays[0]
    assert (lab.height, lab.width, lab.encoding) == (45, 61, "mono8")
    assert (ov.height, ov.width, ov.encoding) == (45, 61, "rgb8")
    assert (lab.header.stamp.sec, lab.header.stamp.nanosec, lab.header.frame_id) == (7, 123, "cam")
    assert (ov.header.stamp.sec, ov.header.stamp.nanosec) == (7, 123)
    assert imgmsg_to_cv2(lab).max() <= 10
    assert node.last_settings.input_scale == 1.0
    full = node.acct.snapshot()
    peer.send_budget(0.3)                    # 0.5^2 = 0.25 <= 0.3 < 0.625^2
    g.step(0.05)
    peer.send_image(sec=8)
    g.step(0.05)
    assert node.last_settings.input_scale == 0.5 and len(peer.labels) == 2
    assert peer.labels[1].height == 45 and peer.labels[1].header.stamp.sec == 8
    assert node.macs[0.5] < 0.35 * node.macs[1.0]
    assert node.acct.snapshot().items_processed == full.items_processed + 1


def test_label_info_is_latched_for_late_joiners(graph):
    g, node, peer, _ = graph
    peer.late_info()
    g.step(0.05)
    assert len(peer.infos) == 1
    names = [c.class_name for c in peer.infos[0].class_map]
    assert names[0] == "Sky" and names[3] == "Road" and len(names) == 11


def test_model_update_hot_swaps_and_refuses_bad_files(graph, tmp_path):
    g, node, peer, models = graph
    old = node.model
    (models / "bad.pt").write_bytes(b"garbage")
    _save(models / "b.pt", 1)
    (models / "trunc.pt").write_bytes((models / "b.pt").read_bytes()[:200])
    _save(tmp_path / "outside.pt", 2)
    for version, path in ((1, "bad.pt"), (2, "trunc.pt"), (3, str(tmp_path / "outside.pt")), (4, "none.pt")):
        peer.updates.publish(ModelUpdate(consumer_node="/segmentation", model_path=path, version=version))
        g.step(0.05)
    assert node.model_updates.rejected == 4 and node.model is old
    peer.send_image()
    g.step(0.05)
    assert len(peer.labels) == 1  # the old model kept serving
    peer.updates.publish(ModelUpdate(consumer_node="/segmentation", model_path="b.pt", version=5))
    g.step(0.05)
    assert node.model is not old and node.model_updates.accepted == 1 and node.model_updates.version == 5


def test_bad_image_is_dropped_and_the_node_keeps_running(graph):
    g, node, peer, _ = graph
    peer.images.publish(Image(height=4, width=4, encoding="rgb8", step=12, data=b"\x00" * 5))
    g.step(0.05)
    peer.send_image()
    g.step(0.05)
    assert len(peer.labels) == 1


def test_lifecycle_configure_activate_deactivate_cleanup(tmp_path):
    """Issue 18: a managed node. autostart:=false leaves it unconfigured (no model); configure loads
    the model, activate starts the work, deactivate stops it, cleanup frees the model; a bad model
    fails configure (and is a startup error with autostart)."""
    from effdl_ros.errors import DataError
    from effdl_ros.runtime.lifecycle import ACTIVE, INACTIVE, UNCONFIGURED, TransitionCallbackReturn

    torch.set_num_threads(1)
    models = tmp_path / "models"
    _save(models / "a.pt", 0)
    with InprocGraph(simulated=True) as g:
        node = g.add(SegmentationNode, parameter_overrides=[
            Parameter("model_path", value=str(models / "a.pt")), Parameter("autostart", value=False)])
        peer = g.add(Peer)
        assert node.current_state == UNCONFIGURED and node.model is None
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS and node.model is not None
        peer.send_image()
        g.step(0.05)
        assert node.current_state == INACTIVE and peer.labels == [] and node.items == 0   # no work
        node.trigger_activate()
        peer.send_image()
        g.step(0.05)
        assert node.current_state == ACTIVE and len(peer.labels) == 1 and node.items == 1
        node.trigger_deactivate()
        peer.send_image()
        g.step(0.05)
        assert len(peer.labels) == 1 and node.items == 1                                 # stopped
        node.trigger_cleanup()
        assert node.current_state == UNCONFIGURED and node.model is None
        (models / "bad.pt").write_bytes(b"not a checkpoint")
        bad = g.add(SegmentationNode, node_name="bad", parameter_overrides=[
            Parameter("model_path", value=str(models / "bad.pt")), Parameter("autostart", value=False)])
        assert bad.trigger_configure() == TransitionCallbackReturn.FAILURE and bad.current_state == UNCONFIGURED
        with pytest.raises(DataError):
            g.add(SegmentationNode, node_name="bad2",
                  parameter_overrides=[Parameter("model_path", value=str(models / "bad.pt"))])


def test_the_energy_monitor_deactivates_and_reactivates_it(graph):
    """A zero budget with a 0 ms deadline (the monitor's deactivation on purpose) stops the work; the
    next real budget brings it back; a zero total alone (deadline inf) does not deactivate."""
    from effdl_ros.runtime.lifecycle import ACTIVE, INACTIVE

    g, node, peer, _ = graph

    def send(power, deadline):
        peer.budgets.publish(ResourceBudgetArray(budgets=[ResourceBudget(
            target_node="/segmentation", power_w=power, energy_per_item_j=0.0, latency_deadline_ms=deadline,
            compute_fraction=0.0)]))

    send(0.0, math.inf)
    g.step(1.1)
    assert node.current_state == ACTIVE
    send(0.0, 0.0)
    g.step(1.1)
    assert node.current_state == INACTIVE
    items = node.items
    peer.send_image()
    g.step(0.05)
    assert node.items == items
    send(0.5, math.inf)
    g.step(1.1)
    assert node.current_state == ACTIVE
    peer.send_image()
    g.step(0.05)
    assert node.items == items + 1


def _shipped_segmenters():
    from effdl_ros.resources import share_path

    return sorted(p.name for p in share_path("models").glob("*.pt")
                  if p.name.startswith(("madan_", "seg_")) and not p.name.endswith("_generators.pt"))


@pytest.mark.parametrize("name", _shipped_segmenters())
def test_the_node_serves_each_shipped_segmenter_at_two_scales(name):
    """Every segmentation checkpoint in models/ loads in the node and labels a frame at full and half scale."""
    torch.set_num_threads(1)
    with InprocGraph(simulated=True) as g:
        node = g.add(SegmentationNode, parameter_overrides=[Parameter("model_path", value=f"models/{name}")])
        peer = g.add(Peer)
        g.step(0.05)
        for k, (fraction, scale) in enumerate(((1.0, 1.0), (0.3, 0.5))):
            peer.send_budget(fraction)
            g.step(0.05)
            peer.send_image(h=90, w=120, sec=10 + k)
            g.step(0.05)
            assert node.last_settings.input_scale == scale and len(peer.labels) == k + 1
            assert (peer.labels[k].height, peer.labels[k].width) == (90, 120)
            assert imgmsg_to_cv2(peer.labels[k]).max() <= 10
