import pytest
import torch

from graphkit.temporal.tgn import TGNLinkPredictor


def test_tgn_adapter_scores_and_updates():
    torch.manual_seed(0)
    m = TGNLinkPredictor(6, msg_dim=0, memory_dim=8, time_dim=4, embedding_dim=8, num_neighbors=3)
    m.reset_parameters()
    src, dst, t = torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([1., 2.])
    assert m(src, dst, t).shape == (2,)
    m.update_state(src, dst, t, torch.zeros(2, 0))
    assert m.num_events == 2
    big = torch.arange(1100) % 6
    m.update_state(big, (big + 1) % 6, torch.full((1100,), 3.0), torch.zeros(1100, 0))  # grows the store
    assert m.num_events == 1102 and m.ev_t.numel() >= 1102 and (m.ev_t[2:1102] == 3).all()
    assert torch.isfinite(m(src, dst, t + 4)).all()
    with pytest.raises(ValueError, match="msg must have width 0"):
        m.update_state(src, dst, t + 4, torch.zeros(2, 3))


def test_tgn_adapter_rejects_bad_events():
    """The baseline gets the same batch validation as NAT: no silent garbage from a NaN or
    negative time (rounded to an integer), an id beyond the node count, events out of time
    order, or a feature width that changes between batches."""
    m = TGNLinkPredictor(6, msg_dim=2, memory_dim=8, time_dim=4, embedding_dim=8, num_neighbors=3)
    src, dst = torch.tensor([0, 1]), torch.tensor([2, 3])
    with pytest.raises(ValueError, match=r"t\[1\] is not finite"):
        m.update_state(src, dst, torch.tensor([1., float("nan")]), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"t\[0\] = -1.0 is negative"):
        m(src, dst, torch.tensor([-1., 2.]))
    with pytest.raises(ValueError, match=r"dst\[1\] = 6 is outside \[0, 6\)"):
        m(src, torch.tensor([2, 6]), torch.tensor([1., 2.]))
    with pytest.raises(ValueError, match=r"out of time order: t\[1\] = 1.0 after t\[0\] = 2.0"):
        m.update_state(src, dst, torch.tensor([2., 1.]), torch.zeros(2, 2))
    m.update_state(src, dst, torch.tensor([1., 2.]), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"earlier than the latest event"):
        m(src, dst, torch.tensor([1., 3.]))
    with pytest.raises(ValueError, match="msg must have width 2"):
        m.update_state(src, dst, torch.tensor([3., 3.]), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="msg holds NaN"):
        m.update_state(src, dst, torch.tensor([3., 3.]), torch.full((2, 2), float("nan")))
    assert m.num_events == 2
    m.reset_state()
    m.update_state(src, dst, torch.tensor([0., 0.]), torch.zeros(2, 2))  # starts over
    assert m.num_events == 2 and m.last_time == 0.0
