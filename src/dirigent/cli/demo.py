"""``dirigent demo``: run the shop of ``examples/shop`` under trouble and check its books.

Brings the shop up as ``dirigent up`` does, drives a stream of orders through
the Step Functions API, kills a ``shipping`` replica and slows ``payments``
meanwhile, prints progress and a summary. ``--once`` ends after the last order
(``--json``: the summary as one JSON object on the last line of stdout, progress
on stderr); otherwise the shop keeps serving until Ctrl-C. Either way,
everything the demo started is stopped when it ends. Exit codes: 0 every
invariant holds, 1 one does not (or the shop would not run), 130 interrupted.

This module must never carry out the demo itself: it parses, calls
:mod:`dirigent.demo` and prints.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from threading import Event
from typing import TYPE_CHECKING, Any

import dirigent
from dirigent.errors import DirigentError

if TYPE_CHECKING:
    from dirigent.demo.shop import ShopDemo


def _default_manifest() -> Path:
    # The repository's example when running from a checkout (editable install),
    # else examples/shop under the current directory.
    checkout = Path(dirigent.__file__).resolve().parents[2] / "examples" / "shop" / "dirigent.yaml"
    return checkout if checkout.exists() else Path("examples/shop/dirigent.yaml")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo",
        help="run the example shop under trouble and check its books",
        description="Bring up examples/shop, drive orders through it while a shipping replica "
        "is killed and payments is slowed, and check every business invariant from the "
        "services' own records.",
    )
    demo.add_argument("--orders", type=_positive, default=24, help="orders to run (%(default)s)")
    demo.add_argument("--once", action="store_true", help="end after the last order")
    demo.add_argument("--json", action="store_true", help="summary as one JSON line (last)")
    demo.add_argument("--api-port", type=int, default=8080, help="API port (%(default)s)")
    demo.add_argument("-f", "--file", type=Path, help="the shop's manifest (examples/shop)")
    demo.add_argument(
        "--interval", type=float, default=0.5, help="seconds between orders (%(default)s)"
    )
    demo.add_argument(
        "--settle", type=float, default=180.0, help="seconds to wait for the last orders to end"
    )
    demo.set_defaults(handler=cmd_demo)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("expected an integer >= 1")
    return value


def cmd_demo(args: argparse.Namespace) -> int:
    # Imported here, not at the top: every `dirigent` command builds this
    # module's parser, and the demo's modules (the engine, the SDK...) would add
    # a quarter of a second to each.
    from dirigent.demo.run import drive, summarize  # noqa: PLC0415
    from dirigent.demo.scenario import plan_orders, plan_trouble  # noqa: PLC0415
    from dirigent.demo.shop import DemoError, Interrupted, ShopDemo  # noqa: PLC0415

    stop = Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    progress_out = sys.stderr if args.json else sys.stdout

    def say(line: str) -> None:
        print(line, file=progress_out, flush=True)

    manifest = args.file or _default_manifest()
    demo = ShopDemo(manifest, args.api_port, stop, say)
    try:
        say(f"dirigent demo: starting the shop ({manifest})")
        demo.start()
        say(f"dirigent demo: shop up, API on {demo.api}; {args.orders} orders on their way")
        began = time.monotonic()
        orders = plan_orders(args.orders, prefix=time.strftime("order-%m%d-%H%M%S"))
        progress = drive(
            demo,
            orders,
            plan_trouble(args.orders),
            interval=args.interval,
            settle=args.settle,
            stop_requested=stop.wait,
            say=say,
        )
        summary = summarize(
            orders, progress, demo.records(), elapsed=time.monotonic() - began, api=demo.api
        )
        _show(summary, args.json)
        if not args.once:
            _keep_serving(demo, stop, say)
        return 0 if summary["invariants_hold"] else 1
    except Interrupted:
        say("dirigent demo: interrupted")
        return 130
    except DemoError as exc:
        print(f"dirigent demo: {exc}", file=sys.stderr)
        return 1
    except DirigentError as exc:  # the API or the control socket failed mid-run
        print(f"dirigent demo: {exc}", file=sys.stderr)
        return 1
    finally:
        say("dirigent demo: taking the shop down")
        demo.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _show(summary: dict[str, Any], as_json: bool) -> None:
    from dirigent.demo.run import render  # noqa: PLC0415 - see cmd_demo

    if as_json:
        print(json.dumps(summary, sort_keys=True), flush=True)
        return
    print("\n".join(render(summary)), flush=True)


def _keep_serving(demo: ShopDemo, stop: Event, say: Callable[[str], None]) -> None:
    data_dir = demo.paths.state_dir
    say(
        f"\nThe shop keeps serving. API: {demo.api} (Step Functions protocol and REST)\n"
        f"  export DIRIGENT_SERVER={demo.api} DIRIGENT_DATA_DIR={data_dir}\n"
        "  dirigent executions start order --input "
        '\'{"orderId": "o-1", "items": [{"sku": "kb-01", "quantity": 1}], '
        '"card": "4242424242424242", "address": "1 Main St"}\'\n'
        "  dirigent executions list\n"
        f"  dirigent ps -f {demo.paths.manifest}\n"
        "Ctrl-C stops everything."
    )
    stop.wait()
