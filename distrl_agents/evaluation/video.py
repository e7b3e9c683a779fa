"""Videos of evaluation games in the game's own colours.

The agent sees 84x84 grey frames; a video shows the Atari screen (210x160 RGB). ale-py's vector
environment returns only the processed observations, so :func:`replay_screens` plays the recorded
game again, from the seed its environment was reset with and the actions the agent took
(:attr:`EvalResult.actions <distrl_agents.evaluation.evaluator.EvalResult.actions>`), in a
one-game environment with the same settings that returns the screen in colour. The emulator is
deterministic given the seed (sticky actions and no-op starts draw from the seeded generator), so
the replay is the same game, frame for frame.

:func:`write_video` writes an MP4 where a writer is installed (``imageio-ffmpeg``, whose wheel
carries an ffmpeg binary, or any ``ffmpeg`` it finds) and an animated GIF otherwise; a GIF holds
at most :data:`GIF_MAX_FRAMES` frames (it is built in memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["GIF_MAX_FRAMES", "VideoFile", "mp4_writer_available", "replay_screens", "write_video"]

#: Frames kept in a GIF: 3,000 frames = 200 s at 15 frames per second (one frame per agent step,
#: i.e. real time at frameskip 4). An MP4 holds the whole game.
GIF_MAX_FRAMES = 3_000


def replay_screens(spec: Any, seed: int, actions: Sequence[int]) -> Iterator[np.ndarray]:
    """The RGB screens ``[210, 160, 3]`` of a recorded game, one per agent step.

    ``spec`` is the :class:`~distrl_agents.envs.atari.EnvSpec` of the environment that played it,
    ``seed`` the seed that game was reset with and ``actions`` the actions taken on its
    observations (``actions[t]`` on observation ``t``). Yields ``len(actions)`` screens: the
    first one after the reset, then one after each action but the last (the last action was taken
    on the last observation, or ignored when it started the next game).
    """
    yield from _replay(spec, seed, actions, rgb=True)


def _replay(spec: Any, seed: int, actions: Sequence[int], rgb: bool) -> Iterator[np.ndarray]:
    """The game of :func:`replay_screens`: RGB screens, or (``rgb=False``) the 84x84 grey frames
    the agent saw."""
    from ale_py.vector_env import AtariVectorEnv
    from gymnasium.vector import AutoresetMode

    env = AtariVectorEnv(
        spec.game,
        1,
        num_threads=1,
        max_num_frames_per_episode=spec.max_num_frames_per_episode,
        repeat_action_probability=spec.repeat_action_probability,
        full_action_space=spec.full_action_space,
        autoreset_mode=AutoresetMode.NEXT_STEP,
        grayscale=not rgb,
        stack_num=1,
        frameskip=spec.frameskip,
        noop_max=spec.noop_max,
        use_fire_reset=spec.use_fire_reset,
        episodic_life=False,
        life_loss_info=spec.terminal_on_life_loss,
        reward_clipping=False,
        img_height=210 if rgb else 84,
        img_width=160 if rgb else 84,
    )
    try:
        obs, _ = env.reset(seed=int(seed))
        if len(actions):
            yield obs[0, -1].copy()
        for a in actions[:-1]:
            obs, *_ = env.step(np.array([a], dtype=np.int64))
            yield obs[0, -1].copy()
    finally:
        env.close()


def mp4_writer_available() -> bool:
    """Whether :func:`write_video` can write an MP4 (``imageio-ffmpeg`` is installed)."""
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        return False
    return True


class VideoFile:
    """What :func:`write_video` wrote: ``path``, ``frames`` written, ``cut`` (frames left out)."""

    def __init__(self, path: Path, frames: int, cut: int) -> None:
        self.path, self.frames, self.cut = path, frames, cut

    def __repr__(self) -> str:
        return f"VideoFile({str(self.path)!r}, frames={self.frames}, cut={self.cut})"


def write_video(
    frames: Iterable[np.ndarray],
    stem: Path,
    fps: int = 15,
    mp4: bool | None = None,
    total: int | None = None,
) -> VideoFile:
    """Write RGB ``frames`` (``[H, W, 3]`` uint8) to ``<stem>.mp4``, or ``<stem>.gif`` where no
    MP4 writer is installed (``mp4=None``) or when ``mp4=False``.

    An MP4 is scaled up twice (nearest neighbour) and holds every frame; a GIF keeps the screen's
    size and the first :data:`GIF_MAX_FRAMES` frames (the count left out is ``cut``; give the
    number of ``frames`` as ``total`` and the ones left out are not generated).
    """
    use_mp4 = mp4_writer_available() if mp4 is None else mp4
    if use_mp4:
        return _write_mp4(frames, stem.with_suffix(".mp4"), fps)
    return _write_gif(frames, stem.with_suffix(".gif"), fps, total)


def _write_mp4(frames: Iterable[np.ndarray], path: Path, fps: int) -> VideoFile:
    import imageio_ffmpeg

    it = iter(frames)
    first = next(it, None)
    if first is None:
        raise ValueError("no frames to write")
    big = _double(first)
    h, w = big.shape[:2]
    writer = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec="libx264", quality=7, macro_block_size=2
    )
    writer.send(None)  # start the encoder
    count = 0
    try:
        for frame in _chain(first, it):
            writer.send(np.ascontiguousarray(_double(frame)))
            count += 1
    finally:
        writer.close()
    return VideoFile(path, count, 0)


def _write_gif(frames: Iterable[np.ndarray], path: Path, fps: int, total: int | None) -> VideoFile:
    from PIL import Image

    it = iter(frames)
    kept = [Image.fromarray(f) for f in islice(it, GIF_MAX_FRAMES)]
    if not kept:
        raise ValueError("no frames to write")
    cut = sum(1 for _ in it) if total is None else max(total - len(kept), 0)
    close = getattr(it, "close", None)
    if close is not None:
        close()  # a generator (a replay) left unfinished: its environment closes now
    kept[0].save(path, save_all=True, append_images=kept[1:], duration=int(1000 / fps), loop=0)
    return VideoFile(path, len(kept), cut)


def _double(frame: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)


def _chain(first: np.ndarray, rest: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    yield first
    yield from rest
