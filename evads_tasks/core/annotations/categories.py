"""The eight E-VAds product categories, accepted by English or Chinese name."""

from __future__ import annotations

# Canonical English name -> Chinese name used in the authors' annotations.
CATEGORIES: dict[str, str] = {
    "Apparel & Bags": "服饰鞋包",
    "Beauty & Cosmetics": "美容彩妆",
    "Personal Care": "个人护理",
    "Food & Healthcare": "食品生鲜 & 医药保健",
    "Home & Furniture": "家居家装",
    "Home Appliances": "家用电器",
    "Baby & Pet": "母婴玩具 & 宠物",
    "Others": "其他",
}

_LOOKUP: dict[str, str] = {}
for _english, _chinese in CATEGORIES.items():
    for _name in (_english, _chinese, _chinese.replace(" ", ""), _english.lower()):
        _LOOKUP[_name] = _english


def canonical_category(name: str | None) -> str | None:
    """English name for a category given in either language; unknown names are kept as given.

    Categories are descriptive metadata (used for breakdowns), so an unseen
    value is reported under its own name rather than rejected.
    """
    if name is None:
        return None
    name = str(name).strip()
    if not name:
        return None
    return _LOOKUP.get(name, _LOOKUP.get(name.lower(), name))


def chinese_category(name: str | None) -> str | None:
    """The authors' Chinese spelling of a category (unknown names unchanged)."""
    english = canonical_category(name)
    return CATEGORIES.get(english, english) if english else None
