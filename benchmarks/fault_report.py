"""Run the fault catalogue (tests/faults.py) and print how each bad input ended, as a Markdown table.

    python benchmarks/fault_report.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    from faults import catalogue, run_fault

    rows = []
    for fault in catalogue():
        with tempfile.TemporaryDirectory() as tmp:
            try:
                outcome, detail = run_fault(fault, Path(tmp))
            except Exception as exc:  # a case that cannot be built here (e.g. a model not exported)
                outcome, detail = "skipped", f"{type(exc).__name__}: {exc}"
        rows.append((fault.name, outcome, detail.replace("|", "/").replace(tmp, "TMP")))
    print("| bad input | outcome | what the user sees |")
    print("|---|---|---|")
    for name, outcome, detail in rows:
        print(f"| {name} | {outcome} | {detail} |")
    counts = {k: sum(1 for r in rows if r[1] == k) for k in ("handled", "ok", "FAILED", "skipped")}
    print(f"\n{len(rows)} cases: {counts['handled']} rejected with a clear error, {counts['ok']} legal inputs accepted, "
          f"{counts['FAILED']} failed, {counts['skipped']} skipped")


if __name__ == "__main__":
    main()
