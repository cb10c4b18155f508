"""A lifecycle node's services and transition events, as rclpy.lifecycle offers them.

`~/change_state`, `~/get_state`, `~/get_available_states`, `~/get_available_transitions` (what
`ros2 lifecycle set/get/list` call) and the `~/transition_event` topic. Ids follow
lifecycle_msgs: transitions configure 1, cleanup 2, activate 3, deactivate 4, shutdown 5/6/7 (from
unconfigured/inactive/active); a transition's goal_state is its intermediate state (configuring 10
...), as rcl lists them.
"""
from __future__ import annotations

from typing import Dict, Tuple

from effdl_ros.runtime.ros_interfaces import message as _message, service_type as _service_type

#: lifecycle_msgs/Transition TRANSITION_CALLBACK_SUCCESS (lifecycle.TransitionCallbackReturn.SUCCESS; not
#: imported from there, which imports this module)
TRANSITION_CALLBACK_SUCCESS = 97


def message(typename: str) -> type:
    return _message(typename, local=True)  # our node: our classes, whichever backend is selected


def service_type(srvtype: str):
    return _service_type(srvtype, local=True)

#: (label, from state id) -> transition id
TRANSITION_IDS: Dict[Tuple[str, int], int] = {
    ("configure", 1): 1, ("cleanup", 2): 2, ("activate", 2): 3, ("deactivate", 3): 4,
    ("shutdown", 1): 5, ("shutdown", 2): 6, ("shutdown", 3): 7,
}
#: transition label -> its intermediate (transition) state
TRANSITION_STATES: Dict[str, Tuple[int, str]] = {
    "configure": (10, "configuring"), "cleanup": (11, "cleaningup"), "shutdown": (12, "shuttingdown"),
    "activate": (13, "activating"), "deactivate": (14, "deactivating"),
}
PRIMARY_STATES = ((0, "unknown"), (1, "unconfigured"), (2, "inactive"), (3, "active"), (4, "finalized"))


def resolve_transition(node, transition_id: int, label: str) -> str:
    """The label to trigger for a ChangeState request (an id wins over a label, as in rcl)."""
    state_id = node.current_state.state_id
    if transition_id:
        for (name, start), tid in TRANSITION_IDS.items():
            if tid == transition_id and start == state_id:
                return name
        return ""
    return label if (label, state_id) in TRANSITION_IDS else ""


class LifecycleService:
    def __init__(self, node) -> None:
        self._node = node
        node.create_service(service_type("lifecycle_msgs/srv/ChangeState"), "~/change_state",
                            self._change_state)
        node.create_service(service_type("lifecycle_msgs/srv/GetState"), "~/get_state", self._get_state)
        node.create_service(service_type("lifecycle_msgs/srv/GetAvailableStates"),
                            "~/get_available_states", self._get_available_states)
        node.create_service(service_type("lifecycle_msgs/srv/GetAvailableTransitions"),
                            "~/get_available_transitions", self._get_available_transitions)
        self._events = node.create_publisher(message("lifecycle_msgs/msg/TransitionEvent"),
                                             "~/transition_event", 10)
        node.add_transition_listener(self._publish_event)

    def _state(self, state_id: int, label: str):
        return message("lifecycle_msgs/msg/State")(id=state_id, label=label)

    def _change_state(self, request, response):
        node = self._node
        label = resolve_transition(node, int(request.transition.id), request.transition.label)
        if not label:
            node.get_logger().warning(
                f"change_state: transition id={request.transition.id} label={request.transition.label!r} "
                f"is not available in state '{node.current_state.label}'; available: "
                f"{node.available_transitions() or 'none'}")
            response.success = False
            return response
        response.success = int(node._trigger(label)) == TRANSITION_CALLBACK_SUCCESS
        return response

    def _get_state(self, request, response):
        state = self._node.current_state
        response.current_state = self._state(state.state_id, state.label)
        return response

    def _get_available_states(self, request, response):
        states = list(PRIMARY_STATES) + sorted(TRANSITION_STATES.values()) + [(15, "errorprocessing")]
        response.available_states = [self._state(i, name) for i, name in states]
        return response

    def _get_available_transitions(self, request, response):
        Transition = message("lifecycle_msgs/msg/Transition")
        Description = message("lifecycle_msgs/msg/TransitionDescription")
        state = self._node.current_state
        out = []
        for label in self._node.available_transitions():
            goal_id, goal_label = TRANSITION_STATES[label]
            out.append(Description(transition=Transition(id=TRANSITION_IDS[(label, state.state_id)], label=label),
                                   start_state=self._state(state.state_id, state.label),
                                   goal_state=self._state(goal_id, goal_label)))
        response.available_transitions = out
        return response

    def _publish_event(self, old, new, transition: str) -> None:
        label = transition.split(" ")[0]
        Transition = message("lifecycle_msgs/msg/Transition")
        event = message("lifecycle_msgs/msg/TransitionEvent")(
            timestamp=self._node.get_clock().now().nanoseconds,
            transition=Transition(id=TRANSITION_IDS.get((label, old.state_id), 0), label=label),
            start_state=self._state(old.state_id, old.label), goal_state=self._state(new.state_id, new.label))
        self._events.publish(event)
