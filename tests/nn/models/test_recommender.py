import json

import numpy as np
import pandas as pd
import pytest
import torch

from graphkit.nn.models import (
    MF,
    LightGCN,
    Recommender,
    UltraGCN,
    create_recommender,
    get_recommender,
    list_recommenders,
    recommender_name,
    register_recommender,
)
from graphkit.nn.models import recommender as rec_module

U, I = 6, 40  # 40 items: wide enough for ties to span several columns


def graph():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(U, I, generator=g) < 0.25
    mask[torch.arange(U), torch.arange(U)] = True
    mask[5] = True
    mask[5, [7, 30]] = False  # user 5 has two unseen items only
    return mask.nonzero().t().contiguous(), mask


SMALL = {"lightgcn": dict(embedding_dim=4, num_layers=2), "mf": dict(embedding_dim=4),
         "ultragcn": dict(embedding_dim=4, num_negatives=3, num_neighbors=2)}


def make(name):
    torch.manual_seed(0)
    return create_recommender(name, U, I, **SMALL[name]).set_graph(graph()[0])


@pytest.fixture
def scratch_registry():
    saved = dict(rec_module._REGISTRY)
    yield
    rec_module._REGISTRY.clear()
    rec_module._REGISTRY.update(saved)


def test_registry_lists_and_builds_the_builtin_models():
    assert {"lightgcn", "mf", "ultragcn"} <= set(list_recommenders())
    assert list_recommenders() == sorted(list_recommenders())
    assert (get_recommender("lightgcn"), get_recommender("mf"), get_recommender("ultragcn")) == (LightGCN, MF, UltraGCN)
    model = create_recommender("lightgcn", 3, 4, embedding_dim=8, num_layers=1)
    assert type(model) is LightGCN and (model.num_users, model.embedding_dim, model.num_layers) == (3, 8, 1)
    assert recommender_name(model) == "lightgcn" and recommender_name(UltraGCN) == "ultragcn"
    with pytest.raises(ValueError, match=r"unknown recommender 'bpr'; known: \[.*'lightgcn'"):
        get_recommender("bpr")
    with pytest.raises(TypeError, match=r"create_recommender\('mf'\): unexpected arguments \['num_layers'\]"):
        create_recommender("mf", 3, 4, num_layers=2)
    with pytest.raises(TypeError, match="not a registered recommender"):
        recommender_name(torch.nn.Linear(2, 2))


def test_register_checks_names_and_classes(scratch_registry):
    with pytest.raises(ValueError, match="already registered"):
        register_recommender("mf")(type("OtherMF", (Recommender,), {}))
    with pytest.raises(TypeError, match="not a Recommender subclass"):
        register_recommender("linear")(torch.nn.Linear)
    with pytest.raises(ValueError, match="lower-case"):
        register_recommender("Pop")


@pytest.mark.parametrize("name", ["lightgcn", "mf", "ultragcn"])
def test_every_model_keeps_the_contract(name):
    model = make(name)
    edge_index, mask = graph()
    assert isinstance(model, Recommender) and model.trainable
    # constructor arguments under one name, JSON round trip
    args = json.loads(json.dumps(model.model_args))
    clone = type(model)(**args)
    clone.load_state_dict(model.state_dict())
    assert clone.model_args == model.model_args
    users = torch.tensor([5, 0, 3, 5, 1])
    assert torch.equal(clone.set_graph(edge_index).recommend(users, k=4), model.recommend(users, k=4))
    # blocks, seen masking, scores
    items, scores = model.recommend(users, k=4, return_scores=True)
    assert torch.equal(model.recommend(users, k=4, batch_size=2), items)
    expected = model.score_all(users).masked_fill(mask[users], float("-inf"))
    assert torch.allclose(scores, expected.gather(1, items))
    assert not mask[users.view(-1, 1), items[:, :2]].any()
    assert sorted(items[0, :2].tolist()) == [7, 30] and torch.isinf(scores[0, 2:]).all()  # user 5: 2 unseen items
    # ties: ascending item id, unseen items first
    model.scorer = lambda: (lambda block: torch.full((block.numel(), I), 0.25))
    top = model.recommend(users, k=3)
    for r, u in enumerate(users.tolist()):
        order = torch.cat([(~mask[u]).nonzero().flatten(), mask[u].nonzero().flatten()])
        assert top[r].tolist() == order[:3].tolist()
    del model.scorer
    assert model.recommend(torch.zeros(0, dtype=torch.long), k=3).shape == (0, 3)
    # bad input
    with pytest.raises(ValueError, match=rf"'users' contains id {U}; user ids must lie in \[0, {U}\)"):
        model.recommend(torch.tensor([0, U]), k=2)
    with pytest.raises(TypeError, match="integer ids"):
        model.recommend(torch.tensor([0.0, 1.7]), k=2)
    with pytest.raises(ValueError, match="k must be an int"):
        model.recommend(torch.tensor([0]), k=I + 1)
    neg = torch.tensor([[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=rf"'pos_items' contains id {I}\b"):
        model.loss(torch.tensor([0, 1]), torch.tensor([0, I]), neg)


@pytest.mark.parametrize("name", ["lightgcn", "mf", "ultragcn"])
def test_every_model_reads_every_form_of_the_interactions(name):
    edge_index, mask = graph()
    ref = make(name)
    for x in (mask.float().to_sparse_coo(), mask.double().to_sparse_csr(), mask.float().to_sparse_csc()):
        model = make(name)
        model.set_graph(x)
        assert torch.equal(model.recommend(torch.arange(U), k=5), ref.recommend(torch.arange(U), k=5))
    with pytest.raises(TypeError, match="integer"):
        make(name).set_graph(edge_index.float())
    with pytest.raises(ValueError, match=rf"contains id {I}; item ids must lie in"):
        make(name).set_graph(torch.tensor([[0], [I]]))
    with pytest.raises(ValueError, match=r"contains id -1; user ids must lie in"):
        make(name).set_graph(torch.tensor([[-1], [0]]))


def test_a_training_free_model_needs_only_score_all(scratch_registry):
    @register_recommender("popularity")
    class Popularity(Recommender):
        trainable = False

        def __init__(self, num_users: int, num_items: int, smoothing: float = 1.0):
            super().__init__(num_users, num_items)
            self.smoothing = smoothing
            self.register_buffer("counts", torch.zeros(num_items))
            self.train_edge_index = None

        def set_graph(self, edge_index):
            self.train_edge_index = rec_module.as_interaction_pairs(edge_index, self.num_users, self.num_items, "x")
            self.counts = torch.bincount(self.train_edge_index[1], minlength=self.num_items).float()
            self._seen = None
            return self

        def score_all(self, users):
            return (self.counts + self.smoothing).expand(users.numel(), -1).clone()

    assert "popularity" in list_recommenders()
    model = create_recommender("popularity", 3, 4, smoothing=0.5)
    assert model.model_args == dict(num_users=3, num_items=4, smoothing=0.5)
    model.set_graph(torch.tensor([[0, 1, 2, 2], [1, 1, 2, 0]]))
    assert model.recommend(torch.tensor([0, 2]), k=2).tolist() == [[0, 2], [1, 3]]  # 0 and 2 tie
    assert model(torch.tensor([0, 1]), torch.tensor([1, 3])).tolist() == [2.5, 0.5]
    with pytest.raises(NotImplementedError, match="trainable=False"):
        model.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))


def _write_old_model_dir(path, name, model_args, state, train):
    # the layout of model folders as written by earlier versions (format 1)
    path.mkdir()
    torch.save(state, path / "model.pt")
    torch.save({"train": train}, path / "interactions.pt")
    pd.DataFrame({"index": np.arange(U), "id": [f"u{i}" for i in range(U)]}).to_csv(path / "users.csv", index=False)
    pd.DataFrame({"index": np.arange(I), "id": [f"i{i}" for i in range(I)]}).to_csv(path / "items.csv", index=False)
    meta = {"format": 1, "graphkit_version": "0.1.0", "model": name, "model_args": model_args,
            "dataset": "events", "num_users": U, "num_items": I, "best_epoch": 3}
    (path / "model.json").write_text(json.dumps(meta, indent=2))


def test_model_folders_written_before_still_load(tmp_path):
    from graphkit.rec.io import load_model_dir, model_registry

    assert {"lightgcn": LightGCN, "mf": MF, "ultragcn": UltraGCN}.items() <= model_registry().items()
    edge_index, mask = graph()
    g = torch.Generator().manual_seed(1)
    old = {
        "lightgcn": (dict(num_users=U, num_items=I, embedding_dim=4, num_layers=2, reg_weight=1e-4,
                          init_std=0.1, reorder_nodes=True),
                     {"embedding.weight": torch.randn(U + I, 4, generator=g)}),
        "mf": (dict(num_users=U, num_items=I, embedding_dim=4, reg_weight=1e-4, init_std=0.1),
               {"user_embedding.weight": torch.randn(U, 4, generator=g),
                "item_embedding.weight": torch.randn(I, 4, generator=g)}),
    }
    ultra = make("ultragcn")
    old["ultragcn"] = (dict(num_users=U, num_items=I, embedding_dim=4, w1=1e-07, w2=1.0, w3=1e-07, w4=1.0,
                            num_negatives=3, negative_weight=200.0, gamma=1e-4, lambda_=1e-3, num_neighbors=2,
                            init_std=1e-3, sift_positives=False),
                       {k: v.clone() for k, v in ultra.state_dict().items()})
    assert sorted(old["ultragcn"][1]) == sorted(["beta_user", "beta_item", "ii_neighbors", "ii_weights",
                                                 "train_ptr", "train_col", "user_embedding.weight",
                                                 "item_embedding.weight"])
    for name, (args, state) in old.items():
        _write_old_model_dir(tmp_path / name, name, args, state, edge_index)
        model, loaded, meta = load_model_dir(str(tmp_path / name))
        assert type(model) is get_recommender(name) and model.model_args == args and meta["best_epoch"] == 3
        for key, value in state.items():
            assert torch.equal(model.state_dict()[key], value), key
        top = model.recommend(torch.arange(U), k=2)
        assert not mask[torch.arange(U).view(-1, 1), top].any()


def test_recommend_blocks_follow_the_memory_budget():
    from graphkit.nn.models import LightGCN
    torch.manual_seed(0)
    model = LightGCN(30, 50, embedding_dim=4, num_layers=1)
    model.set_graph(torch.stack([torch.arange(30), torch.arange(30) % 50]))
    sizes = []
    inner = model.scorer

    def scorer():
        fn = inner()
        return lambda users: (sizes.append(users.numel()), fn(users))[1]
    model.scorer = scorer
    users = torch.arange(30)
    ref, ref_scores = model.recommend(users, k=5, return_scores=True)
    assert sizes == [30]
    sizes.clear()
    items, scores = model.recommend(users, k=5, return_scores=True, memory_budget=4 * 50 * 4)
    assert sizes == [4] * 7 + [2]
    assert torch.equal(items, ref) and torch.allclose(scores, ref_scores)
    sizes.clear()
    model.recommend(users, k=5, batch_size=None, memory_budget=4 * 50 * 9)
    assert max(sizes) == 9
    with pytest.raises(ValueError, match="smaller than one user's row"):
        model.recommend(users, k=5, memory_budget=199)


def test_recommend_of_embedding_models_is_the_list_full_ranking_scores():
    # with many items an embedding model ranks through DotProductScorer.topk, as full ranking
    # does: the same lists as scoring every item, masking the seen ones and sorting
    from graphkit.utils.ranking import DotProductScorer

    torch.manual_seed(3)
    num_users, num_items = 25, 9000
    model = MF(num_users, num_items, embedding_dim=8)
    train = torch.stack([torch.arange(200) % num_users, torch.randint(0, num_items, (200,))])
    model.set_graph(train)
    assert isinstance(model.scorer(), DotProductScorer) and model.scorer().ranks_without_scores(20)
    items, scores = model.recommend(torch.arange(num_users), k=20, return_scores=True)
    user_emb, item_emb = model.embeddings()
    full = (user_emb @ item_emb.t()).detach()
    full[train[0], train[1]] = float("-inf")
    ref = torch.sort(full, dim=1, descending=True, stable=True).indices[:, :20]
    assert torch.equal(items, ref)
    assert torch.allclose(scores, full.gather(1, ref), rtol=1e-5, atol=1e-6)
    assert not (train[0].unsqueeze(1) * num_items + train[1].unsqueeze(1) == (torch.arange(num_users).unsqueeze(1)
                * num_items + items).view(1, -1)).any()
