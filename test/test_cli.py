"""The command line: help lists the commands; `run` starts and stops a graph; errors have no traceback."""
import subprocess
import sys

from effdl_ros.cli.main import build_parser, main


def test_help_lists_core_commands():
    text = build_parser().format_help()
    for command in ("demo", "run", "replay", "train", "bench", "eval"):
        assert command in text


def test_run_inproc_for_a_moment(tmp_path):
    config = tmp_path / "p.yaml"
    config.write_text("nodes:\n  - {executable: source, name: cam}\nparameters:\n"
                      "  /cam: {ros__parameters: {input: samples/vtest, rate_hz: 20.0}}\n")
    assert main(["run", str(config), "--backend", "inproc", "--duration", "0.5"]) == 0


def test_bad_config_is_one_sentence_no_traceback(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("nodes: 3\n")
    proc = subprocess.run([sys.executable, "-m", "effdl_ros.cli.main", "run", str(config),
                           "--backend", "inproc"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bad.yaml" in proc.stderr and "Traceback" not in proc.stderr
