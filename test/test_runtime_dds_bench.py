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


def test_bench_transport_repeat_interleaves_and_summarises(tmp_path, capsys):
    out = tmp_path / "t.json"
    assert main(["bench", "transport", "--backend", "inproc", "--rates", "100", "--duration", "0.1",
                 "--repeat", "3", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    rows = data["results"]["inproc"]
    assert [r["repetition"] for r in rows] == [1, 2, 3] and data["repeat"] == 3
    (summary,) = data["medians"]["inproc"].values()
    p99s = sorted(r["latency_ms"]["p99"] for r in rows)
    assert summary["runs"] == 3 and summary["p99_median"] == p99s[1]
    assert summary["p99_worst"] == p99s[2]
    assert "median p99" in capsys.readouterr().out
    assert main(["bench", "transport", "--backend", "inproc", "--repeat", "0"]) == 2
    assert "--repeat" in capsys.readouterr().err
