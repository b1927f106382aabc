"""Which dynamic images and aliases are kept: pure decisions of the index and collector."""

from __future__ import annotations

from condaops.registry.collect import choose_dynamic
from condaops.registry.dynamic_index import TOUCH_EVERY, Alias, DynamicImage, needs_write, touch


def image(key: str, used: float, uses: int = 1, created: float = 0.0, **aliases: float) -> DynamicImage:
    return DynamicImage(
        key,
        f"sha256:{key * 64}"[:71],
        "application/x",
        1,
        created,
        used,
        uses,
        {n: Alias("r", t) for n, t in aliases.items()},
    )


def test_the_most_recently_pulled_are_kept() -> None:
    images = [image("a", 10), image("b", 30), image("c", 20), image("d", 30, uses=5)]
    assert [i.key for i in choose_dynamic(images, 2)] == ["c", "a"]
    assert choose_dynamic(images, 4) == [] and len(choose_dynamic(images, 0)) == 4


def test_aliases_are_capped_stalest_first() -> None:
    current = image("a", 0, **{f"dynamic/x{i}": float(i) for i in range(3)})
    touched = touch(current, "dynamic/new", "req", 100.0, limit=3)
    assert set(touched.image.aliases) == {"dynamic/new", "dynamic/x2", "dynamic/x1"}
    assert set(touched.dropped) == {"dynamic/x0"}
    assert touched.image.used == 100.0 and touched.image.uses == current.uses + 1


def test_pulls_write_the_record_only_now_and_then() -> None:
    current = image("a", 0, **{"dynamic/x": 100.0})
    assert not needs_write(current, "dynamic/x", "r", 100.0 + TOUCH_EVERY / 2)
    assert needs_write(current, "dynamic/x", "r", 100.0 + TOUCH_EVERY)
    assert needs_write(current, "dynamic/y", "r", 100.0)  # a new alias
    assert needs_write(current, "dynamic/x", "other", 100.0)  # asked another way
