"""Atari-100k runs for given agents x games x seeds: in the background, resumable, then the report.

    python scripts/atari100k.py run --agents c51 iqn --games road_runner krull --seeds 0 \
        [--runs qrdqn:pong ...] [--out runs/atari100k] [--jobs N] [--background] [--nice 10] \
        [--preset atari100k|atari100k_dopamine] [-- extra distrl-train overrides]
    python scripts/atari100k.py run --plan atari100k --nice 10 \
        --csv docs/results/atari100k_runs.csv --commit --background     # the whole benchmark
    python scripts/atari100k.py status [--out runs/atari100k] [--agents c51 --games atari100k]
    python scripts/atari100k.py status [--out runs/atari100k] --plan atari100k
    python scripts/atari100k.py collect multirun/atari100k/<time> [--csv ...]   # a sweep's runs
    python scripts/atari100k.py tables [--csv docs/results/atari100k_runs.csv] \
        [--results docs/results.md] [--figure docs/figures/atari100k_profile]
    python scripts/atari100k.py stop   [--out runs/atari100k]
    python scripts/atari100k.py report [--out runs/atari100k] [--figure docs/figures/x.png]

``run`` trains each (agent, game, seed), ``--jobs`` at a time (default: one per CPU, each with
one torch thread, which finishes a grid soonest: ``scripts/bench_threads.py``), with
``distrl-train experiment=<preset> agent=<a> env.game=<g> seed=<s> run_dir=<out>/<g>-<a>-seed<s>``
and, when every run has its final evaluation, calls ``report``. Runs already finished are
skipped, and an interrupted run resumes from its last checkpoint, so the same command (or a
longer list of agents and games into the same ``--out``) continues where it stopped.
``--background`` detaches the whole thing into its own process group, logging to
``<out>/atari100k.log``; ``stop`` sends it SIGINT, on which the training in progress writes a
checkpoint and the runner stops before starting another run. Each training also checkpoints
every 30 minutes of wall time (``trainer.checkpoint_minutes=30`` unless the overrides set it), so
a machine that stops without a signal loses at most that much.

``--games atari100k`` (or ``atari57``, ``atari55``) names a benchmark's whole game list. With
``--csv``, each run's row (game, agent, seed, preset, agent steps, final score, its standard
error, games, precision, threads, wall hours, machine, commit) is written to that CSV the moment
the run finishes (replacing an older row of the same game, agent, seed and preset), a run that
already has a row there (finished on another machine) is skipped, and with
``--commit`` the CSV alone is committed to its git repository at once, so that a finished run's
result survives the machine. ``status`` with ``--agents``/``--games``/``--seeds`` shows the whole
grid, runs not yet started included, and estimates the wall time left. ``--plan atari100k`` (for
``run`` and ``status``) stands for the whole benchmark of docs/results.md in its order, stage by
stage (``PLANS``).

``report`` runs ``distrl-report <out> --compare DER`` and draws one learning-curve panel per game:
the training games' raw scores (a moving average over 10 games) against frames for each run, the
final evaluations as markers, and the published DER, random and human scores as lines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

TOTAL_STEPS = 100_000  # agent steps of an Atari-100k run (400k frames)
CHECKPOINT_MINUTES = 30  # trainer.checkpoint_minutes unless the overrides set it
PID_FILE = "atari100k.pid"
LOG_FILE = "atari100k.log"
REFERENCE = (
    Path(__file__).resolve().parents[1]
    / "distrl_agents"
    / "evaluation"
    / "data"
    / "atari100k_published.csv"
)


def run_dirs(
    out: Path, pairs: list[tuple[str, str]], seeds: list[int]
) -> Iterator[tuple[str, str, int, Path]]:
    for agent, game in pairs:
        for seed in seeds:
            yield agent, game, seed, out / f"{game}-{agent}-seed{seed}"


def expand_games(games: list[str]) -> list[str]:
    """Game names, with a benchmark's name (``atari100k``, ``atari57``, ``atari55``) standing for
    all of its games, in the benchmark's order, and ``atari100k_subset`` for the six games every
    agent runs; duplicates dropped."""
    from distrl_agents.envs.games import BENCHMARKS

    out: list[str] = []
    for g in games:
        for game in SUBSET if g == "atari100k_subset" else BENCHMARKS.get(g, (g,)):
            if game not in out:
                out.append(game)
    return out


def agent_game_pairs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """``--agents`` x ``--games``, then each ``--runs agent:game``."""
    pairs = [(a, g) for g in expand_games(args.games) for a in args.agents]
    for spec in getattr(args, "runs", []):  # status has no --runs
        agent, sep, game = spec.partition(":")
        if not sep or not agent or not game:
            raise SystemExit(f"atari100k: --runs takes agent:game pairs (c51:pong), got {spec!r}")
        pairs.append((agent, game))
    if not pairs:
        raise SystemExit("atari100k: nothing to run: give --agents and --games, or --runs")
    return pairs


#: Named orders of runs for ``--plan``: stages of (agents, games, seeds), run one after another
#: (within a stage game by game, each game's agents together).
PLANS: dict[str, tuple[tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]], ...]] = {
    # The benchmark of docs/results.md in its order: C51 seed 0 on the 26 games; QR-DQN, IQN,
    # FQF and the expectile agent on the subset; C51 seed 1, then seed 2, on the 26 games (each
    # seed over all games first, so every game has its runs before any has three); then the
    # agents added since.
    "atari100k": (
        (("c51",), ("atari100k",), (0,)),
        (("qrdqn", "iqn", "fqf", "expectile"), ("atari100k_subset",), (0,)),
        (("c51",), ("atari100k",), (1,)),
        (("c51",), ("atari100k",), (2,)),
        (("hlgauss", "mmd"), ("atari100k_subset",), (0,)),
    ),
}


def planned_runs(args: argparse.Namespace, out: Path) -> list[tuple[str, str, int, Path]]:
    """(agent, game, seed, run directory) in the order they run: the stages of ``--plan``, or
    ``--agents`` x ``--games`` x ``--seeds`` and then ``--runs``; a run listed twice runs once."""
    if args.plan:
        if args.agents or args.games or getattr(args, "runs", []):
            raise SystemExit(
                f"atari100k: --plan {args.plan} names its own runs; leave out --agents, --games "
                "and --runs (or drop --plan)"
            )
        runs: list[tuple[str, str, int, Path]] = []
        for agents, games, seeds in PLANS[args.plan]:
            pairs = [(a, g) for g in expand_games(list(games)) for a in agents]
            runs += run_dirs(out, pairs, list(seeds))
    else:
        runs = list(run_dirs(out, agent_game_pairs(args), args.seeds))
    unique: dict[Path, tuple[str, str, int, Path]] = {}
    for run in runs:
        unique.setdefault(run[3], run)
    return list(unique.values())


def final_eval(run_dir: Path, total_steps: int | None = None) -> dict | None:
    """The run's evaluation at the end of training (its config's total_steps unless given), or
    None while it is not there yet."""
    path = run_dir / "evaluations.jsonl"
    if not path.is_file():
        return None
    if total_steps is None:
        config = json.loads((run_dir / "config.json").read_text())
        total_steps = int(config["trainer"]["total_steps"])
    last = None
    for line in path.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("agent_step", 0) >= total_steps:
                last = record
    return last


def checkpoint_step(run_dir: Path) -> int:
    steps = [int(p.name.split("_")[-1]) for p in (run_dir / "checkpoints").glob("step_*")]
    return max(steps, default=0)


# ------------------------------------------------------------------------------------- run
_stop_requested = False


def _request_stop(signum: int, _frame: object) -> None:
    global _stop_requested
    _stop_requested = True
    print(f"atari100k: signal {signum}: stopping after the run in progress checkpoints", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.background:
        return _detach(args, out)
    before = {sig: signal.signal(sig, _request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run_grid(args, out)
    finally:  # a caller in the same process (a test, a notebook) keeps its own handlers
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _run_grid(args: argparse.Namespace, out: Path) -> int:
    total = int(_override(args.overrides, "trainer.total_steps", None) or TOTAL_STEPS)
    pending = planned_runs(args, out)
    # Finished on another machine (or before this one's runs directory was lost): its row is the
    # result, so it is not trained again.
    elsewhere = recorded_runs(Path(args.csv) if args.csv else None, args.preset, total)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if args.jobs is None:  # one 1-thread run per CPU finishes a grid soonest (bench_threads.py)
        args.jobs = max(1, min(cpus or 1, len(pending)))
    threads = max(1, (cpus or 1) // args.jobs)
    running: dict[subprocess.Popen, tuple[Path, float, int]] = {}
    failed = 0
    stuck = 0  # failures in a row that trained nothing: the next run would fail the same way
    while (pending and not _stop_requested) or running:
        if pending and not _stop_requested and len(running) < args.jobs:
            agent, game, seed, run_dir = pending.pop(0)
            if final_eval(run_dir, total) is not None:
                print(f"atari100k: {run_dir.name}: finished, skipped", flush=True)
                continue
            if (game, agent, seed) in elsewhere:
                print(
                    f"atari100k: {run_dir.name}: finished (its row is in {args.csv}), skipped",
                    flush=True,
                )
                continue
            cmd = [
                tool("distrl-train"),
                f"experiment={args.preset}",
                f"agent={agent}",
                f"env.game={game}",
                f"seed={seed}",
                f"run_dir={run_dir}",
                *args.overrides,
            ]
            if _override(args.overrides, "trainer.torch_threads", None) is None:
                cmd.append(f"trainer.torch_threads={threads}")  # the jobs share the cores
            if _override(args.overrides, "trainer.checkpoint_minutes", None) is None:
                # Runs of hours on shared machines: lose at most this much to a hard stop.
                cmd.append(f"trainer.checkpoint_minutes={CHECKPOINT_MINUTES}")
            if args.nice:
                cmd = ["nice", "-n", str(args.nice), *cmd]
            print(f"atari100k: {' '.join(cmd)}", flush=True)
            commits, head = _lines(run_dir / "commit.txt"), head_commit()
            if not commits or commits[-1].strip() != head:
                run_dir.mkdir(parents=True, exist_ok=True)
                with open(run_dir / "commit.txt", "a") as f:  # this start's code
                    f.write(head + "\n")
            running[subprocess.Popen(cmd)] = (run_dir, time.time(), checkpoint_step(run_dir))
            continue
        time.sleep(1.0)
        for proc in [p for p in running if p.poll() is not None]:
            run_dir, start, step_before = running.pop(proc)
            hours = (time.time() - start) / 3600
            print(
                f"atari100k: {run_dir.name}: exit {proc.returncode} after {hours:.2f} h", flush=True
            )
            _log_wall_time(run_dir, hours)
            if args.csv and final_eval(run_dir, total) is not None:
                row = run_row(run_dir, args.preset, total)
                upsert_row(Path(args.csv), row)
                print(f"atari100k: {run_dir.name}: row written to {args.csv}", flush=True)
                if args.commit:
                    commit_csv(Path(args.csv), row)
            if proc.returncode != 0:
                print(f"atari100k: {run_dir.name} failed; see its output above", flush=True)
                failed += 1
                stuck = stuck + 1 if checkpoint_step(run_dir) == step_before else 0
                if stuck >= 2 and pending:
                    print(
                        f"atari100k: {stuck} runs in a row failed without training a step; "
                        f"not starting the other {len(pending)} (fix the error above, then run "
                        "the same command again: finished runs are skipped)",
                        flush=True,
                    )
                    pending.clear()
            else:
                stuck = 0
    if failed:
        return 1
    if _stop_requested:
        return 0
    return cmd_report(args)


def tool(name: str) -> str:
    """The project's console script installed beside this interpreter (a venv's bin/, used
    without activating it), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else name


def _override(overrides: list[str], key: str, default: str | None) -> str | None:
    for o in overrides:
        k, _, v = o.partition("=")
        if k.lstrip("+") == key:
            return v
    return default


def _log_wall_time(run_dir: Path, hours: float) -> None:
    """Each stretch of training, appended: the results page states each run's wall time."""
    if run_dir.is_dir():
        with open(run_dir / "wall_time.jsonl", "a") as f:
            f.write(json.dumps({"hours": round(hours, 4), "agent_step": checkpoint_step(run_dir)}))
            f.write("\n")


def _detach(args: argparse.Namespace, out: Path) -> int:
    pid_file = out / PID_FILE
    if pid_file.is_file() and _alive(int(pid_file.read_text())):
        print(f"atari100k: already running (pid {pid_file.read_text().strip()}) in {out}")
        return 1
    argv = [a for a in sys.argv if a != "--background"]
    log = open(out / LOG_FILE, "a")
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    pid_file.write_text(str(proc.pid))
    if args.nice:
        set_autogroup_nice(proc.pid, args.nice)
    print(f"atari100k: running in the background, pid {proc.pid}")
    print(f"  follow: tail -f {out / LOG_FILE}    progress: python {argv[0]} status --out {out}")
    print(f"  stop (checkpoints first): python {argv[0]} stop --out {out}")
    return 0


def set_autogroup_nice(pid: int, nice: int, proc: Path = Path("/proc")) -> bool:
    """Give the scheduler autogroup of ``pid`` (Linux: one per session) the niceness ``nice``.

    With autogroups on (``/proc/sys/kernel/sched_autogroup_enabled``), a process's nice value
    orders it only against processes of its own session: on 2 cores, a background grid's two
    trainings at ``nice -n 10`` ran at 44% CPU each beside another session's single training
    at ``nice -n 15``, which took 78%: each session had half of the machine. The autogroup's
    own nice value weighs the whole session against the others. Returns False where there is
    no autogroup to set (another OS, autogroups compiled out) or the kernel refuses."""
    try:
        (proc / str(pid) / "autogroup").write_text(f"{nice}\n")
        return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def cmd_stop(args: argparse.Namespace) -> int:
    pid_file = Path(args.out) / PID_FILE
    if not pid_file.is_file() or not _alive(pid := int(pid_file.read_text())):
        print(f"atari100k: nothing running in {args.out}")
        return 0
    os.killpg(pid, signal.SIGINT)  # the runner and the training in progress (its own group)
    print(f"atari100k: sent SIGINT to process group {pid}; the training checkpoints and stops")
    return 0


# ------------------------------------------------------------------------- the results CSV
CSV_FIELDS = (
    "game", "agent", "seed", "preset", "agent_steps", "score", "stderr", "episodes",
    "precision", "threads", "wall_hours", "machine", "commit",
)  # fmt: skip
_ROW_KEY = ("game", "agent", "seed", "preset")


def machine_name() -> str:
    """The CPU model (as /proc/cpuinfo names it) and, where it has them, its bf16 units: two
    machines both called "AMD EPYC" differ in them, and in speed."""
    from distrl_agents.training.precision import cpu_model

    try:
        flags = next(
            (
                x.split(":", 1)[1].split()
                for x in Path("/proc/cpuinfo").read_text().splitlines()
                if x.startswith("flags")
            ),
            [],
        )
    except OSError:
        flags = []
    units = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{cpu_model()} ({' '.join(units)})" if units else cpu_model()


def code_commit(run_dir: Path) -> str:
    """The commit of the code that trained the run, as the runner recorded it at each start
    (``commit.txt``, one line per commit): ``first..last`` when a resume ran newer code; else
    this checkout's HEAD."""
    recorded = _lines(run_dir / "commit.txt")
    if recorded:
        first, last = recorded[0].strip(), recorded[-1].strip()
        return first if first == last else f"{first}..{last}"
    return head_commit()


def head_commit() -> str:
    """This checkout's HEAD (12 hex digits), or ``unknown``."""
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_row(run_dir: Path, preset: str, total_steps: int | None = None) -> dict[str, str]:
    """The CSV row of a finished run (its final evaluation's mean, standard error and games)."""
    cfg = json.loads((run_dir / "config.json").read_text())
    final = final_eval(run_dir, total_steps)
    if final is None:
        raise ValueError(f"{run_dir} has no final evaluation yet")
    returns = [float(x) for x in final["episode_returns"]]
    sem = float(np.std(returns, ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0.0
    trainer = cfg.get("trainer", {})
    resolved = cfg.get("resolved", {}) if isinstance(cfg.get("resolved"), dict) else {}
    precision = resolved.get("precision", trainer.get("precision", ""))
    if isinstance(precision, dict):  # per part: update / acting / ...
        parts = sorted(precision.items())
        same = len({v for _, v in parts}) == 1
        precision = parts[0][1] if same else " ".join(f"{k}={v}" for k, v in parts)
    hours = sum(json.loads(x)["hours"] for x in _lines(run_dir / "wall_time.jsonl"))
    return {
        "game": cfg["env"]["game"],
        "agent": cfg["agent"]["name"],
        "seed": str(cfg["seed"]),
        "preset": preset,
        "agent_steps": str(final["agent_step"]),
        "score": f"{float(final['mean_return']):.2f}",
        "stderr": f"{sem:.2f}",
        "episodes": str(len(returns)),
        "precision": str(precision),
        "threads": str(trainer.get("torch_threads", "")),
        "wall_hours": f"{hours:.3f}",
        "machine": machine_name(),
        "commit": code_commit(run_dir),
    }


def read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def recorded_runs(
    path: Path | None, preset: str, total: int = TOTAL_STEPS
) -> dict[tuple[str, str, int], dict[str, str]]:
    """The runs of ``preset`` with a row in the CSV at ``path`` (finished on this machine or on
    another: the rows are committed as runs finish), ``(game, agent, seed) -> row``."""
    if path is None:
        return {}
    return {
        (r["game"], r["agent"], int(r["seed"])): r
        for r in read_rows(path)
        if r["preset"] == preset and int(r["agent_steps"]) == total
    }


def upsert_row(path: Path, row: dict[str, str]) -> None:
    """Write ``row`` into the CSV at ``path``, replacing the row of the same game, agent, seed
    and preset; rows stay sorted by preset, agent, seed, game. Written aside, then renamed."""
    key = tuple(row[k] for k in _ROW_KEY)
    rows = [r for r in read_rows(path) if tuple(r.get(k, "") for k in _ROW_KEY) != key]
    rows.append(row)
    rows.sort(key=lambda r: (r["preset"], r["agent"], int(r["seed"]), r["game"]))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in CSV_FIELDS} for r in rows)
    os.replace(tmp, path)


def commit_csv(path: Path, row: dict[str, str]) -> None:
    """Commit the CSV alone (``git commit -- <csv>``: whatever else is staged stays staged),
    retrying while another git command holds the index."""
    message = (  # names the CSV: an A/B grid's rows must not read as the benchmark's
        f"{path.name}: {row['game']} {row['agent']} seed {row['seed']} ({row['preset']}): "
        f"{row['score']} ± {row['stderr']} over {row['episodes']} games, {row['wall_hours']} h"
    )
    repo = path.resolve().parent
    for attempt in range(10):
        add = subprocess.run(["git", "add", "--", path.name], cwd=repo, capture_output=True)
        done = add.returncode == 0 and (
            subprocess.run(
                ["git", "commit", "-q", "-m", message, "--", path.name],
                cwd=repo,
                capture_output=True,
            ).returncode
            == 0
        )
        if done:
            print(f"atari100k: committed {path}: {message}", flush=True)
            return
        time.sleep(2.0 + attempt)
    print(f"atari100k: could not commit {path}; commit it by hand", flush=True)


# ------------------------------------------------------------- docs/results.md from the CSV
#: Published Atari-100k methods set beside our runs (atari100k_published.csv).
PUBLISHED_COLUMNS = ("DER", "DrQ", "SPR")
#: The games every agent runs (docs/results.md says why these six): ``--games atari100k_subset``.
SUBSET = ("road_runner", "krull", "jamesbond", "kung_fu_master", "assault", "crazy_climber")
TABLES_START = "<!-- atari100k tables: generated by scripts/atari100k.py tables; do not edit -->"
TABLES_END = "<!-- end of atari100k tables -->"


def _hns_value(x: float, game: str, rnd: dict[str, float], hum: dict[str, float]) -> float:
    return (x - rnd[game]) / (hum[game] - rnd[game])


def score_matrices(
    rows: list[dict[str, str]], preset: str
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Per agent, a ``[runs, games]`` HNS matrix over the games it ran, with as many runs per
    game as its game with the fewest finished seeds (the lowest seeds are used), as the
    stratified bootstrap needs; and the games of each matrix."""
    rnd, hum = published("random"), published("human")
    by_agent: dict[str, dict[str, dict[int, float]]] = {}
    for r in rows:
        if r["preset"] != preset or r["game"] not in rnd or r["game"] not in hum:
            continue
        by_agent.setdefault(r["agent"], {}).setdefault(r["game"], {})[int(r["seed"])] = float(
            r["score"]
        )
    matrices, games_of = {}, {}
    for agent, games in sorted(by_agent.items()):
        names = sorted(games)
        k = min(len(games[g]) for g in names)
        # row i holds each game's i-th lowest seed
        matrices[agent] = np.array(
            [
                [_hns_value(games[g][sorted(games[g])[i]], g, rnd, hum) for g in names]
                for i in range(k)
            ]
        )
        games_of[agent] = names
    return matrices, games_of


def published_run_matrix(
    method: str, games: list[str], runs: dict[str, list[float]] | None = None
) -> np.ndarray:
    """``[runs, games]`` HNS of a published method's per-run scores (rliable's runs,
    :func:`distrl_agents.evaluation.benchmarks.published_runs`, unless already read: ``runs``)
    on ``games``, in that order."""
    from distrl_agents.evaluation.benchmarks import published_runs

    rnd, hum = published("random"), published("human")
    runs = published_runs(method) if runs is None else runs
    return np.array([[_hns_value(x, g, rnd, hum) for x in runs[g]] for g in games]).T


def published_means_matrix(method: str, games: list[str]) -> np.ndarray:
    """``[1, games]`` HNS of a paper's published per-game means (one number per game, as one
    run) on ``games``, in that order."""
    rnd, hum, pub = published("random"), published("human"), published(method)
    return np.array([[_hns_value(pub[g], g, rnd, hum) for g in games]])


def _run_label(method: str, runs: int) -> str:
    return f"{method}, {runs} runs (rliable)"


def improvement_table(
    matrices: dict[str, np.ndarray], games_of: dict[str, list[str]], reps: int = 2000
) -> list[str]:
    """Markdown lines: each agent's probability of improvement over each published method with
    per-run scores (``benchmarks.published_run_methods``), on the games both have, with 95%
    stratified-bootstrap CIs (the runs of each resampled independently within each game)."""
    from distrl_agents.evaluation.aggregates import probability_of_improvement_ci
    from distrl_agents.evaluation.benchmarks import published_run_methods, published_runs

    runs_of = {method: published_runs(method) for method in published_run_methods()}

    out = [
        "",
        "### Probability of improvement over published scores (95% stratified-bootstrap CIs)",
        "",
        "| agent | over | games | runs/game (agent, other) | P(agent > other) |",
        "|---|---|---:|---|---|",
    ]
    der = published("DER")
    for agent, m in matrices.items():
        # DER's per-game means as one "run" per game: the share of games (ties half) where the
        # agent's runs beat DER's mean; its interval resamples the agent's runs alone.
        cols = [i for i, g in enumerate(games_of[agent]) if g in der]
        if cols:
            games = [games_of[agent][i] for i in cols]
            other = published_means_matrix("DER", games)
            ci = probability_of_improvement_ci(m[:, cols], other, reps=reps)
            above = int((m[:, cols].mean(axis=0) > other[0]).sum())
            out.append(
                f"| {agent} | DER (published means; {agent} above on {above} of "
                f"{len(games)} games) | {len(games)} | {m.shape[0]}, 1 | {_fmt_interval(ci)} |"
            )
        for method, have in runs_of.items():
            cols = [i for i, g in enumerate(games_of[agent]) if g in have]
            if not cols:
                continue
            games = [games_of[agent][i] for i in cols]
            other = published_run_matrix(method, games, have)
            ci = probability_of_improvement_ci(m[:, cols], other, reps=reps)
            out.append(
                f"| {agent} | {_run_label(method, other.shape[0])} | {len(games)} "
                f"| {m.shape[0]}, {other.shape[0]} | {_fmt_interval(ci)} |"
            )
    return out


def _fmt_interval(iv: tuple[float, float, float]) -> str:
    return f"{iv[0]:.3f} [{iv[1]:.3f}, {iv[2]:.3f}]"


def results_tables(rows: list[dict[str, str]], preset: str = "atari100k", reps: int = 2000) -> str:
    """Markdown: every run's game next to the published DER, DrQ and SPR means, random and human
    (our score the mean over the seeds that finished); then per agent IQM, median, mean and
    optimality gap of HNS with 95% stratified-bootstrap CIs, beside the same aggregates of the
    published per-game means on the same games and, with CIs, of rliable's per-run scores of
    DrQ(eps) and SPR; then each agent's probability of improvement over those runs."""
    from distrl_agents.evaluation.aggregates import METRICS, aggregate_metrics_with_ci
    from distrl_agents.evaluation.benchmarks import published_run_methods

    rnd, hum = published("random"), published("human")
    pub = {m: published(m) for m in PUBLISHED_COLUMNS}
    mine = [r for r in rows if r["preset"] == preset]
    if not mine:
        return f"No finished `{preset}` run in the CSV yet.\n"
    agents = sorted({r["agent"] for r in mine})
    games = sorted({r["game"] for r in mine})
    scores: dict[tuple[str, str], list[float]] = {}
    for r in mine:
        scores.setdefault((r["agent"], r["game"]), []).append(float(r["score"]))
    header = ["game", "random", "human", *PUBLISHED_COLUMNS]
    for a in agents:
        header += [f"{a} (seeds)", f"{a} HNS", f"{a} / DER"]
    lines = ["| " + " | ".join(header) + " |", "|---" + "|---:" * (len(header) - 1) + "|"]
    for g in games:
        cells = [g, f"{rnd.get(g, float('nan')):,.1f}", f"{hum.get(g, float('nan')):,.1f}"]
        cells += [f"{pub[m][g]:,.1f}" if g in pub[m] else "—" for m in PUBLISHED_COLUMNS]
        for a in agents:
            xs = scores.get((a, g))
            if not xs:
                cells += ["—", "—", "—"]
                continue
            x = float(np.mean(xs))
            hns = f"{_hns_value(x, g, rnd, hum):.3f}" if g in rnd and g in hum else "—"
            der = pub["DER"].get(g)
            ratio = f"{100 * x / der:.0f}%" if der else "—"
            cells += [f"{x:,.1f} ({len(xs)})", hns, ratio]
        lines.append("| " + " | ".join(cells) + " |")
    out = ["### Per game", "", *lines, ""]
    matrices, games_of = score_matrices(rows, preset)
    out += [
        "### Aggregates of human-normalized scores (95% stratified-bootstrap CIs)",
        "",
        "| agent | games | runs/game | IQM | median | mean | optimality gap |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for agent, m in matrices.items():
        ci = aggregate_metrics_with_ci(m, reps=reps)
        out.append(
            f"| {agent} | {m.shape[1]} | {m.shape[0]} | {_fmt_interval(ci['iqm'])} "
            f"| {_fmt_interval(ci['median'])} | {_fmt_interval(ci['mean'])} "
            f"| {_fmt_interval(ci['optimality_gap'])} |"
        )
        for method in PUBLISHED_COLUMNS:
            same = [g for g in games_of[agent] if g in pub[method]]
            if len(same) < len(games_of[agent]):
                continue
            row = published_means_matrix(method, same)
            vals = {k: float(fn(row)) for k, fn in METRICS.items()}
            out.append(
                f"| {method} (published means, same games) | {len(same)} | 1 "
                f"| {vals['iqm']:.3f} | {vals['median']:.3f} | {vals['mean']:.3f} "
                f"| {vals['optimality_gap']:.3f} |"
            )
        for method in published_run_methods():
            other = published_run_matrix(method, games_of[agent])
            ci = aggregate_metrics_with_ci(other, reps=reps)
            out.append(
                f"| {_run_label(method, other.shape[0])}, same games | {other.shape[1]} "
                f"| {other.shape[0]} | {_fmt_interval(ci['iqm'])} | {_fmt_interval(ci['median'])} "
                f"| {_fmt_interval(ci['mean'])} | {_fmt_interval(ci['optimality_gap'])} |"
            )
    out += improvement_table(matrices, games_of, reps)
    out += standing_table(mine)
    out += subset_tables(mine, reps)
    out += wall_time_table(mine)
    if any(m.shape[0] == 1 for m in matrices.values()):
        out += [
            "",
            "With one run per game the stratified bootstrap has nothing to resample (it draws "
            "runs within each game), so those intervals have no width until more seeds finish; "
            "the probability of improvement of such an agent then resamples the published runs "
            "alone, so its interval leaves out the agent's own run-to-run spread.",
        ]
    out += [
        "",
        'The rows "(published means, same games)" aggregate one number per game (each paper\'s '
        'mean over its seeds), so they have no interval. The rows "DrQ(eps), 100 runs '
        '(rliable)" and "SPR, 100 runs (rliable)" aggregate the 100 runs per game that '
        "Agarwal et al. 2021 (rliable) released for DrQ(ε) and SPR, with intervals "
        "(copied from github.com/eloialonso/iris; source, commit and SHA-256 in "
        "`distrl_agents/evaluation/data/atari100k_runs_sources.md`). DrQ(ε) is DrQ re-run by "
        "Agarwal et al. with ε-greedy evaluation, not the runs of the DrQ paper (Kostrikov et "
        "al. 2020) behind the DrQ columns, and its per-game means differ from theirs (the SPR "
        "runs' means differ from the SPR paper's too). The probability of improvement is "
        "P(agent > other) of Agarwal et al. 2021: over games, the mean of the fraction of "
        "(agent run, other run) pairs in which the agent scores higher, ties counting half. "
        "Per-run scores of DER (which rliable also released) are not available here, so the "
        "probability of improvement over DER takes DER's published per-game means as one run "
        "per game: the share of games in which the agent's runs beat DER's mean (ties half); "
        "its interval resamples the agent's runs alone, so it leaves out DER's own "
        "run-to-run spread and has no width until the agent has two runs per game.",
        "",
    ]
    return "\n".join(out)


def standing_table(rows: list[dict[str, str]]) -> list[str]:
    """Markdown lines: per game, where each agent's mean score falls among each published
    method's runs (rliable's): the share of those runs it beats (ties half). DER's mean alone
    can hide a score in the tail of what other runs reach."""
    from distrl_agents.evaluation.benchmarks import published_run_methods, published_runs

    runs_of = {method: published_runs(method) for method in published_run_methods()}
    scores: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        scores.setdefault(r["agent"], {}).setdefault(r["game"], []).append(float(r["score"]))
    agents = sorted(scores)
    games = sorted({g for a in agents for g in scores[a] if any(g in h for h in runs_of.values())})
    if not games:
        return []
    methods = " / ".join(_run_label(m, len(next(iter(h.values())))) for m, h in runs_of.items())
    out = [
        "",
        "### Where each score falls among the published runs",
        "",
        f"Share of the published runs ({methods}) on the game that the agent's mean score beats "
        "(ties half). Both methods are stronger than DER on most games, so low shares are "
        "expected; a game low here and below DER's mean in the per-game table is one to look at.",
        "",
        "| game | " + " | ".join(agents) + " |",
        "|---|" + "---:|" * len(agents),
    ]
    for g in games:
        cells = []
        for a in agents:
            if g not in scores[a]:
                cells.append("—")
                continue
            x = float(np.mean(scores[a][g]))
            shares = []
            for have in runs_of.values():
                runs = np.asarray(have.get(g, []), dtype=float)
                if runs.size:
                    share = (np.sum(x > runs) + 0.5 * np.sum(x == runs)) / runs.size
                    shares.append(f"{100 * share:.0f}%")
                else:
                    shares.append("—")
            cells.append(" / ".join(shares))
        out.append(f"| {g} | " + " | ".join(cells) + " |")
    return out


def subset_tables(rows: list[dict[str, str]], reps: int = 2000) -> list[str]:
    """Markdown lines: on the subset games that every agent with a subset run has finished,
    each agent's mean score per game with the game's winner, and each agent's HNS aggregates
    over those same games (empty while fewer than two agents have finished a subset game)."""
    from distrl_agents.evaluation.aggregates import aggregate_metrics_with_ci

    rnd, hum = published("random"), published("human")
    scores: dict[str, dict[str, dict[int, float]]] = {}
    for r in rows:
        if r["game"] in SUBSET:
            scores.setdefault(r["agent"], {}).setdefault(r["game"], {})[int(r["seed"])] = float(
                r["score"]
            )
    agents = sorted(scores)
    games = [g for g in SUBSET if all(g in scores[a] for a in agents)]
    if len(agents) < 2 or not games:
        return []
    der = published("DER")
    out = [
        "",
        f"### Agents on the subset ({len(games)} of its {len(SUBSET)} games finished by all "
        f"{len(agents)} agents)",
        "",
        "| game | DER | " + " | ".join(agents) + " | best |",
        "|---|---:|" + "---:|" * len(agents) + "---|",
    ]
    for g in games:
        means = {a: float(np.mean(list(scores[a][g].values()))) for a in agents}
        best = max(means, key=lambda a: means[a])
        cells = [f"{means[a]:,.1f}" + (f" ({len(scores[a][g])})" if len(scores[a][g]) > 1 else "")
                 for a in agents]  # fmt: skip
        out.append(
            f"| {g} | {der.get(g, float('nan')):,.1f} | " + " | ".join(cells) + f" | {best} |"
        )
    out += [
        "",
        "| agent | games | runs/game | IQM | median | mean | optimality gap |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for a in agents:
        k = min(len(scores[a][g]) for g in games)
        m = np.array(
            [[_hns_value(scores[a][g][sorted(scores[a][g])[i]], g, rnd, hum) for g in games]
             for i in range(k)]
        )  # fmt: skip
        ci = aggregate_metrics_with_ci(m, reps=reps)
        out.append(
            f"| {a} | {len(games)} | {k} | {_fmt_interval(ci['iqm'])} | "
            f"{_fmt_interval(ci['median'])} | {_fmt_interval(ci['mean'])} | "
            f"{_fmt_interval(ci['optimality_gap'])} |"
        )
    return out


def wall_time_table(rows: list[dict[str, str]]) -> list[str]:
    """Markdown lines: each agent's finished runs with their wall time, per run and in all, and
    the machines and thread counts they ran on."""
    out = [
        "",
        "### Wall time",
        "",
        "| agent | runs | hours in all | hours per run (min-max) | threads | machines |",
        "|---|---:|---:|---|---:|---|",
    ]
    total = 0.0
    for a in sorted({r["agent"] for r in rows}):
        mine = [r for r in rows if r["agent"] == a]
        hours = [float(r["wall_hours"]) for r in mine]
        total += sum(hours)
        threads = ", ".join(sorted({r["threads"] for r in mine}))
        machines = "; ".join(sorted({r["machine"] for r in mine}))
        out.append(
            f"| {a} | {len(mine)} | {sum(hours):.1f} | {np.mean(hours):.2f} "
            f"({min(hours):.2f}-{max(hours):.2f}) | {threads} | {machines} |"
        )
    out += [
        "",
        f"In all {len(rows)} runs, {total:.1f} hours of wall time (each run's training and its "
        "evaluations, every stretch of a resumed run counted; runs that shared a machine "
        "overlapped, so the calendar time was shorter).",
    ]
    return out


def cmd_collect(args: argparse.Namespace) -> int:
    """Rows of every finished run found below the given directories (a sweep's multirun/...,
    another machine's runs/atari100k) into the CSV; the preset is the run's experiment name."""
    found = 0
    for top in args.dirs:
        for config in sorted(Path(top).rglob("config.json")):
            run_dir = config.parent
            try:
                preset = str(json.loads(config.read_text()).get("name", ""))
                row = run_row(run_dir, preset)
            except (ValueError, KeyError, OSError) as exc:
                print(f"atari100k: {run_dir}: skipped ({exc})")
                continue
            upsert_row(Path(args.csv), row)
            found += 1
            print(
                f"atari100k: {run_dir}: {row['game']} {row['agent']} seed {row['seed']}: "
                f"{row['score']} ± {row['stderr']}"
            )
    print(f"atari100k: {found} finished run(s) written to {args.csv}")
    return 0 if found else 1


def cmd_tables(args: argparse.Namespace) -> int:
    """Regenerate docs/results.md's Atari-100k tables (between their markers) from the CSV."""
    rows = read_rows(Path(args.csv))
    text = results_tables(rows, args.preset)
    results = Path(args.results)
    doc = results.read_text() if results.is_file() else ""
    block = f"{TABLES_START}\n\n{text}\n{TABLES_END}"
    if TABLES_START in doc and TABLES_END in doc:
        head, rest = doc.split(TABLES_START, 1)
        doc = head + block + rest.split(TABLES_END, 1)[1]
    else:
        doc = doc.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(doc)
    print(text)
    if args.figure:
        for path in profile_figures(rows, args.preset, Path(args.figure)):
            print(f"atari100k: performance profiles -> {path}")
    print(f"atari100k: tables written to {results}")
    return 0


def _published_profiles(
    games: list[str], taus: np.ndarray, reps: int
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Performance profiles of the published scores on exactly ``games``: DER's per-game means
    (one score per game, no band: the paper's runs are not available here) and each method
    with per-run scores (rliable's runs, with stratified-bootstrap bands)."""
    from distrl_agents.evaluation.aggregates import performance_profile
    from distrl_agents.evaluation.benchmarks import published_run_methods, published_runs

    out = {}
    if all(g in published("DER") for g in games):
        row = published_means_matrix("DER", games)
        out["DER (published means)"] = performance_profile(row, taus, reps=0)
    for method in published_run_methods():
        runs = published_runs(method)
        if all(g in runs for g in games):
            m = published_run_matrix(method, games, runs)
            out[_run_label(method, m.shape[0])] = performance_profile(m, taus, reps=reps)
    return out


def profile_figures(
    rows: list[dict[str, str]], preset: str, stem: Path, reps: int = 2000
) -> list[Path]:
    """Performance profiles (HNS, tau in [0, 2]) beside the published scores on the same games:
    at ``stem``, the agents that ran the most games (C51 on the benchmark), each on those games;
    at ``<stem>_subset``, once two agents have finished subset games, every agent on the subset
    games all of them finished."""
    from distrl_agents.evaluation.aggregates import performance_profile
    from distrl_agents.evaluation.plots import plot_performance_profiles

    matrices, games_of = score_matrices(rows, preset)
    if not matrices:
        return []
    taus = np.linspace(0.0, 2.0, 81)
    widest = max(matrices, key=lambda a: len(games_of[a]))
    games = games_of[widest]
    figures = [(stem, {a: m for a, m in matrices.items() if games_of[a] == games}, games)]
    in_subset = [a for a in matrices if set(SUBSET) & set(games_of[a])]
    common = [g for g in SUBSET if all(g in games_of[a] for a in in_subset)]
    if len(in_subset) >= 2 and common:
        cols = {a: [games_of[a].index(g) for g in common] for a in in_subset}
        subset = {a: matrices[a][:, cols[a]] for a in in_subset}
        figures.append((stem.with_name(stem.name + "_subset"), subset, common))
    paths = []
    for path, mine, names in figures:
        runs = {a: m.shape[0] for a, m in mine.items()}
        profiles = {
            f"{a}, {runs[a]} run{'s' if runs[a] > 1 else ''} per game": prof
            for a, prof in performance_profile(mine, taus, reps).items()
        }
        published_profiles = _published_profiles(names, taus, reps)
        profiles.update(published_profiles)
        paths += plot_performance_profiles(
            taus,
            profiles,
            path,
            title="Atari 100k: performance profiles on "
            + (f"the same {len(names)} games" if len(names) > 1 else "one game"),
            dashed=[k for k in published_profiles if "published means" in k],
        )
    return paths


def ab_table(base: list[dict[str, str]], variant: list[dict[str, str]], label: str) -> str:
    """Markdown: the runs of ``variant`` (a changed setting: another CSV of the same grid) beside
    the runs of ``base`` with the same game, agent, seed and preset.

    Per pair: both scores with their standard errors (over the evaluation games of one trained
    agent: evaluation noise only, not the spread between seeds), the ratio, the difference of
    human-normalized scores and both wall times (comparable only where the runs shared a
    machine's load). Then over the pairs: the geometric mean of the score ratios and the mean
    HNS difference. Whether a difference is more than seed noise needs several pairs: one
    Atari-100k run alone spreads about +-20% between seeds."""
    rnd, hum = published("random"), published("human")
    key = ("game", "agent", "seed", "preset")
    by_key = {tuple(r[k] for k in key): r for r in base}
    out = [
        f"| game | agent | seed | base | {label} | ratio | HNS base | HNS {label} "
        "| hours base | hours " + label + " |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ratios, diffs = [], []
    for v in sorted(variant, key=lambda r: tuple(r[k] for k in key)):
        b = by_key.get(tuple(v[k] for k in key))
        if b is None:
            continue
        sb, sv = float(b["score"]), float(v["score"])
        hb, hv = _hns_value(sb, v["game"], rnd, hum), _hns_value(sv, v["game"], rnd, hum)
        ratio = sv / sb if sb > 0 and sv > 0 else float("nan")
        if np.isfinite(ratio):
            ratios.append(ratio)
        diffs.append(hv - hb)
        out.append(
            f"| {v['game']} | {v['agent']} | {v['seed']} | {sb:,.1f} ± {float(b['stderr']):,.1f} "
            f"| {sv:,.1f} ± {float(v['stderr']):,.1f} | {ratio:.3f} | {hb:.3f} | {hv:.3f} "
            f"| {float(b['wall_hours']):.2f} | {float(v['wall_hours']):.2f} |"
        )
    if not diffs:
        return f"No run of {label} has a base run with the same game, agent, seed and preset.\n"
    geo = float(np.exp(np.mean(np.log(ratios)))) if ratios else float("nan")
    out += [
        "",
        f"{len(diffs)} pairs: geometric mean of the score ratios {geo:.3f} ({len(ratios)} pairs "
        f"with both scores above 0); mean HNS difference ({label} - base) "
        f"{float(np.mean(diffs)):+.3f}.",
    ]
    return "\n".join(out) + "\n"


def cmd_ab(args: argparse.Namespace) -> int:
    """Print the A/B table of two CSVs of the grid (``ab_table``)."""
    print(ab_table(read_rows(Path(args.base)), read_rows(Path(args.variant)), args.label), end="")
    return 0


# ---------------------------------------------------------------------------------- diverge
# Logged figures that measure the machine, not the training: they differ between any two runs.
TIMING_TAGS = frozenset({"charts/SPS", "charts/updates_per_second"})


def logged_scalars(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every scalar of the run's TensorBoard files, tag -> {agent step: value}; a resumed run's
    later files replace the steps it logged again after its checkpoint."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[int, float]] = {}
    for events in sorted((run_dir / "tb").glob("events.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            series = out.setdefault(tag, {})
            for e in acc.Scalars(tag):
                series[e.step] = e.value
    return out


def divergence(
    a: dict[str, dict[int, float]], b: dict[str, dict[int, float]]
) -> list[tuple[str, int, int | None, int | None, float, float]]:
    """Per tag both runs logged (timing tags left out): (tag, steps logged by both, the last
    step up to which every common value is equal, the first step whose values differ or None,
    and the two values there). Two eager fp32 trainings of one seed and code on one machine
    agree bit for bit (at 1 or 2 threads, docs/performance.md) until one is resumed; any change
    of arithmetic order parts them a few thousand steps in."""
    rows = []
    for tag in sorted((set(a) & set(b)) - TIMING_TAGS):
        common = sorted(set(a[tag]) & set(b[tag]))
        first = next((s for s in common if a[tag][s] != b[tag][s]), None)
        agreed = [s for s in common if first is None or s < first]
        va, vb = (a[tag][first], b[tag][first]) if first is not None else (0.0, 0.0)
        rows.append((tag, len(common), agreed[-1] if agreed else None, first, va, vb))
    return rows


def cmd_diverge(args: argparse.Namespace) -> int:
    """Print where two runs' logged figures first differ (``divergence``)."""
    dirs = [Path(d) for d in args.runs]
    for d in dirs:
        if not (d / "tb").is_dir():
            print(f"atari100k: {d} has no tb/ folder of TensorBoard files; give a run directory")
            return 2
    rows = divergence(*(logged_scalars(d) for d in dirs))
    if not rows:
        print("atari100k: the two runs logged no figure in common")
        return 1
    print(f"{'figure':28s} {'both':>6s} {'equal to':>10s} {'differ at':>10s}  values there")
    for tag, n, agreed, first, va, vb in rows:
        where = f"{first:>10,d}  {va:.7g} / {vb:.7g}" if first is not None else f"{'-':>10s}"
        print(f"{tag:28s} {n:6d} {(f'{agreed:,d}' if agreed is not None else '-'):>10s} {where}")
    firsts = [r[3] for r in rows if r[3] is not None]
    if firsts:
        print(f"the runs part at agent step {min(firsts):,} (the first logged difference)")
    else:
        last = max((r[2] or 0) for r in rows)
        print(f"every figure logged by both runs is equal, through agent step {last:,}")
    return 0


# ---------------------------------------------------------------------------------- status
def cmd_status(args: argparse.Namespace) -> int:
    out = Path(args.out)
    dirs = sorted(p.parent for p in out.glob("*/config.json"))
    keys: dict[Path, tuple[str, str, int]] = {}  # (game, agent, seed) of the grid's runs
    if args.plan or (args.agents and args.games):  # those not started yet included
        keys = {d: (g, a, s) for a, g, s, d in planned_runs(args, out)}
        dirs = list(keys) + [d for d in dirs if d not in keys]
    if not dirs:
        print(f"atari100k: no runs in {out}")
        return 1
    counts = {"finished": 0, "started": 0, "not started": 0}
    finished_hours: dict[str, list[float]] = {}  # agent -> wall hours of its finished runs
    left: dict[str, float] = {}  # agent -> runs left, a run in progress counted by its steps
    rows = recorded_runs(Path(args.csv) if args.csv else None, args.preset)
    for d in dirs:
        final = final_eval(d) if (d / "config.json").is_file() else None
        key = keys.get(d) or _config_key(d)
        row = rows.get(key) if final is None and key is not None else None
        if row is not None:  # finished elsewhere: the CSV's row stands for it
            counts["finished"] += 1
            finished_hours.setdefault(row["agent"], []).append(float(row["wall_hours"]))
            print(
                f"{d.name:32s} final score {float(row['score']):.1f} ({row['episodes']} games; "
                f"row in {args.csv}); {float(row['wall_hours']):.2f} h of training"
            )
            continue
        assert key is not None  # a grid run, or a directory with its config
        agent = key[1]
        if not (d / "config.json").is_file():
            counts["not started"] += 1
            left[agent] = left.get(agent, 0.0) + 1.0
            print(f"{d.name:32s} not started")
            continue
        counts["finished" if final else "started"] += 1
        hours = sum(json.loads(x)["hours"] for x in _lines(d / "wall_time.jsonl"))
        if final:
            finished_hours.setdefault(agent, []).append(hours)
            state = (
                f"final score {final['mean_return']:.1f} ({len(final['episode_returns'])} games)"
            )
        else:
            saved, logged = checkpoint_step(d), logged_step(d)
            state = f"checkpoint at {saved:,} agent steps"
            if logged > saved:  # a training in progress (or one stopped without a checkpoint)
                state = f"logged to {logged:,} agent steps, last {state}"
            left[agent] = left.get(agent, 0.0) + max(0.0, 1.0 - max(saved, logged) / TOTAL_STEPS)
        print(f"{d.name:32s} {state}; {hours:.2f} h of training (finished stretches)")
    print(", ".join(f"{n} {k}" for k, n in counts.items()) + f" (of {len(dirs)} runs)")
    for line in time_left(finished_hours, left, args.jobs):
        print(line)
    return 0


def _config_key(run_dir: Path) -> tuple[str, str, int] | None:
    """(game, agent, seed) from a run directory's config, None where it has none yet."""
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    cfg = json.loads(path.read_text())
    return cfg["env"]["game"], cfg["agent"]["name"], int(cfg["seed"])


def time_left(
    finished_hours: dict[str, list[float]], left: dict[str, float], jobs: int | None = None
) -> list[str]:
    """Lines estimating the wall time the runs ``left`` (agent -> runs, a started run counted
    by the share of its steps still to train) need: each agent's runs at the median wall time of
    its finished runs here (as they were lived: with their evaluations, beside whatever else
    ran), over ``jobs`` runs at a time (default: one per CPU, as ``run``)."""
    if not left:
        return []
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    known = {a: float(np.median(h)) for a, h in finished_hours.items() if h}
    parts, unknown, hours = [], [], 0.0
    for agent, runs in sorted(left.items()):
        if agent in known:
            hours += runs * known[agent]
            parts.append(
                f"{agent} {runs:.1f} runs x {known[agent]:.2f} h "
                f"(median of {len(finished_hours[agent])} finished)"
            )
        else:
            unknown.append(f"{agent} ({runs:.1f} runs)")
    out = []
    if parts:
        out.append(
            f"left: about {hours:.1f} h of runs ({'; '.join(parts)}), about "
            f"{hours / max(1, jobs):.1f} h of wall time at {jobs} at a time"
        )
    if unknown:
        out.append("no finished run here to time, so not counted: " + ", ".join(unknown))
    return out


def logged_step(run_dir: Path) -> int:
    """The newest agent step in the run's TensorBoard files (0 if none): where a training in
    progress stands, which its last checkpoint may be far behind."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    newest = 0
    for events in sorted((run_dir / "tb").glob("events.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 1})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            newest = max(newest, *(e.step for e in acc.Scalars(tag)))
    return newest


def _lines(path: Path) -> list[str]:
    return [x for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


# ---------------------------------------------------------------------------------- report
def published(method: str) -> dict[str, float]:
    rows = csv.DictReader(x for x in REFERENCE.read_text().splitlines() if not x.startswith("#"))
    return {r["game"]: float(r[method]) for r in rows if r.get(method)}


def training_returns(run_dir: Path) -> tuple[list[int], list[float]]:
    """(frames, raw score) of every finished training game, from the run's TensorBoard files."""
    frameskip = int(json.loads((run_dir / "config.json").read_text())["env"].get("frameskip", 4))
    points = logged_scalars(run_dir).get("charts/episodic_return", {})
    steps = sorted(points)
    return [frameskip * s for s in steps], [points[s] for s in steps]


def plot_curves(out: Path, figure: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from distrl_agents.evaluation.plots import frames_axis

    dirs = sorted(p.parent for p in out.glob("*/config.json"))
    games = sorted({json.loads((d / "config.json").read_text())["env"]["game"] for d in dirs})
    der, rnd, hum = published("DER"), published("random"), published("human")
    fig, axes = plt.subplots(1, len(games), figsize=(4.2 * len(games), 3.2), squeeze=False)
    for ax, game in zip(axes[0], games):
        for d in dirs:
            cfg = json.loads((d / "config.json").read_text())
            if cfg["env"]["game"] != game:
                continue
            frames, returns = training_returns(d)
            label = f"{cfg['agent']['name']} seed {cfg['seed']}"
            if returns:
                k = min(10, len(returns))
                smooth = np.convolve(returns, np.ones(k) / k, mode="valid")
                (line,) = ax.plot(frames[k - 1 :], smooth, label=label + " (training)")
                final = final_eval(d)
                if final:
                    ax.plot(final["frames"], final["mean_return"], "o", color=line.get_color())
        for name, scores, style in (("DER", der, "--"), ("random", rnd, ":"), ("human", hum, ":")):
            if game in scores:
                ax.axhline(scores[game], ls=style, color="grey", lw=1)
                ax.annotate(name, (0, scores[game]), fontsize=7, color="grey", va="bottom")
        ax.set_title(game)
        frames_axis(ax)
        ax.set_ylabel("raw score")
        ax.set_xlim(0, 4 * TOTAL_STEPS)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=80)
    plt.close(fig)
    return figure


def _hns(x: float | None, game: str, rnd: dict[str, float], hum: dict[str, float]) -> str:
    """Human-normalized score ``(x - random) / (human - random)``, or a dash."""
    if x is None or game not in rnd or game not in hum:
        return "—"
    return f"{(x - rnd[game]) / (hum[game] - rnd[game]):.3f}"


def results_table(out: Path) -> str:
    """Markdown: each run's final score next to DER's, random and human, its human-normalized
    score and the wall time it trained (every stretch, evaluation included)."""
    der, rnd, hum = published("DER"), published("random"), published("human")
    rows = [
        "| game | agent | seed | agent steps | final score (games) | DER | random | human "
        "| HNS | DER HNS | wall time |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for d in sorted(p.parent for p in out.glob("*/config.json")):
        cfg = json.loads((d / "config.json").read_text())
        game, final = cfg["env"]["game"], final_eval(d)
        hours = sum(json.loads(x)["hours"] for x in _lines(d / "wall_time.jsonl"))
        if final:
            returns = final["episode_returns"]
            sem = float(np.std(returns, ddof=1) / np.sqrt(len(returns))) if len(returns) > 1 else 0
            score, steps = (
                f"{final['mean_return']:.1f} ± {sem:.1f} ({len(returns)})",
                final["agent_step"],
            )
        else:
            score, steps = "not finished", checkpoint_step(d)

        rows.append(
            f"| {game} | {cfg['agent']['name']} | {cfg['seed']} | {steps:,} | {score} "
            f"| {der.get(game, float('nan')):.1f} | {rnd.get(game, float('nan')):.1f} "
            f"| {hum.get(game, float('nan')):.1f} "
            f"| {_hns(final['mean_return'] if final else None, game, rnd, hum)} | {_hns(der.get(game), game, rnd, hum)} "
            f"| {hours:.2f} h |"
        )
    return "\n".join(rows) + "\n"


def cmd_report(args: argparse.Namespace) -> int:
    out = Path(args.out)
    figure = Path(args.figure) if args.figure else out / "report" / "atari100k_curves.png"
    print(f"atari100k: learning curves -> {plot_curves(out, figure)}", flush=True)
    table = results_table(out)
    (out / "report").mkdir(parents=True, exist_ok=True)
    (out / "report" / "atari100k_results.md").write_text(table)
    print(table, flush=True)
    return subprocess.call(
        [tool("distrl-report"), str(out), "--compare", "DER", "--out", str(out / "report")]
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train (resumes; skips finished runs), then report")
    run.add_argument("--agents", nargs="+", default=[], help="with --games: every pair")
    run.add_argument("--games", nargs="+", default=[])
    run.add_argument("--runs", nargs="+", default=[], help="agent:game pairs, e.g. c51:pong")
    run.add_argument("--seeds", nargs="+", type=int, default=[0])
    run.add_argument(
        "--plan",
        choices=sorted(PLANS),
        default=None,
        help="a named order of runs instead of --agents/--games/--seeds: atari100k is the whole "
        "benchmark (C51 seed 0 on its 26 games, four agents on the subset, C51 seeds 1 and 2, "
        "HL-Gauss and MMD-DQN on the subset)",
    )
    run.add_argument("--preset", default="atari100k", choices=["atari100k", "atari100k_dopamine"])
    run.add_argument("--background", action="store_true", help="detach; log to <out>/atari100k.log")
    run.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the training processes (with --background, of the whole detached "
        "session's scheduler autogroup too)",
    )
    run.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="trainings at a time, each with CPUs // jobs torch threads (default: one per CPU, "
        "one thread each: the most agent steps per hour in all; docs/performance.md)",
    )
    run.add_argument("--csv", default=None, help="write each finished run's row to this CSV")
    run.add_argument("--commit", action="store_true", help="git-commit the CSV at each row")
    run.add_argument("overrides", nargs="*", help="extra distrl-train overrides (after --)")
    status = sub.add_parser("status")
    status.add_argument("--agents", nargs="+", default=[])
    status.add_argument("--games", nargs="+", default=[])
    status.add_argument("--seeds", nargs="+", type=int, default=[0])
    status.add_argument("--plan", choices=sorted(PLANS), default=None, help="as for run")
    status.add_argument(
        "--csv", default=None, help="runs with a row here count as finished (as for run)"
    )
    status.add_argument("--preset", default="atari100k", help="the rows' preset (with --csv)")
    status.add_argument(
        "--jobs", type=int, default=None, help="runs at a time, for the time left (default: CPUs)"
    )
    for name in ("stop", "report"):
        sub.add_parser(name)
    collect = sub.add_parser("collect", help="finished runs below DIRS into the CSV")
    collect.add_argument("dirs", nargs="+")
    collect.add_argument("--csv", default="docs/results/atari100k_runs.csv")
    tables = sub.add_parser("tables", help="docs/results.md's Atari-100k tables from the CSV")
    tables.add_argument("--csv", default="docs/results/atari100k_runs.csv")
    tables.add_argument("--results", default="docs/results.md")
    tables.add_argument("--preset", default="atari100k")
    ab = sub.add_parser("ab", help="a variant's runs beside the same runs of the base CSV")
    ab.add_argument("--base", default="docs/results/atari100k_runs.csv")
    ab.add_argument("--variant", required=True, help="CSV of the runs with a changed setting")
    ab.add_argument("--label", default="variant", help="the variant's name in the table")
    diverge = sub.add_parser("diverge", help="where two runs' logged figures first differ")
    diverge.add_argument("runs", nargs=2, help="two run directories")
    for parser in sub.choices.values():
        parser.add_argument("--out", default="runs/atari100k", help="directory of the runs")
        parser.add_argument("--figure", default=None, help="learning-curve PNG (report)")
    args = p.parse_args(argv)
    commands = {
        "run": cmd_run,
        "status": cmd_status,
        "stop": cmd_stop,
        "report": cmd_report,
        "tables": cmd_tables,
        "collect": cmd_collect,
        "ab": cmd_ab,
        "diverge": cmd_diverge,
    }
    return commands[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
