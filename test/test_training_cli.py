"""The training commands: a tiny real run writes a loadable checkpoint; bad arguments are one sentence."""
import json

import pytest
import torch

from effdl_ros.cli.main import main
from effdl_ros.training.checkpoint import load_checkpoint
from effdl_ros.training.resnet import GatedResNet, ResNetConfig


def test_train_e2train_tiny_run_writes_a_checkpoint(tmp_path, capsys):
    out, js = tmp_path / "m.pt", tmp_path / "m.json"
    code = main(["train", "e2train", "--data", "sklearn", "--model", "resnet8:4", "--epochs", "1",
                 "--slu-target", "0.5", "--out", str(out), "--json", str(js)])
    assert code == 0
    payload = load_checkpoint(out, model_dir=tmp_path)
    model = GatedResNet(ResNetConfig.from_dict(payload["config"]))
    model.load_state_dict(payload["state_dict"])
    assert model.num_gates == 2 and model(torch.zeros(1, 1, 16, 16)).shape == (1, 10)
    figures = json.loads(js.read_text())
    assert 0 < figures["executed_train_macs"] < figures["dense_train_macs"]
    assert "executed training MACs" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["prune", "eb", "--ratio", "1.5", "--out", "x.pt"], "--ratio"),
    (["prune", "eb", "--model", "resnet9", "--out", "x.pt"], "6n+2"),
    (["train", "e2train", "--smd", "1.0"], "--smd"),
    (["bench", "e2train", "--data", "sklearn", "--epochs", "mnist5k=3"], "sklearn"),
    (["bench", "eb", "--data", "nope", "--epochs", "nope=3"], "--data"),
])
def test_bad_arguments_are_one_sentence(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("effdl-ros: error:") and words in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_validation_split_is_carved_from_the_training_split_only():
    from effdl_ros.training.experiments import Data, validation_split

    x = torch.arange(50, dtype=torch.float32).view(50, 1, 1, 1)
    y = torch.arange(50)
    data = Data("toy", 1, x[:40], y[:40], x[40:], y[40:])
    val = validation_split(data)
    assert val.x_test.shape[0] == 8 and val.x_train.shape[0] == 32
    seen = set(val.y_train.tolist()) | set(val.y_test.tolist())
    assert seen == set(range(40))  # every training sample once; no test sample
    assert not set(val.y_train.tolist()) & set(val.y_test.tolist())
