"""Shopify's requested query cost, computed before a query is sent (pure; no I/O).

Shopify refuses a query whose *requested* cost is over 1,000 points before running it, and
charges the requested cost to the app's bucket up front (refunding the difference to the
actual cost afterwards):
https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits

The rules, as documented there and in Shopify's engineering write-up of the model
(https://shopify.engineering/rate-limiting-graphql-apis-calculating-query-complexity):

- a scalar or enum field costs 0, an object field 1;
- a connection costs 2 plus, for each of the ``first`` (or ``last``) objects it may return,
  that object's cost (1, plus whatever is selected inside it);
- a mutation costs 10.

Where the documentation is silent we chose the reading that over-estimates, never the one
that under-estimates, because an estimate that is too high only makes a query smaller than it
needs to be, while one that is too low gets it refused:

- a plain list of objects (``nodes(ids:)``, ``quantities(names:)``) is charged like a connection
  without its 2 points: one object per element the arguments ask for;
- ``pageInfo`` and the ``edges``/``nodes`` wrappers of a connection are covered by its 2 points
  (the documentation counts "the connection" and its objects, nothing in between);
- a mutation costs 10 whatever its payload selects.

A field may carry a cost of its own that differs from these defaults ("by default, a field's
cost is based on what it returns"); Shopify then refuses a query we sized too large with
``MAX_COST_EXCEEDED``, and the client splits it (see ``client.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

MAX_QUERY_COST = 1000  # the single-query limit, on the requested cost
MUTATION_COST = 10
CONNECTION_COST = 2
OBJECT_COST = 1
MAX_INPUT_ARRAY = (
    250  # "input arguments that accept an array": https://shopify.dev/docs/api/usage/limits
)
MAX_PAGE_SIZE = 250  # the largest ``first`` a connection accepts (same page)


class Returns(Enum):
    SCALAR = "scalar"
    OBJECT = "object"
    LIST = "list"  # a list of objects, ``size`` long at most
    CONNECTION = "connection"  # ``first``/``last`` = ``size``
    MUTATION = "mutation"


@dataclass(frozen=True)
class Field:
    """One selected field, as its cost sees it: what it returns, how many objects at most, and
    what is selected inside each of them."""

    returns: Returns
    size: int = 1
    inside: tuple[Field, ...] = ()


def scalar() -> Field:
    return Field(Returns.SCALAR)


def obj(*inside: Field) -> Field:
    return Field(Returns.OBJECT, 1, inside)


def listing(size: int, *inside: Field) -> Field:
    return Field(Returns.LIST, size, inside)


def connection(first: int, *inside: Field) -> Field:
    return Field(Returns.CONNECTION, first, inside)


def mutation() -> Field:
    return Field(Returns.MUTATION)


def requested_cost(*fields: Field) -> int:
    """The requested cost of a query selecting ``fields`` at its root."""
    return sum(_cost(f) for f in fields)


def _cost(field: Field) -> int:
    inside = sum(_cost(f) for f in field.inside)
    match field.returns:
        case Returns.SCALAR:
            return 0
        case Returns.OBJECT:
            return OBJECT_COST + inside
        case Returns.LIST:
            return field.size * (OBJECT_COST + inside)
        case Returns.CONNECTION:
            return CONNECTION_COST + field.size * (OBJECT_COST + inside)
        case Returns.MUTATION:
            return MUTATION_COST


# -- the shapes this connector sends ----------------------------------------------------------


def levels_read(items: int, levels_first: int) -> Field:
    """``nodes(ids: [items ids]) { ... on InventoryItem { id inventoryLevels(first:
    levels_first) { nodes { location { id } quantities(names: ["available"]) { name quantity } }
    pageInfo { hasNextPage endCursor } } } }``."""
    level = (obj(scalar()), listing(1, scalar(), scalar()))  # location; one quantity name
    return listing(items, scalar(), connection(levels_first, *level))


def levels_read_cost(items: int, levels_first: int) -> int:
    return requested_cost(levels_read(items, levels_first))


def items_per_read(levels_first: int, budget: int = MAX_QUERY_COST) -> int:
    """The most inventory items one read with ``inventoryLevels(first: levels_first)`` may ask
    for within ``budget`` points (0: not even one fits) and the input-array limit."""
    per_item = levels_read_cost(1, levels_first)
    return min(MAX_INPUT_ARRAY, budget // per_item)


def levels_per_item(budget: int = MAX_QUERY_COST) -> int:
    """The largest ``inventoryLevels(first:)`` page of one item that fits ``budget``."""
    per_level = levels_read_cost(1, 1) - levels_read_cost(1, 0)
    return max(0, min(MAX_PAGE_SIZE, (budget - levels_read_cost(1, 0)) // per_level))
