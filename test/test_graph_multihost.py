"""One graph over three hosts (issue 22): network namespaces on a bridge, source on A, the ddi node
on B, the energy monitor on C, dds discovery by static peers. Root only (it makes namespaces); the
addresses (198.51.100.0/24) exist only inside them, and everything is removed, also on failure."""
import subprocess

import pytest

from effdl_ros.graph import multihost

REASON = multihost.unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"multi-host graph: {REASON}")


def _ours(tag):
    return [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
            if n.startswith(tag)]


def test_network_is_removed_on_failure_and_never_touches_the_machines_interfaces():
    net = multihost.Network()
    with pytest.raises(RuntimeError, match="boom"):
        with net:
            assert len(_ours(net.tag)) == 4  # three hosts and the bridge
            assert net.reachable("a", "c") and net.reachable("c", "b")
            host_addrs = subprocess.run(["ip", "-o", "addr"], capture_output=True, text=True).stdout
            assert multihost.SUBNET not in host_addrs
            raise RuntimeError("boom")
    assert _ours(net.tag) == []


def test_graph_across_three_hosts_matches_one_host_and_survives_a_restart_of_host_b():
    result = multihost.run_multihost(models=("ddi",), frames=4, rate_hz=4.0, width=160, log=lambda _: None)
    multi = result["multi_host"]
    assert multi["images_at_b"] >= 4 and multi["images_at_c"] >= 4        # images crossed A->B, A->C
    assert multi["outputs"]["ddi/classification"] >= 4                     # outputs crossed B->C
    assert multi["budget_targets"] == ["/ddi"] and multi["budget_taken"] == {"ddi": True}  # C->B
    match = result["match"]
    assert match["frames_compared"] >= 3 and match["frames_differing"] == 0, match
    restart = result["restart"]
    assert restart["processes_killed"] >= 2 and restart["outputs_while_b_down"] == 0
    assert restart["budget_taken_after_restart"] == {"ddi": True}
    assert restart["after"]["ddi/classification"] >= 1
    assert multi["latency"]["image A->C"]["n"] >= 4
    assert result["namespaces_left"] == [] and _ours(multihost.PREFIX) == []
