"""Restart policies and healthchecks as pure rules (no engine): Docker's semantics,
the back-off driven by a fake clock."""
from __future__ import annotations

import pytest

from labkit.engine import health, restarts
from labkit.errors import LabkitError


@pytest.mark.parametrize("text, expected", [
    (None, {"Name": "no", "MaximumRetryCount": 0}),
    ("no", {"Name": "no", "MaximumRetryCount": 0}),
    ("always", {"Name": "always", "MaximumRetryCount": 0}),
    ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
    ("on-failure", {"Name": "on-failure", "MaximumRetryCount": 0}),
    ("on-failure:5", {"Name": "on-failure", "MaximumRetryCount": 5}),
    ({"Name": "on-failure", "MaximumRetryCount": 2}, {"Name": "on-failure", "MaximumRetryCount": 2}),
])
def test_parse_policy(text, expected):
    assert restarts.parse_policy(text) == expected


@pytest.mark.parametrize("text, words", [  # pt-BR, the default language
    ("sometimes", "'sometimes' não existe"), ("on-failure:x", "inteiro"), ("on-failure:-1", "negativo"),
    ("always:3", "só vale com 'on-failure'"),
])
def test_parse_policy_refuses(text, words):
    with pytest.raises(LabkitError) as err:
        restarts.parse_policy(text)
    assert err.value.exit_code == 125
    assert words in err.value.message


class FakeClock:
    """A container that runs ``durations[i]`` seconds each time, and the delays it gets."""

    def __init__(self) -> None:
        self.delay = 0.0

    def exit_after(self, ran: float) -> float:
        self.delay = restarts.next_delay(self.delay, ran)
        return self.delay


def test_delay_doubles_from_100ms_and_is_capped_at_a_minute():
    clock = FakeClock()
    delays = [clock.exit_after(0.01) for _ in range(12)]
    assert delays[:5] == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert all(b == min(a * 2, 60.0) for a, b in zip(delays, delays[1:]))
    assert delays[-1] == restarts.MAX_DELAY


def test_delay_resets_after_a_run_of_10_seconds():
    clock = FakeClock()
    for _ in range(4):
        clock.exit_after(1.0)
    assert clock.delay == 0.8
    assert clock.exit_after(9.99) == 1.6  # just short of 10 s: still doubling
    assert clock.exit_after(10.0) == 0.1  # a run of 10 s: back to 100 ms
    assert clock.exit_after(0.5) == 0.2


def test_should_restart_by_policy():
    no, always = restarts.parse_policy("no"), restarts.parse_policy("always")
    unless, failure = restarts.parse_policy("unless-stopped"), restarts.parse_policy("on-failure:2")
    assert not restarts.should_restart(no, 1, 0, False)
    assert restarts.should_restart(always, 0, 100, False)
    assert restarts.should_restart(unless, 0, 0, False)
    # on-failure: only after a non-zero exit, at most N times
    assert not restarts.should_restart(failure, 0, 0, False)
    assert restarts.should_restart(failure, 3, 0, False)
    assert restarts.should_restart(failure, 3, 1, False)
    assert not restarts.should_restart(failure, 3, 2, False)
    assert restarts.should_restart(restarts.parse_policy("on-failure"), 1, 1000, False)  # 0 = no limit
    # a user's stop or kill: never, whatever the policy
    for policy in (always, unless, failure):
        assert not restarts.should_restart(policy, 137, 0, True)


def test_engine_start_rules():
    rule = restarts.start_on_engine_start
    always, unless = restarts.parse_policy("always"), restarts.parse_policy("unless-stopped")
    failure, no = restarts.parse_policy("on-failure"), restarts.parse_policy("no")
    assert rule(always, "exited", True)  # always: even after the user's stop
    assert rule(unless, "exited", False)
    assert not rule(unless, "exited", True)  # unless-stopped: the user's stop holds
    assert not rule(failure, "exited", False)
    assert not rule(no, "exited", False)
    assert rule(failure, "restarting", False)  # it was waiting when the engine died: once
    assert not rule(always, "running", False)  # adopted as it is
    assert not rule(always, "created", False)


def test_healthcheck_parsing():
    hc = health.parse_healthcheck({"test": "curl -f localhost", "interval": 0.5, "retries": 2})
    assert hc == {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 500_000_000, "Retries": 2}
    cli = health.parse_healthcheck({"test": ["CMD-SHELL", "true"], "interval": "1m30s", "timeout": "500ms",
                                    "start_period": "2s", "retries": "3"})
    assert cli["Interval"] == 90 * 10**9 and cli["Timeout"] == 5 * 10**8 and cli["StartPeriod"] == 2 * 10**9
    assert health.parse_healthcheck({"disable": True}) == {"Test": ["NONE"]}
    assert health.parse_healthcheck(None) is None
    for bad in ({"retries": -1}, {"retries": "x"}, {"interval": "10 parsecs"}, {"interval": -1},
                {"timeout": "10us"}, {"test": ["SHELL", "x"]}, {"disable": True, "retries": 2},
                {"tests": "x"}):
        with pytest.raises(LabkitError) as err:
            health.parse_healthcheck(bad)
        assert err.value.exit_code == 125


def test_healthcheck_merge_with_the_image():
    image = {"Test": ["CMD-SHELL", "img"], "Interval": 5 * 10**9, "Retries": 7}
    assert health.effective(None, image) == image
    assert health.effective({"Retries": 1}, image) == {**image, "Retries": 1}
    assert health.effective({"Test": ["NONE"]}, image) == {"Test": ["NONE"]}
    assert not health.active(health.effective({"Test": ["NONE"]}, image))
    assert health.effective(None, None) is None
    assert health.effective({"Interval": 10**9}, None) is None  # options without a test: none


def test_health_results_streak_retries_start_period_and_log_of_five():
    check = {"Test": ["CMD", "x"], "Retries": 3}
    h = {"Status": "starting", "FailingStreak": 0, "Log": []}
    # failures during the start period, before any success: not counted
    health.record_result(h, check, 1, "no", "s", "e", in_start_period=True)
    assert h["Status"] == "starting" and h["FailingStreak"] == 0
    statuses = []
    for _ in range(3):
        health.record_result(h, check, 1, "no", "s", "e", in_start_period=False)
        statuses.append((h["Status"], h["FailingStreak"]))
    assert statuses == [("starting", 1), ("starting", 2), ("unhealthy", 3)]
    health.record_result(h, check, 0, "ok" * 5000, "s", "e", in_start_period=False)
    assert h["Status"] == "healthy" and h["FailingStreak"] == 0
    assert len(h["Log"]) == 5 and len(h["Log"][-1]["Output"]) == health.MAX_OUTPUT
    # once healthy, the start period no longer hides a failure
    health.record_result(h, check, 1, "", "s", "e", in_start_period=True)
    assert h["FailingStreak"] == 1 and h["Status"] == "healthy"
