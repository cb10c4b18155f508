"""trainer: fine-tunes a consumer's model on the robot with E2-Train, under its energy budget (issue 7).

Samples (both paired with `image` by header stamp, so every message keeps the camera's header):
- labelled: vision_msgs/Classification on `trainer/labels` (results[0].class_id = the true class);
- pseudo-labelled: the consumer's own output on `ddi/classification` where its top score >=
  `pseudo_threshold` (set `use_pseudo_labels` false to train on labels only).
They enter a bounded replay buffer (every `holdout_every`-th sample held out). A timer runs E2-Train
steps at the budget's rate (effdl_ros.training.knobs: SMD rate, SLU target, PSG, steps/s, pause at 0);
every `validate_every` executed steps the candidate is scored against the deployed weights on the same
held-out samples, and only if the metric did not drop is it written atomically into `out_dir` and an
effdl_ros/ModelUpdate sent on `trainer/model_update` (reliable, transient-local) to `consumer_node`,
which hot-swaps between two items. A refused candidate is reset to the deployed weights.

QoS: `image` sensor data (best effort, keep last 5); labels and consumer outputs reliable, depth 10.
Parameters: consumer_kind (ddi | resnet), consumer_node (/ddi), model_path (models/ddi_mnist5k.pt,
relative to the package share folder), model_dir ("" = the model's folder), out_dir ("" = model_dir;
must be inside the consumer's model_dir for it to accept), use_pseudo_labels (true), pseudo_threshold
(0.9), capacity (512), holdout_every (5), batch_size (16), lr (0.01), validate_every (20),
min_train_samples (32), default_compute_fraction (0.5), steps_per_second (2.0), max_steps_per_second
(10.0), min_holdout (10: no decision on fewer held-out samples), energy_profile (x86_cpu), stale_after_s (3.0), tick_hz (20.0),
device (cpu | cuda | cuda:N | auto: where the training steps run; on a GPU each step's energy is measured
with NVML, docs/gpu.md), autostart (true).

A lifecycle (managed) node (effdl_ros.nodekit.lifecycle): configure loads the deployed model into the
online trainer and creates `trainer/model_update` and the budget client; activate subscribes the
samples and starts the training timer; deactivate stops both (the buffer is kept); cleanup frees the
model and the buffer. autostart (default) activates on start.
"""
from __future__ import annotations

from effdl_ros.nodekit.budget import BudgetClient, node_clock_seconds
from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.lifecycle import AUTOSTART, ManagedModelNode
from effdl_ros.nodekit.parameters import BUDGET_STALE_AFTER, DEVICE, ENERGY_PROFILE, Param, declare, default_fraction
from effdl_ros.resources import resolve_path
from effdl_ros.runtime.images import imgmsg_to_cv2
from effdl_ros.runtime.messages import Classification, Header, Image, ModelUpdate
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.safety import guarded


def _stamp(msg) -> tuple:
    return (int(msg.header.stamp.sec), int(msg.header.stamp.nanosec))


PARAMETERS = (
    Param("consumer_kind", "ddi", "kind of the model fine-tuned (ddi or resnet)"),
    Param("consumer_node", "/ddi", "node that serves the model and receives the updates"),
    Param("model_path", "models/ddi_mnist5k.pt", "the deployed checkpoint (relative to the package share "
          "folder)", path="file"),
    Param("model_dir", "", "the consumer's model folder (\"\" = the model's folder)"),
    Param("out_dir", "", "where accepted models are written (\"\" = model_dir; must lie inside it)"),
    Param("use_pseudo_labels", True, "also train on the consumer's confident outputs"),
    Param("pseudo_threshold", 0.9, "top score a pseudo-label needs", range=(0.0, 1.0)),
    Param("capacity", 512, "replay buffer size", range=(1, 10**7)),
    Param("holdout_every", 5, "every n-th sample is held out for validation", range=(1, 10**6)),
    Param("batch_size", 16, "samples per step", range=(1, 10**5)),
    Param("lr", 0.01, "learning rate", range=(0.0, 10.0)),
    Param("validate_every", 20, "executed steps between validations", range=(1, 10**7)),
    Param("min_train_samples", 32, "no step before this many training samples", range=(1, 10**7)),
    Param("min_holdout", 10, "no decision on fewer held-out samples", range=(1, 10**7)),
    default_fraction(0.5),
    Param("steps_per_second", 2.0, "training steps per second at full budget", range=(0.0, 1e4)),
    Param("max_steps_per_second", 10.0, "upper bound of steps per second", range=(0.0, 1e4)),
    ENERGY_PROFILE,
    BUDGET_STALE_AFTER,
    Param("tick_hz", 20.0, "scheduler ticks per second", range=(1e-3, 1e4)),
    AUTOSTART,
    DEVICE,
)


class TrainerNode(ManagedModelNode):
    def __init__(self, node_name: str = "trainer", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare(self, PARAMETERS)
        self.steps_executed = 0
        self.steps_dropped = 0
        self.updates_published = 0
        self.updates_refused = 0
        self.online = None
        self.autostart()

    def configure_work(self) -> None:
        """Check the parameters, load the deployed model; `trainer/model_update`, budget client."""
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        from effdl_ros.energy.accountant import Accountant
        from effdl_ros.energy.budget import Budget
        from effdl_ros.errors import ConfigError
        from effdl_ros.training.knobs import TrainerKnobs
        from effdl_ros.training.online import CONSUMERS, OnlineSettings, OnlineTrainer
        from effdl_ros.training.replay_buffer import StampPairer

        kind = p("consumer_kind")
        if kind not in CONSUMERS:
            raise ConfigError(f"{self.get_fully_qualified_name()}: consumer_kind must be one of "
                              f"{sorted(CONSUMERS)}, got {kind!r}")
        fraction = float(p("default_compute_fraction"))
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"{self.get_fully_qualified_name()}: default_compute_fraction must lie in [0, 1]")
        if not float(p("tick_hz")) > 0:
            raise ConfigError(f"{self.get_fully_qualified_name()}: tick_hz must be > 0")
        model_path = resolve_path(p("model_path"))
        model_dir = resolve_path(p("model_dir")) if p("model_dir") else model_path.parent
        out_dir = resolve_path(p("out_dir")) if p("out_dir") else model_dir
        settings = OnlineSettings(batch_size=int(p("batch_size")), lr=float(p("lr")),
                                  validate_every=int(p("validate_every")),
                                  min_train_samples=int(p("min_train_samples")),
                                  min_holdout=int(p("min_holdout")),
                                  capacity=int(p("capacity")), holdout_every=int(p("holdout_every")),
                                  pseudo_threshold=float(p("pseudo_threshold")))
        from effdl_ros.nodekit.device import node_device, node_meter

        self.device, _ = node_device(self, fp16_parameter=False)
        self.defaults = TrainerKnobs(steps_per_second=float(p("steps_per_second")))
        self.online = OnlineTrainer(CONSUMERS[kind](), model_path, model_dir, settings=settings,
                                    knobs=self.defaults, out_dir=out_dir, device=self.device)
        self.acct = Accountant(self.get_fully_qualified_name(), clock=node_clock_seconds(self),
                               meter=node_meter(self, self.device), profile=p("energy_profile"))
        self.budget = BudgetClient(self, self.acct, default=Budget(compute_fraction=fraction),
                                   stale_after_sec=float(p("stale_after_s")))
        self._now = node_clock_seconds(self)
        self.labels = StampPairer()
        self.predictions = StampPairer()
        self.knobs = self.defaults
        self._calibration = None
        self._pub = self.create_publisher(ModelUpdate, "trainer/model_update", latched(1))
        self.get_logger().info(f"fine-tuning {model_path.name} for {p('consumer_node')}; updates go to "
                               f"{out_dir}")

    def activate_work(self) -> None:
        p = lambda name: self.get_parameter(name).value  # noqa: E731
        self.create_subscription(Image, "image", guarded(self, self.on_image), qos_profile_sensor_data)
        self.create_subscription(Classification, "trainer/labels", guarded(self, self.on_label), 10)
        if p("use_pseudo_labels"):
            self.create_subscription(Classification, "ddi/classification",
                                     guarded(self, self.on_prediction), 10)
        self.create_timer(1.0 / float(p("tick_hz")), self.on_tick)

    def free_work(self) -> None:
        self.online = None

    # ---------------------------------------------------------------------------------- samples
    def _decode(self, msg):
        return imgmsg_to_cv2(msg, "mono8" if msg.encoding in ("mono8", "8UC1") else "rgb8")

    def on_image(self, msg) -> None:
        image = self._decode(msg)
        stamp = _stamp(msg)
        pair = self.labels.add_image(stamp, image)
        if pair is not None:
            self._add_labelled(*pair)
        pair = self.predictions.add_image(stamp, image)
        if pair is not None:
            self._add_prediction(*pair)

    def _parse(self, msg):
        if not msg.results:
            return None
        top = max(msg.results, key=lambda r: r.score)
        idx = self.online.consumer.class_index(self.online.meta, str(top.class_id))
        return None if idx is None else (idx, float(top.score))

    def on_label(self, msg) -> None:
        parsed = self._parse(msg)
        if parsed is None:
            self.get_logger().warning("label without a known class dropped", throttle_duration_sec=5.0)
            return
        pair = self.labels.add_label(_stamp(msg), parsed[0], 1.0)
        if pair is not None:
            self._add_labelled(*pair)

    def on_prediction(self, msg) -> None:
        parsed = self._parse(msg)
        if parsed is None:
            return
        pair = self.predictions.add_label(_stamp(msg), *parsed)
        if pair is not None:
            self._add_prediction(*pair)

    def _add_labelled(self, image, label, _score) -> None:
        self.online.add_labelled(image, label)

    def _add_prediction(self, image, label, score) -> None:
        self.online.add_prediction(image, label, score)

    # ---------------------------------------------------------------------------------- training
    def _step_calibration(self):
        """The calibration knobs_from_budget needs, computed once on the first training batch."""
        if self._calibration is None:
            import torch

            from effdl_ros.training.knobs import calibrate_step

            x, _ = self.online.buffer.batch(self.online.settings.batch_size)
            from effdl_ros.device import to_device

            batch = x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
            self._calibration = calibrate_step(self.online.model, to_device(batch, self.device), self.acct.profile)
        return self._calibration

    def on_tick(self) -> None:
        from effdl_ros.training.knobs import knobs_from_budget

        if len(self.online.buffer.train) < self.online.settings.min_train_samples:
            return
        calibration = self._step_calibration()
        self.knobs = knobs_from_budget(self.budget.current(), self.defaults,
                                       joules_per_step=calibration.joules,
                                       max_steps_per_second=float(self.get_parameter("max_steps_per_second").value))
        self.online.set_knobs(self.knobs)
        if self.knobs.paused or not self.online.rate.due(self._now(), self.knobs.steps_per_second):
            return
        if self.online.trainer.drop():  # SMD: no work, nothing to account
            self.steps_dropped += 1
            return
        with self.acct.item() as item:
            res = self.online.train_step()
            item.macs = res.macs
            item.compute_fraction = min(1.0, res.macs / max(1, calibration.dense_macs))
        self.steps_executed += 1
        if self.online.validation_due():
            self._validate()

    def _validate(self) -> None:
        decision, update = self.online.validate()
        if update is None:
            self.updates_refused += 1
            self.get_logger().info(f"candidate refused: {decision.reason}")
            return
        msg = ModelUpdate(header=Header(stamp=self.get_clock().now().to_msg()),
                          consumer_node=str(self.get_parameter("consumer_node").value),
                          model_path=str(update.path), version=int(update.version),
                          metric_name="top1", validation_metric=float(update.metric))
        self._pub.publish(msg)
        self.updates_published += 1
        self.get_logger().info(f"model update v{update.version}: held-out top-1 {update.metric:.3f} "
                               f"(deployed {decision.deployed:.3f})")


NODE_CLASS = TrainerNode


def main(args=None) -> int:
    return run(TrainerNode, args)


if __name__ == "__main__":
    main()
