r"""Auto-GNN architecture search ("Auto-GNN: Neural Architecture Search of Graph Neural
Networks", Zhou, Song, Huang and Hu, 2019, https://arxiv.org/abs/1909.03184).

Not PyG's :class:`~torch_geometric.nn.conv.AGNNConv` (the attention-based GNN of
Thekumparampil et al., 2018): here "Auto-GNN" names the search method.

* :class:`SearchSpace` / :func:`default_search_space`: named choices per component class of a
  layer (operator, attention, heads, hidden, aggregation, activation, skip);
* :class:`AutoGNNConv`: the searchable attention layer; :class:`AutoGNNModel` /
  :func:`build_model`: a GNN from a JSON description;
* :class:`ConservativeController`: the RNN policies trained with REINFORCE;
* :func:`homogeneous` / :func:`inherit`: constrained parameter sharing;
* :class:`AutoGNN` and :class:`RandomSearch`: the searches, one budget interface.
"""
from graphkit.nas.controller import ConservativeController
from graphkit.nas.conv import ATTENTIONS, AutoGNNConv
from graphkit.nas.model import ARCH_FORMAT, AutoGNNModel, build_model
from graphkit.nas.search import AutoGNN, RandomSearch, save_result, search_data
from graphkit.nas.sharing import AncestorWeights, homogeneous, inherit
from graphkit.nas.space import REQUIRED_COMPONENTS, SearchSpace, default_search_space

__all__ = [
    "ATTENTIONS", "ARCH_FORMAT", "REQUIRED_COMPONENTS",
    "SearchSpace", "default_search_space",
    "AutoGNNConv", "AutoGNNModel", "build_model",
    "ConservativeController", "AncestorWeights", "homogeneous", "inherit",
    "AutoGNN", "RandomSearch", "search_data", "save_result",
]
