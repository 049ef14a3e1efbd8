"""Made-up residents for the demo round (screening/demo_round.py): well-formed PRC ID
numbers and plausible Chinese names, from a seeded random generator."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from stdnum.cn import ric

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂"


def synthetic_prc_id(rng: random.Random) -> str:
    """A made-up but well-formed PRC ID number (region, birth date, check character)."""
    born = datetime(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 80))
    body = f"110101{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return body + ric.calc_check_digit(body + "0")  # it expects a check slot


def synthetic_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))
