"""The trainer node (inproc): pairs images with labels, trains under its budget, publishes guarded
updates that the ddi node hot-swaps; and the OnlineTrainer's guard resets a bad candidate."""
import math

import numpy as np
import torch

from effdl_ros.ddi.checkpoint import load_checkpoint, save_checkpoint
from effdl_ros.ddi.model import DDIConfig, DDINet
from effdl_ros.runtime import Node, Parameter
from effdl_ros.runtime.images import cv2_to_imgmsg
from effdl_ros.runtime.messages import (
    Classification,
    Header,
    Image,
    ModelUpdate,
    ObjectHypothesis,
    ResourceBudget,
    ResourceBudgetArray,
)
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.testing import InprocGraph
from effdl_ros.training.online import DdiConsumer, OnlineSettings, OnlineTrainer

torch.set_num_threads(1)
META = {"mean": [0.5], "std": [0.25], "classes": [str(i) for i in range(10)], "dataset": "test"}


def _save(path, seed=0):
    torch.manual_seed(seed)
    m = DDINet(DDIConfig(widths=(4, 8, 8), blocks=(1, 1, 1), image_size=12, exit_channels=4))
    save_checkpoint(path, m, META)
    return path


def _image(label, seed):
    """A learnable toy: the class sets the brightness of a 12x12 image, plus noise."""
    rng = np.random.default_rng(seed)
    img = np.full((12, 12), 20 + 50 * (label % 4), np.float32) + rng.normal(0, 5, (12, 12))
    return img.clip(0, 255).astype(np.uint8)


class Peer(Node):
    def __init__(self, **kw):
        super().__init__("peer", **kw)
        self.updates = []
        self.images = self.create_publisher(Image, "image", qos_profile_sensor_data)
        self.labels = self.create_publisher(Classification, "trainer/labels", 10)
        self.preds = self.create_publisher(Classification, "ddi/classification", 10)
        self.budgets = self.create_publisher(ResourceBudgetArray, "energy/budget", latched(1))
        self.create_subscription(ModelUpdate, "trainer/model_update", self.updates.append, latched(1))

    def send(self, i, label, *, as_prediction=None):
        header = Header()
        header.stamp.sec, header.stamp.nanosec = 1000 + i, 0
        msg = cv2_to_imgmsg(_image(label, i), "mono8")
        msg.header = header
        cls = Classification(header=header, results=[ObjectHypothesis(class_id=str(label), score=(
            1.0 if as_prediction is None else as_prediction))])
        (self.labels if as_prediction is None else self.preds).publish(cls)  # label first, image later
        self.images.publish(msg)

    def budget(self, fraction):
        self.budgets.publish(ResourceBudgetArray(budgets=[ResourceBudget(
            target_node="/trainer", power_w=math.inf, energy_per_item_j=math.inf,
            latency_deadline_ms=math.inf, compute_fraction=fraction)]))


def _params(models, **extra):
    base = dict(model_path=str(models / "ddi.pt"), min_train_samples=8, batch_size=8, validate_every=4,
                steps_per_second=10.0, default_compute_fraction=1.0, holdout_every=4, lr=0.05)
    base.update(extra)
    return [Parameter(k, value=v) for k, v in base.items()]


def test_trainer_publishes_an_update_that_the_ddi_node_loads(tmp_path):
    from effdl_ros.nodes.ddi import DdiNode
    from effdl_ros.nodes.trainer import TrainerNode

    models = tmp_path / "models"
    _save(models / "ddi.pt")
    with InprocGraph(simulated=True) as g:
        ddi = g.add(DdiNode, parameter_overrides=[Parameter("model_path", value=str(models / "ddi.pt"))])
        trainer = g.add(TrainerNode, parameter_overrides=_params(models, min_holdout=4, default_compute_fraction=0.5))
        peer = g.add(Peer)
        g.step(0.05)
        for i in range(48):
            peer.send(i, i % 4)
            g.spin_until_idle()  # sensor-data QoS keeps 5: deliver before the next
        assert trainer.online.labelled_added == 48
        assert len(trainer.online.buffer.holdout) == 12
        g.step(2.0)
        assert trainer.steps_executed >= 8          # ~10 steps/s
        assert trainer.steps_dropped > 0            # SMD rate 0.5 at the default fraction 0.5 (no budget)
        assert trainer.updates_published >= 1       # learnable toy data: validation did not drop
        upd = peer.updates[-1]
        assert upd.consumer_node == "/ddi" and upd.version == trainer.updates_published
        load_checkpoint(upd.model_path, models)     # a complete, loadable file inside model_dir
        g.step(0.1)
        assert ddi.model_updates.version == upd.version and ddi.model_updates.accepted >= 1
        assert trainer.acct.snapshot().items_processed == trainer.steps_executed


def test_default_compute_fraction_takes_effect_while_no_budget_arrives(tmp_path):
    """No energy monitor: the knobs follow default_compute_fraction (0 pauses, 1 drops nothing)."""
    from effdl_ros.nodes.trainer import TrainerNode

    models = tmp_path / "models"
    _save(models / "ddi.pt")
    for fraction in (0.0, 1.0):
        with InprocGraph(simulated=True) as g:
            trainer = g.add(TrainerNode, parameter_overrides=_params(models, default_compute_fraction=fraction))
            peer = g.add(Peer)
            g.step(0.05)
            for i in range(12):
                peer.send(i, i % 4)
                g.spin_until_idle()
            g.step(1.0)
            assert trainer.budget.current().stale
            if fraction == 0.0:
                assert trainer.knobs.paused and trainer.steps_executed == 0
            else:
                assert trainer.knobs.smd_rate == 0.0 and trainer.knobs.slu_target == 1.0
                assert trainer.steps_executed > 0 and trainer.steps_dropped == 0


def test_pseudo_labels_need_the_threshold_and_a_zero_budget_pauses(tmp_path):
    from effdl_ros.nodes.trainer import TrainerNode

    models = tmp_path / "models"
    _save(models / "ddi.pt")
    with InprocGraph(simulated=True) as g:
        trainer = g.add(TrainerNode, parameter_overrides=_params(models, pseudo_threshold=0.9))
        peer = g.add(Peer)
        g.step(0.05)
        for i in range(30):
            peer.send(i, 1, as_prediction=0.5 if i < 10 else 0.95)  # confident ones become labels
            g.spin_until_idle()
        assert trainer.online.pseudo_added == 20 and trainer.online.labelled_added == 0
        peer.budget(0.0)
        g.step(1.0)
        assert trainer.knobs.paused and trainer.steps_executed == 0
        peer.budget(1.0)
        g.step(1.0)
        assert not trainer.knobs.paused and trainer.steps_executed > 0


def test_a_candidate_that_lowers_validation_is_refused_and_reset(tmp_path):
    models = tmp_path / "models"
    _save(models / "ddi.pt")
    online = OnlineTrainer(DdiConsumer(), models / "ddi.pt", models,
                           settings=OnlineSettings(min_holdout=4, holdout_every=2))
    for i in range(40):
        online.add_labelled(_image(2, i), 2)   # every sample is class 2
    with torch.no_grad():
        online.deployed.heads[-1].fc.bias[2] += 100.0   # deployed: always right
        online.model.load_state_dict(online.deployed.state_dict())
        online.model.heads[-1].fc.bias[9] += 1000.0     # candidate: always class 9, always wrong
    assert online.metric(online.deployed) == (1.0, 20)
    assert online.metric(online.model)[0] == 0.0
    decision, update = online.validate()
    assert not decision.accept and update is None
    assert list(models.glob("*_ft_*")) == []             # nothing written, nothing published
    assert online.metric(online.model)[0] == 1.0         # candidate reset to the deployed weights
    with torch.no_grad():
        online.model.heads[-1].fc.bias[2] += 1.0          # as good (still 100 %): accepted
    decision, update = online.validate()
    assert decision.accept and update.version == 1 and update.path.is_file()
