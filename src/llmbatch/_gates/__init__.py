"""What a request passes before it is sent: the rate limiter, the provider's rate-limit
headers that tune it, and the ``--max-cost`` budget that reserves its worst-case price."""
