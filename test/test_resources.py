"""Paths from parameters resolve the same from any working directory."""
from effdl_ros.resources import resolve_path, share_path


def test_relative_model_path_is_absolute_from_the_repo_root_and_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(share_path())  # the checkout root, where models/ exists (ros2 run from there)
    here = resolve_path("models/ddi_mnist5k.pt")
    assert here.is_absolute() and here == share_path("models", "ddi_mnist5k.pt").resolve()
    assert resolve_path("models/ddi_mnist5k.pt").parent / "x.pt" == here.parent / "x.pt"
    monkeypatch.chdir(tmp_path)
    assert resolve_path("models/ddi_mnist5k.pt") == share_path("models", "ddi_mnist5k.pt")
