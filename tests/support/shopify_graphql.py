"""The slice of Shopify's GraphQL Admin schema the connector uses, per API version, and the
requested cost of a query by Shopify's documented rules -- the Shopify stub's grammar.

Written from Shopify's reference pages, independently of the connector's own cost function
(``connectors/shopify/cost.py``), so a test comparing the two checks one against the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

from graphql import (
    FieldNode,
    GraphQLField,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    is_abstract_type,
    is_leaf_type,
)
from graphql.language import DocumentNode
from graphql.utilities import value_from_ast_untyped

# Objects, fields and arguments as the 2026-04 reference pages list them (trimmed to what the
# connector reads or writes):
# https://shopify.dev/docs/api/admin-graphql/2026-04/queries/nodes
# https://shopify.dev/docs/api/admin-graphql/2026-04/objects/InventoryItem (inventoryLevels)
# https://shopify.dev/docs/api/admin-graphql/2026-04/objects/InventoryLevel (quantities(names:))
# https://shopify.dev/docs/api/admin-graphql/2026-04/mutations/inventorySetQuantities
_COMMON = """
interface Node { id: ID! }
type Location implements Node { id: ID! name: String! }
type InventoryQuantity { id: ID! name: String! quantity: Int! }
type PageInfo {
  hasNextPage: Boolean! hasPreviousPage: Boolean! startCursor: String endCursor: String
}
type InventoryLevel implements Node {
  id: ID! location: Location! quantities(names: [String!]!): [InventoryQuantity!]!
}
type InventoryLevelEdge { cursor: String! node: InventoryLevel! }
type InventoryLevelConnection {
  edges: [InventoryLevelEdge!]! nodes: [InventoryLevel!]! pageInfo: PageInfo!
}
type InventoryItem implements Node {
  id: ID! sku: String tracked: Boolean!
  inventoryLevels(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false, query: String
  ): InventoryLevelConnection!
}
type Query { nodes(ids: [ID!]!): [Node]! }
type InventoryAdjustmentGroup { id: ID! reason: String! referenceDocumentUri: String }
type InventorySetQuantitiesUserError { code: String field: [String!] message: String! }
type InventorySetQuantitiesPayload {
  inventoryAdjustmentGroup: InventoryAdjustmentGroup
  userErrors: [InventorySetQuantitiesUserError!]!
}
type Mutation {
  inventorySetQuantities(input: InventorySetQuantitiesInput!): InventorySetQuantitiesPayload
}
"""

# 2026-01 adds changeFromQuantity (compare-and-set) and the @idempotent directive:
# https://shopify.dev/changelog/compare-and-swap-redesign-for-inventory-set-quantities
# https://shopify.dev/changelog/adding-idempotency-for-inventory-adjustments-and-refund-mutations
_SINCE_2026_01 = """
directive @idempotent(key: String!) on FIELD
input InventoryQuantityInput {
  inventoryItemId: ID! locationId: ID! quantity: Int!
  changeFromQuantity: Int compareQuantity: Int
}
input InventorySetQuantitiesInput {
  name: String! reason: String! referenceDocumentUri: String
  quantities: [InventoryQuantityInput!]! ignoreCompareQuantity: Boolean = false
}
"""

# Before 2026-01: compareQuantity / ignoreCompareQuantity only, no idempotency directive:
# https://shopify.dev/docs/api/admin-graphql/2025-07/input-objects/InventoryQuantityInput
_BEFORE_2026_01 = """
input InventoryQuantityInput {
  inventoryItemId: ID! locationId: ID! quantity: Int! compareQuantity: Int
}
input InventorySetQuantitiesInput {
  name: String! reason: String! referenceDocumentUri: String
  quantities: [InventoryQuantityInput!]! ignoreCompareQuantity: Boolean = false
}
"""

CHANGES_IN = "2026-01"


@cache
def schema_for(version: str) -> GraphQLSchema:
    """The schema a shop serves at API ``version`` (a YYYY-MM name)."""
    extra = _SINCE_2026_01 if version >= CHANGES_IN else _BEFORE_2026_01
    return build_schema(_COMMON + extra)


# -- requested cost --------------------------------------------------------------------------
# https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits ("Cost calculation"):
# scalar and enum 0, object 1, interface and union "maximum of possible selections",
# connection "sized by first and last arguments", mutation 10.
# https://shopify.engineering/rate-limiting-graphql-apis-calculating-query-complexity: a
# connection costs two points plus its objects.
# The pages are silent on plain lists; here a list of objects costs one object per element its
# list argument asks for (nodes(ids:), quantities(names:)), the reading that never
# under-counts.
SCALAR_COST = 0
OBJECT_COST = 1
CONNECTION_COST = 2
MUTATION_COST = 10


def requested_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any],
    field_costs: Mapping[str, int] | None = None,
) -> int:
    """The requested cost of ``document``'s operation. ``field_costs`` ("Type.field" -> points)
    stands in for the costs Shopify may assign a field instead of the defaults."""
    op = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    if op.operation is OperationType.MUTATION:
        return MUTATION_COST * len(op.selection_set.selections)
    assert schema.query_type is not None
    return _Cost(schema, variables, field_costs or {}).selections(
        schema.query_type, op.selection_set
    )


class _Cost:
    def __init__(
        self, schema: GraphQLSchema, variables: Mapping[str, Any], field_costs: Mapping[str, int]
    ) -> None:
        self.schema = schema
        self.variables = dict(variables)
        self.field_costs = field_costs

    def selections(self, parent: GraphQLNamedType, selections: SelectionSetNode | None) -> int:
        if selections is None:
            return 0
        if is_abstract_type(parent):  # "maximum of possible selections"
            kinds = self.schema.get_possible_types(parent)  # type: ignore[arg-type]
            return max((self.on_object(kind, selections) for kind in kinds), default=0)
        assert isinstance(parent, GraphQLObjectType)
        return self.on_object(parent, selections)

    def on_object(self, kind: GraphQLObjectType, selections: SelectionSetNode) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or condition.name.value == kind.name:
                    total += self.on_object(kind, selection.selection_set)
            elif isinstance(selection, FieldNode) and not selection.name.value.startswith("__"):
                total += self.field(kind, selection, kind.fields[selection.name.value])
        return total

    def field(self, parent: GraphQLObjectType, node: FieldNode, field: GraphQLField) -> int:
        kind: Any = field.type
        if isinstance(kind, GraphQLNonNull):
            kind = kind.of_type
        listed = isinstance(kind, GraphQLList)
        while isinstance(kind, GraphQLList | GraphQLNonNull):
            kind = kind.of_type
        if is_leaf_type(kind):
            return SCALAR_COST
        own = self.field_costs.get(f"{parent.name}.{node.name.value}", OBJECT_COST)
        args = {
            a.name.value: value_from_ast_untyped(a.value, self.variables)
            for a in node.arguments or ()
        }
        if kind.name.endswith("Connection"):  # Relay connections: nodes of one node type
            size = int(args.get("first") or args.get("last") or 0)
            node_type, inside = _connection_node(kind, node)
            return CONNECTION_COST + size * (own + self.selections(node_type, inside))
        each = own + self.selections(kind, node.selection_set)
        if listed:
            size = max((len(v) for v in args.values() if isinstance(v, list)), default=1)
            return size * each
        return each


def _connection_node(
    connection: GraphQLObjectType, node: FieldNode
) -> tuple[GraphQLNamedType, SelectionSetNode]:
    """The node type of a connection and every selection made on its nodes (``nodes { }`` and
    ``edges { node { } }``, merged); ``pageInfo`` and cursors are covered by its 2 points."""
    node_type: Any = connection.fields["nodes"].type
    while isinstance(node_type, GraphQLList | GraphQLNonNull):
        node_type = node_type.of_type
    merged: list[Any] = []
    for selection in node.selection_set.selections if node.selection_set else ():
        if not isinstance(selection, FieldNode) or selection.selection_set is None:
            continue
        if selection.name.value == "nodes":
            merged.extend(selection.selection_set.selections)
        elif selection.name.value == "edges":
            for inner in selection.selection_set.selections:
                if isinstance(inner, FieldNode) and inner.name.value == "node":
                    merged.extend(inner.selection_set.selections if inner.selection_set else ())
    return node_type, SelectionSetNode(selections=tuple(merged))
