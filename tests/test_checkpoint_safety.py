"""Checkpoints are data, never code; a run directory is never mislabelled; a checkpoint that
cannot be written (disk full) says so and leaves the newest complete one intact."""

from __future__ import annotations

import builtins
import errno
import json
import os
import sys
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from test_training import small_config, train

from distrl_agents.cli.eval import eval_main
from distrl_agents.cli.train import quote_path_overrides, train_main
from distrl_agents.training import checkpoint as ckpt
from distrl_agents.training import loop, run_dir
from distrl_agents.training.config import RunConfig
from distrl_agents.training.loop import Trainer
from distrl_agents.training.resume import RelaunchError, defining_differences


def _tree(path: Path) -> dict[Path, tuple[int, int]]:
    """Every file below ``path`` with its size and modification time."""
    return {p: (p.stat().st_size, p.stat().st_mtime_ns) for p in path.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short finished C51 run (config.json, one checkpoint with its replay)."""
    run_dir = tmp_path_factory.mktemp("finished")
    train(_config(), run_dir)
    return run_dir


def _config(agent: str = "c51", **trainer: Any) -> RunConfig:
    """The run of :func:`finished_run` (games end within 100 agent steps), ``trainer`` changed."""
    cfg = small_config(agent, **{"total_steps": 120, "eval_period": 0, **trainer})
    cfg.env.overrides = {"max_num_frames_per_episode": 400}
    return cfg


def _copy(run_dir: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(run_dir, dest)
    return dest


@pytest.fixture
def no_set_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the Trainer gets as far as building games or an agent."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("set-up started before the run directory was checked")

    monkeypatch.setattr(loop, "make_atari_env", refuse)
    monkeypatch.setattr(loop, "build_agent", refuse)


@pytest.fixture
def argv(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """``distrl-train``'s own command line, run in-process: append arguments, then call
    ``train_main()``."""
    args = ["distrl-train"]
    monkeypatch.setattr(sys, "argv", args)
    yield args


# --------------------------------------------------------------- a checkpoint is data, not code
class _Payload:
    """Unpickling it calls ``open(marker, "w")`` (pickled as ``io.open``; a hostile checkpoint
    would call ``os.system``): the marker file exists iff the pickle ran code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (str(self.marker), "w"))


def _poison(run_dir: Path, marker: Path) -> Path:
    """Slip a :class:`_Payload` into the newest checkpoint's state.pt, the rest left valid."""
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None
    state_file = latest / ckpt.STATE_FILE
    state = torch.load(state_file, weights_only=True)
    state["agent_step"] = _Payload(marker)
    torch.save(state, state_file)
    # The test itself must not have run it: pickling calls __reduce__, never open().
    assert not marker.exists()
    return state_file


def test_poisoned_checkpoint_is_refused_by_eval_and_by_resume_and_runs_nothing(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    run_dir = _copy(finished_run, tmp_path / "shared")
    marker = tmp_path / "code_ran"
    state_file = _poison(run_dir, marker)

    assert eval_main([str(run_dir), "--episodes", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert str(state_file) in err and "io.open" in err and "not loaded" in err, err
    assert not marker.exists()

    argv += [f"resume={run_dir}", "logger.progress=false"]
    with pytest.raises(SystemExit) as stop:
        train_main()
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert str(state_file) in err and "io.open" in err and "Traceback" not in err, err
    assert not marker.exists()

    with pytest.raises(ckpt.UnsafeCheckpointError, match=r"io\.open"):
        Trainer(_config(), run_dir)
    assert not marker.exists()


def test_without_the_first_check_torch_still_refuses_to_run_code(
    finished_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pickle is read with weights_only=True whatever the opcode scan found."""
    run_dir = _copy(finished_run, tmp_path / "shared")
    marker = tmp_path / "code_ran"
    _poison(run_dir, marker)
    monkeypatch.setattr(ckpt, "_refuse_code", lambda file: None)
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_state(latest)
    assert not marker.exists()


def test_checkpoint_round_trips_numpy_arrays_without_any_allowed_global(tmp_path: Path) -> None:
    from torch.torch_version import TorchVersion

    frames = np.arange(2 * 4 * 3, dtype=np.uint8).reshape(2, 4, 3)
    legacy_rng = np.random.RandomState(5).get_state(legacy=True)  # a tuple with a uint32 array
    assert isinstance(legacy_rng, tuple)
    weights = OrderedDict(w=torch.arange(3.0))
    weights._metadata = OrderedDict({"": {"version": 2}})  # type: ignore[attr-defined]
    state = {
        "obs": frames,
        "rng": {"numpy": legacy_rng, "torch": torch.get_rng_state()},
        "nested": [np.float32(0.5), (np.int64(3), np.zeros(0, np.bool_))],
        "version": TorchVersion("2.13.0"),
        "weights": weights,
    }
    path = ckpt.save_checkpoint(tmp_path, 7, state)
    # Nothing beyond tensors and plain data: loads with torch's own allowlist alone.
    assert torch.serialization.get_unsafe_globals_in_checkpoint(path / ckpt.STATE_FILE) == []
    back = ckpt.load_state(path)
    assert back["format_version"] == ckpt.FORMAT_VERSION
    assert back["obs"].dtype == np.uint8 and np.array_equal(back["obs"], frames)
    name, keys, pos, has_gauss, cached = back["rng"]["numpy"]
    assert name == "MT19937" and keys.dtype == np.uint32 and np.array_equal(keys, legacy_rng[1])
    assert (pos, has_gauss, cached) == legacy_rng[2:]
    np.random.set_state(back["rng"]["numpy"])  # noqa: NPY002 (accepted as it was)
    assert back["nested"][0] == 0.5 and back["nested"][1][0] == 3
    assert back["nested"][1][1].dtype == np.bool_ and back["nested"][1][1].shape == (0,)
    assert type(back["version"]) is str and back["version"] == "2.13.0"
    assert back["weights"]._metadata == {"": {"version": 2}}  # a state dict keeps its metadata


def test_format_1_checkpoints_with_pickled_numpy_arrays_still_load(tmp_path: Path) -> None:
    """What distrl-train wrote before checkpoints stored arrays as tensors."""
    from torch.torch_version import TorchVersion

    legacy_rng = np.random.RandomState(1).get_state(legacy=True)
    assert isinstance(legacy_rng, tuple)
    frames = np.ones((1, 4, 84, 84), np.uint8)
    (tmp_path / "step_000000000005").mkdir()
    torch.save(
        {"format_version": 1, "obs": frames, "rng": {"numpy": legacy_rng},
         "auto_choices": {"machine": {"torch": TorchVersion("2.13.0")}},
         "x": np.arange(4, dtype=np.float32)},
        tmp_path / "step_000000000005" / ckpt.STATE_FILE,
    )  # fmt: skip
    back = ckpt.load_state(tmp_path / "step_000000000005")
    assert np.array_equal(back["obs"], frames) and np.array_equal(
        back["rng"]["numpy"][1], legacy_rng[1]
    )
    assert back["x"].dtype == np.float32 and back["auto_choices"]["machine"]["torch"] == "2.13.0"


# --------------------------------------------------------------- disk full while checkpointing
def _fill_disk_after(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save in the checkpoint writer writes ``limit`` bytes, then fails the way torch's
    zip writer does on a full disk."""

    def save(obj: object, path: Path) -> None:
        Path(path).write_bytes(b"\0" * limit)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 32")

    monkeypatch.setattr(ckpt.torch, "save", save)


def test_disk_full_while_writing_state_removes_the_partial_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = {"agent": {"w": torch.zeros(250_000)}}  # 1 MB of tensors

    def write_replay(path: Path) -> None:
        path.write_bytes(b"r" * 3000)

    first = ckpt.save_checkpoint(tmp_path, 10, state, write_replay=write_replay)
    before = _tree(tmp_path)
    _fill_disk_after(4096, monkeypatch)
    free = ckpt.shutil.disk_usage(tmp_path)._replace(free=500_000)  # less than is needed
    monkeypatch.setattr(ckpt.shutil, "disk_usage", lambda path: free)
    with pytest.raises(ckpt.CheckpointWriteError) as info:
        ckpt.save_checkpoint(tmp_path, 20, state, write_replay=lambda p: None)
    message = str(info.value)
    assert "step_000000000020 could not be written" in message and "disk is full" in message
    # State tensors (1.0 MB) + the replay file as large as the last one (3 kB).
    assert "about 1.0 MB" in message and "0.5 MB free" in message
    assert f"{first.name}, is intact" in message and "relaunch" in message
    assert "step_000000000020.tmp was removed" in message
    assert _tree(tmp_path) == before  # nothing left behind, the last checkpoint untouched
    assert ckpt.load_state(first)["agent"]["w"].shape == (250_000,)


def test_disk_full_while_writing_the_replay_is_said_as_such(tmp_path: Path) -> None:
    def replay_fails(path: Path) -> None:
        path.write_bytes(b"r" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with pytest.raises(ckpt.CheckpointWriteError) as info:
        ckpt.save_checkpoint(tmp_path, 3, {"step": 3}, write_replay=replay_fails)
    message = str(info.value)
    assert "disk is full" in message and "No space left on device" in message
    assert "more than" in message  # no earlier replay file to tell its size
    assert "no complete checkpoint yet" in message
    assert list(ckpt.checkpoint_dir(tmp_path).iterdir()) == []


def test_run_stopped_by_a_full_disk_resumes_from_its_last_complete_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = small_config("dqn", total_steps=240, eval_period=0)
    real_save = ckpt.torch.save
    trainer = Trainer(cfg, tmp_path)
    saved: list[Path] = []

    def save_once(obj: object, path: Path) -> None:
        if saved:
            Path(path).write_bytes(b"\0" * 100)
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1 vs 0")
        saved.append(path)
        real_save(obj, path)

    monkeypatch.setattr(ckpt.torch, "save", save_once)
    with pytest.raises(ckpt.CheckpointWriteError, match="step_000000000120, is intact"):
        trainer.run()
    trainer.close()
    assert [p.name for p in ckpt.checkpoint_dir(tmp_path).iterdir()] == ["step_000000000120"]
    monkeypatch.setattr(ckpt.torch, "save", real_save)
    resumed, summary = train(cfg, tmp_path)
    assert resumed._resume_from is not None
    assert summary.finished and resumed._resume_from.name == "step_000000000120"


# --------------------------------------------------------------- relaunch with other settings
def test_relaunch_with_other_settings_is_refused_before_set_up_and_changes_nothing(
    finished_run: Path, no_set_up: None
) -> None:
    before = _tree(finished_run)
    cfg = _config(batch_size=4)
    cfg.agent["lr"] = 0.001
    cfg.agent["num_atoms"] = 21
    with pytest.raises(RelaunchError) as info:
        Trainer(cfg, finished_run)
    message = str(info.value)
    # (The run's agent preset left lr and num_atoms at the agent's defaults, unset.)
    assert "agent.lr: '(not set)' -> 0.001" in message
    assert "agent.num_atoms: '(not set)' -> 21" in message
    assert "trainer.batch_size: 8 -> 4" in message
    assert "Nothing was changed" in message and "trainer.total_steps" in message
    assert "another run_dir" in message
    assert _tree(finished_run) == before


def test_relaunch_may_change_the_schedule_cadence_and_logging(
    finished_run: Path, tmp_path: Path
) -> None:
    run_dir = _copy(finished_run, tmp_path / "run")
    cfg = _config(total_steps=160, checkpoint_period=40)
    cfg.logger.progress = False
    trainer, summary = train(cfg, run_dir)
    assert trainer._resume_from is not None and summary.agent_step >= 160
    assert json.loads((run_dir / "config.json").read_text())["trainer"]["total_steps"] == 160


def test_a_run_directory_without_checkpoint_is_checked_against_its_config_json(
    tmp_path: Path, no_set_up: None
) -> None:
    cfg = small_config("c51")
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    other = small_config("iqn")
    with pytest.raises(RelaunchError, match=r"agent\.name: 'c51' -> 'iqn'.*no checkpoint yet"):
        Trainer(other, tmp_path)


def test_defining_differences_compare_every_run_setting_and_nothing_else() -> None:
    saved = {
        "agent": {"name": "c51", "lr": 1e-4, "risk": "cvar"},
        "env": {"game": "pong", "overrides": {"max_num_frames_per_episode": 400}},
        "trainer": {"total_steps": 10, "batch_size": 32, "eval_period": 5, "gone": 1},
        "logger": {"progress": True},
        "seed": 0,
        "run_dir": None,
    }
    now = {
        "agent": {"name": "c51", "lr": 1e-4},
        "env": {"game": "pong", "overrides": {}},
        "trainer": {"total_steps": 99, "batch_size": 32, "eval_period": 7, "new": 2},
        "logger": {"progress": False},
        "seed": 1,
        "run_dir": "elsewhere",
    }
    assert defining_differences(saved, now) == [
        ("agent.risk", "cvar", "(not set)"),
        ("env.overrides.max_num_frames_per_episode", 400, "(not set)"),
        ("seed", 0, 1),
    ]
    assert defining_differences(now, now) == []


# --------------------------------------------------------------- paths a user types
def test_run_directory_with_equals_signs_resumes_and_evaluates(
    finished_run: Path, tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # The name a sweep gives a run with an env override (distrl_agents.training.sweep.job_subdir).
    run_dir = _copy(finished_run, tmp_path / "pong-c51-seed0" / "env.overrides.max_num_frames=400")
    argv += [f"resume={run_dir}", "trainer.total_steps=120", "logger.progress=false"]
    train_main()
    err = capsys.readouterr().err
    assert "Resuming" in err and "finished at agent step 120" in err, err
    code = eval_main([str(run_dir), "--episodes", "1", "--num-envs", "1", "--device", "cpu"])
    assert code == 0, capsys.readouterr()
    summary = json.loads((run_dir / "eval" / "summary.json").read_text())
    assert summary["agent_step"] == 120 and summary["checkpoint"] == "step_000000000120"


def test_path_overrides_are_quoted_for_hydra() -> None:
    from hydra import compose, initialize_config_module

    paths = ["runs/x/env.overrides.a=400,agent.lr=0.1", "it's here", "x/${not}=1", "dir\\"]
    with initialize_config_module("distrl_agents.configs", version_base="1.3"):
        for path in paths:
            for key in ("resume", "run_dir"):
                cfg = compose("train", overrides=quote_path_overrides([f"{key}={path}"]))
                assert cfg[key] == path
    untouched = ["resume=null", "run_dir=runs/plain", "agent.lr=0.1", "resume='quoted=1'"]
    assert quote_path_overrides(untouched) == untouched


def test_resume_refuses_overrides_of_what_the_run_trained_with(
    finished_run: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = _tree(finished_run)
    argv += [f"resume={finished_run}", "trainer.batch_size=4", "trainer.total_steps=500"]
    with pytest.raises(SystemExit) as stop:
        train_main()
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "not trainer.batch_size=4" in err, err
    assert "trainer.total_steps" in err.split("may change only")[1]
    assert _tree(finished_run) == before


def test_unwritable_places_are_refused_before_any_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if Path("/proc/self").is_dir():  # a file system that takes no new files, whatever access() says
        with pytest.raises(ValueError, match="/proc does not accept new files"):
            run_dir.check_writable_dir(Path("/proc/nope"))

    def no_room(**kwargs: object) -> str:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(run_dir.tempfile, "mkdtemp", no_room)
    with pytest.raises(ValueError, match="does not accept new files"):
        run_dir.check_writable_dir(tmp_path / "run")


def test_docs_list_the_settings_a_resume_may_change() -> None:
    from distrl_agents.training.resume import resumable_settings

    root = Path(__file__).resolve().parents[1]
    readme = root.joinpath("README.md").read_text()
    resume_paragraph = readme[readme.index("**Resume.**") : readme.index("**Checkpoints are data")]
    protocols = root.joinpath("docs", "protocols.md").read_text()
    resume_bullet = protocols[protocols.index("- **Resume**") : protocols.index("- **Precision**")]
    for doc in (resume_paragraph, resume_bullet):
        for key in resumable_settings():
            leaf = key.rsplit(".", 1)[-1] if key.startswith("trainer.") else key
            assert f"`{key}`" in doc or f"`{leaf}`" in doc, key


def test_compile_compares_as_the_resumed_run_would_use_it(tmp_path: Path) -> None:
    """``compile=auto`` takes over the mode the checkpoint chose on this machine: no change.
    Another explicit mode is one. (A recorded precision is kept and checked by
    ``resolve_settings``: tests/test_precision_auto.py.)"""
    from distrl_agents.training.agent_factory import check_compatible
    from distrl_agents.training.precision import machine_key

    cpu = torch.device("cpu")
    here, elsewhere = machine_key(cpu), {"device": "cpu: another", "torch": "0"}
    step = tmp_path / "checkpoints" / "step_000000000100"

    def checkpoint_of(machine: dict, **trainer: Any) -> dict:
        return {
            "config": _config(**trainer).to_dict(),
            "resolved": {"precision": {"update": "bf16", "target": "bf16", "acting": "bf16"},
                         "compile": "off", "machine": machine},
        }  # fmt: skip

    def check(state: dict, **trainer: Any) -> None:
        check_compatible(_config(**trainer), state, tmp_path, step, cpu)

    run = checkpoint_of(here, precision="bf16", compile="auto")
    check(run, precision="auto", compile="auto")
    check(run, precision="bf16", compile="off")  # the mode auto chose
    with pytest.raises(RelaunchError, match=r"trainer\.compile: 'off' -> 'update'"):
        check(run, compile="update")
    elsewhere_run = checkpoint_of(elsewhere, compile="auto")
    with pytest.raises(RelaunchError, match=r"trainer\.compile: 'auto' -> 'off'"):
        check(elsewhere_run, compile="off")  # chosen on another machine: auto would measure


def test_fields_added_later_compare_as_the_behaviour_before_them() -> None:
    from distrl_agents.training.resume import defining_differences

    # A run saved before agent.loss_reduction / trainer.warmup_actions existed: resumable by a
    # command that keeps the old behaviour, refused by one that changes it.
    saved = {"agent": {"name": "c51", "lr": 1e-4}, "trainer": {"batch_size": 32}}
    same = {
        "agent": {"name": "c51", "lr": 1e-4, "loss_reduction": "mean"},
        "trainer": {"batch_size": 32, "warmup_actions": "uniform"},
    }
    assert defining_differences(saved, same) == []
    changed = {
        "agent": {"name": "c51", "lr": 1e-4, "loss_reduction": "sum"},
        "trainer": {"batch_size": 32, "warmup_actions": "agent"},
    }
    assert defining_differences(saved, changed) == [
        ("agent.loss_reduction", "mean", "sum"),
        ("trainer.warmup_actions", "uniform", "agent"),
    ]
    # An FQF run from before the authors' defaults: the new default is another algorithm.
    fqf_saved = {"agent": {"name": "fqf", "num_fractions": 32}}
    fqf_now = {"agent": {"name": "fqf", "num_fractions": 32, "fraction_loss": "squared"}}
    assert defining_differences(fqf_saved, fqf_now) == [
        ("agent.fraction_loss", "w1_gradient", "squared")
    ]


def test_checkpoint_whose_tensors_do_not_fit_the_network_gets_one_message(
    finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # E.g. written by a version with another head layout: one message, not torch's raw listing.
    run_dir = _copy(finished_run, tmp_path / "other_layout")
    latest = ckpt.latest_checkpoint(run_dir)
    assert latest is not None
    state_file = latest / "state.pt"
    state = ckpt.load_state(state_file)
    online = state["agent"]["online"]
    name = next(k for k, v in online.items() if v.ndim == 2)
    online[name] = online[name][:-1].clone()
    torch.save(state, state_file)
    before = _tree(run_dir)

    assert eval_main([str(run_dir), "--episodes", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "online network does not fit" in err and name in err and "Traceback" not in err, err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
    with pytest.raises(ValueError, match="does not fit"):
        Trainer(_config(), run_dir).run()
    assert _tree(run_dir) == before  # nothing written, nothing lost
