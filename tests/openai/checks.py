"""The runner both server check scripts share: every check runs, failures are listed."""

import time
import traceback


def run(checks, what="checks"):
    """Runs each function in `checks`; prints `ok NAME (s)` or `FAIL NAME` with the
    traceback, then a count; returns the exit status (1 if any failed)."""
    failed = 0
    for fn in checks:
        started = time.time()
        try:
            fn()
            print(f"ok   {fn.__name__} ({time.time() - started:.1f}s)", flush=True)
        except Exception:  # noqa: BLE001 - every check runs; failures are listed
            failed += 1
            print(f"FAIL {fn.__name__}\n{traceback.format_exc()}", flush=True)
    print(f"{len(checks) - failed}/{len(checks)} {what} passed", flush=True)
    return 1 if failed else 0
