"""Typed run records: their JSON Schema, round trips through every file format, the one ranking score."""

import json
import subprocess
import sys

import numpy as np
import pytest

from optimizer.objectives import default
from optimizer.physics.metrics import rss_stats
from optimizer.records import JointPose, PlatePose, RssStats, Summary, WorldStep
from optimizer.store.runstore import RunStore
from worlds_helpers import REPO, street


def _step(world, step, plates=1, no_path=False):
    rss = np.array([-np.inf, -95.0, -80.0]) if no_path else np.array([-89.5, -70.0, -60.25])
    st = rss_stats(rss, -90.0)
    pose = JointPose(plates=[PlatePose(1.0 + k, 2.0, 3.0, 45.5 + world, 0.25) for k in range(plates)])
    return WorldStep(world=world, step=step, pose=pose, truth=st, objective_dbm=-91.0, surrogate_dbm=None,
                     best=st, best_score=default().score(st), best_pose=pose, evaluations=step + 1, step_s=0.125)


def test_readme_results_table_is_the_schema():
    from optimizer.cli.schema import markdown

    readme = (REPO / "README.md").read_text()
    a, b = "<!-- schema:summary -->\n", "<!-- /schema:summary -->"
    block = readme[readme.index(a) + len(a):readme.index(b)]
    assert block == markdown(Summary), "README's summary table is stale: paste `reflectopt schema summary --markdown`"


def test_schema_command_prints_json_schema():
    for record in ("summary", "world-step", "world-state", "targets", "run", "experiment"):
        r = subprocess.run([sys.executable, "-m", "optimizer.cli", "schema", record], capture_output=True, text=True,
                           cwd=REPO, timeout=60)
        assert r.returncode == 0, r.stderr
        schema = json.loads(r.stdout)
        assert schema["type"] == "object" and schema["properties"]
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "schema", "nonsense"], capture_output=True, text=True,
                       cwd=REPO, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr


@pytest.mark.parametrize("plates", [1, 2])
def test_trajectories_round_trip_csv_and_parquet(tmp_path, plates):
    steps = [_step(w, s, plates, no_path=(s == 1)) for w in range(2) for s in range(1, 4)]
    store = RunStore(str(tmp_path))
    store.write_trajectories(steps)
    assert store.read_trajectories() == steps  # from Parquet, nested
    (tmp_path / "trajectories.parquet").unlink()
    assert RunStore(str(tmp_path)).read_trajectories() == steps  # from the flat CSV
    header = (tmp_path / "trajectories.csv").read_text().splitlines()[0].split(",")
    assert header[:7] == ["world", "step", "x", "y", "z", "yaw_deg", "pitch_deg"]
    assert ("x_1" in header) == (plates == 2)


def test_no_path_is_null_never_a_floor_number():
    st = rss_stats(np.array([-np.inf, -80.0, -70.0]), -90.0)
    assert st.min_rss_dbm is None and st.no_path == 1 and st.mean_rss_dbm == pytest.approx(-75.0)
    assert "null" in st.to_json() and "-200" not in st.to_json()
    full = rss_stats(np.array([-100.0, -80.0, -70.0]), -90.0)
    assert full.min_rss_dbm == -100.0 and full.p5_rss_dbm == pytest.approx(-100.0 + 0.1 * 20.0)


def test_score_orders_by_min_then_coverage():
    def s(min_rss, cov, mean=-60.0, no_path=0):
        return default().score(RssStats(min_rss_dbm=min_rss, p5_rss_dbm=None, mean_rss_dbm=mean, coverage=cov,
                              no_path=no_path))
    assert s(-80.0, 1.0) > s(-80.02, 1.0)  # 0.02 dB of min RSS beats every tie-break
    assert s(-80.0, 1.0) > s(-80.0, 0.5)
    assert s(None, 0.5, no_path=1) > s(None, 0.25, no_path=1)
    assert s(None, 0.5, no_path=1) > s(None, 0.5, no_path=3)
    assert s(-120.0, 0.0) > s(None, 0.9, no_path=1)  # a path to every target beats any no-path


def test_pose_prints_to_a_millimetre_and_reproduces_exactly():
    p = PlatePose(20.020320142, 7.5034629, 5.0, 141.658303556)
    assert str(p) == "(20.020, 7.503, 5.000) m, yaw 141.66 deg, pitch 0.00 deg"
    assert PlatePose.from_seq(p.cli_value().split(",")) == p
    jp = JointPose(plates=[p, PlatePose(1, 2, 3, 4)])
    assert JointPose.parse(jp.cli_value()) == jp


def test_checkpoint_state_does_not_grow_with_steps():
    """A world's checkpoint holds no history: from 2 to 6 steps it grows by less than one step's row."""
    from optimizer.physics.scene import RadioScene
    from optimizer.search.world import World

    exp = street(**{"solver.samples_per_src": 5000, "solver.max_depth": 1})
    rs = RadioScene(exp, device="cpu", threads=2)
    w = World(exp, 0, PlatePose(24.0, 8.0, 5.0, 140.0), radio_scene=rs)
    for _ in range(2):
        w.step()
    two = len(w.get_state().to_json())
    for _ in range(4):
        w.step()
    six = len(w.get_state().to_json())
    row = len(w.history[-1].to_json(indent=None))
    assert six - two < row  # (digits of numbers differ; a history would add 4 rows)
    assert "history" not in json.loads(w.get_state().to_json())


def test_space_names_the_bounds_a_pose_lies_on():
    from optimizer.search.space import PoseSpace

    exp = street()
    space = PoseSpace.of(exp)
    vec = space.to_vec(PlatePose(28.0, 8.0, 5.0, 90.0))
    assert space.on_bounds(vec) == ["x max (28)", "yaw min (90)"]
    assert space.on_bounds(space.to_vec(PlatePose(24.0, 8.0, 5.0, 140.0))) == []


def test_experiment_schema_gives_every_field_a_meaning():
    """`reflectopt schema experiment --markdown`: a table for the top level and one per section (Objective,
    Reflector, Tolerance, ...), and no field without a meaning."""
    from optimizer.cli.schema import markdown
    from optimizer.experiment import Experiment

    text = markdown(Experiment, nested=True)
    sections = [ln[5:-1] for ln in text.splitlines() if ln.startswith("### `")]
    for name in ("Transmitter", "Antenna", "Reflector", "Box3", "Tolerance", "AngleRange", "Targets", "Area",
                 "Objective", "Protect", "Solver", "Search", "Prune", "Resources"):
        assert name in sections, (name, sections)
    rows = [ln for ln in text.splitlines() if ln.startswith("| `")]
    empty = [ln for ln in rows if ln.rstrip().endswith("|  |") or ln.rstrip().endswith("| |")]
    assert len(rows) > 80 and not empty, empty
