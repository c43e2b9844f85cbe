"""The section writer shared by the benchmark scripts (benchmarks/_report.py)."""
import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _load():
    spec = importlib.util.spec_from_file_location(
        "bench_report", os.path.join(ROOT, "benchmarks", "_report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


report = _load()

PAGE = """# Speed

Intro.

<!-- bench_a:begin -->
## A

old table A
<!-- bench_a:end -->

<!-- bench_b:begin -->
## B

table B
<!-- bench_b:end -->
"""


def test_replaces_only_its_own_section(tmp_path):
    path = tmp_path / "speed.md"
    path.write_text(PAGE)
    report.write_section(str(path), "bench_a", "## A\n\nnew table A\n")
    text = path.read_text()
    assert text == PAGE.replace("old table A", "new table A")
    assert os.listdir(tmp_path) == ["speed.md"]  # no temporary file left behind


def test_appends_missing_section_and_creates_file(tmp_path):
    path = tmp_path / "sub" / "speed.md"
    report.write_section(str(path), "bench_c", "## C\n\nrow")
    assert path.read_text() == "# Speed\n\n<!-- bench_c:begin -->\n## C\n\nrow\n<!-- bench_c:end -->\n"
    report.write_section(str(path), "bench_d", "## D")
    report.write_section(str(path), "bench_c", "## C\n\nrow 2")
    text = path.read_text()
    assert text.index("row 2") < text.index("## D")
    assert "\nrow\n" not in text


def test_rewriting_the_same_body_is_idempotent(tmp_path):
    path = tmp_path / "speed.md"
    path.write_text(PAGE)
    report.write_section(str(path), "bench_b", "## B\n\ntable B")
    assert path.read_text() == PAGE


@pytest.mark.parametrize("page, what", [
    ("<!-- bench_a:begin -->\nx\n", "one"),  # end marker missing
    ("<!-- bench_a:end -->\nx\n<!-- bench_a:begin -->\n", "comes before"),
    ("<!-- bench_a:begin -->\n<!-- bench_a:end -->\n<!-- bench_a:begin -->\n"
     "<!-- bench_a:end -->\n", "found 2 and 2"),
])
def test_broken_markers_are_an_error_and_leave_the_file(tmp_path, page, what):
    path = tmp_path / "speed.md"
    path.write_text(page)
    with pytest.raises(ValueError, match=what) as err:
        report.write_section(str(path), "bench_a", "## A")
    assert str(path) in str(err.value)
    assert path.read_text() == page
    assert os.listdir(tmp_path) == ["speed.md"]


def test_bad_section_name():
    with pytest.raises(ValueError, match="section name"):
        report.markers("a b -->")


def test_command_drops_output_flags():
    argv = ["--rounds", "1", "--write-speed-md", "/tmp/x.md", "--no-write", "--note", "quiet",
            "--threads=2", "--note=x", "--write-speed-md=/tmp/y.md"]
    assert report.command("/any/where/bench_x.py", argv) == \
        "python benchmarks/bench_x.py --rounds 1 --threads=2"


def test_output_flags_default_to_the_repository_page():
    import argparse

    p = argparse.ArgumentParser()
    report.add_output_args(p)
    args = p.parse_args([])
    assert args.write_speed_md == os.path.join(ROOT, "leaderboards", "speed.md")
    assert not args.no_write
