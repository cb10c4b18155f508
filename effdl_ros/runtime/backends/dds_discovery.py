"""ROS 2's discovery settings for the dds backend, mapped onto Cyclone DDS the way rmw_cyclonedds_cpp
maps them (reimplemented from its documented behaviour, not copied).

ROS_AUTOMATIC_DISCOVERY_RANGE (unset: SUBNET, ROS 2's default) and ROS_STATIC_PEERS (hosts separated
by ';') become a Cyclone XML fragment given to the domain when it is created:

| range          | multicast | peers                          | other                               |
| SUBNET         | on        | the static peers               |                                     |
| LOCALHOST      | off       | localhost + the static peers   | loopback interface only (see below) |
| OFF            | off       | none (static peers ignored)    | ParticipantIndex none, a Tag of     |
|                |           |                                | this process: nothing discovers it  |
| SYSTEM_DEFAULT | Cyclone's own configuration; static peers ignored                          |

The user's own CYCLONEDDS_URI is put after the fragment, so where both set something the user's
wins (Cyclone merges a comma-separated list of configurations, later over earlier).
One difference from rmw_cyclonedds: LOCALHOST without static peers and without CYCLONEDDS_URI also
pins Cyclone to the loopback interface (127.0.0.1), so not even unicast leaves it (the suite and CI
rely on this). ROS_LOCALHOST_ONLY=1 (deprecated in ROS 2) still means LOCALHOST, as in rcl.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from effdl_ros.errors import ConfigError

RANGES = ("SUBNET", "LOCALHOST", "OFF", "SYSTEM_DEFAULT")
DEFAULT_RANGE = "SUBNET"  # rcl's default where it was not built with another
MAX_AUTO_PARTICIPANT_INDEX = 64  # participants (processes) found per host by unicast discovery

#: the loopback-only configuration of LOCALHOST (no static peers, no CYCLONEDDS_URI)
LOOPBACK_CONFIG = (
    "<CycloneDDS><Domain><General><Interfaces><NetworkInterface address=\"127.0.0.1\"/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    f"<MaxAutoParticipantIndex>{MAX_AUTO_PARTICIPANT_INDEX}</MaxAutoParticipantIndex>"
    "<Peers><Peer address=\"localhost\"/></Peers></Discovery></Domain></CycloneDDS>")


@dataclass(frozen=True)
class DiscoveryOptions:
    range: str = DEFAULT_RANGE
    static_peers: Tuple[str, ...] = ()


def discovery_options(environ: Mapping[str, str]) -> DiscoveryOptions:
    """Read ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS and ROS_LOCALHOST_ONLY; a ConfigError
    names a range that ROS 2 does not know (rcl would fall back to LOCALHOST with a warning)."""
    text = environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper()
    if environ.get("ROS_LOCALHOST_ONLY", "").strip() == "1":
        text = "LOCALHOST"
    if text and text not in RANGES:
        raise ConfigError(f"ROS_AUTOMATIC_DISCOVERY_RANGE={environ['ROS_AUTOMATIC_DISCOVERY_RANGE']!r} "
                          f"is not one of {', '.join(RANGES)}")
    peers = tuple(p.strip() for p in environ.get("ROS_STATIC_PEERS", "").split(";") if p.strip())
    for peer in peers:
        if any(c in peer for c in "<>\"'& ,"):
            raise ConfigError(f"ROS_STATIC_PEERS: {peer!r} is not a host name or address")
    return DiscoveryOptions(range=text or DEFAULT_RANGE, static_peers=peers)


def discovery_fragment(options: DiscoveryOptions, *, user_config: bool = False,
                       pid: Optional[int] = None) -> Optional[str]:
    """The Cyclone XML for `options`, or None where Cyclone's own defaults apply."""
    scope, peers = options.range, options.static_peers
    if scope == "SYSTEM_DEFAULT" or (scope == "SUBNET" and not peers):
        return None
    if scope == "LOCALHOST" and not peers and not user_config:
        return LOOPBACK_CONFIG
    general = "" if scope == "SUBNET" else "<General><AllowMulticast>false</AllowMulticast></General>"
    if scope == "OFF":
        tag = f"ros_discovery_off_{os.getpid() if pid is None else pid}"
        discovery = f"<ParticipantIndex>none</ParticipantIndex><Tag>{tag}</Tag>"
    else:
        listed = (("localhost",) if scope == "LOCALHOST" else ()) + peers
        discovery = ("<ParticipantIndex>auto</ParticipantIndex>"
                     f"<MaxAutoParticipantIndex>{MAX_AUTO_PARTICIPANT_INDEX}</MaxAutoParticipantIndex>"
                     "<Peers>" + "".join(f"<Peer address=\"{p}\"/>" for p in listed) + "</Peers>")
    return f"<CycloneDDS><Domain>{general}<Discovery>{discovery}</Discovery></Domain></CycloneDDS>"


#: set beside CYCLONEDDS_URI when this package wrote it (for plain Cyclone participants in this
#: process and its children): a child then derives its own configuration instead of taking ours
#: for the user's
GENERATED_MARKER = "EFFDL_ROS_GENERATED_CYCLONEDDS_URI"


def user_config(environ: Mapping[str, str]) -> str:
    """The user's own CYCLONEDDS_URI ('' when unset or written by this package)."""
    uri = environ.get("CYCLONEDDS_URI", "").strip()
    return "" if uri and uri == environ.get(GENERATED_MARKER, "").strip() else uri


def discovery_config(environ: Mapping[str, str], *, pid: Optional[int] = None) -> Optional[str]:
    """The configuration string for the DDS domain: our fragment, then the user's CYCLONEDDS_URI
    (which wins where both set something); None to leave Cyclone to read its defaults."""
    user = user_config(environ)
    fragment = discovery_fragment(discovery_options(environ), user_config=bool(user), pid=pid)
    if fragment is None:
        return user or None
    return fragment + ("," + user if user else "")


_domains: Dict[int, list] = {}  # domain id -> [cyclonedds Domain or None, users]
_domains_lock = threading.Lock()


def export_config(environ, config: Optional[str]) -> None:
    """Without a user's CYCLONEDDS_URI, put ours there too, so that plain Cyclone participants of
    this process and of the node processes it starts keep to the same discovery settings."""
    if config is not None and not user_config(environ):
        environ["CYCLONEDDS_URI"] = environ[GENERATED_MARKER] = config


def acquire_domain(domain_id: int, config: Optional[str]) -> None:
    """Create the DDS domain with `config` once per process (as rmw_cyclonedds does): every context
    on the same domain id in this process shares it. None: Cyclone's implicit domain. A domain that
    plain Cyclone code of this process created first is used as it is."""
    from cyclonedds.core import DDSException

    with _domains_lock:
        entry = _domains.get(domain_id)
        if entry is None:
            domain = None
            if config is not None:
                from cyclonedds.domain import Domain

                try:
                    domain = Domain(domain_id, config)
                except DDSException as err:
                    if "PRECONDITION_NOT_MET" not in str(err):
                        raise ConfigError(f"cannot create DDS domain {domain_id} with the discovery "
                                          f"configuration ({err}); check CYCLONEDDS_URI") from None
            entry = _domains[domain_id] = [domain, 0]
        entry[1] += 1


def release_domain(domain_id: int) -> None:
    """Drop one user; the last one deletes the domain (its participants are gone by then)."""
    with _domains_lock:
        entry = _domains.get(domain_id)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _domains[domain_id]
        domain = entry[0]
    if domain is not None:
        delete_entity(domain)


def delete_entity(entity) -> None:
    """Delete a Cyclone entity now (cyclonedds-python only deletes on garbage collection)."""
    from cyclonedds.core import Entity

    ref = getattr(entity, "_ref", None)
    if ref is not None and Entity._entities.get(ref) is entity:
        del Entity._entities[ref]
        entity._delete(ref)
