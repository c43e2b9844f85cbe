"""The text-format readers: correct on small hand-made files, clear errors on bad ones."""
import pytest

from graphkit.datasets import readers


def test_temporal_csv_remaps_ids_and_keeps_order(tmp_path):
    p = tmp_path / "ml_toy.csv"
    p.write_text(",u,i,ts,label,idx\n0,2,5,10.0,0,1\n1,5,7,10.0,1,2\n2,7,2,12.0,0,3\n")
    data, raw = readers.read_temporal_csv(p)
    assert raw.tolist() == [2, 5, 7]
    assert data.src.tolist() == [0, 1, 2] and data.dst.tolist() == [1, 2, 0]
    assert data.t.tolist() == [10, 10, 12] and data.msg.shape == (3, 0)
    assert data.y.tolist() == [0, 1, 0]


def test_temporal_csv_out_of_order_names_the_line(tmp_path):
    p = tmp_path / "ml_bad.csv"
    p.write_text(",u,i,ts,label,idx\n0,1,2,10.0,0,1\n1,2,3,20.0,0,2\n2,3,1,15.0,0,3\n")
    with pytest.raises(ValueError, match=r"ml_bad\.csv: timestamps must be non-decreasing, "
                                         r"but line 4 has t=15\.0 after t=20\.0"):
        readers.read_temporal_csv(p)


def test_temporal_csv_missing_column(tmp_path):
    p = tmp_path / "ml_cols.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['u', 'i', 'ts'\]"):
        readers.read_temporal_csv(p)


def test_temporal_events(tmp_path):
    p = tmp_path / "events.txt"
    p.write_text("1 10 0\n2 10 5\n1 11 5\n")
    data, raw = readers.read_temporal_events(p)
    assert raw.tolist() == [1, 2, 10, 11]
    assert data.src.tolist() == [0, 1, 0] and data.dst.tolist() == [2, 2, 3]
    p.write_text("1 10 5\n2 10 0\n")
    with pytest.raises(ValueError, match="line 2 has t=0 after t=5"):
        readers.read_temporal_events(p)


def test_snap_signed_sorts_by_time(tmp_path):
    p = tmp_path / "signed.csv"
    p.write_text("7,1,10,300.72\n3,7,-2,100\n1,3,5,200.5\n")
    data, raw = readers.read_snap_signed(p)
    assert raw.tolist() == [1, 3, 7]
    assert data.t.tolist() == [100, 200, 300]
    assert data.src.tolist() == [1, 0, 2] and data.msg.view(-1).tolist() == [-2.0, 5.0, 10.0]


def test_interaction_pairs(tmp_path):
    p = tmp_path / "pairs.txt"
    p.write_text("1\t3\t9\n2\t1\t4\n")
    u, i = readers.read_interaction_pairs(p, one_based=True)
    assert u.tolist() == [0, 1] and i.tolist() == [2, 0]
    p.write_text("1\t3\t9\n0\t1\t4\n")
    with pytest.raises(ValueError, match="row 2 has an id < 1 in a 1-based file"):
        readers.read_interaction_pairs(p, one_based=True)
    p.write_text("1 3\n2 x\n")
    with pytest.raises(ValueError, match=r"pairs\.txt, line 2: non-numeric value"):
        readers.read_interaction_pairs(p, one_based=False)
    p.write_text("1 3 4\n2 5\n")
    with pytest.raises(ValueError, match=r"line 2: expected 3 columns like the first line, got 2"):
        readers.read_interaction_pairs(p, one_based=False)
    p.write_text("1 3.5\n")
    with pytest.raises(ValueError, match="line 1: expected integers"):
        readers.read_interaction_pairs(p, one_based=False)


def test_kg_triples(tmp_path):
    for split, rows in {"train": ["a\tr\tb", "b\ts\tc"], "valid": ["a\ts\tc"], "test": ["c\tr\ta"]}.items():
        (tmp_path / f"{split}.txt").write_text("\n".join(rows) + "\n")
    kg = readers.read_kg_triples(tmp_path / "train.txt", tmp_path / "valid.txt", tmp_path / "test.txt", "toy")
    assert kg.entity_to_id == {"a": 0, "b": 1, "c": 2} and kg.relation_to_id == {"r": 0, "s": 1}
    assert kg.train.tolist() == [[0, 0, 1], [1, 1, 2]] and kg.test.tolist() == [[2, 0, 0]]
    assert repr(kg) == "KnowledgeGraph(toy: entities=3, relations=2, train=2, valid=1, test=1)"
    (tmp_path / "test.txt").write_text("c\tr\n")
    with pytest.raises(ValueError, match=r"test\.txt, line 1: expected 'head<TAB>relation<TAB>tail'"):
        readers.read_kg_triples(tmp_path / "train.txt", tmp_path / "valid.txt", tmp_path / "test.txt", "toy")


def _graph6(n, edges):
    """Encode a small graph (n < 63) in graph6, independently of the reader."""
    bits = []
    for j in range(1, n):
        for i in range(j):
            bits.append(1 if (i, j) in edges or (j, i) in edges else 0)
    bits += [0] * (-len(bits) % 6)
    body = [int("".join(map(str, bits[k:k + 6])), 2) + 63 for k in range(0, len(bits), 6)]
    return bytes([n + 63] + body)


def test_graph6_roundtrip(tmp_path):
    c5 = {(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)}
    k4 = {(i, j) for i in range(4) for j in range(i + 1, 4)}
    p = tmp_path / "g.g6"
    p.write_bytes(_graph6(5, c5) + b"\n" + _graph6(4, k4) + b"\n\n")
    g = readers.read_graph6(p)
    assert [x.num_nodes for x in g] == [5, 4]
    got = {tuple(e) for e in g[0].edge_index.t().tolist() if e[0] < e[1]}
    assert got == {tuple(sorted(e)) for e in c5}
    assert g[1].edge_index.size(1) == 12
    p.write_bytes(b"C~~~~~~~~~~~\n" + bytes([200, 201]) + b"\n")
    with pytest.raises(ValueError, match=r"g\.g6, line 2: not a graph6 string"):
        readers.read_graph6(p)


def test_graph6_matches_networkx(mirror):
    nx = pytest.importorskip("networkx")
    line = (mirror / "SR/raw/sr251256.g6").read_bytes().splitlines()[3]
    g = readers._graph6_decode(line, "sr", 4)
    ref = nx.from_graph6_bytes(line)
    ours = {tuple(sorted(e)) for e in g[1].T.tolist()}
    assert g[0] == ref.number_of_nodes() and ours == {tuple(sorted(e)) for e in ref.edges()}
