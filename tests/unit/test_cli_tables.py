"""The CLI's listings read as Docker's: go-units' durations and sizes, tabwriter's columns."""
from __future__ import annotations

import calendar
import time
from datetime import datetime, timezone

import pytest

from labkit.cli.tables import ago, human_duration, human_size, since, status_text, table


@pytest.mark.parametrize("seconds, text", [
    (0.2, "Less than a second"), (1, "1 second"), (59.9, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"),                      # go-units rounds the hours
    (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (2 * 365 * 86400, "2 years"),
])
def test_durations_as_docker_prints_them(english, seconds, text):
    assert human_duration(seconds) == text


def test_sizes_as_docker_prints_them():
    assert [human_size(n) for n in (0, 999, 1000, 2_031_616, 115_800_000_000)] == \
        ["0B", "999B", "1kB", "2.03MB", "116GB"]


def test_ago_takes_a_datetime_an_iso_string_or_seconds(english):
    now = calendar.timegm((2026, 12, 3, 10, 0, 0))
    when = datetime(2026, 12, 3, 9, 57, 0, tzinfo=timezone.utc)
    assert ago(when, now) == ago("2026-12-03T09:57:00.123456789Z", now) == ago(now - 180, now) == "3 minutes ago"
    assert ago(None) == "N/A" and since("") is None
    assert since(now + 5, now) == "Less than a second"  # a clock a little ahead is not negative


def test_status_column(english):
    just = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 150))
    assert status_text({"Status": "created"}) == "Created"
    assert status_text({"Status": "exited", "ExitCode": 137, "FinishedAt": just}) == "Exited (137) 2 minutes ago"
    assert status_text({"Status": "running", "StartedAt": just}) == "Up 2 minutes"
    assert status_text({"Status": "restarting", "ExitCode": 1, "FinishedAt": just}) == "Restarting (1) 2 minutes ago"


def test_table_pads_like_tabwriter():
    out = table(["NAME", "IMAGE"], [["web", "labkit-curso/web"], ["database", ""]])
    assert out.splitlines() == ["NAME       IMAGE", "web        labkit-curso/web", "database"]
