from __future__ import annotations

import subprocess
import sys


def test_the_core_imports_without_django() -> None:
    code = (
        "import sys\n"
        "import storage_app.core.keywords, storage_app.core.store, storage_app.core.snapshot\n"
        "import storage_app.core.legacy, sync_app.core.legacy_protocol, sync_app.core.protocol\n"
        "import sync_app.core.replication, sync_app.core.transport\n"
        "import storage_app.core.wal, storage_app.core.tokenizer_processes, storage_app.core.tokenizer_child\n"
        "import storage_app.core.config\n"
        "bad = [name for name in sys.modules if name.split('.')[0] in ('django', 'rest_framework')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
