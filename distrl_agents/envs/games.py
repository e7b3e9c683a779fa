"""The Atari game table: ROM ids, benchmark sets, human and random reference scores.

Reference scores are the standard Atari-57 table used for human-normalized scores by Agent57,
MuZero (arXiv:1911.08265, Table S1), DQN Zoo, Dopamine and rliable (Agarwal et al. 2021):
random = uniformly random policy, human = professional human game tester, both under no-op starts
with the 108,000-frame (30 minute) episode cap. Values copied verbatim from rliable's
``deep_rl_precipice_colab.ipynb`` ("Calculate Human AND Random scores", which cites MuZero).
DQN Zoo's ``atari_data.py`` agrees on every value except Video Pinball's random score (16256.9).
"""

from __future__ import annotations

import difflib
import re

# game -> (random score, human score). Source: see module docstring.
HUMAN_RANDOM: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "asteroids": (719.1, 47388.7),
    "atlantis": (12850.0, 29028.1),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "beam_rider": (363.9, 16926.5),
    "berzerk": (123.7, 2630.4),
    "bowling": (23.1, 160.7),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "centipede": (2090.9, 12017.0),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "defender": (2874.5, 18688.9),
    "demon_attack": (152.1, 1971.0),
    "double_dunk": (-18.6, -16.4),
    "enduro": (0.0, 860.5),
    "fishing_derby": (-91.7, -38.7),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "gravitar": (173.0, 3351.4),
    "hero": (1027.0, 30826.4),
    "ice_hockey": (-11.2, 0.9),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "montezuma_revenge": (0.0, 4753.3),
    "ms_pacman": (307.3, 6951.6),
    "name_this_game": (2292.3, 8049.0),
    "phoenix": (761.4, 7242.6),
    "pitfall": (-229.4, 6463.7),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "riverraid": (1338.5, 17118.0),
    "road_runner": (11.5, 7845.0),
    "robotank": (2.2, 11.9),
    "seaquest": (68.4, 42054.7),
    "skiing": (-17098.1, -4336.9),
    "solaris": (1236.3, 12326.7),
    "space_invaders": (148.0, 1668.7),
    "star_gunner": (664.0, 10250.0),
    "surround": (-10.0, 6.5),
    "tennis": (-23.8, -8.3),
    "time_pilot": (3568.0, 5229.2),
    "tutankham": (11.4, 167.6),
    "up_n_down": (533.4, 11693.2),
    "venture": (0.0, 1187.5),
    "video_pinball": (0.0, 17667.9),
    "wizard_of_wor": (563.5, 4756.5),
    "yars_revenge": (3092.9, 54576.9),
    "zaxxon": (32.5, 9173.3),
}

#: The 57 games of the Atari-57 benchmark (ale-py ROM ids).
ATARI57: tuple[str, ...] = tuple(sorted(HUMAN_RANDOM))

#: Atari-57 without Defender and Surround, as rliable's Atari-200M analysis (and FQF) report.
ATARI55: tuple[str, ...] = tuple(g for g in ATARI57 if g not in ("defender", "surround"))

#: The 26 games of Atari 100k (Kaiser et al. 2020, SimPLe; van Hasselt et al. 2019, DER).
ATARI100K: tuple[str, ...] = (
    "alien", "amidar", "assault", "asterix", "bank_heist", "battle_zone", "boxing", "breakout",
    "chopper_command", "crazy_climber", "demon_attack", "freeway", "frostbite", "gopher", "hero",
    "jamesbond", "kangaroo", "krull", "kung_fu_master", "ms_pacman", "pong", "private_eye",
    "qbert", "road_runner", "seaquest", "up_n_down",
)  # fmt: skip

BENCHMARKS: dict[str, tuple[str, ...]] = {
    "atari57": ATARI57,
    "atari55": ATARI55,
    "atari100k": ATARI100K,
}


class UnknownGameError(ValueError):
    """A game name that matches no ROM shipped with ale-py."""


def available_roms() -> tuple[str, ...]:
    """Every ROM id that the installed ale-py ships (a superset of the Atari-57)."""
    from ale_py import roms

    return tuple(sorted(roms.get_all_rom_ids()))


def _snake(name: str) -> str:
    # "MsPacman" -> "ms_pacman", "UpNDown" -> "up_n_down", "ms-pacman" -> "ms_pacman"
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    name = re.sub(r"(?<=[A-Z])(?=[A-Z][a-z])", "_", name)
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def resolve_game(name: str) -> str:
    """Return the ale-py ROM id for a user-facing game name.

    Accepts ROM ids (``ms_pacman``), CamelCase names (``MsPacman``) and gymnasium ids
    (``BreakoutNoFrameskip-v4``, ``ALE/Breakout-v5``, ``Breakout-ramDeterministic-v4``).

    Raises:
        UnknownGameError: the name matches no ROM; the message lists the closest games.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnknownGameError(f"game must be a non-empty string, got {name!r}")
    raw = name.strip()
    if raw.startswith("ALE/"):
        raw = raw[4:]
    raw = re.sub(r"-v\d+$", "", raw)
    raw = re.sub(r"(-ram)?(NoFrameskip|Deterministic)?$", "", raw)
    raw = raw.removesuffix("-ram")
    roms = available_roms()
    for candidate in (raw, _snake(raw), raw.lower(), raw.lower().replace("-", "_")):
        if candidate in roms:
            return candidate
    flat = {r.replace("_", ""): r for r in roms}
    key = re.sub(r"[^a-z0-9]", "", raw.lower())
    if key in flat:
        return flat[key]
    close = difflib.get_close_matches(_snake(raw), roms, n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownGameError(
        f"Unknown Atari game {name!r}.{hint} Use an ale-py ROM id such as 'breakout' or "
        f"'ms_pacman' ({len(roms)} ROMs ship with ale-py; the Atari-57 benchmark games are listed "
        "in distrl_agents.envs.games.ATARI57)."
    )
