"""The lifecycle every model node shares (ddi, tracker, trainer; segmentation has its own copy).

A ManagedModelNode splits its start-up into `configure_work()` (validate parameters, load the model,
create publishers, the budget client and model-update subscription) and `activate_work()` (create the
subscriptions that bring work in). What each creates is recorded, so deactivate destroys what activate
made (no work, no compute; reports and budgets go on) and cleanup destroys what configure made and
drops the model (`free_work()`). With the `autostart` parameter (default true) the node configures and
activates itself on construction, so `effdl-ros run`, the launch file, replay and the demo get an
active node; autostart:=false leaves it unconfigured for a lifecycle manager (`ros2 lifecycle set`).
A configure error at autostart is a startup error (the DataError/ConfigError itself).

The energy monitor deactivates a node on purpose: over the node's lifecycle service `change_state`
where it can reach one, and always by the signal on the budget topic (a zero budget with a 0 ms
deadline), which the node follows itself; it re-activates on the next real budget.
"""
from __future__ import annotations

from typing import Any, List, Optional

from effdl_ros.nodekit.parameters import Param
from effdl_ros.runtime.lifecycle import LifecycleNode, TransitionCallbackReturn

AUTOSTART = Param("autostart", True, "configure and activate on construction (false: wait for a lifecycle manager)")
FOLLOW_PERIOD_S = 1.0


def _entities(node) -> List[Any]:
    return list(node.publishers) + list(node.subscriptions) + list(node.timers)


class ManagedModelNode(LifecycleNode):
    """Subclasses implement configure_work(), activate_work() and may override free_work()."""

    budget: Any = None  # a BudgetClient, made in configure_work (followed for the monitor's signal)

    def __init__(self, node_name: str, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._configured: List[Any] = []
        self._activated: List[Any] = []
        self._configure_error: Optional[Exception] = None
        self._off_by_monitor = False
        self._follow_timer = None
        self._label = "unconfigured"  # own record: rclpy's LifecycleNode has no public state property

    # --------------------------------------------------------------------------------- subclass API
    def configure_work(self) -> None:
        raise NotImplementedError

    def activate_work(self) -> None:
        raise NotImplementedError

    def free_work(self) -> None:
        """Drop the model (cleanup); the default forgets nothing."""

    def autostart(self) -> None:
        if not self.get_parameter("autostart").value:
            return
        self.trigger_configure()
        if self._configure_error is not None:
            raise self._configure_error
        self.trigger_activate()

    @property
    def is_active(self) -> bool:
        return self._label == "active"

    @property
    def lifecycle_label(self) -> str:
        """unconfigured | inactive | active | finalized (after the last successful transition)."""
        return self._label

    # --------------------------------------------------------------------------------- transitions
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Load the model and make the node's outputs (no work yet)."""
        from effdl_ros.errors import EffdlError

        self._configure_error = None
        before = set(map(id, _entities(self)))
        try:
            self.configure_work()
        except EffdlError as err:
            self._configure_error = err
            self.get_logger().error(f"configure failed: {err}")
            self._destroy([e for e in _entities(self) if id(e) not in before])
            return TransitionCallbackReturn.FAILURE
        self._follow_timer = self.create_timer(FOLLOW_PERIOD_S, self._follow_monitor)
        self._configured = [e for e in _entities(self) if id(e) not in before]
        self._label = "inactive"
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Subscribe the inputs: work starts."""
        before = set(map(id, _entities(self)))
        self.activate_work()
        self._activated = [e for e in _entities(self) if id(e) not in before]
        self._off_by_monitor = False
        self._label = "active"
        return super().on_activate(state)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Destroy what activate made: no work, no compute (reports and budgets go on)."""
        self._destroy(self._activated)
        self._activated = []
        self._label = "inactive"
        return super().on_deactivate(state)

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Destroy what configure made and free the model."""
        self._destroy(self._configured)
        self._configured = []
        self._follow_timer = None
        if self.budget is not None:
            self.budget.destroy()
            if getattr(self.budget, "_diag", None) is not None:  # the knob diagnostics it made lazily
                self.destroy_publisher(self.budget._diag)
            self.budget = None
        self.free_work()
        self._label = "unconfigured"
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._destroy(self._activated)
        self._activated = []
        self._label = "finalized"
        return TransitionCallbackReturn.SUCCESS

    def _destroy(self, entities: List[Any]) -> None:
        for entity in entities:
            for destroy in (self.destroy_subscription, self.destroy_publisher, self.destroy_timer):
                if destroy(entity):
                    break

    # --------------------------------------------------------------------------------- the monitor
    def _follow_monitor(self) -> None:
        """Deactivate on the monitor's zero budget with a 0 ms deadline; re-activate (only if it was
        the monitor's doing) on its next real budget."""
        if self.budget is None:
            return
        b = self.budget.current()
        if b.stale or b.source != "monitor":
            return
        off = b.latency_deadline_ms == 0.0 and b.power_w == 0.0
        if off and self.is_active:
            self.get_logger().warning("deactivated by the energy monitor: its budget cannot pay the cheapest level")
            self.trigger_deactivate()
            self._off_by_monitor = True
        elif not off and self._off_by_monitor and self._label == "inactive":
            self.get_logger().info("re-activated: the energy monitor's budget pays a level again")
            self.trigger_activate()


class LifecycleSwitch:
    """The energy monitor's hand on the nodes' lifecycle: `<node>/change_state` (de)activate calls.

    A request goes out only when the node offers the service (a lifecycle node on the dds or inproc
    backend, or under rclpy); `outcome[node]` says what happened, for the diagnostics. Calls are
    asynchronous: the monitor's period never waits on a node.
    """

    def __init__(self, node) -> None:
        from effdl_ros.runtime.local.node import Node as LocalNode

        self._node = node
        self._local = isinstance(node, LocalNode)
        self._clients = {}
        self.outcome = {}

    def _client(self, target: str):
        if target not in self._clients:
            from effdl_ros.runtime.ros_interfaces import service_type

            self._clients[target] = self._node.create_client(
                service_type("lifecycle_msgs/srv/ChangeState", local=self._local),
                target.rstrip("/") + "/change_state")
        return self._clients[target]

    def set_active(self, target: str, active: bool) -> bool:
        """Ask `target` to activate/deactivate; False when it offers no lifecycle service."""
        from effdl_ros.runtime.ros_interfaces import message

        client = self._client(target)
        Transition = message("lifecycle_msgs/msg/Transition", local=self._local)
        label = "activate" if active else "deactivate"
        if not client.service_is_ready():
            self.outcome[target] = f"{label}: no lifecycle service, budget signal only"
            return False
        request = client.srv_type.Request(transition=Transition(label=label))
        self.outcome[target] = f"{label}: requested over {client.srv_name}"
        future = client.call_async(request)

        def done(f) -> None:
            ok = f.result() is not None and bool(f.result().success)
            self.outcome[target] = (f"{label}d over {client.srv_name}" if ok else
                                    f"{label}: refused by the node (already {label}d by the budget signal?)")

        future.add_done_callback(done)
        return True

    def destroy(self) -> None:
        for client in self._clients.values():
            self._node.destroy_client(client)
        self._clients.clear()
