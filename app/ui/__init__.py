"""The dashboard's static files (HTML, CSS, ES modules, vendored docs assets), shipped in the
package and served by the API process at ``/ui/`` (no Node at run time, nothing fetched)."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"
VENDOR_PREFIX = "/ui/static/vendor"
