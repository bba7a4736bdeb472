"""Tests of the Lynxi-style backend (backends/lynxi)."""
