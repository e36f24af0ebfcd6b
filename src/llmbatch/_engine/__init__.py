"""What happens to each item between the store and the provider, with no I/O of its own.

In the order a request takes: ``planner`` (which items go together), ``pack_plan`` and
``control`` (how large a pack, how many in flight), ``answer_budget`` (``max_tokens``),
``runner`` (the dispatch loop that renders, gates and sends), ``settle`` (the pure rules
that turn an answer or an error into store updates, re-packs and failures), ``policy``
(retry and backoff), and ``batch`` (the same parts over a provider's batch API).
"""
