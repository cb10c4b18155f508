"""The ddi node on the inproc backend: classifies, follows its budget on the next item, hot-swaps."""
import math

import numpy as np
import pytest
import torch

from effdl_ros.ddi.checkpoint import save_checkpoint
from effdl_ros.ddi.model import DDIConfig, DDINet
from effdl_ros.nodes.ddi import DdiNode
from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.images import cv2_to_imgmsg
from effdl_ros.runtime.messages import Classification, Image, ModelUpdate, ResourceBudget, ResourceBudgetArray
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.testing import InprocGraph

META = {"mean": [0.5], "std": [0.25], "classes": [f"digit{i}" for i in range(10)], "dataset": "test"}


def _save(path, seed):
    torch.manual_seed(seed)
    m = DDINet(DDIConfig(widths=(8, 16, 16), blocks=(2, 2, 1), image_size=16, exit_channels=4))
    with torch.no_grad():
        for b in m.blocks():
            b.gate.bias.fill_(2.0)       # gates on: executed MACs follow the exits only
    save_checkpoint(path, m, META)
    return m


class Peer(Node):
    def __init__(self, **kw):
        super().__init__("peer", **kw)
        self.got = []
        self.create_subscription(Classification, "ddi/classification", self.got.append, 10)
        self.images = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.budgets = self.create_publisher(ResourceBudgetArray, "energy/budget", latched(1))
        self.updates = self.create_publisher(ModelUpdate, "trainer/model_update", latched(1))

    def send_image(self, seed=0):
        img = np.random.default_rng(seed).integers(0, 255, (40, 30), dtype=np.uint8)
        self.images.publish(cv2_to_imgmsg(img, "mono8"))

    def send_budget(self, fraction):
        self.budgets.publish(ResourceBudgetArray(budgets=[ResourceBudget(
            target_node="/ddi", power_w=math.inf, energy_per_item_j=math.inf, latency_deadline_ms=math.inf,
            compute_fraction=fraction)]))


@pytest.fixture()
def graph(tmp_path):
    models = tmp_path / "models"
    _save(models / "a.pt", 0)
    with InprocGraph(simulated=True) as g:
        node = g.add(DdiNode, parameter_overrides=[Parameter("model_path", value=str(models / "a.pt")),
                                                  Parameter("top_k", value=3)])
        peer = g.add(Peer)
        g.step(0.05)
        yield g, node, peer, models


def test_classifies_and_follows_a_budget_on_the_next_item(graph):
    g, node, peer, _ = graph
    peer.send_image()
    g.step(0.05)
    assert len(peer.got) == 1
    res = peer.got[0].results
    assert len(res) == 3 and res[0].class_id.startswith("digit") and res[0].score >= res[1].score
    full_result, ceiling = node.last
    assert ceiling == node.engine.max_macs and full_result.exit_index == 2
    table = node.engine.costs
    fraction = (table.cumulative_worst[0] + 1) / node.engine.max_macs
    peer.send_budget(fraction)
    g.step(0.05)
    peer.send_image(1)
    g.step(0.05)
    result, ceiling = node.last
    assert ceiling == pytest.approx(fraction * node.engine.max_macs)
    assert table.plan_exit(ceiling) == 0
    assert result.exit_index == 0 and result.macs <= ceiling < full_result.macs
    assert len(peer.got) == 2
    peer.send_budget(0.0)              # below the cheapest exit: the cheapest exit runs, over budget
    g.step(0.05)
    peer.send_image(2)
    g.step(0.05)
    assert node.over_budget and node.over_budget_items == 1 and len(peer.got) == 3
    assert node.last[0].macs == node.engine.min_macs and node.last[0].exit_index == 0
    snap = node.acct.snapshot()
    assert snap.items_processed == 3 and snap.source == "modelled"


def test_model_update_hot_swaps_and_refuses_bad_files(graph, tmp_path):
    g, node, peer, models = graph
    old = node.engine
    (models / "bad.pt").write_bytes(b"not a checkpoint at all")
    good = models / "b.pt"
    _save(good, 1)
    truncated = models / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    outside = tmp_path / "elsewhere.pt"
    _save(outside, 2)
    for version, path in ((1, "bad.pt"), (2, str(truncated)), (3, str(outside)), (4, "missing.pt")):
        peer.updates.publish(ModelUpdate(consumer_node="/ddi", model_path=path, version=version))
        g.step(0.05)
    assert node.model_updates.rejected == 4 and node.engine is old
    peer.updates.publish(ModelUpdate(consumer_node="/other", model_path="b.pt", version=5))
    g.step(0.05)
    assert node.engine is old
    peer.updates.publish(ModelUpdate(consumer_node="/ddi", model_path="b.pt", version=6))
    g.step(0.05)
    assert node.engine is not old and node.model_updates.accepted == 1 and node.model_updates.version == 6
    peer.send_image()
    g.step(0.05)
    assert len(peer.got) == 1


def test_bad_image_is_dropped_and_the_node_keeps_running(graph):
    g, node, peer, _ = graph
    peer.images.publish(Image(height=4, width=4, encoding="mono8", step=4, data=b"\x00" * 3))
    g.step(0.05)
    peer.send_image()
    g.step(0.05)
    assert len(peer.got) == 1


def test_energy_budget_bounds_the_modelled_energy_per_item(graph):
    g, node, peer, _ = graph
    jpm = node.ceiling_model.joules_per_mac
    limit = jpm * (node.engine.costs.cumulative_worst[0] + 10)
    peer.budgets.publish(ResourceBudgetArray(budgets=[ResourceBudget(
        target_node="/ddi", power_w=math.inf, energy_per_item_j=limit, latency_deadline_ms=math.inf,
        compute_fraction=1.0)]))
    g.step(0.05)
    before = node.acct.snapshot().energy_j
    peer.send_image(3)
    g.step(0.05)
    result, ceiling = node.last
    assert ceiling == pytest.approx(limit / jpm) and result.exit_index == 0
    spent = node.acct.snapshot().energy_j - before
    assert 0 < spent <= limit
