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
        m.update_state(src, dst, t, torch.zeros(2, 3))
