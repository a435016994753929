"""Quick start: cache a slow pure function, then a record that changes, with one line each.

    python examples/quickstart.py

Redis comes from REDIS_URL / REDIS_SOCKET_PATH / REDIS_HOST when set, else from a private
embedded server that is removed on exit.
"""

from __future__ import annotations

import time

from _feeder import open_cache, timed

from memo_redis import cached, invalidates

ACTIVITY = {"indoor": 1.0, "outdoor": 1.4}
CATS = {"felix": {"weight_kg": 4.2, "activity": "indoor"}}  # stands in for a database


@cached(ttl=600)
def daily_portion_grams(weight_kg: float, activity: str) -> int:
    """Grams of kibble a cat needs per day (slow on purpose: it stands in for real work)."""
    time.sleep(0.2)
    kcal = 70 * weight_kg**0.75 * ACTIVITY[activity]
    return round(kcal / 3.6)


@cached(prefix="cats:{name}", ttl=600)
def cat_profile(name: str) -> dict[str, object]:
    """A cat's record plus its portion (a slow read: its key is ``cats:<name>:data:<digest>``)."""
    time.sleep(0.1)
    cat = CATS[name]
    return {"name": name, **cat, "portion_g": daily_portion_grams(**cat)}


@invalidates("cats:{name}:*")
def set_weight(name: str, weight_kg: float) -> None:
    """Update the record; ``cats:<name>:*`` is invalidated when this returns."""
    CATS[name]["weight_kg"] = weight_kg


def main() -> None:
    print("== memo_redis: quick start ==")
    with open_cache() as cache:
        # Entries of an earlier run against the same Redis must not turn the first call into a hit.
        daily_portion_grams.cache_clear()
        cache.invalidate("cats:felix:*")

        grams, ms = timed(daily_portion_grams, 4.2, "indoor")
        print(f"miss:         daily_portion_grams(4.2, 'indoor') = {grams} g in {ms:.1f} ms")
        for _ in range(2):
            grams, ms = timed(daily_portion_grams, 4.2, "indoor")
            print(f"hit:          daily_portion_grams(4.2, 'indoor') = {grams} g in {ms:.2f} ms")
        grams, ms = timed(lambda: daily_portion_grams(activity="indoor", weight_kg=4.2))
        print(f"hit:          daily_portion_grams(activity='indoor', weight_kg=4.2) = {grams} g "
              f"in {ms:.2f} ms (keywords bind to the same key)")
        print(f"              key {daily_portion_grams.cache_key(4.2, 'indoor')}")

        profile, ms = timed(cat_profile, "felix")
        print(f"miss:         cat_profile('felix') = {profile} in {ms:.1f} ms")
        profile, ms = timed(cat_profile, "felix")
        print(f"hit:          cat_profile('felix') = {profile} in {ms:.2f} ms")
        set_weight("felix", 5.0)
        print("update:       set_weight('felix', 5.0)")
        state = "gone" if cache.get(cat_profile.cache_key("felix")) is None else "still cached"
        print(f"invalidation: @invalidates('cats:{{name}}:*') invalidated cats:felix:* "
              f"automatically; {cat_profile.cache_key('felix')} is {state}")
        fresh, ms = timed(cat_profile, "felix")
        print(f"fresh:        cat_profile('felix') = {fresh} in {ms:.1f} ms")
        if fresh["weight_kg"] != 5.0:
            raise SystemExit(f"stale value after the update: {fresh}")


if __name__ == "__main__":
    main()
