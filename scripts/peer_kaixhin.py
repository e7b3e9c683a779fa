"""Steady training rate of Kaixhin/Rainbow's data-efficient Rainbow (DER) on an Atari game.

Run by ``scripts/bench_peers.py --preset atari100k`` with distrl-agents' own Python (the same
torch, NumPy and ale-py); it imports nothing from distrl_agents. Prints one JSON line.

    python peer_kaixhin.py --kaixhin CHECKOUT [--game crazy_climber] [--learn-start 1600]
                           [--skip 200] [--steps 1000] [--memory 100000] [--threads 1]
                           [--site DIR]

It runs the checkout's own ``main.py`` unchanged (``runpy``) with the README's data-efficient
command line (``kaixhin_argv``), after setting up, from outside its files:

- ``atari_py``: the package is no longer installable next to current NumPy / Python, so a module
  of that name is put in ``sys.modules`` (``atari_py_shim``): ale-py's ``ALEInterface`` takes
  the same calls (``setInt``, ``setFloat``, ``setBool``, ``loadROM``, ``act``,
  ``getScreenGrayscale``, ``lives``, ``game_over``, ``reset_game``, ``getMinimalActionSet``),
  ``get_game_path(name)`` is ``ale_py.roms.get_rom_path(name)`` (the same snake_case names),
  ``list_games()`` is ``ale_py.roms.get_all_rom_ids()``.
- ``test`` (its evaluation module, which imports plotly): replaced by a stub that raises, since
  the evaluation interval is set past the end of the run (``--evaluation-interval T_max + 1``),
  so the stub is never called.
- OpenCV (its ``env.py`` resizes every frame with ``cv2.resize``) comes from ``--site``, a
  folder that ``bench_peers.py`` fills with ``opencv-python-headless`` (no dependencies: the
  NumPy is ours); ``Env.close`` only closes OpenCV windows, which a headless build cannot do, so
  it is replaced by a no-op (no window is opened: ``--render`` is off).
- Threads: ``torch.set_num_threads(--threads)`` and ``cv2.setNumThreads(--threads)``.
- Timers (monkeypatched methods, the code itself untouched): ``Agent.act`` counts agent steps
  (one per loop iteration; evaluation, which also acts, never runs), ``Agent.learn`` is one
  update (replay sample, three forward passes, backward, clipping, Adam, priority update),
  ``ReplayMemory.sample`` the replay sample inside it, ``Env.step`` a step of the game (four
  ALE frames, two ``cv2.resize``, the frame stack).

Its loop learns on every step from ``T = --learn-start`` (it acts with the noisy network from the
first step and first fills a 500-transition validation memory with random play; none of that is
timed). The window starts at the ``--skip``-th step after learning starts and ends when its
training loop returns, after ``--steps`` steps: ``T_max = learn-start + skip + steps``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import runpy
import sys
import tempfile
import time
import types
from pathlib import Path


def kaixhin_argv(
    game: str, learn_start: int, skip: int, steps: int, memory: int = 100_000
) -> list[str]:
    """main.py's options: the README's data-efficient Rainbow command line (``--target-update
    2000 --T-max 100000 --learn-start 1600 --memory-capacity 100000 --replay-frequency 1
    --multi-step 20 --architecture data-efficient --hidden-size 256 --learning-rate 0.0001
    --evaluation-interval 10000``), with the run cut to the timed window, the evaluation moved
    past its end and CUDA off."""
    t_max = learn_start + skip + steps
    return [
        "--game", game,
        "--target-update", "2000",
        "--T-max", str(t_max),
        "--learn-start", str(learn_start),
        "--memory-capacity", str(memory),
        "--replay-frequency", "1",
        "--multi-step", "20",
        "--architecture", "data-efficient",
        "--hidden-size", "256",
        "--learning-rate", "0.0001",
        "--evaluation-interval", str(t_max + 1),
        "--disable-cuda",
    ]  # fmt: skip


def atari_py_shim() -> types.ModuleType:
    """A stand-in ``atari_py`` module over ale-py (the calls Kaixhin/Rainbow makes)."""
    import ale_py
    from ale_py import roms

    def get_game_path(name: str) -> str:
        path = roms.get_rom_path(name) if name in roms.get_all_rom_ids() else None
        if path is None or not Path(path).exists():
            raise FileNotFoundError(f"ale-py has no ROM named {name!r}")
        return str(path)

    shim = types.ModuleType("atari_py")
    shim.ALEInterface = ale_py.ALEInterface  # type: ignore[attr-defined]
    shim.get_game_path = get_game_path  # type: ignore[attr-defined]
    shim.list_games = lambda: sorted(roms.get_all_rom_ids())  # type: ignore[attr-defined]
    shim.__version__ = f"shim over ale-py {ale_py.__version__}"  # type: ignore[attr-defined]
    return shim


def _evaluation_stub() -> types.ModuleType:
    stub = types.ModuleType("test")

    def test(*_args, **_kwargs):
        raise RuntimeError("evaluation is off in this benchmark (--evaluation-interval > T_max)")

    stub.test = test  # type: ignore[attr-defined]
    return stub


class Window:
    """Time spent in each timed method, counted from the ``start``-th agent step on."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.acts = 0
        self.t0: float | None = None
        self.t_end: float | None = None
        self.seconds = {"learn": 0.0, "sample": 0.0, "act": 0.0, "env": 0.0}
        self.calls = {"learn": 0, "sample": 0, "act": 0, "env": 0}

    def wrap(self, cls: type, method: str, part: str) -> None:
        original = getattr(cls, method)
        window = self

        def timed(*a, **k):
            t = time.perf_counter()
            if part == "act":
                window.acts += 1
                if window.acts == window.start:
                    window.t0 = t
            try:
                return original(*a, **k)
            finally:
                if window.t0 is not None:
                    window.seconds[part] += time.perf_counter() - t
                    window.calls[part] += 1

        setattr(cls, method, timed)

    def result(self) -> dict:
        if self.t0 is None or self.t_end is None:
            raise RuntimeError(f"the run ended before step {self.start} ({self.acts} steps)")
        elapsed = self.t_end - self.t0
        steps = self.calls["act"]

        def ms(part: str) -> float:
            return 1e3 * self.seconds[part] / max(self.calls[part], 1)

        return {
            "steps_per_s": steps / elapsed,
            "timed_steps": steps,
            "updates": self.calls["learn"],
            "update_ms": ms("learn"),
            "sample_ms": ms("sample"),
            "act_ms": ms("act"),
            "env_ms": ms("env"),
            "update_share": self.seconds["learn"] / elapsed,
        }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kaixhin", required=True, help="a checkout of Kaixhin/Rainbow")
    p.add_argument("--game", default="crazy_climber")
    p.add_argument("--learn-start", type=int, default=1600)
    p.add_argument("--skip", type=int, default=200, help="learning steps before timing")
    p.add_argument("--steps", type=int, default=1000, help="timed agent steps")
    p.add_argument("--memory", type=int, default=100_000, help="replay capacity")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads")
    p.add_argument("--site", default=None, help="folder with OpenCV (added after site-packages)")
    return p


def main() -> None:
    args = build_parser().parse_args()
    root = Path(args.kaixhin).resolve()
    if args.site:
        sys.path.append(str(Path(args.site).resolve()))
    import cv2
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    sys.modules["atari_py"] = atari_py_shim()
    sys.modules["test"] = _evaluation_stub()
    sys.path.insert(0, str(root))
    import agent as k_agent  # Kaixhin/Rainbow's modules, from its checkout
    import env as k_env
    import memory as k_memory

    window = Window(start=args.learn_start + args.skip + 1)
    window.wrap(k_agent.Agent, "act", "act")
    window.wrap(k_agent.Agent, "learn", "learn")
    window.wrap(k_memory.ReplayMemory, "sample", "sample")
    window.wrap(k_env.Env, "step", "env")

    def close(_self) -> None:  # the training loop's last call
        window.t_end = time.perf_counter()

    k_env.Env.close = close  # type: ignore[method-assign]

    argv = kaixhin_argv(args.game, args.learn_start, args.skip, args.steps, args.memory)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # main.py writes results/<id>/ under the working directory
        sys.argv = [str(root / "main.py"), *argv]
        try:
            runpy.run_path(str(root / "main.py"), run_name="__main__")
        finally:
            os.chdir(cwd)
    print(
        json.dumps(
            {
                "framework": "kaixhin-rainbow",
                "agent": "c51",
                **window.result(),
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "opencv": cv2.__version__,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "argv": argv,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
