"""README's parameter table is the one the nodes declare (effdl_ros.graph.param_table)."""
from pathlib import Path

from effdl_ros.graph import param_table
from effdl_ros.nodes.ddi import PARAMETERS as DDI_PARAMETERS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_table_equals_the_nodes_parameters():
    assert param_table.main(["--check", str(README)]) == 0, \
        "run `python -m effdl_ros.graph.param_table --write README.md`"


def test_every_declared_parameter_is_in_the_table():
    table = param_table.table()
    for p in DDI_PARAMETERS:
        assert f"| {p.name} |" in table and p.description in table


def test_check_fails_on_a_stale_table_and_write_fixes_it(tmp_path, capsys):
    stale = tmp_path / "README.md"
    stale.write_text(README.read_text().replace("| top_k | `3` |", "| top_k | `4` |"))
    assert param_table.main(["--check", str(stale)]) == 1
    assert "differs" in capsys.readouterr().err
    assert param_table.main(["--write", str(stale)]) == 0
    assert param_table.main(["--check", str(stale)]) == 0


def test_a_file_without_markers_is_one_clear_error(tmp_path, capsys):
    plain = tmp_path / "notes.md"
    plain.write_text("# notes\n")
    assert param_table.main(["--check", str(plain)]) == 2
    assert "no parameter table markers" in capsys.readouterr().err
