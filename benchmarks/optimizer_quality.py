#!/usr/bin/env python3
"""Optimiser quality: the product against black-box peers at the same truth budget, on the shipped
examples or on a generated scene suite, scored over the mounting tolerance (issues 9 and 14).

    .venv/bin/python benchmarks/optimizer_quality.py [--examples street-corner,indoor-corridor,wide-facade]
    .venv/bin/python benchmarks/optimizer_quality.py --suite [--cases K] [--osm-cases M] [--seed S] [--with-examples]
        [--worlds 8] [--steps 20] [--samples 30000] [--no-extra]

For every case:

* **reflectopt**: the product through its public entry point (`python -m optimizer.cli run EXP --output
  DIR --no-progress`, local Ray), read back from `summary.json` (the typed `Summary`): the winner's worst
  case over the tolerance box, its evaluations, worlds, wall time. The benchmark does not search itself.
* **peers** on truth directly, at the product's budget (`summary.evaluations` truth evaluations): Optuna's
  TPE sampler, CMA-ES (`cma`), uniform random, and a grid sized to the budget. Each spends the budget on
  nominal truth, then picks its winner by the product's rule: its best distinct poses are checked over the
  tolerance box (`optimizer.physics.tolerance.check`) best first until one holds, within the same budget
  (the last CHECK_RESERVE_BOXES boxes' worth of evaluations is kept for that).
* **reference**: the worst-case grid optimum: a coarse nominal grid (the finest with at most COARSE_POSES
  poses, yaw step COARSE_DEG_PER_M x the spacing; each case prints its own), a pattern-search refinement on nominal truth from its best REFINE_STARTS poses (steps halved
  REFINE_HALVINGS times), the tolerance check of the best TOP_K distinct nominal poses, then a pattern
  search on the worst case (along the wall and in yaw, WORST_STEP, at most WORST_MOVES moves) from the
  best of them. Cached in
  benchmarks/.cache/reference-<sha256>.json, the sha256 of the experiment with `search` and `output`
  left out (they do not change the reference) and the scene's content hash.

Success = every target covered over the whole tolerance box (truth). Gap = reference worst-case min RSS
minus the method's (positive: below the reference). "worst cov" = the lowest coverage over the box. "evals to 0.5 dB" = truth evaluations until the
method first evaluated a pose whose nominal min RSS is within 0.5 dB of the reference's nominal optimum
(the product: its worlds taken in lock-step from trajectories.csv). No dB figure is ever taken against a
no-path floor: a method without a path somewhere in the box has no gap, only a miss. Where a check
stopped at its first failure (the product's and the peers' rule), the benchmark completes the winner's
box for the table, outside the budget.

Optuna and CMA-ES are the `bench` extra (`pip install -e .[bench]`); if missing, this script installs them
into the running interpreter with pip and says so.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import hashlib
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from optimizer.experiment import load_experiment  # noqa: E402
from optimizer import objectives  # noqa: E402
from optimizer.objectives import default  # noqa: E402
from optimizer.physics.metrics import rss_stats  # noqa: E402
from optimizer.physics.tolerance import box_cost, check  # noqa: E402
from optimizer.records import Summary  # noqa: E402
from optimizer.search.grid import grid_poses  # noqa: E402
from optimizer.search.space import PoseSpace  # noqa: E402

CACHE = REPO / "benchmarks" / ".cache"  # references and product runs (gitignored): the grid is the slow part
COARSE_POSES = 300  # the reference's coarse nominal grid: the finest with at most this many poses
COARSE_DEG_PER_M = 7.5  # its yaw step per metre of spacing [deg/m] (2 m <-> 15 deg)
REFINE_STARTS, REFINE_HALVINGS = 3, 4  # pattern search from the best coarse poses, initial step = the grid's
TOP_K = 3  # distinct nominal poses checked over the tolerance box
WORST_STEP = (0.3, 2.0)  # [m], [deg] step of the worst-case pattern search (along the wall and yaw)
WORST_MOVES = 3  # at most this many moves of it
CHECK_RESERVE_BOXES = 2  # peers keep this many tolerance boxes' evaluations for picking their winner
WITHIN_DB = 0.5  # [dB] "evals to come within" threshold
PEERS = ("optuna-tpe", "cma-es", "random", "grid")


def ensure_peers() -> str:
    try:
        import cma  # noqa: F401
        import optuna  # noqa: F401
        return "optuna and cma already installed"
    except ImportError:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "optuna", "cma"], check=True)
        return "installed optuna and cma with pip (the `bench` extra)"


# --- cases ----------------------------------------------------------------------------------------------------
def bench_experiment(path: Path, args, folder: Path) -> Path:
    """A copy of the experiment with the benchmark's budget (worlds, steps, samples), its scene absolute."""
    exp = load_experiment(path)
    data = exp.model_dump(mode="json", exclude={"resources"})
    data["search"]["worlds"] = args.worlds
    data["search"]["steps"] = args.steps
    data["solver"]["samples_per_src"] = args.samples
    data["output"] = str(folder / "runs")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "experiment.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def reference_key(exp) -> str:
    from optimizer.store.assets import bundle_hash

    data = json.loads(exp.canonical_json())
    data.pop("search", None)
    data.pop("output", None)
    scene = exp.scene
    content = "" if scene.startswith("builtin:") else bundle_hash(Path(scene))
    data.pop("scene", None)
    return hashlib.sha256((json.dumps(data, sort_keys=True) + scene.split("/")[-1] + content).encode()).hexdigest()


# --- truth with a counter --------------------------------------------------------------------------------------
class Truth:
    """Nominal truth of poses on the unit cube, counting evaluations and keeping each (for the winner rule)."""

    def __init__(self, rs, exp, space):
        self.rs, self.exp, self.space = rs, exp, space
        self.thr = exp.objective.coverage_threshold_dbm
        self.objective = objectives.of(exp)  # the experiment's own (min: the same scores as default())
        self.seen: list[tuple[float, np.ndarray, np.ndarray]] = []  # (score, vec, rss)
        self.mins: list[float | None] = []  # nominal min RSS per evaluation, in order
        self.evaluations = 0

    def __call__(self, unit) -> float:
        vec = self.space.from_unit(self.space.project_unit(np.asarray(unit, float)))
        rss = self.rs.rss_dbm(self.space.to_pose(vec))
        self.evaluations += 1
        st = self.objective.stats(rss)
        self.seen.append((self.objective.score(st), vec, rss))
        self.mins.append(st.min_rss_dbm)
        return self.objective.score(st)

    def check(self, vec, fail_fast=False):
        chk, raw = check(self.rs, self.space.to_pose(vec), self.exp, fail_fast=fail_fast,
                         nominal_rss=self._nominal(vec))
        self.evaluations += raw["evaluations"]
        return chk

    def _nominal(self, vec):
        for _, v, rss in self.seen:
            if np.allclose(v, vec):
                return rss
        return None


def rank(chk) -> tuple:
    return (chk.holds, default().score(chk.worst) if chk.worst.objective_score is None  # min: no objective_score
            else chk.worst.objective_score)


def distinct(seen, exp, space, k):
    """The k best distinct poses (apart by more than twice the tolerance in position or yaw)."""
    tol = exp.reflector.tolerance
    out = []
    for s, vec, rss in sorted(seen, key=lambda t: -t[0]):
        if all(np.linalg.norm(vec[:3] - o[:3]) > 2 * tol.position_m or abs(vec[3] - o[3]) > 2 * tol.yaw_deg
               for _, o, _ in out):
            out.append((s, vec, rss))
        if len(out) >= k:
            break
    return out


def pick_winner(truth: Truth, budget: int):
    """The product's rule: best distinct poses checked over the box best first (fail fast) until one
    holds, within the budget. Returns the check of the winner (the holder, else the best checked)."""
    cost = box_cost(truth.exp)
    best = None
    for _, vec, _ in distinct(truth.seen, truth.exp, truth.space, 50):
        if truth.evaluations + cost > budget and best is not None:
            break
        chk = truth.check(vec, fail_fast=True)
        if best is None or rank(chk) > rank(best):
            best = chk
        if chk.holds:
            break
    return best


# --- peers ------------------------------------------------------------------------------------------------------
def run_peer(method, rs, exp, budget, seed):
    space = PoseSpace.of(exp)
    truth = Truth(rs, exp, space)
    free = np.flatnonzero(space.free)
    nominal = max(budget // 2, budget - CHECK_RESERVE_BOXES * box_cost(exp))
    t0 = time.perf_counter()

    def unit_of(x):
        u = np.full(space.dim, 0.5)
        u[free] = np.clip(x, 0, 1)
        return u

    if method == "random":
        rng = np.random.default_rng(seed)
        while truth.evaluations < nominal:
            truth(unit_of(rng.uniform(0, 1, len(free))))
    elif method == "optuna-tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        while truth.evaluations < nominal:
            trial = study.ask()
            x = np.array([trial.suggest_float(f"u{k}", 0.0, 1.0) for k in range(len(free))])
            study.tell(trial, truth(unit_of(x)))
    elif method == "cma-es":
        import cma

        es = cma.CMAEvolutionStrategy(np.full(len(free), 0.5), 0.3,
                                      {"bounds": [0, 1], "seed": seed + 1, "verbose": -9})
        while truth.evaluations < nominal:
            xs = es.ask()
            fs = []
            for x in xs:
                if truth.evaluations >= nominal:
                    break
                fs.append(-truth(unit_of(x)))
            if len(fs) < len(xs):
                break
            es.tell(xs, fs)
    elif method == "grid":
        for vec in budget_grid(space, nominal):
            truth(space.to_unit(vec))
    winner = pick_winner(truth, budget)
    spent, wall_s = truth.evaluations, time.perf_counter() - t0
    if winner is not None and not winner.complete:  # measured for the table, outside the budget
        winner = check(rs, winner.pose, exp)[0]
    return {"check": winner, "evaluations": spent, "mins": truth.mins, "wall_s": wall_s}


def budget_spacing(space, n, deg_per_m=20.0):
    """Spacing s [m] of the finest grid (yaw step deg_per_m x s [deg]) with at most n poses."""
    lo, hi = 0.05, 50.0
    for _ in range(30):
        mid = math.sqrt(lo * hi)
        if len(grid_poses(space, mid, deg_per_m * mid)) > n:
            lo = mid
        else:
            hi = mid
    return hi


def budget_grid(space, n):
    """The finest grid with at most n poses (yaw step 20 deg per m of spacing: the 0.25 m / 5 deg ratio)."""
    s = budget_spacing(space, n)
    return grid_poses(space, s, 20.0 * s)


# --- the reference ------------------------------------------------------------------------------------------------
def pattern_search(f, x0, steps, lo, hi, halvings, max_moves=1000):
    """Compass search maximising f from x0: try +-step on each axis, move to the best improvement, halve the
    steps when none improves. Returns (best x, best f)."""
    x, fx = np.array(x0, float), f(x0)
    steps = np.array(steps, float)
    moves = 0
    for _ in range(halvings + 1):
        improved = True
        while improved and moves < max_moves:
            improved = False
            best = (fx, None)
            for k in np.flatnonzero(steps > 0):
                for s in (1, -1):
                    y = x.copy()
                    y[k] = np.clip(y[k] + s * steps[k], lo[k], hi[k])
                    if np.allclose(y, x):
                        continue
                    fy = f(y)
                    if fy > best[0] + 1e-6:
                        best = (fy, y)
            if best[1] is not None:
                fx, x = best
                improved = True
                moves += 1
        steps = steps / 2
    return x, fx


def reference(rs, exp, key):
    path = CACHE / f"reference-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    space = PoseSpace.of(exp)
    truth = Truth(rs, exp, space)
    spacing = budget_spacing(space, COARSE_POSES, COARSE_DEG_PER_M)
    coarse = grid_poses(space, spacing, COARSE_DEG_PER_M * spacing)
    for i, vec in enumerate(coarse):
        truth(space.to_unit(vec))
        if (i + 1) % 50 == 0:
            sys.stderr.write(f"\r  reference: coarse grid {i + 1}/{len(coarse)}, {time.perf_counter() - t0:.0f} s")
    sys.stderr.write("\n")
    n_coarse = truth.evaluations
    step = np.where(space.free, np.r_[[spacing] * 3, [COARSE_DEG_PER_M * spacing] * (space.dim - 3)] / 2, 0.0)

    def nominal(vec):
        return truth(space.to_unit(vec))

    for _, vec, _ in distinct(truth.seen, exp, space, REFINE_STARTS):
        pattern_search(nominal, vec, step, space.lo, space.hi, REFINE_HALVINGS)
    n_refined = truth.evaluations
    best_nominal = max(truth.seen, key=lambda t: t[0])
    nominal_min = rss_stats(best_nominal[2], truth.thr).min_rss_dbm
    checks = [truth.check(vec) for _, vec, _ in distinct(truth.seen, exp, space, TOP_K)]
    best = max(checks, key=rank)
    sys.stderr.write(f"  reference: {len(checks)} tolerance checks, best holds={best.holds}, "
                     f"{time.perf_counter() - t0:.0f} s\n")
    memo = {}

    def worst(vec):
        k = tuple(np.round(vec, 4))
        if k not in memo:
            memo[k] = truth.check(vec, fail_fast=best_holds[0])
            if rank(memo[k]) > rank(best_holds[1]):
                best_holds[:] = [memo[k].holds, memo[k]]
        return rank(memo[k])[1] + (1000.0 if memo[k].holds else 0.0)

    best_holds = [best.holds, best]
    x = space.to_vec(best.pose)
    step = np.where(space.free, np.r_[[WORST_STEP[0]] * 2, 0.0, [WORST_STEP[1]] * (space.dim - 3)], 0.0)
    pattern_search(worst, x, step, space.lo, space.hi, 0, WORST_MOVES)
    final = best_holds[1]
    out = {"grid": f"coarse {spacing:.2f} m / {COARSE_DEG_PER_M * spacing:.1f} deg ({n_coarse} poses), pattern "
                   f"search on nominal truth from the best {REFINE_STARTS} ({n_refined - n_coarse} evals), tolerance "
                   f"check of the best {TOP_K}, worst-case pattern search ({WORST_STEP[0]:g} m along the wall, "
                   f"{WORST_STEP[1]:g} deg yaw, {len(memo)} boxes)",
           "nominal_min_rss_dbm": nominal_min, "worst_min_rss_dbm": final.worst_min_rss_dbm, "holds": final.holds,
           "worst_objective": final.worst.objective_value,  # the objective's worst case (None for min)
           "worst_coverage": final.worst_coverage, "pose": final.pose.model_dump(mode="json"),
           "evaluations": truth.evaluations, "full_grid_poses": len(grid_poses(space, 0.25, 5.0)),
           "wall_s": time.perf_counter() - t0}
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    return out


# --- the product ----------------------------------------------------------------------------------------------
def run_product(exp_path: Path, label: str, changes: dict | None = None) -> tuple[Summary, Path]:
    """`python -m optimizer.cli run` on a copy of the experiment (with `changes`, dotted keys)."""
    data = yaml.safe_load(exp_path.read_text())
    for k, v in (changes or {}).items():
        d = data
        *head, last = k.split(".")
        for h in head:
            d = d[h]
        d[last] = v
    runs = exp_path.parent / f"runs-{label}"
    shutil.rmtree(runs, ignore_errors=True)
    data["output"] = str(runs)
    f = exp_path.parent / f"experiment-{label}.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    r = subprocess.run([sys.executable, "-m", "optimizer.cli", "run", str(f), "--output", str(runs), "--no-progress"],
                       capture_output=True, text=True, cwd=REPO)
    found = sorted(runs.rglob("summary.json"))
    if r.returncode != 0 or not found:
        raise SystemExit(f"reflectopt run {f} failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
    return Summary.model_validate_json(found[-1].read_text()), found[-1].parent


def _worst(summ: Summary, rs, exp) -> float | None:
    """A run's winner's worst case over the whole tolerance box [dBm] (completed here if its check stopped)."""
    tol = summ.winner.tolerance
    if tol is None or not tol.complete:
        tol = check(rs, summ.winner.joint_pose, exp)[0]
    return tol.worst_min_rss_dbm


def product_evals_to(run_dir: Path, target_dbm: float | None) -> int | None:
    """Truth evaluations until a world's nominal truth came within WITHIN_DB of target (worlds in lock-step)."""
    if target_dbm is None:
        return None
    rows = list(csv.DictReader((run_dir / "trajectories.csv").open()))
    by_world: dict[int, list] = {}
    for r in rows:
        by_world.setdefault(int(float(r["world"])), []).append(r)
    for w in by_world.values():
        w.sort(key=lambda r: int(float(r["step"])))
    longest = max(len(w) for w in by_world.values())
    for s in range(longest):
        hit = any(s < len(w) and w[s]["min_rss_dbm"] not in ("", None)
                  and float(w[s]["min_rss_dbm"]) >= target_dbm - WITHIN_DB for w in by_world.values())
        if hit:
            return sum(int(float(w[min(s, len(w) - 1)]["evaluations"])) for w in by_world.values())
    return None


def peer_evals_to(mins, target_dbm):
    if target_dbm is None:
        return None
    for i, m in enumerate(mins):
        if m is not None and m >= target_dbm - WITHIN_DB:
            return i + 1
    return None


# --- main -------------------------------------------------------------------------------------------------------
def fmt_db(v, signed=False):
    if v is None:
        return "no path"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def gap(ref, worst):
    """Reference worst case minus the method's [dB]; None where either has no path somewhere in its box."""
    if ref is None or worst is None:
        return None
    return ref - worst


def robust_ref(c) -> bool:
    """Whether the reference found a pose that holds (else the worst cases are only baselines: no gap)."""
    return bool(c["ref"]["holds"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", default="street-corner,indoor-corridor,wide-facade")
    ap.add_argument("--suite", action="store_true", help="the generated suite (scripts/make_scenes.py)")
    ap.add_argument("--with-examples", action="store_true", help="with --suite: the examples too")
    ap.add_argument("--cases", type=int, default=20, help="generated cases (--suite)")
    ap.add_argument("--seed", type=int, default=1, help="suite seed (--suite)")
    ap.add_argument("--osm-cases", type=int, default=0,
                    help="real-city cases of central Helsinki (--suite; scripts/make_scenes.py --osm)")
    ap.add_argument("--no-builtin", action="store_true", help="--suite without the etoile and florence cases")
    ap.add_argument("--only", default="", help="comma-separated case names to run (after generation)")
    ap.add_argument("--worlds", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--samples", type=int, default=30_000, help="solver.samples_per_src of every case")
    ap.add_argument("--no-extra", action="store_true", help="skip the extra product runs on the first case "
                                                            "(no tolerance + no diffraction; no pruning; no reuse; no worst-case "
                                                            "polish)")
    args = ap.parse_args()
    print(f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC: {' '.join(sys.argv)}")
    print(f"# peers: {ensure_peers()}")
    from optimizer.physics.scene import RadioScene

    cases: list[tuple[str, Path]] = []
    examples = set()
    if not args.suite or args.with_examples:
        examples = {n for n in args.examples.split(",") if n}
        cases += [(n, REPO / "examples" / f"{n}.yaml") for n in args.examples.split(",") if n]
    if args.suite:
        sys.path.insert(0, str(REPO / "scripts"))
        from make_scenes import suite_cases

        cases += suite_cases(args.seed, args.cases, builtin=not args.no_builtin)
        cases += suite_cases(args.seed, args.osm_cases, osm=True)
    if args.only:
        order = args.only.split(",")
        cases = sorted((c for c in cases if c[0] in order), key=lambda c: order.index(c[0]))  # in the given order

    rows, per_case = [], []
    extra = None
    for ci, (name, src) in enumerate(cases):
        folder = CACHE / "bench" / name
        exp_path = bench_experiment(src, args, folder)
        exp = load_experiment(exp_path)
        rs = RadioScene(exp, device="cpu", threads=1)
        t0 = time.perf_counter()
        ref = reference(rs, exp, reference_key(exp))
        sys.stderr.write(f"[{name}] reference worst {fmt_db(ref['worst_min_rss_dbm'])} dBm "
                         f"(holds {ref['holds']}), nominal {fmt_db(ref['nominal_min_rss_dbm'])} dBm, "
                         f"{ref['evaluations']} evals ({time.perf_counter() - t0:.0f} s now)\n")
        summ, run_dir = run_product(exp_path, "product")
        w = summ.winner
        tol = w.tolerance
        if tol is None or not tol.complete:  # measured for the table (the run's own check stopped early)
            tol = check(rs, w.joint_pose, exp)[0]
        budget = summ.evaluations
        prod = {"case": name, "method": "reflectopt", "holds": tol.holds, "worst": tol.worst_min_rss_dbm,
                "coverage": tol.worst_coverage, "evaluations": budget,
                "evals_to": product_evals_to(run_dir, ref["nominal_min_rss_dbm"]), "wall_s": summ.wall_time_s,
                "robust": summ.counts.robust, "worlds": summ.counts.worlds, "world_steps": summ.world_steps,
                "nominal": w.min_rss_dbm}
        rows.append(prod)
        sys.stderr.write(f"[{name}] reflectopt: worst {fmt_db(prod['worst'])} dBm, holds {prod['holds']}, "
                         f"{budget} evals, {summ.wall_time_s:.0f} s\n")
        case = {"case": name, "ref": ref, "product": prod, "peers": {}}
        for m in PEERS:
            res = run_peer(m, rs, exp, budget, seed=ci)
            chk = res["check"]
            row = {"case": name, "method": m, "holds": bool(chk and chk.holds),
                   "worst": chk.worst_min_rss_dbm if chk else None, "coverage": chk.worst_coverage if chk else 0.0,
                   "evaluations": res["evaluations"], "evals_to": peer_evals_to(res["mins"], ref["nominal_min_rss_dbm"]),
                   "wall_s": res["wall_s"], "nominal": chk.nominal_min_rss_dbm if chk else None}
            rows.append(row)
            case["peers"][m] = row
            sys.stderr.write(f"[{name}] {m}: worst {fmt_db(row['worst'])} dBm, holds {row['holds']}, "
                             f"{row['evaluations']} evals, {row['wall_s']:.0f} s\n")
        per_case.append(case)
        if ci == 0 and not args.no_extra:
            plain, _ = run_product(exp_path, "no-tolerance-no-diffraction",
                                   {"reflector.tolerance": {"position_m": 0, "yaw_deg": 0, "pitch_deg": 0},
                                    "solver.diffraction": False})
            unpruned, _ = run_product(exp_path, "no-pruning", {"search.prune": "off"})
            noreuse, _ = run_product(exp_path, "no-reuse", {"search.reuse": "off"})
            nopolish, _ = run_product(exp_path, "no-worst-case-polish", {"search.robust_polish_boxes": 0})
            extra = {"case": name, "with_s": summ.wall_time_s, "plain_s": plain.wall_time_s,
                     "nopolish_s": nopolish.wall_time_s, "nopolish_worst": _worst(nopolish, rs, exp),
                     "nopolish_evals": nopolish.evaluations, "with_evals": summ.evaluations,
                     "pruned_steps": noreuse.world_steps, "unpruned_steps": unpruned.world_steps,
                     "pruned_min": noreuse.winner.min_rss_dbm, "unpruned_min": unpruned.winner.min_rss_dbm,
                     "reuse_steps": summ.world_steps, "reuse_min": w.min_rss_dbm,
                     "reuse_worst": prod["worst"], "noreuse_worst": _worst(noreuse, rs, exp),
                     "unpruned_worst": _worst(unpruned, rs, exp)}

        (CACHE / "quality-last.json").write_text(json.dumps({"argv": sys.argv, "cases": per_case, "extra": extra},
                                                            indent=1, default=str))
        report(per_case, extra, args, examples, sys.stderr if ci + 1 < len(cases) else sys.stdout)


def report(per_case, extra, args, examples, out):
    """The table and the targets (after every case to stderr, at the end to stdout)."""
    def say(*a):
        print(*a, file=out)
        out.flush()

    say(f"\nOptimiser quality: {len(per_case)} cases, product with {args.worlds} worlds x {args.steps} steps, "
          f"{args.samples} samples per source; peers at the product's truth budget; success and gap over the "
          "mounting tolerance box (truth)")
    say(f"{'case':<24}{'method':<12}{'success':>8}{'worst [dBm]':>13}{'worst cov':>10}{'gap [dB]':>10}{'evals':>7}"
          f"{'evals to 0.5 dB':>17}{'wall [s]':>10}")
    for c in per_case:
        for r in [c["product"], *c["peers"].values()]:
            g = gap(c["ref"]["worst_min_rss_dbm"], r["worst"]) if robust_ref(c) else None
            say(f"{r['case']:<24}{r['method']:<12}{'yes' if r['holds'] else 'no':>8}{fmt_db(r['worst']):>13}"
                  f"{r['coverage']:>10.0%}"
                  f"{(fmt_db(g, True) if robust_ref(c) else 'ref-miss'):>10}{r['evaluations']:>7}{str(r['evals_to'] or '-'):>17}{r['wall_s']:>10.0f}")
    say("\nReferences (worst-case grid optimum, truth):")
    for c in per_case:
        ref = c["ref"]
        say(f"  {c['case']:<24} worst {fmt_db(ref['worst_min_rss_dbm'])} dBm (holds: {ref['holds']}, lowest "
              f"coverage {ref['worst_coverage']:.0%}), nominal "
              f"{fmt_db(ref['nominal_min_rss_dbm'])} dBm, {ref['evaluations']} evals, {ref['wall_s']:.0f} s; "
              f"full 0.25 m / 5 deg grid {ref['full_grid_poses']} poses")
        say(f"    {ref['grid']}")

    say("\nBest known worst case (the reference or any method's pose that holds), and each method's gap to it:")
    for c in per_case:
        held = [r["worst"] for r in [c["product"], *c["peers"].values()] if r["holds"] and r["worst"] is not None]
        if c["ref"]["holds"] and c["ref"]["worst_min_rss_dbm"] is not None:
            held.append(c["ref"]["worst_min_rss_dbm"])
        if not held:
            say(f"  {c['case']:<24} none holds")
            continue
        top = max(held)
        say(f"  {c['case']:<24} {fmt_db(top)} dBm; " + ", ".join(
            f"{r['method']} {fmt_db(gap(top, r['worst']), True) if r['holds'] else 'does not hold'}"
            for r in [c["product"], *c["peers"].values()]))

    checks = []
    robust_cases = [c for c in per_case if robust_ref(c)]
    say(f"  {len(robust_cases)} of {len(per_case)} cases have a reference pose that holds over the box; gaps are "
        "taken on those only ('ref-miss': elsewhere every worst case is a target's no-plate value)")
    gaps = [gap(c["ref"]["worst_min_rss_dbm"], c["product"]["worst"]) for c in robust_cases]
    known = [g for g in gaps if g is not None]
    share = sum(g <= 0.25 for g in known) / max(len(gaps), 1)
    checks.append(("9", "gap to the worst-case grid optimum <= 0.25 dB on >= 90 % of cases",
                   bool(gaps) and share >= 0.9, f"{share:.0%} of {len(gaps)} cases with a robust reference"))
    worst_gap = max(known) if known else None
    none = "no case with a robust reference"
    checks.append(("9", "gap <= 0.5 dB on every case", bool(gaps) and len(known) == len(gaps) and worst_gap is not None
                   and worst_gap <= 0.5, (f"largest {fmt_db(worst_gap, True)} dB" if known else none)
                   + (f", {len(gaps) - len(known)} case(s) with no path in the box" if len(known) < len(gaps) else "")))
    ratios = [c["product"]["evaluations"] / c["ref"]["full_grid_poses"] for c in per_case]
    checks.append(("9", "truth evaluations <= 5 % of the full 0.25 m / 5 deg grid", all(r <= 0.05 for r in ratios),
                   f"largest {max(ratios, default=0):.1%}"))

    def med(vals):
        vals = [v if v is not None else math.inf for v in vals]
        return statistics.median(vals) if vals else math.inf

    prod_med = med([c["product"]["evals_to"] for c in per_case])
    peer_meds = {m: med([c["peers"][m]["evals_to"] for c in per_case]) for m in PEERS}
    best_peer = min(peer_meds, key=peer_meds.get) if peer_meds else "-"
    bp = peer_meds.get(best_peer, math.inf)
    checks.append(("9", "median evals to within 0.5 dB <= 1/3 of the best peer's",
                   prod_med <= bp / 3 if math.isfinite(prod_med) else False,
                   f"reflectopt {prod_med:g}, best peer {best_peer} {bp:g}"))
    behind = []
    for c in robust_cases:
        peer_best = max((r["worst"] for r in c["peers"].values() if r["worst"] is not None), default=None)
        if peer_best is not None:
            behind.append(peer_best - c["product"]["worst"] if c["product"]["worst"] is not None else math.inf)
    checks.append(("9", "never worse than the best peer by > 0.25 dB (worst case)",
                   bool(behind) and all(b <= 0.25 for b in behind),
                   f"largest {max(behind):+.2f} dB" if behind else none))
    robust = sum(c["product"]["robust"] for c in per_case) / max(sum(c["product"]["worlds"] for c in per_case), 1)
    checks.append(("9, 14", "tolerance-robust success >= 90 % of worlds (all cases)", robust >= 0.9, f"{robust:.0%}"))
    for c in per_case:
        if c["case"] in examples:
            p = c["product"]
            share_w = p["robust"] / max(p["worlds"], 1)
            checks.append(("14", f"{c['case']}: robust success >= 90 % of worlds", share_w >= 0.9, f"{share_w:.0%}"))
    for c in per_case:
        g = gap(c["ref"]["worst_min_rss_dbm"], c["product"]["worst"])
        checks.append(("14", f"{c['case']}: best-of-{args.worlds} worst case within 0.5 dB of the worst-case grid "
                             "optimum", robust_ref(c) and g is not None and g <= 0.5,
                       f"{fmt_db(g, True)} dB" if robust_ref(c) else "no reference pose holds over the box"))
    if extra:
        if "nopolish_s" in extra:  # issue 14's figure is the check and diffraction; the worst-case polish is issue 9's
            ratio = extra["nopolish_s"] / extra["plain_s"]
            checks.append(("14", f"tolerance check + diffraction (worst-case polish off) add <= 50 % to a run's wall "
                                 f"time ({extra['case']})", ratio <= 1.5,
                           f"{extra['nopolish_s']:.0f} s / {extra['plain_s']:.0f} s = {ratio:.2f}x; with the "
                           f"worst-case polish {extra['with_s']:.0f} s = {extra['with_s'] / extra['plain_s']:.2f}x"))
            say(f"\nWorst-case polish ({extra['case']}, search.robust_polish_boxes default against 0): worst case "
                f"over the box {fmt_db(extra['reuse_worst'])} vs {fmt_db(extra['nopolish_worst'])} dBm, "
                f"{extra['with_evals']} vs {extra['nopolish_evals']} truth evaluations "
                f"({1 - extra['nopolish_evals'] / max(extra['with_evals'], 1):.0%} of the run's spent on it), "
                f"wall {extra['with_s']:.0f} vs {extra['nopolish_s']:.0f} s")
        else:
            ratio = extra["with_s"] / extra["plain_s"]
            checks.append(("14", f"tolerance check + diffraction add <= 50 % to a run's wall time ({extra['case']})",
                           ratio <= 1.5, f"{extra['with_s']:.0f} s / {extra['plain_s']:.0f} s = {ratio:.2f}x"))
        same = (extra["pruned_min"] is not None and extra["unpruned_min"] is not None
                and abs(extra["pruned_min"] - extra["unpruned_min"]) <= 0.25)
        share_s = extra["pruned_steps"] / max(extra["unpruned_steps"], 1)
        checks.append(("9", f"pruning (search.reuse off): same winner (+-0.25 dB) at <= 40 % of the world-steps "
                            f"of an unpruned run ({extra['case']})", same and share_s <= 0.4,
                       f"{fmt_db(extra['pruned_min'])} vs {fmt_db(extra['unpruned_min'])} dBm, "
                       f"{extra['pruned_steps']} / {extra['unpruned_steps']} steps = {share_s:.0%}"))
        if "reuse_worst" in extra:  # the ablation of issue 9 item 1, at the same budget (no target: a figure)
            say(f"\nFreed slots ({extra['case']}, worst case over the box / world-steps): reuse "
                f"{fmt_db(extra['reuse_worst'])} dBm / {extra['reuse_steps']}, reuse off "
                f"{fmt_db(extra['noreuse_worst'])} dBm / {extra['pruned_steps']}, no pruning "
                f"{fmt_db(extra['unpruned_worst'])} dBm / {extra['unpruned_steps']}")
    else:
        checks.append(("14", "tolerance check + diffraction time ratio", False, "not measured (--no-extra)"))
        checks.append(("9", "pruning world-steps", False, "not measured (--no-extra)"))
    say("\nTargets:")
    for issue, label, ok, fig in checks:
        say(f"  [{'PASS' if ok else 'MISS'}] issue {issue}: {label}: {fig}")
    say("\n(gap = reference worst-case min RSS minus the method's, positive = below it; 'no path': a target "
          "without any path somewhere in the box, no dB figure; evals to 0.5 dB: nominal truth within 0.5 dB of "
          "the reference's nominal optimum, '-' = never)")




if __name__ == "__main__":
    main()
