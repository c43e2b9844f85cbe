import json


def fake_run(seed, val_aps):
    res = {"epoch": int(max(range(len(val_aps)), key=val_aps.__getitem__)) + 1,
           "epochs_run": len(val_aps), "stopped": "early stopping",
           "epoch_times_s": [1.0] * len(val_aps), "val_ap": 0.9, "test_ap_hist": 0.7,
           "test_ap": 0.8, "test_roc_auc": 0.8, "test_mrr": 0.5,
           "trajectory": [{"epoch": i + 1, "train_loss": 0.5 - 0.01 * i, "val_ap": v}
                          for i, v in enumerate(val_aps)]}
    return {"run": seed, "seed": seed, "settings": {"epochs": 10}, "nat": res}


def test_defaults_and_epoch_cap_deviation(load_example):
    ex = load_example("nat")
    args = ex.parse_args(["--dataset", "Enron", "--setting", "inductive"])
    assert (args.epochs, args.patience, args.batch_size, args.lr) == (50, 3, 100, 1e-4)
    assert args.entry == "nat-enron-inductive" and args.methods == ["nat", "tgn"]


def test_record_states_epochs_reached_and_trajectory(load_example, tmp_path):
    ex = load_example("nat")
    args = ex.parse_args(["--dataset", "UCI", "--runs", "2", "--epochs", "10", "--out",
                          str(tmp_path)])
    records = [fake_run(0, [0.80, 0.85, 0.84]), fake_run(1, [0.70, 0.75, 0.78, 0.77])]
    vals = {"ap": [80.0, 81.0], "roc_auc": [80.0, 81.0], "mrr": [0.5, 0.5]}
    ex.write_record(args, "nat", vals, records, [], 12.0)
    rec = json.loads((tmp_path / "nat-uci-transductive.json").read_text())
    assert any("at most 10 epochs instead of 50" in d for d in rec["deviations"])
    extra = rec["extra"]
    assert extra["epochs_run"] == [3, 4] and extra["best_epochs"] == [2, 3]
    assert extra["stopped"] == ["early stopping"] * 2
    assert extra["val_ap_per_epoch"] == [[80.0, 85.0, 84.0], [70.0, 75.0, 78.0, 77.0]]
    assert extra["train_loss_per_epoch"][1] == [0.5, 0.49, 0.48, 0.47]
