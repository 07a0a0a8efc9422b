"""Hard ceilings shared by every layer (a leaf module: it imports nothing).

Deployment limits (parameters, steps, memory) are lower and live in the service's settings; these
only keep a single value from describing something nobody meant.
"""

from __future__ import annotations

__all__ = ["MAX_LR"]

# The one upper bound on a learning rate, everywhere: optimizer specs, schedules, trials' default
# candidates and their centre. Far beyond anything the guidelines recommend, so a typo (lr=1e3)
# is refused, not trained with.
MAX_LR = 10.0
