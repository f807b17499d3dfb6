#!/usr/bin/env python3
"""The end of ``make test``: per suite, how many tests ran, passed, failed and were
skipped, then every skip of every suite with its reason, read from the JUnit XML
files the suites wrote (``reports/junit-<suite>.xml``).

usage: tools/test_summary.py SUITE...   (e.g. unit integration notebooks e2e cgroup2)
A suite without its file did not run (skipped as a whole, or it crashed: see above).
Stdlib only; prints pt-BR with the English in parentheses, as the Makefile does.
"""
from __future__ import annotations

import ast
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

REPORTS = Path(__file__).resolve().parent.parent / "reports"


def read(path: Path) -> tuple[dict[str, int], list[tuple[str, str]]]:
    counts = {"tests": 0, "failed": 0, "skipped": 0, "xfailed": 0}
    skips = []
    root = ET.parse(path).getroot()
    for case in root.iter("testcase"):
        counts["tests"] += 1
        name = f"{case.get('classname', '')}::{case.get('name', '')}".strip(":")
        if case.find("failure") is not None or case.find("error") is not None:
            counts["failed"] += 1
        skipped = case.find("skipped")
        if skipped is not None and skipped.get("type") == "pytest.xfail":
            counts["xfailed"] += 1  # it ran, and failed as expected
        elif skipped is not None:
            counts["skipped"] += 1
            reason = skipped.get("message") or ""
            text = (skipped.text or "").strip()
            if reason == "collection skipped" and text:  # a whole module: ('path', line, 'Skipped: why')
                try:
                    reason = str(ast.literal_eval(text)[2]).removeprefix("Skipped: ")
                except (ValueError, SyntaxError, IndexError, TypeError):
                    reason = text
            skips.append((name, reason))
    return counts, skips


def main(suites: list[str]) -> int:
    print("=== resumo dos testes (test summary) ===")
    all_skips = []
    for suite in suites:
        path = REPORTS / f"junit-{suite}.xml"
        if not path.exists():
            print(f"  {suite:<12} não rodou (did not run): veja acima (see above)")
            continue
        try:
            counts, skips = read(path)
        except ET.ParseError as exc:
            print(f"  {suite:<12} relatório ilegível (unreadable report) {path}: {exc}")
            continue
        ran = counts["tests"] - counts["skipped"]
        print(f"  {suite:<12} {ran} rodaram (ran), {counts['failed']} falharam (failed), "
              f"{counts['skipped']} pulados (skipped)")
        all_skips += [(suite, name, reason) for name, reason in skips]
    if all_skips:
        print(f"\n{len(all_skips)} pulados, com o motivo (skipped, with the reason):")
        for suite, name, reason in all_skips:
            print(f"  [{suite}] {name}: {reason}")
    else:
        print("\nnenhum teste pulado (no test skipped)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
