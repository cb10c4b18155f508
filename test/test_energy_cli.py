"""energy CLI: profile (counted MACs, modelled energy per profile), status view, bad arguments."""
import json
import math

import pytest

from effdl_ros.cli.main import main


def test_profile_writes_counted_macs_and_modelled_energy(tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["energy", "profile", "torch.nn:Identity", "--input", "1,4", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["macs"] == 0 and {r["profile"] for r in data["per_profile"]} >= {"x86_cpu", "jetson_orin"}
    assert all(r["source"] == "modelled" for r in data["per_profile"])
    assert main(["energy", "profile", "mobilenet_v3_small", "--input", "1,3,32,32", "--profiles", "jetson_orin",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["macs"] > 1e6 and data["per_profile"][0]["energy_j"] > 0


def test_profile_bad_arguments_are_one_sentence_errors(capsys):
    assert main(["energy", "profile", "no_such_net"]) == 2
    assert main(["energy", "profile", "torch.nn:Identity", "--input", "0,3"]) == 2
    assert main(["energy", "profile", "torch.nn:Identity", "--input", "1,4", "--profiles", "mars_rover"]) == 2
    err = capsys.readouterr().err
    assert "no_such_net" in err and "--input" in err and "mars_rover" in err and "Traceback" not in err


def test_status_view_collects_budgets_and_reports():
    from effdl_ros.cli.energy import StatusView
    from effdl_ros.nodes.energy_monitor import EnergyMonitorNode
    from effdl_ros.nodes.synthetic_load import SyntheticLoadNode
    from effdl_ros.runtime import Node, Parameter
    from effdl_ros.runtime.testing import InprocGraph

    with InprocGraph(simulated=True) as g:
        g.add(EnergyMonitorNode, parameter_overrides=[Parameter("total_power_w", value=4.0),
                                                      Parameter("meter", value="none")])
        g.add(SyntheticLoadNode, node_name="load")
        view = StatusView(g.add(lambda **kw: Node("status", **kw)))
        g.step(3.0)
        rows = view.rows()
        assert [r["node"] for r in rows] == ["/load"]
        assert rows[0]["budget_w"] == pytest.approx(4.0, rel=0.3) and rows[0]["source"] == "modelled"
        assert rows[0]["items"] > 0 and math.isfinite(rows[0]["power_w"])
        assert view.table("none").row_count == 1


def load_linear(path):
    """A checkpoint loader as capabilities ship them: (model, config)."""
    import torch

    model = torch.nn.Linear(8, 4)
    model.load_state_dict(torch.load(path, weights_only=True))
    return model, {"in": 8}


def test_profile_a_checkpoint_through_its_loader(tmp_path):
    import torch

    ckpt = tmp_path / "lin.pt"
    torch.save(torch.nn.Linear(8, 4).state_dict(), ckpt)
    out = tmp_path / "p.json"
    assert main(["energy", "profile", str(ckpt), "--loader", "test_energy_cli:load_linear", "--input", "2,8",
                 "--json", str(out)]) == 0
    assert json.loads(out.read_text())["macs"] == 2 * 8 * 4
    assert main(["energy", "profile", str(ckpt)]) == 2                     # no loader: one-sentence error
    assert main(["energy", "profile", str(tmp_path / "missing.pt"), "--loader", "x:y"]) == 2
