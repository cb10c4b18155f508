"""ddi: dual dynamic inference classifier that meets a hard per-item budget (issue 4).

Subscribes `image` (sensor_msgs/Image, sensor-data QoS: best effort, keep last 5) and publishes
`ddi/classification` (vision_msgs/Classification: top-k class labels with softmax scores, header copied
from the image). Each item's MAC ceiling comes from the node's current energy budget (BudgetClient on
`energy/budget`; effdl_ros.ddi.budget_map), so a new budget takes effect on the next item; an item
whose budget is below the cheapest exit still runs the cheapest exit (counted in `over_budget_items`,
logged and published on `/diagnostics` when the state changes): DDI never silently stops classifying.
Per-item executed MACs and latency go to the Accountant, which reports on `energy/reports`.
Weights hot-swap on an effdl_ros/ModelUpdate on `trainer/model_update` (reliable, transient-local)
addressed to this node; the file must lie inside `model_dir`; a bad file keeps the old model.

Parameters: model_path (default models/ddi_mnist5k.pt, relative to the package share folder),
model_dir ("" = the model's folder), top_k (3), default_compute_fraction (1.0, used while no fresh
budget), confidence (0 = off; else halt at an exit whose top softmax >= it), energy_profile (x86_cpu),
item_rate_hz (0 = unknown: power limits ignored), stale_after_s (3.0), device (cpu | cuda | cuda:N | auto;
docs/gpu.md: on a GPU each item's energy is measured with NVML), fp16 (false; CUDA autocast), autostart (true).

A lifecycle (managed) node (effdl_ros.nodekit.lifecycle): configure loads and times the model and
creates the publishers, the budget client and the model-update subscription; activate subscribes
`image`; deactivate unsubscribes it; cleanup frees the model. autostart (default) activates on start.
"""
from __future__ import annotations

from pathlib import Path

from effdl_ros.nodekit.budget import BudgetClient, node_clock_seconds
from effdl_ros.nodekit.entry import run
from effdl_ros.nodekit.lifecycle import AUTOSTART, ManagedModelNode
from effdl_ros.nodekit.parameters import (
    BUDGET_STALE_AFTER,
    DEVICE,
    ENERGY_ESTIMATE,
    ENERGY_PROFILE,
    FP16,
    HOTSWAP_MODEL_DIR,
    Param,
    declare,
    default_fraction,
)
from effdl_ros.resources import resolve_path
from effdl_ros.runtime.images import imgmsg_to_cv2
from effdl_ros.runtime.messages import Classification, DiagnosticArray, ObjectHypothesis
from effdl_ros.runtime.model_updates import ModelUpdateSubscriber
from effdl_ros.runtime.qos import qos_profile_sensor_data
from effdl_ros.runtime.safety import guarded

PARAMETERS = (
    Param("model_path", "models/ddi_mnist5k.pt", "DDI checkpoint (relative to the package share folder)",
          path="file"),
    HOTSWAP_MODEL_DIR,
    Param("top_k", 3, "classes per Classification", range=(1, 1000)),
    default_fraction(1.0),
    Param("confidence", 0.0, "halt at an exit whose top softmax >= this (0 = off)", range=(0.0, 1.0)),
    ENERGY_PROFILE,
    ENERGY_ESTIMATE,
    Param("item_rate_hz", 0.0, "expected items per second (0 = unknown: power limits ignored)",
          range=(0.0, 1e6)),
    BUDGET_STALE_AFTER,
    AUTOSTART,
    DEVICE,
    FP16,
)


class DdiNode(ManagedModelNode):
    def __init__(self, node_name: str = "ddi", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare(self, PARAMETERS)
        self.items = 0
        self.over_budget_items = 0          # items run at the cheapest exit although the budget was lower
        self.over_budget = False
        self.last = None                    # (DDIResult, ceiling) of the newest item
        self.engine = None
        self.autostart()

    def configure_work(self) -> None:
        """Check the parameters, load and time the model; outputs, budget client, model updates."""
        from effdl_ros.energy.accountant import Accountant
        from effdl_ros.energy.budget import Budget
        from effdl_ros.errors import ConfigError

        top_k = self.get_parameter("top_k").value
        fraction = float(self.get_parameter("default_compute_fraction").value)
        if top_k < 1:
            raise ConfigError(f"{self.get_fully_qualified_name()}: top_k must be >= 1, got {top_k}")
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"{self.get_fully_qualified_name()}: default_compute_fraction must lie in [0, 1]")
        model_path = resolve_path(self.get_parameter("model_path").value)
        model_dir = self.get_parameter("model_dir").value
        self.model_dir = resolve_path(model_dir) if model_dir else model_path.parent
        from effdl_ros.nodekit.device import node_device, node_meter

        self.device, self.fp16 = node_device(self)
        self.acct = Accountant(self.get_fully_qualified_name(), clock=node_clock_seconds(self),
                               meter=node_meter(self, self.device),
                               profile=self.get_parameter("energy_profile").value,
                               estimate=self.get_parameter("energy_estimate").value)
        self._install(model_path)          # a bad initial model is a startup error (DataError)
        self.budget = BudgetClient(self, self.acct, default=Budget(compute_fraction=fraction),
                                   stale_after_sec=float(self.get_parameter("stale_after_s").value))
        self._diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._pub = self.create_publisher(Classification, "ddi/classification", 10)
        self.model_updates = ModelUpdateSubscriber(self, self._install, self.model_dir)

    def activate_work(self) -> None:
        self.create_subscription(type(self)._image_type(), "image", guarded(self, self.on_image),
                                 qos_profile_sensor_data)

    def free_work(self) -> None:
        self.engine = None

    @staticmethod
    def _image_type():
        from effdl_ros.runtime.messages import Image

        return Image


    def _install(self, path: Path) -> None:
        """Load a checkpoint and build its engine; raises DataError (old model untouched) if bad."""
        import torch

        from effdl_ros.ddi.budget_map import calibrate
        from effdl_ros.ddi.checkpoint import load_checkpoint
        from effdl_ros.ddi.engine import DDIEngine

        model, meta = load_checkpoint(path, self.model_dir)
        for key in ("mean", "std", "classes"):
            if key not in meta:
                from effdl_ros.errors import DataError

                raise DataError(f"model file {path} lacks '{key}' in its metadata")
        from effdl_ros.device import move_model

        engine = move_model(DDIEngine(model), self.device)
        cfg = model.config
        probe = torch.zeros(1, cfg.in_channels, cfg.image_size, cfg.image_size, device=self.device)
        ceiling_model = calibrate(engine, probe, self.acct.profile,
                                  item_rate_hz=self.get_parameter("item_rate_hz").value, repeats=5, fp16=self.fp16)
        self.engine, self.meta, self.ceiling_model, self.model_path = engine, meta, ceiling_model, path
        self.get_logger().info(f"loaded {path.name}: {engine.full_macs:,} MACs static, exits at "
                               f"{engine.costs.cumulative_worst} MACs worst case")

    def _set_over_budget(self, over: bool, cheapest: float) -> None:
        """Count items run over budget; say so on a change, in the log and on /diagnostics."""
        from effdl_ros.runtime.messages import DiagnosticArray, DiagnosticStatus, Header, KeyValue

        if over:
            self.over_budget_items += 1
        if over == self.over_budget:
            return
        self.over_budget = over
        text = (f"budget below the cheapest exit ({cheapest:,.0f} MACs): running the cheapest exit, "
                "over budget" if over else "within budget")
        (self.get_logger().warning if over else self.get_logger().info)(text)
        status = DiagnosticStatus(level=DiagnosticStatus.WARN if over else DiagnosticStatus.OK,
                                  name=self.get_fully_qualified_name(), message=text, values=[
                                      KeyValue(key="over_budget_items", value=str(self.over_budget_items))])
        self._diag.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                           status=[status]))

    # ------------------------------------------------------------------------------------ callbacks

    def on_image(self, msg) -> None:
        import torch

        from effdl_ros.ddi.budget_map import settings_for_budget
        from effdl_ros.ddi.data import preprocess

        cfg = self.engine.config
        image = imgmsg_to_cv2(msg, "mono8" if cfg.in_channels == 1 else "rgb8")
        from effdl_ros.device import autocast, to_device

        x = to_device(preprocess(image, self.meta["mean"], self.meta["std"], cfg.image_size), self.device)
        settings, over = settings_for_budget(self.budget.current(), self.ceiling_model,
                                             confidence=float(self.get_parameter("confidence").value))
        ceiling = settings.mac_ceiling
        self._set_over_budget(over, ceiling)
        with self.acct.item() as item:
            with autocast(self.device, self.fp16):
                result = self.engine.run(x, settings)
            item.macs = result.macs
            item.compute_fraction = result.macs / self.engine.full_macs
        self.items += 1
        self.last = (result, ceiling)
        self.budget.set_knob("mac_ceiling", ceiling)
        self.budget.set_knob("exit", result.exit_index)
        probs = torch.softmax(result.logits.float(), 0).cpu()
        k = min(int(self.get_parameter("top_k").value), probs.numel())
        scores, idx = probs.topk(k)
        classes = self.meta["classes"]
        out = Classification(header=msg.header, results=[
            ObjectHypothesis(class_id=str(classes[int(i)]), score=float(s)) for s, i in zip(scores, idx)])
        self._pub.publish(out)


NODE_CLASS = DdiNode


def main(args=None) -> int:
    return run(DdiNode, args)


if __name__ == "__main__":
    main()
