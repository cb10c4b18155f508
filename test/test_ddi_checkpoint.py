"""DDI checkpoints: round trip, and one clear DataError for every bad file."""
import pytest
import torch

from effdl_ros.ddi.checkpoint import load_checkpoint, save_checkpoint
from effdl_ros.ddi.engine import DDIEngine
from effdl_ros.ddi.model import DDIConfig, DDINet
from effdl_ros.errors import DataError


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(0)
    m = DDINet(DDIConfig(widths=(8, 8, 16), blocks=(1, 1, 1), image_size=12, in_channels=3, num_classes=11))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(tmp_path / "m.pt", m, {"mean": [0.1, 0.2, 0.3], "classes": list("abcdefghijk")})
    return m.eval(), path


def test_round_trip_gives_identical_outputs(saved):
    m, path = saved
    loaded, meta = load_checkpoint(path, path.parent)
    assert meta["mean"] == [0.1, 0.2, 0.3] and loaded.config == m.config
    x = torch.randn(3, 3, 12, 12)
    with torch.no_grad():
        for a, b in zip(m(x)["exits"], loaded(x)["exits"]):
            assert torch.equal(a, b)
    assert DDIEngine(loaded).costs == DDIEngine(m).costs
    assert not list(path.parent.glob(".*tmp")), "no temp file left behind"
    assert path.stat().st_mode & 0o777 == 0o644


def test_bad_files_raise_one_clear_error(saved, tmp_path):
    _, path = saved
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage" * 10)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    cases = {"trunc.pt": "truncated or corrupt", "junk.pt": "truncated or corrupt",
             "other.pt": "not a DDI checkpoint", "missing.pt": "does not exist"}
    for name, words in cases.items():
        with pytest.raises(DataError, match=words) as err:
            load_checkpoint(tmp_path / name, tmp_path)
        assert name in str(err.value) and "\n" not in str(err.value)


def test_paths_outside_the_model_dir_are_refused(saved, tmp_path):
    _, path = saved
    inner = tmp_path / "models"
    inner.mkdir()
    with pytest.raises(DataError, match="outside the model directory"):
        load_checkpoint(path, inner)
    with pytest.raises(DataError, match="outside the model directory"):
        load_checkpoint("../m.pt", inner)
    (inner / "link.pt").symlink_to(path)
    with pytest.raises(DataError, match="outside the model directory"):
        load_checkpoint(inner / "link.pt", inner)


def test_architecture_mismatch_is_a_data_error(saved, tmp_path):
    _, path = saved
    payload = torch.load(path, weights_only=True)
    payload["config"]["widths"] = [16, 16, 16]
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(DataError, match="does not match its architecture"):
        load_checkpoint(tmp_path / "mismatch.pt", tmp_path)
