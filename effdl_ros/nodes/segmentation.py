"""segmentation: per-pixel CamVid classes from a segmenter (supervised or MADAN-adapted), under an energy budget (issue 6).

Subscribes `image` (sensor_msgs/Image, sensor-data QoS: best effort, keep last 5). Publishes, with the
input's header (stamp and frame_id) and size:
- `segmentation/labels`: sensor_msgs/Image mono8, one class id per pixel (0..10, CamVid order);
- `segmentation/overlay`: sensor_msgs/Image rgb8, the frame blended with the class colours (for RViz);
- `segmentation/label_info`: vision_msgs/LabelInfo, id -> class name, reliable + transient-local
  (a late subscriber still gets it), re-sent after each model swap.
QoS of the two image outputs: reliable, keep last 5 (RViz's default subscription matches).
The budget (BudgetClient on `energy/budget`) maps onto the input scale
(effdl_ros.segmentation.settings): compute_fraction f -> the largest scale s on the ladder with
s^2 <= f; a latency deadline uses the time per frame measured at load. Executed MACs per frame go to
the Accountant (reports on `energy/reports`). Weights hot-swap on an effdl_ros/ModelUpdate on
`trainer/model_update` addressed to this node; the file must lie inside `model_dir` and load with
torch.load(weights_only=True); a bad file is refused with one error and the old model keeps serving.

Parameters: model_path (models/seg_supervised.pt, relative to the package share folder), model_dir
("" = the model's folder), default_compute_fraction (1.0, used while no fresh budget), overlay_alpha
(0.5), publish_overlay (true), threads (0 = torch's default), energy_profile (x86_cpu), energy_estimate
(ops | cpu_time), stale_after_s (3.0), autostart (true), device (cpu | cuda | cuda:N | auto; on a GPU the
energy per frame is measured with NVML, docs/gpu.md), fp16 (false; CUDA autocast).

A lifecycle (managed) node (effdl_ros.runtime.lifecycle: rclpy.lifecycle under ROS 2): configure loads
and times the model and creates the publishers, the budget client and the model-update subscription;
activate subscribes `image`; deactivate unsubscribes it (no work, no compute); cleanup frees the model.
The energy monitor's deactivation (a zero budget with a 0 ms deadline) deactivates the node; its next
real budget re-activates it.
With autostart (the default) the node configures and activates itself on construction, so `effdl-ros
run`, the launch file, replay and the demo get an active node; autostart:=false leaves it unconfigured
for a lifecycle manager. A configure error at autostart is a startup error, as before.
"""
from __future__ import annotations

from pathlib import Path

from effdl_ros.nodekit.budget import BudgetClient, node_clock_seconds
from effdl_ros.nodekit.entry import run
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
from effdl_ros.runtime.images import cv2_to_imgmsg, imgmsg_to_cv2
from effdl_ros.runtime.lifecycle import LifecycleNode, TransitionCallbackReturn
from effdl_ros.runtime.messages import Header, Image, LabelInfo, VisionClass
from effdl_ros.runtime.model_updates import ModelUpdateSubscriber
from effdl_ros.runtime.qos import latched, qos_profile_sensor_data
from effdl_ros.runtime.safety import guarded
from effdl_ros.segmentation import DEFAULT_MODEL

PARAMETERS = (
    Param("model_path", DEFAULT_MODEL, "segmenter checkpoint (relative to the package share folder)",
          path="file"),
    HOTSWAP_MODEL_DIR,
    default_fraction(1.0),
    Param("overlay_alpha", 0.5, "weight of the class colours in segmentation/overlay", range=(0.0, 1.0)),
    Param("publish_overlay", True, "publish segmentation/overlay"),
    Param("threads", 0, "torch threads (0 = torch's default)", range=(0, 1024)),
    ENERGY_PROFILE,
    ENERGY_ESTIMATE,
    BUDGET_STALE_AFTER,
    Param("autostart", True, "configure and activate on construction (false: wait for a lifecycle manager)"),
    DEVICE,
    FP16,
)


class SegmentationNode(LifecycleNode):
    def __init__(self, node_name: str = "segmentation", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        declare(self, PARAMETERS)
        from effdl_ros.energy.accountant import Accountant
        from effdl_ros.errors import ConfigError

        name = self.get_fully_qualified_name()
        fraction = float(self.get_parameter("default_compute_fraction").value)
        if not 0.0 <= fraction <= 1.0:
            raise ConfigError(f"{name}: default_compute_fraction must lie in [0, 1], got {fraction}")
        alpha = float(self.get_parameter("overlay_alpha").value)
        if not 0.0 <= alpha <= 1.0:
            raise ConfigError(f"{name}: overlay_alpha must lie in [0, 1], got {alpha}")
        threads = int(self.get_parameter("threads").value)
        if threads > 0:
            import torch

            torch.set_num_threads(threads)
        from effdl_ros.nodekit.device import node_device, node_meter

        self.device, self.fp16 = node_device(self)
        self.acct = Accountant(name, clock=node_clock_seconds(self), meter=node_meter(self, self.device),
                               profile=self.get_parameter("energy_profile").value,
                               estimate=self.get_parameter("energy_estimate").value)
        self.items = 0
        self.last_settings = None
        self.model = None
        self._fraction = fraction
        self._image_sub = None
        self._configure_error = None
        self._off_by_monitor = False
        if self.get_parameter("autostart").value:
            self.trigger_configure()
            if self._configure_error is not None:
                raise self._configure_error  # a bad initial model is a startup error (DataError)
            self.trigger_activate()

    # ------------------------------------------------------------------------------------ lifecycle

    def on_configure(self, state) -> TransitionCallbackReturn:
        """Load and time the model; publishers, budget client, model updates (no work yet)."""
        from effdl_ros.energy.budget import Budget
        from effdl_ros.energy.dither import LevelDither
        from effdl_ros.errors import EffdlError
        from effdl_ros.segmentation.settings import SCALES

        self._configure_error = None
        model_path = resolve_path(self.get_parameter("model_path").value)
        model_dir = self.get_parameter("model_dir").value
        self.model_dir = resolve_path(model_dir) if model_dir else model_path.parent
        try:
            self._install(model_path)
        except EffdlError as err:
            self._configure_error = err
            self.get_logger().error(f"configure failed: {err}")
            return TransitionCallbackReturn.FAILURE
        self._dither = LevelDither([s * s for s in SCALES])  # frame-by-frame mix of two scales
        self.budget = BudgetClient(self, self.acct, default=Budget(compute_fraction=self._fraction),
                                   stale_after_sec=float(self.get_parameter("stale_after_s").value))
        self._labels_pub = self.create_publisher(Image, "segmentation/labels", 5)
        self._overlay_pub = self.create_publisher(Image, "segmentation/overlay", 5)
        self._info_pub = self.create_publisher(LabelInfo, "segmentation/label_info", latched(1))
        self._publish_label_info()
        self.model_updates = ModelUpdateSubscriber(self, self._install, self.model_dir,
                                                   on_installed=self._publish_label_info)
        self._follow_timer = self.create_timer(1.0, self._follow_monitor)
        return TransitionCallbackReturn.SUCCESS

    def _follow_monitor(self) -> None:
        """The energy monitor deactivates a node on purpose with a zero budget and a 0 ms deadline;
        deactivate on it, and re-activate (only if it was the monitor's doing) on the next real budget."""
        b = self.budget.current()
        if b.stale or b.source != "monitor":
            return
        off = b.latency_deadline_ms == 0.0 and b.power_w == 0.0
        if off and self._image_sub is not None:
            self.get_logger().warning("deactivated by the energy monitor: its budget cannot pay the cheapest scale")
            self.trigger_deactivate()
            self._off_by_monitor = True
        elif not off and self._image_sub is None and self._off_by_monitor:
            self.get_logger().info("re-activated: the energy monitor's budget pays a scale again")
            self._off_by_monitor = False
            self.trigger_activate()

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Subscribe the images: work starts."""
        self._image_sub = self.create_subscription(Image, "image", guarded(self, self.on_image),
                                                   qos_profile_sensor_data)
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Unsubscribe the images: no work, no compute (reports and budgets go on)."""
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Free the model and what configure made."""
        self.destroy_timer(self._follow_timer)
        self.budget.destroy()
        self.destroy_subscription(self.model_updates.subscription)
        for pub in (self._labels_pub, self._overlay_pub, self._info_pub):
            self.destroy_publisher(pub)
        self.model = None
        if self.device.type == "cuda":
            import torch

            torch.cuda.empty_cache()  # give the freed weights back to the GPU
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        return TransitionCallbackReturn.SUCCESS


    def _install(self, path: Path) -> None:
        """Load a checkpoint, count its MACs per scale and time it; DataError leaves the old model."""
        from effdl_ros.segmentation.inference import input_size
        from effdl_ros.segmentation.network import load_checkpoint
        from effdl_ros.segmentation.settings import calibrate

        model, config = load_checkpoint(path, model_dir=self.model_dir)
        calibration = calibrate(model, config, device=self.device, fp16=self.fp16)
        self.model, self.config, self.calibration, self.model_path = model, config, calibration, path
        self.macs, self.full_ms = calibration.macs, calibration.full_ms
        self.get_logger().info(f"loaded {path.name}: {self.macs[1.0]:,} MACs at {input_size(config)}, "
                               f"{self.full_ms:.1f} ms/frame measured at load")

    def _publish_label_info(self) -> None:
        classes = self.config.get("classes", [])
        self._info_pub.publish(LabelInfo(
            header=Header(stamp=self.get_clock().now().to_msg()),
            class_map=[VisionClass(class_id=i, class_name=str(c)) for i, c in enumerate(classes)], threshold=0.0))

    # ------------------------------------------------------------------------------------ callbacks

    def on_image(self, msg) -> None:
        from effdl_ros.data.camvid import PALETTE
        from effdl_ros.segmentation.inference import input_size, overlay, predict
        from effdl_ros.segmentation.settings import settings_for_budget

        rgb = imgmsg_to_cv2(msg, "rgb8")
        settings = settings_for_budget(self.budget.current(), self.calibration, dither=self._dither)
        with self.acct.item() as item:
            labels = predict(self.model, self.config, rgb, scale=settings.input_scale, device=self.device,
                             fp16=self.fp16)
            macs = self.macs.get(settings.input_scale)
            if macs is None:
                from effdl_ros.segmentation.network import count_macs

                macs = count_macs(self.model, input_size(self.config, settings.input_scale))
            item.macs = macs
            item.compute_fraction = macs / self.macs[1.0]
        self.items += 1
        self.last_settings = settings
        self.budget.set_knob("scale", settings.input_scale)
        self._labels_pub.publish(cv2_to_imgmsg(labels, "mono8", header=msg.header))
        if self.get_parameter("publish_overlay").value:
            alpha = float(self.get_parameter("overlay_alpha").value)
            self._overlay_pub.publish(cv2_to_imgmsg(overlay(rgb, labels, PALETTE, alpha), "rgb8", header=msg.header))


NODE_CLASS = SegmentationNode


def main(args=None) -> int:
    return run(SegmentationNode, args)


if __name__ == "__main__":
    main()
