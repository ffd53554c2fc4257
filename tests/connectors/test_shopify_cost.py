"""Shopify's requested query cost and the cost-bucket pacer (pure, no I/O)."""

from __future__ import annotations

import pytest
from graphql import parse

from connectors.shopify.client import LEVELS_QUERY, SET_MUTATION
from connectors.shopify.cost import (
    MAX_QUERY_COST,
    connection,
    items_per_read,
    levels_per_item,
    levels_read_cost,
    listing,
    mutation,
    obj,
    requested_cost,
    scalar,
)
from connectors.shopify.throttle import Pacer, ThrottleStatus, query_cost
from tests.support.shopify_graphql import requested_cost as stub_cost
from tests.support.shopify_graphql import schema_for


def test_requested_cost_of_an_object_with_scalars_is_one() -> None:
    # the documented example: shop { id name timezoneOffsetMinutes customerAccounts } costs 1
    assert requested_cost(obj(scalar(), scalar(), scalar(), scalar())) == 1


def test_requested_cost_of_a_connection_is_two_plus_its_objects() -> None:
    # products(first: 10) { nodes { title variants(first: 5) { nodes { price } } } }
    variants = connection(5, scalar())
    assert requested_cost(connection(10, scalar(), variants)) == 2 + 10 * (1 + 2 + 5 * 1)


def test_requested_cost_of_a_mutation_is_ten_whatever_it_selects() -> None:
    assert requested_cost(mutation()) == 10


def test_levels_read_of_fifty_items_with_250_levels_is_far_over_the_limit() -> None:
    # the read this connector used to send: 50 x (1 + 2 + 250 x 3)
    assert levels_read_cost(50, 250) == 37_650


@pytest.mark.parametrize("levels", [1, 3, 10, 100, 250])
def test_items_per_read_keeps_every_read_within_the_limit(levels: int) -> None:
    n = items_per_read(levels)
    assert n >= 1
    assert levels_read_cost(n, levels) <= MAX_QUERY_COST
    assert n == 250 or levels_read_cost(n + 1, levels) > MAX_QUERY_COST


def test_levels_per_item_is_the_largest_page_of_one_item_within_the_budget() -> None:
    assert levels_per_item() == 250  # 1 + 2 + 250 x 3 = 753
    assert levels_per_item(100) == 32  # 3 + 32 x 3 = 99
    assert levels_read_cost(1, levels_per_item(100)) <= 100


@pytest.mark.parametrize(("items", "levels"), [(1, 1), (7, 3), (50, 250), (83, 3), (1, 250)])
def test_levels_read_cost_matches_the_stub_count_of_the_query_text(items: int, levels: int) -> None:
    """The connector's cost model against an independent count over the query it sends."""
    variables = {"ids": [f"gid://shopify/InventoryItem/{n}" for n in range(items)]}
    variables |= {"first": levels, "after": None}
    counted = stub_cost(schema_for("2026-04"), parse(LEVELS_QUERY), variables)
    assert counted == levels_read_cost(items, levels)
    assert stub_cost(schema_for("2026-04"), parse(SET_MUTATION), {}) == 10


def test_listing_costs_one_object_per_element() -> None:
    assert requested_cost(listing(4, scalar(), obj())) == 4 * 2


# -- the pacer -------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_waits_for_the_points_the_bucket_lacks_at_its_restore_rate() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    assert pacer.wait_seconds(500) == 0  # nothing known yet: send, Shopify will say
    pacer.observe(ThrottleStatus(maximum=1000, available=100, restore_rate=50))
    assert pacer.wait_seconds(100) == 0
    assert pacer.wait_seconds(600) == pytest.approx(10.0)
    clock.now += 4
    assert pacer.wait_seconds(600) == pytest.approx(6.0)  # 300 regained meanwhile


def test_pacer_waits_are_bounded_and_never_for_more_than_the_bucket() -> None:
    pacer = Pacer(max_wait_seconds=2, clock=Clock())
    pacer.observe(ThrottleStatus(maximum=1000, available=0, restore_rate=50))
    assert pacer.wait_seconds(1000) == 2
    pacer.observe(ThrottleStatus(maximum=200, available=0, restore_rate=100))
    assert pacer.budget() == 200  # a larger query would never be let in
    assert Pacer(clock=Clock()).budget() == MAX_QUERY_COST


async def test_pacer_admit_counts_the_cost_as_spent() -> None:
    clock = Clock()
    pacer = Pacer(clock=clock)
    pacer.observe(ThrottleStatus(maximum=1000, available=1000, restore_rate=50))
    await pacer.admit(700)
    assert pacer.wait_seconds(700) == pytest.approx(8.0)  # 300 left: 400 more at 50/s


def test_query_cost_reads_extensions_cost_of_a_throttled_answer() -> None:
    body = {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {
            "cost": {
                "requestedQueryCost": 752,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": 1000.0,
                    "currentlyAvailable": 666,
                    "restoreRate": 50.0,
                },
            }
        },
    }
    cost = query_cost(body)
    assert cost is not None
    assert (cost.requested, cost.actual) == (752, None)
    assert cost.throttle == ThrottleStatus(1000.0, 666.0, 50.0)
    assert query_cost({"data": {}}) is None
