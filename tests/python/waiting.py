"""Waiting on a condition with a deadline, for the client tests."""

import time


def wait_for(probe, timeout, what):
    """Call `probe` every 50 ms until it returns something other than None; fail after
    `timeout` seconds saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.05)
