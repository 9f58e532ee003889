"""The service's test hooks: tests marked `real_data` run when ../shared is beside the checkout."""

from tests.conftest import pytest_collection_modifyitems, pytest_configure, pytest_terminal_summary

__all__ = ["pytest_collection_modifyitems", "pytest_configure", "pytest_terminal_summary"]
