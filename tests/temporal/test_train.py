import pytest
import torch
from torch_geometric.data import TemporalData

from graphkit.nn.models.nat import NAT
from graphkit.temporal import (
    EventStream,
    NegativeSampler,
    chronological_split,
    fit_link_predictor,
    link_metrics,
    score_events,
)


def stream_data(e=240, n=20, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TemporalData(src=torch.randint(0, n, (e,), generator=g), dst=torch.randint(0, n, (e,), generator=g),
                        t=torch.arange(e) * 3, msg=torch.zeros(e, 0))


def nat(n=20):
    torch.manual_seed(0)
    return NAT(n, self_dim=8, ngh_dim=3, pos_dim=4, time_dim=2, num_neighbors=(4, 2), dropout=0.0)


def pos_scores(data, batch=40):
    model = nat()
    st = EventStream(data)
    mask = torch.ones(len(st), dtype=torch.bool)
    return score_events(model, st, mask, batch, NegativeSampler(20, torch.Generator().manual_seed(0)))["pos"]


def test_scoring_never_sees_its_own_batch():
    data = stream_data()
    base = pos_scores(data)
    # change every event of batch 2 (positions 80..119) except event 100, and all later events
    changed = data.clone()
    keep = torch.arange(240)
    other = ((keep >= 80) & (keep != 100))
    changed.dst[other] = (changed.dst[other] + 7) % 20
    changed.src[other] = (changed.src[other] + 3) % 20
    out = pos_scores(changed)
    assert torch.equal(out[:80], base[:80])
    assert torch.equal(out[100], base[100])  # its own batch's events are invisible to it
    # an earlier batch's events do reach it
    earlier = data.clone()
    earlier.dst[:80] = (earlier.dst[:80] + 5) % 20
    assert not torch.equal(pos_scores(earlier)[100], base[100])


def test_state_after_scoring_holds_the_batch():
    data = stream_data(e=40)
    model = nat()
    st = EventStream(data)
    score_events(model, st, torch.ones(40, dtype=torch.bool), 40,
                 NegativeSampler(20, torch.Generator().manual_seed(0)))
    u, v = int(data.src[-1]), int(data.dst[-1])
    assert v in model.ncache.lookup(torch.tensor([u]))[0].tolist()[0]


def test_link_metrics_known_values():
    scores = {"pos": torch.tensor([3.0, 1.0]), "neg": torch.tensor([[0.0, 5.0], [2.0, 0.0]]),
              "index": torch.tensor([4, 5])}
    m = link_metrics(scores, num_random=1)
    assert m["roc_auc"] == pytest.approx(0.75)  # pairs: 3>0, 3>2, 1>0, 1<2
    assert m["mrr"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert m["roc_auc_hist"] == pytest.approx(0.5)
    sel = torch.zeros(6, dtype=torch.bool)
    sel[4] = True
    assert link_metrics(scores, 1, sel)["mrr"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no events"):
        link_metrics(scores, 1, torch.zeros(6, dtype=torch.bool))


def test_fit_is_deterministic_and_inductive_keys():
    data = stream_data(e=300)
    split = chronological_split(data, inductive=True, seed=1)
    a = fit_link_predictor(nat(), data, split, epochs=2, batch_size=50, seed=3, num_random=2,
                           num_historical=2)
    b = fit_link_predictor(nat(), data, split, epochs=2, batch_size=50, seed=3, num_random=2,
                           num_historical=2)
    assert a == b
    assert {"test_ap", "test_ind_ap", "test_ind_mrr", "val_roc_auc", "test_ap_hist"} <= set(a)


def test_empty_split_and_changing_feature_width():
    data = stream_data(e=100)
    split = chronological_split(data)
    split.val = torch.zeros_like(split.val)
    with pytest.raises(ValueError, match="the val split is empty"):
        fit_link_predictor(nat(), data, split, epochs=1)
    model = NAT(20, msg_dim=2, self_dim=8, num_neighbors=(4,))
    model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([1.]), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="msg_dim=2"):
        model.update_state(torch.tensor([0]), torch.tensor([1]), torch.tensor([2.]), torch.zeros(1, 4))


def test_unsorted_stream_rejected():
    data = stream_data(e=10)
    data.t = data.t.flip(0)
    with pytest.raises(ValueError, match="out of time order"):
        EventStream(data)


def test_scoring_an_empty_selection_is_an_error():
    st = EventStream(stream_data(e=20))
    empty = torch.zeros(len(st), dtype=torch.bool)
    with pytest.raises(ValueError, match="empty split"):
        score_events(nat(), st, empty, 5, NegativeSampler(20))


def test_event_stream_rejects_bad_events():
    data = stream_data(e=10)
    data.t = data.t.double()
    data.t[3] = float("nan")
    with pytest.raises(ValueError, match="event 3 has a non-finite timestamp"):
        EventStream(data)
    data = stream_data(e=10)
    with pytest.raises(ValueError, match="beyond the declared 5 nodes"):
        EventStream(data, num_nodes=5)


def test_final_evaluation_rebuilds_the_state_the_way_training_did():
    """With the parameters held fixed (lr 0), the fresh evaluation after training scores the
    validation events from the same state as the epoch's own validation pass: the replay of
    the training events follows the training-mode state update. (PyG's TGN memory applies
    messages lazily in training mode and at once in evaluation mode; an evaluation-mode replay
    gives another memory and other scores.)"""
    from graphkit.temporal.tgn import TGNLinkPredictor

    data = stream_data(e=400)
    split = chronological_split(data)
    torch.manual_seed(0)
    model = TGNLinkPredictor(20, memory_dim=8, time_dim=4, embedding_dim=8, num_neighbors=3)
    out = fit_link_predictor(model, data, split, epochs=1, lr=0.0, batch_size=40, seed=0,
                             num_random=1, num_historical=0, evaluate_from="replay")
    assert out["val_ap"] == pytest.approx(out["val_ap_selection"], abs=1e-12)
    assert out["evaluated_from"] == "replay"


@pytest.mark.parametrize("kind", ["tgn", "nat"])
def test_final_evaluation_starts_from_the_selected_epochs_own_state(kind):
    """While the parameters move (lr > 0), the final validation pass, with the negatives of
    selection, reproduces the selected epoch's validation AP exactly: it starts from that
    epoch's parameters and state, not from a state rebuilt with frozen parameters."""
    from graphkit.temporal.tgn import TGNLinkPredictor

    data = stream_data(e=400)
    split = chronological_split(data)
    torch.manual_seed(0)
    model = (TGNLinkPredictor(20, memory_dim=8, time_dim=4, embedding_dim=8, num_neighbors=3)
             if kind == "tgn" else nat())
    epochs = []
    out = fit_link_predictor(model, data, split, epochs=3, lr=3e-2, batch_size=40, seed=0, patience=None,
                             num_random=1, num_historical=0, callback=lambda m: epochs.append(m["val_ap"]))
    assert out["evaluated_from"] == "selected_state" and len(epochs) == 3
    assert out["val_ap"] == pytest.approx(out["val_ap_selection"], abs=1e-12)
    assert out["val_ap_selection"] == pytest.approx(max(epochs), abs=1e-12)


def test_unknown_final_evaluation_is_refused():
    data = stream_data(e=100)
    with pytest.raises(ValueError, match="evaluate_from"):
        fit_link_predictor(nat(), data, chronological_split(data), epochs=1, evaluate_from="fresh")
