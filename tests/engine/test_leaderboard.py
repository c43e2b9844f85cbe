import json

import pytest

from graphkit.cli import main
from graphkit.engine import write_result_record
from graphkit.engine.leaderboard import END, START, extract_block


def _record(out_dir, entry, method, dataset, metric, paper, tol, values, source="Table 2"):
    return write_result_record(
        entry=entry, method=method, dataset=dataset, task="t", primary_metric=metric,
        metrics={metric: {"paper": paper, "paper_source": source if paper is not None else "",
                          "tolerance": tol, "values": values}},
        runs=len(values), protocol="the paper's split", deviations=["fewer epochs on CPU"],
        wall_time_s=3.0, out_dir=out_dir, command="python examples/x.py")


@pytest.fixture
def lb(tmp_path):
    results = tmp_path / "leaderboards" / "results"
    readme = tmp_path / "leaderboards" / "README.md"
    _record(results, "dagnn-cora", "DAGNN", "Cora", "accuracy", 84.4, 1.0, [84.0, 84.2, 83.9])
    _record(results, "lightgcn-gowalla", "LightGCN", "Gowalla", "recall@20", 0.1830, 0.002,
            [0.1790, 0.1802])
    _record(results, "ultragcn-ml-1m", "UltraGCN", "ML-1M", "mae", 0.70, 0.01, [0.72, 0.73])
    _record(results, "nat-wiki", "NAT", "Wikipedia", "ap", None, None, [98.1, 98.3])
    _record(results, "latte-acm", "LATTE", "ACM", "macro_f1", 90.0, 0.5, [91.0, 91.2])
    return results, readme


def _run(*argv, results, readme):
    return main(["leaderboard", *argv, "--results", str(results), "--readme", str(readme)])


def test_table_rows_and_notes(lb, capsys):
    results, readme = lb
    assert _run("table", results=results, readme=readme) == 0
    text = readme.read_text()
    assert text.startswith("# Leaderboard: paper vs ours")
    block = extract_block(text)
    assert block.startswith(START) and block.endswith(END)
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 6  # header + 5 entries
    dagnn = next(r for r in rows if r.startswith("| DAGNN"))
    assert "84.40 (Table 2)" in dagnn and "84.03 ± 0.15 (3)" in dagnn
    assert "−0.37 / −0.4%" in dagnn and "✅ within tolerance (1.00)" in dagnn
    assert "[dagnn-cora](results/dagnn-cora.json)" in dagnn
    light = next(r for r in rows if r.startswith("| LightGCN"))
    assert "0.1830 (Table 2)" in light and "❌ outside tolerance (0.0020)" in light
    ultra = next(r for r in rows if r.startswith("| UltraGCN"))
    assert "+0.0250 / +3.6%" in ultra and "❌ outside tolerance" in ultra  # MAE: lower is better
    assert "no paper value" in next(r for r in rows if r.startswith("| NAT"))
    assert "✅ meets paper" in next(r for r in rows if r.startswith("| LATTE"))
    assert "5 entries, 5 metric rows, 2 outside tolerance." in block
    assert "#### dagnn-cora: DAGNN on Cora (t)" in block and "  - fewer epochs on CPU" in block
    # rows sorted by method name
    assert [r.split("|")[1].strip() for r in rows[1:]] == [
        "DAGNN", "LATTE", "LightGCN", "NAT", "UltraGCN"]
    # rebuilding keeps hand-written text around the block
    readme.write_text("# My intro\n\n" + block + "\n\nFooter\n")
    assert _run("table", results=results, readme=readme) == 0
    assert "up to date" in capsys.readouterr().out
    assert readme.read_text() == "# My intro\n\n" + block + "\n\nFooter\n"


def test_check_names_entries_below_tolerance(lb, capsys):
    results, readme = lb
    assert _run("check", results=results, readme=readme) == 1
    out = capsys.readouterr().out
    assert "FAIL lightgcn-gowalla (LightGCN on Gowalla): recall@20 mean 0.1796 < paper " \
           "0.1830 − tolerance 0.0020 = 0.1810" in out
    assert "FAIL ultragcn-ml-1m (UltraGCN on ML-1M): mae mean 0.7250 > paper 0.7000 + " \
           "tolerance 0.0100 = 0.7100" in out
    assert "2 entries below tolerance: lightgcn-gowalla, ultragcn-ml-1m" in out
    assert out.count("FAIL ") == 2
    # once the shortfalls are gone, check passes
    for p in (results / "lightgcn-gowalla.json", results / "ultragcn-ml-1m.json"):
        p.unlink()
    assert _run("check", results=results, readme=readme) == 0


def test_validate_detects_stale_readme_and_bad_records(lb, capsys):
    results, readme = lb
    assert _run("validate", results=results, readme=readme) == 1
    assert "does not exist" in capsys.readouterr().err
    assert _run("table", results=results, readme=readme) == 0
    assert _run("validate", results=results, readme=readme) == 0
    # a new record makes the README stale
    _record(results, "appnp-cora", "APPNP", "Cora", "accuracy", 83.3, 1.0, [83.0])
    capsys.readouterr()
    assert _run("validate", results=results, readme=readme) == 1
    err = capsys.readouterr().err
    assert "out of date with the 6 record(s)" in err and "+| APPNP | Cora" in err
    assert _run("table", results=results, readme=readme) == 0
    assert _run("validate", results=results, readme=readme) == 0
    # a hand edit inside the block is caught too
    readme.write_text(readme.read_text().replace("84.03", "85.03"))
    assert _run("validate", results=results, readme=readme) == 1
    assert _run("table", results=results, readme=readme) == 0
    # a malformed record fails validate (naming file and field) and table refuses to write
    bad = json.loads((results / "dagnn-cora.json").read_text())
    bad["metrics"]["accuracy"]["values"] = [84.0]
    (results / "dagnn-cora.json").write_text(json.dumps(bad))
    capsys.readouterr()
    assert _run("validate", results=results, readme=readme) == 1
    err = capsys.readouterr().err
    assert "dagnn-cora.json" in err and "metrics.accuracy.values: 1 values but runs = 3" in err
    before = readme.read_text()
    assert _run("table", results=results, readme=readme) == 1
    assert readme.read_text() == before
    assert _run("check", results=results, readme=readme) == 1


def test_empty_results_validate_green(tmp_path, capsys):
    results, readme = tmp_path / "results", tmp_path / "README.md"
    assert _run("table", results=results, readme=readme) == 0
    assert "_No result records yet._" in readme.read_text()
    assert _run("validate", results=results, readme=readme) == 0
    assert _run("check", results=results, readme=readme) == 0
    assert _run("list", results=results, readme=readme) == 0
    assert "no result records" in capsys.readouterr().out
    # markers missing: validate fails, table appends the block
    readme.write_text("# hand-written\n")
    assert _run("validate", results=results, readme=readme) == 1
    assert _run("table", results=results, readme=readme) == 0
    assert readme.read_text().startswith("# hand-written\n\n" + START)
    assert _run("validate", results=results, readme=readme) == 0


def test_list_and_help(lb, capsys):
    results, readme = lb
    assert _run("list", results=results, readme=readme) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[0].startswith("dagnn-cora\tDAGNN\tCora\taccuracy 84.03 ± 0.15")
    assert main(["leaderboard"]) == 2

