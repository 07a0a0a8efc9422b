"""Hard ceilings shared by every layer (a leaf module: it imports nothing).

Deployment limits (parameters, steps, memory) are lower and live in the service's settings; these
only keep a single value from describing something nobody meant.
"""

from __future__ import annotations

__all__ = ["MAX_LR", "MIN_LR"]

# The one upper bound on a learning rate, everywhere: optimizer specs, schedules, trials' default
# candidates and their centre. Far beyond anything the guidelines recommend, so a typo (lr=1e3)
# is refused, not trained with.
MAX_LR = 10.0

# The one lower bound on a learning rate a request gives (a reference recipe's, a range test's
# start) and on one the advice derives from it. Orders of magnitude below any published LR
# (~1e-6 at the smallest), so nothing real is refused; what it keeps out is a subnormal such as
# 5e-324, which batch scaling rounds to 0 and a geometric sweep divides into infinity.
MIN_LR = 1e-12
