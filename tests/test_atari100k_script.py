"""scripts/atari100k.py: which runs are finished, and the results table it writes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "atari100k.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("atari100k_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(out: Path, game: str, agent: str, evals: list[dict], hours: list[float]) -> Path:
    d = out / f"{game}-{agent}-seed0"
    d.mkdir(parents=True)
    config = {
        "env": {"game": game, "frameskip": 4},
        "agent": {"name": agent},
        "seed": 0,
        "trainer": {"total_steps": 100_000},
    }
    (d / "config.json").write_text(json.dumps(config))
    (d / "evaluations.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    (d / "wall_time.jsonl").write_text(
        "".join(json.dumps({"hours": h, "agent_step": 0}) + "\n" for h in hours)
    )
    return d


def test_final_evaluation_is_the_one_at_the_end_of_training(script, tmp_path: Path) -> None:
    early = {"agent_step": 50_000, "mean_return": 1.0, "episode_returns": [1.0]}
    d = _run(tmp_path, "pong", "c51", [early], [0.5])
    assert script.final_eval(d) is None  # only the mid-run evaluation
    final = {"agent_step": 100_000, "mean_return": 3.0, "episode_returns": [2.0, 4.0]}
    d2 = _run(tmp_path, "breakout", "c51", [early, final], [1.0])
    assert script.final_eval(d2) == final


def test_results_table_normalizes_by_the_published_random_and_human_scores(
    script, tmp_path: Path
) -> None:
    rnd, hum, der = script.published("random"), script.published("human"), script.published("DER")
    final = {"agent_step": 100_000, "mean_return": 20.0, "episode_returns": [10.0, 30.0]}
    _run(tmp_path, "breakout", "c51", [final], [1.25, 0.5])
    _run(tmp_path, "road_runner", "iqn", [], [0.25])
    rows = script.results_table(tmp_path).splitlines()
    assert len(rows) == 4
    breakout = [c.strip() for c in rows[2].strip("|").split("|")]
    hns = (20.0 - rnd["breakout"]) / (hum["breakout"] - rnd["breakout"])
    assert breakout[:5] == ["breakout", "c51", "0", "100,000", "20.0 ± 10.0 (2)"]
    assert float(breakout[5]) == pytest.approx(der["breakout"], abs=0.05)
    assert float(breakout[8]) == pytest.approx(hns, abs=5e-4)
    assert breakout[-1] == "1.75 h"  # every stretch of training summed
    assert "not finished" in rows[3] and "0.25 h" in rows[3]


def test_status_shows_where_a_training_in_progress_stands(
    script, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    d = _run(tmp_path, "road_runner", "iqn", [], [0.5])
    (d / "checkpoints" / "step_000000008860").mkdir(parents=True)
    with SummaryWriter(str(d / "tb")) as writer:
        for step in (9_000, 20_000, 24_122):
            writer.add_scalar("charts/SPS", 5.0, step)
    assert script.logged_step(d) == 24_122
    assert script.main(["status", "--out", str(tmp_path)]) == 0
    line = capsys.readouterr().out.strip()
    assert "logged to 24,122 agent steps, last checkpoint at 8,860 agent steps" in line, line


def test_status_estimates_the_time_left_from_finished_runs(
    script, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    final = {"agent_step": 100_000, "mean_return": 1.0, "episode_returns": [1.0]}
    _run(tmp_path, "alien", "c51", [final], [0.5])
    _run(tmp_path, "amidar", "c51", [final], [0.25, 0.75])  # two stretches: 1.0 h
    _run(tmp_path, "assault", "c51", [final], [2.0])
    started = _run(tmp_path, "asterix", "c51", [], [0.1])
    (started / "checkpoints" / "step_000000025000").mkdir(parents=True)
    argv = ["status", "--out", str(tmp_path), "--agents", "c51", "iqn", "--jobs", "2"]
    argv += ["--games", "alien", "amidar", "assault", "asterix", "boxing"]
    assert script.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    # c51: asterix 0.75 of a run left, boxing one run; median of 0.5, 1.0 and 2.0 h is 1.0 h.
    assert lines[-3] == "3 finished, 1 started, 6 not started (of 10 runs)"
    assert lines[-2] == (
        "left: about 1.8 h of runs (c51 1.8 runs x 1.00 h (median of 3 finished)), "
        "about 0.9 h of wall time at 2 at a time"
    )
    assert lines[-1] == "no finished run here to time, so not counted: iqn (5.0 runs)"
    assert script.time_left({}, {}) == []


def test_the_benchmark_plan_runs_its_stages_in_order(
    script, tmp_path: Path, capsys: pytest.CaptureFixture[str], failing_trainings: list[list[str]]
) -> None:
    args = script.argparse.Namespace(plan="atari100k", agents=[], games=[], runs=[], seeds=[0])
    runs = script.planned_runs(args, tmp_path)
    names = [d.name for *_, d in runs]
    assert len(runs) == len(set(names)) == 26 + 6 * 4 + 26 + 26 + 6 * 2  # 114
    assert names[0] == "alien-c51-seed0" and names[25] == "up_n_down-c51-seed0"
    subset = names[26:50]  # game by game, the four agents of each game together
    assert subset[:4] == [f"road_runner-{a}-seed0" for a in ("qrdqn", "iqn", "fqf", "expectile")]
    assert subset[-1] == "crazy_climber-expectile-seed0"
    assert names[50] == "alien-c51-seed1" and names[75] == "up_n_down-c51-seed1"
    assert names[76] == "alien-c51-seed2" and names[-1] == "crazy_climber-mmd-seed0"
    with pytest.raises(SystemExit, match="--plan atari100k names its own runs"):
        script.planned_runs(script.argparse.Namespace(
            plan="atari100k", agents=["c51"], games=[], runs=[], seeds=[0]), tmp_path)  # fmt: skip
    # run --plan starts the plan's first runs (here they fail at once: two, then it stops);
    # status --plan lists all 114 and what is left.
    assert script.main(["run", "--plan", "atari100k", "--jobs", "1", "--out", str(tmp_path)]) == 1
    assert [c[c.index("env.game=alien") - 1 :][:3] for c in failing_trainings[:1]] == [
        ["agent=c51", "env.game=alien", "seed=0"]
    ]
    assert "env.game=amidar" in failing_trainings[1]
    capsys.readouterr()
    assert script.main(["status", "--plan", "atari100k", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0 finished, 0 started, 114 not started (of 114 runs)" in out
    assert "not counted: c51 (78.0 runs), expectile (6.0 runs)" in out


def test_benchmark_names_expand_to_their_games(script) -> None:
    games = script.expand_games(["atari100k"])
    assert len(games) == 26 and games[0] == "alien" and "road_runner" in games
    assert script.expand_games(["pong", "atari100k"])[:2] == ["pong", "alien"]
    assert script.expand_games(["pong", "pong"]) == ["pong"]


def test_finished_runs_become_csv_rows_replacing_older_ones(script, tmp_path: Path) -> None:
    final = {"agent_step": 100_000, "mean_return": 20.0, "episode_returns": [10.0, 30.0]}
    d = _run(tmp_path / "runs", "breakout", "c51", [final], [1.25, 0.5])
    (d / "commit.txt").write_text("abc123\n")
    row = script.run_row(d, "atari100k")
    assert row["score"] == "20.00" and row["stderr"] == "10.00" and row["episodes"] == "2"
    assert row["wall_hours"] == "1.750" and row["commit"] == "abc123"
    csv_path = tmp_path / "results" / "runs.csv"
    script.upsert_row(csv_path, row)
    script.upsert_row(csv_path, {**row, "game": "alien"})
    script.upsert_row(csv_path, {**row, "score": "25.00"})  # the same run again: replaced
    rows = script.read_rows(csv_path)
    assert [(r["game"], r["score"]) for r in rows] == [("alien", "20.00"), ("breakout", "25.00")]
    assert list(rows[0]) == list(script.CSV_FIELDS)
    with pytest.raises(ValueError, match="no final evaluation"):
        script.run_row(_run(tmp_path / "runs", "pong", "c51", [], [0.1]), "atari100k")


def _row(game: str, agent: str, seed: int, score: float) -> dict[str, str]:
    return {
        "game": game,
        "agent": agent,
        "seed": str(seed),
        "preset": "atari100k",
        "score": str(score),
        "wall_hours": "0.5",
        "threads": "1",
        "machine": "CPU X",
    }


def test_results_tables_aggregate_hns_beside_the_published_means(script, tmp_path: Path) -> None:
    rnd, hum, der = script.published("random"), script.published("human"), script.published("DER")
    # Scores at exactly HNS 0.5 and 1.0 on two games; one game has a second seed.
    half = {g: rnd[g] + 0.5 * (hum[g] - rnd[g]) for g in ("pong", "breakout")}
    rows = [
        _row("pong", "c51", 0, half["pong"]),
        _row("pong", "c51", 1, hum["pong"]),
        _row("breakout", "c51", 0, half["breakout"]),
    ]
    matrices, games = script.score_matrices(rows, "atari100k")
    # One run per game (breakout has one seed): the lowest seed of each game.
    assert games["c51"] == ["breakout", "pong"]
    assert matrices["c51"] == pytest.approx(np.array([[0.5, 0.5]]))
    text = script.results_tables(rows, reps=200)
    lines = text.splitlines()
    pong = next(x for x in lines if x.startswith("| pong |"))
    # our mean over the two seeds: HNS 0.75; next to DER's published mean
    mean_pong = (half["pong"] + hum["pong"]) / 2
    assert f"{mean_pong:,.1f} (2)" in pong and "| 0.750 |" in pong
    assert f"{100 * mean_pong / der['pong']:.0f}%" in pong
    agg = next(x for x in lines if x.startswith("| c51 |"))
    assert "| 2 | 1 | 0.500 [0.500, 0.500]" in agg
    der_row = next(x for x in lines if x.startswith("| DER (published"))
    der_hns = [(der[g] - rnd[g]) / (hum[g] - rnd[g]) for g in ("breakout", "pong")]
    assert f"| {np.mean(der_hns):.3f} |" in der_row  # its mean over the same two games
    # regenerated in place between the markers, the rest of the page kept
    page = tmp_path / "results.md"
    page.write_text("# Results\n\nkept\n")
    csv_path = tmp_path / "runs.csv"
    for r in rows:
        script.upsert_row(csv_path, {**r, "agent_steps": "100000"})
    args = type("A", (), {"csv": csv_path, "results": page, "preset": "atari100k", "figure": None})
    assert script.cmd_tables(args) == 0
    assert script.cmd_tables(args) == 0
    doc = page.read_text()
    assert doc.startswith("# Results\n\nkept\n") and doc.count(script.TABLES_START) == 1


def test_results_tables_add_rliable_runs_with_intervals_and_probability_of_improvement(
    script,
) -> None:
    from distrl_agents.evaluation.aggregates import aggregate_metrics
    from distrl_agents.evaluation.benchmarks import published_runs

    drq, spr = published_runs("DrQ(eps)"), published_runs("SPR")
    # pong: above every published run of both; boxing: below all of them. Two seeds each.
    top = max(max(drq["pong"]), max(spr["pong"])) + 1.0
    bottom = min(min(drq["boxing"]), min(spr["boxing"])) - 1.0
    rows = [
        _row(g, "c51", seed, x) for g, x in (("pong", top), ("boxing", bottom)) for seed in (0, 1)
    ]
    lines = script.results_tables(rows, reps=200).splitlines()
    # The published-means rows stay; rliable's runs join them, with intervals, on the same games.
    assert any(x.startswith("| DrQ (published means, same games) | 2 | 1 |") for x in lines)
    for method in ("DrQ(eps)", "SPR"):
        row = next(x for x in lines if x.startswith(f"| {method}, 100 runs (rliable), same games"))
        assert "| 2 | 100 |" in row
        m = script.published_run_matrix(method, ["boxing", "pong"])
        assert m.shape == (100, 2)
        cells = [c.strip() for c in row.strip("|").split("|")][3:]
        for cell, name in zip(cells, ("iqm", "median", "mean", "optimality_gap")):
            point, low, high = _interval(cell)
            assert point == pytest.approx(aggregate_metrics(m)[name], abs=5e-4), (method, name)
            assert low <= point <= high and low < high, (method, name)
    # Always above on one game, always below on the other: P = (1 + 0) / 2, and no resample of
    # runs within a game can change either game's comparison.
    for method in ("DrQ(eps)", "SPR"):
        row = next(x for x in lines if x.startswith(f"| c51 | {method}, 100 runs (rliable) |"))
        assert row.endswith("| 2 | 2, 100 | 0.500 [0.500, 0.500] |")
    text = "\n".join(lines)
    assert "over DER takes DER's published per-game means as one run per game" in text
    # Where each game's mean falls among the published runs: above all, below all.
    assert "| boxing | 0% / 0% |" in lines and "| pong | 100% / 100% |" in lines
    assert "not stored in this repository" not in text


def test_standing_counts_the_published_runs_below_each_mean_score(script) -> None:
    from distrl_agents.evaluation.benchmarks import published_runs

    krull = np.sort(np.asarray(published_runs("DrQ(eps)")["krull"], dtype=float))
    x = float(krull[9])  # above runs 0-8, tied with run 9 (and any equal to it)
    rows = [_row("krull", "c51", 0, x - 1.0), _row("krull", "c51", 1, x + 1.0)]  # mean x
    rows += [_row("krull", "iqn", 0, 1e9), _row("pong", "iqn", 0, -1e9)]
    lines = script.standing_table(rows)
    head = next(i for i, line in enumerate(lines) if line.startswith("| game |"))
    assert lines[head] == "| game | c51 | iqn |"
    below, ties = int(np.sum(krull < x)), int(np.sum(krull == x))
    drq = f"{100 * (below + 0.5 * ties) / krull.size:.0f}%"
    krull_row = next(line for line in lines if line.startswith("| krull |"))
    assert krull_row.startswith(f"| krull | {drq} / ") and krull_row.endswith(" | 100% / 100% |")
    assert "| pong | — | 0% / 0% |" in lines  # c51 did not run pong
    assert script.standing_table([_row("not_a_game", "c51", 0, 1.0)]) == []


def _interval(cell: str) -> tuple[float, float, float]:
    """``"0.306 [0.293, 0.321]"`` -> ``(0.306, 0.293, 0.321)``."""
    point, rest = cell.split(" [")
    low, high = rest.rstrip("]").split(", ")
    return float(point), float(low), float(high)


def test_probability_of_improvement_table_uses_each_agents_games_and_runs(script) -> None:
    from distrl_agents.evaluation.aggregates import probability_of_improvement
    from distrl_agents.evaluation.benchmarks import published_runs

    rnd, hum = script.published("random"), script.published("human")
    drq = published_runs("DrQ(eps)")
    # One run on krull at DrQ(eps)'s median krull score; iqn has only assault.
    krull = float(np.median(drq["krull"]))
    rows = [_row("krull", "c51", 0, krull), _row("assault", "iqn", 0, 10_000.0)]
    matrices, games_of = script.score_matrices(rows, "atari100k")
    lines = script.improvement_table(matrices, games_of, reps=200)
    c51 = next(x for x in lines if x.startswith("| c51 | DrQ(eps)"))
    hns = np.array([[(krull - rnd["krull"]) / (hum["krull"] - rnd["krull"])]])
    expected = float(
        probability_of_improvement(hns, script.published_run_matrix("DrQ(eps)", ["krull"]))
    )
    assert abs(expected - 0.5) < 0.02  # at the median: about half the runs below
    point, low, high = _interval(c51.split(" | ")[-1].rstrip(" |"))
    assert point == pytest.approx(expected, abs=5e-4) and low < point < high
    assert "| 1 | 1, 100 |" in c51
    iqn = next(x for x in lines if x.startswith("| iqn | SPR, 100 runs (rliable) |"))
    assert iqn.endswith("| 1 | 1, 100 | 1.000 [1.000, 1.000] |")  # above all of SPR's assault runs
    assert max(published_runs("SPR")["assault"]) < 10_000.0
    # Over DER's per-game means (one number a game): iqn's assault run is above DER's 431.2.
    assert (
        "| iqn | DER (published means; iqn above on 1 of 1 games) | 1 | 1, 1 | 1.000"
        in "\n".join(lines)
    )
    two = [_row("krull", "c51", s, x) for s, x in ((0, 100.0), (1, 5000.0))]  # DER: 2,851.5
    two += [_row("assault", "c51", s, 431.2) for s in (0, 1)]  # ties DER's mean: half
    m2, g2 = script.score_matrices(two, "atari100k")
    der_row = next(x for x in script.improvement_table(m2, g2, reps=200) if "DER (" in x)
    point, low, high = _interval(der_row.split(" | ")[-1].rstrip(" |"))
    assert point == pytest.approx((0.5 + 0.5) / 2) and low < point < high
    assert "c51 above on 0 of 2 games" in der_row  # means: krull 2,550 < 2,851.5; assault ties


def test_collect_writes_the_finished_runs_of_a_sweep(script, tmp_path: Path) -> None:
    final = {"agent_step": 100_000, "mean_return": 7.0, "episode_returns": [6.0, 8.0]}
    sweep = tmp_path / "multirun" / "atari100k" / "t"
    done = _run(sweep / "job0", "pong", "c51", [final], [0.5])
    config = json.loads((done / "config.json").read_text())
    (done / "config.json").write_text(json.dumps({**config, "name": "atari100k"}))
    _run(sweep / "job1", "breakout", "c51", [], [0.1])  # not finished: skipped
    args = type("A", (), {"dirs": [sweep], "csv": tmp_path / "runs.csv"})
    assert script.cmd_collect(args) == 0
    rows = script.read_rows(tmp_path / "runs.csv")
    assert [(r["game"], r["preset"], r["score"]) for r in rows] == [("pong", "atari100k", "7.00")]


def test_a_run_resumed_on_newer_code_names_both_commits(script, tmp_path: Path) -> None:
    final = {"agent_step": 100_000, "mean_return": 1.0, "episode_returns": [1.0]}
    d = _run(tmp_path, "pong", "c51", [final], [0.5])
    (d / "commit.txt").write_text("aaa\n")
    assert script.run_row(d, "atari100k")["commit"] == "aaa"
    (d / "commit.txt").write_text("aaa\nbbb\n")  # resumed by a later checkout
    assert script.run_row(d, "atari100k")["commit"] == "aaa..bbb"
    config = json.loads((d / "config.json").read_text())
    parts = {"update": "fp32", "target": "fp32", "acting": "fp32"}
    (d / "config.json").write_text(json.dumps({**config, "resolved": {"precision": parts}}))
    assert script.run_row(d, "atari100k")["precision"] == "fp32"
    parts["acting"] = "bf16"
    (d / "config.json").write_text(json.dumps({**config, "resolved": {"precision": parts}}))
    assert script.run_row(d, "atari100k")["precision"] == "acting=bf16 target=fp32 update=fp32"


def test_trainings_use_the_console_scripts_beside_the_running_interpreter(
    script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A venv's python run without activating the venv must not fall back to another install's
    # distrl-train on PATH.
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    (bindir / "distrl-train").write_text("#!/bin/sh\n")
    monkeypatch.setattr(script.sys, "executable", str(bindir / "python"))
    assert script.tool("distrl-train") == str(bindir / "distrl-train")
    assert script.tool("distrl-report") == "distrl-report"  # none beside it: PATH decides


@pytest.fixture
def failing_trainings(script, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every training the runner starts fails at once without a step; the list of their
    command lines fills as they start."""
    started: list[list[str]] = []

    class Failing:
        returncode = 1

        def __init__(self, cmd: list[str]) -> None:
            started.append(cmd)

        def poll(self) -> int:
            return 1

    monkeypatch.setattr(script.subprocess, "Popen", Failing)
    monkeypatch.setattr(script.time, "sleep", lambda _s: None)
    monkeypatch.setattr(script, "head_commit", lambda: "abc")
    return started


def test_runner_stops_when_runs_keep_failing_without_training(
    script, tmp_path: Path, failing_trainings: list[list[str]]
) -> None:
    started = failing_trainings
    before = script.signal.getsignal(script.signal.SIGINT)
    code = script.main(
        ["run", "--agents", "c51", "--games", "pong", "breakout", "qbert", "hero",
         "--seeds", "0", "--jobs", "1", "--out", str(tmp_path)]
    )  # fmt: skip
    assert code == 1
    assert len(started) == 2  # the other two were not started
    assert script.signal.getsignal(script.signal.SIGINT) is before  # handlers put back


def test_runs_with_a_committed_row_are_not_trained_again(
    script,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    failing_trainings: list[list[str]],
) -> None:
    # A fresh machine: no run directories, but the CSV holds rows committed on another one.
    csv_path = tmp_path / "runs.csv"
    row = {**_row("pong", "c51", 0, -20.0), "agent_steps": "100000", "episodes": "100"}
    script.upsert_row(csv_path, row)
    script.upsert_row(csv_path, {**row, "game": "breakout", "agent_steps": "50000"})  # shorter
    script.upsert_row(csv_path, {**row, "game": "qbert", "preset": "atari100k_dopamine"})
    out = tmp_path / "runs"
    argv = ["--agents", "c51", "--games", "pong", "breakout", "qbert", "--out", str(out)]
    assert script.main(["run", *argv, "--jobs", "1", "--csv", str(csv_path)]) == 1
    started = [next(a for a in cmd if a.startswith("env.game=")) for cmd in failing_trainings]
    assert started == ["env.game=breakout", "env.game=qbert"]  # pong skipped; then both failed
    assert (
        f"pong-c51-seed0: finished (its row is in {csv_path}), skipped" in capsys.readouterr().out
    )
    assert script.main(["status", *argv, "--csv", str(csv_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert (
        lines[0].startswith("pong-c51-seed0") and "final score -20.0 (100 games; row in" in lines[0]
    )
    assert "1 finished, 0 started, 2 not started (of 3 runs)" in lines
    assert "c51 2.0 runs x 0.50 h (median of 1 finished)" in lines[-1]


def test_subset_table_names_each_games_winner_over_the_games_all_agents_finished(script) -> None:
    rnd, hum = script.published("random"), script.published("human")
    at = {g: (lambda h, g=g: rnd[g] + h * (hum[g] - rnd[g])) for g in script.SUBSET}
    rows = [
        _row("krull", "c51", 0, at["krull"](0.5)),
        _row("krull", "iqn", 0, at["krull"](1.0)),
        _row("assault", "c51", 0, at["assault"](1.0)),
        _row("assault", "iqn", 0, at["assault"](0.25)),
        _row("pong", "iqn", 0, 5.0),  # not a subset game
        _row("jamesbond", "c51", 0, 100.0),  # iqn has not finished it: left out
    ]
    lines = script.results_tables(rows, reps=200).splitlines()
    assert any("2 of its 6 games finished by all 2 agents" in x for x in lines)
    krull = next(x for x in lines if x.startswith("| krull |") and x.endswith("| iqn |"))
    assert f"{at['krull'](0.5):,.1f}" in krull
    winners = {x.split(" | ")[0][2:]: x.split(" | ")[-1][:-2] for x in lines if x.endswith(
        ("| c51 |", "| iqn |")) and x.startswith(("| krull", "| assault", "| jamesbond"))}  # fmt: skip
    assert winners == {"krull": "iqn", "assault": "c51"}
    # per agent over the same two games: c51 HNS (1.0, 0.5), iqn (0.25, 1.0)
    subset_rows = [x for x in lines if x.startswith(("| c51 | 2 | 1 |", "| iqn | 2 | 1 |"))]
    assert len(subset_rows) == 2
    assert "| 0.750 [0.750, 0.750]" in subset_rows[0] and "0.625 [0.625, 0.625]" in subset_rows[1]
    # wall time: 3 c51 runs and 3 iqn runs of 0.5 h
    assert "| c51 | 3 | 1.5 | 0.50 (0.50-0.50) | 1 | CPU X |" in lines
    assert any("In all 6 runs, 3.0 hours" in x for x in lines)


def test_profile_figures_set_the_agents_beside_the_published_scores_on_the_same_games(
    script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distrl_agents.evaluation import plots

    drawn: dict[str, tuple[str, dict, list[str]]] = {}

    def plot(taus, profiles, stem, *, title, dashed):  # type: ignore[no-untyped-def]
        drawn[stem.name] = (title, dict(profiles), list(dashed))
        return [stem]

    monkeypatch.setattr(plots, "plot_performance_profiles", plot)
    rows = [_row(g, "c51", s, 1000.0) for g in ("alien", "krull", "road_runner") for s in (0, 1)]
    rows += [_row("krull", "iqn", 0, 3000.0), _row("pong", "iqn", 0, 0.0)]
    paths = script.profile_figures(rows, "atari100k", tmp_path / "profile", reps=20)
    assert [p.name for p in paths] == ["profile", "profile_subset"]
    title, profiles, dashed = drawn["profile"]  # c51's 3 games; iqn ran others
    assert title.endswith("on the same 3 games")
    assert list(profiles)[:2] == ["c51, 2 runs per game", "DER (published means)"]
    assert any(k.startswith("DrQ(eps), 100 runs") for k in profiles) and dashed == [
        "DER (published means)"
    ]
    # DER's means on these games, as a profile: the fraction of the 3 games above each tau.
    rnd, hum, der = script.published("random"), script.published("human"), script.published("DER")
    hns = sorted((der[g] - rnd[g]) / (hum[g] - rnd[g]) for g in ("alien", "krull", "road_runner"))
    der_profile = profiles["DER (published means)"][0]
    assert der_profile[0] == 1.0 and der_profile[-1] == pytest.approx(sum(h > 2.0 for h in hns) / 3)
    title, profiles, _ = drawn["profile_subset"]  # krull, the subset game both finished
    assert title.endswith("on one game")
    assert "c51, 2 runs per game" in profiles and "iqn, 1 run per game" in profiles
    krull = (3000.0 - rnd["krull"]) / (hum["krull"] - rnd["krull"])
    taus = np.linspace(0.0, 2.0, 81)
    np.testing.assert_array_equal(profiles["iqn, 1 run per game"][0], (krull > taus).astype(float))


def test_subset_name_expands_to_the_six_games(script) -> None:
    assert script.expand_games(["atari100k_subset", "pong"]) == [*script.SUBSET, "pong"]


def test_by_default_one_single_thread_training_runs_per_cpu(
    script, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_trainings: list[list[str]]
) -> None:
    started = failing_trainings
    monkeypatch.setattr(script.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3}, raising=False)
    games = ["pong", "breakout", "qbert", "hero", "alien", "amidar"]
    script.main(
        ["run", "--agents", "c51", "--games", *games, "--seeds", "0", "--out", str(tmp_path)]
    )
    assert len(started) == 4  # four at once before the first failures were seen
    assert all("trainer.torch_threads=1" in cmd for cmd in started)


def test_ab_table_pairs_runs_by_game_agent_seed_and_preset(script) -> None:
    rnd, hum = script.published("random"), script.published("human")
    base = [
        {**_row("alien", "c51", 0, 1000.0), "stderr": "10"},
        {**_row("amidar", "c51", 0, 100.0), "stderr": "1"},
        {**_row("amidar", "c51", 1, 50.0), "stderr": "1"},  # no variant run: left out
    ]
    variant = [
        {**_row("alien", "c51", 0, 1100.0), "stderr": "20", "wall_hours": "0.4"},
        {**_row("amidar", "c51", 0, 90.0), "stderr": "2"},
        {**_row("assault", "c51", 0, 500.0), "stderr": "5"},  # no base run: left out
    ]
    text = script.ab_table(base, variant, "compile=update")
    lines = text.splitlines()
    assert "| compile=update |" in lines[0]
    alien = next(x for x in lines if x.startswith("| alien |"))
    assert "| 1,000.0 ± 10.0 | 1,100.0 ± 20.0 | 1.100 |" in alien and "| 0.50 | 0.40 |" in alien
    h = [(s - rnd["alien"]) / (hum["alien"] - rnd["alien"]) for s in (1000.0, 1100.0)]
    assert f"| {h[0]:.3f} | {h[1]:.3f} |" in alien
    assert not any(x.startswith(("| assault", "| amidar | c51 | 1")) for x in lines)
    summary = lines[-1]
    assert summary.startswith("2 pairs:")
    assert f"{np.sqrt(1.1 * 0.9):.3f}" in summary  # geometric mean of the two ratios
    assert "No run" in script.ab_table(base, [variant[2]], "x")


def test_diverge_names_the_first_step_where_two_runs_differ(
    script, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    a = _run(tmp_path / "a", "amidar", "c51", [], [0.1])
    b = _run(tmp_path / "b", "amidar", "c51", [], [0.1])
    for d, loss_at_3k, sps in ((a, 2.5, 40.0), (b, 2.25, 90.0)):
        with SummaryWriter(str(d / "tb")) as writer:
            for step, loss in ((1_000, 3.0), (2_000, 2.75), (3_000, loss_at_3k), (4_000, 2.0)):
                writer.add_scalar("losses/loss", loss, step)
                writer.add_scalar("charts/SPS", sps, step)  # timing: differs, ignored
            writer.add_scalar("charts/replay_size", 1_000.0, 1_000)
    rows = {r[0]: r for r in script.divergence(script.logged_scalars(a), script.logged_scalars(b))}
    assert set(rows) == {"losses/loss", "charts/replay_size"}
    assert rows["losses/loss"] == ("losses/loss", 4, 2_000, 3_000, 2.5, 2.25)
    assert rows["charts/replay_size"][2:4] == (1_000, None)
    assert script.main(["diverge", str(a), str(b)]) == 0
    assert "the runs part at agent step 3,000" in capsys.readouterr().out
    assert script.main(["diverge", str(a), str(a)]) == 0
    assert "equal, through agent step 4,000" in capsys.readouterr().out
    assert script.main(["diverge", str(a), str(tmp_path)]) == 2
    assert "no tb/ folder" in capsys.readouterr().out


def test_background_nice_is_written_to_the_sessions_autogroup(script, tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "autogroup").write_text("/autogroup-7 nice 0\n")
    assert script.set_autogroup_nice(4242, 10, proc=tmp_path)
    assert (tmp_path / "4242" / "autogroup").read_text() == "10\n"
    assert not script.set_autogroup_nice(999, 10, proc=tmp_path)  # no such process: no error


def test_a_finished_runs_row_is_committed_alone_under_its_csvs_name(script, tmp_path: Path) -> None:
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=tmp_path, check=True, capture_output=True, text=True
        ).stdout

    git("init", "-q")
    git("config", "user.email", "ci@example.invalid")
    git("config", "user.name", "ci")
    (tmp_path / "other.txt").write_text("staged, not part of the row's commit\n")
    git("add", "other.txt")
    csv_path = tmp_path / "atari100k_compile_ab.csv"
    csv_path.write_text("game,score\nalien,590.6\n")
    row = {
        "game": "alien",
        "agent": "c51",
        "seed": "0",
        "preset": "atari100k",
        "score": "590.60",
        "stderr": "25.40",
        "episodes": "100",
        "wall_hours": "0.5",
    }
    script.commit_csv(csv_path, row)
    assert git("log", "-1", "--format=%s").startswith("atari100k_compile_ab.csv: alien c51 seed 0")
    assert git("show", "--name-only", "--format=", "HEAD").split() == ["atari100k_compile_ab.csv"]
    assert "A  other.txt" in git("status", "--short")
