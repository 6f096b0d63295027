"""benchmarks/two_plates.py's argument handling (no ray tracing): bad input is one line naming the argument,
exit 2, nothing run; `--suite` takes the cached two-zone cases without generating them again."""

import importlib.util
import json

import pytest

from worlds_helpers import REPO

spec = importlib.util.spec_from_file_location("two_plates", REPO / "benchmarks" / "two_plates.py")
tp = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tp)


@pytest.mark.parametrize("argv, key", [
    (["--suite", "--cases", "0"], "--cases"),
    (["--suite", "--seed", "-1"], "--seed"),
    (["--budget", "3"], "--budget"),
    (["--worlds", "0"], "--worlds"),
    (["--with-examples"], "--with-examples"),
    (["--experiments", "examples/no-such.yaml"], "--experiments"),
])
def test_bad_arguments_exit_2_with_one_line(argv, key, capsys):
    assert tp.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"two_plates: {key}"), err


def test_suite_uses_the_cached_index(tmp_path, monkeypatch):
    import make_scenes

    out = tmp_path / "seed-3-two-zone"
    out.mkdir()
    cases = [{"name": f"s3-{i:02d}-two-zone", "folder": f"s3-{i:02d}-two-zone"} for i in range(3)]
    (out / "index.json").write_text(json.dumps({"seed": 3, "cases": cases}))
    monkeypatch.setattr(make_scenes, "default_out", lambda seed, two_zone=False: out)

    def no_generation(*a, **k):
        raise AssertionError("generated although the index holds enough cases")

    monkeypatch.setattr(tp.subprocess, "run", no_generation)
    assert tp.suite_experiments(3, 2, None) == [out / c["folder"] / "experiment.yaml" for c in cases[:2]]
    with pytest.raises(AssertionError, match="generated"):
        tp.suite_experiments(3, 4, None)  # more cases than cached: generated
