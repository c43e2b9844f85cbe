import argparse

import pytest

from graphkit.engine.args import changed_settings, entry_id, example_parser, slug


def test_shared_flags_defaults_and_units():
    p = example_parser("demo", datasets=["Cora", "ML-1M"], dataset="Cora", runs=3, epochs=10)
    a = p.parse_args([])
    assert (a.dataset, a.runs, a.seed, a.epochs) == ("Cora", 3, 0, 10)
    assert a.select == "valid" and a.resume is True and a.record is True
    assert a.time_budget is None and a.threads is None and a.deviation == []
    a = p.parse_args(["--dataset", "ml-1m", "--time-budget", "90", "--no-resume", "--select", "test"])
    assert a.dataset == "ML-1M" and a.time_budget == 90.0 and a.resume is False and a.select == "test"


@pytest.mark.parametrize("argv", [["--dataset", "PubMed"], ["--runs", "0"], ["--time-budget", "-1"],
                                  ["--select", "best"], ["--seed", "-3"]])
def test_bad_flags_are_refused(argv, capsys):
    p = example_parser("demo", datasets=["Cora"], dataset="Cora")
    with pytest.raises(SystemExit):
        p.parse_args(argv)
    assert "error" in capsys.readouterr().err


def test_dataset_required_without_default():
    with pytest.raises(SystemExit):
        example_parser("demo").parse_args([])


def test_entry_ids():
    assert slug("ML-1M") == "ml-1m" and slug("Amazon Electronics") == "amazon-electronics"
    assert entry_id("lightgcn", "Gowalla", select="test", paper_select="test") == "lightgcn-gowalla"
    assert entry_id("lightgcn", "Gowalla", variant="neg64", select="valid",
                    paper_select="test") == "lightgcn-gowalla-neg64-valid"
    assert entry_id("dagnn", "Coauthor-CS") == "dagnn-coauthor-cs"
    assert entry_id("lagnn", "Cora", parts=["gcn"]) == "lagnn-gcn-cora"
    with pytest.raises(ValueError, match="select"):
        entry_id("x", "y", select="best")


def test_changed_settings_keeps_order():
    a = argparse.Namespace(lr=1e-3, batch_size=2048, negative_candidates=64)
    defaults = {"lr": 1e-3, "batch_size": 1024, "negative_candidates": 1}
    assert list(changed_settings(a, defaults, ["negative_candidates", "lr", "batch_size"])) == [
        "negative_candidates", "batch_size"]


def _parser_of(parse_args):
    """The parser an example's ``parse_args`` builds (captured when it parses)."""
    class Captured(Exception):
        pass

    original = argparse.ArgumentParser.parse_args

    def capture(self, *a, **k):
        raise Captured(self)

    argparse.ArgumentParser.parse_args = capture
    try:
        parse_args([])
    except Captured as e:
        return e.args[0]
    finally:
        argparse.ArgumentParser.parse_args = original
    raise AssertionError("parse_args did not parse")


def _sub_parsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from _sub_parsers(sub)


@pytest.mark.parametrize("script", ["dagnn", "lagnn", "lightgcn", "graphsage_sampled", "rphgnn", "nat", "rec"])
def test_every_option_has_a_spelling_torchrun_passes_through(script):
    """torchrun parses the whole command line and rejects an option after the script that
    abbreviates several of its own (``--log`` -> ``--log-dir``, ``--logs-specs``; ``--monitor``
    -> ``--monitor-interval``): every option needs one long spelling that reaches the script."""
    import importlib.util
    import pathlib

    run = pytest.importorskip("torch.distributed.run")
    if script == "rec":
        from graphkit.cli import build_parser

        parsers = list(_sub_parsers(build_parser()))
        prefix = ["-m", "graphkit", "rec", "train"]
    else:
        path = pathlib.Path(__file__).resolve().parents[2] / "examples" / f"{script}.py"
        spec = importlib.util.spec_from_file_location(f"example_{script}_torchrun", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        parsers = [_parser_of(module.parse_args)]
        prefix = [f"{script}.py"]
    torchrun = run.get_args_parser()
    torchrun.exit_on_error = False
    refused = []
    for parser in parsers:
        for action in parser._actions:
            spellings = [s for s in action.option_strings if s.startswith("--") and s != "--help"]
            if not spellings:
                continue
            ok = False
            for flag in spellings:
                try:
                    ns, _ = torchrun.parse_known_args(prefix + [flag, "1"])
                except (argparse.ArgumentError, SystemExit):
                    continue
                ok = ok or flag in ns.training_script_args
            if not ok:
                refused.append((parser.prog, spellings))
    assert not refused, f"options torchrun refuses or takes for its own: {refused}"
