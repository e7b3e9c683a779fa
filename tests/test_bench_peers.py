"""scripts/bench_peers.py and scripts/peer_kaixhin.py: the parts that need no peer installed
(the atari_py shim, the matched command lines and settings, the output parser, the timers)."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    return _load("bench_peers")


@pytest.fixture(scope="module")
def peer():
    return _load("peer_kaixhin")


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_module

    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        return compose("train", overrides=overrides)


def test_shim_maps_atari_py_names_to_ale_py(peer):
    import ale_py

    shim = peer.atari_py_shim()
    assert shim.ALEInterface is ale_py.ALEInterface
    assert "crazy_climber" in shim.list_games()  # main.py's --game choices
    path = shim.get_game_path("crazy_climber")
    assert isinstance(path, str) and Path(path).is_file()
    with pytest.raises(FileNotFoundError):
        shim.get_game_path("no_such_game")


def test_shim_takes_kaixhin_env_calls(peer):
    """The calls Kaixhin/Rainbow's env.py makes, in its order, on the shim's ALEInterface."""
    shim = peer.atari_py_shim()
    ale = shim.ALEInterface()
    ale.setInt("random_seed", 123)
    ale.setInt("max_num_frames_per_episode", 108_000)
    ale.setFloat("repeat_action_probability", 0)
    ale.setInt("frame_skip", 0)
    ale.setBool("color_averaging", False)
    ale.loadROM(shim.get_game_path("crazy_climber"))
    actions = dict(enumerate(ale.getMinimalActionSet()))
    ale.reset_game()
    reward = sum(ale.act(actions.get(1)) for _ in range(4))
    assert reward >= 0 and not ale.game_over() and ale.lives() > 0
    assert ale.getScreenGrayscale().shape == (210, 160)


def test_kaixhin_argv_is_the_readme_der_line_cut_to_the_window(peer):
    argv = peer.kaixhin_argv("crazy_climber", learn_start=1600, skip=200, steps=1000)
    opts = dict(zip(argv[::2], argv[1::2]))
    # The README's data-efficient Rainbow options (those not changed for the benchmark).
    readme = {
        "--target-update": "2000",
        "--learn-start": "1600",
        "--memory-capacity": "100000",
        "--replay-frequency": "1",
        "--multi-step": "20",
        "--architecture": "data-efficient",
        "--hidden-size": "256",
        "--learning-rate": "0.0001",
    }
    assert {k: opts[k] for k in readme} == readme
    assert opts["--game"] == "crazy_climber"
    assert opts["--T-max"] == "2800"
    assert int(opts["--evaluation-interval"]) > 2800  # no evaluation inside the run
    assert argv[-1] == "--disable-cuda"


def test_ours_atari100k_overrides_match_kaixhin_der(bench):
    ov = bench.ours_overrides("atari100k", "c51", "crazy_climber", 100_000, 1)
    c = _compose(ov)
    assert c.name == "atari100k" and c.agent.name == "c51" and c.env.game == "crazy_climber"
    assert (c.env.protocol, c.env.num_envs) == ("nature", 1)
    assert not c.env.overrides.get("use_fire_reset", False)
    assert (c.agent.num_atoms, c.agent.v_min, c.agent.v_max) == (51, -10.0, 10.0)
    assert (c.agent.optimizer, c.agent.lr, c.agent.optimizer_eps) == ("adam", 1e-4, 1.5e-4)
    assert c.agent.max_grad_norm == 10 and c.agent.double_dqn
    assert (c.network.torso, c.network.hidden, c.network.dueling) == ("der", 256, True)
    assert c.network.noisy and c.network.noisy_std == 0.1
    assert c.replay.prioritized and (c.replay.alpha, c.replay.beta) == (0.5, 0.4)
    assert (c.replay.capacity, c.replay.n_step) == (100_000, 20)
    t = c.trainer
    assert (t.batch_size, t.gamma, t.update_period, t.target_update_period) == (32, 0.99, 1, 2000)
    assert (t.learning_starts, t.epsilon_start, t.epsilon_end) == (1600, 0.0, 0.0)
    assert (t.device, t.precision, t.compile, t.torch_threads) == ("cpu", "fp32", "off", 1)


def test_ours_tianshou_overrides_drop_the_default_experiment(bench):
    """The Tianshou table compares the paper presets (1-step, 1 update / 4 steps, Nature torso),
    not the Atari-100k preset that train.yaml applies by default."""
    c = _compose(bench.ours_overrides("tianshou", "qrdqn", "breakout", 10_000, 0))
    assert c.name == "default" and c.agent.name == "qrdqn"
    assert (c.replay.capacity, c.replay.n_step, c.replay.prioritized) == (10_000, 1, False)
    assert (c.trainer.update_period, c.trainer.target_update_period) == (4, 10_000)
    assert c.network.torso == "nature" and c.env.overrides.use_fire_reset is True


def test_command_lines(bench, peer):
    ov = bench.ours_overrides("atari100k", "c51", "crazy_climber", 100_000, 1)
    ours = bench.ours_command(1600, 200, 1000, ov)
    assert ours[:2] == [sys.executable, "-c"] and ours[2] == bench.OURS_CODE
    assert ours[3:6] == ["1600", "200", "1000"] and ours[6:] == ov
    cmd = bench.kaixhin_command(
        "peer/checkout", "crazy_climber", 1600, 200, 1000, 100_000, 1, "site"
    )
    assert cmd[:2] == [sys.executable, "scripts/peer_kaixhin.py"]
    args = peer.build_parser().parse_args(cmd[2:])  # the launcher accepts what it is given
    assert (args.kaixhin, args.game, args.site) == ("peer/checkout", "crazy_climber", "site")
    assert (args.learn_start, args.skip, args.steps, args.memory, args.threads) == (
        1600, 200, 1000, 100_000, 1,
    )  # fmt: skip
    ts = bench.tianshou_command("py", "iqn", "Breakout", 1000, 200, 1000, 10_000, "off")
    assert ts[4:] == [
        "--agent", "iqn", "--game", "Breakout", "--warmup", "1000", "--skip", "200",
        "--steps", "1000", "--buffer", "10000", "--nan-scan", "off",
    ]  # fmt: skip


def test_peer_malloc_is_our_allocator_setting(bench):
    import inspect

    from distrl_agents.training.device import tune_host_allocator

    defaults = inspect.signature(tune_host_allocator).parameters
    assert bench.TUNED_MALLOC == {
        "MALLOC_MMAP_THRESHOLD_": str(defaults["mmap_threshold"].default),
        "MALLOC_TRIM_THRESHOLD_": str(defaults["trim_threshold"].default),
    }
    code = "import json, os; print(json.dumps({'t': os.environ['MALLOC_TRIM_THRESHOLD_']}))"
    assert bench.run_json([sys.executable, "-c", code], 60, bench.TUNED_MALLOC) == {
        "t": str(1 << 30)
    }


def test_output_parser_reads_each_side(bench):
    ours = (
        "[2026-12-07 16:15:01] distrl-agents: crazy_climber c51 ...\n"
        '{"framework": "distrl-agents", "agent": "c51", "steps_per_s": 16.9, "precision": "fp32",'
        ' "act_precision": "fp32", "threads": 1, "update_ms": 47.4, "sample_ms": 0.8,'
        ' "updates": 60, "update_share": 0.8}\n'
    )
    kaixhin = (
        "                          Options\n"
        "                          id: default\n"
        "Sending Reset...\n"
        '{"framework": "kaixhin-rainbow", "agent": "c51", "steps_per_s": 12.9,'
        ' "timed_steps": 60, "updates": 60, "update_ms": 71.1, "sample_ms": 13.4,'
        ' "act_ms": 3.1, "env_ms": 1.2, "update_share": 0.92, "threads": 1,'
        ' "argv": ["--game", "crazy_climber"]}\n'
    )
    assert bench.last_json(ours)["sample_ms"] == 0.8
    assert bench.last_json(kaixhin)["update_ms"] == 71.1
    assert bench.last_json("Traceback (most recent call last):\n") is None
    assert bench.fmt([1.0, 3.0, 2.0]) == "2.0 (1.0-3.0)" and bench.fmt_ratio([1.5]) == "1.50x"


def test_window_times_only_from_its_start_step(peer):
    class Loop:
        def act(self):
            return 0

        def learn(self):
            time.sleep(0.002)

    window = peer.Window(start=4)
    window.wrap(Loop, "act", "act")
    window.wrap(Loop, "learn", "learn")
    loop = Loop()
    for _ in range(10):  # steps 1-3 are before the window, 4-10 in it
        loop.act()
        loop.learn()
    window.t_end = time.perf_counter()
    result = window.result()
    assert (result["timed_steps"], result["updates"]) == (7, 7)
    assert result["update_ms"] >= 2.0 and 0 < result["update_share"] <= 1
    json.dumps(result)
    with pytest.raises(RuntimeError, match="before step"):
        peer.Window(start=100).result()
