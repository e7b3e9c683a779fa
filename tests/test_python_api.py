"""The Python API (``distrl_agents.api``): the examples of docs/python_api.md, run as written,
and what they do not show (quiet by default, the errors)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

import distrl_agents

DOC = Path(__file__).resolve().parents[1] / "docs" / "python_api.md"


def doc_examples() -> list[str]:
    """The fenced ``python`` blocks of docs/python_api.md, in order."""
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_doc_has_its_examples() -> None:
    code = "\n".join(doc_examples())
    for name in ("compose_config", "train(", "load_config", "load_agent", ".evaluate(",
                 ".act(", ".distribution(", ".q_values("):  # fmt: skip
        assert name in code, name


@pytest.fixture(scope="module")
def doc_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Every example of the doc, executed in order in one namespace, in an empty directory."""
    cwd = tmp_path_factory.mktemp("notebook")
    namespace: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        for i, block in enumerate(doc_examples()):
            exec(compile(block, f"{DOC.name}, example {i + 1}", "exec"), namespace)
    namespace["cwd"] = cwd
    return namespace


def test_the_doc_examples_run(doc_run: dict) -> None:
    run, more, agent, result = doc_run["run"], doc_run["more"], doc_run["agent"], doc_run["result"]
    cwd = doc_run["cwd"]
    assert run.run_dir == Path("runs/notebook/pong-qrdqn") and (cwd / run.run_dir).is_dir()
    assert run.last_eval is not None and run.last_eval.games == 2
    assert more.resumed and more.agent_step == 400 and more.num_updates > run.num_updates
    assert agent.agent_step == 400 and agent.game == "pong" and agent.action_names[0] == "NOOP"
    assert repr(agent).startswith("LoadedAgent(qrdqn on pong, 400 agent steps, checkpoint ")
    assert result.games == 2 and result.truncated_games == 2 and result.frame_cap == 400
    assert (cwd / "distributions.png").stat().st_size > 1000
    dist = doc_run["dist"]
    np.testing.assert_allclose(dist.probs.sum(-1).numpy(), 1.0, rtol=1e-5)
    q = doc_run["q"]
    np.testing.assert_allclose(q, (dist.values * dist.probs).sum(-1).numpy(), rtol=1e-5)


def test_loading_and_training_print_nothing(doc_run: dict) -> None:
    cwd, run = doc_run["cwd"], doc_run["run"]
    out, err = io.StringIO(), io.StringIO()
    cfg = distrl_agents.load_config(cwd / run.run_dir)
    cfg.trainer.total_steps = 420
    cfg.trainer.precision = "auto"  # prints the precisions it takes over from the checkpoint
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        again = distrl_agents.train(cfg, cwd / run.run_dir)
        agent = distrl_agents.load_agent(cwd / run.run_dir, device="cpu")
        agent.evaluate(episodes=1, num_envs=1)
    assert out.getvalue() == "" and err.getvalue() == ""
    assert again.resumed and again.agent_step == 420
    assert "precision" in again.log  # kept, not printed
    # The same observation gives the same greedy action, whichever way it is asked.
    env = agent.make_env()
    obs, _ = env.reset()
    env.close()
    assert agent.act(obs).tolist() == [int(agent.q_values(obs)[0].argmax())]
    assert agent.act(obs[0]).shape == (1,)


def test_api_mistakes_are_one_clear_error(tmp_path: Path, doc_run: dict) -> None:
    with pytest.raises(ValueError, match="total_step"):
        distrl_agents.compose_config("experiment=smoke", "trainer.total_step=10")
    with pytest.raises(ValueError, match="cannot compose"):
        distrl_agents.compose_config("agent=nonesuch")
    with pytest.raises(ValueError, match="does not exist"):
        distrl_agents.load_agent(tmp_path / "missing")
    with pytest.raises(ValueError, match="No checkpoint"):
        distrl_agents.load_agent(tmp_path)
    with pytest.raises(ValueError, match=r"no config\.json"):
        distrl_agents.load_config(tmp_path)
    with pytest.raises(ValueError, match="RunConfig or a dict"):
        distrl_agents.train("experiment=smoke")  # type: ignore[arg-type]
    # A config of another run in a run's directory: refused, the run left as it was.
    run_dir = doc_run["cwd"] / doc_run["run"].run_dir
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    other = distrl_agents.compose_config("experiment=smoke", "agent=c51", "env.game=pong")
    with pytest.raises(ValueError):
        distrl_agents.train(other, run_dir)
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before
    with pytest.raises(AttributeError, match="nonesuch"):
        distrl_agents.nonesuch  # noqa: B018
