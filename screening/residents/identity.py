"""Who a person is: ID numbers by type, and names as people write them (API.md, v1.1
"Identity"). Pure rules: no FastAPI, no SQLAlchemy.

Every refusal is an :class:`InvalidIdNumber` whose message is a Chinese sentence a
registration clerk can act on; nothing here raises anything else, whatever the input
(a ``KeyError`` from a library look-up once turned an odd ID number into a 500).

A ``prc_id`` (居民身份证, and the residence permits of Hong Kong, Macau and Taiwan
residents, prefixes 81/82/83) is valid when it has 17 digits and a check character,
its birth date exists and is not in the future, the GB 11643 (ISO 7064 MOD 11-2) check
character is right, and its first two digits are a province code. python-stdnum gives
the check character and the date; its county look-up is deliberately not used: it asks
whether the county code existed in the holder's birth year, but an ID carries the
county where it was *issued* (Pudong 310115 exists since 1993, Tianhe 440106 since
1985), so it refuses real people, and raises ``KeyError`` for some codes.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime, timedelta

import pycountry
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

ID_TYPES = ("prc_id", "hkmo_permit", "tw_permit", "foreign_permanent", "passport", "other")

ID_TYPE_ZH = {
    "prc_id": "居民身份证",
    "hkmo_permit": "港澳居民来往内地通行证",
    "tw_permit": "台湾居民来往大陆通行证",
    "foreign_permanent": "外国人永久居留身份证",
    "passport": "护照",
    "other": "其他证件",
}

# GB/T 2260 provinces, plus 71 (Taiwan) and 81/82/83 (residence permits of Hong Kong,
# Macau and Taiwan residents, GB 11643 as amended in 2018).
PROVINCES = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
        "71", "81", "82", "83",
    }
)  # fmt: skip
EARLIEST_BIRTH = date(1880, 1, 1)

_HKMO = re.compile(r"[HM](?:[0-9]{8}|[0-9]{10})")
_TW = re.compile(r"[0-9]{8}")
_FOREIGN_OLD = re.compile(r"[A-Z]{3}[0-9]{12}")
_FOREIGN_NEW = re.compile(r"9[0-9]{16}[0-9X]")
_PASSPORT = re.compile(r"[A-Z0-9]{5,20}")
_OTHER = re.compile(r"[A-Z0-9]{3,32}")
_SEPARATORS = re.compile(r"[\s\-]+")

# Every way people and ID-card readers write the dot between parts of a name
# (阿卜杜·热合曼): middle dot, bullet, katakana middle dot, hyphenation point,
# full stop (NFKC has already folded the full-width forms into these).
MIDDLE_DOTS = "·•・‧.∙⋅"
_DOTS = str.maketrans(dict.fromkeys(MIDDLE_DOTS, "·"))


class InvalidIdNumber(ValueError):
    """An ID number that cannot be right; the message says why, in Chinese, and
    ``field`` names the field at fault (``id_number``, ``nationality`` or ``id_type``)."""

    def __init__(self, message: str, field: str = "id_number") -> None:
        super().__init__(message)
        self.field = field


def _plain(id_number: str) -> str:
    """NFKC (full-width digits from a Chinese keyboard become ASCII), no spaces or
    hyphens, upper case."""
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", id_number)).upper()


def _ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def latest_today() -> date:
    """Today's date where it is latest on Earth (UTC+14): a baby born today in Shanghai
    is not refused as born in the future by a server whose clock says UTC, where it is
    still yesterday until 08:00 Shanghai time."""
    return (datetime.now(UTC) + timedelta(hours=14)).date()


def check_prc_id(number: str, *, today: date | None = None) -> str:
    """The PRC resident ID (or HK/Macau/Taiwan residence permit) in canonical form."""
    if len(number) != 18:
        raise InvalidIdNumber(f"居民身份证号码应为18位，现为{len(number)}位，请核对。")
    if not _ascii_digits(number[:17]) or not (_ascii_digits(number[17]) or number[17] == "X"):
        raise InvalidIdNumber("居民身份证号码前17位应为数字，最后一位为数字或X，请核对。")
    if number[:2] not in PROVINCES:
        raise InvalidIdNumber(f"居民身份证号码前两位“{number[:2]}”不是省级行政区代码，请核对。")
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        raise InvalidIdNumber("居民身份证号码第7至14位的出生日期不存在，请核对。") from None
    if not EARLIEST_BIRTH <= born <= (today or latest_today()):
        raise InvalidIdNumber("居民身份证号码中的出生日期不合理（晚于今天或过早），请核对。")
    if ric.calc_check_digit(number) != number[17]:
        raise InvalidIdNumber("居民身份证号码校验位不对，可能有一位输错，请逐位核对。")
    return number


def check_nationality(nationality: str | None) -> str:
    """An ISO 3166-1 alpha-3 country code, upper case."""
    code = _plain(nationality or "")
    if not code:
        raise InvalidIdNumber(
            "护照须填写国籍（三个字母的国家代码，如 USA、GBR、JPN）。", "nationality"
        )
    if len(code) != 3 or not code.isascii() or pycountry.countries.get(alpha_3=code) is None:
        raise InvalidIdNumber(
            f"国籍“{nationality}”不是三个字母的国家代码（ISO 3166-1，如 USA、GBR、JPN），请核对。",
            "nationality",
        )
    return code


def normalize_id_number(
    id_type: str, id_number: str, *, nationality: str | None = None, today: date | None = None
) -> str:
    """The canonical form an ID number is stored and hashed in; raises InvalidIdNumber.

    A passport is the pair nationality + number: its canonical form is ``USA:E1234567``,
    so the same number from two countries is two people.
    """
    number = _plain(id_number)
    if id_type == "prc_id":
        return check_prc_id(number, today=today)
    if id_type == "hkmo_permit":
        if not _HKMO.fullmatch(number):
            raise InvalidIdNumber(
                "港澳居民来往内地通行证号码为H或M开头，后接8位或10位数字，请核对。"
            )
        return number
    if id_type == "tw_permit":
        if not _TW.fullmatch(number):
            raise InvalidIdNumber("台湾居民来往大陆通行证号码为8位数字，请核对。")
        return number
    if id_type == "foreign_permanent":
        if _FOREIGN_OLD.fullmatch(number):
            return number
        if _FOREIGN_NEW.fullmatch(number):
            if ric.calc_check_digit(number) != number[17]:
                raise InvalidIdNumber(
                    "外国人永久居留身份证号码校验位不对，可能有一位输错，请逐位核对。"
                )
            return number
        raise InvalidIdNumber(
            "外国人永久居留身份证号码应为15位（3个字母加12位数字）或18位（以9开头），请核对。"
        )
    if id_type == "passport":
        country = check_nationality(nationality)
        return passport_canonical(country, check_passport_number(number))
    if id_type == "other":
        if not _OTHER.fullmatch(number):
            raise InvalidIdNumber("证件号码应为3至32位字母或数字，请核对。")
        return number
    raise InvalidIdNumber(
        "证件类型应为：" + "、".join(f"{ID_TYPE_ZH[t]}（{t}）" for t in ID_TYPES) + "。",
        "id_type",
    )


def check_passport_number(id_number: str) -> str:
    """A passport's number alone, plain (its nationality checked apart)."""
    number = _plain(id_number)
    if not _PASSPORT.fullmatch(number):
        raise InvalidIdNumber("护照号码应为5至20位字母或数字，请核对。")
    return number


def passport_canonical(country: str, number: str) -> str:
    """A passport is the pair nationality + number: ``USA:E1234567``."""
    return f"{country}:{number}"


def split_canonical(canonical: str) -> tuple[str, str | None]:
    """(the number as printed on the document, the nationality for a passport)."""
    country, sep, number = canonical.rpartition(":")
    return (number, country) if sep else (canonical, None)


def normalize_name(name: str) -> str:
    """The name as stored and printed: NFKC and single spaces (dots stay as written)."""
    return " ".join(unicodedata.normalize("NFKC", name).split())


def name_key(name: str) -> str:
    """What two spellings of one name share: ``阿卜杜·热合曼`` = ``阿卜杜•热合曼``,
    ``John Smith`` = ``JOHN  SMITH`` = ``johnsmith``; Chinese characters are unchanged
    by case folding."""
    return "".join(normalize_name(name).translate(_DOTS).split()).casefold()


def same_name(a: str, b: str) -> bool:
    return name_key(a) == name_key(b)
