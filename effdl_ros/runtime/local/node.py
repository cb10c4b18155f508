"""Node for the dds and inproc backends: rclpy.node.Node's API, as a strict subset.

Signatures follow rclpy (Jazzy) so that node code written against effdl_ros.runtime runs unchanged
on real rclpy, where effdl_ros.runtime re-exports rclpy.node.Node instead of this class.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from effdl_ros.runtime.local import names
from effdl_ros.runtime.local.clock import Clock
from effdl_ros.runtime.local.context import Context, get_default_context
from effdl_ros.runtime.local.entities import Publisher, Subscription, Timer
from effdl_ros.runtime.local.logging import Logger
from effdl_ros.runtime.local.parameters import (
    InvalidParameterTypeException,
    Parameter,
    ParameterAlreadyDeclaredException,
    ParameterDescriptor,
    ParameterNotDeclaredException,
    ParameterType,
    SetParametersResult,
    overrides_from_params_file,
)
from effdl_ros.runtime.local.qos import QoSProfile, as_profile


class InvalidParameterValueException(Exception):
    pass


class Node:
    def __init__(
        self,
        node_name: str,
        *,
        context: Optional[Context] = None,
        cli_args: Optional[List[str]] = None,
        namespace: Optional[str] = None,
        use_global_arguments: bool = True,
        enable_rosout: bool = True,
        start_parameter_services: bool = True,
        parameter_overrides: Optional[List[Parameter]] = None,
        allow_undeclared_parameters: bool = False,
        automatically_declare_parameters_from_overrides: bool = False,
        enable_logger_service: bool = False,
    ) -> None:
        self.context = context or get_default_context()
        if not self.context.ok():
            raise RuntimeError("call init() before creating a node (the context is not initialized)")
        from effdl_ros.runtime.local.arguments import parse

        local_args = parse(cli_args)
        arg_sets = [local_args] + ([self.context.arguments] if use_global_arguments else [])
        for args in arg_sets:
            node_name = args.node_name(node_name) or node_name
        for args in arg_sets:
            namespace = args.namespace(node_name) or namespace
        names.validate_node_name(node_name)
        self._name = node_name
        self._namespace = names.normalize_namespace(namespace)
        self._remaps: List[Tuple[Optional[str], str, str]] = [r for a in arg_sets for r in a.remaps]
        self._logger = Logger(self.get_fully_qualified_name().lstrip("/").replace("/", "."))
        for args in arg_sets:
            if args.log_level:
                import logging

                self._logger.set_level(getattr(logging, args.log_level.upper(), logging.INFO))
        self._clock = Clock(self.context.now_ns)
        self._parameters: Dict[str, Parameter] = {}
        self._descriptors: Dict[str, ParameterDescriptor] = {}
        self._on_set_callbacks: List[Callable[[List[Parameter]], SetParametersResult]] = []
        self._allow_undeclared = allow_undeclared_parameters
        self._overrides: Dict[str, Parameter] = {}
        fqn = self.get_fully_qualified_name()
        for args in reversed(arg_sets):  # global first, then the node's own cli_args
            for path in args.params_files:
                self._overrides.update({p.name: p for p in overrides_from_params_file(path, fqn)})
            self._overrides.update({k: Parameter(k, value=v) for k, v in args.parameters.items()})
        if parameter_overrides:
            self._overrides.update({p.name: p for p in parameter_overrides})
        self._publishers: List[Publisher] = []
        self._subscriptions: List[Subscription] = []
        self._timers: List[Timer] = []
        self._services: List[Any] = []
        self._clients: List[Any] = []
        self.declare_parameter("use_sim_time", False)
        if automatically_declare_parameters_from_overrides:
            for name, param in self._overrides.items():
                if name not in self._parameters:
                    self.declare_parameter(name, param.value)
        if start_parameter_services:
            from effdl_ros.runtime.local.parameter_service import ParameterService

            self._parameter_service = ParameterService(self)
        self.context.nodes.append(self)
        self.context.transport.node_created(self)

    # -- names, logging, time -------------------------------------------------------------
    def get_name(self) -> str:
        return self._name

    def get_namespace(self) -> str:
        return self._namespace

    def get_fully_qualified_name(self) -> str:
        return self._namespace.rstrip("/") + "/" + self._name

    def get_logger(self) -> Logger:
        return self._logger

    def get_clock(self) -> Clock:
        return self._clock

    def resolve_topic_name(self, topic: str, *, only_expand: bool = False) -> str:
        if only_expand:
            return names.expand_topic_name(topic, self._name, self._namespace)
        return names.resolve(topic, self._name, self._namespace, self._remaps)

    # -- parameters ----------------------------------------------------------------------
    def declare_parameter(self, name: str, value: Any = None,
                          descriptor: Optional[ParameterDescriptor] = None,
                          ignore_override: bool = False) -> Parameter:
        return self.declare_parameters("", [(name, value, descriptor or ParameterDescriptor())],
                                       ignore_override)[0]

    def declare_parameters(self, namespace: str,
                           parameters: List[Union[Tuple[str], Tuple[str, Any], Tuple[str, Any, ParameterDescriptor]]],
                           ignore_override: bool = False) -> List[Parameter]:
        declared = []
        for entry in parameters:
            name = entry[0] if not namespace else f"{namespace}.{entry[0]}"
            value = entry[1] if len(entry) > 1 else None
            descriptor = entry[2] if len(entry) > 2 and entry[2] is not None else ParameterDescriptor()
            if name in self._parameters:
                raise ParameterAlreadyDeclaredException(f"parameter {name!r} is already declared")
            if isinstance(value, ParameterType):
                declared_type, value = value, None
            else:
                declared_type = ParameterType.from_parameter_value(value)
            if not ignore_override and name in self._overrides:
                value = self._overrides[name].value
            param = Parameter(name, value=value)
            if (declared_type != ParameterType.NOT_SET and param.type_ != declared_type
                    and not descriptor.dynamic_typing):
                raise InvalidParameterTypeException(
                    f"parameter {name!r} of {self.get_fully_qualified_name()} is "
                    f"{declared_type.name}, but the override {value!r} is {param.type_.name}")
            result = self._run_on_set_callbacks([param])
            if not result.successful:
                raise InvalidParameterValueException(
                    f"parameter {name!r} of {self.get_fully_qualified_name()}: {result.reason}")
            descriptor.name = name
            descriptor.type = int(declared_type)
            self._descriptors[name] = descriptor
            self._parameters[name] = param
            declared.append(param)
        return declared

    def undeclare_parameter(self, name: str) -> None:
        if name not in self._parameters:
            raise ParameterNotDeclaredException(name)
        del self._parameters[name]
        self._descriptors.pop(name, None)

    def has_parameter(self, name: str) -> bool:
        return name in self._parameters

    def get_parameter(self, name: str) -> Parameter:
        if name in self._parameters:
            return self._parameters[name]
        if self._allow_undeclared:
            return Parameter(name, ParameterType.NOT_SET, None)
        raise ParameterNotDeclaredException(f"parameter {name!r} is not declared")

    def get_parameter_or(self, name: str, alternative_value: Optional[Parameter] = None) -> Parameter:
        if name in self._parameters:
            return self._parameters[name]
        return alternative_value if alternative_value is not None else Parameter(name)

    def get_parameters(self, names_: List[str]) -> List[Parameter]:
        return [self.get_parameter(n) for n in names_]

    def get_parameters_by_prefix(self, prefix: str) -> Dict[str, Parameter]:
        pre = prefix + "." if prefix else ""
        return {k[len(pre):]: v for k, v in self._parameters.items() if k.startswith(pre)}

    def describe_parameter(self, name: str) -> ParameterDescriptor:
        if name not in self._descriptors:
            raise ParameterNotDeclaredException(f"parameter {name!r} is not declared")
        return self._descriptors[name]

    def add_on_set_parameters_callback(
            self, callback: Callable[[List[Parameter]], SetParametersResult]) -> Callable:
        """The callback may refuse a change: SetParametersResult(successful=False, reason=...)."""
        self._on_set_callbacks.insert(0, callback)
        return callback

    def remove_on_set_parameters_callback(self, callback: Callable) -> None:
        self._on_set_callbacks.remove(callback)

    def _run_on_set_callbacks(self, parameters: List[Parameter]) -> SetParametersResult:
        for callback in self._on_set_callbacks:
            result = callback(parameters)
            if not result.successful:
                return result
        return SetParametersResult(successful=True)

    def set_parameters(self, parameter_list: Sequence[Parameter]) -> List[SetParametersResult]:
        """Set each parameter on its own; a refused one keeps its old value and says why."""
        return [self.set_parameters_atomically([p]) for p in parameter_list]

    def set_parameters_atomically(self, parameter_list: Sequence[Parameter]) -> SetParametersResult:
        for param in parameter_list:
            if param.name not in self._parameters and not self._allow_undeclared:
                raise ParameterNotDeclaredException(f"parameter {param.name!r} is not declared")
            descriptor = self._descriptors.get(param.name)
            if descriptor is not None:
                if descriptor.read_only:
                    return SetParametersResult(successful=False,
                                               reason=f"parameter {param.name!r} is read-only")
                expected = ParameterType(descriptor.type)
                if (expected != ParameterType.NOT_SET and param.type_ != expected
                        and not descriptor.dynamic_typing):
                    return SetParametersResult(
                        successful=False,
                        reason=f"wrong parameter type for {param.name!r}: expected "
                               f"{expected.name}, got {param.type_.name}")
        result = self._run_on_set_callbacks(list(parameter_list))
        if result.successful:
            for param in parameter_list:
                self._parameters[param.name] = param
        return result

    # -- communication ---------------------------------------------------------------------
    @property
    def publishers(self):
        yield from self._publishers

    @property
    def subscriptions(self):
        yield from self._subscriptions

    @property
    def timers(self):
        yield from self._timers

    def create_publisher(self, msg_type: type, topic: str, qos_profile: Union[QoSProfile, int], *,
                         callback_group=None, event_callbacks=None, qos_overriding_options=None,
                         publisher_class=None) -> Publisher:
        publisher = Publisher(self, msg_type, self.resolve_topic_name(topic), as_profile(qos_profile))
        self._publishers.append(publisher)
        return publisher

    def create_subscription(self, msg_type: type, topic: str, callback: Callable[[Any], None],
                            qos_profile: Union[QoSProfile, int], *, callback_group=None,
                            event_callbacks=None, qos_overriding_options=None,
                            raw: bool = False) -> Subscription:
        subscription = Subscription(self, msg_type, self.resolve_topic_name(topic), callback,
                                    as_profile(qos_profile), raw=raw)
        self._subscriptions.append(subscription)
        return subscription

    def create_timer(self, timer_period_sec: float, callback: Callable[[], None],
                     callback_group=None, clock: Optional[Clock] = None,
                     autostart: bool = True) -> Timer:
        timer = Timer(callback, int(timer_period_sec * 1e9), clock or self._clock, autostart,
                      node_name=self.get_fully_qualified_name())
        self._timers.append(timer)
        self.context.notify()
        return timer

    def create_service(self, srv_type: Any, srv_name: str, callback: Callable[[Any, Any], Any], *,
                       qos_profile: Optional[QoSProfile] = None, callback_group=None):
        """callback(request, response) -> response runs in the spinning thread (rclpy's contract)."""
        from effdl_ros.runtime.dds_services import SERVICES_QOS
        from effdl_ros.runtime.local.services import Service

        service = Service(self, srv_type, self.resolve_topic_name(srv_name), callback,
                          as_profile(qos_profile) if qos_profile is not None else SERVICES_QOS)
        self._services.append(service)
        return service

    def create_client(self, srv_type: Any, srv_name: str, *, qos_profile: Optional[QoSProfile] = None,
                      callback_group=None):
        from effdl_ros.runtime.dds_services import SERVICES_QOS
        from effdl_ros.runtime.local.services import Client

        client = Client(self, srv_type, self.resolve_topic_name(srv_name),
                        as_profile(qos_profile) if qos_profile is not None else SERVICES_QOS)
        self._clients.append(client)
        return client

    def destroy_service(self, service) -> bool:
        if service in self._services:
            self._services.remove(service)
            service.destroy()
            return True
        return False

    def destroy_client(self, client) -> bool:
        if client in self._clients:
            self._clients.remove(client)
            client.destroy()
            return True
        return False

    @property
    def services(self):
        yield from self._services

    @property
    def clients(self):
        yield from self._clients

    def destroy_publisher(self, publisher: Publisher) -> bool:
        if publisher in self._publishers:
            self._publishers.remove(publisher)
            publisher.destroy()
            return True
        return False

    def destroy_subscription(self, subscription: Subscription) -> bool:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
            subscription.destroy()
            return True
        return False

    def destroy_timer(self, timer: Timer) -> bool:
        if timer in self._timers:
            self._timers.remove(timer)
            timer.destroy()
            return True
        return False

    def count_publishers(self, topic_name: str) -> int:
        return self.context.transport.count_publishers(self.resolve_topic_name(topic_name))

    def count_subscribers(self, topic_name: str) -> int:
        return self.context.transport.count_subscribers(self.resolve_topic_name(topic_name))

    def destroy_node(self) -> None:
        for entity in self._publishers + self._subscriptions + self._timers + self._services + self._clients:
            entity.destroy()
        self._publishers, self._subscriptions, self._timers = [], [], []
        self._services, self._clients = [], []
        if self in self.context.nodes:
            self.context.nodes.remove(self)
            self.context.transport.node_destroyed(self)
