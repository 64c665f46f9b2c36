"""Tools run from a source checkout (``python -m tools.NAME``), not part of the installed package."""
