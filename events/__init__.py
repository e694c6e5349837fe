"""The event path: an outbox that writers append to inside their transaction, and a drain that hands
claimed batches to the handlers other apps register. Imports no other Mizumori app (DESIGN.md)."""
