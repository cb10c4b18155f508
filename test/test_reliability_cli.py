"""The commands: fuzz prints its table and JSON; bad arguments are one sentence, no traceback."""
import json
import subprocess
import sys

from effdl_ros.cli.main import main


def test_fuzz_command_writes_json_with_zero_crashes(tmp_path, capsys):
    out = tmp_path / "fuzz.json"
    assert main(["fuzz", "energy_monitor", "--count", "50", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    (node,) = data["nodes"]
    assert node["ok"] and node["crashes"] == 0
    assert [t["sent"] for t in node["topics"]] == [50]
    assert "/energy/reports" in capsys.readouterr().out


def test_unknown_node_and_bad_count_are_one_sentence(capsys):
    assert main(["fuzz", "ddi", "--count", "0"]) == 2
    assert "--count must be >= 1" in capsys.readouterr().err
    proc = subprocess.run([sys.executable, "-m", "effdl_ros.cli.main", "fuzz", "no_such_node"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown node 'no_such_node'" in proc.stderr and "Traceback" not in proc.stderr
