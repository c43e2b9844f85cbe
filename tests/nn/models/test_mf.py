import json

import pytest
import torch
import torch.nn.functional as F

from graphkit.nn.models import MF, Recommender


def small_graph():
    # 3 users, 4 items
    return torch.tensor([[0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2, 3]])


def test_lives_in_its_own_module_and_old_imports_still_work():
    from graphkit.nn.models.lightgcn import MF as OldMF
    from graphkit.nn.models.mf import MF as NewMF

    assert NewMF is MF and OldMF is MF and MF.__module__ == "graphkit.nn.models.mf"
    assert issubclass(MF, Recommender) and MF.trainable


def test_loss_equals_the_bpr_formula():
    torch.manual_seed(0)
    model = MF(3, 4, embedding_dim=5, reg_weight=0.3).set_graph(small_graph())
    users, pos, neg = torch.tensor([0, 2, 1]), torch.tensor([1, 3, 2]), torch.tensor([2, 1, 0])
    P, Q = model.user_embedding.weight, model.item_embedding.weight
    bpr = -F.logsigmoid((P[users] * Q[pos]).sum(-1) - (P[users] * Q[neg]).sum(-1)).mean()
    reg = (P[users].pow(2).sum() + Q[pos].pow(2).sum() + Q[neg].pow(2).sum()) / 6
    assert model.loss(users, pos, neg).item() == pytest.approx((bpr + 0.3 * reg).item(), rel=1e-6)


def test_model_args_state_dict_and_repr():
    model = MF(3, 4, embedding_dim=6, reg_weight=1e-3, init_std=0.2)
    args = json.loads(json.dumps(model.model_args))
    assert args == dict(num_users=3, num_items=4, embedding_dim=6, reg_weight=1e-3, init_std=0.2)
    clone = MF(**args)
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone.user_embedding.weight, model.user_embedding.weight)
    assert sorted(model.state_dict()) == ["item_embedding.weight", "user_embedding.weight"]  # model folders
    assert repr(model) == "MF(3, 4, embedding_dim=6)"
    with pytest.raises(ValueError, match="embedding_dim"):
        MF(3, 4, embedding_dim=0)
    with pytest.raises(ValueError, match="num_users"):
        MF(0, 4)


def test_training_pairs_follow_the_model_and_recommend_masks_them():
    torch.manual_seed(0)
    model = MF(3, 4, embedding_dim=4).set_graph(small_graph()).double()
    assert model.train_edge_index.dtype == torch.long
    assert model.recommend(torch.tensor([2]), k=1).tolist() == [[1]]  # the only unseen item of user 2
    items, scores = model.recommend([0, 1], k=2, return_scores=True)
    assert scores.dtype == torch.float64 and items.shape == (2, 2)
    with pytest.raises(RuntimeError, match="set_graph"):
        MF(3, 4).recommend(torch.tensor([0]), k=1)
    assert MF(3, 4).recommend(torch.tensor([0]), k=1, exclude_seen=False).shape == (1, 1)
