"""`effdl-ros bench transport` runs end to end (short); no timing is asserted here."""
import json

import pytest

from effdl_ros.cli.main import main
from effdl_ros.errors import ConfigError


@pytest.mark.parametrize("backend", ["inproc", "dds"])
def test_bench_transport_writes_json(tmp_path, backend, capsys):
    if backend == "dds":
        pytest.importorskip("cyclonedds")
    out = tmp_path / "t.json"
    assert main(["bench", "transport", "--backend", backend, "--rates", "30", "--duration", "0.4",
                 "--qos", "reliable", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (row,) = data["results"][backend]
    assert row["rate_hz"] == 30.0 and row["sent"] >= 8
    assert row["received"] == row["sent"] and row["loss"] == 0.0 and row["in_order"]
    lat = row["latency_ms"]
    assert 0 < lat["p50"] <= lat["p99"] <= lat["max"]
    assert "p99 ms" in capsys.readouterr().out


def test_bench_transport_rejects_bad_rates():
    from effdl_ros.cli.transport import _rates

    assert _rates("30,max") == [30.0, None]
    with pytest.raises(ConfigError):
        _rates("fast")
    with pytest.raises(ConfigError):
        _rates("-5")
