"""Callers and tenants: API keys (stored hashed), roles, per-key rate limits, per-tenant caps."""
