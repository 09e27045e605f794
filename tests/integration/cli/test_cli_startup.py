"""Every `dirigent` command builds the whole parser: that must not load the server
stack, the engine or the demo, which only their own commands use."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("uvicorn", "starlette", "dirigent.engine.engine", "dirigent.demo.shop", "dirigent.app")


def test_building_the_parser_loads_no_server_engine_or_demo_modules() -> None:
    probe = (
        "import json, sys\n"
        "from dirigent.cli.main import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert json.loads(loaded.stdout) == []


def test_the_lazy_api_names_still_resolve() -> None:
    probe = "import dirigent.api as api\nprint(api.ApiContext.__name__, api.create_app.__name__)\n"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert loaded.stdout.split() == ["ApiContext", "create_app"]
