"""Keep this package's xdist groups together under pytest 9.2.

pytest-xdist 3.8's ``--dist loadgroup`` puts a test in its ``xdist_group`` by renaming
``item._nodeid`` to ``<nodeid>@<group>``, and pytest 9.2 no longer reads that attribute (a node's id
is now the structured ``item._id``), so the groups are silently ignored: the tests of one module
spread over the workers and each worker starts the module's nodes again. Here the renamed id is
carried over to ``_id`` for the tests of this package, after xdist's own hook has run.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest
from _pytest.nodeid import NodeId

PACKAGE = "tests/api/"


@pytest.hookimpl(wrapper=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Generator[None, None, None]:
    yield
    for item in items:
        grouped = getattr(item, "_nodeid", None)
        if isinstance(grouped, str) and grouped != item.nodeid and item.nodeid.startswith(PACKAGE):
            item._id = NodeId.parse(grouped)
