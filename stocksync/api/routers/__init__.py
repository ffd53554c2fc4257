"""One router per resource; routers call the store and the ledger, never Redis or each other."""
