"""App sessions: who opens the app in an hour, what they search, view, favorite, put in the cart and buy.

All the random draws of an hour are made at once, as arrays; the loop that follows only assembles events.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from growthengine.simulate.catalog import CATEGORIES, PROVINCE_WEIGHTS, PROVINCES

if TYPE_CHECKING:
    from growthengine.simulate.marketplace import Marketplace

_HOUR_US = 3_600_000_000
_SECOND_US = 1_000_000
_PROVINCE_NAMES = tuple(p.name for p in PROVINCES)
_MEDIAN_PRICE = tuple(c.median_price for c in CATEGORIES)


def affordability(price_sensitivity: float, price: float, category: int) -> float:
    """How much a price above the category's usual one puts this user off (1: not at all)."""
    ratio = price / _MEDIAN_PRICE[category]
    if ratio <= 1.0:
        return 1.0
    return math.exp(-2.5 * price_sensitivity * math.log(ratio))


def plan_sessions(market: Marketplace, hour_us: int, alive: np.ndarray[Any, np.dtype[np.bool_]]) -> None:
    """Plan the app sessions that start in ``[hour_us, hour_us + 1h)``."""
    pop, rng, catalog = market.population, market.rng, market.catalog
    how = pop.hour_of_week(hour_us)
    rate = 7.0 * pop.sessions_per_day * pop.active_hours[np.arange(pop.n), how] * alive
    users_arr = np.repeat(np.arange(pop.n), rng.poisson(rate))
    sessions = len(users_arr)
    if sessions == 0:
        return
    starts_arr = hour_us + rng.integers(0, _HOUR_US, size=sessions)
    n_search_arr = rng.poisson(pop.search_rate[users_arr])
    n_views_arr = rng.poisson(pop.views_per_session[users_arr])

    searches = int(n_search_arr.sum())
    home = rng.random(searches) < np.repeat(pop.local_focus[users_arr], n_search_arr)
    elsewhere = rng.choice(len(PROVINCES), size=searches, p=PROVINCE_WEIGHTS)
    search_province = np.where(home, np.repeat(pop.province[users_arr], n_search_arr), elsewhere).tolist()

    views = int(n_views_arr.sum())
    view_users = np.repeat(users_arr, n_views_arr)
    cumulative = np.cumsum(pop.category_affinity[view_users], axis=1)
    view_category = np.minimum((cumulative < rng.random(views)[:, None]).sum(axis=1), len(CATEGORIES) - 1).tolist()
    pick = rng.random(views).tolist()
    near = (rng.random(views) < 0.6).tolist()
    fav = (rng.random(views) < pop.favorite_rate[view_users]).tolist()
    cart_roll = rng.random(views).tolist()
    view_gap = (5 * _SECOND_US + rng.exponential(35 * _SECOND_US, size=views)).astype(np.int64).tolist()
    search_gap = (3 * _SECOND_US + rng.exponential(15 * _SECOND_US, size=searches)).astype(np.int64).tolist()
    checkout_roll = rng.random(sessions).tolist()
    remove_roll = rng.random(sessions).tolist()

    users = users_arr.tolist()
    starts = starts_arr.tolist()
    n_search = n_search_arr.tolist()
    n_views = n_views_arr.tolist()
    first_search = (np.cumsum(n_search_arr) - n_search_arr).tolist()
    first_view = (np.cumsum(n_views_arr) - n_views_arr).tolist()
    cart_rate = pop.cart_rate
    propensity = pop.purchase_propensity
    sensitivity = pop.price_sensitivity
    # Sessions in the order they start, so that stock and carts change in time order.
    for k in np.argsort(starts_arr, kind="stable").tolist():
        user = users[k]
        t = starts[k]
        market.emit(t, user, "app_opened", {})
        province: int | None = None
        for s in range(first_search[k], first_search[k] + n_search[k]):
            t += search_gap[s]
            province = search_province[s]
            market.emit(t, user, "location_searched", {"province": _PROVINCE_NAMES[province]})
        sens = float(sensitivity[user])
        for v in range(first_view[k], first_view[k] + n_views[k]):
            t += view_gap[v]
            listing = catalog.by_province[province].pick(pick[v]) if province is not None and near[v] else None
            if listing is None:
                listing = catalog.by_category[view_category[v]].pick(pick[v])
            if listing is None:
                continue
            market.emit(t, user, "item_viewed", catalog.view_properties(listing))
            if fav[v]:
                market.favorite(user, listing, t + _SECOND_US)
            appeal = affordability(sens, catalog.price[listing], catalog.category[listing])
            if cart_roll[v] < cart_rate[user] * appeal:
                market.add_to_cart(user, listing, t + 2 * _SECOND_US)
        cart = market.carts.get(user)
        if cart:
            t += 20 * _SECOND_US
            appeal = min(affordability(sens, catalog.price[i], catalog.category[i]) for i in cart)
            if checkout_roll[k] < propensity[user] * appeal:
                market.buy(user, list(cart), t)
            elif remove_roll[k] < 0.12:
                market.remove_from_cart(user, cart[int(remove_roll[k] / 0.12 * len(cart)) % len(cart)], t)
