"""Managed (lifecycle) nodes for the dds and inproc backends, with rclpy.lifecycle's names.

The ROS 2 node lifecycle (design.ros2.org/articles/node_lifecycle.html), as rclpy.lifecycle implements
it: primary states unconfigured -> inactive -> active, and finalized; transitions configure, cleanup,
activate, deactivate, shutdown, each running the node's on_<transition>(state) callback, which returns
TransitionCallbackReturn.SUCCESS (go on), FAILURE (stay where it was) or ERROR (or raises: on_error(),
then unconfigured if that succeeds, else finalized). A transition that the current state does not allow
raises LifecycleError naming the state and the allowed ones (rclpy raises its own error there).
Publishers made with create_lifecycle_publisher publish only while the node is active (rclpy's
LifecyclePublisher); LifecycleNode.on_activate / on_deactivate switch them, so an override calls super().

With enable_communication_interface (the default) the node offers rclpy's lifecycle services
(`~/change_state`, `~/get_state`, `~/get_available_states`, `~/get_available_transitions`) and
publishes `~/transition_event` (effdl_ros.runtime.local.lifecycle_service); on the dds backend they are
ROS 2 services on the wire, so `ros2 lifecycle set /tracker deactivate` reaches the node.
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any, Callable, Dict, List, NamedTuple, Tuple

from effdl_ros.runtime.local.node import Node


class LifecycleError(RuntimeError):
    """A transition the node's current state does not allow."""


class TransitionCallbackReturn(IntEnum):
    """lifecycle_msgs/Transition TRANSITION_CALLBACK_*."""

    SUCCESS = 97
    FAILURE = 98
    ERROR = 99


class State(NamedTuple):
    state_id: int
    label: str


UNCONFIGURED = State(1, "unconfigured")
INACTIVE = State(2, "inactive")
ACTIVE = State(3, "active")
FINALIZED = State(4, "finalized")

#: transition label -> {from state id: (callback name, state on success)}
_TRANSITIONS: Dict[str, Dict[int, Tuple[str, State]]] = {
    "configure": {1: ("on_configure", INACTIVE)},
    "cleanup": {2: ("on_cleanup", UNCONFIGURED)},
    "activate": {2: ("on_activate", ACTIVE)},
    "deactivate": {3: ("on_deactivate", INACTIVE)},
    "shutdown": {1: ("on_shutdown", FINALIZED), 2: ("on_shutdown", FINALIZED), 3: ("on_shutdown", FINALIZED)},
}


class LifecyclePublisher:
    """A publisher that drops messages unless activated (the node activates it on activate)."""

    def __init__(self, publisher: Any) -> None:
        self._publisher = publisher
        self._enabled = False
        self.dropped = 0

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self._enabled = True
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self._enabled = False
        return TransitionCallbackReturn.SUCCESS

    @property
    def is_activated(self) -> bool:
        return self._enabled

    def publish(self, msg: Any) -> None:
        if self._enabled:
            self._publisher.publish(msg)
        else:
            self.dropped += 1

    def __getattr__(self, name: str) -> Any:  # topic_name, get_subscription_count, ...
        return getattr(self._publisher, name)


class LifecycleNode(Node):
    """Node + lifecycle state machine; subclasses override on_configure ... on_error (rclpy's names)."""

    def __init__(self, node_name: str, *, enable_communication_interface: bool = True, **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        self._lc_state = UNCONFIGURED
        self._managed: List[LifecyclePublisher] = []
        self._on_transition: List[Callable[[State, State, str], None]] = []
        if enable_communication_interface:
            from effdl_ros.runtime.local.lifecycle_service import LifecycleService

            self._lifecycle_service = LifecycleService(self)

    # ------------------------------------------------------------------------------------ state
    @property
    def current_state(self) -> State:
        return self._lc_state

    def available_transitions(self) -> List[str]:
        return [label for label, table in _TRANSITIONS.items() if self._lc_state.state_id in table]

    def add_transition_listener(self, callback: Callable[[State, State, str], None]) -> None:
        """callback(old, new, transition) after every completed transition (diagnostics, tests)."""
        self._on_transition.append(callback)

    def create_lifecycle_publisher(self, msg_type: type, topic: str, qos_profile: Any, **kwargs) -> LifecyclePublisher:
        pub = LifecyclePublisher(self.create_publisher(msg_type, topic, qos_profile, **kwargs))
        if self._lc_state == ACTIVE:
            pub.on_activate(self._lc_state)
        self._managed.append(pub)
        return pub

    # ------------------------------------------------------------------------------------ triggers
    def trigger_configure(self) -> TransitionCallbackReturn:
        return self._trigger("configure")

    def trigger_cleanup(self) -> TransitionCallbackReturn:
        return self._trigger("cleanup")

    def trigger_activate(self) -> TransitionCallbackReturn:
        return self._trigger("activate")

    def trigger_deactivate(self) -> TransitionCallbackReturn:
        return self._trigger("deactivate")

    def trigger_shutdown(self) -> TransitionCallbackReturn:
        return self._trigger("shutdown")

    def _trigger(self, transition: str) -> TransitionCallbackReturn:
        table = _TRANSITIONS[transition]
        old = self._lc_state
        if old.state_id not in table:
            raise LifecycleError(f"{self.get_fully_qualified_name()}: cannot {transition} from state "
                                 f"'{old.label}'; allowed there: {self.available_transitions() or 'none'}")
        callback, target = table[old.state_id]
        try:
            result = getattr(self, callback)(old)
            result = TransitionCallbackReturn(result)
        except Exception as err:  # noqa: BLE001 - a raising callback is the ERROR outcome, as in rclpy
            self.get_logger().error(f"{transition} raised {type(err).__name__}: {err}")
            result = TransitionCallbackReturn.ERROR
        if result == TransitionCallbackReturn.SUCCESS:
            self._set_state(old, target, transition)
        elif result == TransitionCallbackReturn.ERROR:
            try:
                recovered = TransitionCallbackReturn(self.on_error(old)) == TransitionCallbackReturn.SUCCESS
            except Exception:  # noqa: BLE001
                recovered = False
            for pub in self._managed:
                pub.on_deactivate(old)
            self._set_state(old, UNCONFIGURED if recovered else FINALIZED, f"{transition} (error)")
        return result

    def _set_state(self, old: State, new: State, transition: str) -> None:
        self._lc_state = new
        self.get_logger().info(f"lifecycle: {old.label} -> {new.label} ({transition})")
        for cb in self._on_transition:
            cb(old, new, transition)

    # ------------------------------------------------------------------------------------ callbacks
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        for pub in self._managed:
            pub.on_activate(state)
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        for pub in self._managed:
            pub.on_deactivate(state)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        return TransitionCallbackReturn.SUCCESS
