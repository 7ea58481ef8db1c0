"""The kernel: what every package of ours may import and what imports nothing of ours.

Errors and the conflict error, ids, the clock, one geodesic distance, money and time formatting,
validation primitives, versioned rows and units of work. No business rule lives here.
"""
