"""distrl-report over synthetic run directories; the result file writer and reader."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from distrl_agents.cli.report import report_main
from distrl_agents.envs.games import ATARI55, ATARI57, ATARI100K
from distrl_agents.evaluation.benchmarks import benchmark_coverage, published_per_game
from distrl_agents.evaluation.normalization import human_normalized_score
from distrl_agents.evaluation.records import (
    FINAL_FILE,
    RESULTS_FILE,
    ReportError,
    append_result,
    find_run_dirs,
    load_run,
    write_final_result,
)
from distrl_agents.evaluation.report import build_report

GAMES = {"breakout": 20.0, "pong": -5.0, "ms_pacman": 1500.0}
AGENTS = {"c51": 1.0, "qrdqn": 1.5}
FRAMES = (100_000, 200_000, 400_000)


def final_score(agent: str, game: str, seed: int) -> float:
    """The synthetic final mean return of a run: mean over seeds 0, 1 is base * mult + 0.5."""
    return GAMES[game] * AGENTS[agent] + seed


def record(agent: str, game: str, seed: int, frames: int, score: float, **kw) -> dict:
    returns = [score - 1.0, score, score + 1.0]
    return {
        "agent": agent,
        "game": game,
        "seed": seed,
        "protocol": "machado",
        "agent_step": frames // 4,
        "frames": frames,
        "episode_returns": returns,
        "mean_return": float(np.mean(returns)),
        "hns": human_normalized_score(game, score),
        "source": "train",
        **kw,
    }


@pytest.fixture
def results(tmp_path: Path) -> Path:
    """2 agents x 3 games x 2 seeds. c51 as a Hydra multirun sweep dir (numbered subdirs),
    qrdqn nested one level deeper; three evaluation lines per run, the last one the final."""
    root = tmp_path / "results"
    i = 0
    for agent in AGENTS:
        for game in GAMES:
            for seed in (0, 1):
                run = (
                    root / "sweep" / str(i) if agent == "c51" else root / agent / game / f"s{seed}"
                )
                i += 1
                for k, frames in enumerate(FRAMES):
                    score = final_score(agent, game, seed) * (k + 1) / len(FRAMES)
                    append_result(run / RESULTS_FILE, record(agent, game, seed, frames, score))
    (root / "sweep" / ".hydra").mkdir(parents=True)  # sweep metadata: not a run
    return root


def run_report(capsys, *argv: str) -> tuple[int, str, str]:
    rc = report_main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------ report


def test_report_files_tables_and_coverage(results: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    rc, stdout, _ = run_report(
        capsys, str(results), "--out", str(out), "--reps", "200", "--no-plots"
    )
    assert rc == 0
    for name in ("report.md", "per_game.csv", "aggregates.csv", "aggregates.json"):
        assert (out / name).is_file(), name
    assert not list(out.glob("*.png"))

    # Benchmark coverage: 3 Atari-100k games of 400k-frame runs -> nearest Atari-100k, 23 missing.
    assert "custom: 3 games" in stdout
    assert "23 of its 26 games missing" in stdout
    assert "alien" in stdout and "up_n_down" in stdout
    assert (out / "report.md").read_text() in stdout

    rows = read_csv(out / "per_game.csv")
    assert len(rows) == 6
    for row in rows:
        agent, game = row["agent"], row["game"]
        expected = float(np.mean([final_score(agent, game, s) for s in (0, 1)]))
        assert float(row["raw_mean"]) == pytest.approx(expected)
        assert float(row["hns_mean"]) == pytest.approx(human_normalized_score(game, expected))
        assert row["n_seeds"] == "2" and row["seeds"] == "0 1"

    agg = json.loads((out / "aggregates.json").read_text())
    assert set(agg["agents"]) == {"c51", "qrdqn"}
    assert agg["benchmark"]["compared_with"] == "atari100k"
    assert len(agg["benchmark"]["missing"]) == 23
    c51 = agg["agents"]["c51"]
    assert c51["games"] == sorted(GAMES) and c51["runs_per_game"] == 2
    hns = [
        [float(human_normalized_score(g, final_score("c51", g, s))) for g in sorted(GAMES)]
        for s in (0, 1)
    ]
    assert c51["metrics"]["mean"]["point"] == pytest.approx(np.mean(hns))
    for m in c51["metrics"].values():
        assert m["low"] <= m["point"] + 1e-12 and m["point"] <= m["high"] + 1e-12
    agg_rows = read_csv(out / "aggregates.csv")
    assert {r["metric"] for r in agg_rows} == {"median", "iqm", "mean", "optimality_gap"}
    assert len(agg_rows) == 8


def test_default_out_dir_and_plots(results: Path, capsys) -> None:
    rc, _, _ = run_report(capsys, str(results), "--reps", "50")
    assert rc == 0
    out = results / "report"
    for stem in ("learning_curves", "aggregate_intervals", "performance_profiles"):
        for ext in ("png", "svg"):
            assert (out / f"{stem}.{ext}").stat().st_size > 1000
    # A second report over the same dirs does not pick its own output up as runs.
    rc2, stdout2, _ = run_report(capsys, str(results), "--reps", "50", "--no-plots")
    assert rc2 == 0 and "12 run directories" in stdout2


def test_eval_final_overrides_last_line(results: Path, tmp_path: Path) -> None:
    run = next(d for d in find_run_dirs([results]) if load_run(d).agent == "qrdqn")
    r = load_run(run)
    final = record(r.agent, r.game, r.seed, 400_000, 1234.0, source="distrl-eval")
    write_final_result(run / FINAL_FILE, final)
    again = load_run(run)
    assert again.final_score == pytest.approx(1234.0)
    assert len(again.curve) == 3  # the learning curve still comes from evaluations.jsonl
    report = build_report([results], out=tmp_path / "o", reps=20, plots=False)
    stats = report.per_game["qrdqn"][r.game]
    other = final_score("qrdqn", r.game, 1 - r.seed)
    assert stats.raw_mean == pytest.approx((1234.0 + other) / 2)
    assert "1 with eval_final.json" in report.markdown


def test_run_dir_with_only_eval_final(tmp_path: Path) -> None:
    write_final_result(
        tmp_path / "r" / FINAL_FILE,
        record("iqn", "breakout", 3, 10_000_000, 50.0, source="distrl-eval"),
    )
    report = build_report([tmp_path], reps=20, plots=False)
    assert report.per_game["iqn"]["breakout"].raw == [50.0]
    # 10M frames: not an Atari-100k run, so the nearest benchmark is Atari-55.
    assert report.coverage.nearest == "atari55"


def test_compare_with_published(results: Path, tmp_path: Path, capsys) -> None:
    rc, stdout, _ = run_report(
        capsys, str(results), "--out", str(tmp_path / "o"), "--reps", "50", "--no-plots",
        "--compare", "DER,spr,C51",
    )  # fmt: skip
    assert rc == 0
    assert "DER (published)" in stdout and "SPR (published)" in stdout
    rows = [r for r in read_csv(tmp_path / "o" / "per_game.csv") if r["agent"] == "DER (published)"]
    der = published_per_game("DER")
    assert der["breakout"] == pytest.approx(1.9)  # atari100k_published.csv
    assert {r["game"] for r in rows} == set(GAMES)
    for r in rows:
        assert float(r["raw_mean"]) == pytest.approx(der[r["game"]])
        assert r["n_seeds"] == "1" and r["source"] == "published"
    # C51 has no per-game Atari-100k scores, only published 200M-frame aggregates.
    assert "Published aggregates" in stdout and "| C51 |" in stdout


def test_compare_with_dopamine_baselines(tmp_path: Path) -> None:
    append_result(tmp_path / "r" / RESULTS_FILE, record("qrdqn", "pong", 0, 4_000_000, 12.0))
    append_result(tmp_path / "s" / RESULTS_FILE, record("qrdqn", "breakout", 0, 4_000_000, 50.0))
    report = build_report(
        [tmp_path], compare=["Dopamine-Quantile", "dopamine c51"], reps=20, plots=False
    )
    # dopamine_baselines_final_pergame.csv (Dopamine's pong.json / breakout.json, iteration 198)
    quantile = report.per_game["Dopamine-Quantile (published)"]
    assert quantile["pong"].raw == [pytest.approx(19.69)] and quantile["pong"].source == "published"
    assert report.per_game["Dopamine-C51 (published)"]["pong"].raw == [pytest.approx(19.34)]
    assert set(quantile) == {"pong", "breakout"}
    assert any("training return" in n and "not evaluation scores" in n for n in report.notes)
    assert published_per_game("Dopamine-IQN")["road_runner"] == pytest.approx(58965.95)
    assert len(published_per_game("dopamine-rainbow")) == 55


def test_compare_der_names_the_der_settings_each_run_used(tmp_path: Path) -> None:
    presets = {"paper": "atari100k", "dopamine": "atari100k_dopamine", "other": "nature_paper"}
    for seed, (where, preset) in enumerate(presets.items()):
        run = tmp_path / where
        append_result(run / RESULTS_FILE, record("c51", "pong", seed, 400_000, -10.0))
        (run / "config.json").write_text(json.dumps({"name": preset, "seed": seed}))
    append_result(tmp_path / "bare" / RESULTS_FILE, record("c51", "pong", 9, 400_000, -10.0))
    out = tmp_path / "o"
    report = build_report([tmp_path], out=out, compare=["der"], reps=20, plots=False)
    by_seed = {sd: (p, d) for _, _, sd, p, d in report.der_settings}
    assert by_seed[0][0] == "atari100k" and "the settings of the published DER" in by_seed[0][1]
    assert by_seed[1][0] == "atari100k_dopamine" and "Dopamine" in by_seed[1][1]
    assert "not the settings of the published DER" in by_seed[1][1]
    assert by_seed[2][0] == "nature_paper" and "neither DER setting" in by_seed[2][1]
    assert by_seed[9] == (None, "unknown: the run directory has no config.json naming its preset")
    assert "## Settings compared with DER" in report.markdown
    assert "| c51 | pong | 1 | atari100k_dopamine |" in report.markdown
    saved = json.loads((out / "aggregates.json").read_text())["der_settings"]
    assert [r["preset"] for r in saved] == ["atari100k", "atari100k_dopamine", "nature_paper", None]
    # Without --compare DER the section is left out.
    plain = build_report([tmp_path], out=out, reps=20, plots=False)
    assert not plain.der_settings and "Settings compared with DER" not in plain.markdown


def test_explicit_benchmark_restricts_aggregates(tmp_path: Path) -> None:
    for game in ("breakout", "defender"):
        append_result(tmp_path / game / RESULTS_FILE, record("c51", game, 0, 1_000_000, 100.0))
    report = build_report([tmp_path], benchmark="atari100k", reps=20, plots=False)
    assert report.coverage.extra == ("defender",)
    assert report.aggregate_games["c51"] == ["breakout"]
    assert "defender" in report.per_game["c51"]
    assert any("left out of the aggregates: defender" in n for n in report.notes)


def test_unequal_seed_counts_are_noted(results: Path, tmp_path: Path) -> None:
    append_result(
        results / "extra" / RESULTS_FILE,
        record("c51", "pong", 7, 400_000, final_score("c51", "pong", 7)),
    )
    report = build_report([results], out=tmp_path / "o", reps=20, plots=False)
    assert report.per_game["c51"]["pong"].n == 3
    assert report.aggregate_runs["c51"] == 2
    assert any("unequal seed counts" in n for n in report.notes)


def test_game_without_reference_scores(tmp_path: Path) -> None:
    rec = record("c51", "breakout", 0, 400_000, 10.0)
    rec.update(game="catch", hns=None)
    append_result(tmp_path / "a" / RESULTS_FILE, rec)
    append_result(tmp_path / "b" / RESULTS_FILE, record("c51", "breakout", 0, 400_000, 10.0))
    report = build_report([tmp_path], reps=20, plots=True)
    assert report.per_game["c51"]["catch"].hns is None
    assert report.aggregate_games["c51"] == ["breakout"]
    assert any("no human/random reference scores" in n for n in report.notes)


def test_agent_missing_a_game_is_noted_as_not_run(tmp_path: Path) -> None:
    """An agent without runs of a game is said to have none (not to lack HNS for it)."""
    for agent, game in (("c51", "breakout"), ("c51", "pong"), ("qrdqn", "pong")):
        append_result(
            tmp_path / f"{agent}-{game}" / RESULTS_FILE,
            record(agent, game, 0, 400_000, final_score(agent, game, 0)),
        )
    report = build_report([tmp_path], reps=20, plots=False)
    assert report.aggregate_games["qrdqn"] == ["pong"]
    notes = [n for n in report.notes if n.startswith("qrdqn: aggregated")]
    assert notes == [
        "qrdqn: aggregated over 1 of 2 games (no runs of: breakout); not directly comparable "
        "with the others"
    ]


def _config(lr: float, total_steps: int, threads: int = 0) -> dict:
    """A config.json as the trainer writes it (the parts the labels read)."""
    return {
        "name": "sweep", "seed": 0, "run_dir": None,
        "agent": {"name": "c51", "lr": lr, "num_atoms": 51},
        "env": {"game": "pong", "protocol": "machado"},
        "trainer": {"total_steps": total_steps, "torch_threads": threads, "gamma": 0.99},
        "logger": {"progress": False},
    }  # fmt: skip


def test_runs_that_differ_in_a_setting_are_reported_apart(tmp_path: Path) -> None:
    """An agent.lr sweep: same agent, game and seed, two learning rates -> two rows, not one
    run silently dropped as a duplicate. Schedule and threads do not split runs."""
    for lr, score in ((1e-3, 5.0), (1e-4, -7.0)):
        run = tmp_path / "pong-c51-seed0" / f"agent.lr={lr:g}"
        append_result(run / RESULTS_FILE, record("c51", "pong", 0, 400_000, score))
        (run / "config.json").write_text(json.dumps(_config(lr, 100_000, threads=int(lr * 1e4))))
    report = build_report([tmp_path], reps=20, plots=False)
    assert set(report.per_game) == {"c51 [agent.lr=0.001]", "c51 [agent.lr=0.0001]"}
    assert report.per_game["c51 [agent.lr=0.001]"]["pong"].raw == pytest.approx([5.0])
    assert report.per_game["c51 [agent.lr=0.0001]"]["pong"].raw == pytest.approx([-7.0])
    assert not any("appears twice" in n for n in report.notes)
    # The same experiment run twice for different budgets is one agent (the longer run counts).
    other = tmp_path / "other"
    for steps, frames in ((100_000, 400_000), (200_000, 800_000)):
        run = other / f"steps{steps}"
        append_result(run / RESULTS_FILE, record("c51", "pong", 0, frames, float(steps)))
        (run / "config.json").write_text(json.dumps(_config(1e-4, steps)))
    report = build_report([other], reps=20, plots=False)
    assert list(report.per_game) == ["c51"]
    assert report.per_game["c51"]["pong"].raw == pytest.approx([200_000.0])
    assert any("appears twice" in n for n in report.notes)


# ------------------------------------------------------------------------------ errors


def test_no_results_error(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    rc, _, err = run_report(capsys, str(tmp_path / "empty"))
    assert rc == 2
    assert "no results found" in err and RESULTS_FILE in err and FINAL_FILE in err


def test_missing_dir_error(tmp_path: Path, capsys) -> None:
    rc, _, err = run_report(capsys, str(tmp_path / "nope"))
    assert rc == 2 and "not a directory" in err


def test_unknown_benchmark_error(results: Path, capsys) -> None:
    rc, _, err = run_report(capsys, str(results), "--benchmark", "atari58")
    assert rc == 2
    assert "unknown benchmark 'atari58'" in err and "atari100k" in err


def test_unknown_compare_error(results: Path, capsys) -> None:
    rc, _, err = run_report(capsys, str(results), "--compare", "DER,Agent99")
    assert rc == 2 and "Agent99" in err and "SimPLe" in err and "Dopamine-Quantile" in err


def test_corrupt_line_error_and_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "run" / RESULTS_FILE
    append_result(path, record("c51", "pong", 0, 100_000, 1.0))
    append_result(path, record("c51", "pong", 0, 200_000, 2.0))
    with path.open("a") as f:
        f.write('{"agent": "c51", "ga')  # killed mid-write
    with pytest.warns(UserWarning, match="truncated last line"):
        run = load_run(path.parent)
    assert run.final_score == pytest.approx(2.0)
    path.write_text('{"agent": \n' + path.read_text())
    with pytest.raises(ReportError, match=r"evaluations.jsonl:1: not valid JSON"):
        load_run(path.parent)


def test_record_validation(tmp_path: Path) -> None:
    rec = record("c51", "pong", 0, 100_000, 1.0)
    del rec["frames"]
    with pytest.raises(ValueError, match="frames"):
        append_result(tmp_path / RESULTS_FILE, rec)
    rec = record("c51", "pong", np.int64(0), 100_000, 1.0)
    rec["episode_returns"] = np.array([1.0, 2.0], dtype=np.float32)
    rec["mean_return"] = np.float32(1.5)
    append_result(tmp_path / "ok" / RESULTS_FILE, rec)
    assert load_run(tmp_path / "ok").final_score == pytest.approx(1.5)
    other = record("iqn", "pong", 0, 100_000, 1.0)
    append_result(tmp_path / "ok" / RESULTS_FILE, other)
    with pytest.raises(ReportError, match="different runs"):
        load_run(tmp_path / "ok")


# ------------------------------------------------------------------------------ coverage


def test_benchmark_coverage() -> None:
    assert benchmark_coverage(ATARI100K).benchmark == "atari100k"
    assert benchmark_coverage(ATARI55).benchmark == "atari55"
    full = benchmark_coverage(ATARI57)
    assert full.benchmark == "atari57" and full.describe().startswith("Atari-57: all 57")
    c = benchmark_coverage(ATARI57, "atari55")
    assert c.benchmark is None and c.extra == ("defender", "surround")
    c = benchmark_coverage([g for g in ATARI57 if g != "zaxxon"], max_frames=200_000_000)
    assert c.nearest == "atari57" and c.missing == ("zaxxon",)
    assert "custom: 56 games" in c.describe()
    c = benchmark_coverage(["pong", "breakout"], max_frames=400_000)
    assert c.nearest == "atari100k" and len(c.missing) == 24
    assert benchmark_coverage(["catch"]).nearest is None
    assert benchmark_coverage(["pong"], "Atari-100k").nearest == "atari100k"
    with pytest.raises(ReportError, match="unknown benchmark"):
        benchmark_coverage(["pong"], "atari26")


def test_run_without_records_yet_is_skipped(results: Path, tmp_path: Path) -> None:
    (results / "starting").mkdir()
    (results / "starting" / RESULTS_FILE).write_text("")
    with pytest.warns(UserWarning, match="no evaluation with a finished game yet"):
        report = build_report([results], out=tmp_path / "o", reps=20, plots=False)
    assert len(report.runs) == 12
    with pytest.raises(ReportError, match="no evaluation record yet"), pytest.warns(UserWarning):
        build_report([results / "starting"], reps=20, plots=False)


def test_evaluations_without_a_finished_game_are_skipped(tmp_path):
    base = {"agent": "c51", "game": "pong", "seed": 0, "protocol": "machado", "source": "train"}
    run = tmp_path / "run"
    append_result(
        run / "evaluations.jsonl",
        {**base, "agent_step": 100, "frames": 400, "episode_returns": [-21.0],
         "mean_return": -21.0, "hns": None},
    )  # fmt: skip
    append_result(
        run / "evaluations.jsonl",
        {**base, "agent_step": 200, "frames": 800, "episode_returns": [],
         "mean_return": float("nan"), "hns": None},
    )  # fmt: skip
    # Written as strict JSON (null, not a bare NaN, which is not JSON).
    last = (run / "evaluations.jsonl").read_text().splitlines()[-1]
    assert json.loads(last, parse_constant=_no_constant)["mean_return"] is None
    with pytest.warns(
        UserWarning, match=r"1 evaluation\(s\) .* finished no game \(at agent step\(s\) 200\)"
    ):
        result = load_run(run)
    assert result.final_score == -21.0 and len(result.curve) == 1


def _no_constant(name: str) -> float:
    raise AssertionError(f"{name} is not JSON")


def test_an_evaluation_with_no_finished_game_is_strict_json_and_reported(tmp_path, capsys):
    """The record of an evaluation that finished no game (the smoke preset's once): null where
    the mean and standard error are undefined, the count 0; distrl-report reads the run and
    says why the record has no score. An older file with a bare NaN reads the same."""
    from distrl_agents.evaluation.evaluator import EvalResult
    from distrl_agents.evaluation.records import evaluation_record

    def record(returns: list[float], step: int) -> dict:
        result = EvalResult("pong", returns, [100] * len(returns), agent_steps=400)
        return evaluation_record(
            result, agent="fqf", agent_settings={"name": "fqf"}, game="pong", seed=0,
            protocol="machado", agent_step=step, frameskip=4, eval_epsilon=0.001, source="train",
        )  # fmt: skip

    run = tmp_path / "run"
    append_result(run / RESULTS_FILE, record([], 300))
    line = json.loads((run / RESULTS_FILE).read_text(), parse_constant=_no_constant)
    assert line["games"] == 0 and line["mean_return"] is None and line["stderr_return"] is None
    assert line["episode_returns"] == [] and line["hns"] is None
    assert report_main([str(run), "--no-plots", "--reps", "10"]) == 2  # no score at all
    err = capsys.readouterr().err
    assert "finished no game (at agent step(s) 300)" in err and "no evaluation record yet" in err
    append_result(run / RESULTS_FILE, record([-20.0], 600))
    assert json.loads((run / RESULTS_FILE).read_text().splitlines()[1])["stderr_return"] is None
    assert report_main([str(run), "--no-plots", "--reps", "10"]) == 0
    assert "finished no game (at agent step(s) 300)" in capsys.readouterr().err
    old = run / "old"  # a file of an older version: a bare NaN
    old.mkdir()
    text = (run / RESULTS_FILE).read_text().replace('"mean_return": null', '"mean_return": NaN', 1)
    (old / RESULTS_FILE).write_text(text)
    with pytest.warns(UserWarning, match="finished no game"):
        assert load_run(old).final_score == -20.0


def test_learning_curve_titles_fit_the_figure(monkeypatch) -> None:
    """The learning-curve title was cut on the left with one or two games: every title lies
    inside the figure."""
    from distrl_agents.evaluation import plots

    figures: list[Any] = []  # matplotlib Figures

    def save(fig: Any, stem: Path) -> list[Path]:
        figures.append(fig)
        return []

    monkeypatch.setattr(plots, "_save", save)
    x = np.array([0.0, 1e6])
    for games in (["pong"], ["pong", "breakout"]):
        curves = {"c51": {g: (x, x, x, x) for g in games}}
        plots.plot_learning_curves(curves, {g: "HNS" for g in games}, Path("unused"))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for fig in figures:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        width, height = fig.bbox.width, fig.bbox.height
        titles = [fig._suptitle, *(ax.title for ax in fig.axes if ax.get_visible())]
        for text in titles:
            box = text.get_window_extent(renderer)
            assert box.x0 >= 0 and box.x1 <= width and box.y1 <= height, text.get_text()


def test_evaluation_record_counts_frames_with_the_runs_frameskip(tmp_path):
    from distrl_agents.evaluation.evaluator import EvalResult
    from distrl_agents.evaluation.records import RECORD_FIELDS, evaluation_record

    result = EvalResult("pong", [-21.0, -19.0], [800, 900], agent_steps=1700, frames_per_step=3)
    record = evaluation_record(
        result, agent="c51+cvar0.25", agent_settings={"name": "c51", "risk": "cvar",
        "risk_param": 0.25}, game="pong", seed=1, protocol="nature", agent_step=1000,
        frameskip=3, eval_epsilon=0.001, source="train", eval_index=2, env_seed=7,
    )  # fmt: skip
    assert record["frames"] == 3000
    assert (record["risk"], record["risk_param"]) == ("cvar", 0.25)
    assert record["mean_return"] == -20.0 and record["hns"] == result.hns
    assert list(record)[-3:] == ["eval_index", "env_seed", "source"]  # extras, then source
    assert set(RECORD_FIELDS) <= set(record)
    append_result(tmp_path / RESULTS_FILE, record)  # a complete record: the writer takes it
    neutral = evaluation_record(
        result, agent="c51", agent_settings={"name": "c51"}, game="pong", seed=1,
        protocol="nature", agent_step=10, frameskip=4, eval_epsilon=0.001, source="distrl-eval",
    )  # fmt: skip
    assert (neutral["risk"], neutral["risk_param"], neutral["frames"]) == ("neutral", None, 40)


def test_frame_ticks_are_compact() -> None:
    from distrl_agents.evaluation.plots import format_frames

    assert [format_frames(x) for x in (0, 500, 250_000, 1_500_000, 200_000_000)] == [
        "0", "500", "250k", "1.5M", "200M",
    ]  # fmt: skip
    assert format_frames(225_000) == "225k" and format_frames(1_234_567) == "1.235M"


def test_curves_scale_and_published_reference_lines(tmp_path: Path, monkeypatch, capsys) -> None:
    """--curves raw plots raw game scores; published --compare scores become dashed lines on
    the same scale as the curve of their game; auto keeps HNS."""
    from distrl_agents.evaluation import plots
    from distrl_agents.evaluation.report import _group_runs, _label_runs
    from distrl_agents.evaluation.report_files import curve_inputs

    for k, frames in enumerate((200_000, 400_000)):
        append_result(tmp_path / "r" / RESULTS_FILE, record("qrdqn", "pong", 0, frames, -21.0 + k))
    quantile = "Dopamine-Quantile (published)"
    for scale, ylabel in (("raw", "raw score"), ("auto", "HNS")):
        report = build_report(
            [tmp_path], compare=["Dopamine-Quantile"], reps=20, plots=False, curves=scale
        )
        grouped = _group_runs(report.runs, _label_runs(report.runs), [])
        curves, ylabels, refs = curve_inputs(report, grouped)
        x, mean, _, _ = curves["qrdqn"]["pong"]
        assert ylabels == {"pong": ylabel}
        assert list(x) == [200_000, 400_000]
        if scale == "raw":
            assert list(mean) == [-21.0, -20.0]
            assert refs == {quantile: {"pong": pytest.approx(19.69)}}
        else:
            assert list(mean) == [human_normalized_score("pong", s) for s in (-21.0, -20.0)]
            assert refs[quantile]["pong"] == pytest.approx(human_normalized_score("pong", 19.69))
    # The figure draws each reference as one dashed horizontal line, in the legend.
    figures: list[Any] = []  # matplotlib Figures

    def save(fig: Any, stem: Path) -> list[Path]:
        figures.append(fig)
        return []

    monkeypatch.setattr(plots, "_save", save)
    plots.plot_learning_curves(curves, ylabels, Path("unused"), references=refs)
    (ax,) = [a for a in figures[0].axes if a.get_visible()]
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    assert [ln.get_label() for ln in dashed] == [quantile]
    assert quantile in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(SystemExit) as exit_info:  # argparse's choices
        report_main([str(tmp_path), "--curves", "log", "--no-plots"])
    assert exit_info.value.code == 2 and "--curves" in capsys.readouterr().err
    with pytest.raises(ReportError, match="curves must be one of"):
        build_report([tmp_path], reps=20, plots=False, curves="log")


def test_final_scores_of_games_cut_by_the_frame_cap_are_noted(tmp_path: Path) -> None:
    from distrl_agents.evaluation.evaluator import EvalResult
    from distrl_agents.evaluation.records import evaluation_record

    for seed, cut in ((0, [True, False]), (1, [False, False])):
        result = EvalResult(
            "pong", [-20.0, -21.0], [100, 90], agent_steps=200, episode_truncated=cut,
            frame_cap=400,
        )  # fmt: skip
        record = evaluation_record(
            result, agent="c51", agent_settings={"name": "c51"}, game="pong", seed=seed,
            protocol="machado", agent_step=600, frameskip=4, eval_epsilon=0.001, source="train",
        )  # fmt: skip
        assert record["games_truncated"] == sum(cut) and record["max_frames_per_game"] == 400
        assert ("hns_note" in record) == any(cut)
        append_result(tmp_path / f"run{seed}" / RESULTS_FILE, record)
    report = build_report([tmp_path], reps=10, plots=False)
    cut_notes = [n for n in report.notes if "cut by the frame cap" in n]
    assert cut_notes == [
        "final scores that include games cut by the frame cap of 400 frames (their scores, and "
        "the HNS, are those of unfinished games): c51 pong seed 0 (1 of 2)"
    ]
    assert cut_notes[0] in report.markdown
