"""The advice engine (torch-free): rules table, range→number methods, engine, diagnose."""

from optim_core.advice.engine import advise
from optim_core.advice.models import Advice, AdviceRequest, AdviceResponse
from optim_core.advice.rules import RULES, RULES_BY_ID, RULES_VERSION

__all__ = ["RULES", "RULES_BY_ID", "RULES_VERSION", "Advice", "AdviceRequest", "AdviceResponse",
           "advise"]
